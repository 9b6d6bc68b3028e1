//! An in-memory Ethernet link: two [`NetDevice`] ends joined by bounded
//! queues, for two stacks in one process on one executor.
//!
//! Each direction is a FIFO of at most [`CableConfig::frames_max`] frames.
//! `transmit` gives no token while the far queue is full (back-pressure:
//! the far end wakes the sender when it takes a frame); the tx token that
//! comes with a received frame drops its frame instead, as a full NIC ring
//! would. Frames can be lost or corrupted at seeded integer ratios, to test
//! retransmission and checksums.
//!
//! ```
//! use ringlet_net::cable::{Cable, CableConfig};
//! use ringlet_net::NetDevice;
//!
//! let (a, b) = Cable::pair(CableConfig::default());
//! assert_ne!(a.mac(), b.mac());
//! ```

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::task::Waker;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::device::NetDevice;

/// Default [`CableConfig::frames_max`].
pub const DEFAULT_CABLE_FRAMES_MAX: usize = 64;
/// The cable's MTU: a full Ethernet frame (1500 bytes of payload plus the
/// 14-byte header), as smoltcp counts it for Ethernet.
pub const CABLE_MTU: usize = 1514;

/// The link's queue bound and fault ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CableConfig {
    /// Frames queued per direction.
    pub frames_max: usize,
    /// A frame is lost with probability `loss.0 / loss.1` (`(0, 1)`: never).
    pub loss: (u32, u32),
    /// A frame has one byte flipped with probability `corrupt.0 / corrupt.1`.
    pub corrupt: (u32, u32),
    /// Seed of the loss and corruption draws.
    pub seed: u64,
}

impl Default for CableConfig {
    fn default() -> Self {
        CableConfig {
            frames_max: DEFAULT_CABLE_FRAMES_MAX,
            loss: (0, 1),
            corrupt: (0, 1),
            seed: 0,
        }
    }
}

/// Counters of one direction of a cable (frames sent by one end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CableStats {
    /// Frames handed to the cable by this end.
    pub sent: u64,
    /// Frames the other end took.
    pub delivered: u64,
    /// Frames dropped because the far queue was full.
    pub dropped_full: u64,
    /// Frames lost by the loss ratio.
    pub lost: u64,
    /// Frames delivered with a flipped byte.
    pub corrupted: u64,
}

/// Builds cables.
#[derive(Debug)]
pub struct Cable;

impl Cable {
    /// Two joined ends, with MACs `02:00:00:00:00:01` and `…:02`.
    ///
    /// # Panics
    ///
    /// If `frames_max` is 0 or a ratio's denominator is 0 (a test bug).
    pub fn pair(config: CableConfig) -> (CableEnd, CableEnd) {
        Cable::pair_with_macs(config, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
    }

    /// Two joined ends with the given MACs.
    ///
    /// # Panics
    ///
    /// As [`Cable::pair`].
    pub fn pair_with_macs(config: CableConfig, a: [u8; 6], b: [u8; 6]) -> (CableEnd, CableEnd) {
        assert!(config.frames_max > 0, "a cable needs room for a frame");
        assert!(
            config.loss.1 > 0 && config.corrupt.1 > 0,
            "ratio with a zero denominator"
        );
        let wire = Rc::new(RefCell::new(Wire {
            queues: [VecDeque::new(), VecDeque::new()],
            wakers: [None, None],
            stats: [CableStats::default(); 2],
            prng: config.seed ^ 0x9e37_79b9_7f4a_7c15,
            config,
        }));
        (
            CableEnd {
                wire: wire.clone(),
                side: 0,
                mac: a,
            },
            CableEnd {
                wire,
                side: 1,
                mac: b,
            },
        )
    }
}

struct Wire {
    /// `queues[s]`: frames travelling towards side `s`.
    queues: [VecDeque<Vec<u8>>; 2],
    wakers: [Option<Waker>; 2],
    /// `stats[s]`: frames sent by side `s`.
    stats: [CableStats; 2],
    prng: u64,
    config: CableConfig,
}

impl Wire {
    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.prng = self.prng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.prng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, (num, den): (u32, u32)) -> bool {
        num > 0 && self.next() % u64::from(den) < u64::from(num)
    }

    fn room(&self, to: usize) -> bool {
        self.queues[to].len() < self.config.frames_max
    }

    /// Sends `frame` from side `from` to the other side.
    fn send(&mut self, from: usize, mut frame: Vec<u8>) {
        let to = 1 - from;
        self.stats[from].sent += 1;
        if !self.room(to) {
            self.stats[from].dropped_full += 1;
            return;
        }
        if self.chance(self.config.loss) {
            self.stats[from].lost += 1;
            return;
        }
        if !frame.is_empty() && self.chance(self.config.corrupt) {
            let at = (self.next() % frame.len() as u64) as usize;
            frame[at] ^= 1 << (self.next() % 8);
            self.stats[from].corrupted += 1;
        }
        self.queues[to].push_back(frame);
        if let Some(w) = &self.wakers[to] {
            w.wake_by_ref();
        }
    }

    /// Takes the next frame travelling to side `to`.
    fn take(&mut self, to: usize) -> Option<Vec<u8>> {
        let was_full = !self.room(to);
        let frame = self.queues[to].pop_front()?;
        self.stats[1 - to].delivered += 1;
        if was_full {
            // The sender may be waiting for room.
            if let Some(w) = &self.wakers[1 - to] {
                w.wake_by_ref();
            }
        }
        Some(frame)
    }
}

