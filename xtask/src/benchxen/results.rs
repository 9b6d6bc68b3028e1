//! What a run measured, per guest: the figures dom0 reported turned into
//! load runs, boots and sizes; ratios to the nginx guest; the table, the
//! Markdown table and the JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::site::FILES;
use crate::e2e::{Figure, Outcome};

/// The load modes, in table order: keep-alive with 1, 16 and 64
/// connections, 16 connections pipelined 16 deep, and churn with 16.
pub const MODES: [&str; 5] = ["ka1", "ka16", "ka64", "pipe16", "close16"];

/// The guests, in the order a run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The Ringlet httpd appliance.
    Ringlet,
    /// Linux with nginx.
    Nginx,
    /// Linux with bench/epoll-httpd.
    Epoll,
}

impl Kind {
    /// Every guest.
    pub const ALL: [Kind; 3] = [Kind::Ringlet, Kind::Nginx, Kind::Epoll];

    /// Short name: `ringlet`, `nginx`, `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ringlet => "ringlet",
            Self::Nginx => "nginx",
            Self::Epoll => "epoll",
        }
    }

    /// The e2e scenario that runs it.
    pub fn scenario(self) -> &'static str {
        match self {
            Self::Ringlet => "bench-ringlet",
            Self::Nginx => "bench-nginx",
            Self::Epoll => "bench-epoll",
        }
    }

    /// Parses a short name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One wrk run.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// The file's key (`13b`, `4k`, ...).
    pub file: String,
    /// The mode (`ka16`, ...).
    pub mode: String,
    /// Whole answers wrk counted.
    pub requests: f64,
    /// Bytes wrk read, partial answers included.
    pub bytes: f64,
    /// One answer's size (head and body) in this mode, if dom0 measured the
    /// head.
    pub answer_bytes: Option<f64>,
    /// wrk's measured duration, microseconds.
    pub duration_us: f64,
    /// Socket errors, timeouts and non-2xx/3xx answers.
    pub errors: f64,
    /// Latency percentiles, microseconds (per batch when pipelined).
    pub p50_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
    /// CPU time Xen accounted to the guest during the run, ns.
    pub guest_cpu_ns: f64,
    /// CPU time Xen accounted to dom0 during the run (wrk, netback), ns.
    pub dom0_cpu_ns: f64,
}

impl Load {
    /// Answers served: the bytes wrk read over one answer's size (partial
    /// answers count for their part), or whole answers when the size is not
    /// known. Under emulation a run of a few seconds completes few 1 MiB
    /// answers on 64 connections, but every byte is work done.
    pub fn answers(&self) -> f64 {
        match self.answer_bytes {
            Some(size) if size > 0.0 && self.bytes.is_finite() => {
                (self.bytes / size).max(self.requests)
            }
            _ => self.requests,
        }
    }

    /// Requests (answers) per second.
    pub fn rps(&self) -> f64 {
        if self.duration_us > 0.0 {
            self.answers() / (self.duration_us / 1e6)
        } else {
            0.0
        }
    }

    /// The guest's CPU time per request (answer), ns; `None` when nothing
    /// was served.
    pub fn cpu_per_request_ns(&self) -> Option<f64> {
        let answers = self.answers();
        (answers > 0.0).then(|| self.guest_cpu_ns / answers)
    }
}

/// One ab run (the cross-check).
#[derive(Debug, Clone, PartialEq)]
pub struct AbRun {
    /// The file's key.
    pub file: String,
    /// `ka16` or `close16`.
    pub mode: String,
    /// ab's requests per second.
    pub rps: f64,
    /// Failed plus non-2xx requests.
    pub failed: f64,
}

/// One measured boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Boot {
    /// `xl create`'s own duration, ms.
    pub xl_create_ms: Option<f64>,
    /// From just before `xl create` to the first console output, ms.
    pub first_line_ms: Option<f64>,
    /// From just before `xl create` to the first HTTP 200, ms.
    pub first_200_ms: f64,
}

/// Everything measured for one guest.
#[derive(Debug, Clone, PartialEq)]
pub struct Guest {
    /// Which guest.
    pub kind: Kind,
    /// `None` when its scenario passed, else why not (figures may still be
    /// partial).
    pub failure: Option<String>,
    /// Image parts and their sizes in bytes (kernel, initramfs).
    pub image: Vec<(String, u64)>,
    /// Measured boots, in order.
    pub boots: Vec<Boot>,
    /// The guest's own uptime when it printed that it serves (Linux), s.
    pub uptime_serving_s: Option<f64>,
    /// Smallest `memory=` (MB) that served the site, and the largest that
    /// did not (the bisection's bounds).
    pub min_memory_mb: Option<f64>,
    /// See `min_memory_mb`.
    pub max_failed_memory_mb: Option<f64>,
    /// Bisection steps: memory MB, served.
    pub bisection: Vec<(f64, bool)>,
    /// wrk runs.
    pub loads: Vec<Load>,
    /// ab runs.
    pub ab: Vec<AbRun>,
}

