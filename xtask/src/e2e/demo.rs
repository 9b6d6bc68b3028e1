//! `cargo xtask demo`: the httpd appliance (apps/httpd) serving the demo
//! site on real Xen, reachable from this machine at
//! `http://localhost:8080/` until Ctrl-C.
//!
//! What runs where (docs/real-xen.md, section "The demo", tells it for
//! people):
//! 1. Here: the appliance is built (`--release`, x86_64-unknown-none), the
//!    site image packed (`scenarios/httpd.rs`: apps/httpd/site/ plus a
//!    1 MiB `big.bin`), the port forward `ringlet-forward` (demo/forward.c)
//!    and the suite's dom0 helper compiled.
//! 2. Xen: inside QEMU with the suite's cached dom0 (or this machine's own
//!    `xl` when it is a Xen dom0). dom0's runner runs `demo/demo.sh` as a
//!    scenario named `demo`: `xl create` of the appliance on the bridge
//!    (10.0.0.2/24, site on xvda), then the forward.
//! 3. The path of a request inside QEMU: host 127.0.0.1:8080 → QEMU's user
//!    network (`hostfwd`, e1000 NIC) → dom0 eth0 10.0.2.15:8080 →
//!    ringlet-forward → 10.0.0.2:80 over xenbr0 and netback → the
//!    appliance. With xl: host 127.0.0.1:8080 → ringlet-forward → the same.
//! 4. Stopping: SIGINT or SIGTERM (or `--for` running out) sends `stop` to
//!    dom0 (QEMU's stdin, which Xen hands to dom0's console; a FIFO with
//!    xl); demo.sh runs `xl shutdown` and waits for a clean power-off; the
//!    runner reports, dom0 ends QEMU. A second signal kills QEMU at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::report::{Event, Outcome, Report};
use super::scenario::httpd as site;
use super::scenario::{Guest, Scenario};
use super::{cpio, dom0, guest, native, qemu, run_env, stage_scenario, Staged};
use super::{INIT, LIB, QEMU_BRIDGE, QEMU_BRIDGE_ADDR, RUNNER};
use crate::{deps, root, Error};

const DEMO_SH: &str = include_str!("demo/demo.sh");
const FORWARD_C: &str = include_str!("demo/forward.c");
const HTTPD_CFG: &str = include_str!("scenarios/httpd.cfg");
/// The appliance's package.
const PACKAGE: &str = "ringlet-httpd";
/// The host port when `--port` names none.
const DEFAULT_PORT: u16 = 8080;
/// dom0's port QEMU's hostfwd delivers to.
const DOM0_PORT: u16 = 8080;
/// The appliance's command line (the bridge is 10.0.0.1/24 in dom0).
const APPLIANCE_CMDLINE: &str = "ip=10.0.0.2/24 gw=10.0.0.1 port=80";
/// The page fetched to see that the appliance serves: the site's index.html.
const PROBE: &str = "/";
/// The NIC QEMU gives dom0, and its module (in dom0::MODULES).
const NIC_MODEL: &str = "e1000";
/// Bound on `--for`.
const FOR_S_MAX: u64 = 7 * 24 * 3600;
/// The runner's bound on the demo without `--for` (it serves until
/// stopped; this only keeps every bound finite).
const UNBOUNDED_S: u64 = 30 * 24 * 3600;
/// Time for dom0's part around the serving: creating the appliance, the
/// forward, the shutdown.
const SCENARIO_SLACK_S: u64 = 300;
/// From dom0 ready to serving, at most.
const SERVING_TIMEOUT: Duration = Duration::from_secs(300);
/// From `stop` sent to the run's end, at most.
/// Generous: dom0's own waits count polls, and under a loaded emulation
/// each poll (`xl list`) can take far longer than its nominal 0.1 s.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the main loop looks at signals and deadlines.
const TICK: Duration = Duration::from_millis(200);
/// Bound on one console line kept (the console is input).
const LINE_BYTES_MAX: usize = 4096;
/// Bound on the host's check response read.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

const USAGE: &str = "\
usage: cargo xtask demo [--for SECONDS] [--port PORT] [--site DIR] [--qemu | --xl] [--verbose]

