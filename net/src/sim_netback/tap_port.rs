//! A [`Bridge`] port on a Linux TAP device (features `sim` and `std`,
//! Linux): the software Xen's bridge joined to the host's network.
//!
//! Frames the bridge queues for this port are written to the TAP fd; frames
//! the host sends on the TAP interface are read from it and sent into the
//! bridge, so a host `curl` reaches a sim guest through its netback and
//! netfront. Meant for worlds that follow the wall clock
//! (`ringlet_xen::sim::SimClock::RealTime`): on a deterministic world the
//! host's frames would land at arbitrary virtual times and the host's
//! timers would not agree with the guests'.
//!
//! ```text
//!  host stack ⇄ TAP fd ─ reader thread ─▶ rx queue (bounded) ─▶ task ─▶ bridge
//!                 ▲                                              │
//!                 └──────────── write(2), non-blocking ◀─────────┘◀─ bridge
//! ```
//!
//! # Why a reader thread
//!
//! The bridge, like the whole sim, belongs to the world's thread (`Rc`,
//! `RefCell`), and a real-time world sleeps in its `park` with no fd to
//! watch: the only way in from outside is a waker, whose remote wake
//! unparks the world. So a thread owns the receive side: it blocks in
//! `poll(2)` on the TAP fd (and an eventfd that stops it), reads each frame
//! into a bounded queue ([`TAP_RX_QUEUE_FRAMES`]; a frame beyond it is read
//! and dropped, and counted, as a switch port drops), and wakes the port's
//! task only when the task is waiting on an empty queue, so a burst of
//! frames costs one wake. Reading in the thread rather than only waiting
//! for readability there (as `tap::TapDevice` does for a stack that owns
//! its thread) keeps the kernel's queue drained while the world is busy,
//! spares the world's thread a syscall per received frame, and needs no
//! arm/disarm handshake. Writing stays on the world's thread: a write to the
//! non-blocking fd never blocks, and a frame the kernel refuses (interface
//! down, queue full) is dropped and counted.
//!
//! The port's task ([`TapPort::run`]) moves at most
//! [`TAP_TURN_FRAMES`] frames each way per turn, then yields.
// The fd calls (read, write, poll, eventfd) are FFI.
#![allow(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::convert::Infallible;
use core::fmt;
use core::future::poll_fn;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Poll, Waker};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread;

use super::bridge::{Bridge, BridgeFull, BridgePort, BRIDGE_FRAME_MAX, BRIDGE_FRAME_MIN};
use crate::tap::open_tap_fd;

/// Frames read from the TAP device and not yet taken by the port's task;
/// beyond it received frames are dropped ([`TapPortStats::rx_dropped_full`]).
pub const TAP_RX_QUEUE_FRAMES: usize = 512;
/// Frames the port's task moves each way before it yields to other tasks.
pub const TAP_TURN_FRAMES: usize = 64;
/// The reader's buffer: the largest frame a TAP interface can hand over (its
/// MTU may be raised to 64 KiB), so that an oversized frame is read whole and
/// dropped rather than truncated into a valid-looking one.
const TAP_READ_BYTES: usize = 65_536;

/// Counters of a [`TapPort`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapPortStats {
    /// Frames read from the TAP device and queued for the bridge.
    pub rx_frames: u64,
    /// Frames read and dropped because the receive queue was full.
    pub rx_dropped_full: u64,
    /// Frames read and dropped as too short or too long for the bridge.
    pub rx_dropped_bad: u64,
    /// Frames from the bridge written to the TAP device.
    pub tx_frames: u64,
    /// Frames from the bridge the kernel refused (interface down, queue
    /// full, an error).
    pub tx_dropped: u64,
}

/// Why [`TapPort::open`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TapOpenError {
    /// Opening `/dev/net/tun` or attaching the interface failed (no
    /// permission, a bad name, the interface is busy).
    Tap(io::Error),
    /// The bridge has no free port.
    Bridge(BridgeFull),
    /// The stop eventfd or the reader thread could not be made.
    Reader(io::Error),
}

impl fmt::Display for TapOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapOpenError::Tap(e) => write!(f, "opening the TAP device: {e}"),
            TapOpenError::Bridge(e) => write!(f, "attaching the TAP device: {e}"),
            TapOpenError::Reader(e) => write!(f, "starting the TAP reader: {e}"),
        }
    }
}

impl core::error::Error for TapOpenError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TapOpenError::Tap(e) | TapOpenError::Reader(e) => Some(e),
            TapOpenError::Bridge(e) => Some(e),
        }
    }
}

