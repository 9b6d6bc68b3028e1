//! The synchronization seam: every atomic and unchecked cell the executor uses.
//!
//! The rest of the crate imports these names from here and never from
//! `core::sync` directly, so that a model checker such as loom can replace
//! them in one place. (A `loom` build is not wired up yet; async-task keeps
//! its own atomics, which loom could not see anyway.)

pub(crate) use alloc::sync::Arc;
pub(crate) use core::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering,
};

/// An `UnsafeCell` with loom's closure-style API (`with_mut`), so that a
/// loom build can track each access.
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Gives `f` the raw pointer to the value; the caller of `f` is
    /// responsible for exclusive access while it dereferences it.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
