//! net's netfront receive path on arbitrary backend responses: netif slot
//! decoding (`netif::{RxResponse, TxResponse, RxRequest, TxRequest,
//! ExtraInfo}` and the rings' `read_response`), then `rx::RxAssembler`
//! judging each response and assembling chains, and `rx::fill_checksum` on
//! arbitrary frames.
//!
//! Input: `[sg, page_len, page..., (ctrl, slot[8])*]`: whether `feature-sg`
//! was negotiated, the bytes the backend left in the granted rx page
//! (repeated to fill 4096 bytes), then responses, each with a control byte:
//! bit 0 drops the fragment as the device does for a still-mapped grant
//! (`drop_fragment`), bit 1 resets the assembler first (a disconnect), the
//! rest rotates the page so fragments see different bytes.
//!
//! A model of the assembler (module doc of rx.rs: states Idle, Building,
//! Discarding and transitions 1..7) runs beside it. Checked for every
//! response:
//! - nothing panics; decoding is total and `encode(decode(slot))` gives the
//!   slot back; the rings decode the same as the structs;
//! - a fragment is copied only after it passed the checks: `offset + len`
//!   within the page, exactly `len` bytes, at most once per response;
//! - the step is the model's: a frame, a partial chain, or a drop counted
//!   once per chain; a malformed drop names a rule the response breaks;
//! - a frame is the concatenation of its fragments' bytes (checksum field
//!   aside when the backend left it blank), 14..=1514 bytes, at most 18
//!   slots; a filled checksum verifies (computed here, not by smoltcp,
//!   whose checks always pass under `cfg(fuzzing)`);
//! - `fill_checksum` on any frame either declines or leaves a checksum that
//!   verifies, changing no other byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlet_net::netfront::netif::{
    ExtraInfo, NetifRx, NetifTx, RxRequest, RxResponse, TxRequest, TxResponse, NETIF_RSP_DROPPED,
    NETIF_RSP_ERROR, NETRXF_CSUM_BLANK, NETRXF_EXTRA_INFO, NETRXF_GSO_PREFIX, NETRXF_KNOWN,
    NETRXF_MORE_DATA, RX_SLOT_SIZE, TX_SLOT_SIZE,
};
use ringlet_net::netfront::rx::{
    fill_checksum, Fragment, RxAssembler, RxDrop, RxMalformed, RxStep, FRAME_LEN_MAX,
    FRAME_LEN_MIN, RX_CHAIN_SLOTS_MAX,
};
use ringlet_xen::hypervisor::PAGE_SIZE;
use ringlet_xen::ring::RingProtocol;

/// Responses per input.
const RESPONSES_MAX: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// The frame so far, its slots, whether a fragment had csum_blank.
    Building(Vec<u8>, usize, bool),
    Discarding,
}

/// Slot decoding: total, and the same bytes when encoded again.
fn check_decoding(slot: &[u8; RX_SLOT_SIZE]) {
    let r = RxResponse::decode(slot);
    let mut out = [0u8; RX_SLOT_SIZE];
    r.encode(&mut out);
    assert_eq!(&out, slot);
    assert_eq!(NetifRx::read_response(slot), r);
    assert_eq!(NetifRx::response_id(&r), u64::from(r.id));

    let t = TxResponse::decode(slot);
    let mut out = [0u8; 4];
    t.encode(&mut out);
    assert_eq!(out, slot[..4]);
    let mut tx_slot = [0u8; TX_SLOT_SIZE];
    tx_slot[..RX_SLOT_SIZE].copy_from_slice(slot);
    assert_eq!(NetifTx::read_response(&tx_slot), t);
    assert_eq!(NetifTx::response_id(&t), u64::from(t.id));

    let x = ExtraInfo::decode(slot);
    let mut out = [0u8; 8];
    x.encode(&mut out);
    assert_eq!(&out, slot);

    let q = RxRequest::decode(slot);
    let mut out = [0u8; RX_SLOT_SIZE];
    q.encode(&mut out);
    assert_eq!(&out, slot);

    let tq = TxRequest::decode(&tx_slot);
    let mut out = [0u8; TX_SLOT_SIZE];
    tq.encode(&mut out);
    assert_eq!(out, tx_slot);
}

