//! The platform hooks: what the executor needs from the layer below it.
//!
//! A platform gives the executor a monotonic clock, a non-blocking poll for
//! events, and an idle step ("park until woken or until this deadline"). On
//! Xen the platform is reactor-xen (pvclock, event channels, SCHEDOP_block);
//! in tests it is reactor-xen's software Xen; on Linux it is the `std`
//! platform.

use alloc::sync::Arc;

/// Ends a [`Platform::park`] from any context (another thread, an interrupt).
///
/// Implementations MUST NOT allocate or take a lock in `unpark`, and MUST make
/// an `unpark` issued before the next `park` end that `park` at once (a wake
/// is never lost).
pub trait Unpark: Send + Sync + 'static {
    /// Ends the current or the next park.
    fn unpark(&self);
}

/// A platform's clock and idle step.
///
/// Implementations MUST ensure that:
/// - [`now_ns`](Platform::now_ns) is monotonic: it never returns less than an
///   earlier call did.
/// - [`poll`](Platform::poll) never blocks.
/// - [`park`](Platform::park) returns once `deadline_ns` has passed, once an
///   [`Unpark::unpark`] has been issued since the previous `park` returned, or
///   once the platform has events to deliver. It MAY return early.
pub trait Platform {
    /// Monotonic time in nanoseconds since an arbitrary origin.
    fn now_ns(&self) -> u64;

    /// Delivers the events that are ready now (wakes their wakers), without
    /// blocking. The executor calls it once per tick so that a busy executor
    /// still sees I/O.
    fn poll(&self);

    /// Blocks until woken, until events arrive or until `deadline_ns`
    /// (`None`: no deadline), then delivers the ready events as `poll` does.
    /// The executor calls it only when no task is runnable.
    fn park(&self, deadline_ns: Option<u64>);

    /// The handle wakers use to end a park from outside the executor's
    /// context. Called once, when the executor is built.
    fn unparker(&self) -> Arc<dyn Unpark>;
}

/// A shared platform: the code that builds the executor can keep a handle.
impl<P: Platform + ?Sized> Platform for alloc::rc::Rc<P> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
    fn poll(&self) {
        (**self).poll()
    }
    fn park(&self, deadline_ns: Option<u64>) {
        (**self).park(deadline_ns)
    }
    fn unparker(&self) -> Arc<dyn Unpark> {
        (**self).unparker()
    }
}

/// A shared platform: the code that builds the executor can keep a handle.
impl<P: Platform + ?Sized> Platform for Arc<P> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
    fn poll(&self) {
        (**self).poll()
    }
    fn park(&self, deadline_ns: Option<u64>) {
        (**self).park(deadline_ns)
    }
    fn unparker(&self) -> Arc<dyn Unpark> {
        (**self).unparker()
    }
}
