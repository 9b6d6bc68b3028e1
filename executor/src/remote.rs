//! The remote wake list and the park state: how a wake from outside the
//! executor's context (another thread, an interrupt handler, code between two
//! `step` calls) reaches the executor.
//!
//! # The remote wake list
//!
//! An intrusive lock-free stack (Treiber stack) threaded through each task's
//! async-task metadata ([`TaskMeta::next`]). A remote wake pushes the task's
//! `Runnable` with one compare-and-swap; the executor takes the whole stack
//! with one swap and reverses it, so tasks run in the order they were woken.
//! Nothing is allocated and no lock is taken, so interrupt context may push.
//! It needs no bound: async-task hands a task's `Runnable` to the schedule
//! function at most once until it runs again, so a task is on at most one
//! list at a time and the list never holds more entries than there are tasks.
//! There is no ABA problem: entries are only ever taken all at once.
//!
//! # Park state
//!
//! `Shared::state` says whether the executor may be blocked, so that only
//! then does a remote wake pay for [`Unpark::unpark`], and only once:
//!
//! ```text
//!            (1) prepare_park            (3) remote wake, first to see PARKED
//!  RUNNING ───────────────────▶ PARKED ────────────────────────────▶ NOTIFIED
//!     ▲                           │                                      │
//!     │       (2) found work /    │                                      │
//!     └────────── park returned ──┘◀───────── (4) park returned ─────────┘
//! ```
//!
//! 1. The executor found nothing runnable: it stores PARKED, then re-checks
//!    the remote list and the main-future flag (both SeqCst).
//! 2. The re-check found work (back to RUNNING without parking), or
//!    `Platform::park` returned, or the next `step` began.
//! 3. A remote waker that pushed onto an empty list (or set the main flag)
//!    loads the state; if it is PARKED it compare-and-swaps it to NOTIFIED
//!    and, having won, calls `unpark`. Every later wake sees NOTIFIED (or a
//!    non-empty list) and does nothing: repeated wakes coalesce.
//! 4. As 2, from NOTIFIED.
//!
//! No wake is lost: the waker's push and the executor's PARKED store are
//! each followed by a SeqCst fence and then a load of the other side's
//! location (a Dekker pair; the fences, not only SeqCst accesses, make it
//! hold in the C++ model and in loom's), so either the executor's re-check
//! sees the entry, or the waker sees PARKED and unparks; an `unpark` that lands before `park` ends that park at
//! once (the `Unpark` contract). A waker whose push found the list non-empty
//! needs no check: the entry below it has not been taken yet, and the
//! executor takes both before it can park again. The tests
//! `remote_wake_transitions` and `no_lost_wake_across_park` exercise 1–4.
//!
//! [`Unpark::unpark`]: crate::platform::Unpark::unpark

// Moves `Runnable`s through raw pointers (async-task's into_raw/from_raw).
#![allow(unsafe_code)]

use alloc::boxed::Box;
use core::cell::Cell;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::{self, NonNull};

use crate::context;
use crate::platform::Unpark;
use crate::sync::{fence, Arc, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

/// What the executor keeps in each task's async-task header.
///
/// The executor's `Shared` lives here rather than in the schedule closure:
/// a zero-sized schedule function spares async-task a waker clone and drop
/// (two atomic operations) around every schedule call.
#[derive(Debug)]
pub(crate) struct TaskMeta {
    /// The next task on the remote wake list (a raw `Runnable`), or null.
    /// Used only while this task's `Runnable` is on that list.
    next: AtomicPtr<()>,
    /// The executor the task belongs to (one counted reference, usually a
    /// credit: see [`SharedRef`]).
    pub(crate) shared: ManuallyDrop<SharedRef>,
}

impl TaskMeta {
    pub(crate) fn new(shared: SharedRef) -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            shared: ManuallyDrop::new(shared),
        }
    }
}

impl Drop for TaskMeta {
    fn drop(&mut self) {
        // The task is being freed. On its executor's thread, inside its
        // context, the reference goes back to the executor's credits (no
        // atomic); anywhere else it is released for real.
        let returned = context::with_current(|core| match core {
            Some(core) if core.shared.is(&self.shared) => {
                core.shared.return_credit();
                true
            }
            _ => false,
        });
        if !returned {
            // SAFETY: dropped exactly once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.shared) };
        }
    }
}

/// How many references to `Shared` the executor takes from the atomic
/// count at once, to hand out to new tasks without an atomic each.
pub(crate) const SHARED_CREDIT_BATCH: usize = 1024;

