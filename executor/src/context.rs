//! The current executor: which executor, if any, this code runs inside.
//!
//! [`Executor::block_on`](crate::Executor::block_on) and
//! [`Executor::step`](crate::Executor::step) enter their executor's context
//! for as long as they run; the free functions ([`spawn`](crate::spawn),
//! [`sleep`](crate::sleep), [`Instant::now`](crate::Instant::now)) and the
//! local wake path look it up here.
//!
//! With `std` the current executor is a thread-local. Without `std` it is one
//! global: Ringlet's kernel has one vCPU, so "this CPU" and "this thread"
//! are the same, and the only other context is an interrupt handler, which
//! must run its wakes inside [`interrupt_context`] so they take the lock-free
//! remote path instead of touching the run queue it may have interrupted.

// Dereferences the raw pointer to the current executor's core.
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ptr;

use crate::executor::Core;

#[cfg(any(feature = "std", test))]
mod imp {
    use super::Core;
    use core::cell::Cell;

    std::thread_local! {
        static CURRENT: Cell<*const Core> = const { Cell::new(core::ptr::null()) };
    }

    #[inline(always)]
    pub(super) fn get() -> *const Core {
        CURRENT.with(Cell::get)
    }

    #[inline(always)]
    pub(super) fn replace(core: *const Core) -> *const Core {
        CURRENT.with(|c| c.replace(core))
    }
}

#[cfg(not(any(feature = "std", test)))]
mod imp {
    use super::Core;
    // Not through the `sync` seam: a static needs a const constructor, and
    // this is no cross-thread protocol to model (one CPU).
    use core::sync::atomic::{AtomicPtr, Ordering};

    // One CPU runs executors (see the module doc), so Relaxed is enough: an
    // interrupt handler that swaps it restores it before returning.
    static CURRENT: AtomicPtr<Core> = AtomicPtr::new(core::ptr::null_mut());

    #[inline(always)]
    pub(super) fn get() -> *const Core {
        CURRENT.load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub(super) fn replace(core: *const Core) -> *const Core {
        CURRENT.swap(core.cast_mut(), Ordering::Relaxed)
    }
}

/// Keeps an executor's context entered; leaving restores the previous one
/// (executors nest, e.g. a `block_on` inside a foreign loop's callback).
#[derive(Debug)]
pub(crate) struct Enter<'a> {
    prev: *const Core,
    _core: PhantomData<&'a Core>,
}

/// Enters `core`'s context until the returned guard drops.
pub(crate) fn enter(core: &Core) -> Enter<'_> {
    Enter {
        prev: imp::replace(core),
        _core: PhantomData,
    }
}

impl Drop for Enter<'_> {
    fn drop(&mut self) {
        imp::replace(self.prev);
    }
}

/// Calls `f` with the current executor's core, if any.
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let core = imp::get();
    // SAFETY: CURRENT is non-null only between `enter(core)` and the drop of
    // its `Enter<'a>` guard, which borrows the core for 'a, so the core is
    // alive. With `std` CURRENT is thread-local, so only the thread that
    // entered reads it; without `std` the single CPU is that thread and
    // interrupt handlers null it (`interrupt_context`). `f` runs inside this
    // call, so the reference cannot outlive the guard.
    let core = unsafe { core.as_ref() };
    f(core)
}

/// Runs `f` as interrupt-context code: every wake inside it takes the remote
/// path (lock-free, no allocation), never the executor's local run queue.
///
/// An interrupt or signal handler that wakes tasks MUST wrap those wakes in
/// this function: the handler may have interrupted the executor in the middle
/// of a run-queue operation. Ringlet's own upcall handler only acknowledges
/// the interrupt and wakes nothing, so it does not need it.
///
/// Inside `f` there is no current executor: [`spawn`](crate::spawn) and
/// [`Instant::now`](crate::Instant::now) panic (spawning allocates, which
/// interrupt context must not do).
///
/// The wake itself neither allocates nor locks. Dropping a waker can free
/// memory, though: if it is the last reference to a task that has finished,
/// async-task deallocates the task there. So a handler should call
/// `wake_by_ref` on a waker that stays registered (as below), not take the
/// waker out and drop it.
///
/// # Examples
///
/// ```
/// use core::task::Waker;
///
/// fn on_interrupt(waker: &Waker) {
///     ringlet_executor::interrupt_context(|| waker.wake_by_ref());
/// }
/// # on_interrupt(Waker::noop());
/// ```
pub fn interrupt_context<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(*const Core);
    impl Drop for Restore {
        fn drop(&mut self) {
            imp::replace(self.0);
        }
    }
    let _restore = Restore(imp::replace(ptr::null()));
    f()
}
