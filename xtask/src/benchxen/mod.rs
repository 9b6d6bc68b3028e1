//! `cargo xtask bench xen`: the Ringlet httpd domU against a Linux PVH domU
//! running nginx and one running bench/epoll-httpd, side by side on one Xen
//! (inside QEMU here, or the machine's own with xl).
//!
//! The run is one e2e run (xtask/src/e2e/): one Xen boot, one scenario per
//! guest (`bench-ringlet`, `bench-nginx`, `bench-epoll`, script
//! `bench-guest.sh`), then `bench-load` (`bench-load.sh`); the functions
//! they share are in `bench-lib.sh`, the settings in each scenario's
//! `bench.env`. Every guest has 1 vCPU and the same memory. In dom0:
//! 1. per guest, alone: `xl create` → first HTTP 200 (polled only after
//!    `xl create` returns), a few times; the site checked byte for byte;
//!    then the smallest `memory=` that still serves the site, by a bounded
//!    search;
//! 2. all guests up at once, each at its own address, and the load runs
//!    interleaved (one guest loaded at a time, the order rotating): wrk
//!    (`bench.lua`) on each file (13 B, 4 KiB, 64 KiB, 1 MiB) in each mode
//!    (keep-alive with 1, 16, 64 connections; 16 connections pipelined 16
//!    deep; churn with `Connection: close`), with Xen's CPU accounting of
//!    the guest and dom0 around each run (`bench-dom0.c`); ab cross-checks
//!    two of them. Interleaving keeps a change in the host's speed (other
//!    work on the machine) from favouring whichever guest ran first.
//!
//! The figures come back as `RINGLET-FIGURE` lines; [`results`] turns them
//! into the table (printed, and as Markdown), target/bench/xen.json, and
//! [`chart`] into target/bench/xen.png. docs/benchmarks.md, section "Xen",
//! tells the method for people.

pub mod chart;
pub mod linux;
pub mod results;
pub mod site;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::e2e::{self, Guest, Mode, Options, Scenario};
use crate::{deps, root, Error};
use linux::Server;
use results::{Kind, Run, MODES};

const CHECK_GUEST: &str = concat!(include_str!("bench-lib.sh"), include_str!("bench-guest.sh"));
const CHECK_LOAD: &str = concat!(include_str!("bench-lib.sh"), include_str!("bench-load.sh"));
/// The load scenario's name.
const LOAD_SCENARIO: &str = "bench-load";
const LUA: &str = include_str!("bench.lua");
const LINUX_CFG: &str = include_str!("linux.cfg");
const RINGLET_CFG: &str = include_str!("ringlet.cfg");
/// The guests' hotplug scripts (`script=` in the configs): see their heads.
const HOTPLUG_VIF: &str = include_str!("hotplug-vif.sh");
const HOTPLUG_BLOCK: &str = include_str!("hotplug-block.sh");
const DOM0_TOOL: &str = "xtask/src/benchxen/bench-dom0.c";
/// The Ringlet httpd appliance's package.
const RINGLET_PACKAGE: &str = "ringlet-httpd";
/// The guests' addresses and MACs during the load runs (all up at once;
/// alone, each is 10.0.0.2); dom0 is 10.0.0.1 on the bridge and the
/// gateway.
fn load_address(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Ringlet => ("10.0.0.11", "00:16:3e:00:00:11"),
        Kind::Nginx => ("10.0.0.12", "00:16:3e:00:00:12"),
        Kind::Epoll => ("10.0.0.13", "00:16:3e:00:00:13"),
    }
}
/// Memory of every guest for the boots and the load runs, and the top of
/// the bisection, MB.
const MEMORY_MB: u32 = 256;
/// Host packages: the dom0 tool (gcc, libxen-dev), the Linux guests
/// (cpio, gzip, dpkg-deb comes with dpkg), the chart's font.
const HOST_PACKAGES: &[&str] = &[
    "gcc",
    "libc6-dev",
    "libxen-dev",
    "cpio",
    "gzip",
    "tar",
    "fonts-dejavu-core",
];

const USAGE: &str = "\
usage: cargo xtask bench xen [--quick] [--only GUEST,...] [--qemu | --xl] [--verbose] [--out DIR]
       cargo xtask bench xen --report target/e2e/<run> [--quick] [--out DIR]