/// Why [`TapPort::run`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum TapRunError {
    /// Reading the TAP device failed for good (the interface went away);
    /// the reader thread stopped.
    Read(io::Error),
}

impl fmt::Display for TapRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapRunError::Read(e) => write!(f, "reading the TAP device: {e}"),
        }
    }
}

impl core::error::Error for TapRunError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TapRunError::Read(e) => Some(e),
        }
    }
}

/// What the reader thread hands to the port's task.
#[derive(Debug, Default)]
struct RxState {
    frames: VecDeque<Vec<u8>>,
    /// The task's waker, present while it waits on an empty queue.
    waker: Option<Waker>,
    /// The reader stopped on this error.
    failed: Option<io::Error>,
}

/// Shared by the port (world's thread) and its reader thread.
#[derive(Debug)]
struct Shared {
    tap: OwnedFd,
    /// Written once to stop the reader.
    stop: OwnedFd,
    rx: Mutex<RxState>,
    rx_frames: AtomicU64,
    rx_dropped_full: AtomicU64,
    rx_dropped_bad: AtomicU64,
}

impl Shared {
    fn new(tap: OwnedFd, stop: OwnedFd) -> Shared {
        Shared {
            tap,
            stop,
            rx: Mutex::new(RxState::default()),
            rx_frames: AtomicU64::new(0),
            rx_dropped_full: AtomicU64::new(0),
            rx_dropped_bad: AtomicU64::new(0),
        }
    }

    fn rx(&self) -> std::sync::MutexGuard<'_, RxState> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bridge port on a Linux TAP interface (see the module docs). Dropping
/// it stops and joins the reader thread and detaches the port.
///
/// # Examples
///
/// ```no_run
/// use std::rc::Rc;
/// use ringlet_net::sim_netback::{Bridge, TapPort};
///
/// let bridge = Bridge::new(512);
/// // Needs CAP_NET_ADMIN, or `ip tuntap add tap0 mode tap user $USER`.
/// let tap = Rc::new(TapPort::open("tap0", &bridge).unwrap());
/// let port = tap.clone();
/// ringlet_executor::spawn(async move { port.run().await }).detach();
/// // ... netbacks on `bridge`; later:
/// println!("{:?}", tap.stats());
/// ```
pub struct TapPort {
    port: BridgePort,
    shared: Arc<Shared>,
    tx_frames: Cell<u64>,
    tx_dropped: Cell<u64>,
    reader: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for TapPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapPort")
            .field("port", &self.port.id())
            .field("fd", &self.shared.tap.as_raw_fd())
            .field("stats", &self.stats())
            .finish()
    }
}

impl TapPort {
    /// Opens (or creates) the TAP interface `name`, attaches a port of
    /// `bridge` to it and starts the reader thread. Frames move once
    /// [`run`](TapPort::run) runs.
    ///
    /// # Errors
    ///
    /// [`TapOpenError`]: the device (`CAP_NET_ADMIN`, or an interface made
    /// beforehand with `ip tuntap add NAME mode tap user $USER`, is needed),
    /// a full bridge, or the reader.
    pub fn open(name: &str, bridge: &Bridge) -> Result<TapPort, TapOpenError> {
        let tap = open_tap_fd(name).map_err(TapOpenError::Tap)?;
        let port = bridge.attach().map_err(TapOpenError::Bridge)?;
        let stop = eventfd().map_err(TapOpenError::Reader)?;
        let shared = Arc::new(Shared::new(tap, stop));
        let reader = shared.clone();
        let reader = thread::Builder::new()
            .name(std::format!("tap-port-{name}"))
            .spawn(move || read_loop(&reader))
            .map_err(TapOpenError::Reader)?;
        Ok(TapPort {
            port,
            shared,
            tx_frames: Cell::new(0),
            tx_dropped: Cell::new(0),
            reader: Some(reader),
        })
    }

    /// The counters.
    pub fn stats(&self) -> TapPortStats {
        TapPortStats {
            rx_frames: self.shared.rx_frames.load(Ordering::Relaxed),
            rx_dropped_full: self.shared.rx_dropped_full.load(Ordering::Relaxed),
            rx_dropped_bad: self.shared.rx_dropped_bad.load(Ordering::Relaxed),
            tx_frames: self.tx_frames.get(),
            tx_dropped: self.tx_dropped.get(),
        }
    }

    /// The bridge port's number.
    pub fn port_id(&self) -> usize {
        self.port.id()
    }