/// The rules `rsp` breaks on top of a chain of `len` bytes in `slots`
/// slots (empty: a good fragment).
fn broken_rules(rsp: &RxResponse, sg: bool, len: usize, slots: usize) -> Vec<RxDrop> {
    let mut why = Vec::new();
    let flags = rsp.flags;
    if flags & !NETRXF_KNOWN != 0 {
        why.push(RxDrop::Malformed(RxMalformed::UnknownFlags(flags)));
    }
    let not_negotiated = flags & (NETRXF_EXTRA_INFO | NETRXF_GSO_PREFIX)
        | if sg { 0 } else { flags & NETRXF_MORE_DATA };
    if not_negotiated != 0 {
        why.push(RxDrop::Malformed(RxMalformed::NotNegotiated(not_negotiated)));
    }
    if rsp.status == NETIF_RSP_ERROR || rsp.status == NETIF_RSP_DROPPED {
        why.push(RxDrop::Backend(rsp.status));
    } else if rsp.status < 0 {
        why.push(RxDrop::Malformed(RxMalformed::BadStatus(rsp.status)));
    } else {
        let size = rsp.status as usize;
        if usize::from(rsp.offset) + size > PAGE_SIZE {
            why.push(RxDrop::Malformed(RxMalformed::OutOfPage {
                offset: rsp.offset,
                size: rsp.status as u16,
            }));
        }
        if len + size > FRAME_LEN_MAX {
            why.push(RxDrop::Malformed(RxMalformed::Oversized));
        }
    }
    if slots + 1 > RX_CHAIN_SLOTS_MAX {
        why.push(RxDrop::Malformed(RxMalformed::TooManySlots));
    }
    why
}

/// RFC 1071 sum of `data` (odd length padded with a zero byte).
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Where the L4 checksum of an unfragmented IPv4 TCP/UDP Ethernet frame
/// sits, and whether it verifies (our own computation); `None` for any
/// other frame, whose checksum cannot be filled.
fn l4_checksum(frame: &[u8]) -> Option<(usize, bool)> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    // Version 4, whole header, not a fragment (flags MF, offset 0).
    let fragment = ip[6] & 0x20 != 0 || u16::from_be_bytes([ip[6] & 0x1f, ip[7]]) != 0;
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() || fragment {
        return None;
    }
    let l4 = &ip[ihl..total];
    let (field, covered) = match ip[9] {
        6 if l4.len() >= 20 => (16, l4),
        17 if l4.len() >= 8 => {
            let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if ulen < 8 || ulen > l4.len() {
                return None;
            }
            (6, &l4[..ulen])
        }
        _ => return None,
    };
    let mut acc = sum16(0, &ip[12..20]);
    acc += u32::from(ip[9]) + covered.len() as u32;
    acc = sum16(acc, covered);
    Some((14 + ihl + field, fold(acc) == 0xffff))
}