impl Guest {
    /// Gathers a guest's figures (names `<scenario>.<...>`).
    pub fn from_figures(kind: Kind, outcome: Option<&Outcome>, figures: &[Figure]) -> Self {
        let prefix = format!("{}.", kind.scenario());
        let own: BTreeMap<&str, f64> = figures
            .iter()
            .filter_map(|f| Some((f.name.strip_prefix(&prefix)?, f.value)))
            .collect();
        let get = |name: &str| own.get(name).copied();
        let mut loads = Vec::new();
        let mut ab = Vec::new();
        for site_file in &FILES {
            let file = site_file.key;
            for mode in MODES {
                let at = |m: &str| get(&format!("{file}.{mode}.{m}"));
                let head = if mode.starts_with("close") {
                    get(&format!("{file}.head_close_bytes"))
                } else {
                    get(&format!("{file}.head_bytes"))
                };
                if let (Some(requests), Some(duration_us)) = (at("requests"), at("duration_us")) {
                    loads.push(Load {
                        file: file.into(),
                        mode: mode.into(),
                        requests,
                        bytes: at("bytes").unwrap_or(f64::NAN),
                        answer_bytes: head.map(|h| h + site_file.bytes as f64),
                        duration_us,
                        errors: at("errors").unwrap_or(f64::NAN),
                        p50_us: at("p50_us").unwrap_or(f64::NAN),
                        p99_us: at("p99_us").unwrap_or(f64::NAN),
                        guest_cpu_ns: at("guest_cpu_ns").unwrap_or(f64::NAN),
                        dom0_cpu_ns: at("dom0_cpu_ns").unwrap_or(f64::NAN),
                    });
                }
                let ab_at = |m: &str| get(&format!("{file}.ab-{mode}.{m}"));
                if let Some(rps) = ab_at("rps") {
                    ab.push(AbRun {
                        file: file.into(),
                        mode: mode.into(),
                        rps,
                        failed: ab_at("failed").unwrap_or(0.0) + ab_at("non2xx").unwrap_or(0.0),
                    });
                }
            }
        }
        let mut boots = Vec::new();
        for i in 1.. {
            let Some(first_200_ms) = get(&format!("boot{i}.create_to_first_200_ms")) else {
                break;
            };
            boots.push(Boot {
                xl_create_ms: get(&format!("boot{i}.xl_create_ms")),
                first_line_ms: get(&format!("boot{i}.create_to_first_line_ms")),
                first_200_ms,
            });
        }
        let mut bisection: Vec<(f64, bool)> = own
            .iter()
            .filter_map(|(name, v)| {
                let mb: f64 = name.strip_prefix("bisect.m")?.parse().ok()?;
                Some((mb, *v > 0.5))
            })
            .collect();
        bisection.sort_by(|a, b| b.0.total_cmp(&a.0));
        Self {
            kind,
            failure: match outcome {
                Some(Outcome::Ok) => None,
                Some(Outcome::Failed(why)) => Some(why.clone()),
                None => Some("not run".into()),
            },
            image: Vec::new(),
            boots,
            uptime_serving_s: get("boot1.guest_uptime_serving_s"),
            min_memory_mb: get("min_memory_mb"),
            max_failed_memory_mb: get("max_failed_memory_mb"),
            bisection,
            loads,
            ab,
        }
    }

    /// The image's total size in bytes.
    pub fn image_bytes(&self) -> Option<u64> {
        (!self.image.is_empty()).then(|| self.image.iter().map(|(_, b)| b).sum())
    }

    /// The median of the boots' `xl create` → first 200, ms.
    pub fn boot_ms(&self) -> Option<f64> {
        median(self.boots.iter().map(|b| b.first_200_ms).collect())
    }

    /// The median of the boots' time from `xl create` returning to the
    /// first 200, ms: the guest's own part of the boot (the toolstack's,
    /// hotplug scripts included, is `xl create` itself).
    pub fn after_create_ms(&self) -> Option<f64> {
        median(
            self.boots
                .iter()
                .filter_map(|b| Some(b.first_200_ms - b.xl_create_ms?))
                .collect(),
        )
    }

