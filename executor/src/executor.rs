//! The executor: its core, the tick loop, `block_on` and the step API.
//!
//! # The tick
//!
//! One tick, in order:
//! 1. move remotely woken tasks (the [remote list](crate::remote)) to the
//!    back of the [run queue](crate::run_queue);
//! 2. if timers are armed, read the clock once and wake every timer whose
//!    deadline has passed (earliest first);
//! 3. run at most [`TICK_BATCH`] tasks from the front of the run queue;
//! 4. call [`Platform::poll`] once, so a busy executor still sees I/O.
//!
//! `block_on` polls its own future (when woken) before each tick. When a
//! tick leaves nothing runnable, the executor parks: [`Platform::park`] with
//! the earliest timer deadline, after the park handshake that makes a
//! concurrent remote wake either visible or an unpark (see
//! [`remote`](crate::remote)).
//!
//! # Fairness
//!
//! The run queue is FIFO and a task woken while it runs goes to its back, so
//! a task that always wakes itself runs once per round of the others; the
//! batch bound makes the timers, the remote list and the platform come round
//! at least every `TICK_BATCH` polls.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::task::Wake;
use core::cell::Cell;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use crate::context;
use crate::join::JoinHandle;
use crate::platform::Platform;
use crate::remote::{OwnedShared, Shared, SharedRef};
use crate::run_queue::RunQueue;
use crate::sync::Arc;
use crate::task::spawn_on;
use crate::time::Instant;
use crate::timer::Timers;

/// The most tasks one tick runs before it looks at timers, remote wakes and
/// the platform again.
pub const TICK_BATCH: usize = 64;

/// What one [`Executor::step`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Tasks are still runnable: call `step` again soon (a foreign loop
    /// should check its own event sources without blocking first).
    Busy,
    /// Nothing is runnable. Block until `deadline` (the earliest timer;
    /// `None`: no timer) or until the platform's [`Unpark`] fires, then call
    /// `step` again. From now until the next `step`, the executor counts as
    /// parked: the first wake from outside its context calls
    /// [`Unpark::unpark`] (once; later wakes coalesce).
    ///
    /// [`Unpark`]: crate::platform::Unpark
    /// [`Unpark::unpark`]: crate::platform::Unpark::unpark
    Idle {
        /// When the earliest timer is due.
        deadline: Option<Instant>,
    },
}

/// The executor's state, at a fixed address (boxed) for the context.
pub(crate) struct Core {
    pub(crate) shared: OwnedShared,
    pub(crate) run_queue: RunQueue,
    pub(crate) timers: Rc<Timers>,
    platform: Box<dyn Platform>,
    /// The waker of `block_on`'s future.
    main_waker: Waker,
    /// Inside `block_on`, `step` or drop (no re-entry).
    running: Cell<bool>,
}

/// The waker of `block_on`'s future: a flag, plus an unpark when needed.
struct MainWaker {
    shared: SharedRef,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        context::with_current(|core| match core {
            Some(core) if core.shared.is(&self.shared) => self.shared.wake_main_local(),
            _ => self.shared.wake_main_remote(),
        })
    }
}

impl Core {
    /// The platform clock, recorded for the timers.
    pub(crate) fn now(&self) -> Instant {
        let now = self.platform.now_ns();
        self.timers.observe_now(now);
        Instant::from_nanos(now)
    }

    /// One tick (see the module doc).
    fn tick(&self) {
        if self.shared.has_remote() {
            self.run_queue.take_remote(&self.shared);
        }
        if !self.timers.is_empty() {
            self.timers.fire(self.platform.now_ns());
        }
        for _ in 0..TICK_BATCH {
            match self.run_queue.pop() {
                Some(runnable) => {
                    runnable.run();
                }
                None => break,
            }
        }
        self.platform.poll();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline().map(Instant::from_nanos)
    }

    /// Marks the core running; the guard unmarks it (also on unwind).
    fn begin(&self, what: &str) -> Running<'_> {
        assert!(
            !self.running.replace(true),
            "Executor::{what} called while the executor is already running (re-entrantly, from one of its own tasks?)"
        );
        Running(&self.running)
    }
}

struct Running<'a>(&'a Cell<bool>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// A single-threaded async executor over a [`Platform`].
///
/// Tasks ([`spawn`](Executor::spawn)) need not be `Send`; they run on the
/// thread that drives the executor, through [`block_on`](Executor::block_on)
/// or [`step`](Executor::step). Their wakers are `Send + Sync` and may be
/// used from any thread. The executor is `!Send`.
///
/// # Dropping
///
/// Dropping the executor drops every queued task's future (their
/// `JoinHandle`s report [`JoinError::Cancelled`](crate::JoinError::Cancelled))
/// and the wakers its timers hold. A task that is not queued and whose waker
/// is held elsewhere (another thread, a device) is dropped if that waker is
/// dropped while the executor still exists; a task woken after the executor
/// is gone is leaked, because its future may not be `Send` and so cannot be
/// dropped on the waking thread.
pub struct Executor {
    core: Box<Core>,
    _not_send: PhantomData<*const ()>,
}

impl Executor {
    /// An executor over `platform`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "std")] {
    /// use ringlet_executor::{Executor, StdPlatform};
    ///
    /// let ex = Executor::new(StdPlatform::new());
    /// assert_eq!(ex.block_on(async { 1 + 1 }), 2);
    /// # }
    /// ```
    pub fn new(platform: impl Platform + 'static) -> Self {
        let shared = OwnedShared::new(Shared::new(platform.unparker()));
        let main_waker = Waker::from(Arc::new(MainWaker {
            shared: shared.new_ref(),
        }));
        let core = Core {
            shared,
            run_queue: RunQueue::new(),
            timers: Rc::new(Timers::new()),
            platform: Box::new(platform),
            main_waker,
            running: Cell::new(false),
        };
        core.timers.observe_now(core.platform.now_ns());
        Self {
            core: Box::new(core),
            _not_send: PhantomData,
        }
    }

