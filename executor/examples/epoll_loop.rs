//! Embedding ringlet-executor in a Linux program that owns its event loop.
//!
//! The program waits in `epoll_wait` on its own file descriptors (here the
//! read end of a pipe that a "device" thread writes to) and on an eventfd
//! that the executor's platform writes when a task is woken from outside the
//! executor while the executor is idle. Each turn it calls
//! [`Executor::step`] and gives `epoll_wait` the executor's next timer
//! deadline as its timeout, so timers, the program's own I/O and wakes from
//! other threads all end the same wait.
//!
//! Run it with `cargo run -p ringlet-executor --features std --example epoll_loop`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use ringlet_executor::platform::{Platform, Unpark};
use ringlet_executor::{sleep, spawn, Duration, Executor, Instant, Step};

/// The `epoll_event` tag of the eventfd.
const TAG_UNPARK: u64 = 0;
/// The `epoll_event` tag of the device pipe.
const TAG_DEVICE: u64 = 1;
/// Messages the device thread sends.
const MESSAGES: usize = 5;

/// Ends the loop's `epoll_wait` (or the platform's park) by writing the
/// eventfd. A syscall: no allocation, no lock, so any thread may call it.
struct EventFdUnpark {
    fd: OwnedFd,
}

impl Unpark for EventFdUnpark {
    fn unpark(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. If it
        // fails (EAGAIN: the counter is saturated) a wake-up is pending anyway.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// The program's platform: the std clock, and the eventfd for wake-ups.
struct LoopPlatform {
    origin: std::time::Instant,
    unpark: Arc<EventFdUnpark>,
}

impl Platform for LoopPlatform {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn poll(&self) {}

    /// Only `block_on` parks; a stepped executor never does. Waits on the
    /// eventfd alone.
    fn park(&self, deadline_ns: Option<u64>) {
        let fd = self.unpark.fd.as_raw_fd();
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = timeout_ms(self.now_ns(), deadline_ns);
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, timeout) };
        drain(fd);
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }
}

/// Milliseconds until `deadline_ns`, rounded up (a timer is never early);
/// -1 (forever) without a deadline.
fn timeout_ms(now_ns: u64, deadline_ns: Option<u64>) -> libc::c_int {
    match deadline_ns {
        None => -1,
        Some(deadline) => {
            let ms = deadline.saturating_sub(now_ns).div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// Reads a non-blocking fd until it is empty; returns the bytes read.
fn drain(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads at most `buf.len()` bytes into a live buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// Makes a non-blocking, close-on-exec fd from a libc call's result.
fn owned(fd: libc::c_int, what: &str) -> OwnedFd {
    assert!(fd >= 0, "{what}: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Registers `fd` with the epoll instance under `tag`.
fn watch(epoll: &OwnedFd, fd: RawFd, tag: u64) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: tag,
    };
    // SAFETY: both fds are open; `ev` lives for the call.
    let r = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(r, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
}

/// What the program's own event source delivers to the tasks.
#[derive(Default)]
struct Inbox {
    messages: RefCell<VecDeque<u8>>,
    waker: RefCell<Option<Waker>>,
}

#[allow(dead_code)] // tests/examples.rs includes this file and calls `run`
fn main() {
    run();
}

/// Runs the program; returns the log of what the tasks did.
pub fn run() -> Vec<String> {
    // SAFETY: plain syscalls that return new fds (checked by `owned`).
    let eventfd = owned(
        unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) },
        "eventfd",
    );
    let mut pipe = [0; 2];
    // SAFETY: `pipe` has room for the two fds.
    let r = unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2");
    let (device_rx, device_tx) = (owned(pipe[0], "pipe"), owned(pipe[1], "pipe"));
    // SAFETY: as above.
    let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }, "epoll");
    watch(&epoll, eventfd.as_raw_fd(), TAG_UNPARK);
    watch(&epoll, device_rx.as_raw_fd(), TAG_DEVICE);
    let eventfd_raw = eventfd.as_raw_fd();

    let ex = Executor::new(LoopPlatform {
        origin: std::time::Instant::now(),
        unpark: Arc::new(EventFdUnpark { fd: eventfd }),
    });

    // The device thread: sends a few messages through the pipe, then
    // completes a "request" by waking a task directly from its thread.
    let completion: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
    let device = std::thread::spawn({
        let completion = completion.clone();
        move || {
            for i in 0..MESSAGES as u8 {
                std::thread::sleep(std::time::Duration::from_millis(3));
                // SAFETY: writes one byte from a live buffer to our pipe.
                unsafe { libc::write(device_tx.as_raw_fd(), (&i as *const u8).cast(), 1) };
            }
            std::thread::sleep(std::time::Duration::from_millis(3));
            let mut c = completion.lock().unwrap();
            c.0 = true;
            if let Some(w) = c.1.take() {
                w.wake(); // a cross-thread wake: the eventfd ends the wait
            }
        }
    });

    let log = Rc::new(RefCell::new(Vec::new()));
    let inbox = Rc::new(Inbox::default());
    let finished = Rc::new(Cell::new(false));
    let app = ex.spawn({
        let (log, inbox, finished) = (log.clone(), inbox.clone(), finished.clone());
        async move {
            let start = Instant::now();
            let mut handlers = Vec::new();
            for _ in 0..MESSAGES {
                // Wait for the loop to deliver a message.
                let msg = poll_fn(|cx| match inbox.messages.borrow_mut().pop_front() {
                    Some(m) => Poll::Ready(m),
                    None => {
                        *inbox.waker.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                let log = log.clone();
                handlers.push(spawn(async move {
                    sleep(Duration::from_millis(1)).await; // "work"
                    log.borrow_mut().push(format!("handled message {msg}"));
                }));
            }
            for h in handlers {
                h.await.expect("handler task");
            }
            poll_fn(|cx| {
                let mut c = completion.lock().unwrap();
                if c.0 {
                    Poll::Ready(())
                } else {
                    c.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            log.borrow_mut()
                .push(format!("device done after {:?}", start.elapsed()));
            finished.set(true);
        }
    });

    // The program's event loop.
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
    while !finished.get() {
        let timeout = match ex.step() {
            Step::Busy => 0,
            Step::Idle { deadline } => {
                timeout_ms(ex.now().as_nanos(), deadline.map(Instant::as_nanos))
            }
        };
        if finished.get() {
            break;
        }
        // SAFETY: `events` is a live buffer of `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                timeout,
            )
        };
        for ev in &events[..usize::try_from(n).unwrap_or(0)] {
            match ev.u64 {
                TAG_UNPARK => {
                    drain(eventfd_raw);
                }
                TAG_DEVICE => {
                    inbox
                        .messages
                        .borrow_mut()
                        .extend(drain(device_rx.as_raw_fd()));
                    if let Some(w) = inbox.waker.borrow_mut().take() {
                        w.wake();
                    }
                }
                _ => unreachable!(),
            }
        }
    }
    device.join().unwrap();
    assert!(app.is_finished());
    let log = log.take();
    for line in &log {
        println!("{line}");
    }
    log
}