Boots Xen once and measures the Ringlet httpd, nginx and epoll-httpd domUs
one after the other: load from dom0 with wrk (and ab), CPU per request from
Xen's accounting, xl create -> first 200, image size, smallest memory.
  --quick     1 s runs, one boot, a shorter bisection, no ab (checks it works)
  --only L    guests to run: ringlet, nginx, epoll (comma-separated)
  --qemu      Xen inside QEMU even on a Xen host; --xl the machine's own xl
  --verbose   echo the whole console
  --out DIR   where xen.json, xen.md and xen.png go (default target/bench)
  --report D  no run: the tables, JSON and chart again from run D's summary.txt
";

/// How much a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Seconds per load run.
    pub duration_s: u32,
    /// Measured boots per guest.
    pub boots: u32,
    /// Bound on the bisection's boots.
    pub bisect_steps: u32,
    /// Cross-check with ab.
    pub ab: bool,
    /// Bound on the first boot, seconds.
    pub boot_timeout_s: u32,
}

impl Settings {
    /// The full run (about 15-20 minutes under emulation).
    pub const FULL: Settings = Settings {
        duration_s: 3,
        boots: 2,
        bisect_steps: 6,
        ab: true,
        boot_timeout_s: 240,
    };
    /// `--quick`: proves everything works.
    pub const QUICK: Settings = Settings {
        duration_s: 1,
        boots: 1,
        bisect_steps: 3,
        ab: false,
        boot_timeout_s: 240,
    };

    /// A bound on one guest's scenario, seconds: the boots and the memory
    /// search's boots with their checks.
    fn guest_timeout_s(&self) -> u32 {
        let boots = self.boots * (self.boot_timeout_s + 60);
        let search = self.bisect_steps * (2 * self.boot_timeout_s + 120);
        120 + boots + search
    }

