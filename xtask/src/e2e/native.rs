//! Running the suite on a machine that is itself a Xen dom0, with its own
//! `xl`: the same runner and check scripts as inside QEMU, on the host.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::watch::{watch, Watched};
use crate::Error;

/// The bridge created for the run when `RINGLET_E2E_BRIDGE` names none.
pub const DEFAULT_BRIDGE: &str = "ringlet-e2e0";
/// Its address (dom0's side), unless `RINGLET_E2E_BRIDGE_ADDR` says.
pub const DEFAULT_BRIDGE_ADDR: &str = "10.0.0.1/24";
/// Where xenconsoled logs guest consoles, unless
/// `RINGLET_E2E_CONSOLE_DIR` says.
pub const DEFAULT_CONSOLE_DIR: &str = "/var/log/xen/console";

/// Whether `xl` works here (a Xen dom0 with the toolstack running).
pub fn available() -> bool {
    Command::new("xl")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The bridge and console settings of a native run.
#[derive(Debug, Clone)]
pub struct Host {
    /// The bridge guests' vifs join.
    pub bridge: String,
    /// dom0's address on it.
    pub bridge_addr: String,
    /// Where xenconsoled writes guest-NAME.log.
    pub console_dir: String,
}

impl Host {
    /// From the environment, with the defaults above.
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        Self {
            bridge: var("RINGLET_E2E_BRIDGE", DEFAULT_BRIDGE),
            bridge_addr: var("RINGLET_E2E_BRIDGE_ADDR", DEFAULT_BRIDGE_ADDR),
            console_dir: var("RINGLET_E2E_CONSOLE_DIR", DEFAULT_CONSOLE_DIR),
        }
    }
}

/// Runs `root/runner.sh` (the staged tree) with the host's xl, logging its
/// output to `dir/console.log`; kills it after `deadline`.
pub fn run(
    host: &Host,
    root: &Path,
    dir: &Path,
    deadline: Duration,
    verbose: bool,
) -> Result<Watched, Error> {
    warn_if_consoles_not_logged();
    let made_bridge = ensure_bridge(host)?;
    let started = Instant::now();
    let child = Command::new("sh")
        .arg(root.join("runner.sh"))
        .env("E2E_ROOT", root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"));
    let result = child.and_then(|child| {
        watch(
            child,
            started,
            &dir.join("console.log"),
            deadline,
            None,
            verbose,
        )
    });
    if made_bridge {
        let _ = Command::new("ip")
            .args(["link", "del", &host.bridge])
            .status();
    }
    result
}

/// Creates the bridge unless it exists; whether it was created.
pub(super) fn ensure_bridge(host: &Host) -> Result<bool, Error> {
    let exists = Command::new("ip")
        .args(["link", "show", &host.bridge])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists {
        return Ok(false);
    }
    let steps: [&[&str]; 3] = [
        &[
            "link",
            "add",
            &host.bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
        &["addr", "add", &host.bridge_addr, "dev", &host.bridge],
        &["link", "set", &host.bridge, "up"],
    ];
    for args in steps {
        let ok = Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("ip {} failed", args.join(" ")));
        }
    }
    Ok(true)
}

/// The check scripts read guest consoles from xenconsoled's log files,
/// which it writes only when started with --log=guest (or all).
fn warn_if_consoles_not_logged() {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_consoled = args.first().is_some_and(|a| a.ends_with(b"xenconsoled"));
        if !is_consoled {
            continue;
        }
        let logs_guests = args
            .windows(2)
            .any(|w| w[0] == b"--log" && (w[1] == b"guest" || w[1] == b"all"))
            || args
                .iter()
                .any(|a| *a == b"--log=guest" || *a == b"--log=all");
        if !logs_guests {
            println!(
                "e2e: warning: xenconsoled runs without --log=guest; guest consoles will not \
                 be logged and the scenarios will fail (see docs/real-xen.md)"
            );
        }
        return;
    }
    println!("e2e: warning: no xenconsoled process found");
}
