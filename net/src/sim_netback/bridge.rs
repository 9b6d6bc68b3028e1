//! A learning Ethernet bridge between the sim's netbacks (and any other
//! port, e.g. a test's frame injector or a TAP device).
//!
//! Each frame sent on a port teaches the bridge that its source MAC lives
//! there; it then goes to the port its destination MAC was learned on, or
//! to every other port when the destination is unknown, broadcast or
//! multicast (flooding). Every port has a bounded receive queue; a frame
//! for a full queue is dropped and counted, as a switch drops when an
//! egress buffer is full. The MAC table is bounded too.
//!
//! ```
//! use ringlet_net::sim_netback::Bridge;
//!
//! let bridge = Bridge::new(4);
//! let a = bridge.attach().unwrap();
//! let b = bridge.attach().unwrap();
//! let mut frame = [0u8; 60];
//! frame[..6].copy_from_slice(&[0xff; 6]); // broadcast
//! frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
//! a.send(&frame);
//! assert_eq!(b.recv().as_deref(), Some(&frame[..]));
//! assert!(a.recv().is_none(), "never back to the sender");
//! ```
#![deny(unsafe_code)]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::task::{Context, Poll, Waker};

/// Ports one bridge may have.
pub const BRIDGE_PORTS_MAX: usize = 64;
/// MAC addresses the bridge remembers; new ones beyond it are not learned
/// (their frames are flooded instead).
pub const MAC_TABLE_MAX: usize = 256;
/// Longest frame forwarded: a 1500-byte payload and the 14-byte header (no
/// jumbo frames).
pub const BRIDGE_FRAME_MAX: usize = 1514;
/// Shortest frame forwarded: an Ethernet header.
pub const BRIDGE_FRAME_MIN: usize = 14;

/// Counters of the whole bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Frames sent into the bridge.
    pub frames_in: u64,
    /// Frames sent to the one port their destination was learned on.
    pub forwarded: u64,
    /// Frames sent to every other port.
    pub flooded: u64,
    /// Copies dropped because a port's queue was full.
    pub dropped_full: u64,
    /// Frames dropped as too short or too long.
    pub dropped_bad: u64,
    /// Frames whose destination lives on the port they came from.
    pub dropped_same_port: u64,
    /// Source MACs not learned because the table was full.
    pub table_full: u64,
}

/// Counters of one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames this port sent into the bridge.
    pub sent: u64,
    /// Frames queued for this port.
    pub queued: u64,
    /// Frames taken from the queue.
    pub taken: u64,
    /// Frames for this port dropped because its queue was full.
    pub dropped_full: u64,
}

/// The bridge has [`BRIDGE_PORTS_MAX`] ports already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeFull;

impl fmt::Display for BridgeFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bridge has {BRIDGE_PORTS_MAX} ports already")
    }
}

impl core::error::Error for BridgeFull {}

#[derive(Debug, Default)]
struct PortState {
    queue: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
    stats: PortStats,
}

#[derive(Debug)]
struct Inner {
    ports: Vec<Option<PortState>>,
    macs: BTreeMap<[u8; 6], usize>,
    queue_frames_max: usize,
    stats: BridgeStats,
}

/// A learning bridge. Cloning gives another handle on the same bridge.
#[derive(Clone)]
pub struct Bridge {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_borrow() {
            Ok(i) => f
                .debug_struct("Bridge")
                .field("ports", &i.ports.iter().filter(|p| p.is_some()).count())
                .field("macs", &i.macs.len())
                .field("stats", &i.stats)
                .finish(),
            Err(_) => f.debug_struct("Bridge").finish_non_exhaustive(),
        }
    }
}

impl Bridge {
    /// A bridge whose ports queue at most `queue_frames_max` frames each.
    ///
    /// # Panics
    /// If `queue_frames_max` is 0 (a set-up bug).
    pub fn new(queue_frames_max: usize) -> Bridge {
        assert!(queue_frames_max > 0, "a bridge port needs room for a frame");
        Bridge {
            inner: Rc::new(RefCell::new(Inner {
                ports: Vec::new(),
                macs: BTreeMap::new(),
                queue_frames_max,
                stats: BridgeStats::default(),
            })),
        }
    }

    /// A new port.
    ///
    /// # Errors
    /// [`BridgeFull`] beyond [`BRIDGE_PORTS_MAX`] ports.
    pub fn attach(&self) -> Result<BridgePort, BridgeFull> {
        let mut i = self.inner.borrow_mut();
        let id = match i.ports.iter().position(Option::is_none) {
            Some(id) => id,
            None if i.ports.len() < BRIDGE_PORTS_MAX => {
                i.ports.push(None);
                i.ports.len() - 1
            }
            None => return Err(BridgeFull),
        };
        i.ports[id] = Some(PortState::default());
        Ok(BridgePort {
            bridge: self.clone(),
            id,
        })
    }

