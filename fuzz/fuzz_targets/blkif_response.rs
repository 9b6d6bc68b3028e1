//! storage's blkfront against a hostile block backend: a real `Blkfront`
//! (its `FrontRing`, generation ids, response checks, page pool) on a sim
//! guest, with reads, writes and flushes in flight, and the fuzzer as the
//! backend in dom0: it maps the ring, takes the requests, and answers with
//! honest responses or hostile ones (stale generation, wrong operation,
//! unknown status, raw bytes, duplicates), publishing `rsp_prod` right or
//! wrong. Also `BackendConfig::parse` on arbitrary xenstore node values.
//!
//! Input: `[config, nodes_len, nodes..., (op, a, b)*]`: `config` picks one
//! of three device shapes (512-byte sectors, direct requests, flush-cache;
//! 4096-byte sectors, 32 indirect segments, barrier; read-only, no flush,
//! 16 indirect segments); `nodes` are NUL-separated values for the six
//! backend nodes; then the actions.
//!
//! The backend keeps a model: every request taken, and whether it was
//! answered. An honest OKAY to a read first copies a known pattern into
//! the request's granted pages; an honest OKAY to a write first checks the
//! granted pages hold exactly what the caller wrote. Checked:
//! - nothing panics (blkfront's `unreachable!`s included);
//! - every request is well-formed: operation for the call, 1..=11 direct
//!   or up to `segments_max` indirect segments, whole 512-byte sectors
//!   inside each page, the range inside the device, grants the backend can
//!   use;
//! - a read that succeeds holds exactly the backend's bytes for its range
//!   (so no request completed on a response meant for another);
//! - a response that is not an honest answer to a request taken (and not
//!   yet answered) fails the device; while the backend is honest nothing
//!   fails with a protocol error;
//! - errors are typed: `Request` only for a range outside the device,
//!   `Io` only after an honest error status, `Protocol` only after a
//!   hostile response, `Disconnected` only after `disconnect`;
//! - when the backend answers everything honestly (or the device failed),
//!   every call completes: nothing hangs;
//! - all pages and grants come back once the device is dropped;
//! - `BackendConfig::parse` accepts only decimal nodes, gives a power-of-two
//!   sector size in 512..=4096 and a size that is the backend's `sectors`
//!   in bytes, and 11 segments or indirect with at most 32.
#![no_main]

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use ringlet_storage::blkfront::config::INDIRECT_SEGMENTS_MAX;
use ringlet_storage::blkfront::response::RING_ID_BITS;
use ringlet_storage::blkfront::{BackendConfig, BackendNodes, Blkfront, BlkifRing, FlushMethod};
use ringlet_storage::blkif::{
    IndirectRequest, Request, Response, Segment, OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ,
    OP_WRITE, OP_WRITE_BARRIER, RSP_EOPNOTSUPP, RSP_ERROR, RSP_OKAY, SEGMENTS_PER_REQUEST_MAX,
    SLOT_SIZE,
};
use ringlet_storage::block::{FlushError, ReadError, WriteError};
use ringlet_storage::BlockDevice;
use ringlet_xen::abi::ring::{SRING_HEADER_SIZE, SRING_REQ_PROD, SRING_RSP_PROD};
use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::{DomId, GrantRef, PAGE_SIZE};
use ringlet_xen::page::SharedMem;
use ringlet_xen::ring::FrontRing;
use ringlet_xen::sim::{DomainConfig, SimConfig, SimDomain, SimXen};

/// Actions per input.
const OPS_MAX: usize = 200;
/// Calls in flight at once.
const CALLS_MAX: usize = 12;
/// Longest call, in bytes.
const CALL_BYTES_MAX: usize = 64 * 1024;
/// Bytes of buffers for all calls of one input.
const ARENA_BYTES: usize = 512 * 1024;
/// Rounds of (answer everything, poll everything) at the end.
const DRAIN_ROUNDS_MAX: usize = 64;
/// Slots of a blkif ring.
const RING_SLOTS: u32 = 32;

