//! The results: a plain-text table for people and a JSON list for tools.

use crate::harness::Measurement;
use crate::scenarios::{Scenario, Sizes};
use std::fmt::Write as _;

/// ns/op of `executor` in `scenario`, if measured.
fn find(results: &[Measurement], scenario: Scenario, executor: &str) -> Option<f64> {
    results
        .iter()
        .find(|m| m.scenario == scenario && m.executor == executor)
        .map(|m| m.ns_per_op)
}

/// Ringlet's ns/op divided by tokio's in `scenario`, if both were measured.
pub fn ratio(results: &[Measurement], scenario: Scenario) -> Option<f64> {
    Some(find(results, scenario, "ringlet")? / find(results, scenario, "tokio")?)
}

/// Whether Ringlet met `scenario`'s target, if both were measured.
pub fn target_met(results: &[Measurement], scenario: Scenario) -> Option<bool> {
    ratio(results, scenario).map(|r| r <= scenario.target_ratio())
}

/// The table: one row per scenario in `results`.
pub fn table(results: &[Measurement], sizes: &Sizes) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:>7} {:>12} {:>12} {:>12} {:>9} {:>7}  met",
        "scenario", "ops", "ringlet ns", "tokio ns", "smol ns", "r/tokio", "target"
    );
    let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    for scenario in Scenario::ALL {
        if !results.iter().any(|m| m.scenario == scenario) {
            continue;
        }
        let met = match target_met(results, scenario) {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let _ = writeln!(
            out,
            "{:<13} {:>7} {:>12} {:>12} {:>12} {:>9} {:>7}  {}",
            scenario.name(),
            scenario.ops(sizes),
            cell(find(results, scenario, "ringlet")),
            cell(find(results, scenario, "tokio")),
            cell(find(results, scenario, "smol")),
            ratio(results, scenario).map_or_else(|| "-".to_string(), |r| format!("{r:.2}")),
            format!("<={:.1}", scenario.target_ratio()),
            met,
        );
    }
    out
}

/// The JSON list `[{"scenario": ..., "executor": ..., "ns_per_op": ...}, ...]`.
///
/// Names are fixed ASCII identifiers, so no escaping is needed.
pub fn json(results: &[Measurement]) -> String {
    let mut out = String::from("[\n");
    for (i, m) in results.iter().enumerate() {
        let sep = if i + 1 == results.len() { "" } else { "," };
        let ns = if m.ns_per_op.is_finite() {
            format!("{:.3}", m.ns_per_op)
        } else {
            "null".to_string()
        };
        let _ = writeln!(
            out,
            "  {{\"scenario\": \"{}\", \"executor\": \"{}\", \"ns_per_op\": {}}}{}",
            m.scenario.name(),
            m.executor,
            ns,
            sep
        );
    }
    out.push_str("]\n");
    out
}

#[cfg(test)]
mod test {
    use super::*;

    fn m(scenario: Scenario, executor: &'static str, ns_per_op: f64) -> Measurement {
        Measurement {
            scenario,
            executor,
            ns_per_op,
        }
    }

    #[test]
    fn ratio_and_target() {
        let r = [
            m(Scenario::Spawn, "ringlet", 20.0),
            m(Scenario::Spawn, "tokio", 100.0),
            m(Scenario::Yield, "ringlet", 95.0),
            m(Scenario::Yield, "tokio", 100.0),
        ];
        assert_eq!(ratio(&r, Scenario::Spawn), Some(0.2));
        assert_eq!(target_met(&r, Scenario::Spawn), Some(true));
        assert_eq!(target_met(&r, Scenario::Yield), Some(false));
        assert_eq!(target_met(&r, Scenario::Ring), None);
        let t = table(&r, &Sizes::FULL);
        assert!(t.contains("spawn"), "{t}");
        assert!(t.lines().nth(2).unwrap().ends_with("NO"), "{t}");
        assert!(!t.contains("ring "), "{t}");
    }

    #[test]
    fn json_shape() {
        let r = [
            m(Scenario::PingPong, "smol", 1.5),
            m(Scenario::CrossThread, "tokio", 2.25),
        ];
        assert_eq!(
            json(&r),
            "[\n  {\"scenario\": \"ping-pong\", \"executor\": \"smol\", \"ns_per_op\": 1.500},\n  \
             {\"scenario\": \"cross-thread\", \"executor\": \"tokio\", \"ns_per_op\": 2.250}\n]\n"
        );
    }
}