    /// An executor over [`StdPlatform`](crate::StdPlatform) for the calling
    /// thread (the same as `Executor::default()`).
    #[cfg(feature = "std")]
    pub fn new_std() -> Self {
        Self::new(crate::StdPlatform::new())
    }

    /// Spawns `future` on this executor; see [`spawn`](crate::spawn).
    ///
    /// Works outside the executor's context too: the task runs once the
    /// executor is driven.
    ///
    /// # Cancellation
    ///
    /// Dropping the [`JoinHandle`] cancels the task.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_on(&self.core, future)
    }

    /// Runs the executor until `future` completes; returns its output.
    ///
    /// `future` need not be `'static` or `Send`; it is polled on this
    /// thread, in the executor's context, so it and the tasks may use
    /// [`spawn`](crate::spawn), [`sleep`](crate::sleep) and
    /// [`Instant::now`]. Tasks still pending when it completes stay queued
    /// for the next `block_on` or `step`.
    ///
    /// # Panics
    ///
    /// If called from inside this executor (re-entrantly), and if `future`
    /// panics (the panic propagates; the executor stays usable).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "std")] {
    /// use ringlet_executor::{sleep, spawn, Duration, Executor};
    ///
    /// let ex = Executor::default();
    /// let sum = ex.block_on(async {
    ///     let slow = spawn(async {
    ///         sleep(Duration::from_millis(1)).await;
    ///         1
    ///     });
    ///     slow.await.unwrap() + 1
    /// });
    /// assert_eq!(sum, 2);
    /// # }
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let core = &*self.core;
        let _running = core.begin("block_on");
        let _enter = context::enter(core);
        let mut future = pin!(future);
        let mut cx = Context::from_waker(&core.main_waker);
        core.shared.set_running();
        core.shared.wake_main_local();
        loop {
            if core.shared.take_main() {
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            core.tick();
            if core.run_queue.is_empty() && !core.shared.main_pending() {
                let deadline = core.timers.next_deadline();
                if core.shared.prepare_park(true) {
                    core.platform.park(deadline);
                    core.shared.set_running();
                }
            }
        }
    }

    /// Another name for [`block_on`](Executor::block_on).
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        self.block_on(future)
    }

    /// Runs one tick and says what is left: the embedding API, for a
    /// foreign event loop (epoll, another runtime) that drives the executor.
    ///
    /// A step never blocks: it takes the remote wakes, fires due timers,
    /// runs at most [`TICK_BATCH`] tasks and calls [`Platform::poll`] once.
    /// It never calls [`Platform::park`]: blocking is the foreign loop's
    /// business. When it returns [`Step::Idle`], the loop should block until
    /// the deadline or until the platform's [`Unpark`] fires (wire it to the
    /// loop's own wake-up, e.g. an eventfd), and then step again.
    ///
    /// [`Unpark`]: crate::platform::Unpark
    ///
    /// # Panics
    ///
    /// If called from inside this executor (re-entrantly).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "std")] {
    /// use ringlet_executor::{Executor, Step};
    ///
    /// let ex = Executor::default();
    /// let task = ex.spawn(async { 5 });
    /// while let Step::Busy = ex.step() {}
    /// assert!(task.is_finished());
    /// # }
    /// ```
    pub fn step(&self) -> Step {
        let core = &*self.core;
        let _running = core.begin("step");
        let _enter = context::enter(core);
        core.shared.set_running();
        core.tick();
        if !core.run_queue.is_empty() {
            return Step::Busy;
        }
        let deadline = core.next_deadline();
        if core.shared.prepare_park(false) {
            Step::Idle { deadline }
        } else {
            // A remote wake raced in: it did not unpark, so say so here.
            Step::Busy
        }
    }

    /// Steps until nothing is runnable; returns the earliest timer deadline.
    ///
    /// Does not return while some task keeps waking itself.
    pub fn run_until_stalled(&self) -> Option<Instant> {
        loop {
            if let Step::Idle { deadline } = self.step() {
                return deadline;
            }
        }
    }

    /// The platform clock now.
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// The earliest armed timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    /// The platform.
    pub fn platform(&self) -> &dyn Platform {
        &*self.core.platform
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn core_for_tests(&self) -> &Core {
        &self.core
    }

    /// How many tasks are queued to run (local queue only).
    pub fn runnable_len(&self) -> usize {
        self.core.run_queue.len()
    }
}

#[cfg(feature = "std")]
impl Default for Executor {
    fn default() -> Self {
        Self::new_std()
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("run_queue", &self.core.run_queue)
            .field("timers", &self.core.timers)
            .field("shared", &self.core.shared)
            .finish_non_exhaustive()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let core = &*self.core;
        let _running = core.begin("drop");
        // Destructors run in this executor's context: a future's drop that
        // wakes or cancels another task reaches the local queue.
        let _enter = context::enter(core);
        loop {
            core.run_queue.take_remote(&core.shared);
            if let Some(runnable) = core.run_queue.pop() {
                drop(runnable);
                continue;
            }
            // Dropping a timer's waker may be the last reference to a task,
            // which async-task then schedules (closed) so it can be dropped.
            let wakers = core.timers.heap.borrow_mut().take_wakers();
            if wakers.is_empty() && !core.shared.has_remote() && core.run_queue.is_empty() {
                break;
            }
            drop(wakers);
        }
    }
}
