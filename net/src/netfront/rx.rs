//! Judging rx responses and assembling frames from them (sans-IO: the
//! caller copies bytes out of the granted page; this module decides whether
//! and where).
//!
//! # States of the assembler
//!
//! ```text
//!            1. fragment, no more_data: Frame (or Dropped)
//!   Idle ─────────────────────────────────────────────────► Idle
//!    │  2. fragment with more_data (valid)
//!    ▼
//!   Building ── 3. valid fragment with more_data ──► Building
//!    │  └────── 4. last fragment ──► Idle, Frame
//!    │ 5. bad fragment with more_data
//!    ▼
//!   Discarding ── 6. fragment with more_data ──► Discarding
//!         └────── 7. fragment without more_data ──► Idle
//! ```
//!
//! A fragment is checked before any byte is copied: status (`>= 0`, or a
//! known `NETIF_RSP_*` error), `offset + size` within the page, flags known
//! and negotiated, the chain no longer than [`RX_CHAIN_SLOTS_MAX`] slots and
//! [`FRAME_LEN_MAX`] bytes. A bad fragment drops the whole chain once
//! (transition 5 or a direct drop); the rest of a dropped chain is
//! discarded without being counted again (6, 7).
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

use ringlet_xen::hypervisor::PAGE_SIZE;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet};
use smoltcp::wire::{TcpPacket, UdpPacket};

use super::netif::{
    RxResponse, NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETRXF_CSUM_BLANK, NETRXF_EXTRA_INFO,
    NETRXF_GSO_PREFIX, NETRXF_KNOWN, NETRXF_MORE_DATA, XEN_NETIF_NR_SLOTS_MIN,
};

/// The largest frame netfront accepts: a 1500-byte IP MTU plus the 14-byte
/// Ethernet header (smoltcp's Ethernet MTU). Longer frames are dropped.
pub const FRAME_LEN_MAX: usize = 1514;

/// The shortest frame netfront accepts: an Ethernet header.
pub const FRAME_LEN_MIN: usize = 14;

/// Slots one rx packet may span (`XEN_NETIF_NR_SLOTS_MIN`).
pub const RX_CHAIN_SLOTS_MAX: usize = XEN_NETIF_NR_SLOTS_MIN;

/// Why an rx response was judged malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RxMalformed {
    /// A negative status that is not `NETIF_RSP_ERROR` or `NETIF_RSP_DROPPED`.
    BadStatus(i16),
    /// `offset + size` leaves the page.
    OutOfPage {
        /// The response's offset.
        offset: u16,
        /// The response's size.
        size: u16,
    },
    /// Flag bits netif.h does not define.
    UnknownFlags(u16),
    /// A flag for a feature netfront did not negotiate (`extra_info`,
    /// `gso_prefix`, or `more_data` without `feature-sg`).
    NotNegotiated(u16),
    /// The chain is longer than [`FRAME_LEN_MAX`] bytes.
    Oversized,
    /// The chain spans more than [`RX_CHAIN_SLOTS_MAX`] slots.
    TooManySlots,
    /// The frame is shorter than an Ethernet header.
    Runt(usize),
    /// `NETRXF_csum_blank` on a frame whose checksum netfront cannot fill
    /// (not IPv4 TCP or UDP, or a truncated header).
    CsumBlank,
    /// The backend still had the buffer's grant in use after answering, so
    /// its bytes cannot be taken as final.
    StillMapped,
}

impl fmt::Display for RxMalformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RxMalformed::BadStatus(s) => write!(f, "unknown rx status {s}"),
            RxMalformed::OutOfPage { offset, size } => {
                write!(f, "rx fragment {offset}+{size} leaves the page")
            }
            RxMalformed::UnknownFlags(x) => write!(f, "unknown rx flags {x:#x}"),
            RxMalformed::NotNegotiated(x) => write!(f, "rx flags {x:#x} not negotiated"),
            RxMalformed::Oversized => write!(f, "rx frame longer than {FRAME_LEN_MAX} bytes"),
            RxMalformed::TooManySlots => write!(f, "rx frame over {RX_CHAIN_SLOTS_MAX} slots"),
            RxMalformed::Runt(n) => write!(f, "rx frame of {n} bytes"),
            RxMalformed::CsumBlank => f.write_str("rx checksum blank on a frame it cannot fill"),
            RxMalformed::StillMapped => f.write_str("rx buffer still in use by the backend"),
        }
    }
}

