//! smol: async-executor's `LocalExecutor`, driven by async-io's `block_on`
//! (what `smol::block_on` is), with async-io's `Timer` for sleeps.

use super::{Runtime, Spawner};
use async_executor::LocalExecutor;
use core::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// An async-executor `LocalExecutor`.
#[derive(Debug)]
pub struct Smol {
    executor: Rc<LocalExecutor<'static>>,
}

impl Smol {
    /// A fresh `LocalExecutor`.
    pub fn new() -> Self {
        Self {
            executor: Rc::new(LocalExecutor::new()),
        }
    }
}

impl Default for Smol {
    fn default() -> Self {
        Self::new()
    }
}

/// Spawns onto the shared `LocalExecutor`.
#[derive(Debug, Clone)]
pub struct SmolSpawner(Rc<LocalExecutor<'static>>);

impl Spawner for SmolSpawner {
    fn spawn<F>(&self, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.0.spawn(fut)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + 'static {
        let timer = async_io::Timer::after(duration);
        async move {
            timer.await;
        }
    }
}

impl Runtime for Smol {
    const NAME: &'static str = "smol";
    type Spawner = SmolSpawner;

    fn block_on<F: Future>(&mut self, main: impl FnOnce(SmolSpawner) -> F) -> F::Output {
        let main = main(SmolSpawner(self.executor.clone()));
        async_io::block_on(self.executor.run(main))
    }
}
