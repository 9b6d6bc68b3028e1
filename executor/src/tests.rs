//! Tests of the whole executor: run order, fairness, join handles, timers on
//! a virtual clock, the step API, and wakes from other threads.
//!
//! Most tests drive the executor on [`Virtual`], a platform with a manual
//! clock that only moves when the executor parks (to the deadline it asks
//! for, or only half-way there to check that timers never fire early), and
//! that records every poll and park, so traces are exact.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{pending, poll_fn, Future};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{Poll, Waker};
use std::sync::Mutex;

use crate::platform::{Platform, Unpark};
use crate::sync::Arc;
use crate::*;

/// Counts unparks; a pending unpark ends the next park at once.
#[derive(Debug, Default)]
struct CountingUnpark {
    count: AtomicUsize,
    pending: AtomicBool,
}

impl Unpark for CountingUnpark {
    fn unpark(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.pending.store(true, Ordering::SeqCst);
    }
}

/// A platform with a manual clock (see the module doc).
#[derive(Debug, Default)]
struct Virtual {
    now: Cell<u64>,
    polls: Cell<usize>,
    parks: RefCell<Vec<Option<u64>>>,
    /// Park moves the clock only half-way to the deadline.
    early: Cell<bool>,
    unpark: Arc<CountingUnpark>,
}

impl Virtual {
    fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    fn unparks(&self) -> usize {
        self.unpark.count.load(Ordering::SeqCst)
    }
}

impl Platform for Virtual {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn poll(&self) {
        self.polls.set(self.polls.get() + 1);
    }

    fn park(&self, deadline_ns: Option<u64>) {
        self.parks.borrow_mut().push(deadline_ns);
        if self.unpark.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let Some(deadline) = deadline_ns else {
            panic!("parked with no deadline and no unpark pending: a lost wake or a deadlock");
        };
        let now = self.now.get();
        if deadline > now {
            let to = if self.early.get() {
                now + (deadline - now).div_ceil(2)
            } else {
                deadline
            };
            self.now.set(to);
        }
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }
}

type Trace = Rc<RefCell<Vec<String>>>;

fn trace() -> Trace {
    Rc::new(RefCell::new(Vec::new()))
}

fn log(t: &Trace, s: impl Into<String>) {
    t.borrow_mut().push(s.into());
}

fn taken(t: &Trace) -> Vec<String> {
    core::mem::take(&mut *t.borrow_mut())
}

/// Sets a flag when dropped (to see when a task's future is dropped).
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A one-shot signal another thread can fire: the waker slot of the tests
/// of cross-thread wakes.
#[derive(Default)]
struct Signal {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.fired.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.fired.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    fn has_waiter(&self) -> bool {
        self.waker.lock().unwrap().is_some()
    }
}

// ---------------------------------------------------------------- run order