    /// The median of the boots' `xl create` durations, ms.
    pub fn xl_create_ms(&self) -> Option<f64> {
        median(self.boots.iter().filter_map(|b| b.xl_create_ms).collect())
    }

    /// The load run of a file and mode.
    pub fn load(&self, file: &str, mode: &str) -> Option<&Load> {
        self.loads.iter().find(|l| l.file == file && l.mode == mode)
    }
}

/// The median (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// The geometric mean of positive values (`None` if there are none).
pub fn geomean(values: &[f64]) -> Option<f64> {
    let logs: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.ln())
        .collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// A guest's ratios to the nginx guest of the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratios {
    /// Requests/s, geometric mean over the (file, mode) pairs both ran.
    pub rps: Option<f64>,
    /// The smallest and largest per-pair requests/s ratio.
    pub rps_range: Option<(f64, f64)>,
    /// The median per-pair requests/s ratio (robust to one wild run).
    pub rps_median: Option<f64>,
    /// CPU per request, geometric mean.
    pub cpu: Option<f64>,
    /// See `rps_range`.
    pub cpu_range: Option<(f64, f64)>,
    /// See `rps_median`.
    pub cpu_median: Option<f64>,
    /// `xl create` → first 200 (medians).
    pub boot: Option<f64>,
    /// `xl create` returned → first 200 (medians): the guest's own part.
    pub after_create: Option<f64>,
    /// Smallest working memory.
    pub memory: Option<f64>,
    /// Image size.
    pub image: Option<f64>,
}

impl Ratios {
    /// `guest` against `nginx`.
    pub fn of(guest: &Guest, nginx: &Guest) -> Self {
        let mut rps = Vec::new();
        let mut cpu = Vec::new();
        for l in &guest.loads {
            let Some(n) = nginx.load(&l.file, &l.mode) else {
                continue;
            };
            if n.rps() > 0.0 && l.rps() > 0.0 {
                rps.push(l.rps() / n.rps());
            }
            if let (Some(a), Some(b)) = (l.cpu_per_request_ns(), n.cpu_per_request_ns()) {
                if a > 0.0 && b > 0.0 {
                    cpu.push(a / b);
                }
            }
        }
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (!v.is_empty()).then_some((lo, hi))
        };
        let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        Self {
            rps: geomean(&rps),
            rps_range: range(&rps),
            rps_median: median(rps.clone()),
            cpu: geomean(&cpu),
            cpu_range: range(&cpu),
            cpu_median: median(cpu.clone()),
            boot: div(guest.boot_ms(), nginx.boot_ms()),
            after_create: div(guest.after_create_ms(), nginx.after_create_ms()),
            memory: div(guest.min_memory_mb, nginx.min_memory_mb),
            image: div(
                guest.image_bytes().map(|b| b as f64),
                nginx.image_bytes().map(|b| b as f64),
            ),
        }
    }
}

/// One target of issue 8, as a ratio to nginx.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// What is compared.
    pub what: &'static str,
    /// The bound.
    pub bound: f64,
    /// Whether the ratio must be at least (true) or at most the bound.
    pub at_least: bool,
}

/// The targets: requests/s ≥ 2×, CPU per request ≤ 0.5×, `xl create` →
/// first 200 ≤ 0.1×, smallest memory ≤ 0.125×.
pub const TARGETS: [Target; 4] = [
    Target {
        what: "requests/s",
        bound: 2.0,
        at_least: true,
    },
    Target {
        what: "CPU per request",
        bound: 0.5,
        at_least: false,
    },
    Target {
        what: "xl create -> first 200",
        bound: 0.1,
        at_least: false,
    },
    Target {
        what: "smallest memory",
        bound: 0.125,
        at_least: false,
    },
];

impl Target {
    /// The ratio this target reads.
    pub fn ratio(&self, r: &Ratios) -> Option<f64> {
        match self.what {
            "requests/s" => r.rps,
            "CPU per request" => r.cpu,
            "xl create -> first 200" => r.boot,
            _ => r.memory,
        }
    }

    /// Whether a ratio meets it.
    pub fn met(&self, ratio: f64) -> bool {
        if self.at_least {
            ratio >= self.bound
        } else {
            ratio <= self.bound
        }
    }
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The guests measured (or attempted), in run order.
    pub guests: Vec<Guest>,
    /// Settings and context, as (key, value) strings for the JSON and the
    /// table's header: machine, date, mode, memory, duration...
    pub context: Vec<(String, String)>,
}

impl Run {
    /// A guest by kind.
    pub fn guest(&self, kind: Kind) -> Option<&Guest> {
        self.guests.iter().find(|g| g.kind == kind)
    }

