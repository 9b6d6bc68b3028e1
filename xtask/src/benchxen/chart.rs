//! The PNG chart of a run: requests/s (top) and the guest's CPU time per
//! request (bottom) for every file and load mode, one bar per guest, both
//! on log scales. Drawn with plotters' bitmap backend; text with a font
//! file read at run time (DejaVu Sans from Debian's fonts-dejavu-core), so
//! no system font lookup is involved.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::results::{Kind, Load, Run, MODES};
use super::site::FILES;
use crate::Error;

/// The font file (Debian package fonts-dejavu-core).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The chart's size in pixels.
const SIZE: (u32, u32) = (1600, 1000);
/// Room below each panel for the group labels, pixels.
const LABEL_ROOM: u32 = 60;

fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Ringlet => RGBColor(0x1b, 0x9e, 0x77),
        Kind::Nginx => RGBColor(0x75, 0x70, 0xb3),
        Kind::Epoll => RGBColor(0xd9, 0x5f, 0x02),
    }
}

/// Registers the font once (plotters keeps it for the process).
fn register_font() -> Result<(), Error> {
    static DONE: std::sync::OnceLock<Result<(), Error>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e}"))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{FONT}: not a font plotters can read"))
    })
    .clone()
}

/// Draws the chart of `run` into `path` (PNG). `subtitle` goes under the
/// title (machine, date).
pub fn draw(run: &Run, path: &Path, subtitle: &str) -> Result<(), Error> {
    register_font()?;
    let kinds: Vec<Kind> = run.guests.iter().map(|g| g.kind).collect();
    let groups: Vec<(&str, &str)> = FILES
        .iter()
        .flat_map(|f| MODES.iter().map(move |m| (f.key, *m)))
        .filter(|(f, m)| run.guests.iter().any(|g| g.load(f, m).is_some()))
        .collect();
    if groups.is_empty() {
        return Err("no load runs to chart".into());
    }
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let root = root
        .titled(
            "Xen bench: Ringlet httpd, nginx and epoll-httpd domUs (wrk from dom0)",
            ("sans-serif", 26),
        )
        .map_err(e)?;
    let (sub, body) = root.split_vertically(26);
    sub.draw(&Text::new(
        subtitle.to_string(),
        (10, 4),
        ("sans-serif", 16).into_font().color(&BLACK.mix(0.7)),
    ))
    .map_err(e)?;
    let (top, bottom) = body.split_vertically(body.dim_in_pixel().1 / 2);
    panel(
        &top,
        "requests/s (log scale)",
        &groups,
        run,
        &kinds,
        |l| Some(l.rps()),
        true,
    )?;
    panel(
        &bottom,
        "guest CPU time per request, µs (log scale; Xen's accounting)",
        &groups,
        run,
        &kinds,
        |l| l.cpu_per_request_ns().map(|ns| ns / 1000.0),
        false,
    )?;
    root.present().map_err(e)?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    groups: &[(&str, &str)],
    run: &Run,
    kinds: &[Kind],
    value: impl Fn(&Load) -> Option<f64>,
    legend: bool,
) -> Result<(), Error> {
    let e = |e: DrawingAreaErrorKind<_>| format!("drawing the chart: {e:?}");
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|(f, m)| {
            run.guests
                .iter()
                .filter_map(|g| g.load(f, m).and_then(&value))
                .collect::<Vec<_>>()
        })
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo / 2.0, hi * 2.0)
    } else {
        (0.1, 10.0)
    };
    let n = groups.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .margin_bottom(LABEL_ROOM)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, (lo..hi).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_style(("sans-serif", 14))
        .y_label_formatter(&|v| super::results::fmt_sig(*v))
        .draw()
        .map_err(e)?;
    let bar = 0.8 / kinds.len().max(1) as f64;
    for (ki, kind) in kinds.iter().enumerate() {
        let Some(guest) = run.guest(*kind) else {
            continue;
        };
        let c = color(*kind);
        let bars: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .filter_map(|(gi, (f, m))| {
                let v = guest.load(f, m).and_then(&value)?;
                (v.is_finite() && v > 0.0).then(|| {
                    let x0 = gi as f64 + 0.1 + ki as f64 * bar;
                    Rectangle::new([(x0, lo), (x0 + bar * 0.92, v)], c.filled())
                })
            })
            .collect();
        let series = chart.draw_series(bars).map_err(e)?;
        if legend {
            series
                .label(kind.name())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(e)?;
    }
    // Group labels under the axis: the file on one line, the mode below.
    let font = ("sans-serif", 14).into_font();
    for (gi, (f, m)) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(gi as f64 + 0.5, lo));
        for (line, text) in [f, m].iter().enumerate() {
            let width = text.len() as i32 * 8;
            area.draw(&Text::new(
                text.to_string(),
                (
                    x - width / 2 - area.get_base_pixel().0,
                    y + 6 + line as i32 * 17 - area.get_base_pixel().1,
                ),
                font.clone(),
            ))
            .map_err(e)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::benchxen::results::Guest;
    use crate::e2e::{Figure, Outcome};

    #[test]
    fn draws_a_png() {
        if !Path::new(FONT).is_file() {
            // The command installs fonts-dejavu-core; a test must not.
            panic!("{FONT} is missing: apt-get install fonts-dejavu-core");
        }
        let mut figures = Vec::new();
        for (kind, scale) in [(Kind::Ringlet, 3.0), (Kind::Nginx, 1.0), (Kind::Epoll, 1.5)] {
            for f in FILES {
                for m in MODES {
                    let name = |x: &str| format!("{}.{}.{m}.{x}", kind.scenario(), f.key);
                    let rps = scale * 1e5 / (f.bytes as f64).sqrt();
                    for (x, v) in [
                        ("requests", rps * 3.0),
                        ("duration_us", 3e6),
                        ("guest_cpu_ns", 3e9 / scale),
                    ] {
                        figures.push(Figure {
                            name: name(x),
                            value: v,
                            unit: "x".into(),
                        });
                    }
                }
            }
        }
        let run = Run {
            guests: Kind::ALL
                .iter()
                .map(|k| Guest::from_figures(*k, Some(&Outcome::Ok), &figures))
                .collect(),
            context: Vec::new(),
        };
        let dir =
            std::env::temp_dir().join(format!("ringlet-benchxen-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("xen.png");
        draw(&run, &png, "unit test").unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
        if std::env::var_os("RINGLET_KEEP_CHART").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!("chart kept: {}", png.display());
        }
    }
}