Builds the httpd appliance and the demo site, boots them on Xen (inside
QEMU, or with this machine's xl when it is a Xen dom0) and serves the site
at http://localhost:PORT/ until Ctrl-C (or SIGTERM), which shuts the
appliance down cleanly (xl shutdown) and then Xen.
  --for SECONDS  serve that long, then stop as Ctrl-C would
  --port PORT    the host port (default 8080)
  --site DIR     serve DIR instead of apps/httpd/site (it needs an index.html)
  --qemu, --xl   force Xen inside QEMU, or this machine's xl
  --verbose      echo the whole console (always kept in target/demo/<run>/)
";

/// How the demo runs.
#[derive(Debug, Clone)]
struct Options {
    mode: super::Mode,
    for_s: Option<u64>,
    port: u16,
    site: PathBuf,
    verbose: bool,
}

fn parse(args: &[String]) -> Result<Option<Options>, Error> {
    let mut o = Options {
        mode: super::Mode::Auto,
        for_s: None,
        port: DEFAULT_PORT,
        site: site::default_site_dir(),
        verbose: std::env::var_os("RINGLET_E2E_VERBOSE").is_some(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--for" => {
                let v = value("--for")?;
                let s: u64 = v
                    .parse()
                    .map_err(|_| format!("--for {v}: not a number of seconds"))?;
                if s == 0 || s > FOR_S_MAX {
                    return Err(format!("--for {s}: between 1 and {FOR_S_MAX} seconds"));
                }
                o.for_s = Some(s);
            }
            "--port" => {
                let v = value("--port")?;
                o.port = v
                    .parse()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("--port {v}: not a port"))?;
            }
            "--site" => o.site = PathBuf::from(value("--site")?),
            "--qemu" => o.mode = super::Mode::Qemu,
            "--xl" => o.mode = super::Mode::Xl,
            "--verbose" | "-v" => o.verbose = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Some(o))
}

