//! The hand-written futures every executor runs identically: a one-shot
//! yield, a single-threaded waker slot and a cross-thread mailbox.
//!
//! None of them comes from an executor, so each scenario measures the
//! executors' scheduling and nothing of their utility futures.

use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use std::sync::Mutex;

/// A future that wakes its own task once, returns `Pending`, and is `Ready`
/// on the next poll.
///
/// Unlike tokio's `yield_now` (which defers the wake to the end of the tick)
/// this is a plain `wake_by_ref` from inside `poll`, the same on every
/// executor. Its output says whether it really yielded (it always does; the
/// benchmark counts it so a broken run cannot pass unnoticed).
#[derive(Debug, Default)]
pub struct YieldOnce {
    yielded: bool,
}

impl YieldOnce {
    /// A yield that has not happened yet.
    pub const fn new() -> Self {
        Self { yielded: false }
    }
}

impl Future for YieldOnce {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if self.yielded {
            return Poll::Ready(true);
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A cell holding one task's waker, for tasks on the same thread.
///
/// `register` stores the polling task's waker (cloning only when it changed);
/// `wake` wakes it by reference and keeps it, as a long-lived channel end
/// would.
#[derive(Debug, Default)]
pub struct WakerSlot {
    waker: RefCell<Option<Waker>>,
}

impl WakerSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            waker: RefCell::new(None),
        }
    }

    /// Stores `waker` unless the slot already holds one that wakes the same task.
    pub fn register(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        match &*slot {
            Some(held) if held.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Wakes the stored waker, if any.
    pub fn wake(&self) {
        if let Some(waker) = &*self.waker.borrow() {
            waker.wake_by_ref();
        }
    }
}

/// A flag plus a [`WakerSlot`]: a task waits for the flag, another task on the
/// same thread raises it and wakes the waiter.
#[derive(Debug, Default)]
pub struct Signal {
    raised: Cell<bool>,
    slot: WakerSlot,
}

impl Signal {
    /// A lowered signal.
    pub const fn new() -> Self {
        Self {
            raised: Cell::new(false),
            slot: WakerSlot::new(),
        }
    }

    /// Raises the signal and wakes its waiter.
    pub fn raise(&self) {
        self.raised.set(true);
        self.slot.wake();
    }

    /// Waits until the signal is raised, then lowers it.
    pub fn wait(&self) -> WaitSignal<'_> {
        WaitSignal { signal: self }
    }
}

/// The future of [`Signal::wait`].
#[derive(Debug)]
pub struct WaitSignal<'a> {
    signal: &'a Signal,
}

impl Future for WaitSignal<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.raised.replace(false) {
            return Poll::Ready(());
        }
        self.signal.slot.register(cx.waker());
        Poll::Pending
    }
}

/// A one-shot mailbox woken from another thread: a flag and a locked waker.
#[derive(Debug, Default)]
pub struct Mailbox {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Mailbox {
    /// An unfired mailbox.
    pub const fn new() -> Self {
        Self {
            fired: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// Fires the mailbox and wakes its waiter (from any thread).
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let waker = self.waker.lock().expect("mailbox lock poisoned").take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Waits until the mailbox is fired. The output says whether the waiter
    /// had registered before the fire (`true`) or found it fired at once.
    pub fn wait(&self) -> WaitMailbox<'_> {
        WaitMailbox {
            mailbox: self,
            registered: false,
        }
    }

    /// Whether a waiter's waker is stored right now.
    pub fn has_waiter(&self) -> bool {
        self.waker.lock().expect("mailbox lock poisoned").is_some()
    }
}

/// The future of [`Mailbox::wait`].
#[derive(Debug)]
pub struct WaitMailbox<'a> {
    mailbox: &'a Mailbox,
    registered: bool,
}

impl Future for WaitMailbox<'_> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if self.mailbox.fired.load(Ordering::Acquire) {
            return Poll::Ready(self.registered);
        }
        *self.mailbox.waker.lock().expect("mailbox lock poisoned") = Some(cx.waker().clone());
        self.registered = true;
        // A fire between the first check and the store took no waker: look again.
        if self.mailbox.fired.load(Ordering::Acquire) {
            return Poll::Ready(true);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let c = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn yield_once_wakes_itself_once_then_is_ready() {
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut y = core::pin::pin!(YieldOnce::new());
        assert_eq!(y.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(y.as_mut().poll(&mut cx), Poll::Ready(true));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn signal_wakes_the_registered_waiter_and_lowers_on_wait() {
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let signal = Signal::new();
        let mut w = core::pin::pin!(signal.wait());
        assert_eq!(w.as_mut().poll(&mut cx), Poll::Pending);
        signal.raise();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(w.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(!signal.raised.get());
    }

    #[test]
    fn mailbox_fired_from_another_thread_wakes_the_waiter() {
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mailbox = Arc::new(Mailbox::new());
        let mut w = core::pin::pin!(mailbox.wait());
        assert_eq!(w.as_mut().poll(&mut cx), Poll::Pending);
        assert!(mailbox.has_waiter());
        let m = mailbox.clone();
        std::thread::spawn(move || m.fire()).join().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(w.as_mut().poll(&mut cx), Poll::Ready(true));
    }
}
