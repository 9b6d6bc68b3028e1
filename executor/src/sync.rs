//! The synchronization seam: every atomic and unchecked cell the executor uses.
//!
//! The rest of the crate imports these names from here and never from
//! `core::sync` directly, so that a model checker can replace them in one
//! place: with `--cfg loom` they are loom's, and the `loom` tests in
//! `remote.rs` check the park handshake under every interleaving loom
//! explores. (async-task keeps its own atomics, which loom cannot see.)
//!
//! `Arc` stays `alloc`'s even under loom: `Arc<dyn Unpark>` needs unsized
//! coercion, which loom's `Arc` lacks.

pub(crate) use alloc::sync::Arc;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering,
};

/// An `UnsafeCell` with loom's closure-style API (`with_mut`), so that a
/// loom build can track each access.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
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

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