    /// A bound on the load scenario with `guests` guests, seconds: their
    /// boots, 20 runs each with their overhead, ab.
    fn load_timeout_s(&self, guests: u32) -> u32 {
        let ab = if self.ab {
            2 * (self.duration_s + 40)
        } else {
            0
        };
        let per_guest = self.boot_timeout_s + 120 + 20 * (self.duration_s + 15) + ab;
        120 + guests * per_guest
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
/// The guests of the load scenario (set once, before the run).
static LOAD_GUESTS: OnceLock<Vec<Kind>> = OnceLock::new();

fn settings() -> Settings {
    *SETTINGS.get_or_init(|| Settings::FULL)
}

/// `cargo xtask bench xen ...`.
pub fn command(args: &[String]) -> Result<(), Error> {
    let mut quick = false;
    let mut only: Option<Vec<Kind>> = None;
    let mut options = Options {
        mode: Mode::Auto,
        verbose: false,
    };
    let mut out_dir = root().join("target/bench");
    let mut report = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--qemu" => options.mode = Mode::Qemu,
            "--xl" => options.mode = Mode::Xl,
            "--verbose" | "-v" => options.verbose = true,
            "--only" => {
                let list = it.next().ok_or("--only needs a list")?;
                let kinds = list
                    .split(',')
                    .map(|n| Kind::parse(n).ok_or_else(|| format!("no guest {n:?}")))
                    .collect::<Result<Vec<_>, _>>()?;
                only = Some(kinds);
            }
            "--out" => out_dir = PathBuf::from(it.next().ok_or("--out needs a directory")?),
            "--report" => {
                report = Some(PathBuf::from(
                    it.next().ok_or("--report needs a run directory")?,
                ))
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let chosen = SETTINGS.get_or_init(|| {
        if quick {
            Settings::QUICK
        } else {
            Settings::FULL
        }
    });
    let settings = *chosen;
    deps::apt(HOST_PACKAGES)?;
    if let Some(dir) = report {
        return report_again(&dir, &settings, &out_dir);
    }

    let mut kinds = only.unwrap_or_else(|| Kind::ALL.to_vec());
    kinds.sort();
    kinds.dedup();
    let mut notes = Vec::new();
    if kinds.contains(&Kind::Ringlet) && !ringlet_available() {
        notes.push(format!(
            "ringlet: not run: no {RINGLET_PACKAGE} binary in the workspace yet (apps/httpd)"
        ));
        kinds.retain(|k| *k != Kind::Ringlet);
    }
    if kinds.is_empty() {
        return Err(notes.join("\n"));
    }
    // The Linux guests are built before the run, so a failure says so here
    // rather than as a scenario failure.
    if kinds.iter().any(|k| *k != Kind::Ringlet) {
        linux::kit()?;
    }
    let mut scenarios: Vec<&'static Scenario> = kinds
        .iter()
        .map(|k| &*Box::leak(Box::new(scenario(*k, &settings))))
        .collect();
    LOAD_GUESTS
        .set(kinds.clone())
        .map_err(|_| "bench xen runs once per process")?;
    scenarios.push(Box::leak(Box::new(load_scenario(
        &settings,
        kinds.len() as u32,
    ))));
    println!(
        "bench xen: {} on one Xen boot; {} s per load run, {} boot(s), memory {MEMORY_MB} MB, 1 vCPU",
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
        settings.duration_s,
        settings.boots,
    );
    let summary = e2e::run(&scenarios, options);
    let results: Vec<(String, e2e::Outcome)> = summary
        .results
        .iter()
        .map(|(n, o)| (n.to_string(), o.clone()))
        .collect();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    finish(
        &kinds,
        &results,
        &summary.figures,
        &summary.run_dir,
        &date,
        &settings,
        notes,
        &out_dir,
    )
}

/// `--report DIR`: the table, JSON and chart again from a run's
/// summary.txt (its `e2e <scenario>: ...` lines and figures).
fn report_again(dir: &Path, settings: &Settings, out_dir: &Path) -> Result<(), Error> {
    let path = dir.join("summary.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (results, figures) = parse_summary(&text);
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| results.iter().any(|(n, _)| n == k.scenario()))
        .collect();
    if kinds.is_empty() {
        return Err(format!("{}: no bench xen scenario in it", path.display()));
    }
    // The run directory is named after its UTC start, YYYYmmdd-HHMMSS.
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let date = match (
        name.get(0..4),
        name.get(4..6),
        name.get(6..8),
        name.get(9..11),
        name.get(11..13),
    ) {
        (Some(y), Some(m), Some(d), Some(hh), Some(mm)) => format!("{y}-{m}-{d} {hh}:{mm} UTC"),
        _ => name.clone(),
    };
    finish(
        &kinds,
        &results,
        &figures,
        dir,
        &date,
        settings,
        vec![format!(
            "(rendered again from {}; the commit above is the tree's at rendering)",
            path.display()
        )],
        out_dir,
    )
}

/// Scenario results and figures from a summary.txt.
fn parse_summary(text: &str) -> (Vec<(String, e2e::Outcome)>, Vec<e2e::Figure>) {
    let mut results = Vec::new();
    let mut figures = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("e2e ") {
            if let Some((name, verdict)) = rest.split_once(": ") {
                let outcome = match verdict.strip_prefix("FAILED: ") {
                    Some(why) => e2e::Outcome::Failed(why.to_string()),
                    None if verdict == "ok" => e2e::Outcome::Ok,
                    None => e2e::Outcome::Failed(verdict.to_string()),
                };
                results.push((name.to_string(), outcome));
            }
        } else if let Some(e2e::report::Event::Figure(f)) = e2e::report::parse_line(line) {
            figures.push(f);
        }
    }
    (results, figures)
}

/// Turns a run's results and figures into the printed tables,
/// `xen.json`, `xen.md` and `xen.png` in `out_dir`.
#[allow(clippy::too_many_arguments)]
fn finish(
    kinds: &[Kind],
    results: &[(String, e2e::Outcome)],
    figures: &[e2e::Figure],
    run_dir: &Path,
    date: &str,
    settings: &Settings,
    mut notes: Vec<String>,
    out_dir: &Path,
) -> Result<(), Error> {
    let outcome_of = |name: &str| {
        results
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.clone())
    };
    let load_outcome = outcome_of(LOAD_SCENARIO);
    if let Some(e2e::Outcome::Failed(why)) = &load_outcome {
        notes.push(format!("load runs: {why}"));
    }
    let mut guests = Vec::new();
    for kind in kinds {
        let outcome = outcome_of(kind.scenario());
        let mut g = results::Guest::from_figures(*kind, outcome.as_ref(), figures);
        g.image = image_parts(*kind, figures);
        guests.push(g);
    }
    let mode = if figures.iter().any(|f| f.name == "run.qemu_boot_to_exit_s") {
        "Xen inside QEMU (TCG, no KVM)"
    } else {
        "the machine's own Xen (xl)"
    };
    let run = Run {
        guests,
        context: context(mode, settings, run_dir, date),
    };

    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let header: String = run
        .context
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    println!("\n{header}");
    print!("{}", run.text());
    for n in &notes {
        println!("{n}");
    }
    let json = out_dir.join("xen.json");
    std::fs::write(&json, run.json()).map_err(|e| format!("{}: {e}", json.display()))?;
    let md = out_dir.join("xen.md");
    let md_text = format!(
        "{}\n{}{}",
        run.context
            .iter()
            .map(|(k, v)| format!("- {k}: {v}\n"))
            .collect::<String>(),
        run.markdown(),
        notes.iter().map(|n| format!("{n}\n")).collect::<String>()
    );
    std::fs::write(&md, md_text).map_err(|e| format!("{}: {e}", md.display()))?;
    let png = out_dir.join("xen.png");
    let subtitle = run
        .context
        .iter()
        .filter(|(k, _)| k == "machine" || k == "date" || k == "run")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    match chart::draw(&run, &png, &subtitle) {
        Ok(()) => println!("chart: {}", png.display()),
        Err(e) => println!("no chart: {e}"),
    }
    println!("json: {}\nmarkdown: {}", json.display(), md.display());
    println!("logs: {}", run_dir.display());
    let mut failed: Vec<&str> = run
        .guests
        .iter()
        .filter(|g| g.failure.is_some())
        .map(|g| g.kind.name())
        .collect();
    if !matches!(load_outcome, Some(e2e::Outcome::Ok)) {
        failed.push("load");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "bench xen: {} did not finish (partial figures above)",
            failed.join(", ")
        ))
    }
}