    /// Ratios of a guest to nginx, if both ran.
    pub fn ratios(&self, kind: Kind) -> Option<Ratios> {
        Some(Ratios::of(self.guest(kind)?, self.guest(Kind::Nginx)?))
    }

    /// The tables as plain text.
    pub fn text(&self) -> String {
        self.render(false)
    }

    /// The tables as Markdown (for docs/benchmarks.md).
    pub fn markdown(&self) -> String {
        self.render(true)
    }

    fn render(&self, md: bool) -> String {
        let mut out = String::new();
        let mut table = |title: &str, header: Vec<String>, rows: Vec<Vec<String>>| {
            if md {
                let _ = writeln!(out, "**{title}**\n");
                let _ = writeln!(out, "| {} |", header.join(" | "));
                let _ = writeln!(
                    out,
                    "|{}",
                    header
                        .iter()
                        .enumerate()
                        .map(|(i, _)| if i < 2 { " --- |" } else { " ---: |" })
                        .collect::<String>()
                );
                for r in rows {
                    let _ = writeln!(out, "| {} |", r.join(" | "));
                }
                out.push('\n');
            } else {
                let _ = writeln!(out, "{title}");
                let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
                for r in &rows {
                    for (w, c) in widths.iter_mut().zip(r) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let line = |cells: &[String]| {
                    let mut s = String::from(" ");
                    for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                        let pad = w - c.chars().count();
                        if i < 2 {
                            s.push_str(&format!(" {c}{}", " ".repeat(pad)));
                        } else {
                            s.push_str(&format!(" {}{c}", " ".repeat(pad)));
                        }
                    }
                    s.trim_end().to_string()
                };
                let _ = writeln!(out, "{}", line(&header));
                for r in &rows {
                    let _ = writeln!(out, "{}", line(r));
                }
                out.push('\n');
            }
        };
        let kinds: Vec<Kind> = self.guests.iter().map(|g| g.kind).collect();
        let others: Vec<Kind> = kinds
            .iter()
            .copied()
            .filter(|k| *k != Kind::Nginx)
            .collect();
        let nginx = self.guest(Kind::Nginx);

        // Load: requests/s and CPU per request per guest, ratios to nginx.
        let mut header = vec!["file".to_string(), "mode".to_string()];
        for k in &kinds {
            header.push(format!("{} req/s", k.name()));
        }
        for k in &kinds {
            header.push(format!("{} µs CPU/req", k.name()));
        }
        for k in &others {
            header.push(format!("{}/nginx req/s", k.name()));
            header.push(format!("{}/nginx CPU/req", k.name()));
        }
        let mut rows = Vec::new();
        for file in FILES.iter().map(|f| f.key) {
            for mode in MODES {
                let loads: Vec<Option<&Load>> = kinds
                    .iter()
                    .map(|k| self.guest(*k).and_then(|g| g.load(file, mode)))
                    .collect();
                if loads.iter().all(Option::is_none) {
                    continue;
                }
                let mut row = vec![file.to_string(), mode.to_string()];
                for l in &loads {
                    row.push(l.map_or("-".into(), |l| {
                        let mark = if l.errors > 0.0 { "*" } else { "" };
                        format!("{}{mark}", fmt_sig(l.rps()))
                    }));
                }
                for l in &loads {
                    row.push(
                        l.and_then(Load::cpu_per_request_ns)
                            .map_or("-".into(), |ns| fmt_sig(ns / 1000.0)),
                    );
                }
                let n = nginx.and_then(|g| g.load(file, mode));
                for k in &others {
                    let g = self.guest(*k).and_then(|g| g.load(file, mode));
                    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                        (Some(a), Some(b)) if b > 0.0 && a > 0.0 => format!("{:.2}×", a / b),
                        _ => "-".into(),
                    };
                    row.push(ratio(g.map(Load::rps), n.map(Load::rps)));
                    row.push(ratio(
                        g.and_then(Load::cpu_per_request_ns),
                        n.and_then(Load::cpu_per_request_ns),
                    ));
                }
                rows.push(row);
            }
        }
        table("Load (wrk from dom0; * = the run had errors)", header, rows);