struct World {
    _sim: SimXen,
    dom0: SimDomain,
    dom: SimDomain,
    guest: Guest,
    /// What reads find on the disk: `disk_byte` of every offset.
    read_disk: Vec<u8>,
    /// What writes put there: `write_byte` of every offset.
    write_disk: Vec<u8>,
}

/// The largest disk of `configs`.
const DISK_BYTES: usize = 1 << 20;

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// The byte a read finds at 512-byte-sector byte offset `p` of the disk.
fn disk_byte(p: u64) -> u8 {
    ((p >> 9) as u8).wrapping_mul(31) ^ (p as u8) ^ 0x5a
}

/// The byte a write puts at disk byte offset `p`.
fn write_byte(p: u64) -> u8 {
    ((p >> 9) as u8).wrapping_mul(17) ^ (p as u8) ^ 0xa5
}

fn configs(pick: u8) -> BackendConfig {
    let nodes = match pick % 3 {
        0 => BackendNodes {
            sectors: Some("2048"),
            sector_size: Some("512"),
            feature_flush_cache: Some("1"),
            ..BackendNodes::default()
        },
        1 => BackendNodes {
            sectors: Some("2048"),
            sector_size: Some("4096"),
            feature_barrier: Some("1"),
            feature_max_indirect_segments: Some("256"),
            ..BackendNodes::default()
        },
        _ => BackendNodes {
            sectors: Some("1024"),
            info: Some("4"),
            feature_max_indirect_segments: Some("16"),
            ..BackendNodes::default()
        },
    };
    BackendConfig::parse(&nodes).expect("a valid config")
}