/// Whether the workspace has the Ringlet httpd appliance to build.
fn ringlet_available() -> bool {
    let manifest = root().join("apps/httpd/Cargo.toml");
    let members = std::fs::read_to_string(root().join("Cargo.toml")).unwrap_or_default();
    manifest.is_file() && members.contains("\"apps/httpd\"")
}

fn scenario(kind: Kind, settings: &Settings) -> Scenario {
    let (guest, config, prepare): (Guest, &'static str, e2e::scenario::Prepare) = match kind {
        Kind::Ringlet => (Guest::App(RINGLET_PACKAGE), RINGLET_CFG, prepare_ringlet),
        Kind::Nginx => (Guest::Build(linux_kernel), LINUX_CFG, prepare_nginx),
        Kind::Epoll => (Guest::Build(linux_kernel), LINUX_CFG, prepare_epoll),
    };
    Scenario {
        name: kind.scenario(),
        about: "bench xen: one guest's boots and smallest memory",
        guest,
        config,
        check: CHECK_GUEST,
        timeout_s: settings.guest_timeout_s(),
        prepare: Some(prepare),
        default: false,
    }
}

/// The load scenario: its guests' images and configs are those the
/// guests' own scenarios staged.
fn load_scenario(settings: &Settings, guests: u32) -> Scenario {
    Scenario {
        name: LOAD_SCENARIO,
        about: "bench xen: the load runs, all guests up, interleaved",
        guest: Guest::Build(load_placeholder),
        config: "# bench-load uses the configs of the guests' own scenarios\n",
        check: CHECK_LOAD,
        timeout_s: settings.load_timeout_s(guests),
        prepare: Some(prepare_load),
        default: false,
    }
}

fn linux_kernel(_scratch: &Path) -> Result<PathBuf, Error> {
    Ok(linux::kit()?.vmlinuz.clone())
}

/// The load scenario boots no image of its own; e2e stages this note as
/// its `app.elf`.
fn load_placeholder(scratch: &Path) -> Result<PathBuf, Error> {
    let p = scratch.join("none.txt");
    std::fs::write(&p, "bench-load boots the images of bench-<guest>\n")
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

fn prepare_load(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    let mut files = common_files(None, scratch)?;
    let list: String = LOAD_GUESTS
        .get()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|k| {
            let (ip, mac) = load_address(*k);
            format!("{} {ip} {mac}\n", k.name())
        })
        .collect();
    files.push(("guests.list".to_string(), 0o644, list.into_bytes()));
    Ok(files)
}

fn prepare_ringlet(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    prepare(Kind::Ringlet, scratch)
}

fn prepare_nginx(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    prepare(Kind::Nginx, scratch)
}

fn prepare_epoll(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    prepare(Kind::Epoll, scratch)
}