#[test]
fn tasks_run_in_spawn_order_and_yield_to_the_back() {
    let ex = Executor::new(Virtual::new());
    let t = trace();
    for name in ["a", "b", "c"] {
        let t = t.clone();
        ex.spawn(async move {
            for i in 0..3 {
                log(&t, format!("{name}{i}"));
                yield_now().await;
            }
        })
        .detach();
    }
    assert_eq!(ex.run_until_stalled(), None);
    assert_eq!(
        taken(&t),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
}

#[test]
fn a_self_waking_task_cannot_starve_the_others() {
    let p = Virtual::new();
    let ex = Executor::new(p.clone());
    let t = trace();
    let hog = ex.spawn({
        let t = t.clone();
        async move {
            loop {
                log(&t, "hog");
                yield_now().await;
            }
        }
    });
    for name in ["x", "y"] {
        let t = t.clone();
        ex.spawn(async move {
            for i in 0..2 {
                log(&t, format!("{name}{i}"));
                yield_now().await;
            }
            log(&t, format!("{name} done"));
        })
        .detach();
    }
    // The first step runs one batch: the three tasks round-robin.
    assert_eq!(ex.step(), Step::Busy);
    let batch = taken(&t);
    assert_eq!(batch.len(), TICK_BATCH);
    assert_eq!(
        batch[..9],
        ["hog", "x0", "y0", "hog", "x1", "y1", "hog", "x done", "y done"]
    );
    assert!(batch[9..].iter().all(|s| s == "hog"));
    // The platform is polled once per tick even though the hog never stops.
    assert_eq!(p.polls.get(), 1);
    assert_eq!(ex.step(), Step::Busy);
    assert_eq!(p.polls.get(), 2);
    assert_eq!(taken(&t).len(), TICK_BATCH);
    // Cancelling the hog ends it; then nothing is runnable.
    drop(hog);
    assert_eq!(ex.run_until_stalled(), None);
    assert!(taken(&t).is_empty());
}

#[test]
fn block_on_polls_main_between_ticks_and_parks_only_when_idle() {
    let p = Virtual::new();
    let ex = Executor::new(p.clone());
    let t = trace();
    let out = ex.block_on({
        let t = t.clone();
        async move {
            let child = spawn({
                let t = t.clone();
                async move {
                    log(&t, "child");
                    yield_now().await;
                    log(&t, "child again");
                    7
                }
            });
            log(&t, "main");
            yield_now().await;
            log(&t, "main again");
            child.await.unwrap()
        }
    });
    assert_eq!(out, 7);
    // The main future is polled once per tick, before the batch; the child's
    // yield puts it at the back of the queue, still inside the same batch.
    assert_eq!(taken(&t), ["main", "child", "child again", "main again"]);
    assert!(p.parks.borrow().is_empty(), "never idle, never parked");
}

#[test]
fn spawn_outside_an_executor_panics_and_executor_spawn_works() {
    let r = std::panic::catch_unwind(|| spawn(async {}).detach());
    assert!(r.is_err());
    let ex = Executor::new(Virtual::new());
    let h = ex.spawn(async { 3 });
    assert_eq!(ex.block_on(h).unwrap(), 3);
}

#[test]
fn reentrant_block_on_panics() {
    let ex = Rc::new(Executor::new(Virtual::new()));
    let inner = ex.clone();
    let r = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        ex.block_on(async move { inner.block_on(async {}) })
    }));
    assert!(r.is_err());
    // The executor is still usable after the panic unwound out of block_on.
    assert_eq!(ex.block_on(async { 1 }), 1);
}

#[test]
fn main_future_panic_propagates_and_executor_stays_usable() {
    let ex = Executor::new(Virtual::new());
    let r = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        ex.block_on(async { panic!("boom in main") })
    }));
    assert!(r.is_err());
    let h = ex.spawn(async { 5 });
    assert_eq!(ex.block_on(h).unwrap(), 5);
}

// ------------------------------------------------------------- join handles

