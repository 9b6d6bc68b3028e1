//! The executors under test, behind one small interface.
//!
//! Every scenario is an `async fn` generic over [`Spawner`]; a [`Runtime`]
//! builds its executor once and runs one scenario round per
//! [`Runtime::block_on`]. Each implementation lives in its own file.

use core::future::Future;
use std::time::Duration;

mod ringlet;
mod smol;
mod tokio;

pub use self::ringlet::Ringlet;
pub use self::smol::Smol;
pub use self::tokio::Tokio;

/// Spawning and sleeping on the executor that runs the current scenario.
///
/// Tasks are `!Send` futures on the executor's thread.
pub trait Spawner: Clone + 'static {
    /// Spawns `fut`; the returned future resolves to its output. A task that
    /// panicked makes the returned future panic (the benchmark is void then).
    fn spawn<F>(&self, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + 'static,
        F::Output: 'static;

    /// The executor's own timer: resolves once `duration` has passed.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + 'static;
}

/// One executor, built once and reused for every round.
pub trait Runtime {
    /// The name in the table and in the JSON: `ringlet`, `tokio` or `smol`.
    const NAME: &'static str;

    /// What scenarios use to spawn and sleep.
    type Spawner: Spawner;

    /// Runs the future that `main` makes to completion on this thread.
    fn block_on<F: Future>(&mut self, main: impl FnOnce(Self::Spawner) -> F) -> F::Output;
}
