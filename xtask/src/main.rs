//! `cargo xtask`: Ringlet's one entry point for building, testing, running
//! on Xen and benchmarking.
//!
//! Every subcommand installs what it needs on a Debian 12 machine (apt
//! packages when run as root; rustup targets come from rust-toolchain.toml).

mod benchxen;
mod deps;
mod e2e;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test               fmt check, clippy, every workspace test, then the real-Xen suite
  bench <suite>      run a benchmark suite (executor; xen: Ringlet httpd vs Linux domUs)
  e2e [scenario ...] the real-Xen suite (Xen inside QEMU, or xl on a Xen host)
  demo [--for S]     the httpd appliance on Xen, serving http://localhost:8080/ until Ctrl-C
  build <app>        build an appliance for x86_64-unknown-none, print its path and size
  help               this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("e2e") => e2e::command(&args[1..]),
        Some("demo") => e2e::demo::command(&args[1..]),
        Some("build") => e2e::build_command(&args[1..]),
        Some("help") | Some("-h") | Some("--help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error of an xtask step: what failed, said for a person.
pub type Error = String;

fn bench(args: &[String]) -> Result<(), Error> {
    let suite = args.first().ok_or("usage: cargo xtask bench <suite>")?;
    if suite == "xen" {
        return benchxen::command(&args[1..]);
    }
    let status = std::process::Command::new(cargo())
        .args(["run", "--release", "-p", "ringlet-bench", "--", suite])
        .args(&args[1..])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("bench {suite} failed: {status}"))
    }
}

/// The cargo that runs us (so the pinned toolchain is used throughout).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The workspace root.
pub fn root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}