/// A counted reference to an executor's [`Shared`] (an `Arc` by hand).
///
/// Why by hand: every task holds one, and an `Arc` clone and drop per task
/// are two atomic read-modify-writes on the spawn path. Here the executor
/// takes references from the count in batches ([`SHARED_CREDIT_BATCH`]) and
/// keeps the unused ones as credits ([`OwnedShared`]); a task takes a credit
/// when spawned and gives it back when freed on the executor's thread
/// inside its context. The atomic count is therefore always at least the
/// number of references held (tasks, wakers, the executor and its credits),
/// and `Shared` is freed when it reaches zero, as an `Arc` would be.
pub(crate) struct SharedRef {
    ptr: NonNull<Shared>,
}

// SAFETY: it is an `Arc<Shared>` in all but name, and `Shared` is Send + Sync.
unsafe impl Send for SharedRef {}
// SAFETY: as for Send.
unsafe impl Sync for SharedRef {}

impl SharedRef {
    /// A new `Shared` with one reference (this one).
    pub(crate) fn new(shared: Shared) -> Self {
        debug_assert_eq!(shared.refs.load(Ordering::Relaxed), 1);
        Self {
            ptr: NonNull::from(Box::leak(Box::new(shared))),
        }
    }

    /// Adds `n` references to the count, for the caller to hand out with
    /// [`SharedRef::spend_credit`].
    fn acquire_credits(&self, n: usize) {
        let old = self.refs.fetch_add(n, Ordering::Relaxed);
        assert!(
            old <= isize::MAX as usize,
            "executor reference count overflow"
        );
    }

    /// Gives `n` references back to the count (freeing `Shared` if they
    /// were the last).
    ///
    /// # Safety
    ///
    /// The caller must own `n` references that it took with
    /// [`acquire_credits`](SharedRef::acquire_credits) and has not handed out.
    unsafe fn release_credits(&self, n: usize) {
        if n == 0 {
            return;
        }
        // The caller also holds `self`, so this never reaches zero.
        let old = self.refs.fetch_sub(n, Ordering::Release);
        assert!(old > n, "executor reference count underflow");
    }

    /// A reference made from one credit (no atomic operation).
    ///
    /// # Safety
    ///
    /// The caller must own one credit of this `Shared` (see
    /// [`acquire_credits`](SharedRef::acquire_credits)) and hand it over.
    unsafe fn spend_credit(&self) -> SharedRef {
        SharedRef { ptr: self.ptr }
    }
}

impl core::ops::Deref for SharedRef {
    type Target = Shared;

    #[inline]
    fn deref(&self) -> &Shared {
        // SAFETY: we hold a counted reference, so `Shared` is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl Clone for SharedRef {
    fn clone(&self) -> Self {
        self.acquire_credits(1);
        SharedRef { ptr: self.ptr }
    }
}

impl Drop for SharedRef {
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) == 1 {
            // Synchronizes with every other release of a reference, so all
            // their uses of `Shared` happen before it is freed.
            fence(Ordering::Acquire);
            // SAFETY: the count reached zero: this was the last reference,
            // and `ptr` came from `Box::leak` in `SharedRef::new`.
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
        }
    }
}

/// The executor's own reference to its `Shared`, with its credits.
pub(crate) struct OwnedShared {
    shared: SharedRef,
    /// References taken from the count and not yet handed to a task.
    credits: Cell<usize>,
}

impl OwnedShared {
    pub(crate) fn new(shared: Shared) -> Self {
        Self {
            shared: SharedRef::new(shared),
            credits: Cell::new(0),
        }
    }

    /// A reference for a new task, from the credits.
    #[inline]
    pub(crate) fn task_ref(&self) -> SharedRef {
        let mut credits = self.credits.get();
        if credits == 0 {
            self.shared.acquire_credits(SHARED_CREDIT_BATCH);
            credits = SHARED_CREDIT_BATCH;
        }
        self.credits.set(credits - 1);
        // SAFETY: we owned `credits` unhanded-out references (acquired just
        // above or returned by freed tasks) and hand over one of them.
        unsafe { self.shared.spend_credit() }
    }

    /// Takes back the reference of a task freed in this executor's context.
    #[inline]
    fn return_credit(&self) {
        self.credits.set(self.credits.get() + 1);
    }

    /// Whether `other` names this `Shared`.
    #[inline]
    pub(crate) fn is(&self, other: &SharedRef) -> bool {
        self.shared.ptr == other.ptr
    }

    /// A counted reference (atomic), e.g. for a waker.
    pub(crate) fn new_ref(&self) -> SharedRef {
        self.shared.clone()
    }
}

