//! The result protocol between dom0 and the host: parsing the `RINGLET-`
//! lines of a run's console, and spotting the one known emulator flake.
//!
//! dom0 (init.sh, runner.sh, lib.sh) prints, one per line, possibly after
//! other text on the same line (the console is shared with the kernel):
//!
//! | line                                          | meaning                         |
//! |-----------------------------------------------|---------------------------------|
//! | `RINGLET-DOM0-INIT uptime=S`                  | dom0's /init started            |
//! | `RINGLET-DOM0-READY uptime=S xen=V virt_caps=C` | toolstack up, scenarios next  |
//! | `RINGLET-DOM0-FAILED <reason>`                | dom0 setup failed, run ends     |
//! | `RINGLET-E2E <scenario> ok`                   | a scenario passed               |
//! | `RINGLET-E2E <scenario> FAILED <reason>`      | a scenario failed               |
//! | `RINGLET-FIGURE <name> <value> <unit>`        | a measurement                   |
//! | `RINGLET-E2E-DONE <passed> <failed>`          | every scenario ran              |
//! | `RINGLET-E2E-WATCHDOG after <S>s`             | dom0's watchdog ended the run   |

use std::collections::BTreeMap;

/// Bound on the figures one run may report (dom0 output is input).
pub const FIGURES_MAX: usize = 1024;
/// Bound on a reason's length, in bytes.
pub const REASON_BYTES_MAX: usize = 400;
/// Lines after Xen's "Triple fault" line in which the flake's Xen-own
/// CS:RIP must appear.
const FLAKE_WINDOW_LINES: usize = 60;

/// One parsed protocol line.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// dom0's /init started.
    Dom0Init,
    /// The toolstack is up; the rest of the line (versions).
    Dom0Ready(String),
    /// dom0's setup failed, with the reason.
    Dom0Failed(String),
    /// A scenario's result.
    Result {
        /// The scenario.
        scenario: String,
        /// Whether it passed.
        outcome: Outcome,
    },
    /// A measurement.
    Figure(Figure),
    /// Every scenario ran: passed, failed.
    Done(u32, u32),
    /// dom0's watchdog fired.
    Watchdog,
}

/// A scenario's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Ok,
    /// It failed, with a one-line reason.
    Failed(String),
}

impl Outcome {
    /// Whether the scenario passed.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }
}

/// A measurement: `name` (`<scenario>.<what>` or `run.<what>`), value, unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`ms`, `s`, `us`, `bytes`, ...).
    pub unit: String,
}

/// Whether the text before a protocol word marks the line as a guest's
/// output, which the serial console carries too and which must never count
/// (a guest printing `RINGLET-E2E x ok` would pass a scenario): Xen's
/// prefix for a guest's port 0xe9 and console writes (`(d1) `), dom0's
/// copy of guest consoles (`guest-console <file>: `), and the indented dumps
/// of consoles and logs in failure reports (`  | `).
fn from_guest(prefix: &str) -> bool {
    if prefix.contains("guest-console") || prefix.contains("| ") {
        return true;
    }
    prefix.match_indices("(d").any(|(i, _)| {
        let rest = &prefix[i + 2..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(')')
    })
}

/// Parses one console line; `None` when it holds no protocol line (or holds
/// one only inside a guest's output).
pub fn parse_line(line: &str) -> Option<Event> {
    let at = line.find("RINGLET-")?;
    if from_guest(&line[..at]) {
        return None;
    }
    let line = line[at..].trim_end();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "RINGLET-DOM0-INIT" => Some(Event::Dom0Init),
        "RINGLET-DOM0-READY" => Some(Event::Dom0Ready(bounded(rest))),
        "RINGLET-DOM0-FAILED" => Some(Event::Dom0Failed(bounded(rest))),
        "RINGLET-E2E-WATCHDOG" => Some(Event::Watchdog),
        "RINGLET-E2E-DONE" => {
            let mut it = rest.split_whitespace().map(str::parse::<u32>);
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(p)), Some(Ok(f)), None) => Some(Event::Done(p, f)),
                _ => None,
            }
        }
        "RINGLET-E2E" => {
            let (scenario, verdict) = rest.split_once(' ')?;
            if !valid_name(scenario) {
                return None;
            }
            let outcome = match verdict.split_once(' ') {
                None if verdict == "ok" => Outcome::Ok,
                None if verdict == "FAILED" => Outcome::Failed("no reason given".into()),
                Some(("FAILED", reason)) => Outcome::Failed(bounded(reason)),
                _ => return None,
            };
            Some(Event::Result {
                scenario: scenario.into(),
                outcome,
            })
        }
        "RINGLET-FIGURE" => {
            let mut it = rest.split_whitespace();
            let (name, value, unit) = (it.next()?, it.next()?, it.next()?);
            let value: f64 = value.parse().ok()?;
            let fine = it.next().is_none()
                && value.is_finite()
                && name.split('.').all(valid_name)
                && unit.len() <= 16
                && unit.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/');
            fine.then(|| {
                Event::Figure(Figure {
                    name: name.into(),
                    value,
                    unit: unit.into(),
                })
            })
        }
        _ => None,
    }
}