/// `cargo xtask demo ...`.
pub fn command(args: &[String]) -> Result<(), Error> {
    let Some(options) = parse(args)? else {
        return Ok(());
    };
    signals::install()?;
    let xl = match options.mode {
        super::Mode::Qemu => false,
        super::Mode::Xl if !native::available() => {
            return Err(
                "--xl: `xl info` fails here (not a Xen dom0 with its toolstack running)".into(),
            )
        }
        super::Mode::Xl => true,
        super::Mode::Auto => native::available(),
    };
    let target = root().join("target");
    let run_dir = super::new_run_dir(&target.join("demo"));
    let build = run_dir.join("build");
    std::fs::create_dir_all(&build).map_err(|e| format!("{}: {e}", build.display()))?;
    println!(
        "demo: on {}; logs in {}",
        if xl {
            "this machine's xl"
        } else {
            "Xen inside QEMU"
        },
        run_dir.display()
    );

    deps::apt(if xl {
        &["gcc", "libc6-dev", "libxen-dev", "binutils", "tar"]
    } else {
        dom0::HOST_PACKAGES
    })?;
    port_is_free(options.port)?;

    // Everything dom0 needs, staged as the suite stages a scenario.
    println!("demo: building {PACKAGE} and the site image");
    let scratch = build.join("demo");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let site = site::build(&options.site, &scratch)?;
    let (site_files, site_tar_bytes) = (site.files.len(), site.tar.len());
    let timeout_s = options.for_s.map_or(UNBOUNDED_S, |s| s + SCENARIO_SLACK_S);
    let scenario = Scenario {
        name: "demo",
        about: "cargo xtask demo",
        guest: Guest::App(PACKAGE),
        config: HTTPD_CFG,
        check: DEMO_SH,
        timeout_s: u32::try_from(timeout_s).expect("bounded by FOR_S_MAX and UNBOUNDED_S"),
        prepare: None,
        default: false,
    };
    let mut staged = Staged::default();
    let image_bytes = stage_scenario(&scenario, &build, &mut staged)?;
    interrupted()?;
    let forward = build_forward(&build)?;
    let helper = guest::build_dom0_helper(&build)?;
    let dir = "scenarios/demo";
    staged.add(&format!("{dir}/site.tar"), 0o644, site.tar);
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    staged.add("bin/ringlet-forward", 0o755, read(&forward)?);
    staged.add("bin/ringlet-dom0", 0o755, read(&helper)?);
    staged.add("runner.sh", 0o755, RUNNER.as_bytes().to_vec());
    staged.add("lib.sh", 0o644, LIB.as_bytes().to_vec());
    staged.add(
        "scenarios.list",
        0o644,
        format!("demo {timeout_s}\n").into_bytes(),
    );
    let url = format!("http://localhost:{}/", options.port);
    let extra = APPLIANCE_CMDLINE;
    println!(
        "demo: appliance {} bytes (stripped); site {} files, {} bytes of tar",
        image_bytes, site_files, site_tar_bytes
    );
    interrupted()?;

    let runner_budget = Duration::from_secs(timeout_s) + super::RUNNER_SLACK;
    let session = if xl {
        let host = native::Host::from_env();
        let root_dir = run_dir.join("root");
        let control = root_dir.join("demo-control");
        staged.add(
            &format!("{dir}/demo.env"),
            0o644,
            run_env(&[
                ("DEMO_NIC", ""),
                ("DEMO_LISTEN", &format!("127.0.0.1:{}", options.port)),
                ("DEMO_CONTROL", &control.to_string_lossy()),
                ("DEMO_EXTRA", extra),
                ("DEMO_PROBE", PROBE),
                ("DEMO_URL", &url),
            ]),
        );
        staged.add(
            "run.env",
            0o644,
            run_env(&[
                ("E2E_MODE", "xl"),
                ("E2E_XEN", dom0::XEN),
                ("E2E_BRIDGE", &host.bridge),
                ("E2E_BRIDGE_ADDR", &host.bridge_addr),
                ("E2E_CONSOLE_DIR", &host.console_dir),
                ("E2E_WORK", &run_dir.join("work").to_string_lossy()),
                ("E2E_WATCHDOG_S", &runner_budget.as_secs().to_string()),
            ]),
        );
        staged.write_to(&root_dir)?;
        make_fifo(&control)?;
        let made_bridge = native::ensure_bridge(&host)?;
        let mut cmd = Command::new("sh");
        cmd.arg(root_dir.join("runner.sh"))
            .env("E2E_ROOT", &root_dir)
            .stdin(Stdio::null());
        let result = run(
            cmd,
            Control::Fifo(control),
            &run_dir.join("console.log"),
            &options,
            runner_budget,
            &url,
        );
        if made_bridge {
            let _ = Command::new("ip")
                .args(["link", "del", &host.bridge])
                .status();
        }
        result?
    } else {
        let dom0 = dom0::ensure(&target)?;
        interrupted()?;
        staged.add(
            &format!("{dir}/demo.env"),
            0o644,
            run_env(&[
                ("DEMO_NIC", NIC_MODEL),
                ("DEMO_LISTEN", &format!("0.0.0.0:{DOM0_PORT}")),
                ("DEMO_CONTROL", "/dev/hvc0"),
                ("DEMO_EXTRA", extra),
                ("DEMO_PROBE", PROBE),
                ("DEMO_URL", &url),
            ]),
        );
        staged.add(
            "run.env",
            0o644,
            run_env(&[
                ("E2E_MODE", "qemu"),
                ("E2E_XEN", dom0::XEN),
                ("E2E_BRIDGE", QEMU_BRIDGE),
                ("E2E_BRIDGE_ADDR", QEMU_BRIDGE_ADDR),
                ("E2E_CONSOLE_DIR", native::DEFAULT_CONSOLE_DIR),
                ("E2E_WORK", "/run/e2e"),
                ("E2E_WATCHDOG_S", &runner_budget.as_secs().to_string()),
            ]),
        );
        let cmd = qemu_command(&dom0, &staged, &run_dir, options.port)?;
        println!(
            "demo: booting {} in QEMU (about a minute to dom0)",
            dom0.versions
                .lines()
                .filter(|l| l.starts_with("xen ") || l.starts_with("kernel "))
                .collect::<Vec<_>>()
                .join(", ")
        );
        run(
            cmd,
            Control::Stdin,
            &run_dir.join("serial.log"),
            &options,
            runner_budget,
            &url,
        )?
    };
    session.finish(&run_dir)
}