/// `fill_checksum` on `frame`: declines, or fills a checksum that
/// verifies and touches nothing else.
fn check_fill(frame: &[u8]) -> bool {
    let mut f = frame.to_vec();
    let filled = fill_checksum(&mut f);
    if !filled {
        assert_eq!(f, frame, "declined but changed the frame");
        return false;
    }
    let (at, ok) = l4_checksum(&f).expect("filled a frame that is not IPv4 TCP/UDP");
    assert!(ok, "filled checksum does not verify");
    assert_eq!(f[..at], frame[..at]);
    assert_eq!(f[at + 2..], frame[at + 2..]);
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&[sg, page_len], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let sg = sg & 1 != 0;
    let page_len = usize::from(page_len).min(rest.len()) * 8;
    let page_len = page_len.min(rest.len());
    let (page_src, rsps) = rest.split_at(page_len);
    let page: Vec<u8> = if page_src.is_empty() {
        (0..PAGE_SIZE).map(|i| (i * 7) as u8).collect()
    } else {
        page_src.iter().copied().cycle().take(PAGE_SIZE).collect()
    };
    // Any prefix of the page as a frame.
    check_fill(&page[..usize::from(page[0]) * 6]);

    let mut a = RxAssembler::new(sg);
    let mut state = State::Idle;
    for chunk in rsps.chunks_exact(1 + RX_SLOT_SIZE).take(RESPONSES_MAX) {
        let ctrl = chunk[0];
        let slot: &[u8; RX_SLOT_SIZE] = chunk[1..].try_into().unwrap();
        check_decoding(slot);
        let rsp = RxResponse::decode(slot);
        let more = rsp.flags & NETRXF_MORE_DATA != 0;
        if ctrl & 2 != 0 {
            a.reset();
            state = State::Idle;
            assert!(!a.in_chain());
        }
        let rot = usize::from(ctrl >> 2) * 61;

        if ctrl & 1 != 0 {
            let step = a.drop_fragment(&rsp, RxMalformed::StillMapped);
            let want = if state == State::Discarding {
                RxStep::Partial
            } else {
                RxStep::Dropped(RxDrop::Malformed(RxMalformed::StillMapped))
            };
            assert_eq!(step, want);
            state = if more { State::Discarding } else { State::Idle };
            assert_eq!(a.in_chain(), state != State::Idle);
            continue;
        }

        let mut copied: Option<Fragment> = None;
        let step = a.push(&rsp, |frag, dst| {
            assert!(copied.is_none(), "copied twice");
            assert!(frag.offset + frag.len <= PAGE_SIZE, "copy {frag:?} leaves the page");
            assert_eq!(dst.len(), frag.len);
            for (i, d) in dst.iter_mut().enumerate() {
                *d = page[(frag.offset + i + rot) % PAGE_SIZE];
            }
            copied = Some(frag);
        });

        let (frame, slots, blank) = match std::mem::replace(&mut state, State::Idle) {
            State::Discarding => {
                assert_eq!(step, RxStep::Partial, "tail of a dropped chain");
                assert!(copied.is_none());
                state = if more { State::Discarding } else { State::Idle };
                assert_eq!(a.in_chain(), more);
                continue;
            }
            State::Idle => (Vec::new(), 0, false),
            State::Building(f, s, b) => (f, s, b),
        };
        let why = broken_rules(&rsp, sg, frame.len(), slots);
        if !why.is_empty() {
            match step {
                RxStep::Dropped(d) => assert!(why.contains(&d), "dropped for {d:?}, broken: {why:?}"),
                other => panic!("{rsp:?} breaks {why:?} but gave {other:?}"),
            }
            assert!(copied.is_none(), "copied a bad fragment");
            state = if more { State::Discarding } else { State::Idle };
            assert_eq!(a.in_chain(), more);
            continue;
        }
        let frag = copied.expect("a good fragment is copied");
        assert_eq!((frag.offset, frag.len), (usize::from(rsp.offset), rsp.status as usize));
        let mut frame = frame;
        frame.extend((0..frag.len).map(|i| page[(frag.offset + i + rot) % PAGE_SIZE]));
        let blank = blank || rsp.flags & NETRXF_CSUM_BLANK != 0;
        if more {
            assert_eq!(step, RxStep::Partial);
            assert!(a.in_chain());
            state = State::Building(frame, slots + 1, blank);
            continue;
        }
        assert!(!a.in_chain());
        if frame.len() < FRAME_LEN_MIN {
            assert_eq!(step, RxStep::Dropped(RxDrop::Malformed(RxMalformed::Runt(frame.len()))));
            continue;
        }
        let can_fill = blank && check_fill(&frame);
        match step {
            RxStep::Frame => {
                assert!(frame.len() <= FRAME_LEN_MAX);
                assert_eq!(a.frame_slots(), slots + 1);
                assert!(a.frame_slots() <= RX_CHAIN_SLOTS_MAX);
                assert_eq!(a.csum_filled(), blank);
                if blank {
                    assert!(can_fill);
                    let mut filled = frame.clone();
                    assert!(fill_checksum(&mut filled));
                    assert_eq!(a.frame(), filled.as_slice());
                } else {
                    assert_eq!(a.frame(), frame.as_slice(), "frame differs from its fragments");
                }
            }
            RxStep::Dropped(RxDrop::Malformed(RxMalformed::CsumBlank)) => {
                assert!(blank && !can_fill, "csum blank refused on a fillable frame");
            }
            other => panic!("complete good chain gave {other:?}"),
        }
    }
});
