//! Join handles: awaiting, detaching and cancelling a spawned task.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use async_task::FallibleTask;

use crate::remote::TaskMeta;
use crate::task::TaskOutput;

/// Why a task produced no output.
#[non_exhaustive]
pub enum JoinError {
    /// The task was cancelled before it completed: [`JoinHandle::cancel`],
    /// or its executor was dropped with the task still queued.
    Cancelled,
    /// The task panicked (with `std`; without it a panic aborts). The
    /// payload is what `std::panic::catch_unwind` returned.
    #[cfg(feature = "std")]
    Panicked(alloc::boxed::Box<dyn core::any::Any + Send + 'static>),
}

impl JoinError {
    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        #[cfg(feature = "std")]
        {
            matches!(self, JoinError::Panicked(_))
        }
        #[cfg(not(feature = "std"))]
        {
            false
        }
    }

    /// The panic message, if the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "std")]
            JoinError::Panicked(p) => p.downcast_ref::<&str>().copied().or_else(|| {
                p.downcast_ref::<alloc::string::String>()
                    .map(|s| s.as_str())
            }),
            _ => None,
        }
    }

    /// Resumes the task's panic on this thread; returns `self` if it was
    /// not a panic.
    #[cfg(feature = "std")]
    pub fn resume_panic(self) -> Self {
        match self {
            JoinError::Panicked(p) => std::panic::resume_unwind(p),
            other => other,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("Cancelled"),
            #[cfg(feature = "std")]
            JoinError::Panicked(_) => f
                .debug_tuple("Panicked")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("task was cancelled"),
            #[cfg(feature = "std")]
            JoinError::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
        }
    }
}

impl core::error::Error for JoinError {}

/// An owned handle to a spawned task: a future of its output.
///
/// # Cancellation
///
/// Dropping a `JoinHandle` cancels its task (as async-task's `Task` does):
/// the future is dropped the next time the executor gets to it, without
/// being polled again. To let the task run on unobserved, call
/// [`detach`](JoinHandle::detach). [`cancel`](JoinHandle::cancel) cancels
/// and waits until the future has been dropped.
///
/// # Panics
///
/// With `std`, a task that panics completes with
/// `JoinError::Panicked`; the panic does not reach the executor or the
/// other tasks. Without `std` there is no unwinding: a panic is the
/// platform's panic handler's (Ringlet's kernel prints it and powers off).
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "std")] {
/// use ringlet_executor::{Executor, JoinError};
///
/// let ex = Executor::default();
/// let task = ex.spawn(async { 6 * 7 });
/// assert_eq!(ex.block_on(task).unwrap(), 42);
///
/// let pending = ex.spawn(core::future::pending::<()>());
/// let out = ex.block_on(pending.cancel());
/// assert!(matches!(out, Err(JoinError::Cancelled)));
/// # }
/// ```
#[must_use = "dropping a JoinHandle cancels its task; use .detach() to run it in the background"]
pub struct JoinHandle<T> {
    task: FallibleTask<TaskOutput<T>, TaskMeta>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: FallibleTask<TaskOutput<T>, TaskMeta>) -> Self {
        Self { task }
    }

    /// Lets the task run to completion without a handle; its output is
    /// dropped.
    pub fn detach(self) {
        self.task.detach()
    }

    /// Cancels the task and waits until its future has been dropped.
    ///
    /// Returns the output if the task had already completed, otherwise
    /// [`JoinError::Cancelled`] (or the panic, with `std`). The task's
    /// executor must run for this to complete (it drops the future).
    ///
    /// # Errors
    ///
    /// [`JoinError::Cancelled`] if the task had not completed;
    /// `JoinError::Panicked` (`std`) if it had panicked.
    pub async fn cancel(self) -> Result<T, JoinError> {
        map_output(self.task.cancel().await)
    }

    /// Whether the task has completed or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

#[inline]
fn map_output<T>(out: Option<TaskOutput<T>>) -> Result<T, JoinError> {
    match out {
        None => Err(JoinError::Cancelled),
        Some(Ok(value)) => Ok(value),
        #[cfg(feature = "std")]
        Some(Err(payload)) => Err(JoinError::Panicked(payload)),
        #[cfg(not(feature = "std"))]
        Some(Err(never)) => match never {},
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx).map(map_output)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
