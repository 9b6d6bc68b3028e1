//! The xenstore client's decoding of what the daemon sends: arbitrary bytes
//! as the daemon's side of the `rsp` ring, reassembled by the ring's
//! `MessageReader`, then each message through `wire::decode_header`,
//! `wire::decode` (error names, watch events) and every reply parser
//! (`parse_ok`, `parse_directory`, `parse_permissions`,
//! `parse_transaction_id`, `parse_string`, `parse_decimal`).
//!
//! Input: `[ring_log2, start_index u32 LE, op_count, (op, arg)*, stream]`:
//! each op writes up to `4 * arg + 1` more bytes of the stream into the
//! ring, polls the reader, or scribbles the producer index (and puts it
//! back); whatever the ops leave of the stream is written before a last
//! poll.
//!
//! Checked for every input:
//! - nothing panics; every error has a message;
//! - the reader hands out messages in stream order, each exactly the bytes
//!   the daemon wrote (a byte-queue model), header length equal to payload
//!   length, at most `XENSTORE_PAYLOAD_MAX`; it never reads past what was
//!   published; after an error it is never asked again (the client treats
//!   the connection as broken);
//! - a producer index more than the ring's size ahead (or behind) is an
//!   error, never a read;
//! - each decoder accepts exactly the shape it documents: an error reply is
//!   one known errno name and its NUL; a watch event is two non-empty UTF-8
//!   strings; `OK\0`; a directory is NUL-terminated non-empty names without
//!   `/` (joined again, the payload); a permission list has 1..=64 entries
//!   and survives emit/parse; a transaction id is a non-zero decimal.
#![no_main]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use libfuzzer_sys::fuzz_target;
use ringlet_xen::abi::xs_wire::{XsdSockmsg, XsdSockmsgType, XENSTORE_PAYLOAD_MAX};
use ringlet_xen::xenstore::ring::{ByteRing, Consumer, MessageReader, Producer};
use ringlet_xen::xenstore::wire::{
    decode, decode_header, parse_decimal, parse_directory, parse_ok, parse_permissions,
    parse_string, parse_transaction_id, Message, Permission, ProtocolError, PERMISSIONS_MAX,
};
use ringlet_xen::xenstore::XenstoreError;

/// Ring sizes tried: 16 bytes (messages much larger than the ring) to the
/// real 1 KiB.
const RING_LOG2_MIN: u8 = 4;
const RING_LOG2_MAX: u8 = 10;
/// Operations per input.
const OPS_MAX: usize = 64;

/// Checks every decoder on one message the reader returned.
fn check_message(raw: XsdSockmsg, payload: &[u8]) {
    assert_eq!(raw.len as usize, payload.len());
    assert!(payload.len() <= XENSTORE_PAYLOAD_MAX);
    let header = match decode_header(raw) {
        Ok(h) => h,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(matches!(
                e,
                ProtocolError::UnknownType(_) | ProtocolError::UnexpectedType(_)
            ));
            check_parsers(payload);
            return;
        }
    };
    assert_eq!(header.len, payload.len());
    assert_eq!(header.req_id, raw.req_id);
    assert_eq!(header.kind as u32, raw.type_);
    match decode(header, payload) {
        Ok(Message::Error { header: h, error }) => {
            assert_eq!(h, header);
            assert_eq!(header.kind, XsdSockmsgType::Error);
            let mut want = error.name().as_bytes().to_vec();
            want.push(0);
            assert_eq!(payload, want.as_slice());
            assert_eq!(XenstoreError::from_name(error.name().as_bytes()), Some(error));
            assert!(!error.to_string().is_empty());
        }
        Ok(Message::WatchEvent { path, token }) => {
            assert_eq!(header.kind, XsdSockmsgType::WatchEvent);
            assert!(!path.is_empty() && !token.is_empty());
            assert!(!path.contains('\0') && !token.contains('\0'));
            assert_eq!(payload, format!("{path}\0{token}\0").as_bytes());
        }
        Ok(Message::Reply { header: h, payload: p }) => {
            assert_eq!(h, header);
            assert!(!matches!(
                header.kind,
                XsdSockmsgType::Error | XsdSockmsgType::WatchEvent
            ));
            assert_eq!(p, payload);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(matches!(
                header.kind,
                XsdSockmsgType::Error | XsdSockmsgType::WatchEvent
            ));
        }
    }
    check_parsers(payload);
}