/// Fails when a signal asked us to stop before the boot.
fn interrupted() -> Result<(), Error> {
    if signals::count() > 0 {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Fails when something already listens on 127.0.0.1:`port`.
fn port_is_free(port: u16) -> Result<(), Error> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .map(drop)
        .map_err(|e| {
            format!("127.0.0.1:{port} is taken ({e}); stop what listens there or pick --port")
        })
}

/// Compiles demo/forward.c as a static binary.
fn build_forward(dir: &Path) -> Result<PathBuf, Error> {
    let source = dir.join("forward.c");
    let out = dir.join("ringlet-forward");
    std::fs::write(&source, FORWARD_C).map_err(|e| format!("{}: {e}", source.display()))?;
    let output = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-s", "-o"])
        .arg(&out)
        .arg(&source)
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if output.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "gcc forward.c failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn make_fifo(path: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_file(path);
    let status = Command::new("mkfifo")
        .arg("-m")
        .arg("600")
        .arg(path)
        .status()
        .map_err(|e| format!("cannot run mkfifo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("mkfifo {} failed", path.display()))
    }
}

/// The QEMU command: the suite's, with QEMU's user network for dom0 (an
/// e1000 whose `hostfwd` takes the host's 127.0.0.1:`port` to dom0's
/// :8080) and the serial console's input from our stdin pipe.
fn qemu_command(
    dom0: &dom0::Dom0,
    staged: &Staged,
    run_dir: &Path,
    port: u16,
) -> Result<Command, Error> {
    let mut archive = cpio::Archive::new();
    archive
        .file("init", 0o755, INIT.as_bytes())
        .map_err(|e| e.to_string())?;
    for (path, (perm, bytes)) in &staged.files {
        archive
            .file(&format!("e2e/{path}"), *perm, bytes)
            .map_err(|e| e.to_string())?;
    }
    let extra = archive.finish();
    let initrd = run_dir.join("initrd.cpio");
    concat(&dom0.cpio, &extra, &initrd)?;
    std::fs::write(run_dir.join("run.cpio"), &extra)
        .map_err(|e| format!("{}: {e}", run_dir.display()))?;
    for p in [&dom0.kernel, &initrd] {
        if p.to_string_lossy().contains(',') {
            return Err(format!(
                "{}: QEMU's -initrd cannot take a path with a comma",
                p.display()
            ));
        }
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", qemu::CPU, "-smp", "2"])
        .args(["-m", &qemu::MEMORY_MIB.to_string()])
        .args(["-display", "none", "-vga", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-nic")
        .arg(format!(
            "user,model={NIC_MODEL},hostfwd=tcp:127.0.0.1:{port}-:{DOM0_PORT}"
        ))
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(&dom0.xen)
        .args(["-append", qemu::XEN_CMDLINE])
        .arg("-initrd")
        .arg(format!(
            "{} {},{}",
            dom0.kernel.display(),
            qemu::DOM0_CMDLINE,
            initrd.display()
        ));
    let stderr_path = run_dir.join("qemu-stderr.log");
    let stderr = std::fs::File::create(&stderr_path)
        .map_err(|e| format!("{}: {e}", stderr_path.display()))?;
    cmd.stderr(stderr);
    std::fs::write(run_dir.join("qemu-command.txt"), format!("{cmd:?}\n"))
        .map_err(|e| format!("{}: {e}", run_dir.display()))?;
    Ok(cmd)
}

/// The cached dom0 archive, padded to 4 bytes, then `tail`.
fn concat(base: &Path, tail: &[u8], out: &Path) -> Result<(), Error> {
    let io = |e: std::io::Error| format!("{}: {e}", out.display());
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let mut from = std::fs::File::open(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let written = std::io::copy(&mut from, &mut file).map_err(io)?;
    let pad = (4 - written % 4) % 4;
    file.write_all(&[0u8; 4][..pad as usize]).map_err(io)?;
    file.write_all(tail).map_err(io)?;
    file.flush().map_err(io)
}

/// How `stop` reaches dom0.
#[derive(Debug)]
enum Control {
    /// QEMU's stdin: the serial line, which Xen hands to dom0's console.
    Stdin,
    /// A FIFO demo.sh reads (xl on this machine).
    Fifo(PathBuf),
}

/// How a demo run went.
#[derive(Debug)]
struct Session {
    report: Report,
    served: bool,
    stopped: Option<String>,
    killed: Option<String>,
    host_failed: Option<String>,
    exit_ok: bool,
    log: PathBuf,
}

impl Session {
    fn finish(self, run_dir: &Path) -> Result<(), Error> {
        let figures: Vec<String> = self
            .report
            .figures
            .iter()
            .map(|f| format!("  {:<36} {:>10} {}", f.name, f.value, f.unit))
            .collect();
        let summary = format!(
            "served: {}\nstopped: {}\nresult: {:?}\n{}\n",
            self.served,
            self.stopped.as_deref().unwrap_or("-"),
            self.report.results.get("demo"),
            figures.join("\n")
        );
        let _ = std::fs::write(run_dir.join("summary.txt"), &summary);
        if !figures.is_empty() {
            println!("demo: figures:\n{}", figures.join("\n"));
        }
        if let Some(why) = self.killed {
            return Err(format!("demo: {why}; see {}", self.log.display()));
        }
        if let Some(why) = self.host_failed {
            return Err(format!("demo: {why}; see {}", self.log.display()));
        }
        match self.report.results.get("demo") {
            Some(Outcome::Ok) if self.exit_ok => {
                println!(
                    "demo: the appliance powered off cleanly ({}); Xen is down",
                    self.stopped.as_deref().unwrap_or("state unknown")
                );
                Ok(())
            }
            Some(Outcome::Ok) => Err(format!(
                "demo: dom0 did not end cleanly after the appliance stopped; see {}",
                self.log.display()
            )),
            Some(Outcome::Failed(reason)) => {
                Err(format!("demo: {reason}; see {}", self.log.display()))
            }
            None => Err(format!(
                "demo: dom0 gave no result ({}); see {}",
                if let Some(r) = &self.report.dom0_failed {
                    format!("dom0 setup failed: {r}")
                } else if self.report.dom0_ready.is_none() {
                    "dom0 never became ready".to_string()
                } else {
                    "the run ended early".to_string()
                },
                self.log.display()
            )),
        }
    }
}

/// Starts `cmd` (QEMU, or the runner with xl) in its own process group (a
/// terminal's Ctrl-C reaches only us; we then stop dom0's side in order),
/// to die with us; follows its console until it ends.
fn run(
    mut cmd: Command,
    control: Control,
    log_path: &Path,
    options: &Options,
    runner_budget: Duration,
    url: &str,
) -> Result<Session, Error> {
    cmd.stdout(Stdio::piped()).process_group(0);
    if matches!(control, Control::Stdin) {
        cmd.stdin(Stdio::piped());
    }
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl, which is async-signal-safe; it touches no memory of the
    // parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut log = std::io::BufWriter::new(
        std::fs::File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?,
    );
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || read_lines(stdout, tx));

    let index = std::fs::read(options.site.join("index.html")).unwrap_or_default();
    let mut report = Report::default();
    let mut state = State {
        stdin,
        control,
        dom0_ready_at: None,
        serving_at: None,
        stop_sent_at: None,
        stop_reason: None,
        signals_at_stop: 0,
    };
    let mut stopped = None;
    let mut killed = None;
    let mut host_failed = None;
    let hard_deadline = qemu::DOM0_READY_TIMEOUT + runner_budget + super::HOST_SLACK;
    loop {
        match rx.recv_timeout(TICK) {
            Ok(line) => {
                let t = started.elapsed();
                // Flushed per line: the demo runs for long, and the log is
                // where to look while it does.
                let _ =
                    writeln!(log, "[{:9.3}] {line}", t.as_secs_f64()).and_then(|()| log.flush());
                let event = report.feed(&line);
                if options.verbose {
                    println!("[{:7.2}] {line}", t.as_secs_f64());
                }
                if let Some(at) = line.find("RINGLET-DEMO-") {
                    let (word, rest) = line[at..].split_once(' ').unwrap_or((&line[at..], ""));
                    match word {
                        "RINGLET-DEMO-GUEST" if !options.verbose => println!("guest: {rest}"),
                        "RINGLET-DEMO-SERVING" if state.serving_at.is_none() => {
                            state.serving_at = Some(Instant::now());
                            if let Err(e) = check_from_host(options.port, PROBE, &index) {
                                println!("demo: {e}");
                                host_failed = Some(e);
                                state.send_stop(
                                    "the check from this machine failed",
                                    signals::count(),
                                );
                                continue;
                            }
                            if state.stop_sent_at.is_some() {
                                println!(
                                    "demo: {url} served (checked from here); stopping as asked"
                                );
                                continue;
                            }
                            println!();
                            println!("demo: serving {url}   (e.g. curl {url})");
                            match options.for_s {
                                Some(s) => println!("demo: stops by itself in {s} s, or on Ctrl-C"),
                                None => println!("demo: Ctrl-C stops it (xl shutdown, then Xen)"),
                            }
                            println!();
                        }
                        "RINGLET-DEMO-STOPPED" => stopped = Some(rest.trim().to_string()),
                        _ => {}
                    }
                } else if !options.verbose {
                    echo(&line, t, event.as_ref(), &mut state);
                } else if matches!(event, Some(Event::Dom0Ready(_))) {
                    state.dom0_ready_at.get_or_insert(Instant::now());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let signals = signals::count();
        if state.stop_sent_at.is_none() {
            let why = if signals > 0 {
                Some("signal")
            } else {
                match (options.for_s, state.serving_at) {
                    (Some(s), Some(at)) if at.elapsed() >= Duration::from_secs(s) => {
                        Some("--for ran out")
                    }
                    _ => None,
                }
            };
            if let Some(why) = why {
                state.send_stop(why, signals);
            }
        } else if let Control::Fifo(_) = state.control {
            // The FIFO only takes the line once demo.sh reads it.
            state.retry_fifo();
        }
        let why_kill = if signals > state.signals_at_stop && state.stop_sent_at.is_some() {
            Some("a second signal: QEMU/the runner killed at once".to_string())
        } else if state.dom0_ready_at.is_none()
            && report.dom0_ready.is_none()
            && started.elapsed() > qemu::DOM0_READY_TIMEOUT
        {
            Some(format!(
                "dom0 not ready after {} s",
                qemu::DOM0_READY_TIMEOUT.as_secs()
            ))
        } else if state.serving_at.is_none()
            && state
                .dom0_ready_at
                .is_some_and(|at| at.elapsed() > SERVING_TIMEOUT)
            && report.results.is_empty()
        {
            Some(format!(
                "not serving {} s after dom0 was ready",
                SERVING_TIMEOUT.as_secs()
            ))
        } else if state
            .stop_sent_at
            .is_some_and(|at| at.elapsed() > STOP_TIMEOUT)
        {
            Some(format!(
                "still running {} s after stop was sent",
                STOP_TIMEOUT.as_secs()
            ))
        } else if started.elapsed() > hard_deadline {
            Some(format!("the run exceeded {} s", hard_deadline.as_secs()))
        } else {
            None
        };
        if let Some(why) = why_kill {
            println!("demo: killed: {why}");
            let _ = child.kill();
            killed = Some(why);
            break;
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the run: {e}"))?;
    let _ = reader.join();
    for line in rx.try_iter() {
        let _ = writeln!(log, "[{:9.3}] {line}", started.elapsed().as_secs_f64());
        report.feed(&line);
    }
    let _ = log.flush();
    // QEMU: dom0 wrote 0 to isa-debug-exit (all passed) = status 1. The
    // runner: status 0.
    let exit_ok = match state.control {
        Control::Stdin => status.code() == Some(1),
        Control::Fifo(_) => status.success(),
    };
    if killed.is_none() && state.stop_sent_at.is_none() && signals::count() == 0 {
        println!("demo: the run ended by itself ({status})");
    }
    Ok(Session {
        report,
        served: state.serving_at.is_some(),
        stopped,
        killed,
        host_failed,
        exit_ok,
        log: log_path.to_path_buf(),
    })
}

/// The main loop's view of the run.
#[derive(Debug)]
struct State {
    stdin: Option<std::process::ChildStdin>,
    control: Control,
    dom0_ready_at: Option<Instant>,
    serving_at: Option<Instant>,
    stop_sent_at: Option<Instant>,
    /// Set while a FIFO write is still pending.
    stop_reason: Option<&'static str>,
    signals_at_stop: u32,
}

impl State {
    fn send_stop(&mut self, why: &'static str, signals: u32) {
        self.stop_sent_at = Some(Instant::now());
        self.signals_at_stop = signals;
        println!(
            "demo: stopping ({why}): xl shutdown of the appliance, then Xen; \
             a second Ctrl-C kills everything at once"
        );
        match self.control {
            Control::Stdin => {
                if let Some(stdin) = self.stdin.as_mut() {
                    // The serial line: Xen passes it to dom0's console,
                    // where demo.sh reads it (or the tty keeps it until
                    // demo.sh does).
                    let _ = stdin.write_all(b"stop\n").and_then(|()| stdin.flush());
                }
            }
            Control::Fifo(_) => {
                self.stop_reason = Some(why);
                self.retry_fifo();
            }
        }
    }

    fn retry_fifo(&mut self) {
        let Control::Fifo(path) = &self.control else {
            return;
        };
        if self.stop_reason.is_none() {
            return;
        }
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: fails (ENXIO) while demo.sh is not reading yet.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            if f.write_all(b"stop\n").is_ok() {
                self.stop_reason = None;
            }
        }
    }
}

/// What a person watching wants to see of the console (without
/// `--verbose`): progress, results, and Xen's alarms.
fn echo(line: &str, t: Duration, event: Option<&Event>, state: &mut State) {
    match event {
        Some(Event::Dom0Ready(_)) => {
            state.dom0_ready_at.get_or_insert(Instant::now());
            println!("demo: dom0 ready after {:.1} s", t.as_secs_f64());
        }
        Some(Event::Dom0Init) => println!("demo: dom0 /init started at {:.1} s", t.as_secs_f64()),
        Some(Event::Figure(_)) | Some(Event::Done(..)) => {}
        Some(_) => println!("demo: {}", &line[line.find("RINGLET-").unwrap_or(0)..]),
        None => {
            if line.starts_with("e2e: ") || line.starts_with("  | ") {
                println!("{line}");
            } else if line.contains("Panic on CPU") || line.contains("Triple fault") {
                println!("demo: Xen says: {line}");
            }
        }
    }
}

fn read_lines(stdout: std::process::ChildStdout, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                buf.truncate(LINE_BYTES_MAX);
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

/// GET `path` from 127.0.0.1:`port` as a browser would reach it: the status
/// must be 200 and, for `/`, the body `index` (when given).
fn check_from_host(port: u16, path: &str, index: &[u8]) -> Result<(), Error> {
    let mut last = String::new();
    for _ in 0..5 {
        match http_get(port, path) {
            Ok((200, body)) if index.is_empty() || body == index => return Ok(()),
            Ok((200, body)) => {
                last = format!(
                    "GET {path}: {} bytes, not the site's index.html ({} bytes)",
                    body.len(),
                    index.len()
                )
            }
            Ok((code, _)) => last = format!("GET {path}: status {code}"),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(format!(
        "dom0 serves, but from this machine (127.0.0.1:{port}): {last}"
    ))
}

/// One HTTP/1.1 GET with `Connection: close`: (status, body).
fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>), Error> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    s.take(RESPONSE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut response)
        .map_err(|e| format!("receive: {e}"))?;
    parse_response(&response)
}

/// Status and body of a whole `Connection: close` response (the body is
/// what follows the head; its Content-Length must match if given).
fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>), Error> {
    if response.len() > RESPONSE_BYTES_MAX {
        return Err(format!("response over {RESPONSE_BYTES_MAX} bytes"));
    }
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the response head")?;
    let head = std::str::from_utf8(&response[..end]).map_err(|_| "response head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let code = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let body = response[end + 4..].to_vec();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?;
                if n != body.len() {
                    return Err(format!("Content-Length {n} but {} body bytes", body.len()));
                }
            }
        }
    }
    Ok((code, body))
}

/// SIGINT, SIGTERM and SIGHUP counted instead of ending the process, so
/// the demo can stop dom0's side in order.
mod signals {
    use super::*;

    static COUNT: AtomicU32 = AtomicU32::new(0);

    extern "C" fn on_signal(_signal: libc::c_int) {
        // Only an atomic add: async-signal-safe.
        COUNT.fetch_add(1, Ordering::SeqCst);
    }

    /// Installs the handler.
    pub fn install() -> Result<(), Error> {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction is a valid value (empty mask, no
            // flags); the handler has the signature sa_handler expects and
            // only does an atomic add, which is async-signal-safe. Handlers
            // are reset to the default in children at exec.
            let rc = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(format!(
                    "sigaction({signal}): {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }

    /// How many signals came so far.
    pub fn count() -> u32 {
        COUNT.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_bound() {
        let o = parse(&args(&["--for", "60", "--port", "9090"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.for_s, Some(60));
        assert_eq!(o.port, 9090);
        assert!(parse(&args(&["--for", "0"])).is_err());
        assert!(parse(&args(&["--for", "x"])).is_err());
        assert!(parse(&args(&["--for"])).is_err());
        assert!(parse(&args(&["--port", "0"])).is_err());
        assert!(parse(&args(&["--port", "70000"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
        assert!(parse(&args(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn responses_parse() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse_response(ok).unwrap(), (200, b"abc".to_vec()));
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabc";
        assert!(parse_response(short)
            .unwrap_err()
            .contains("Content-Length 4"));
        let nf = b"HTTP/1.0 404 Not Found\r\n\r\n";
        assert_eq!(parse_response(nf).unwrap().0, 404);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn the_dom0_script_reads_what_demo_rs_writes() {
        for var in [
            "DEMO_NIC",
            "DEMO_LISTEN",
            "DEMO_CONTROL",
            "DEMO_EXTRA",
            "DEMO_PROBE",
            "DEMO_URL",
        ] {
            assert!(DEMO_SH.contains(&format!("${var}")), "{var}");
        }
        for line in [
            "RINGLET-DEMO-SERVING",
            "RINGLET-DEMO-GUEST",
            "RINGLET-DEMO-STOPPED",
        ] {
            assert!(DEMO_SH.contains(line), "{line}");
        }
        assert!(dom0::MODULES.contains(&NIC_MODEL));
        assert!(HTTPD_CFG.contains("target=@DIR@/site.tar"));
    }

    /// Sends `len` bytes through the forward at `port`, half-closes, and
    /// expects them back reversed (the upstream of the test below).
    fn exchange(port: u16, len: usize, seed: u8) {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut w = s.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        let mut want = data;
        want.reverse();
        assert_eq!(back.len(), want.len());
        assert!(back == want, "bytes differ for {len}");
    }

    /// A child killed when the test ends, whichever way.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts ringlet-forward from 127.0.0.1:0 to `to`; the child and the
    /// port it listens on.
    fn start_forward(bin: &Path, extra: &[&str], to: u16) -> (Reaped, u16) {
        let mut child = Command::new(bin)
            .args(extra)
            .arg("127.0.0.1:0")
            .arg(format!("127.0.0.1:{to}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .split(" -> ")
            .next()
            .and_then(|s| s.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{first:?}"));
        (Reaped(child), port)
    }

    /// ringlet-forward on this machine: byte-exact both ways, half-close
    /// passed on, many pairs at once, and the pair bound.
    #[test]
    fn forward_moves_bytes_both_ways() {
        let dir = std::env::temp_dir().join(format!("ringlet-forward-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = build_forward(&dir).unwrap();

        // An upstream that answers each connection with the bytes it
        // received, reversed, after the client's FIN.
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_port = upstream.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in upstream.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    conn.read_to_end(&mut got).unwrap();
                    got.reverse();
                    conn.write_all(&got).unwrap();
                });
            }
        });

        let (fwd, port) = start_forward(&bin, &["-q", "-n", "4"], up_port);
        exchange(port, 0, 1);
        exchange(port, 1, 3);
        exchange(port, 3 << 20, 7); // 48 buffers' worth each way

        // More clients than the bound (4): the rest wait in the backlog and
        // are served as pairs close.
        let clients: Vec<_> = (0..12)
            .map(|i| std::thread::spawn(move || exchange(port, 100_000 + i, i as u8 | 1)))
            .collect();
        for c in clients {
            c.join().unwrap();
        }

        // A refused upstream: the client sees its connection closed.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = closed.local_addr().unwrap().port();
        drop(closed);
        let (fwd2, port2) = start_forward(&bin, &["-q"], dead_port);
        let mut s = TcpStream::connect(("127.0.0.1", port2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let n = s.read_to_end(&mut buf).map(|_| buf.len()).unwrap_or(0);
        assert_eq!(n, 0);

        for mut f in [fwd, fwd2] {
            // SIGTERM: a clean exit with status 0.
            // SAFETY: kill(2) with our own, not yet reaped child's pid.
            unsafe { libc::kill(f.0.id() as libc::pid_t, libc::SIGTERM) };
            assert!(f.0.wait().unwrap().success());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