impl core::ops::Deref for OwnedShared {
    type Target = Shared;

    #[inline]
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for OwnedShared {
    fn drop(&mut self) {
        // SAFETY: `credits` counts references we took and did not hand out.
        unsafe { self.shared.release_credits(self.credits.replace(0)) };
    }
}

impl fmt::Debug for OwnedShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.shared, f)
    }
}

impl fmt::Debug for SharedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A scheduled task of this executor.
pub(crate) type Runnable = async_task::Runnable<TaskMeta>;

const RUNNING: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;

/// The part of an executor that wakers on any thread can reach.
pub(crate) struct Shared {
    /// Top of the remote wake list (a raw `Runnable`), or null.
    head: AtomicPtr<()>,
    /// RUNNING, PARKED or NOTIFIED (see the module doc).
    state: AtomicU8,
    /// The `block_on` future was woken.
    main_woken: AtomicBool,
    /// The platform's park breaker.
    unparker: Arc<dyn Unpark>,
    /// References to this (see [`SharedRef`]).
    refs: AtomicUsize,
}

// The list's entries are Runnables of futures that need not be Send; see
// `push_remote` for why moving their raw pointers between threads is sound.
// SAFETY: every field is an atomic or an `Arc<dyn Unpark>` (Send + Sync); the
// raw pointers in `head` are only turned back into `Runnable`s by
// `take_remote`, which the executor calls on its own thread.
unsafe impl Send for Shared {}
// SAFETY: as for Send: all shared access goes through atomics.
unsafe impl Sync for Shared {}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field(
                "remote_pending",
                &!self.head.load(Ordering::Relaxed).is_null(),
            )
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("main_woken", &self.main_woken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(unparker: Arc<dyn Unpark>) -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            state: AtomicU8::new(RUNNING),
            main_woken: AtomicBool::new(false),
            unparker,
            refs: AtomicUsize::new(1),
        }
    }

    /// Pushes a task woken outside the executor's context; unparks the
    /// executor if this is the wake that must (transition 3).
    ///
    /// Lock-free and allocation-free: safe in interrupt context. `self`
    /// must not be borrowed from the task's own metadata: once pushed, the
    /// executor may run and free the task at any moment (the caller holds
    /// its own `SharedRef`).
    pub(crate) fn push_remote(&self, runnable: Runnable) {
        let next = &runnable.metadata().next as *const AtomicPtr<()>;
        // The Runnable is not dropped or run here, only turned into its raw
        // pointer; `take_remote` turns it back on the executor's thread.
        let raw = runnable.into_raw().as_ptr();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `next` points into the task's header, which stays
            // allocated while we hold its Runnable (now as `raw`); only the
            // list's owner of this entry writes it.
            unsafe { (*next).store(head, Ordering::Relaxed) };
            match self
                .head
                .compare_exchange_weak(head, raw, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        if head.is_null() {
            self.notify();
        }
    }

    /// Transition 3: unpark a parked executor, once.
    fn notify(&self) {
        // Pairs with the fence in `prepare_park` (see the module doc).
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) == PARKED
            && self
                .state
                .compare_exchange(PARKED, NOTIFIED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            self.unparker.unpark();
        }
    }

    /// Whether the remote list has entries (a cheap hint for the tick).
    #[inline]
    pub(crate) fn has_remote(&self) -> bool {
        !self.head.load(Ordering::Relaxed).is_null()
    }

    /// Takes every remotely woken task, NEWEST first (the list is a stack),
    /// handing each to `f`; returns how many. The caller reverses them to run
    /// them in wake order.
    ///
    /// Must be called only on the executor's own thread.
    pub(crate) fn take_remote(&self, mut f: impl FnMut(Runnable)) -> usize {
        let mut raw = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        let mut count = 0;
        while let Some(node) = NonNull::new(raw) {
            // SAFETY: `node` came from `Runnable::into_raw` in `push_remote`,
            // and the swap above moved it off the shared list, so this is its
            // only conversion back; we are on the executor's thread (caller's
            // contract), where a Runnable of a !Send future may be used. The
            // Acquire swap synchronizes with every pusher's CAS (a release
            // sequence), so the `next` links written before them are visible.
            let runnable = unsafe { Runnable::from_raw(node) };
            raw = runnable
                .metadata()
                .next
                .swap(ptr::null_mut(), Ordering::Relaxed);
            f(runnable);
            count += 1;
        }
        count
    }

    /// Marks the `block_on` future woken from the executor's own context.
    #[inline]
    pub(crate) fn wake_main_local(&self) {
        self.main_woken.store(true, Ordering::Relaxed);
    }

    /// Marks the `block_on` future woken from elsewhere (transition 3).
    pub(crate) fn wake_main_remote(&self) {
        if !self.main_woken.swap(true, Ordering::SeqCst) {
            self.notify();
        }
    }

    /// Takes the "main future woken" flag.
    #[inline]
    pub(crate) fn take_main(&self) -> bool {
        self.main_woken.load(Ordering::Relaxed) && self.main_woken.swap(false, Ordering::Acquire)
    }

    /// Whether the main future is marked woken.
    #[inline]
    pub(crate) fn main_pending(&self) -> bool {
        self.main_woken.load(Ordering::Relaxed)
    }

    /// Transition 1 (and 2 when it finds work): returns `true` if the
    /// executor may now block, `false` if something became runnable.
    /// `with_main`: whether a woken main future counts as work.
    pub(crate) fn prepare_park(&self, with_main: bool) -> bool {
        self.state.store(PARKED, Ordering::SeqCst);
        // Pairs with the fence in `notify` (see the module doc).
        fence(Ordering::SeqCst);
        let work = !self.head.load(Ordering::SeqCst).is_null()
            || (with_main && self.main_woken.load(Ordering::SeqCst));
        if work {
            self.state.store(RUNNING, Ordering::Relaxed);
        }
        !work
    }

    /// Transitions 2 and 4: the executor runs again.
    #[inline]
    pub(crate) fn set_running(&self) {
        self.state.store(RUNNING, Ordering::Relaxed);
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::SeqCst) {
            RUNNING => "RUNNING",
            PARKED => "PARKED",
            NOTIFIED => "NOTIFIED",
            _ => "?",
        }
    }
}

