//! The measuring loop: warm-up, best of several rounds, work checks.
//!
//! Rounds are interleaved: in every round each executor runs the scenario
//! once, in turn, so slow drift of the machine (frequency, a neighbour VM)
//! hits every executor alike. The best measured round counts.

use crate::runtime::{Ringlet, Runtime, Smol, Tokio};
use crate::scenarios::{self, Outcome, Scenario, Setup};
use core::fmt;

/// Rounds run and thrown away before measuring, per scenario.
pub const WARMUP_ROUNDS: u32 = 3;
/// Measured rounds per scenario; the best one counts.
pub const MEASURED_ROUNDS: u32 = 30;
/// `--quick`: no warm-up, one measured round (a smoke run, not a result).
pub const QUICK_WARMUP_ROUNDS: u32 = 0;
/// `--quick`: measured rounds.
pub const QUICK_MEASURED_ROUNDS: u32 = 1;

/// How many rounds to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rounds {
    /// Rounds thrown away first.
    pub warmup: u32,
    /// Rounds measured (at least 1).
    pub measured: u32,
}

impl Rounds {
    /// The full run.
    pub const FULL: Rounds = Rounds {
        warmup: WARMUP_ROUNDS,
        measured: MEASURED_ROUNDS,
    };
    /// The `--quick` smoke run.
    pub const QUICK: Rounds = Rounds {
        warmup: QUICK_WARMUP_ROUNDS,
        measured: QUICK_MEASURED_ROUNDS,
    };
}

/// Runs one round of a scenario on one (type-erased) executor.
type RunRound = Box<dyn FnMut(Scenario, &Setup) -> Outcome>;

/// One executor, type-erased so that rounds can be interleaved.
pub struct Contender {
    name: &'static str,
    run: RunRound,
}

impl fmt::Debug for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .finish()
    }
}

impl Contender {
    /// Wraps `runtime`, which is kept for every round.
    pub fn new<R: Runtime + 'static>(mut runtime: R) -> Self {
        Self {
            name: R::NAME,
            run: Box::new(move |scenario, setup| scenarios::run(&mut runtime, scenario, setup)),
        }
    }

    /// `ringlet`, `tokio` or `smol`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs one round.
    pub fn run(&mut self, scenario: Scenario, setup: &Setup) -> Outcome {
        (self.run)(scenario, setup)
    }
}

/// The names of all executors, in table order.
pub const EXECUTORS: [&str; 3] = [Ringlet::NAME, Tokio::NAME, Smol::NAME];

/// Builds the executor called `name`.
pub fn contender(name: &str) -> Option<Contender> {
    match name {
        Ringlet::NAME => Some(Contender::new(Ringlet::new())),
        Tokio::NAME => Some(Contender::new(Tokio::new())),
        Smol::NAME => Some(Contender::new(Smol::new())),
        _ => None,
    }
}

/// One result: the best round of one scenario on one executor.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The scenario.
    pub scenario: Scenario,
    /// The executor's name.
    pub executor: &'static str,
    /// Nanoseconds per operation in the best measured round.
    pub ns_per_op: f64,
}

/// A round did not do the work it was meant to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeasureError {
    /// The tasks counted fewer (or more) operations than the scenario performs.
    WorkMismatch {
        /// The scenario.
        scenario: Scenario,
        /// The executor.
        executor: &'static str,
        /// Operations the round should have performed.
        expected: u64,
        /// Operations the tasks counted.
        done: u64,
    },
}

impl fmt::Display for MeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WorkMismatch {
                scenario,
                executor,
                expected,
                done,
            } => write!(
                f,
                "{scenario} on {executor}: counted {done} operations, expected {expected}"
            ),
        }
    }
}

impl core::error::Error for MeasureError {}

/// Checks that `outcome` did all of `scenario`'s work at `setup`'s sizes.
///
/// # Errors
/// [`MeasureError::WorkMismatch`] if it did not.
pub fn check(
    scenario: Scenario,
    executor: &'static str,
    setup: &Setup,
    outcome: &Outcome,
) -> Result<(), MeasureError> {
    let expected = scenario.ops(&setup.sizes);
    if outcome.ops != expected || outcome.done != expected {
        return Err(MeasureError::WorkMismatch {
            scenario,
            executor,
            expected,
            done: outcome.done,
        });
    }
    Ok(())
}

/// Runs `scenario` on every contender for `rounds`, checking each round's
/// work, and returns the best measured round of each contender, in order.
///
/// # Errors
/// [`MeasureError`] as soon as any round (warm-up included) misses work.
pub fn measure(
    contenders: &mut [Contender],
    scenario: Scenario,
    setup: &Setup,
    rounds: Rounds,
) -> Result<Vec<Measurement>, MeasureError> {
    let mut best = vec![f64::INFINITY; contenders.len()];
    for round in 0..rounds.warmup + rounds.measured.max(1) {
        for (contender, best) in contenders.iter_mut().zip(&mut best) {
            let outcome = contender.run(scenario, setup);
            check(scenario, contender.name(), setup, &outcome)?;
            if round >= rounds.warmup {
                *best = best.min(outcome.ns_per_op());
            }
        }
    }
    Ok(contenders
        .iter()
        .zip(best)
        .map(|(c, ns_per_op)| Measurement {
            scenario,
            executor: c.name(),
            ns_per_op,
        })
        .collect())
}