#[test]
fn join_handle_gives_the_output() {
    let ex = Executor::new(Virtual::new());
    let out = ex.block_on(async {
        let hs: Vec<_> = (0..10u64).map(|i| spawn(async move { i * i })).collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(out, 285);
}

#[test]
fn detached_task_runs_to_completion() {
    let ex = Executor::new(Virtual::new());
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    ex.spawn(async move {
        yield_now().await;
        sleep(Duration::from_nanos(10)).await;
        d.set(true);
    })
    .detach();
    ex.block_on(sleep(Duration::from_nanos(100)));
    assert!(done.get());
}

#[test]
fn dropping_a_join_handle_cancels_and_drops_the_future() {
    let ex = Executor::new(Virtual::new());
    let dropped = Rc::new(Cell::new(false));
    let polled = Rc::new(Cell::new(0));
    let h = ex.spawn({
        let (d, p) = (DropFlag(dropped.clone()), polled.clone());
        async move {
            let _d = d;
            loop {
                p.set(p.get() + 1);
                pending::<()>().await;
            }
        }
    });
    ex.run_until_stalled();
    assert_eq!(polled.get(), 1);
    assert!(!dropped.get());
    assert!(!h.is_finished());
    drop(h);
    // The future is dropped by the executor, not polled again.
    ex.run_until_stalled();
    assert!(dropped.get());
    assert_eq!(polled.get(), 1);
}

#[test]
fn cancel_waits_for_the_drop_and_reports_completion() {
    let ex = Executor::new(Virtual::new());
    let dropped = Rc::new(Cell::new(false));
    let out = ex.block_on({
        let d = DropFlag(dropped.clone());
        let dropped = dropped.clone();
        async move {
            let pending_task = spawn(async move {
                let _d = d;
                pending::<()>().await
            });
            yield_now().await; // let it start
            let r = pending_task.cancel().await;
            assert!(
                dropped.get(),
                "cancel() returns after the future is dropped"
            );
            assert!(matches!(r, Err(JoinError::Cancelled)));
            let finished = spawn(async { 9 });
            yield_now().await;
            finished.cancel().await
        }
    });
    assert_eq!(out.unwrap(), 9);
}

#[test]
fn dropping_the_executor_drops_queued_tasks() {
    let dropped = Rc::new(Cell::new(false));
    let ex = Executor::new(Virtual::new());
    let h = ex.spawn({
        let d = DropFlag(dropped.clone());
        async move {
            let _d = d;
            5
        }
    });
    drop(ex);
    assert!(dropped.get());
    // Awaited elsewhere (another executor), the handle reports cancellation.
    let other = Executor::new(Virtual::new());
    assert!(other.block_on(h).unwrap_err().is_cancelled());
}

#[test]
fn dropping_the_executor_drops_tasks_waiting_on_its_timers() {
    let dropped = Rc::new(Cell::new(false));
    let ex = Executor::new(Virtual::new());
    ex.spawn({
        let d = DropFlag(dropped.clone());
        async move {
            let _d = d;
            sleep(Duration::from_secs(1)).await;
        }
    })
    .detach();
    assert_eq!(
        ex.run_until_stalled(),
        Some(Instant::from_nanos(1_000_000_000))
    );
    assert!(!dropped.get());
    drop(ex);
    assert!(dropped.get(), "the timer's waker was the last reference");
}

#[cfg(feature = "std")]
#[test]
fn a_panicking_task_is_reported_through_its_join_handle() {
    let ex = Executor::new(Virtual::new());
    let (bad, good) = ex.block_on(async {
        let bad = spawn(async {
            yield_now().await;
            panic!("task exploded");
        });
        let good = spawn(async {
            yield_now().await;
            yield_now().await;
            1
        });
        (bad.await, good.await)
    });
    let err = bad.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("task exploded"));
    assert_eq!(format!("{err}"), "task panicked: task exploded");
    assert_eq!(good.unwrap(), 1);
}

// ------------------------------------------------------------------ timers

#[test]
fn timers_fire_in_deadline_order_never_early_and_park_asks_for_the_deadline() {
    for early in [false, true] {
        let p = Virtual::new();
        p.early.set(early);
        let ex = Executor::new(p.clone());
        let t = trace();
        // (name, sleep ns); equal deadlines fire in registration order.
        let plan = [("c", 300u64), ("a", 100), ("d", 300), ("b", 200), ("z", 0)];
        ex.block_on({
            let t = t.clone();
            async move {
                let hs: Vec<_> = plan
                    .iter()
                    .map(|&(name, ns)| {
                        let t = t.clone();
                        spawn(async move {
                            let deadline = Instant::now() + Duration::from_nanos(ns);
                            sleep(Duration::from_nanos(ns)).await;
                            let now = Instant::now();
                            assert!(
                                now >= deadline,
                                "{name} fired early: {now:?} < {deadline:?}"
                            );
                            log(&t, format!("{name}@{}", now.as_nanos()));
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            }
        });
        if early {
            // The clock creeps up in halves; each timer fires at the first
            // clock reading at or after its deadline, never before.
            let fired = taken(&t);
            let names: Vec<_> = fired.iter().map(|s| &s[..1]).collect();
            assert_eq!(names, ["z", "a", "b", "c", "d"]);
        } else {
            assert_eq!(taken(&t), ["z@0", "a@100", "b@200", "c@300", "d@300"]);
            assert_eq!(*p.parks.borrow(), [Some(100), Some(200), Some(300)]);
        }
    }
}

#[test]
fn a_dropped_sleep_removes_its_timer() {
    let p = Virtual::new();
    let ex = Executor::new(p.clone());
    ex.block_on(async {
        let mut long = core::pin::pin!(sleep(Duration::from_secs(10)));
        // Poll once so it registers.
        poll_fn(|cx| {
            assert!(long.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
    });
    assert_eq!(ex.next_deadline(), None);
    assert!(p.parks.borrow().is_empty());
}

#[test]
fn sleep_zero_and_past_deadlines_complete_without_parking() {
    let p = Virtual::new();
    p.now.set(1_000);
    let ex = Executor::new(p.clone());
    ex.block_on(async {
        sleep(Duration::ZERO).await;
        sleep_until(Instant::from_nanos(5)).await;
    });
    assert!(p.parks.borrow().is_empty());
}

#[test]
fn sleep_reset_moves_the_deadline() {
    let ex = Executor::new(Virtual::new());
    ex.block_on(async {
        let mut s = sleep(Duration::from_nanos(100));
        poll_fn(|cx| {
            assert!(Pin::new(&mut s).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        s.reset(Instant::from_nanos(40));
        (&mut s).await;
        assert_eq!(Instant::now().as_nanos(), 40);
        assert!(s.is_elapsed());
        s.reset(Instant::from_nanos(70));
        s.await;
        assert_eq!(Instant::now().as_nanos(), 70);
    });
}

#[test]
fn timeout_returns_output_or_elapsed_at_the_deadline() {
    let ex = Executor::new(Virtual::new());
    ex.block_on(async {
        let quick = timeout(Duration::from_nanos(100), async {
            sleep(Duration::from_nanos(50)).await;
            "done"
        });
        assert_eq!(quick.await, Ok("done"));
        assert_eq!(Instant::now().as_nanos(), 50);
        let slow = timeout(Duration::from_nanos(100), pending::<()>());
        assert_eq!(slow.await, Err(Elapsed));
        assert_eq!(Instant::now().as_nanos(), 150);
        // A ready future wins even with a zero timeout.
        assert_eq!(timeout(Duration::ZERO, async { 1 }).await, Ok(1));
        assert_eq!(
            timeout_at(Instant::from_nanos(0), pending::<()>()).await,
            Err(Elapsed)
        );
    });
    assert_eq!(ex.next_deadline(), None, "timeouts leave no timer behind");
}

#[test]
fn interval_ticks_on_schedule_and_handles_missed_ticks() {
    use MissedTickBehavior::*;
    for (behavior, expect) in [
        (Skip, vec![0, 10, 20, 30, 60, 70]),
        (Burst, vec![0, 10, 20, 30, 40, 50]),
        (Delay, vec![0, 10, 20, 30, 65, 75]),
    ] {
        let p = Virtual::new();
        let ex = Executor::new(p.clone());
        let clock = p.clone();
        let ticks = ex.block_on(async move {
            let mut iv = interval(Duration::from_nanos(10));
            iv.set_missed_tick_behavior(behavior);
            let mut ticks = Vec::new();
            for i in 0..6 {
                let tick = iv.tick().await;
                assert!(Instant::now() >= tick);
                ticks.push(tick.as_nanos());
                if i == 2 {
                    // The task is busy until 55: the ticks at 30, 40 and 50
                    // are missed.
                    clock.now.set(55);
                }
            }
            ticks
        });
        assert_eq!(ticks, expect, "{behavior:?}");
    }
}

#[test]
fn hundred_thousand_timers_fire_in_order() {
    const N: usize = 100_000;
    let p = Virtual::new();
    let ex = Executor::new(p.clone());
    let last = Rc::new(Cell::new(0u64));
    let count = Rc::new(Cell::new(0usize));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..N {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let ns = seed % 1_000_000;
        let (last, count) = (last.clone(), count.clone());
        ex.spawn(async move {
            sleep_until(Instant::from_nanos(ns)).await;
            let now = Instant::now().as_nanos();
            assert!(now >= ns);
            assert!(ns >= last.get(), "fired out of order");
            last.set(ns);
            count.set(count.get() + 1);
        })
        .detach();
    }
    ex.block_on(sleep_until(Instant::from_nanos(1_000_000)));
    assert_eq!(count.get(), N);
    assert_eq!(ex.next_deadline(), None);
}

#[test]
fn hundred_thousand_dropped_timers_leave_nothing_behind() {
    const N: usize = 100_000;
    let ex = Executor::new(Virtual::new());
    let handles: Vec<_> = (0..N as u64)
        .map(|i| ex.spawn(sleep(Duration::from_nanos(1_000 + i))))
        .collect();
    assert_eq!(ex.run_until_stalled(), Some(Instant::from_nanos(1_000)));
    drop(handles);
    assert_eq!(ex.run_until_stalled(), None);
    ex.block_on(async {
        // The slab is reused, not grown, by the next round.
        let core_timers = crate::context::with_current(|c| c.unwrap().timers.clone());
        let slots = core_timers.heap.borrow().slot_count();
        assert!(slots <= N);
        let again: Vec<_> = (0..N as u64)
            .map(|i| spawn(sleep(Duration::from_nanos(1 + i))))
            .collect();
        for h in again {
            h.await.unwrap();
        }
        assert_eq!(core_timers.heap.borrow().slot_count(), slots);
        core_timers.heap.borrow().check();
    });
}

// --------------------------------------------------------------- many tasks

#[test]
fn hundred_thousand_tasks() {
    const N: u64 = 100_000;
    let ex = Executor::new(Virtual::new());
    let sum = ex.block_on(async {
        let hs: Vec<_> = (0..N)
            .map(|i| {
                spawn(async move {
                    yield_now().await;
                    i
                })
            })
            .collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, N * (N - 1) / 2);
}

// ----------------------------------------------------------- the step API

#[test]
fn step_reports_busy_idle_and_the_next_deadline() {
    let p = Virtual::new();
    let ex = Executor::new(p.clone());
    assert_eq!(ex.step(), Step::Idle { deadline: None });
    let h = ex.spawn(async {
        sleep(Duration::from_nanos(500)).await;
        sleep(Duration::from_nanos(500)).await;
        2
    });
    assert_eq!(
        ex.step(),
        Step::Idle {
            deadline: Some(Instant::from_nanos(500))
        }
    );
    // A foreign loop moves its own clock and steps again.
    p.now.set(499);
    assert!(matches!(ex.step(), Step::Idle { .. }));
    assert!(!h.is_finished());
    p.now.set(500);
    assert_eq!(
        ex.step(),
        Step::Idle {
            deadline: Some(Instant::from_nanos(1_000))
        }
    );
    p.now.set(1_000);
    assert_eq!(ex.step(), Step::Idle { deadline: None });
    assert!(h.is_finished());
    assert!(p.parks.borrow().is_empty(), "step never parks");
}

#[test]
fn remote_wake_transitions() {
    // Transitions 1-4 of the park state (see `remote`), with exact unpark
    // counts.
    let p = Virtual::new();
    let ex = Executor::new(p.clone());
    let state = || ex.core_for_tests().shared.state_name();
    let a = Arc::new(Signal::default());
    let b = Arc::new(Signal::default());
    for s in [&a, &b] {
        let s = s.clone();
        ex.spawn(async move { s.wait().await }).detach();
    }
    // (1) nothing runnable: PARKED.
    assert_eq!(ex.step(), Step::Idle { deadline: None });
    assert_eq!(state(), "PARKED");
    assert_eq!(p.unparks(), 0);
    // (3) a wake from another thread unparks once; (coalescing) the second
    // wake does not unpark again.
    std::thread::scope(|s| {
        s.spawn(|| a.fire());
    });
    assert_eq!(state(), "NOTIFIED");
    assert_eq!(p.unparks(), 1);
    std::thread::scope(|s| {
        s.spawn(|| b.fire());
    });
    assert_eq!(p.unparks(), 1);
    // (4) the next step runs both and parks again.
    assert_eq!(ex.step(), Step::Idle { deadline: None });
    assert_eq!(state(), "PARKED");
    // (2) a wake while RUNNING does not unpark: a task wakes a second task
    // from this thread (local path) and a third from another thread.
    let c = Arc::new(Signal::default());
    let d = Arc::new(Signal::default());
    for s in [&c, &d] {
        let s = s.clone();
        ex.spawn(async move { s.wait().await }).detach();
    }
    assert_eq!(ex.step(), Step::Idle { deadline: None });
    let before = p.unparks();
    assert_eq!(before, 1, "spawning outside the context wakes nothing");
    let (c2, d2) = (c.clone(), d.clone());
    ex.spawn(async move {
        c2.fire();
        std::thread::scope(|s| {
            s.spawn(|| d2.fire());
        });
    })
    .detach();
    // The spawn came from outside the executor's context, so it did not go
    // through the wake path; the step runs everything without unparking.
    ex.run_until_stalled();
    assert_eq!(p.unparks(), before);
    assert!(c.fired.load(Ordering::SeqCst) && !c.has_waiter());
    assert!(!d.has_waiter());
}

#[test]
fn interrupt_context_has_no_current_executor() {
    let ex = Executor::new(Virtual::new());
    ex.block_on(async {
        assert!(Instant::try_now().is_some());
        interrupt_context(|| assert!(Instant::try_now().is_none()));
        assert!(Instant::try_now().is_some());
    });
}

#[test]
fn a_wake_in_interrupt_context_takes_the_remote_path() {
    let p = Virtual::new();
    let ex = Executor::new(p.clone());
    let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
    let woken = Rc::new(Cell::new(false));
    ex.spawn({
        let (slot, woken) = (slot.clone(), woken.clone());
        poll_fn(move |cx| {
            if woken.get() {
                return Poll::Ready(());
            }
            *slot.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
    })
    .detach();
    assert!(matches!(ex.step(), Step::Idle { .. }));
    ex.spawn({
        let (slot, woken) = (slot.clone(), woken.clone());
        async move {
            woken.set(true);
            let w = slot.borrow_mut().take().unwrap();
            interrupt_context(|| w.wake());
        }
    })
    .detach();
    // The executor is RUNNING during the step, so no unpark; but the wake
    // went to the remote list (a local wake would have run the task in this
    // same tick), which the next tick drains.
    assert_eq!(ex.step(), Step::Busy);
    assert!(ex.core_for_tests().shared.has_remote());
    assert_eq!(p.unparks(), 0);
    assert_eq!(ex.step(), Step::Idle { deadline: None });
    assert!(!ex.core_for_tests().shared.has_remote());
    assert_eq!(ex.runnable_len(), 0);
}

/// A hand-written foreign event loop drives the executor with `step`: its
/// own events (and the executor's unpark) arrive on one socket it blocks on
/// with a timeout, as an epoll loop would on an eventfd.
#[cfg(feature = "std")]
#[test]
fn a_foreign_loop_drives_the_executor_through_step() {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration as StdDuration;

    /// Clock from std; unpark writes one datagram to the loop's socket.
    struct LoopPlatform {
        clock: StdPlatform,
        unpark: Arc<SocketUnpark>,
    }
    struct SocketUnpark(UnixDatagram);
    impl Unpark for SocketUnpark {
        fn unpark(&self) {
            // A syscall: no allocation, no lock. A full socket buffer means
            // the loop has wake-ups pending anyway.
            let _ = self.0.send(b"u");
        }
    }
    impl Platform for LoopPlatform {
        fn now_ns(&self) -> u64 {
            self.clock.now_ns()
        }
        fn poll(&self) {}
        fn park(&self, _: Option<u64>) {
            unreachable!("a stepped executor never parks")
        }
        fn unparker(&self) -> Arc<dyn Unpark> {
            self.unpark.clone()
        }
    }

    let (loop_rx, unpark_tx) = UnixDatagram::pair().unwrap();
    let events_tx = unpark_tx.try_clone().unwrap();
    unpark_tx.set_nonblocking(true).unwrap();
    let ex = Executor::new(LoopPlatform {
        clock: StdPlatform::new(),
        unpark: Arc::new(SocketUnpark(unpark_tx)),
    });
    let done = Rc::new(Cell::new(0));
    let signal = Arc::new(Signal::default());
    // A task woken from another thread, and the thread that sends the
    // loop's own events.
    ex.spawn({
        let (signal, done) = (signal.clone(), done.clone());
        async move {
            signal.wait().await;
            done.set(done.get() + 1);
        }
    })
    .detach();
    let producer = std::thread::spawn({
        let signal = signal.clone();
        move || {
            for i in 0..3u8 {
                std::thread::sleep(StdDuration::from_millis(2));
                events_tx.send(&[b'e', i]).unwrap();
            }
            std::thread::sleep(StdDuration::from_millis(2));
            signal.fire();
        }
    });

    // A spinning loop (step Busy forever, or a deadline that never passes)
    // fails here; a few dozen turns are enough when it works.
    const TURNS_MAX: usize = 100_000;
    let mut buf = [0u8; 16];
    let mut events = 0;
    let mut unparks = 0;
    let mut turns = 0;
    loop {
        turns += 1;
        assert!(turns <= TURNS_MAX, "foreign loop stuck");
        let step = ex.step();
        if done.get() == 4 {
            break;
        }
        let deadline = match step {
            Step::Busy => continue,
            Step::Idle { deadline } => deadline,
        };
        // Block on the loop's socket until the executor's deadline.
        let timeout = deadline.map(|d| {
            let now = ex.now();
            StdDuration::from_nanos(d.as_nanos().saturating_sub(now.as_nanos()).max(1))
        });
        loop_rx.set_read_timeout(timeout).unwrap();
        match loop_rx.recv(&mut buf) {
            Ok(n) if buf[0] == b'e' => {
                events += 1;
                assert_eq!(n, 2);
                // The loop's own event starts work on the executor.
                let done = done.clone();
                ex.spawn(async move {
                    sleep(Duration::from_millis(1)).await;
                    done.set(done.get() + 1);
                })
                .detach();
            }
            Ok(_) => unparks += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(events, 3);
    assert!(
        unparks >= 1,
        "the cross-thread wake reached the loop as an unpark"
    );
}

// ------------------------------------------------------- cross-thread wakes

#[cfg(feature = "std")]
#[test]
fn tasks_woken_from_other_threads() {
    const N: usize = 1_000;
    let ex = Executor::default();
    let signals: Vec<Arc<Signal>> = (0..N).map(|_| Arc::default()).collect();
    let count = Rc::new(Cell::new(0));
    for s in &signals {
        let (s, count) = (s.clone(), count.clone());
        ex.spawn(async move {
            s.wait().await;
            count.set(count.get() + 1);
        })
        .detach();
    }
    ex.run_until_stalled();
    let waker_thread = std::thread::spawn({
        let signals = signals.clone();
        move || {
            for s in signals.iter().rev() {
                s.fire();
            }
        }
    });
    let r = ex.block_on(timeout(Duration::from_secs(10), async {
        while count.get() < N {
            yield_now().await;
            sleep(Duration::from_micros(50)).await;
        }
    }));
    waker_thread.join().unwrap();
    assert_eq!(r, Ok(()));
    assert_eq!(count.get(), N);
}

/// Ping-pong with another thread through the park handshake, many times:
/// a lost wake would leave the executor parked and the watchdog timeout
/// would report it (instead of hanging).
#[cfg(feature = "std")]
#[test]
fn no_lost_wake_across_park() {
    const ROUNDS: usize = 20_000;
    let ex = Executor::default();
    let ping: Arc<Mutex<Option<Waker>>> = Arc::default();
    let turn = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let other = std::thread::spawn({
        let (ping, turn, stop) = (ping.clone(), turn.clone(), stop.clone());
        move || {
            for round in 0..ROUNDS {
                // Wait for the executor's side of this round.
                while turn.load(Ordering::SeqCst) != 2 * round + 1 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::yield_now();
                }
                turn.store(2 * round + 2, Ordering::SeqCst);
                if let Some(w) = ping.lock().unwrap().take() {
                    w.wake();
                }
            }
        }
    });
    // Half the rounds wait in a task, half in the main future itself.
    let task_side = {
        let (ping, turn) = (ping.clone(), turn.clone());
        move |round: usize| {
            let (ping, turn) = (ping.clone(), turn.clone());
            poll_fn(move |cx| {
                if turn.load(Ordering::SeqCst) == 2 * round + 2 {
                    return Poll::Ready(());
                }
                *ping.lock().unwrap() = Some(cx.waker().clone());
                if turn.load(Ordering::SeqCst) == 2 * round + 1 {
                    return Poll::Pending;
                }
                if turn.load(Ordering::SeqCst) == 2 * round {
                    turn.store(2 * round + 1, Ordering::SeqCst);
                    return Poll::Pending;
                }
                Poll::Ready(())
            })
        }
    };
    let done = Rc::new(Cell::new(0));
    let r = ex.block_on(timeout(Duration::from_secs(60), {
        let done = done.clone();
        async move {
            for round in 0..ROUNDS {
                if round % 2 == 0 {
                    task_side(round).await;
                } else {
                    spawn(task_side(round)).await.unwrap();
                }
                done.set(round + 1);
            }
        }
    }));
    stop.store(true, Ordering::SeqCst);
    other.join().unwrap();
    assert_eq!(
        r,
        Ok(()),
        "a wake was lost (or the machine is very slow): {} of {ROUNDS} rounds, turn {}",
        done.get(),
        turn.load(Ordering::SeqCst)
    );
}

#[cfg(feature = "std")]
#[test]
fn std_clock_timers_never_fire_early() {
    let ex = Executor::default();
    let mut seed = 0x1234_5678_9abc_def1u64;
    let hs: Vec<_> = (0..200)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let d = Duration::from_micros(seed % 5_000);
            ex.spawn(async move {
                let deadline = Instant::now() + d;
                sleep(d).await;
                assert!(Instant::now() >= deadline);
                d
            })
        })
        .collect();
    let start = ex.now();
    let longest = ex.block_on(async {
        let mut longest = Duration::ZERO;
        for h in hs {
            longest = longest.max(h.await.unwrap());
        }
        longest
    });
    // Never early; how late is the machine's business (no wall-clock upper
    // bound: timing belongs in bench/).
    assert!(ex.now() - start >= longest);
}

#[cfg(feature = "std")]
#[test]
fn std_block_on_sleeps_on_the_real_clock() {
    let ex = Executor::default();
    let wall = std::time::Instant::now();
    ex.block_on(sleep(Duration::from_millis(20)));
    let took = wall.elapsed();
    // Never early (no upper bound: a loaded machine may be late).
    assert!(took >= std::time::Duration::from_millis(20), "{took:?}");
}

#[cfg(feature = "std")]
#[test]
fn main_future_woken_from_another_thread() {
    let ex = Executor::default();
    let signal = Arc::new(Signal::default());
    let t = std::thread::spawn({
        let signal = signal.clone();
        move || {
            while !signal.has_waiter() {
                std::thread::yield_now();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            signal.fire();
        }
    });
    ex.block_on(signal.wait());
    t.join().unwrap();
}
