//! Watching a run's console: every line logged with its time, parsed as the
//! result protocol, echoed for a person, and the run killed at a deadline.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::report::{Event, Report};
use crate::Error;

/// Bound on one console line kept, in bytes (the console is input).
const LINE_BYTES_MAX: usize = 4096;

/// What watching a run saw.
#[derive(Debug)]
pub struct Watched {
    /// What dom0 reported.
    pub report: Report,
    /// The exit status, if the process exited by itself.
    pub exit_code: Option<i32>,
    /// Why the host killed the run, if it did.
    pub killed: Option<String>,
    /// From the start to dom0's ready line.
    pub dom0_ready_after: Option<Duration>,
    /// From the start to the end.
    pub elapsed: Duration,
}

/// Reads `child`'s stdout line by line until it ends, logging each line to
/// `log_path` as `[seconds] line`. Kills the child `deadline` after
/// `started`, or `ready_timeout` after it if dom0 has not said ready.
pub fn watch(
    mut child: Child,
    started: Instant,
    log_path: &Path,
    deadline: Duration,
    ready_timeout: Option<Duration>,
    verbose: bool,
) -> Result<Watched, Error> {
    let mut log = std::io::BufWriter::new(
        std::fs::File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?,
    );
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || read_lines(stdout, tx));

    let mut report = Report::default();
    let mut dom0_ready_after = None;
    let mut killed = None;
    loop {
        let waiting_for_dom0 = dom0_ready_after.is_none() && report.dom0_failed.is_none();
        let limit = match ready_timeout {
            Some(ready) if waiting_for_dom0 => deadline.min(ready),
            _ => deadline,
        };
        let left = limit.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok((at, line)) => {
                let t = at - started;
                let _ = writeln!(log, "[{:9.3}] {line}", t.as_secs_f64());
                let event = report.feed(&line);
                if matches!(event, Some(Event::Dom0Ready(_))) {
                    dom0_ready_after = Some(t);
                }
                echo(&line, t, event.as_ref(), verbose);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let why = if ready_timeout.is_some() && waiting_for_dom0 {
                    format!("killed: dom0 not ready after {} s", limit.as_secs())
                } else {
                    format!("killed: the run exceeded {} s", limit.as_secs())
                };
                println!("e2e: {why}");
                let _ = child.kill();
                killed = Some(why);
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the run: {e}"))?;
    let elapsed = started.elapsed();
    let _ = reader.join();
    // Lines still buffered after a kill.
    for (at, line) in rx.try_iter() {
        let _ = writeln!(log, "[{:9.3}] {line}", (at - started).as_secs_f64());
        report.feed(&line);
    }
    log.flush()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    Ok(Watched {
        report,
        exit_code: status.code(),
        killed,
        dom0_ready_after,
        elapsed,
    })
}

fn read_lines(stdout: std::process::ChildStdout, tx: mpsc::Sender<(Instant, String)>) {
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
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Prints what a person watching the run wants: progress and results, or
/// everything when verbose.
fn echo(line: &str, t: Duration, event: Option<&Event>, verbose: bool) {
    if verbose {
        println!("[{:7.2}] {line}", t.as_secs_f64());
        return;
    }
    match event {
        Some(Event::Dom0Ready(details)) => {
            println!("e2e: dom0 ready after {:.1} s ({details})", t.as_secs_f64())
        }
        Some(Event::Dom0Init) => println!("e2e: dom0 /init started at {:.1} s", t.as_secs_f64()),
        Some(Event::Figure(_)) | Some(Event::Done(..)) => {}
        Some(_) => println!("e2e: {}", &line[line.find("RINGLET-").unwrap_or(0)..]),
        None => {
            if line.starts_with("e2e: ") || line.starts_with("  | ") {
                println!("{line}");
            } else if line.contains("Panic on CPU") || line.contains("Triple fault") {
                println!("e2e: Xen says: {line}");
            }
        }
    }
}