impl core::error::Error for RxMalformed {}

/// Why a chain was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// The backend reported an error for it (`NETIF_RSP_ERROR` or
    /// `NETIF_RSP_DROPPED`).
    Backend(i16),
    /// A response broke the protocol.
    Malformed(RxMalformed),
}

/// What one response did to the assembler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxStep {
    /// A frame is complete: [`RxAssembler::frame`] holds it.
    Frame,
    /// Part of a chain (or of a dropped chain); more responses follow.
    Partial,
    /// The chain was dropped (counted once per chain).
    Dropped(RxDrop),
}

/// A fragment that passed the checks: copy `len` bytes at `offset` of the
/// page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Where the data starts in the page.
    pub offset: usize,
    /// Bytes of data.
    pub len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Building,
    Discarding,
}

/// Builds frames from rx responses; holds at most one partial frame
/// ([`FRAME_LEN_MAX`] bytes).
#[derive(Debug)]
pub struct RxAssembler {
    frame: Vec<u8>,
    slots: usize,
    csum_blank: bool,
    csum_filled: bool,
    state: State,
    sg: bool,
}

impl RxAssembler {
    /// An assembler for a connection that negotiated `feature-sg` (`sg`)
    /// or not.
    pub fn new(sg: bool) -> RxAssembler {
        RxAssembler {
            frame: Vec::with_capacity(FRAME_LEN_MAX),
            slots: 0,
            csum_blank: false,
            csum_filled: false,
            state: State::Idle,
            sg,
        }
    }

    /// Whether a chain is in progress (being built or discarded).
    pub fn in_chain(&self) -> bool {
        self.state != State::Idle
    }

    /// Slots the last complete frame spanned (valid after
    /// [`RxStep::Frame`]).
    pub fn frame_slots(&self) -> usize {
        self.slots
    }

    /// Whether the last complete frame's blank checksum was filled (valid
    /// after [`RxStep::Frame`]).
    pub fn csum_filled(&self) -> bool {
        self.csum_filled
    }

    /// The last complete frame (valid after [`RxStep::Frame`], until the
    /// next [`push`](Self::push)).
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Takes the last complete frame's buffer, leaving `spare` (cleared)
    /// in its place (buffer recycling without allocation).
    pub fn take_frame(&mut self, mut spare: Vec<u8>) -> Vec<u8> {
        spare.clear();
        core::mem::replace(&mut self.frame, spare)
    }

    fn check(&self, rsp: &RxResponse) -> Result<Fragment, RxDrop> {
        let flags = rsp.flags;
        if flags & !NETRXF_KNOWN != 0 {
            return Err(RxDrop::Malformed(RxMalformed::UnknownFlags(flags)));
        }
        let not_negotiated = flags & (NETRXF_EXTRA_INFO | NETRXF_GSO_PREFIX)
            | if self.sg { 0 } else { flags & NETRXF_MORE_DATA };
        if not_negotiated != 0 {
            return Err(RxDrop::Malformed(RxMalformed::NotNegotiated(
                not_negotiated,
            )));
        }
        match rsp.status {
            NETIF_RSP_ERROR | NETIF_RSP_DROPPED => return Err(RxDrop::Backend(rsp.status)),
            s if s < 0 => return Err(RxDrop::Malformed(RxMalformed::BadStatus(s))),
            _ => {}
        }
        let (offset, len) = (usize::from(rsp.offset), rsp.status as usize);
        if offset + len > PAGE_SIZE {
            return Err(RxDrop::Malformed(RxMalformed::OutOfPage {
                offset: rsp.offset,
                size: rsp.status as u16,
            }));
        }
        if self.slots + 1 > RX_CHAIN_SLOTS_MAX {
            return Err(RxDrop::Malformed(RxMalformed::TooManySlots));
        }
        if self.frame.len() + len > FRAME_LEN_MAX {
            return Err(RxDrop::Malformed(RxMalformed::Oversized));
        }
        Ok(Fragment { offset, len })
    }