        // Latency and errors.
        let mut header = vec!["file".to_string(), "mode".to_string()];
        for k in &kinds {
            header.push(format!("{} p50/p99 ms", k.name()));
        }
        for k in &kinds {
            header.push(format!("{} errors", k.name()));
        }
        let mut rows = Vec::new();
        for file in FILES.iter().map(|f| f.key) {
            for mode in MODES {
                let loads: Vec<Option<&Load>> = kinds
                    .iter()
                    .map(|k| self.guest(*k).and_then(|g| g.load(file, mode)))
                    .collect();
                if loads.iter().all(Option::is_none) {
                    continue;
                }
                let mut row = vec![file.to_string(), mode.to_string()];
                for l in &loads {
                    row.push(l.map_or("-".into(), |l| {
                        format!(
                            "{}/{}",
                            fmt_sig(l.p50_us / 1000.0),
                            fmt_sig(l.p99_us / 1000.0)
                        )
                    }));
                }
                for l in &loads {
                    row.push(l.map_or("-".into(), |l| format!("{:.0}", l.errors)));
                }
                rows.push(row);
            }
        }
        table(
            "Latency (per batch of 16 when pipelined) and errors",
            header,
            rows,
        );

        // ab cross-check.
        let mut rows = Vec::new();
        for file in FILES.iter().map(|f| f.key) {
            for mode in MODES {
                let ab: Vec<Option<&AbRun>> = kinds
                    .iter()
                    .map(|k| {
                        self.guest(*k)
                            .and_then(|g| g.ab.iter().find(|a| a.file == file && a.mode == mode))
                    })
                    .collect();
                if ab.iter().all(Option::is_none) {
                    continue;
                }
                let mut row = vec![file.to_string(), mode.to_string()];
                for (k, a) in kinds.iter().zip(&ab) {
                    let wrk = self
                        .guest(*k)
                        .and_then(|g| g.load(file, mode))
                        .map(Load::rps);
                    row.push(match (a, wrk) {
                        (Some(a), Some(w)) => format!(
                            "{} ({} wrk){}",
                            fmt_sig(a.rps),
                            fmt_sig(w),
                            if a.failed > 0.0 { " *" } else { "" }
                        ),
                        (Some(a), None) => fmt_sig(a.rps),
                        _ => "-".into(),
                    });
                }
                rows.push(row);
            }
        }
        if !rows.is_empty() {
            let mut header = vec!["file".to_string(), "mode".to_string()];
            for k in &kinds {
                header.push(format!("{} ab req/s", k.name()));
            }
            table(
                "Cross-check: ab against wrk (* = ab counted failures)",
                header,
                rows,
            );
        }