    /// Moves frames both ways until the TAP device fails for good. Run it
    /// as a task on the world's executor.
    ///
    /// # Errors
    ///
    /// [`TapRunError::Read`] once the reader thread stopped on an error
    /// (the frames it had queued are delivered first).
    ///
    /// # Cancellation
    ///
    /// Cancel-safe: a frame is either still queued or already moved.
    pub async fn run(&self) -> Result<Infallible, TapRunError> {
        loop {
            let mut moved = 0;
            while moved < TAP_TURN_FRAMES {
                let Some(frame) = self.port.recv() else { break };
                self.write(&frame);
                moved += 1;
            }
            let (frames, failed) = {
                let mut rx = self.shared.rx();
                let n = rx.frames.len().min(TAP_TURN_FRAMES);
                let frames: Vec<Vec<u8>> = rx.frames.drain(..n).collect();
                let failed = if rx.frames.is_empty() {
                    rx.failed.take()
                } else {
                    None
                };
                (frames, failed)
            };
            moved += frames.len();
            for frame in &frames {
                self.port.send(frame);
            }
            if let Some(e) = failed {
                return Err(TapRunError::Read(e));
            }
            if moved > 0 {
                ringlet_executor::yield_now().await;
                continue;
            }
            poll_fn(|cx| {
                if self.port.poll_ready(cx).is_ready() {
                    return Poll::Ready(());
                }
                let mut rx = self.shared.rx();
                if !rx.frames.is_empty() || rx.failed.is_some() {
                    return Poll::Ready(());
                }
                match &rx.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => rx.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            })
            .await;
        }
    }

    /// Writes one frame from the bridge to the TAP device.
    fn write(&self, frame: &[u8]) {
        // SAFETY: `frame` is valid for `frame.len()` bytes for the call.
        let n = unsafe {
            libc::write(
                self.shared.tap.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
            )
        };
        if usize::try_from(n).is_ok_and(|n| n == frame.len()) {
            self.tx_frames.set(self.tx_frames.get() + 1);
        } else {
            self.tx_dropped.set(self.tx_dropped.get() + 1);
        }
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: `one` is valid for 8 bytes, what an eventfd write takes.
        let n = unsafe { libc::write(self.shared.stop.as_raw_fd(), one.as_ptr().cast(), 8) };
        // The counter cannot overflow from one write, so this succeeds; if
        // it did not, joining would hang: leave the thread instead.
        if n == 8 {
            if let Some(t) = self.reader.take() {
                let _ = t.join();
            }
        }
    }
}

/// A new non-blocking, close-on-exec eventfd.
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; the flags are valid.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The reader thread: waits for a frame or the stop signal, reads every
/// frame that is there, queues it (or drops it) and wakes a waiting task.
fn read_loop(shared: &Shared) {
    let mut buf = vec![0u8; TAP_READ_BYTES];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: shared.tap.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: shared.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is valid for two pollfds for the call; no timeout.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return fail(shared, e);
        }
        if fds[1].revents != 0 {
            return;
        }
        if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
            && fds[0].revents & libc::POLLIN == 0
        {
            return fail(shared, io::Error::other("the TAP device reported an error"));
        }
        // Drain what is there; poll again once the fd says "no frame".
        loop {
            // SAFETY: `buf` is valid for TAP_READ_BYTES bytes for the call.
            let n = unsafe {
                libc::read(
                    shared.tap.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    TAP_READ_BYTES,
                )
            };
            let len = match usize::try_from(n) {
                Ok(0) => break,
                Ok(len) => len,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => continue,
                        _ => return fail(shared, e),
                    }
                }
            };
            queue(shared, &buf[..len]);
        }
    }
}

