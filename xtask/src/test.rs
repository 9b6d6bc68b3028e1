//! `cargo xtask test`: the one test command (README, CI).
//!
//! Runs, in order: `cargo fmt --check`, `cargo clippy --all-targets -D
//! warnings`, every test of the workspace, then the real-Xen suite. Each
//! step's result is counted; the run ends with `N passed, M failed`.

use std::process::{Command, Stdio};

use crate::{cargo, deps, root};

/// Debian packages the test steps need (C headers for the ABI layout tests).
const PACKAGES: &[&str] = &["libxen-dev", "gcc"];

/// The bare-metal target appliances are built for.
const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The crates that build for [`KERNEL_TARGET`] (no_std libraries and apps).
const KERNEL_CRATES: &[&str] = &[
    "ringlet-executor",
    "ringlet-xen",
    "ringlet-storage",
    "ringlet-net",
    "ringlet",
    "ringlet-hello",
    "ringlet-netecho",
    "ringlet-blkcheck",
];

/// Tallies of a whole run.
#[derive(Debug, Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(name.to_string());
        }
    }
}

pub fn run(_args: &[String]) -> Result<(), crate::Error> {
    deps::apt(PACKAGES)?;
    let mut tally = Tally::default();

    let fmt = step(cargo_cmd(&["fmt", "--all", "--", "--check"]));
    println!("check fmt: {}", verdict(fmt));
    tally.record("fmt", fmt);

    let clippy = step(cargo_cmd(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]));
    println!("check clippy: {}", verdict(clippy));
    tally.record("clippy", clippy);

    // The kernel side (PVH boot, hypercalls) compiles only for the bare-metal
    // target: lint it there too.
    let mut args = vec!["clippy", "--target", KERNEL_TARGET];
    for krate in KERNEL_CRATES {
        args.extend(["-p", krate]);
    }
    args.extend(["--", "-D", "warnings"]);
    let clippy_kernel = step(cargo_cmd(&args));
    println!("check clippy ({KERNEL_TARGET}): {}", verdict(clippy_kernel));
    tally.record("clippy (kernel target)", clippy_kernel);

    cargo_tests(&mut tally, &["test", "--workspace", "--all-features"]);

    // The real-Xen suite: each scenario counts as one pass or failure.
    let e2e = crate::e2e::run(
        &crate::e2e::SCENARIOS
            .iter()
            .filter(|s| s.default)
            .collect::<Vec<_>>(),
        crate::e2e::Options {
            mode: crate::e2e::Mode::Auto,
            verbose: false,
        },
    );
    e2e.print();
    for (name, outcome) in &e2e.results {
        tally.record(&format!("e2e {name}"), outcome.is_ok());
    }

    println!();
    for f in &tally.failures {
        println!("FAILED: {f}");
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} failed", tally.failed))
    }
}

fn cargo_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args(args).current_dir(root());
    cmd
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAILED"
    }
}

fn step(mut cmd: Command) -> bool {
    match cmd.status() {
        Ok(status) => status.success(),
        Err(e) => {
            eprintln!("xtask: cannot run {cmd:?}: {e}");
            false
        }
    }
}

/// Runs `cargo test ...`, passing its output through, and counts each test
/// from libtest's `test <name> ... ok|FAILED` lines. A build failure or a
/// crashed test binary counts as one failure of its own.
fn cargo_tests(tally: &mut Tally, args: &[&str]) {
    use std::io::{BufRead, BufReader};
    let mut cmd = cargo_cmd(args);
    cmd.stdout(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("xtask: cannot run cargo test: {e}");
            tally.record("cargo test", false);
            return;
        }
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test ") {
            if rest.ends_with(" ... ok") {
                passed += 1;
            } else if rest.ends_with(" ... FAILED") {
                failed += 1;
                let name = rest.trim_end_matches(" ... FAILED");
                tally.failures.push(format!("test {name}"));
            }
        }
    }
    let status = child.wait().map(|s| s.success()).unwrap_or(false);
    tally.passed += passed;
    tally.failed += failed;
    if !status && failed == 0 {
        tally.record("cargo test (build or test binary crashed)", false);
    }
}