/// One end of a [`Cable`]: a [`NetDevice`].
pub struct CableEnd {
    wire: Rc<RefCell<Wire>>,
    side: usize,
    mac: [u8; 6],
}

impl CableEnd {
    /// Counters of the frames this end sent.
    pub fn stats(&self) -> CableStats {
        self.wire.borrow().stats[self.side]
    }

    /// Frames waiting for this end to take them.
    pub fn queued(&self) -> usize {
        self.wire.borrow().queues[self.side].len()
    }

    /// Sends a raw frame to the other end (for tests that play a peer
    /// without a stack). Returns `false` if it was dropped (queue full).
    pub fn send_raw(&self, frame: &[u8]) -> bool {
        let mut wire = self.wire.borrow_mut();
        let before = wire.stats[self.side].dropped_full;
        wire.send(self.side, frame.to_vec());
        wire.stats[self.side].dropped_full == before
    }

    /// Takes a raw frame sent by the other end, if any.
    pub fn recv_raw(&self) -> Option<Vec<u8>> {
        self.wire.borrow_mut().take(self.side)
    }
}

impl fmt::Debug for CableEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CableEnd")
            .field("side", &self.side)
            .field("queued", &self.queued())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A received frame.
#[derive(Debug)]
pub struct CableRxToken {
    frame: Vec<u8>,
}

impl phy::RxToken for CableRxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.frame)
    }
}

/// Room for one frame to the other end.
pub struct CableTxToken {
    wire: Rc<RefCell<Wire>>,
    side: usize,
}

impl fmt::Debug for CableTxToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CableTxToken")
            .field("side", &self.side)
            .finish()
    }
}

impl phy::TxToken for CableTxToken {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.wire.borrow_mut().send(self.side, frame);
        r
    }
}

impl Device for CableEnd {
    type RxToken<'a> = CableRxToken;
    type TxToken<'a> = CableTxToken;

    fn receive(&mut self, _now: Instant) -> Option<(CableRxToken, CableTxToken)> {
        let frame = self.wire.borrow_mut().take(self.side)?;
        Some((
            CableRxToken { frame },
            CableTxToken {
                wire: self.wire.clone(),
                side: self.side,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<CableTxToken> {
        self.wire
            .borrow()
            .room(1 - self.side)
            .then(|| CableTxToken {
                wire: self.wire.clone(),
                side: self.side,
            })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = CABLE_MTU;
        caps
    }
}

impl NetDevice for CableEnd {
    fn register_waker(&mut self, waker: &Waker) {
        let mut wire = self.wire.borrow_mut();
        let slot = &mut wire.wakers[self.side];
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use smoltcp::phy::{RxToken, TxToken};

    fn send(end: &mut CableEnd, bytes: &[u8]) -> bool {
        match end.transmit(Instant::ZERO) {
            Some(tok) => {
                tok.consume(bytes.len(), |b| b.copy_from_slice(bytes));
                true
            }
            None => false,
        }
    }

    #[test]
    fn frames_cross_in_order_with_backpressure() {
        let cfg = CableConfig {
            frames_max: 2,
            ..CableConfig::default()
        };
        let (mut a, mut b) = Cable::pair(cfg);
        assert!(send(&mut a, b"one"));
        assert!(send(&mut a, b"two"));
        assert!(!send(&mut a, b"three"), "full queue gives no token");
        let (rx, _) = b.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.to_vec()), b"one");
        assert!(send(&mut a, b"three"));
        let got: Vec<Vec<u8>> = core::iter::from_fn(|| b.receive(Instant::ZERO))
            .map(|(rx, _)| rx.consume(|f| f.to_vec()))
            .collect();
        assert_eq!(got, [b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(a.stats().delivered, 3);
        assert!(a.receive(Instant::ZERO).is_none());
    }

    #[test]
    fn wakes_receiver_and_blocked_sender() {
        use alloc::sync::Arc;
        use alloc::task::Wake;
        use core::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (ca, cb) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let cfg = CableConfig {
            frames_max: 1,
            ..CableConfig::default()
        };
        let (mut a, mut b) = Cable::pair(cfg);
        a.register_waker(&Waker::from(ca.clone()));
        b.register_waker(&Waker::from(cb.clone()));
        assert!(send(&mut a, b"x"));
        assert_eq!(cb.0.load(Ordering::Relaxed), 1, "receiver woken");
        assert!(!send(&mut a, b"y"));
        let _ = b.receive(Instant::ZERO).unwrap();
        assert_eq!(ca.0.load(Ordering::Relaxed), 1, "sender woken on room");
    }

    #[test]
    fn loss_and_corruption_are_seeded() {
        let run = |seed| {
            let cfg = CableConfig {
                frames_max: 1000,
                loss: (1, 4),
                corrupt: (1, 4),
                seed,
            };
            let (a, b) = Cable::pair(cfg);
            for i in 0..400u32 {
                a.send_raw(&i.to_le_bytes());
            }
            let got: Vec<Vec<u8>> = core::iter::from_fn(|| b.recv_raw()).collect();
            (a.stats(), got)
        };
        let (s1, g1) = run(5);
        assert_eq!(run(5), (s1, g1.clone()), "same seed, same faults");
        assert!(s1.lost > 50 && s1.lost < 150, "{s1:?}");
        assert!(s1.corrupted > 30, "{s1:?}");
        assert_eq!(g1.len() as u64, s1.sent - s1.lost);
        assert_ne!(run(6).0, s1);
    }
}
