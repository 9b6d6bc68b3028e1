//! The `std` platform: the executor as an event loop on an ordinary thread.
//!
//! Clock: `std::time::Instant` (CLOCK_MONOTONIC on Linux). Park: the thread
//! park of the thread that created the platform, with a timeout for the
//! deadline. Unpark: a flag plus `Thread::unpark` (a futex wake on Linux: no
//! allocation, no lock), called only when the flag was clear, so repeated
//! unparks coalesce. The flag (not only the thread's park token) carries the
//! wake, so code that uses thread park itself on this thread (a nested
//! `futures::executor::block_on`) cannot swallow it.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::thread::{self, Thread};

use crate::platform::{Platform, Unpark};

/// The default platform with `std`: the std clock and thread park.
///
/// It parks the thread that created it; build it on the thread that will
/// drive the executor (`Executor` is `!Send`, so `Executor::default()`
/// always does).
///
/// # Examples
///
/// ```
/// use ringlet_executor::{platform::Platform, StdPlatform};
///
/// let p = StdPlatform::new();
/// let t0 = p.now_ns();
/// p.park(Some(t0 + 1_000_000)); // at most about 1 ms
/// assert!(p.now_ns() >= t0);
/// ```
#[derive(Debug)]
pub struct StdPlatform {
    origin: std::time::Instant,
    unparker: Arc<StdUnparker>,
}

/// The [`Unpark`] of [`StdPlatform`].
#[derive(Debug)]
pub struct StdUnparker {
    thread: Thread,
    notified: AtomicBool,
}

impl StdPlatform {
    /// A platform that parks the calling thread.
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
            unparker: Arc::new(StdUnparker {
                thread: thread::current(),
                notified: AtomicBool::new(false),
            }),
        }
    }
}

impl Default for StdPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl Unpark for StdUnparker {
    fn unpark(&self) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

impl Platform for StdPlatform {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn poll(&self) {}

    fn park(&self, deadline_ns: Option<u64>) {
        debug_assert_eq!(
            thread::current().id(),
            self.unparker.thread.id(),
            "StdPlatform parked on a thread other than the one that built it"
        );
        loop {
            if self.unparker.notified.swap(false, Ordering::Acquire) {
                return;
            }
            match deadline_ns {
                None => thread::park(),
                Some(deadline) => {
                    let now = self.now_ns();
                    if now >= deadline {
                        return;
                    }
                    thread::park_timeout(Duration::from_nanos(deadline - now));
                }
            }
        }
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unparker.clone()
    }
}