/// `BackendConfig::parse` on arbitrary node values.
fn check_config_parse(raw: &[u8]) {
    let mut values = raw.split(|&b| b == 0).map(|v| std::str::from_utf8(v).ok());
    let mut next = || values.next().flatten();
    let nodes = BackendNodes {
        sectors: next(),
        sector_size: next(),
        info: next(),
        feature_flush_cache: next(),
        feature_barrier: next(),
        feature_max_indirect_segments: next(),
    };
    let decimal = |s: Option<&str>| s.is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    match BackendConfig::parse(&nodes) {
        Ok(c) => {
            assert!(nodes.sectors.is_some());
            for v in [
                nodes.sectors,
                nodes.sector_size,
                nodes.info,
                nodes.feature_flush_cache,
                nodes.feature_barrier,
                nodes.feature_max_indirect_segments,
            ] {
                assert!(decimal(v), "accepted non-decimal {v:?}");
            }
            assert!(c.sector_size.is_power_of_two() && (512..=4096).contains(&c.sector_size));
            let sectors_512: u64 = nodes.sectors.unwrap().parse().unwrap();
            assert_eq!(c.sectors.checked_mul(u64::from(c.sector_size)), Some(sectors_512 * 512));
            if c.indirect {
                assert!(c.segments_max > SEGMENTS_PER_REQUEST_MAX as u32);
                assert!(c.segments_max <= INDIRECT_SEGMENTS_MAX);
            } else {
                assert_eq!(c.segments_max, SEGMENTS_PER_REQUEST_MAX as u32);
            }
            assert!(c.block_info().is_valid());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A request the backend took.
#[derive(Debug)]
struct Taken {
    id: u64,
    /// The operation a response must echo (two for an indirect request).
    ops: [u8; 2],
    /// The data direction: `OP_READ`, `OP_WRITE`, or a flush.
    kind: u8,
    /// First 512-byte sector.
    sector: u64,
    /// (gref, first_sect, last_sect) of each segment.
    segs: Vec<(u32, u8, u8)>,
    answered: bool,
}

/// The fuzzer's backend.
struct Back<'a> {
    dom0: &'a SimDomain,
    read_disk: &'a [u8],
    write_disk: &'a [u8],
    guest_id: DomId,
    mem: SharedMem<'a>,
    config: BackendConfig,
    req_cons: u32,
    rsp_prod_pvt: u32,
    taken: Vec<Taken>,
    /// Raw responses sent (for duplicates).
    sent: Vec<Response>,
    /// A response that was not an honest answer went into the ring, or
    /// `rsp_prod` was published wrong.
    hostile: bool,
    /// An honest error status was sent.
    error_sent: bool,
}

impl Back<'_> {
    fn slot_off(i: u32) -> usize {
        SRING_HEADER_SIZE + (i % RING_SLOTS) as usize * SLOT_SIZE
    }

    /// Takes every request the front published, checking each.
    fn take_requests(&mut self) {
        let prod = self.mem.atomic_u32(SRING_REQ_PROD).load(Ordering::Acquire);
        assert!(prod.wrapping_sub(self.req_cons) <= RING_SLOTS, "front overran the ring");
        assert!(
            prod.wrapping_sub(self.rsp_prod_pvt) <= RING_SLOTS,
            "front reused a slot that was not answered"
        );
        while self.req_cons != prod {
            let mut slot = [0u8; SLOT_SIZE];
            self.mem.read(Self::slot_off(self.req_cons), &mut slot);
            self.req_cons = self.req_cons.wrapping_add(1);
            let Some(t) = self.decode_request(&slot) else {
                continue;
            };
            assert!(
                !self.taken.iter().any(|o| o.id == t.id && !o.answered),
                "id {:#x} in flight twice",
                t.id
            );
            self.taken.push(t);
        }
    }

    fn decode_request(&self, slot: &[u8; SLOT_SIZE]) -> Option<Taken> {
        let c = &self.config;
        let r = Request::decode(slot);
        let (ops, kind, sector, segs) = match r.operation {
            OP_INDIRECT => {
                assert!(c.indirect, "indirect request without the feature");
                let ir = IndirectRequest::decode(slot);
                assert!(ir.indirect_op == OP_READ || ir.indirect_op == OP_WRITE);
                let n = usize::from(ir.nr_segments);
                assert!(n > SEGMENTS_PER_REQUEST_MAX && n <= c.segments_max as usize, "{n} indirect segments");
                let mut segs = Vec::new();
                for i in 0..n {
                    let page = ir.indirect_grefs[i / (PAGE_SIZE / 8)];
                    let mut b = [0u8; 8];
                    let r = self.dom0.copy_from_grant(self.guest_id, GrantRef(page), (i % (PAGE_SIZE / 8)) * 8, &mut b);
                    if let Err(e) = r {
                        // Only after a hostile response (see `respond`): the
                        // request is dead, the backend drops it.
                        assert!(self.hostile, "an indirect page the backend cannot read: {e:?}");
                        return None;
                    }
                    let s = Segment::decode(&b);
                    segs.push((s.gref, s.first_sect, s.last_sect));
                }
                ([OP_INDIRECT, ir.indirect_op], ir.indirect_op, ir.sector_number, segs)
            }
            OP_READ | OP_WRITE => {
                let n = usize::from(r.nr_segments);
                assert!((1..=SEGMENTS_PER_REQUEST_MAX).contains(&n), "{n} direct segments");
                let segs = r.seg[..n].iter().map(|s| (s.gref, s.first_sect, s.last_sect)).collect();
                ([r.operation; 2], r.operation, r.sector_number, segs)
            }
            OP_FLUSH_DISKCACHE | OP_WRITE_BARRIER => {
                let want = match c.flush {
                    FlushMethod::FlushDiskcache => OP_FLUSH_DISKCACHE,
                    FlushMethod::Barrier => OP_WRITE_BARRIER,
                    FlushMethod::None => panic!("flush without a flush method"),
                };
                assert_eq!(r.operation, want);
                assert_eq!(r.nr_segments, 0);
                ([r.operation; 2], r.operation, r.sector_number, Vec::new())
            }
            op => panic!("unknown operation {op}"),
        };
        if kind == OP_WRITE {
            assert!(!c.read_only, "write to a read-only disk");
        }
        let mut bytes = 0u64;
        for &(_, first, last) in &segs {
            assert!(first <= last && last < 8, "segment sectors {first}..={last}");
            bytes += u64::from(last - first + 1) * 512;
        }
        let disk = c.sectors * u64::from(c.sector_size);
        assert!(sector * 512 + bytes <= disk, "request past the disk end");
        assert_eq!((sector * 512) % u64::from(c.sector_size), 0, "unaligned sector");
        Some(Taken { id: Request::decode(slot).id, ops, kind, sector, segs, answered: false })
    }

    /// Writes `rsp` into the next slot, first doing what an honest backend
    /// does for it (data, bookkeeping).
    fn respond(&mut self, rsp: Response) {
        let honest = self.taken.iter_mut().find(|t| {
            !t.answered
                && t.id == rsp.id
                && t.ops.contains(&rsp.operation)
                && [RSP_OKAY, RSP_ERROR, RSP_EOPNOTSUPP].contains(&rsp.status)
        });
        match honest {
            Some(t) => {
                t.answered = true;
                if rsp.status != RSP_OKAY {
                    self.error_sent = true;
                } else {
                    let mut p = (t.sector * 512) as usize;
                    for &(gref, first, last) in &t.segs {
                        let off = usize::from(first) * 512;
                        let len = usize::from(last - first + 1) * 512;
                        // A request that got a hostile response has failed
                        // the device, which may have ended its grants (safe:
                        // the backend can no longer reach the pages). Any
                        // other request's grants must still be there.
                        if t.kind == OP_READ {
                            let r = self.dom0.copy_to_grant(self.guest_id, GrantRef(gref), off, &self.read_disk[p..p + len]);
                            assert!(r.is_ok() || self.hostile, "a read page the backend cannot write: {r:?}");
                        } else if t.kind == OP_WRITE {
                            let mut data = vec![0u8; len];
                            match self.dom0.copy_from_grant(self.guest_id, GrantRef(gref), off, &mut data) {
                                Ok(()) => assert!(data == self.write_disk[p..p + len], "written bytes at {p} differ"),
                                Err(e) => assert!(self.hostile, "a write page the backend cannot read: {e:?}"),
                            }
                        }
                        p += len;
                    }
                }
            }
            None => self.hostile = true,
        }
        let mut slot = [0u8; 16];
        slot.copy_from_slice(&rsp.encode());
        self.mem.write(Self::slot_off(self.rsp_prod_pvt), &slot);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        self.sent.push(rsp);
    }

    /// The response to the `which`-th unanswered request, in `mode`.
    fn answer(&mut self, mode: u8, which: u8) {
        // Never more responses than requests taken: the slot would hold a
        // request the front has not seen answered.
        if self.rsp_prod_pvt == self.req_cons {
            return;
        }
        let open: Vec<usize> = (0..self.taken.len()).filter(|&i| !self.taken[i].answered).collect();
        let Some(&i) = open.get(usize::from(which) % open.len().max(1)) else {
            return;
        };
        let t = &self.taken[i];
        let op = t.ops[usize::from(which >> 7)];
        let honest = |status| Response { id: t.id, operation: op, status, ..Response::default() };
        let rsp = match mode % 12 {
            0..=4 => honest(RSP_OKAY),
            5 => honest(RSP_ERROR),
            6 => honest(RSP_EOPNOTSUPP),
            // Same ring id, another generation: stale or forged.
            7 => Response {
                id: t.id ^ (u64::from(which | 1) << RING_ID_BITS),
                ..honest(RSP_OKAY)
            },
            8 => Response { operation: op ^ (which | 1), ..honest(RSP_OKAY) },
            9 => Response { status: -3 - i16::from(which), ..honest(RSP_OKAY) },
            // Raw bytes.
            10 => {
                let mut b = [0u8; 16];
                for (k, x) in b.iter_mut().enumerate() {
                    *x = which.wrapping_mul(k as u8 | 1).wrapping_add(mode);
                }
                Response::decode(&b)
            }
            // A duplicate of an earlier response.
            _ => match self.sent.get(usize::from(which) % self.sent.len().max(1)) {
                Some(&r) => r,
                None => return,
            },
        };
        self.respond(rsp);
    }

    fn publish(&mut self, how: u8) {
        let v = match how % 16 {
            0 => {
                self.hostile = true;
                self.rsp_prod_pvt.wrapping_add(u32::from(how >> 4) + 1)
            }
            1 => {
                self.hostile = true;
                self.rsp_prod_pvt.wrapping_sub(RING_SLOTS + u32::from(how >> 4))
            }
            _ => self.rsp_prod_pvt,
        };
        self.mem.atomic_u32(SRING_RSP_PROD).store(v, Ordering::Release);
    }
}

/// What a call returned, with what is needed to check it.
enum Outcome<'a> {
    Read { sector: u64, res: Result<(), ReadError>, buf: &'a mut [u8] },
    Write { res: Result<(), WriteError> },
    Flush { res: Result<(), FlushError> },
}

type Call<'a> = Pin<Box<dyn Future<Output = Outcome<'a>> + 'a>>;

fn run(w: &World, config: BackendConfig, ops: &[u8]) {
    let ring: BlkifRing = FrontRing::create(&w.guest, DomId::DOM0).expect("a ring");
    let gref = ring.grant_ref();
    let channel = EventChannel::alloc_unbound(&w.guest, DomId::DOM0).expect("a port");
    let dev = Blkfront::from_parts(w.guest.clone(), DomId::DOM0, ring, channel, config);
    let mapping = w.dom0.map_grant(w.dom.id(), gref, false).expect("the ring maps");
    let mut back = Back {
        dom0: &w.dom0,
        read_disk: &w.read_disk,
        write_disk: &w.write_disk,
        guest_id: w.dom.id(),
        mem: mapping.mem(),
        config,
        req_cons: 0,
        rsp_prod_pvt: 0,
        taken: Vec::new(),
        sent: Vec::new(),
        hostile: false,
        error_sent: false,
    };
    let ss = config.sector_size as usize;
    assert!(config.sectors * u64::from(config.sector_size) <= DISK_BYTES as u64);
    let mut arena = vec![0u8; ARENA_BYTES];
    let mut free: &mut [u8] = &mut arena;
    let mut calls: Vec<Option<Call<'_>>> = Vec::new();
    let mut disconnected = false;
    let mut cx = Context::from_waker(Waker::noop());

    let check = |o: Outcome<'_>, hostile: bool, error_sent: bool, disconnected: bool| {
        let fine = |e: &dyn std::fmt::Debug, io: bool, proto: bool, disc: bool, req: bool| {
            let ok = (io && error_sent) || (proto && hostile) || (disc && disconnected) || req;
            assert!(ok, "call failed with {e:?} (hostile {hostile}, error sent {error_sent}, disconnected {disconnected})");
        };
        match o {
            Outcome::Read { sector, res, buf } => match res {
                Ok(()) => {
                    let base = sector as usize * ss;
                    assert!(*buf == w.read_disk[base..base + buf.len()], "read of sector {sector} differs");
                }
                Err(e) => fine(
                    &e,
                    e == ReadError::Io,
                    matches!(e, ReadError::Protocol(_)),
                    e == ReadError::Disconnected,
                    matches!(e, ReadError::Request(_) | ReadError::NoResources),
                ),
            },
            Outcome::Write { res } => {
                if let Err(e) = res {
                    fine(
                        &e,
                        e == WriteError::Io,
                        matches!(e, WriteError::Protocol(_)),
                        e == WriteError::Disconnected,
                        matches!(e, WriteError::Request(_) | WriteError::NoResources | WriteError::ReadOnly),
                    );
                    if e == WriteError::ReadOnly {
                        assert!(config.read_only);
                    }
                }
            }
            Outcome::Flush { res } => {
                if let Err(e) = res {
                    fine(
                        &e,
                        matches!(e, FlushError::Io | FlushError::Unsupported),
                        matches!(e, FlushError::Protocol(_)),
                        e == FlushError::Disconnected,
                        false,
                    );
                }
            }
        }
    };

    let poll_all = |calls: &mut Vec<Option<Call<'_>>>, cx: &mut Context<'_>, back: &Back<'_>, disconnected: bool| {
        for c in calls.iter_mut() {
            if let Some(f) = c {
                if let Poll::Ready(o) = f.as_mut().poll(cx) {
                    *c = None;
                    check(o, back.hostile, back.error_sent, disconnected);
                }
            }
        }
    };

    for op in ops.chunks_exact(3).take(OPS_MAX) {
        let (a, b) = (op[1], op[2]);
        match op[0] % 12 {
            // A read or a write of up to 16 sectors (some out of range).
            0..=2 => {
                if calls.iter().flatten().count() >= CALLS_MAX {
                    continue;
                }
                let n = usize::from(b % 17);
                let len = (n * ss).min(CALL_BYTES_MAX) / ss * ss;
                if len > free.len() {
                    continue;
                }
                let sector = u64::from(a) * 7 % (config.sectors + 4);
                let (buf, rest) = std::mem::take(&mut free).split_at_mut(len);
                free = rest;
                let dev = &dev;
                let call: Call<'_> = if op[0] % 12 == 2 {
                    // (Past the disk's end the call fails before any byte is read.)
                    let base = sector as usize * ss;
                    if let Some(src) = w.write_disk.get(base..base + buf.len()) {
                        buf.copy_from_slice(src);
                    }
                    let buf: &[u8] = buf;
                    Box::pin(async move { Outcome::Write { res: dev.write(sector, buf).await } })
                } else {
                    Box::pin(async move {
                        let res = dev.read(sector, &mut *buf).await;
                        Outcome::Read { sector, res, buf }
                    })
                };
                if let Some(free_slot) = calls.iter_mut().find(|c| c.is_none()) {
                    *free_slot = Some(call);
                } else {
                    calls.push(Some(call));
                }
            }
            3 => {
                if calls.iter().flatten().count() >= CALLS_MAX {
                    continue;
                }
                let dev = &dev;
                calls.push(Some(Box::pin(async move { Outcome::Flush { res: dev.flush().await } })));
            }
            4 | 5 => poll_all(&mut calls, &mut cx, &back, disconnected),
            6 => back.take_requests(),
            7 | 8 => back.answer(a, b),
            9 => back.publish(a),
            // The caller gives up on a call (its future is dropped).
            10 => {
                let live: Vec<usize> = (0..calls.len()).filter(|&i| calls[i].is_some()).collect();
                if let Some(&i) = live.get(usize::from(b) % live.len().max(1)) {
                    calls[i] = None;
                }
            }
            _ => {
                if a == 0 {
                    dev.disconnect();
                    disconnected = true;
                }
            }
        }
    }

    // The backend turns honest and answers everything; every call must end.
    if back.mem.atomic_u32(SRING_RSP_PROD).load(Ordering::Relaxed) != back.rsp_prod_pvt {
        back.publish(2);
    }
    for _ in 0..DRAIN_ROUNDS_MAX {
        if calls.iter().all(Option::is_none) {
            break;
        }
        if !dev.is_failed() {
            back.take_requests();
            while back.taken.iter().any(|t| !t.answered) && back.rsp_prod_pvt != back.req_cons {
                back.answer(0, 0);
            }
            back.publish(2);
        }
        poll_all(&mut calls, &mut cx, &back, disconnected);
    }
    assert!(calls.iter().all(Option::is_none), "calls still pending after the backend answered everything");
    if !back.hostile && !disconnected {
        assert!(!dev.is_failed(), "an honest backend failed the device");
    }
    drop(calls);
    drop(back);
    drop(mapping);
    drop(dev);
}

fuzz_target!(|data: &[u8]| {
    let Some((&[config, nodes_len], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (nodes, ops) = rest.split_at(usize::from(nodes_len).min(rest.len()));
    check_config_parse(nodes);
    WORLD.with(|cell| {
        let mut cell = cell.borrow_mut();
        let w = cell.get_or_insert_with(|| {
            let sim = SimXen::new(SimConfig::new(0).quiet());
            let dom = sim.create_domain(DomainConfig::new("fuzz"));
            let guest = sim.guest(dom.id());
            World {
                dom0: sim.dom0(),
                _sim: sim,
                dom,
                guest,
                read_disk: (0..DISK_BYTES as u64).map(disk_byte).collect(),
                write_disk: (0..DISK_BYTES as u64).map(write_byte).collect(),
            }
        });
        let pages = w.dom.pages_allocated();
        let grants = w.guest.grant_stats().granted;
        run(w, configs(config), ops);
        assert_eq!(w.dom.pages_allocated(), pages, "a page leaked");
        assert_eq!(w.guest.grant_stats().granted, grants, "a grant leaked");
    });
});