    /// The bridge's counters.
    pub fn stats(&self) -> BridgeStats {
        self.inner.borrow().stats
    }

    /// The port `mac` was learned on.
    pub fn port_of(&self, mac: [u8; 6]) -> Option<usize> {
        self.inner.borrow().macs.get(&mac).copied()
    }
}

impl Inner {
    /// Queues a copy of `frame` for port `to`; returns its waker to wake.
    fn enqueue(&mut self, to: usize, frame: &[u8]) -> Option<Waker> {
        let max = self.queue_frames_max;
        let port = self.ports[to].as_mut().expect("enqueue to a live port");
        if port.queue.len() >= max {
            port.stats.dropped_full += 1;
            self.stats.dropped_full += 1;
            return None;
        }
        port.queue.push_back(frame.to_vec());
        port.stats.queued += 1;
        port.waker.take()
    }
}

/// One port of a [`Bridge`]. Dropping it detaches it (its queue and the
/// MACs learned on it are forgotten).
pub struct BridgePort {
    bridge: Bridge,
    id: usize,
}

impl fmt::Debug for BridgePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgePort")
            .field("id", &self.id)
            .field("stats", &self.stats())
            .finish()
    }
}

impl BridgePort {
    /// The port's number.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Sends `frame` into the bridge from this port (see the module doc).
    /// Frames outside [`BRIDGE_FRAME_MIN`]..=[`BRIDGE_FRAME_MAX`] bytes are
    /// dropped.
    pub fn send(&self, frame: &[u8]) {
        let mut wake = Vec::new();
        {
            let mut i = self.bridge.inner.borrow_mut();
            i.stats.frames_in += 1;
            if let Some(p) = i.ports[self.id].as_mut() {
                p.stats.sent += 1;
            }
            if !(BRIDGE_FRAME_MIN..=BRIDGE_FRAME_MAX).contains(&frame.len()) {
                i.stats.dropped_bad += 1;
                return;
            }
            let mut dst = [0u8; 6];
            dst.copy_from_slice(&frame[..6]);
            let mut src = [0u8; 6];
            src.copy_from_slice(&frame[6..12]);
            if src[0] & 1 == 0 {
                let known = i.macs.contains_key(&src);
                if known || i.macs.len() < MAC_TABLE_MAX {
                    i.macs.insert(src, self.id);
                } else {
                    i.stats.table_full += 1;
                }
            }
            let to = if dst[0] & 1 == 0 {
                i.macs.get(&dst).copied()
            } else {
                None
            };
            match to {
                Some(to) if to == self.id => i.stats.dropped_same_port += 1,
                Some(to) => {
                    i.stats.forwarded += 1;
                    wake.extend(i.enqueue(to, frame));
                }
                None => {
                    i.stats.flooded += 1;
                    let others: Vec<usize> = (0..i.ports.len())
                        .filter(|&p| p != self.id && i.ports[p].is_some())
                        .collect();
                    for p in others {
                        wake.extend(i.enqueue(p, frame));
                    }
                }
            }
        }
        for w in wake {
            w.wake();
        }
    }

    /// Takes the next frame queued for this port.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut i = self.bridge.inner.borrow_mut();
        let p = i.ports[self.id].as_mut().expect("own port");
        let f = p.queue.pop_front()?;
        p.stats.taken += 1;
        Some(f)
    }

    /// The length of the next queued frame, if any.
    pub fn peek_len(&self) -> Option<usize> {
        let i = self.bridge.inner.borrow();
        i.ports[self.id]
            .as_ref()
            .and_then(|p| p.queue.front().map(Vec::len))
    }

    /// Frames queued for this port.
    pub fn queued(&self) -> usize {
        let i = self.bridge.inner.borrow();
        i.ports[self.id].as_ref().map_or(0, |p| p.queue.len())
    }

    /// Ready if a frame is queued; otherwise remembers `cx`'s waker (woken
    /// when one is) and returns Pending.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut i = self.bridge.inner.borrow_mut();
        let p = i.ports[self.id].as_mut().expect("own port");
        if !p.queue.is_empty() {
            return Poll::Ready(());
        }
        match &p.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => p.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The port's counters.
    pub fn stats(&self) -> PortStats {
        let i = self.bridge.inner.borrow();
        i.ports[self.id]
            .as_ref()
            .map_or_else(PortStats::default, |p| p.stats)
    }
}