/// The files next to a guest in dom0: bench.env, the site (disk image and
/// copies to compare with), the wrk script, the dom0 tool, the initramfs.
fn prepare(kind: Kind, scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    let mut files = common_files(Some(kind), scratch)?;
    files.push((
        "disk.img".to_string(),
        0o644,
        site::image().map_err(|e| e.to_string())?,
    ));
    let server = match kind {
        Kind::Ringlet => None,
        Kind::Nginx => Some(Server::Nginx),
        Kind::Epoll => Some(Server::Epoll),
    };
    if let Some(server) = server {
        let initrd = linux::kit()?.initrd(server);
        let bytes = std::fs::read(initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
        files.push(("initrd.gz".to_string(), 0o644, bytes));
    }
    Ok(files)
}

/// What every bench scenario has: bench.env, the wrk script, the dom0
/// tool, copies of the site's files to compare answers with.
fn common_files(kind: Option<Kind>, scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    let s = settings();
    let mut files = vec![
        (
            "bench.env".to_string(),
            0o644,
            bench_env(kind, &s).into_bytes(),
        ),
        ("bench.lua".to_string(), 0o644, LUA.as_bytes().to_vec()),
        ("bench-dom0".to_string(), 0o755, dom0_tool(scratch)?),
        (
            "hotplug-vif".to_string(),
            0o755,
            HOTPLUG_VIF.as_bytes().to_vec(),
        ),
        (
            "hotplug-block".to_string(),
            0o755,
            HOTPLUG_BLOCK.as_bytes().to_vec(),
        ),
    ];
    for f in &site::FILES {
        files.push((format!("site-{}", f.name), 0o644, site::content(f)));
    }
    Ok(files)
}

/// A scenario's settings for bench-lib.sh, as sh assignments; `kind` is
/// the guest of a guest's own scenario (none for the load scenario).
fn bench_env(kind: Option<Kind>, s: &Settings) -> String {
    let files: Vec<String> = site::FILES
        .iter()
        .map(|f| format!("{}:{}", f.name, f.key))
        .collect();
    let mut vars = vec![
        ("BENCH_MEMORY_MB", MEMORY_MB.to_string()),
        ("BENCH_FILES", files.join(" ")),
        ("BENCH_MODES", MODES.join(" ")),
        ("BENCH_DURATION_S", s.duration_s.to_string()),
        ("BENCH_BOOTS", s.boots.to_string()),
        ("BENCH_AB", u8::from(s.ab).to_string()),
        ("BENCH_BISECT_STEPS", s.bisect_steps.to_string()),
        ("BENCH_BOOT_TIMEOUT_S", s.boot_timeout_s.to_string()),
    ];
    if let Some(kind) = kind {
        vars.push(("BENCH_KIND", kind.name().to_string()));
    }
    vars.iter()
        .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', "'\\''")))
        .collect()
}

/// The dom0 tool, compiled once per process against libxenctrl.
fn dom0_tool(scratch: &Path) -> Result<Vec<u8>, Error> {
    static TOOL: OnceLock<Result<Vec<u8>, Error>> = OnceLock::new();
    TOOL.get_or_init(|| {
        let out = scratch.join("bench-dom0");
        let output = Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&out)
            .arg(root().join(DOM0_TOOL))
            .arg("-lxenctrl")
            .output()
            .map_err(|e| format!("cannot run gcc: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "gcc {DOM0_TOOL} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))
    })
    .clone()
}

/// What each guest boots from, with sizes: the staged (stripped) ELF of
/// the appliance; Debian's bzImage and the initramfs for Linux.
fn image_parts(kind: Kind, figures: &[e2e::Figure]) -> Vec<(String, u64)> {
    match kind {
        Kind::Ringlet => figures
            .iter()
            .find(|f| f.name == format!("{}.image_bytes", kind.scenario()))
            .map(|f| vec![("ELF".to_string(), f.value as u64)])
            .unwrap_or_default(),
        Kind::Nginx | Kind::Epoll => {
            let Ok(kit) = linux::kit() else {
                return Vec::new();
            };
            let server = if kind == Kind::Nginx {
                Server::Nginx
            } else {
                Server::Epoll
            };
            let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            vec![
                ("bzImage".to_string(), size(&kit.vmlinuz)),
                ("initramfs".to_string(), size(kit.initrd(server))),
            ]
        }
    }
}