    /// Judges `rsp` (the response of one rx buffer) and, if it is good,
    /// calls `copy(fragment, dst)` to fill `dst` (exactly `fragment.len`
    /// bytes) from the buffer's page. See the module doc for the states.
    pub fn push(&mut self, rsp: &RxResponse, copy: impl FnOnce(Fragment, &mut [u8])) -> RxStep {
        let more = rsp.flags & NETRXF_MORE_DATA != 0;
        if self.state == State::Idle {
            self.frame.clear();
            self.slots = 0;
            self.csum_blank = false;
            self.csum_filled = false;
        }
        if self.state == State::Discarding {
            // 6, 7: the rest of a chain already dropped and counted.
            if !more {
                self.state = State::Idle;
            }
            return RxStep::Partial;
        }
        let frag = match self.check(rsp) {
            Ok(frag) => frag,
            Err(drop) => {
                self.state = if more { State::Discarding } else { State::Idle };
                return RxStep::Dropped(drop);
            }
        };
        let start = self.frame.len();
        self.frame.resize(start + frag.len, 0);
        copy(frag, &mut self.frame[start..]);
        self.slots += 1;
        self.csum_blank |= rsp.flags & NETRXF_CSUM_BLANK != 0;
        if more {
            self.state = State::Building;
            return RxStep::Partial;
        }
        self.state = State::Idle;
        if self.frame.len() < FRAME_LEN_MIN {
            return RxStep::Dropped(RxDrop::Malformed(RxMalformed::Runt(self.frame.len())));
        }
        if self.csum_blank {
            if !fill_checksum(&mut self.frame) {
                return RxStep::Dropped(RxDrop::Malformed(RxMalformed::CsumBlank));
            }
            self.csum_filled = true;
        }
        RxStep::Frame
    }

    /// Drops the fragment of `rsp` (and so its chain) without looking at its
    /// bytes, for a reason the caller found (e.g. [`RxMalformed::StillMapped`]).
    pub fn drop_fragment(&mut self, rsp: &RxResponse, why: RxMalformed) -> RxStep {
        let more = rsp.flags & NETRXF_MORE_DATA != 0;
        let was = self.state;
        self.state = if more { State::Discarding } else { State::Idle };
        if was == State::Discarding {
            return RxStep::Partial;
        }
        RxStep::Dropped(RxDrop::Malformed(why))
    }

    /// Forgets a partial chain (on disconnect).
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.frame.clear();
        self.slots = 0;
    }
}