/// Every reply parser on `payload`, against the shape it documents.
fn check_parsers(payload: &[u8]) {
    let ends_nul = payload.last() == Some(&0);
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);

    assert_eq!(parse_ok(payload).is_ok(), payload == b"OK\0");

    match parse_directory(payload) {
        Ok(names) => {
            let mut joined = Vec::new();
            for n in &names {
                assert!(!n.is_empty() && !n.contains('/') && !n.contains('\0'));
                joined.extend_from_slice(n.as_bytes());
                joined.push(0);
            }
            assert_eq!(joined, payload);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    match parse_permissions(payload) {
        Ok(perms) => {
            assert!((1..=PERMISSIONS_MAX).contains(&perms.len()));
            assert!(ends_nul);
            assert_eq!(perms.len(), body.split(|&b| b == 0).count());
            let mut out = Vec::new();
            for p in &perms {
                p.emit(&mut out);
                out.push(0);
            }
            assert_eq!(parse_permissions(&out).as_ref(), Ok(&perms));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    match parse_transaction_id(payload) {
        Ok(id) => {
            assert_ne!(id, 0);
            assert!(ends_nul);
            assert_eq!(parse_decimal(body), Some(id));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    match parse_string(payload) {
        Ok(s) => {
            assert!(ends_nul && !s.contains('\0'));
            assert_eq!(s.as_bytes(), body);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    if let Some(v) = parse_decimal(payload) {
        assert!(!payload.is_empty() && payload.iter().all(u8::is_ascii_digit));
        assert_eq!(v.to_string().parse::<u32>(), Ok(v));
    }
    if let Ok(p) = Permission::parse(payload) {
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(Permission::parse(&out), Ok(p));
    }
}

/// The shared page of one byte ring: data and the two indices.
struct Shared {
    data: Vec<AtomicU8>,
    cons: AtomicU32,
    prod: AtomicU32,
}

fuzz_target!(|data: &[u8]| {
    let Some((&[log2, a, b, c, d, nops], rest)) = data.split_first_chunk::<6>() else {
        return;
    };
    let size = 1usize << (RING_LOG2_MIN + log2 % (RING_LOG2_MAX - RING_LOG2_MIN + 1));
    let start = u32::from_le_bytes([a, b, c, d]);
    // The ops, then the stream the daemon sends.
    let nops = (usize::from(nops) % OPS_MAX).min(rest.len() / 2);
    let (ops, stream) = rest.split_at(nops * 2);

    let shared = Shared {
        data: (0..size).map(|_| AtomicU8::new(0)).collect(),
        cons: AtomicU32::new(start),
        prod: AtomicU32::new(start),
    };
    let ring = ByteRing::new(&shared.data[..], &shared.cons, &shared.prod);
    let mut daemon = Producer::attach(&ring).expect("fresh ring");
    let mut client = Consumer::attach(&ring).expect("fresh ring");
    let mut reader = MessageReader::new();
    // Bytes the daemon published that the reader has not handed out yet.
    let mut model: VecDeque<u8> = VecDeque::new();
    let mut sent = 0usize;
    let mut broken = false;
    // While the daemon's published producer index is scribbled: the good
    // one, put back by the next scribble op (the daemon writes nothing
    // meanwhile).
    let mut scribbled = false;
    let mut saved_prod: Option<u32> = None;

    let mut poll = |model: &mut VecDeque<u8>, scribbled: bool, broken: &mut bool| {
        if *broken {
            return;
        }
        let published_before = shared.prod.load(Ordering::Relaxed);
        let cons_before = shared.cons.load(Ordering::Relaxed);
        loop {
            let mut consumed = false;
            match reader.poll_message(&mut client, &ring, &mut consumed) {
                Ok(Some((raw, payload))) => {
                    assert!(!scribbled, "a message read through a bad index");
                    let mut want = Vec::with_capacity(16 + payload.len());
                    want.extend_from_slice(&raw.to_bytes());
                    want.extend_from_slice(payload);
                    // The reader kept what it read before; the model drops
                    // bytes as messages complete.
                    assert!(model.len() >= want.len(), "message beyond the stream");
                    let got: Vec<u8> = model.drain(..want.len()).collect();
                    assert_eq!(got, want, "message differs from the stream");
                    check_message(raw, payload);
                }
                Ok(None) => {
                    // Everything published was taken (or the partial
                    // message waits for more).
                    if !scribbled {
                        assert_eq!(shared.cons.load(Ordering::Relaxed), published_before);
                    }
                    break;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    match e {
                        ProtocolError::RingIndex { prod, cons } => {
                            assert!(scribbled, "index error on a sane ring");
                            assert!(prod.wrapping_sub(cons) as usize > size);
                        }
                        ProtocolError::PayloadTooLong(len) => {
                            assert!(len as usize > XENSTORE_PAYLOAD_MAX)
                        }
                        other => panic!("unexpected reader error {other:?}"),
                    }
                    *broken = true;
                    break;
                }
            }
        }
        // Nothing is consumed beyond what was published.
        let taken = shared.cons.load(Ordering::Relaxed).wrapping_sub(cons_before) as usize;
        if !scribbled {
            assert!(taken <= published_before.wrapping_sub(cons_before) as usize);
        }
    };

    for op in ops.chunks_exact(2) {
        let arg = usize::from(op[1]);
        match op[0] % 4 {
            // The daemon writes up to `arg * 4` more bytes of the stream.
            0 | 1 => {
                if scribbled {
                    continue;
                }
                let want = (arg * 4 + 1).min(stream.len() - sent);
                let n = daemon.write(&ring, &stream[sent..sent + want]).expect("sane cons");
                model.extend(&stream[sent..sent + n]);
                sent += n;
            }
            2 => poll(&mut model, scribbled, &mut broken),
            // The daemon scribbles its producer index, or puts it back.
            _ => match saved_prod.take() {
                Some(good) => {
                    shared.prod.store(good, Ordering::Relaxed);
                    scribbled = false;
                }
                None => {
                    let now = shared.prod.load(Ordering::Relaxed);
                    let jump = (size as u32 + 1).wrapping_add(u32::from(op[1]) << (op[1] % 24));
                    let bad = if op[1] & 1 == 0 {
                        now.wrapping_add(jump)
                    } else {
                        now.wrapping_sub(jump)
                    };
                    // Only an index that breaks `prod - cons <= size` counts.
                    let cons = shared.cons.load(Ordering::Relaxed);
                    if bad.wrapping_sub(cons) as usize > size {
                        shared.prod.store(bad, Ordering::Relaxed);
                        saved_prod = Some(now);
                        scribbled = true;
                    }
                }
            },
        }
    }
    // The rest of the stream, as the ring's space allows.
    if let Some(good) = saved_prod.take() {
        shared.prod.store(good, Ordering::Relaxed);
    }
    while !broken {
        let n = daemon.write(&ring, &stream[sent..]).expect("sane cons");
        model.extend(&stream[sent..sent + n]);
        sent += n;
        poll(&mut model, false, &mut broken);
        if sent == stream.len() {
            break;
        }
    }
});
