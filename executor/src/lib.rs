// The README's example needs `std` (it runs on `StdPlatform`).
#![cfg_attr(feature = "std", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "std"),
    doc = "Ringlet's single-threaded async executor; see README.md (its example needs the `std` feature)."
)]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod context;
mod executor;
mod join;
pub mod platform;
mod remote;
mod run_queue;
#[cfg(feature = "std")]
mod std_platform;
mod sync;
mod task;
pub mod time;
mod timer;

#[cfg(all(test, not(loom)))]
mod tests;

pub use crate::context::interrupt_context;
pub use crate::executor::{Executor, Step, TICK_BATCH};
pub use crate::join::{JoinError, JoinHandle};
#[cfg(feature = "std")]
pub use crate::std_platform::{StdPlatform, StdUnparker};
pub use crate::task::{spawn, yield_now, YieldNow};
pub use crate::time::{
    interval, interval_at, sleep, sleep_until, timeout, timeout_at, Duration, Elapsed, Instant,
    Interval, MissedTickBehavior, Sleep, Timeout,
};