/// Model checks of the park handshake (`--cfg loom`): under every
/// interleaving loom explores, an executor that decides to park has been
/// unparked by the wake that raced with it (transitions 1 and 3), and a
/// burst of wakes unparks once.
#[cfg(all(test, loom))]
mod loom_test {
    use super::*;
    use alloc::sync::Arc as StdArc;
    use loom::sync::atomic::AtomicUsize as LoomUsize;

    struct CountingUnpark(LoomUsize);

    impl Unpark for CountingUnpark {
        fn unpark(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn unparker() -> StdArc<CountingUnpark> {
        StdArc::new(CountingUnpark(LoomUsize::new(0)))
    }

    fn runnable(shared: &OwnedShared) -> Runnable {
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskMeta::new(shared.task_ref()))
            .spawn(|_| async {}, |_| {});
        task.detach();
        runnable
    }

    #[test]
    fn a_main_wake_racing_with_park_is_never_lost() {
        loom::model(|| {
            let unpark = unparker();
            let shared = StdArc::new(Shared::new(unpark.clone()));
            let waker = {
                let shared = shared.clone();
                loom::thread::spawn(move || shared.wake_main_remote())
            };
            let parks = shared.prepare_park(true);
            waker.join().unwrap();
            if parks {
                assert_eq!(unpark.0.load(Ordering::SeqCst), 1, "lost wake");
            } else {
                assert!(shared.main_pending());
            }
        });
    }

    #[test]
    fn a_remote_push_racing_with_park_is_never_lost() {
        loom::model(|| {
            let unpark = unparker();
            let shared = OwnedShared::new(Shared::new(unpark.clone()));
            let r = runnable(&shared);
            let waker = {
                let shared = shared.new_ref();
                loom::thread::spawn(move || shared.push_remote(r))
            };
            let parks = shared.prepare_park(false);
            waker.join().unwrap();
            if parks {
                assert_eq!(unpark.0.load(Ordering::SeqCst), 1, "lost wake");
            } else {
                assert!(shared.has_remote());
            }
            let mut taken = alloc::vec::Vec::new();
            assert_eq!(shared.take_remote(|r| taken.push(r)), 1);
        });
    }

    #[test]
    fn two_wakes_of_a_parked_executor_unpark_once() {
        loom::model(|| {
            let unpark = unparker();
            let shared = OwnedShared::new(Shared::new(unpark.clone()));
            assert!(shared.prepare_park(false));
            let threads: alloc::vec::Vec<_> = (0..2)
                .map(|_| {
                    let r = runnable(&shared);
                    let shared = shared.new_ref();
                    loom::thread::spawn(move || shared.push_remote(r))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(unpark.0.load(Ordering::SeqCst), 1);
            let mut taken = alloc::vec::Vec::new();
            assert_eq!(shared.take_remote(|r| taken.push(r)), 2);
        });
    }
}
