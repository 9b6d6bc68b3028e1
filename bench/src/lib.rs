//! Ringlet's benchmarks: the same executor scenarios on Ringlet, on tokio's
//! current_thread runtime and on smol's `LocalExecutor`, in one process.
//!
//! `cargo xtask bench executor` runs them (see `docs/benchmarks.md`); the
//! binary is `ringlet-bench`. Every scenario counts the work its tasks really
//! did and the harness refuses a round that missed any.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod affinity;
pub mod harness;
pub mod httpd;
pub mod net;
pub mod primitives;
pub mod report;
pub mod rng;
pub mod runtime;
pub mod scenarios;
pub mod storage;

#[cfg(test)]
mod test {
    use crate::harness::{self, Contender, Rounds, EXECUTORS};
    use crate::scenarios::{Scenario, Setup, Sizes};

    fn tiny() -> Setup {
        Setup {
            sizes: Sizes::TINY,
            helper_cpu: None,
        }
    }

    fn contenders() -> Vec<Contender> {
        EXECUTORS
            .iter()
            .map(|name| harness::contender(name).expect("known executor"))
            .collect()
    }

    /// Every scenario once on every executor at tiny size: the tasks must
    /// count exactly the operations the scenario performs.
    #[test]
    fn every_scenario_does_its_work_on_every_executor() {
        let setup = tiny();
        for mut contender in contenders() {
            for scenario in Scenario::ALL {
                let outcome = contender.run(scenario, &setup);
                assert_eq!(
                    outcome.ops,
                    scenario.ops(&setup.sizes),
                    "{scenario} on {}",
                    contender.name()
                );
                assert_eq!(
                    outcome.done,
                    outcome.ops,
                    "{scenario} on {}",
                    contender.name()
                );
                assert!(outcome.ops > 0);
                if scenario != Scenario::Timers {
                    assert!(!outcome.measured.is_zero(), "{scenario} measured nothing");
                }
            }
        }
    }

    /// The timer scenario really sleeps: a round takes at least the longest sleep.
    #[test]
    fn timers_take_at_least_the_longest_sleep() {
        let setup = tiny();
        let longest = crate::scenarios::timer_sleeps(&setup.sizes)
            .into_iter()
            .max()
            .unwrap();
        assert!(
            longest.as_micros() > 1_000,
            "seeded sleeps too short to test"
        );
        for mut contender in contenders() {
            let began = std::time::Instant::now();
            let outcome = contender.run(Scenario::Timers, &setup);
            assert!(began.elapsed() >= longest, "{}", contender.name());
            assert_eq!(outcome.done, outcome.ops, "{}", contender.name());
        }
    }

    /// The harness returns one finite measurement per executor and rejects
    /// an outcome that did less work than the scenario.
    #[test]
    fn harness_measures_and_checks() {
        let setup = tiny();
        let mut contenders = contenders();
        let rounds = Rounds {
            warmup: 1,
            measured: 2,
        };
        let results = harness::measure(&mut contenders, Scenario::Ring, &setup, rounds).unwrap();
        assert_eq!(results.len(), EXECUTORS.len());
        assert!(results
            .iter()
            .all(|m| m.ns_per_op.is_finite() && m.ns_per_op > 0.0));

        let mut short = contenders[0].run(Scenario::Spawn, &setup);
        short.done -= 1;
        assert!(harness::check(Scenario::Spawn, "x", &setup, &short).is_err());
    }
}
