//! Ringlet's executor: a single-threaded cooperative async executor.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod platform;