        // Boot and size.
        let header: Vec<String> = [
            "guest",
            "image",
            "image bytes",
            "xl create ms",
            "create → first 200 ms",
            "of which after xl create ms",
            "boots",
            "smallest memory MB",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rows = Vec::new();
        for g in &self.guests {
            let parts = g
                .image
                .iter()
                .map(|(n, b)| format!("{n} {}", human_bytes(*b)))
                .collect::<Vec<_>>()
                .join(" + ");
            rows.push(vec![
                g.kind.name().to_string(),
                if parts.is_empty() { "-".into() } else { parts },
                g.image_bytes().map_or("-".into(), |b| b.to_string()),
                g.xl_create_ms().map_or("-".into(), |v| format!("{v:.0}")),
                g.boot_ms().map_or("-".into(), |v| format!("{v:.0}")),
                g.after_create_ms()
                    .map_or("-".into(), |v| format!("{v:.0}")),
                g.boots.len().to_string(),
                match (g.min_memory_mb, g.max_failed_memory_mb) {
                    (Some(m), Some(f)) => format!("{m:.0} (fails at {f:.0})"),
                    (Some(m), None) => format!("{m:.0}"),
                    _ => "-".into(),
                },
            ]);
        }
        table("Boot and size (medians of the boots)", header, rows);

        // Targets.
        let mut rows = Vec::new();
        for k in &others {
            let Some(r) = self.ratios(*k) else { continue };
            for t in TARGETS {
                let ratio = t.ratio(&r);
                let (range, med) = match t.what {
                    "requests/s" => (r.rps_range, r.rps_median),
                    "CPU per request" => (r.cpu_range, r.cpu_median),
                    _ => (None, None),
                };
                rows.push(vec![
                    k.name().to_string(),
                    t.what.to_string(),
                    ratio.map_or("-".into(), |v| format!("{v:.3}×")),
                    med.map_or(String::new(), |v| format!("{v:.2}×")),
                    range.map_or(String::new(), |(lo, hi)| format!("{lo:.2}–{hi:.2}×")),
                    format!("{}{}×", if t.at_least { "≥ " } else { "≤ " }, t.bound),
                    match ratio {
                        Some(v) if t.met(v) => "met".into(),
                        Some(_) => "MISSED".into(),
                        None => "not measured".into(),
                    },
                ]);
            }
            // No target: the boot without the toolstack's part.
            rows.push(vec![
                k.name().to_string(),
                "xl create returned -> first 200".to_string(),
                r.after_create.map_or("-".into(), |v| format!("{v:.3}×")),
                String::new(),
                String::new(),
                "(no target)".to_string(),
                String::new(),
            ]);
            rows.push(vec![
                k.name().to_string(),
                "image size".to_string(),
                r.image.map_or("-".into(), |v| format!("{v:.3}×")),
                String::new(),
                String::new(),
                "(no target)".to_string(),
                String::new(),
            ]);
        }
        if !rows.is_empty() {
            let header = [
                "guest",
                "ratio to nginx",
                "value",
                "median",
                "range",
                "target",
                "",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            table(
                "Ratios to the nginx guest (value: geometric mean over file × mode; also their median and range)",
                header,
                rows,
            );
        }
        for g in &self.guests {
            if let Some(why) = &g.failure {
                let _ = writeln!(out, "{}: {why}", g.kind.name());
            }
        }
        out
    }

    /// The run as a JSON document.
    pub fn json(&self) -> String {
        let mut j = Json::default();
        j.open('{');
        j.key("suite");
        j.string("xen");
        j.key("context");
        j.open('{');
        for (k, v) in &self.context {
            j.key(k);
            j.string(v);
        }
        j.close('}');
        j.key("guests");
        j.open('[');
        for g in &self.guests {
            j.open('{');
            j.key("name");
            j.string(g.kind.name());
            j.key("ok");
            j.raw(if g.failure.is_none() { "true" } else { "false" });
            j.key("failure");
            match &g.failure {
                Some(f) => j.string(f),
                None => j.raw("null"),
            }
            j.key("image");
            j.open('{');
            for (n, b) in &g.image {
                j.key(n);
                j.number(*b as f64);
            }
            j.close('}');
            j.key("image_bytes");
            j.opt(g.image_bytes().map(|b| b as f64));
            j.key("boots");
            j.open('[');
            for b in &g.boots {
                j.open('{');
                j.key("xl_create_ms");
                j.opt(b.xl_create_ms);
                j.key("create_to_first_line_ms");
                j.opt(b.first_line_ms);
                j.key("create_to_first_200_ms");
                j.number(b.first_200_ms);
                j.close('}');
            }
            j.close(']');
            j.key("boot_ms_median");
            j.opt(g.boot_ms());
            j.key("after_create_ms_median");
            j.opt(g.after_create_ms());
            j.key("uptime_serving_s");
            j.opt(g.uptime_serving_s);
            j.key("min_memory_mb");
            j.opt(g.min_memory_mb);
            j.key("max_failed_memory_mb");
            j.opt(g.max_failed_memory_mb);
            j.key("bisection");
            j.open('[');
            for (mb, ok) in &g.bisection {
                j.open('{');
                j.key("memory_mb");
                j.number(*mb);
                j.key("serves");
                j.raw(if *ok { "true" } else { "false" });
                j.close('}');
            }
            j.close(']');
            j.key("loads");
            j.open('[');
            for l in &g.loads {
                j.open('{');
                j.key("file");
                j.string(&l.file);
                j.key("mode");
                j.string(&l.mode);
                j.key("requests");
                j.number(l.requests);
                j.key("bytes");
                j.number(l.bytes);
                j.key("answer_bytes");
                j.opt(l.answer_bytes);
                j.key("answers");
                j.number(l.answers());
                j.key("duration_us");
                j.number(l.duration_us);
                j.key("requests_per_s");
                j.number(l.rps());
                j.key("errors");
                j.number(l.errors);
                j.key("p50_us");
                j.number(l.p50_us);
                j.key("p99_us");
                j.number(l.p99_us);
                j.key("guest_cpu_ns");
                j.number(l.guest_cpu_ns);
                j.key("guest_cpu_per_request_ns");
                j.opt(l.cpu_per_request_ns());
                j.key("dom0_cpu_ns");
                j.number(l.dom0_cpu_ns);
                j.close('}');
            }
            j.close(']');
            j.key("ab");
            j.open('[');
            for a in &g.ab {
                j.open('{');
                j.key("file");
                j.string(&a.file);
                j.key("mode");
                j.string(&a.mode);
                j.key("requests_per_s");
                j.number(a.rps);
                j.key("failed");
                j.number(a.failed);
                j.close('}');
            }
            j.close(']');
            j.close('}');
        }
        j.close(']');
        j.key("ratios_to_nginx");
        j.open('{');
        for g in &self.guests {
            if g.kind == Kind::Nginx {
                continue;
            }
            let Some(r) = self.ratios(g.kind) else {
                continue;
            };
            j.key(g.kind.name());
            j.open('{');
            j.key("requests_per_s");
            j.opt(r.rps);
            j.key("requests_per_s_median");
            j.opt(r.rps_median);
            j.key("cpu_per_request");
            j.opt(r.cpu);
            j.key("cpu_per_request_median");
            j.opt(r.cpu_median);
            j.key("create_to_first_200");
            j.opt(r.boot);
            j.key("create_returned_to_first_200");
            j.opt(r.after_create);
            j.key("smallest_memory");
            j.opt(r.memory);
            j.key("image_bytes");
            j.opt(r.image);
            j.key("targets");
            j.open('[');
            for t in TARGETS {
                j.open('{');
                j.key("what");
                j.string(t.what);
                j.key("bound");
                j.number(t.bound);
                j.key("at_least");
                j.raw(if t.at_least { "true" } else { "false" });
                j.key("ratio");
                let v = t.ratio(&r);
                j.opt(v);
                j.key("met");
                j.raw(match v {
                    Some(v) if t.met(v) => "true",
                    Some(_) => "false",
                    None => "null",
                });
                j.close('}');
            }
            j.close(']');
            j.close('}');
        }
        j.close('}');
        j.close('}');
        j.out.push('\n');
        j.out
    }
}

/// A number for people, about three significant digits and no exponent:
/// 123456.7 → "123457", 12.345 → "12.3", 0.01234 → "0.0123".
pub fn fmt_sig(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        let digits = (-a.log10().floor()) as usize + 2;
        format!("{v:.digits$}")
    }
}

