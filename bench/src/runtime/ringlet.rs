//! Ringlet's executor with its default `std` platform.

use super::{Runtime, Spawner};
use core::future::Future;
use std::time::Duration;

/// A Ringlet executor on the std platform.
#[derive(Debug)]
pub struct Ringlet {
    executor: ringlet_executor::Executor,
}

impl Ringlet {
    /// A fresh executor on the default std platform.
    pub fn new() -> Self {
        Self {
            executor: ringlet_executor::Executor::default(),
        }
    }
}

impl Default for Ringlet {
    fn default() -> Self {
        Self::new()
    }
}

/// Spawns with `ringlet_executor::spawn` onto the running executor.
#[derive(Debug, Clone, Copy)]
pub struct RingletSpawner;

impl Spawner for RingletSpawner {
    fn spawn<F>(&self, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let handle = ringlet_executor::spawn(fut);
        async move { handle.await.expect("ringlet task failed") }
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + 'static {
        ringlet_executor::sleep(duration)
    }
}

impl Runtime for Ringlet {
    const NAME: &'static str = "ringlet";
    type Spawner = RingletSpawner;

    fn block_on<F: Future>(&mut self, main: impl FnOnce(RingletSpawner) -> F) -> F::Output {
        self.executor.block_on(main(RingletSpawner))
    }
}
