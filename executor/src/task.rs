//! Tasks: spawning a future as an async-task task, its schedule function,
//! and the wrapper that turns a panic into the task's output.
//!
//! One allocation per task (async-task's). The schedule function decides
//! where a wake goes: on the executor's own thread, inside its context, to
//! the local [run queue](crate::run_queue); anywhere else to the lock-free
//! [remote list](crate::remote).

// async-task's `spawn_unchecked`: our futures need not be Send.
#![allow(unsafe_code)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context;
use crate::executor::Core;
use crate::join::JoinHandle;
use crate::remote::{Runnable, TaskMeta};

/// A panic's payload, as `std::panic::catch_unwind` returns it.
#[cfg(feature = "std")]
pub(crate) type PanicPayload = alloc::boxed::Box<dyn core::any::Any + Send + 'static>;

/// What a task stores as its output: its future's output, or (with `std`)
/// the panic that ended it.
#[cfg(feature = "std")]
pub(crate) type TaskOutput<T> = Result<T, PanicPayload>;
/// What a task stores as its output (without `std` a panic aborts).
#[cfg(not(feature = "std"))]
pub(crate) type TaskOutput<T> = Result<T, core::convert::Infallible>;

pin_project! {
    /// A task's future: the user's future, with panics caught (std).
    struct Guarded<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = TaskOutput<F::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        #[cfg(feature = "std")]
        {
            let poll = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| inner.poll(cx)));
            match poll {
                Ok(poll) => poll.map(Ok),
                // The future is not polled again: the task completes here.
                Err(payload) => Poll::Ready(Err(payload)),
            }
        }
        #[cfg(not(feature = "std"))]
        {
            inner.poll(cx).map(Ok)
        }
    }
}

/// Where a wake goes: the schedule function of every task (zero-sized).
#[inline]
fn schedule(runnable: Runnable) {
    context::with_current(|core| match core {
        Some(core) if core.shared.is(&runnable.metadata().shared) => core.run_queue.push(runnable),
        _ => {
            // Our own reference: once pushed, the task (and the Arc in its
            // metadata) may be freed by the executor's thread at any time.
            let shared = (*runnable.metadata().shared).clone();
            shared.push_remote(runnable)
        }
    })
}

/// Spawns `future` on `core` and queues its first poll.
pub(crate) fn spawn_on<F>(core: &Core, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let builder = async_task::Builder::new().metadata(TaskMeta::new(core.shared.task_ref()));
    // SAFETY: spawn_unchecked's conditions:
    // - The future need not be Send, so its Runnable must be run and dropped
    //   on this thread: Runnables are only run or dropped by `Core` (tick,
    //   drop), which lives on this thread (`Executor` is !Send). A wake on
    //   another thread only turns the Runnable into a raw pointer on the
    //   remote list (`Shared::push_remote`), and after the executor is gone
    //   such a Runnable is leaked, never dropped there.
    // - The future is 'static (bound above), and so is its output.
    // - The schedule function is a plain fn (Send + Sync + 'static) and the
    //   metadata is Send + Sync, so wakers may be used and dropped on any
    //   thread.
    let (runnable, task) =
        unsafe { builder.spawn_unchecked(|_| Guarded { inner: future }, schedule) };
    // The first poll: a new Runnable is already in the SCHEDULED state, so
    // it goes straight to the queue without the schedule function.
    core.run_queue.push(runnable);
    JoinHandle::new(task.fallible())
}

/// Spawns `future` on the current executor; its [`JoinHandle`] resolves to
/// its output.
///
/// The future need not be `Send`: it runs on the executor's thread. It is
/// first polled after the tasks already queued (FIFO).
///
/// # Panics
///
/// Outside an executor's context (a [`block_on`](crate::Executor::block_on),
/// a [`step`](crate::Executor::step) or a task); use
/// [`Executor::spawn`](crate::Executor::spawn) there.
///
/// # Cancellation
///
/// Dropping the [`JoinHandle`] cancels the task; call
/// [`JoinHandle::detach`] to let it run on.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "std")] {
/// use std::rc::Rc;
/// use ringlet_executor::{spawn, Executor};
///
/// let out = Executor::default().block_on(async {
///     let shared = Rc::new(20); // tasks need not be Send
///     let a = spawn({ let s = shared.clone(); async move { *s + 1 } });
///     let b = spawn(async move { *shared + 2 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(out, 43);
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    context::with_current(|core| match core {
        Some(core) => spawn_on(core, future),
        None => panic!("ringlet_executor::spawn called outside a ringlet executor"),
    })
}

/// Yields to the executor once: the task goes to the back of the run queue,
/// so every task that was ready before it runs first.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "std")] {
/// use std::{cell::RefCell, rc::Rc};
/// use ringlet_executor::{spawn, yield_now, Executor};
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// Executor::default().block_on({
///     let log = log.clone();
///     async move {
///         let other = spawn({ let log = log.clone(); async move { log.borrow_mut().push("other") } });
///         yield_now().await; // `other` runs now
///         log.borrow_mut().push("main");
///         other.await.unwrap();
///     }
/// });
/// assert_eq!(*log.borrow(), ["other", "main"]);
/// # }
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