/// The run's context for the table header and the JSON.
fn context(mode: &str, s: &Settings, run_dir: &Path, date: &str) -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let kb: f64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.replace("QEMU emulator version ", "QEMU "))
        })
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut linux = String::new();
    if let Ok(kit) = linux::kit() {
        for l in kit.versions.lines() {
            let mut w = l.split_whitespace();
            if let (Some(p), Some(v)) = (w.next(), w.next()) {
                if p.starts_with("linux-image") || p == "nginx" {
                    linux.push_str(&format!("{p} {v}, "));
                }
            }
        }
    }
    vec![
        (
            "machine".into(),
            format!("{cpu}, {cores} cores, {mem_gib:.0} GiB"),
        ),
        (
            "run".into(),
            format!(
                "{mode}{}",
                if qemu.is_empty() || mode.contains("xl") {
                    String::new()
                } else {
                    format!(", {qemu}")
                }
            ),
        ),
        ("date".into(), date.to_string()),
        ("commit".into(), commit),
        (
            "guests".into(),
            format!(
                "1 vCPU, {MEMORY_MB} MB each, one after the other; {}Debian 12",
                linux
            ),
        ),
        (
            "load".into(),
            format!(
                "wrk -t1 from dom0 (1 vCPU), {} s per run{}",
                s.duration_s,
                if s.ab { ", ab cross-check" } else { "" }
            ),
        ),
        ("logs".into(), run_dir.display().to_string()),
    ]
}

#[cfg(test)]
mod epoll_test;

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn env_quotes_and_names_every_setting() {
        let env = bench_env(Some(Kind::Nginx), &Settings::FULL);
        for var in [
            "BENCH_KIND='nginx'",
            "BENCH_FILES='hello.txt:13b 4k.bin:4k 64k.bin:64k 1m.bin:1m'",
            "BENCH_MODES='ka1 ka16 ka64 pipe16 close16'",
        ] {
            assert!(env.contains(var), "{var} not in {env}");
        }
        assert!(!bench_env(None, &Settings::FULL).contains("BENCH_KIND"));
        // The scripts read every variable bench.env sets.
        for line in env.lines() {
            let name = line.split('=').next().unwrap();
            let read =
                |s: &str| s.contains(&format!("${name}")) || s.contains(&format!("${{{name}"));
            assert!(
                read(CHECK_GUEST) || read(CHECK_LOAD),
                "no script reads {name}"
            );
        }
    }

    #[test]
    fn summaries_parse_back() {
        let text = "e2e bench-nginx: ok\n\
                    e2e bench-load: FAILED: ringlet: wrk 13b ka64 gave no result\n\
                    RINGLET-FIGURE bench-nginx.boot1.create_to_first_200_ms 26146.219 ms\n\
                    RINGLET-FIGURE bad name 1 ms\n";
        let (results, figures) = parse_summary(text);
        assert_eq!(
            results,
            vec![
                ("bench-nginx".to_string(), e2e::Outcome::Ok),
                (
                    "bench-load".to_string(),
                    e2e::Outcome::Failed("ringlet: wrk 13b ka64 gave no result".into())
                ),
            ]
        );
        assert_eq!(figures.len(), 1);
        assert_eq!(figures[0].value, 26146.219);
    }

    #[test]
    fn configs_keep_the_e2e_rules() {
        for cfg in [LINUX_CFG, RINGLET_CFG] {
            for needle in [
                "type = \"pvh\"",
                "tsc_mode = \"native\"",
                "name = \"@NAME@\"",
                "kernel = \"@KERNEL@\"",
                "on_crash = \"preserve\"",
                "memory = @MEMORY@",
                "vcpus = 1",
                "mac=@MAC@",
                "target=@DIR@/disk.img",
                "script=@DIR@/hotplug-vif",
                "script=@DIR@/hotplug-block",
            ] {
                assert!(cfg.contains(needle), "no {needle}");
            }
        }
    }

    #[test]
    fn timeouts_cover_the_work() {
        // A full scenario must fit its bound with room for slow boots.
        let full = Settings::FULL.guest_timeout_s();
        assert!(full > 2 * 240 + 6 * 240, "{full}");
        assert!(Settings::QUICK.guest_timeout_s() < full);
        let load = Settings::FULL.load_timeout_s(3);
        assert!(load > 3 * (240 + 20 * 3 + 2 * 3), "{load}");
    }
}