/// Scenario and figure names: short, `[a-z0-9_-]`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn bounded(s: &str) -> String {
    let mut end = s.len().min(REASON_BYTES_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim().to_string()
}

/// What a run's console said, accumulated line by line.
#[derive(Debug, Default)]
pub struct Report {
    /// Each scenario's result, first one wins.
    pub results: BTreeMap<String, Outcome>,
    /// Figures in the order they came.
    pub figures: Vec<Figure>,
    /// Seen `RINGLET-DOM0-INIT`.
    pub dom0_init: bool,
    /// The `RINGLET-DOM0-READY` details, once seen.
    pub dom0_ready: Option<String>,
    /// dom0's setup failure.
    pub dom0_failed: Option<String>,
    /// Seen `RINGLET-E2E-DONE`.
    pub done: Option<(u32, u32)>,
    /// Seen `RINGLET-E2E-WATCHDOG`.
    pub watchdog: bool,
    flake: FlakeScan,
}

impl Report {
    /// Takes one console line; returns the protocol event it held.
    pub fn feed(&mut self, line: &str) -> Option<Event> {
        self.flake.feed(line);
        let event = parse_line(line)?;
        match &event {
            Event::Dom0Init => self.dom0_init = true,
            Event::Dom0Ready(d) => self.dom0_ready = Some(d.clone()),
            Event::Dom0Failed(r) => self.dom0_failed = Some(r.clone()),
            Event::Result { scenario, outcome } => {
                self.results
                    .entry(scenario.clone())
                    .or_insert_with(|| outcome.clone());
            }
            Event::Figure(f) => {
                if self.figures.len() < FIGURES_MAX {
                    self.figures.push(f.clone());
                }
            }
            Event::Done(p, f) => self.done = Some((*p, *f)),
            Event::Watchdog => self.watchdog = true,
        }
        Some(event)
    }

    /// Whether the known QEMU nested-SVM flake showed in Xen's log: a domU
    /// "triple fault" whose saved CS:RIP is Xen's own (`e008:[<ffff82d0`).
    pub fn flake_seen(&self) -> bool {
        self.flake.seen
    }
}

/// Looks for "Triple fault" followed, within a few lines, by Xen's own
/// code selector and address.
#[derive(Debug, Default)]
struct FlakeScan {
    lines_since_triple_fault: Option<usize>,
    seen: bool,
}