/// Queues one received frame for the bridge, or drops and counts it.
fn queue(shared: &Shared, frame: &[u8]) {
    if !(BRIDGE_FRAME_MIN..=BRIDGE_FRAME_MAX).contains(&frame.len()) {
        shared.rx_dropped_bad.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let waker = {
        let mut rx = shared.rx();
        if rx.frames.len() >= TAP_RX_QUEUE_FRAMES {
            shared.rx_dropped_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        rx.frames.push_back(frame.to_vec());
        shared.rx_frames.fetch_add(1, Ordering::Relaxed);
        rx.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

/// Records the reader's fatal error and wakes the task to report it.
fn fail(shared: &Shared, e: io::Error) {
    let waker = {
        let mut rx = shared.rx();
        rx.failed = Some(e);
        rx.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::sync::Arc as StdArc;
    use alloc::task::Wake;
    use std::process::Command;

    struct Count(AtomicU64);
    impl Wake for Count {
        fn wake(self: StdArc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn frame(len: usize, tag: u8) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xb]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xa]);
        f
    }

    #[test]
    fn the_rx_queue_is_bounded_drops_are_counted_and_a_waiter_is_woken_once() {
        let shared = Shared::new(eventfd().unwrap(), eventfd().unwrap());
        let count = StdArc::new(Count(AtomicU64::new(0)));
        shared.rx().waker = Some(Waker::from(count.clone()));
        for i in 0..TAP_RX_QUEUE_FRAMES + 10 {
            queue(&shared, &frame(60, i as u8));
        }
        queue(&shared, &frame(BRIDGE_FRAME_MIN - 1, 0));
        queue(&shared, &frame(BRIDGE_FRAME_MAX + 1, 0));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one wake for the burst");
        let rx = shared.rx();
        assert_eq!(rx.frames.len(), TAP_RX_QUEUE_FRAMES);
        assert_eq!(rx.frames[0][20], 0, "the oldest frames are kept");
        assert_eq!(
            shared.rx_frames.load(Ordering::Relaxed),
            TAP_RX_QUEUE_FRAMES as u64
        );
        assert_eq!(shared.rx_dropped_full.load(Ordering::Relaxed), 10);
        assert_eq!(shared.rx_dropped_bad.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_reader_failure_wakes_the_waiter_with_the_error() {
        let shared = Shared::new(eventfd().unwrap(), eventfd().unwrap());
        let count = StdArc::new(Count(AtomicU64::new(0)));
        shared.rx().waker = Some(Waker::from(count.clone()));
        fail(&shared, io::Error::other("gone"));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(shared.rx().failed.is_some());
    }

    /// An ARP request for 10.9.9.1 from 10.9.9.2 (02:00:00:00:00:02).
    fn arp_request() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        // htype 1, ptype IPv4, hlen 6, plen 4, request.
        f[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[28..32].copy_from_slice(&[10, 9, 9, 2]);
        f[38..42].copy_from_slice(&[10, 9, 9, 1]);
        f
    }

    /// The host kernel, on the other side of a real TAP device, answers an
    /// ARP request that a bridge port sent through the TAP port: one frame
    /// each way, on a real-time sim world woken by the reader thread. Runs
    /// in a network namespace of its own (a thread that unshares), so the
    /// host is left as it was. Needs root and /dev/net/tun; skipped with a
    /// note otherwise.
    #[test]
    fn the_host_answers_arp_through_the_tap_port() {
        let t = thread::spawn(|| {
            // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only
            // this thread (and what it spawns) to a new network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                std::eprintln!(
                    "skipped: no network namespace of our own ({})",
                    io::Error::last_os_error()
                );
                return;
            }
            let bridge = Bridge::new(64);
            let name = "rgltap0";
            let tap = match TapPort::open(name, &bridge) {
                Ok(t) => alloc::rc::Rc::new(t),
                Err(e) => {
                    std::eprintln!("skipped: {e}");
                    return;
                }
            };
            let ip = |args: &[&str]| {
                let ok = Command::new("ip")
                    .args(args)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "ip {args:?} failed");
            };
            ip(&["addr", "add", "10.9.9.1/24", "dev", name]);
            ip(&["link", "set", name, "up"]);
            let sim = ringlet_xen::sim::SimXen::new(
                ringlet_xen::sim::SimConfig::new(1).quiet().real_time(),
            );
            let ex = ringlet_executor::Executor::new(sim.clone());
            let host = bridge.attach().unwrap();
            let reply = ex.block_on(async {
                let port = tap.clone();
                ringlet_executor::spawn(async move { port.run().await }).detach();
                host.send(&arp_request());
                ringlet_executor::timeout(ringlet_executor::Duration::from_secs(10), async {
                    loop {
                        poll_fn(|cx| host.poll_ready(cx)).await;
                        let f = host.recv().unwrap();
                        // Other frames (IPv6 neighbour discovery) are flooded here too.
                        if f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] {
                            return f;
                        }
                    }
                })
                .await
            });
            let reply = reply.expect("no ARP reply from the host within 10 s");
            assert_eq!(reply[..6], [2, 0, 0, 0, 0, 2], "to the asker");
            assert_eq!(reply[28..32], [10, 9, 9, 1], "from the host's address");
            assert_eq!(reply[38..42], [10, 9, 9, 2]);
            let s = tap.stats();
            assert!(s.tx_frames >= 1 && s.rx_frames >= 1, "{s:?}");
            assert_eq!(s.tx_dropped, 0, "{s:?}");
        });
        t.join().unwrap();
    }
}