/// Fills the TCP or UDP checksum of an IPv4 frame whose checksum a backend
/// left blank (`NETRXF_csum_blank`: Linux's `CHECKSUM_PARTIAL`). Returns
/// whether it could; the frame is untouched when it could not.
///
/// It cannot when the frame is not an unfragmented IPv4 (version 4) TCP or
/// UDP packet with whole headers: a fragment's checksum covers bytes it does
/// not hold (and in a later fragment the "header" is payload).
pub fn fill_checksum(frame: &mut [u8]) -> bool {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
        return false;
    };
    // `new_checked` checks lengths only (found by the netfront_rx fuzz
    // target: a version-2 header was filled and accepted).
    if ip.version() != 4 || ip.more_frags() || ip.frag_offset() != 0 {
        return false;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let proto = ip.next_header();
    // `payload_mut` ends at the IP total length (checked above).
    let l4 = ip.payload_mut();
    match proto {
        IpProtocol::Tcp => match TcpPacket::new_checked(l4) {
            Ok(mut t) => {
                t.fill_checksum(&src, &dst);
                true
            }
            Err(_) => false,
        },
        IpProtocol::Udp => match UdpPacket::new_checked(l4) {
            Ok(mut u) => {
                u.fill_checksum(&src, &dst);
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod test {
    use super::super::netif::NETRXF_DATA_VALIDATED;
    use super::*;
    use alloc::vec;

    fn rsp(offset: u16, size: i16, flags: u16) -> RxResponse {
        RxResponse {
            id: 0,
            offset,
            flags,
            status: size,
        }
    }

    /// Feeds `rsp` with a page whose byte i is `(i + seed) as u8`.
    fn feed(a: &mut RxAssembler, r: RxResponse, seed: u8) -> RxStep {
        a.push(&r, |frag, dst| {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = (frag.offset + i) as u8 ^ seed;
            }
        })
    }

    fn page_bytes(offset: usize, len: usize, seed: u8) -> Vec<u8> {
        (offset..offset + len).map(|i| i as u8 ^ seed).collect()
    }

    /// Transition 1.
    #[test]
    fn single_fragment_frame() {
        let mut a = RxAssembler::new(false);
        assert_eq!(
            feed(&mut a, rsp(10, 60, NETRXF_DATA_VALIDATED), 1),
            RxStep::Frame
        );
        assert_eq!(a.frame(), page_bytes(10, 60, 1));
        assert!(!a.in_chain());
        let f = a.take_frame(Vec::new());
        assert_eq!(f.len(), 60);
        assert!(a.frame().is_empty());
    }

    /// Transitions 2, 3, 4.
    #[test]
    fn chain_is_concatenated() {
        let mut a = RxAssembler::new(true);
        assert_eq!(
            feed(&mut a, rsp(0, 700, NETRXF_MORE_DATA), 1),
            RxStep::Partial
        );
        assert!(a.in_chain());
        assert_eq!(
            feed(&mut a, rsp(100, 500, NETRXF_MORE_DATA), 2),
            RxStep::Partial
        );
        assert_eq!(feed(&mut a, rsp(4000, 96, 0), 3), RxStep::Frame);
        assert_eq!(a.frame_slots(), 3);
        assert!(!a.csum_filled());
        let mut want = page_bytes(0, 700, 1);
        want.extend(page_bytes(100, 500, 2));
        want.extend(page_bytes(4000, 96, 3));
        assert_eq!(a.frame(), want);
    }

    #[test]
    fn malformed_single_responses() {
        let cases = [
            (rsp(0, -3, 0), RxDrop::Malformed(RxMalformed::BadStatus(-3))),
            (
                rsp(0, i16::MIN, 0),
                RxDrop::Malformed(RxMalformed::BadStatus(i16::MIN)),
            ),
            (
                rsp(4000, 97, 0),
                RxDrop::Malformed(RxMalformed::OutOfPage {
                    offset: 4000,
                    size: 97,
                }),
            ),
            (
                rsp(u16::MAX, 1, 0),
                RxDrop::Malformed(RxMalformed::OutOfPage {
                    offset: u16::MAX,
                    size: 1,
                }),
            ),
            (rsp(0, 2000, 0), RxDrop::Malformed(RxMalformed::Oversized)),
            (
                rsp(0, 60, 1 << 5),
                RxDrop::Malformed(RxMalformed::UnknownFlags(1 << 5)),
            ),
            (
                rsp(0, 60, NETRXF_EXTRA_INFO),
                RxDrop::Malformed(RxMalformed::NotNegotiated(NETRXF_EXTRA_INFO)),
            ),
            (
                rsp(0, 60, NETRXF_GSO_PREFIX),
                RxDrop::Malformed(RxMalformed::NotNegotiated(NETRXF_GSO_PREFIX)),
            ),
            (rsp(0, 13, 0), RxDrop::Malformed(RxMalformed::Runt(13))),
            (rsp(0, 0, 0), RxDrop::Malformed(RxMalformed::Runt(0))),
            (rsp(0, NETIF_RSP_ERROR, 0), RxDrop::Backend(NETIF_RSP_ERROR)),
            (
                rsp(0, NETIF_RSP_DROPPED, 0),
                RxDrop::Backend(NETIF_RSP_DROPPED),
            ),
        ];
        for (r, want) in cases {
            let mut a = RxAssembler::new(false);
            let mut copied = false;
            let step = a.push(&r, |_, _| copied = true);
            assert_eq!(step, RxStep::Dropped(want), "{r:?}");
            // Checks come before the copy, except for what only the whole
            // frame shows (a runt).
            assert_eq!(
                copied,
                matches!(want, RxDrop::Malformed(RxMalformed::Runt(_)))
            );
            assert!(!a.in_chain());
        }
    }

    #[test]
    fn more_data_without_sg_is_not_negotiated() {
        let mut a = RxAssembler::new(false);
        let step = feed(&mut a, rsp(0, 100, NETRXF_MORE_DATA), 0);
        assert_eq!(
            step,
            RxStep::Dropped(RxDrop::Malformed(RxMalformed::NotNegotiated(
                NETRXF_MORE_DATA
            )))
        );
        // Transition 5 then 7: the tail is discarded, not counted again.
        assert!(a.in_chain());
        assert_eq!(feed(&mut a, rsp(0, 100, 0), 0), RxStep::Partial);
        assert!(!a.in_chain());
        assert_eq!(feed(&mut a, rsp(0, 100, 0), 5), RxStep::Frame);
        assert_eq!(a.frame(), page_bytes(0, 100, 5));
    }

    /// Transitions 5, 6, 7.
    #[test]
    fn bad_fragment_mid_chain_drops_whole_chain_once() {
        let mut a = RxAssembler::new(true);
        assert_eq!(
            feed(&mut a, rsp(0, 1000, NETRXF_MORE_DATA), 1),
            RxStep::Partial
        );
        assert_eq!(
            feed(&mut a, rsp(0, 1000, NETRXF_MORE_DATA), 2),
            RxStep::Dropped(RxDrop::Malformed(RxMalformed::Oversized))
        );
        assert_eq!(
            feed(&mut a, rsp(0, 10, NETRXF_MORE_DATA), 3),
            RxStep::Partial
        );
        assert_eq!(feed(&mut a, rsp(0, 10, 0), 3), RxStep::Partial);
        assert!(!a.in_chain());
        // The next frame starts clean.
        assert_eq!(feed(&mut a, rsp(0, 64, 0), 9), RxStep::Frame);
        assert_eq!(a.frame(), page_bytes(0, 64, 9));
    }

    #[test]
    fn dropped_fragment_drops_its_chain_once() {
        let mut a = RxAssembler::new(true);
        assert_eq!(
            feed(&mut a, rsp(0, 100, NETRXF_MORE_DATA), 0),
            RxStep::Partial
        );
        let r = rsp(0, 100, NETRXF_MORE_DATA);
        assert_eq!(
            a.drop_fragment(&r, RxMalformed::StillMapped),
            RxStep::Dropped(RxDrop::Malformed(RxMalformed::StillMapped))
        );
        assert_eq!(
            a.drop_fragment(&rsp(0, 1, 0), RxMalformed::StillMapped),
            RxStep::Partial
        );
        assert!(!a.in_chain());
        assert_eq!(feed(&mut a, rsp(0, 20, 0), 4), RxStep::Frame);
    }

    #[test]
    fn chain_of_too_many_slots() {
        let mut a = RxAssembler::new(true);
        for _ in 0..RX_CHAIN_SLOTS_MAX {
            assert_eq!(
                feed(&mut a, rsp(0, 1, NETRXF_MORE_DATA), 0),
                RxStep::Partial
            );
        }
        assert_eq!(
            feed(&mut a, rsp(0, 1, 0), 0),
            RxStep::Dropped(RxDrop::Malformed(RxMalformed::TooManySlots))
        );
        assert!(!a.in_chain());
    }

    #[test]
    fn backend_error_mid_chain() {
        let mut a = RxAssembler::new(true);
        assert_eq!(
            feed(&mut a, rsp(0, 100, NETRXF_MORE_DATA), 0),
            RxStep::Partial
        );
        assert_eq!(
            feed(&mut a, rsp(0, NETIF_RSP_ERROR, 0), 0),
            RxStep::Dropped(RxDrop::Backend(NETIF_RSP_ERROR))
        );
        assert!(!a.in_chain());
    }

    /// A UDP/IPv4 frame with a correct checksum, built with smoltcp.
    fn udp_frame() -> Vec<u8> {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, UdpRepr};
        let payload = b"hello, checksum";
        let src = Ipv4Address::new(10, 0, 0, 1);
        let dst = Ipv4Address::new(10, 0, 0, 2);
        let udp = UdpRepr {
            src_port: 1234,
            dst_port: 5678,
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: udp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; 14 + 20 + 8 + payload.len()];
        let caps = ChecksumCapabilities::default();
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p, &caps);
        let mut u = UdpPacket::new_unchecked(p.payload_mut());
        udp.emit(
            &mut u,
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            payload.len(),
            |b| b.copy_from_slice(payload),
            &caps,
        );
        buf
    }

    #[test]
    fn csum_blank_is_filled() {
        let good = udp_frame();
        let mut blank = good.clone();
        // The UDP checksum field: 14 + 20 + 6.
        blank[40] = 0x12;
        blank[41] = 0x34;
        assert_ne!(blank, good);
        let mut a = RxAssembler::new(false);
        let step = a.push(&rsp(0, blank.len() as i16, NETRXF_CSUM_BLANK), |_, dst| {
            dst.copy_from_slice(&blank)
        });
        assert_eq!(step, RxStep::Frame);
        assert!(a.csum_filled());
        assert_eq!(a.frame(), good);
        // Not IP: cannot be filled.
        let mut arp = good.clone();
        arp[12] = 0x08;
        arp[13] = 0x06;
        let step = a.push(&rsp(0, arp.len() as i16, NETRXF_CSUM_BLANK), |_, dst| {
            dst.copy_from_slice(&arp)
        });
        assert_eq!(
            step,
            RxStep::Dropped(RxDrop::Malformed(RxMalformed::CsumBlank))
        );
        // Truncated IP header.
        let short = &good[..30];
        let step = a.push(&rsp(0, short.len() as i16, NETRXF_CSUM_BLANK), |_, dst| {
            dst.copy_from_slice(short)
        });
        assert_eq!(
            step,
            RxStep::Dropped(RxDrop::Malformed(RxMalformed::CsumBlank))
        );
    }

    /// Regression (netfront_rx fuzz target): only an unfragmented IPv4
    /// header gets a checksum filled; anything else is left alone.
    #[test]
    fn fill_checksum_refuses_other_versions_and_fragments() {
        let good = udp_frame();
        let mut blank = good.clone();
        blank[40] = 0x12;
        blank[41] = 0x34;
        let mut f = blank.clone();
        assert!(fill_checksum(&mut f));
        assert_eq!(f, good);
        let cases: [(usize, u8); 4] = [
            (14, 0x25),     // version 2, IHL 5
            (14, 0x65),     // version 6, IHL 5
            (14 + 6, 0x20), // more fragments
            (14 + 7, 0x01), // fragment offset 1
        ];
        for (at, byte) in cases {
            let mut f = blank.clone();
            f[at] = byte;
            let before = f.clone();
            assert!(!fill_checksum(&mut f), "byte {at} = {byte:#x}");
            assert_eq!(f, before, "byte {at} = {byte:#x}: frame changed");
            let mut a = RxAssembler::new(false);
            let step = a.push(&rsp(0, f.len() as i16, NETRXF_CSUM_BLANK), |_, dst| {
                dst.copy_from_slice(&f)
            });
            assert_eq!(
                step,
                RxStep::Dropped(RxDrop::Malformed(RxMalformed::CsumBlank))
            );
        }
    }

    #[test]
    fn fill_checksum_never_panics_on_garbage() {
        let mut x: u32 = 7;
        for len in 0..200usize {
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            if len > 14 {
                buf[12] = 0x08;
                buf[13] = 0;
            }
            let _ = fill_checksum(&mut buf);
        }
    }
}
