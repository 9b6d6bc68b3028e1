//! `ringlet-bench`: runs a benchmark suite and prints its table.
//!
//! `cargo xtask bench executor [--quick] [--only SCENARIO] [--executor NAME]
//! [--rounds N] [--json PATH]`.
#![deny(unsafe_code)]

use ringlet_bench::affinity;
use ringlet_bench::harness::{self, Rounds, EXECUTORS};
use ringlet_bench::report;
use ringlet_bench::scenarios::{Scenario, Setup, Sizes};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: ringlet-bench executor [options]

options:
  --quick            smoke run: no warm-up, one round
  --only SCENARIO    run one scenario (spawn, yield, ping-pong, ring, timers, cross-thread)
  --executor NAME    run one executor (ringlet, tokio, smol)
  --rounds N         measured rounds (default 30, after 3 warm-up rounds)
  --json PATH        where to write the JSON (default target/bench/executor.json)
";

struct Options {
    rounds: Rounds,
    scenarios: Vec<Scenario>,
    executors: Vec<&'static str>,
    json: PathBuf,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        rounds: Rounds::FULL,
        scenarios: Scenario::ALL.to_vec(),
        executors: EXECUTORS.to_vec(),
        json: default_json_path(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => options.rounds = Rounds::QUICK,
            "--only" => {
                let name = value()?;
                let scenario =
                    Scenario::from_name(name).ok_or(format!("unknown scenario {name}"))?;
                options.scenarios = vec![scenario];
            }
            "--executor" => {
                let name = value()?;
                let known = EXECUTORS
                    .iter()
                    .find(|e| *e == name)
                    .ok_or(format!("unknown executor {name}"))?;
                options.executors = vec![known];
            }
            "--rounds" => {
                let n = value()?;
                options.rounds.measured = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--rounds wants a positive number, not {n}"))?;
            }
            "--json" => options.json = PathBuf::from(value()?),
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(options)
}

/// `<workspace>/target/bench/executor.json`.
fn default_json_path() -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench lives one level below the workspace root");
    root.join("target").join("bench").join("executor.json")
}

/// Pins this thread to the first allowed CPU and picks another one for the
/// cross-thread waker; says what it did.
fn pin() -> Option<usize> {
    let cpus = match affinity::allowed_cpus() {
        Ok(cpus) if !cpus.is_empty() => cpus,
        Ok(_) => {
            println!("pinning: no CPU in the affinity mask; running unpinned");
            return None;
        }
        Err(e) => {
            println!("pinning: {e}; running unpinned");
            return None;
        }
    };
    let main_cpu = cpus[0];
    match affinity::pin_current_thread(main_cpu) {
        Ok(()) => {}
        Err(e) => {
            println!("pinning: cannot pin to CPU {main_cpu}: {e}; running unpinned");
            return None;
        }
    }
    let helper = cpus.get(1).copied();
    match helper {
        Some(h) => println!("pinning: executors on CPU {main_cpu}, cross-thread waker on CPU {h}"),
        None => println!(
            "pinning: executors on CPU {main_cpu}; only one CPU allowed, so the \
             cross-thread waker shares it (unpinned)"
        ),
    }
    helper
}

fn executor_suite(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    // Other processes on the same CPUs are the main source of noise: say how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("load average (1, 5, 15 min): {}", load.join(" "));
    }
    let helper_cpu = pin();
    let setup = Setup {
        sizes: Sizes::FULL,
        helper_cpu,
    };
    println!(
        "rounds: {} warm-up + best of {} measured{}",
        options.rounds.warmup,
        options.rounds.measured,
        if options.rounds == Rounds::QUICK {
            " (--quick: a smoke run, not a result)"
        } else {
            ""
        }
    );
    let mut contenders: Vec<_> = options
        .executors
        .iter()
        .map(|name| harness::contender(name).expect("validated name"))
        .collect();
    let mut results = Vec::new();
    for &scenario in &options.scenarios {
        let measured = harness::measure(&mut contenders, scenario, &setup, options.rounds)
            .map_err(|e| e.to_string())?;
        results.extend(measured);
    }
    println!();
    print!("{}", report::table(&results, &setup.sizes));
    println!(
        "(ns per op, best round; timers: (wall - longest sleep) / timers; \
         r/tokio = ringlet / tokio, target is the highest allowed ratio)"
    );
    if let Some(dir) = options.json.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&options.json, report::json(&results))
        .map_err(|e| format!("{}: {e}", options.json.display()))?;
    println!("wrote {}", options.json.display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("executor") => executor_suite(&args[1..]),
        Some("storage") => ringlet_bench::storage::storage_suite(&args[1..]),
        Some("net") => ringlet_bench::net::net_suite(&args[1..]),
        Some("httpd") => ringlet_bench::httpd::httpd_suite(&args[1..]),
        Some("-h") | Some("--help") | Some("help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringlet-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