/// `12.3 KiB`, `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    }
}

/// A small JSON writer: objects, arrays, strings, numbers (non-finite
/// numbers become null).
#[derive(Debug, Default)]
struct Json {
    out: String,
    /// Per open container: whether it has a member yet.
    first: Vec<bool>,
    /// A key was just written; the value follows without a comma.
    after_key: bool,
}

impl Json {
    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
        }
    }
    fn open(&mut self, c: char) {
        self.sep();
        self.out.push(c);
        self.first.push(true);
    }
    fn close(&mut self, c: char) {
        self.first.pop();
        self.out.push(c);
    }
    fn key(&mut self, k: &str) {
        self.sep();
        self.push_string(k);
        self.out.push(':');
        self.after_key = true;
    }
    fn string(&mut self, s: &str) {
        self.sep();
        self.push_string(s);
    }
    fn number(&mut self, v: f64) {
        if v.is_finite() {
            self.raw(&format!("{v}"));
        } else {
            self.raw("null");
        }
    }
    fn opt(&mut self, v: Option<f64>) {
        match v {
            Some(v) => self.number(v),
            None => self.raw("null"),
        }
    }
    fn raw(&mut self, s: &str) {
        self.sep();
        self.out.push_str(s);
    }
    fn push_string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn fig(name: &str, value: f64) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit: "x".into(),
        }
    }

    fn sample(kind: Kind, rps_scale: f64, cpu_ns: f64) -> Vec<Figure> {
        let s = kind.scenario();
        vec![
            fig(&format!("{s}.4k.ka16.requests"), 1000.0 * rps_scale),
            fig(&format!("{s}.4k.ka16.duration_us"), 2_000_000.0),
            fig(&format!("{s}.4k.ka16.errors"), 0.0),
            fig(&format!("{s}.4k.ka16.p50_us"), 500.0),
            fig(&format!("{s}.4k.ka16.p99_us"), 9000.0),
            fig(
                &format!("{s}.4k.ka16.guest_cpu_ns"),
                cpu_ns * 1000.0 * rps_scale,
            ),
            fig(&format!("{s}.4k.ka16.dom0_cpu_ns"), 1e9),
            fig(&format!("{s}.4k.ab-ka16.rps"), 450.0 * rps_scale),
            fig(
                &format!("{s}.boot1.create_to_first_200_ms"),
                100.0 / rps_scale,
            ),
            fig(&format!("{s}.boot1.xl_create_ms"), 50.0),
            fig(
                &format!("{s}.boot2.create_to_first_200_ms"),
                300.0 / rps_scale,
            ),
            fig(&format!("{s}.bisect.m128"), 1.0),
            fig(&format!("{s}.bisect.m64"), 0.0),
            fig(&format!("{s}.min_memory_mb"), 128.0 / rps_scale),
            fig(&format!("{s}.max_failed_memory_mb"), 64.0),
        ]
    }

    fn run() -> Run {
        let mut figures = sample(Kind::Ringlet, 4.0, 1000.0);
        figures.extend(sample(Kind::Nginx, 1.0, 4000.0));
        // Another guest's figures never leak into this one's.
        figures.push(fig("bench-epoll.4k.ka16.requests", 7.0));
        let ok = Outcome::Ok;
        let guests = vec![
            Guest::from_figures(Kind::Ringlet, Some(&ok), &figures),
            Guest::from_figures(Kind::Nginx, Some(&ok), &figures),
        ];
        Run {
            guests,
            context: vec![("machine".into(), "test \"box\"".into())],
        }
    }

    #[test]
    fn figures_become_loads_boots_and_bisection() {
        let r = run();
        let g = r.guest(Kind::Nginx).unwrap();
        assert_eq!(g.loads.len(), 1);
        let l = &g.loads[0];
        assert_eq!((l.file.as_str(), l.mode.as_str()), ("4k", "ka16"));
        assert_eq!(l.rps(), 500.0);
        assert_eq!(l.cpu_per_request_ns(), Some(4000.0));
        assert_eq!(g.boots.len(), 2);
        assert_eq!(g.boot_ms(), Some(200.0));
        assert_eq!(g.bisection, vec![(128.0, true), (64.0, false)]);
        assert_eq!(g.ab.len(), 1);
        assert_eq!(g.failure, None);
    }

    #[test]
    fn answers_count_partial_bytes() {
        let figures = vec![
            fig("bench-nginx.1m.ka64.requests", 0.0),
            fig("bench-nginx.1m.ka64.bytes", 3.0 * (1048576.0 + 200.0)),
            fig("bench-nginx.1m.ka64.duration_us", 3e6),
            fig("bench-nginx.1m.ka64.guest_cpu_ns", 6e9),
            fig("bench-nginx.1m.head_bytes", 200.0),
            fig("bench-nginx.1m.head_close_bytes", 219.0),
            fig("bench-nginx.1m.close16.requests", 2.0),
            fig("bench-nginx.1m.close16.bytes", 2.0 * (1048576.0 + 219.0)),
            fig("bench-nginx.1m.close16.duration_us", 1e6),
        ];
        let g = Guest::from_figures(Kind::Nginx, Some(&Outcome::Ok), &figures);
        let ka = g.load("1m", "ka64").unwrap();
        assert_eq!(ka.answers(), 3.0);
        assert_eq!(ka.rps(), 1.0);
        assert_eq!(ka.cpu_per_request_ns(), Some(2e9));
        let close = g.load("1m", "close16").unwrap();
        assert_eq!(close.answer_bytes, Some(1048576.0 + 219.0));
        assert_eq!(close.rps(), 2.0);
        // Never fewer answers than wrk counted whole.
        let mut short = close.clone();
        short.bytes = 10.0;
        assert_eq!(short.answers(), 2.0);
    }

    #[test]
    fn ratios_and_targets() {
        let r = run();
        let ratios = r.ratios(Kind::Ringlet).unwrap();
        assert_eq!(ratios.rps, Some(4.0));
        assert_eq!(ratios.cpu, Some(0.25));
        assert_eq!(ratios.boot, Some(0.25));
        assert_eq!(ratios.memory, Some(0.25));
        assert!(TARGETS[0].met(4.0));
        assert!(TARGETS[1].met(0.25));
        assert!(!TARGETS[2].met(0.25));
        assert!(!TARGETS[3].met(0.25));
        let text = r.text();
        assert!(text.contains("4.00×"), "{text}");
        assert!(text.contains("MISSED"), "{text}");
        let md = r.markdown();
        assert!(md.contains("| file | mode |"), "{md}");
    }

    #[test]
    fn json_is_well_formed_enough() {
        let j = run().json();
        assert!(j.starts_with("{\"suite\":\"xen\",\"context\":{\"machine\":\"test \\\"box\\\"\"}"));
        assert!(j.contains("\"requests_per_s\":500,"), "{j}");
        assert!(j.contains("\"ratios_to_nginx\":{\"ringlet\":{\"requests_per_s\":4,"));
        // Brackets balance outside strings.
        let mut depth = 0i32;
        let mut in_string = false;
        let mut escaped = false;
        for c in j.chars() {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
        }
        assert_eq!(depth, 0);
        assert!(!j.contains(",,") && !j.contains(",}") && !j.contains(",]"));
    }

    #[test]
    fn helpers() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert!((geomean(&[1.0, 4.0]).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(geomean(&[]), None);
        assert_eq!(fmt_sig(123456.7), "123457");
        assert_eq!(fmt_sig(12.34), "12.3");
        assert_eq!(fmt_sig(0.01234), "0.0123");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