impl Drop for BridgePort {
    fn drop(&mut self) {
        let mut i = self.bridge.inner.borrow_mut();
        i.ports[self.id] = None;
        let id = self.id;
        i.macs.retain(|_, p| *p != id);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::vec;

    fn frame(dst: [u8; 6], src: [u8; 6], tag: u8) -> Vec<u8> {
        let mut f = vec![tag; 60];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

    #[test]
    fn learns_then_forwards_instead_of_flooding() {
        let br = Bridge::new(8);
        let (a, b, c) = (
            br.attach().unwrap(),
            br.attach().unwrap(),
            br.attach().unwrap(),
        );
        // Unknown destination: flooded to b and c.
        a.send(&frame(B, A, 1));
        assert_eq!(b.recv(), Some(frame(B, A, 1)));
        assert_eq!(c.recv(), Some(frame(B, A, 1)));
        assert_eq!(br.port_of(A), Some(a.id()));
        // b answers: A is known, only a gets it.
        b.send(&frame(A, B, 2));
        assert_eq!(a.recv(), Some(frame(A, B, 2)));
        assert_eq!(c.recv(), None);
        // Now B is known too.
        a.send(&frame(B, A, 3));
        assert_eq!(b.recv(), Some(frame(B, A, 3)));
        assert_eq!(c.recv(), None);
        let s = br.stats();
        assert_eq!((s.frames_in, s.flooded, s.forwarded), (3, 1, 2));
    }

    #[test]
    fn broadcast_and_multicast_flood_and_never_learn() {
        let br = Bridge::new(8);
        let (a, b) = (br.attach().unwrap(), br.attach().unwrap());
        a.send(&frame([0xff; 6], A, 1));
        a.send(&frame([1, 0, 0x5e, 0, 0, 1], A, 2));
        assert_eq!(b.queued(), 2);
        // A multicast source is not learned.
        b.send(&frame(C, [3, 0, 0, 0, 0, 1], 3));
        assert_eq!(br.port_of([3, 0, 0, 0, 0, 1]), None);
        assert_eq!(a.recv(), Some(frame(C, [3, 0, 0, 0, 0, 1], 3)));
    }

    #[test]
    fn queues_are_bounded_and_drops_counted() {
        let br = Bridge::new(2);
        let (a, b) = (br.attach().unwrap(), br.attach().unwrap());
        for t in 0..5 {
            a.send(&frame(B, A, t));
        }
        assert_eq!(b.queued(), 2);
        assert_eq!(b.stats().dropped_full, 3);
        assert_eq!(br.stats().dropped_full, 3);
        assert_eq!(b.recv().unwrap()[20], 0, "the oldest frames were kept");
        assert_eq!(b.recv().unwrap()[20], 1);
    }

    #[test]
    fn bad_sizes_and_same_port() {
        let br = Bridge::new(2);
        let (a, b) = (br.attach().unwrap(), br.attach().unwrap());
        a.send(&[0u8; 13]);
        a.send(&vec![0u8; BRIDGE_FRAME_MAX + 1]);
        assert_eq!(br.stats().dropped_bad, 2);
        a.send(&frame(B, A, 1));
        let _ = b.recv();
        // A frame to a MAC learned on the sending port goes nowhere (the
        // source is learned first).
        b.send(&frame(B, B, 1));
        b.send(&frame(A, B, 2));
        b.send(&frame(B, B, 3));
        assert_eq!(br.stats().dropped_same_port, 2);
        assert_eq!(a.recv(), Some(frame(A, B, 2)));
        assert_eq!(a.recv(), None);
    }

    #[test]
    fn detached_port_forgets_its_macs_and_ids_are_reused() {
        let br = Bridge::new(2);
        let a = br.attach().unwrap();
        let b = br.attach().unwrap();
        b.send(&frame(A, B, 1));
        assert_eq!(br.port_of(B), Some(1));
        drop(b);
        assert_eq!(br.port_of(B), None);
        let c = br.attach().unwrap();
        assert_eq!(c.id(), 1);
        a.send(&frame(B, A, 2));
        assert_eq!(c.recv(), Some(frame(B, A, 2)), "unknown again: flooded");
    }

    #[test]
    fn port_limit() {
        let br = Bridge::new(1);
        let ports: Vec<_> = (0..BRIDGE_PORTS_MAX)
            .map(|_| br.attach().unwrap())
            .collect();
        assert_eq!(br.attach().unwrap_err(), BridgeFull);
        drop(ports);
        assert!(br.attach().is_ok());
    }

    #[test]
    fn mac_table_is_bounded() {
        let br = Bridge::new(1);
        let a = br.attach().unwrap();
        let _b = br.attach().unwrap();
        for n in 0..(MAC_TABLE_MAX as u32 + 10) {
            let b = n.to_be_bytes();
            a.send(&frame([0xff; 6], [2, 0, b[0], b[1], b[2], b[3]], 0));
        }
        assert_eq!(br.stats().table_full, 10);
    }

    #[test]
    fn waker_is_woken_on_enqueue() {
        use alloc::sync::Arc;
        use core::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl alloc::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let br = Bridge::new(4);
        let (a, b) = (br.attach().unwrap(), br.attach().unwrap());
        assert!(b.poll_ready(&mut cx).is_pending());
        a.send(&frame(B, A, 1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(b.poll_ready(&mut cx).is_ready());
    }
}