impl FlakeScan {
    fn feed(&mut self, line: &str) {
        if line.contains("Triple fault") {
            self.lines_since_triple_fault = Some(0);
        } else if let Some(n) = self.lines_since_triple_fault.as_mut() {
            *n += 1;
            if *n > FLAKE_WINDOW_LINES {
                self.lines_since_triple_fault = None;
            }
        }
        if self.lines_since_triple_fault.is_some() && line.contains("e008:[<ffff82d0") {
            self.seen = true;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn result(scenario: &str, outcome: Outcome) -> Option<Event> {
        Some(Event::Result {
            scenario: scenario.into(),
            outcome,
        })
    }

    #[test]
    fn result_lines() {
        assert_eq!(
            parse_line("RINGLET-E2E smoke ok"),
            result("smoke", Outcome::Ok)
        );
        assert_eq!(
            parse_line("RINGLET-E2E hello FAILED xl create: boom\r"),
            result("hello", Outcome::Failed("xl create: boom".into()))
        );
        // After kernel text on the same line.
        assert_eq!(
            parse_line("[   12.0] xen: fooRINGLET-E2E net ok"),
            result("net", Outcome::Ok)
        );
        // A guest's output, however it reaches the serial console.
        assert_eq!(parse_line("(XEN) (d1) RINGLET-E2E hello ok"), None);
        assert_eq!(parse_line("(d12) RINGLET-E2E-DONE 5 0"), None);
        assert_eq!(
            parse_line("[ 41.7] guest-console guest-x.log: RINGLET-E2E net ok"),
            None
        );
        assert_eq!(parse_line("[ 47.7]   | guest: RINGLET-E2E httpd ok"), None);
        assert_eq!(
            parse_line("[ 12.0] (d1 is not a domain) RINGLET-E2E net ok"),
            result("net", Outcome::Ok)
        );
        assert_eq!(parse_line("RINGLET-E2E smoke okay"), None);
        assert_eq!(parse_line("RINGLET-E2E Smoke ok"), None);
        assert_eq!(parse_line("RINGLET-E2E smoke"), None);
        assert_eq!(parse_line("e2e smoke: ok"), None);
    }

    #[test]
    fn figure_lines() {
        assert_eq!(
            parse_line("RINGLET-FIGURE hello.create_to_first_line_ms 412.5 ms"),
            Some(Event::Figure(Figure {
                name: "hello.create_to_first_line_ms".into(),
                value: 412.5,
                unit: "ms".into()
            }))
        );
        assert_eq!(parse_line("RINGLET-FIGURE x.y NaN ms"), None);
        assert_eq!(parse_line("RINGLET-FIGURE x.y 1 ms extra"), None);
        assert_eq!(parse_line("RINGLET-FIGURE x..y 1 ms"), None);
        assert_eq!(parse_line("RINGLET-FIGURE x.y 1"), None);
    }

    #[test]
    fn run_lines() {
        assert_eq!(parse_line("RINGLET-E2E-DONE 2 1"), Some(Event::Done(2, 1)));
        assert_eq!(parse_line("RINGLET-E2E-DONE 2"), None);
        assert_eq!(
            parse_line("RINGLET-E2E-WATCHDOG after 300s"),
            Some(Event::Watchdog)
        );
        assert_eq!(
            parse_line("RINGLET-DOM0-FAILED modprobe xenfs"),
            Some(Event::Dom0Failed("modprobe xenfs".into()))
        );
    }

    #[test]
    fn long_reasons_are_cut() {
        let line = format!("RINGLET-E2E a FAILED {}", "é".repeat(REASON_BYTES_MAX));
        match parse_line(&line) {
            Some(Event::Result {
                outcome: Outcome::Failed(r),
                ..
            }) => assert!(r.len() <= REASON_BYTES_MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn report_keeps_first_result_and_counts() {
        let mut r = Report::default();
        r.feed("RINGLET-DOM0-READY uptime=9.1 xen=4.17.7");
        r.feed("RINGLET-E2E smoke ok");
        r.feed("RINGLET-E2E smoke FAILED late duplicate");
        r.feed("RINGLET-E2E-DONE 1 0");
        assert_eq!(r.dom0_ready.as_deref(), Some("uptime=9.1 xen=4.17.7"));
        assert_eq!(r.results["smoke"], Outcome::Ok);
        assert_eq!(r.done, Some((1, 0)));
        assert!(!r.flake_seen());
    }

    #[test]
    fn flake_needs_triple_fault_then_xen_rip() {
        let mut r = Report::default();
        r.feed("(XEN) d1v0 Triple fault - invoking HVM shutdown action 1");
        r.feed("(XEN) *** Dumping Dom1 vcpu#0 state: ***");
        r.feed("(XEN) RIP:    e008:[<ffff82d04029a1b3>] svm_vmexit_handler");
        assert!(r.flake_seen());

        // Xen's own RIP without a triple fault (e.g. a Xen warning) is not it.
        let mut r = Report::default();
        r.feed("(XEN) RIP:    e008:[<ffff82d04029a1b3>] do_something");
        assert!(!r.flake_seen());

        // A guest triple fault at a guest address is a real guest bug.
        let mut r = Report::default();
        r.feed("(XEN) d1v0 Triple fault - invoking HVM shutdown action 1");
        r.feed("(XEN) RIP:    0008:[<0000000000101234>]");
        for _ in 0..FLAKE_WINDOW_LINES + 1 {
            r.feed("(XEN) ...");
        }
        r.feed("(XEN) RIP:    e008:[<ffff82d04029a1b3>] later, unrelated");
        assert!(!r.flake_seen());
    }
}
