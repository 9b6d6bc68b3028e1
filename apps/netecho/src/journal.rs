//! The journal: console lines queued by the echo tasks and written by one
//! task at a pace the console's reader keeps up with.
//!
//! The PV console is a 2 KiB ring; a write that does not fit is dropped.
//! Fifty connections closing within a few milliseconds would each log a
//! line at once, so they go through this bounded queue instead:
//! [`Journal::push`] never waits (a full queue drops the line and counts
//! it), and [`Journal::run`] writes the lines, pausing [`CONSOLE_PAUSE`]
//! after every [`CONSOLE_PACE_BYTES`].

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use ringlet::executor::{sleep, Duration};

/// After this many console bytes the journal pauses [`CONSOLE_PAUSE`], so
/// dom0's xenconsoled drains the ring.
pub const CONSOLE_PACE_BYTES: usize = 768;
/// See [`CONSOLE_PACE_BYTES`].
pub const CONSOLE_PAUSE: Duration = Duration::from_millis(25);
/// Bytes a log line costs on the console besides its text (level, prefix,
/// newline), for pacing.
const LINE_OVERHEAD_BYTES: usize = 24;

/// A bounded queue of console lines and the task that writes them.
pub struct Journal {
    lines: RefCell<VecDeque<String>>,
    lines_max: usize,
    dropped: Cell<u64>,
    /// The writer task, waiting for a line.
    writer: RefCell<Option<Waker>>,
    /// Tasks waiting for the queue to be empty.
    drain_waiters: RefCell<Option<Waker>>,
    /// Whether the writer is between taking a line and having written it.
    writing: Cell<bool>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("queued", &self.queued())
            .field("lines_max", &self.lines_max)
            .field("dropped", &self.dropped.get())
            .finish()
    }
}

impl Journal {
    /// An empty journal that queues at most `lines_max` lines.
    pub fn new(lines_max: usize) -> Journal {
        Journal {
            lines: RefCell::new(VecDeque::with_capacity(lines_max)),
            lines_max,
            dropped: Cell::new(0),
            writer: RefCell::new(None),
            drain_waiters: RefCell::new(None),
            writing: Cell::new(false),
        }
    }

    /// Queues a line; drops it (and counts it) when the queue is full.
    pub fn push(&self, line: String) {
        {
            let mut lines = self.lines.borrow_mut();
            if lines.len() >= self.lines_max {
                self.dropped.set(self.dropped.get() + 1);
                return;
            }
            lines.push_back(line);
        }
        if let Some(w) = self.writer.borrow_mut().take() {
            w.wake();
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Lines queued and not yet written.
    pub fn queued(&self) -> usize {
        self.lines.borrow().len()
    }

    fn wake_drain_waiter(&self) {
        if let Some(w) = self.drain_waiters.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves once every queued line has been written.
    ///
    /// # Cancellation
    ///
    /// Cancel-safe.
    pub async fn drained(&self) {
        poll_fn(|cx| {
            if self.lines.borrow().is_empty() && !self.writing.get() {
                Poll::Ready(())
            } else {
                *self.drain_waiters.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Writes queued lines to the log (the console) for ever, paced.
    pub async fn run(self: Rc<Self>) {
        let mut since_pause = 0;
        loop {
            let line = poll_fn(|cx| match self.lines.borrow_mut().pop_front() {
                Some(line) => {
                    self.writing.set(true);
                    Poll::Ready(line)
                }
                None => {
                    *self.writer.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            log::info!("{line}");
            since_pause += line.len() + LINE_OVERHEAD_BYTES;
            if since_pause >= CONSOLE_PACE_BYTES {
                sleep(CONSOLE_PAUSE).await;
                since_pause = 0;
            }
            self.writing.set(false);
            if self.lines.borrow().is_empty() {
                self.wake_drain_waiter();
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::format;

    #[test]
    fn a_full_journal_drops_and_counts() {
        let j = Journal::new(3);
        for i in 0..5 {
            j.push(format!("line {i}"));
        }
        assert_eq!(j.queued(), 3);
        assert_eq!(j.dropped(), 2);
        assert_eq!(j.lines.borrow().front().map(String::as_str), Some("line 0"));
    }
}
