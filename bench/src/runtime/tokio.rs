//! tokio's current_thread runtime with a `LocalSet`, so tasks may be `!Send`.

use super::{Runtime, Spawner};
use core::future::Future;
use std::time::Duration;

/// A tokio current_thread runtime (rt + time) and the `LocalSet` that runs
/// the scenario's tasks.
#[derive(Debug)]
pub struct Tokio {
    runtime: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
}

impl Tokio {
    /// Builds the runtime with its timer enabled.
    ///
    /// # Panics
    /// If tokio cannot build a runtime (it would be unusable anyway).
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio current_thread runtime");
        Self {
            runtime,
            local: tokio::task::LocalSet::new(),
        }
    }
}

impl Default for Tokio {
    fn default() -> Self {
        Self::new()
    }
}

/// Spawns with `tokio::task::spawn_local` into the running `LocalSet`.
#[derive(Debug, Clone, Copy)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn<F>(&self, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let handle = tokio::task::spawn_local(fut);
        async move { handle.await.expect("tokio task failed") }
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + 'static {
        tokio::time::sleep(duration)
    }
}

impl Runtime for Tokio {
    const NAME: &'static str = "tokio";
    type Spawner = TokioSpawner;

    fn block_on<F: Future>(&mut self, main: impl FnOnce(TokioSpawner) -> F) -> F::Output {
        self.local.block_on(&self.runtime, main(TokioSpawner))
    }
}
