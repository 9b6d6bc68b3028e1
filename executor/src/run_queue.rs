//! The local run queue: tasks ready to run, in the order they became ready.
//!
//! A `VecDeque` of `Runnable`s, touched only on the executor's own thread
//! (wakes from elsewhere go through the [remote list](crate::remote) and are
//! moved here by the tick). It needs no explicit bound: async-task schedules
//! a task at most once until it runs again, so the queue never holds more
//! entries than there are live tasks. Its capacity is kept between ticks, so
//! a steady state allocates nothing per wake.

// An UnsafeCell instead of a RefCell: the wake path is the hottest path.
#![allow(unsafe_code)]

use alloc::collections::VecDeque;
use core::fmt;

use crate::remote::{Runnable, Shared};
use crate::sync::UnsafeCell;

/// How many entries the queue can hold before its first growth.
pub(crate) const RUN_QUEUE_INITIAL_CAPACITY: usize = 256;

/// The executor's FIFO of ready tasks.
///
/// Invariant that makes the `UnsafeCell` sound: every method does one whole
/// `VecDeque` operation that calls no user code (no `Runnable` is run or
/// dropped inside; growing calls only the global allocator), so no two
/// accesses overlap; and the queue is `!Sync` and only reachable from its
/// executor's thread (through `&Core`, which is `!Send`/`!Sync`).
pub(crate) struct RunQueue {
    queue: UnsafeCell<VecDeque<Runnable>>,
}

impl RunQueue {
    pub(crate) fn new() -> Self {
        Self {
            queue: UnsafeCell::new(VecDeque::with_capacity(RUN_QUEUE_INITIAL_CAPACITY)),
        }
    }

    /// Appends a ready task.
    #[inline]
    pub(crate) fn push(&self, runnable: Runnable) {
        // SAFETY: see the type's invariant: a whole operation, no user code.
        self.queue.with_mut(|q| unsafe { (*q).push_back(runnable) })
    }

    /// Takes the oldest ready task.
    #[inline]
    pub(crate) fn pop(&self) -> Option<Runnable> {
        // SAFETY: see the type's invariant.
        self.queue.with_mut(|q| unsafe { (*q).pop_front() })
    }

    /// How many tasks are ready.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // SAFETY: see the type's invariant.
        self.queue.with_mut(|q| unsafe { (*q).len() })
    }

    /// Whether no task is ready.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every remotely woken task to the back of the queue, in the
    /// order they were woken. Must run on the executor's thread.
    pub(crate) fn take_remote(&self, shared: &Shared) -> usize {
        // SAFETY: see the type's invariant: `take_remote` only converts raw
        // pointers and calls our closure, which only pushes; no user code.
        self.queue.with_mut(|q| unsafe {
            let q = &mut *q;
            let start = q.len();
            let n = shared.take_remote(|r| q.push_back(r));
            // The remote list hands them newest first: reverse the segment.
            let (mut i, mut j) = (start, q.len());
            while i + 1 < j {
                j -= 1;
                q.swap(i, j);
                i += 1;
            }
            n
        })
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        // Drop one Runnable at a time, outside any access: dropping one drops
        // its future, whose destructor may wake (push to) this very queue.
        while let Some(runnable) = self.pop() {
            drop(runnable);
        }
    }
}

impl fmt::Debug for RunQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunQueue")
            .field("len", &self.len())
            .finish()
    }
}
