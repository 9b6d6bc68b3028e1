//! The `no_std` build's context: one global "current executor" instead of a
//! thread-local. An integration test compiles the library without
//! `cfg(test)`, so without the `std` feature this exercises that global.
//! Everything runs in one `#[test]` (one thread), as on Ringlet's one vCPU.
#![cfg(not(feature = "std"))]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ringlet_executor::platform::{Platform, Unpark};
use ringlet_executor::{
    interrupt_context, sleep, spawn, yield_now, Duration, Executor, Instant, Step,
};

#[derive(Default)]
struct Flag(AtomicBool);

impl Unpark for Flag {
    fn unpark(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A manual clock that jumps to the deadline when parked.
#[derive(Default)]
struct Virtual {
    now: Cell<u64>,
    unpark: Arc<Flag>,
}

impl Platform for Virtual {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }
    fn poll(&self) {}
    fn park(&self, deadline_ns: Option<u64>) {
        if self.unpark.0.swap(false, Ordering::SeqCst) {
            return;
        }
        let deadline = deadline_ns.expect("parked forever: a lost wake");
        self.now.set(self.now.get().max(deadline));
    }
    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }
}

#[test]
fn the_global_context_works_like_the_thread_local_one() {
    assert!(Instant::try_now().is_none());
    let outer = Executor::new(Virtual::default());
    let inner = Rc::new(Executor::new(Rc::new(Virtual::default())));

    let out = outer.block_on({
        let inner = inner.clone();
        async move {
            let t0 = Instant::now();
            let a = spawn(async {
                sleep(Duration::from_nanos(500)).await;
                Instant::now().as_nanos()
            });
            yield_now().await;
            // A wake in interrupt context sees no current executor.
            interrupt_context(|| assert!(Instant::try_now().is_none()));
            assert_eq!(Instant::try_now(), Some(t0));
            // A nested executor takes over the context and gives it back.
            let nested = inner.block_on(async {
                let h = spawn(async { 7 });
                h.await.unwrap()
            });
            assert_eq!(nested, 7);
            assert_eq!(Instant::try_now(), Some(t0));
            a.await.unwrap()
        }
    });
    assert_eq!(out, 500);
    assert!(Instant::try_now().is_none());

    // The step API from outside any context.
    let woken = Rc::new(Cell::new(false));
    let w = woken.clone();
    outer
        .spawn(async move {
            sleep(Duration::from_nanos(100)).await;
            w.set(true);
        })
        .detach();
    assert_eq!(
        outer.step(),
        Step::Idle {
            deadline: Some(Instant::from_nanos(600))
        }
    );
    assert!(!woken.get());
}
