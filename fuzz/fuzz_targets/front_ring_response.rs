//! reactor-xen's `FrontRing` against a hostile back end: an arbitrary
//! sequence of front actions (push, publish, take, poll, final check) and
//! back-end actions (responses with outstanding, unknown or duplicate ids,
//! raw slot bytes, `rsp_prod` published right, far ahead or behind,
//! `req_event` scribbled) on a real ring page of a sim guest.
//!
//! Input: `[protocol, start_index u32 LE, (op, arg)*]`. Three protocols
//! cover the slot sizes in use: 8-byte slots with a `u16` id (netif rx:
//! 256 slots), 112-byte slots with a `u64` id (blkif: 32 slots) and
//! 512-byte slots with a `u32` id (4 slots). The ring starts at any index,
//! so indices wrap.
//!
//! A model keeps what the ring must keep: the outstanding ids and their
//! contexts, `req_prod_pvt`, `req_prod`, `rsp_cons`. Checked after every
//! action:
//! - nothing panics;
//! - a response is delivered only for an outstanding id, with that id's
//!   context, and decoded from exactly the bytes in the slot at `rsp_cons`;
//!   an id that is not outstanding (out of range, duplicate, stale) is
//!   `UnknownId` and its slot consumed;
//! - an `rsp_prod` behind `rsp_cons` or ahead of the published requests is
//!   `ProducerOutOfRange` and consumes nothing;
//! - push hands out a free id below the ring size, and is `RingFull` (with
//!   the context back) exactly when no slot or id is free;
//! - notifications follow `req_event`; `final_check` sets `rsp_event` to
//!   `rsp_cons + 1` when it finds nothing; `poll_response` is Pending only
//!   when no response is there;
//! - `in_flight`, `free_requests` and the stats agree with the model, and
//!   `into_parts` gives back exactly the outstanding contexts;
//! - the guest's pages and grants are all returned after each input.
#![no_main]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use ringlet_xen::abi::ring::{SRING_HEADER_SIZE, SRING_REQ_EVENT, SRING_RSP_EVENT, SRING_RSP_PROD};
use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::grant::{Access, GrantedPage};
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::ring::{FrontRing, RingError, RingFull, RingProtocol};
use ringlet_xen::sim::{DomainConfig, SimConfig, SimDomain, SimXen};

/// Actions per input.
const OPS_MAX: usize = 256;

struct World {
    _sim: SimXen,
    dom: SimDomain,
    guest: Guest,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn with_world<R>(f: impl FnOnce(&World) -> R) -> R {
    WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let w = w.get_or_insert_with(|| {
            let sim = SimXen::new(SimConfig::new(0).quiet());
            let dom = sim.create_domain(DomainConfig::new("fuzz"));
            let guest = sim.guest(dom.id());
            World { _sim: sim, dom, guest }
        });
        f(w)
    })
}

/// A protocol whose response is the slot's bytes and whose id sits at
/// offset 0 in `ID_BYTES` little-endian bytes.
trait Fuzzed: RingProtocol<Request = u64, Response = Vec<u8>> {
    const ID_BYTES: usize;
}

macro_rules! protocol {
    ($name:ident, $slot:expr, $id_bytes:expr) => {
        struct $name;
        impl RingProtocol for $name {
            type Request = u64;
            type Response = Vec<u8>;
            const SLOT_SIZE: usize = $slot;
            fn write_request(req: &u64, slot: &mut [u8]) {
                slot[..8].copy_from_slice(&req.to_le_bytes());
            }
            fn read_response(slot: &[u8]) -> Vec<u8> {
                slot.to_vec()
            }
            fn response_id(rsp: &Vec<u8>) -> u64 {
                let mut b = [0u8; 8];
                b[..$id_bytes].copy_from_slice(&rsp[..$id_bytes]);
                u64::from_le_bytes(b)
            }
        }
        impl Fuzzed for $name {
            const ID_BYTES: usize = $id_bytes;
        }
    };
}

protocol!(Small, 8, 2);
protocol!(Blkif, 112, 8);
protocol!(Large, 512, 4);

/// The model of the front end's private state.
struct Model {
    req_prod_pvt: u32,
    req_prod: u32,
    rsp_cons: u32,
    /// Outstanding id -> context.
    outstanding: BTreeMap<u16, u64>,
    next_context: u64,
    responses: u64,
    unknown_ids: u64,
    bad_producer: u64,
}

/// The back end: its private response producer.
struct Back {
    rsp_prod_pvt: u32,
    /// Responses written (for duplicates).
    answered: Vec<u64>,
}

fn run<P: Fuzzed>(w: &World, start: u32, ops: &[u8]) {
    let page = GrantedPage::new(w.guest.alloc_page().expect("a page"), DomId::DOM0, Access::ReadWrite)
        .map_err(|(_, e)| e)
        .expect("a grant");
    let mut ring: FrontRing<P, u64> = FrontRing::new_at(page, start);
    let channel = EventChannel::alloc_unbound(&w.guest, DomId::DOM0).expect("a port");
    let size = ring.size();
    assert!(size.is_power_of_two());
    let mut m = Model {
        req_prod_pvt: start,
        req_prod: start,
        rsp_cons: start,
        outstanding: BTreeMap::new(),
        next_context: 0,
        responses: 0,
        unknown_ids: 0,
        bad_producer: 0,
    };
    let mut back = Back {
        rsp_prod_pvt: start,
        answered: Vec::new(),
    };
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);

    for op in ops.chunks_exact(3) {
        let arg = u16::from_le_bytes([op[1], op[2]]);
        let mem = ring.page().mem();
        let slot_off = |idx: u32| SRING_HEADER_SIZE + (idx & (size - 1)) as usize * P::SLOT_SIZE;
        match op[0] % 12 {
            // Front: push up to `arg % 8 + 1` requests.
            0 | 1 => {
                for _ in 0..=(arg % 8) {
                    let free = ring.free_requests();
                    let model_free = (size - m.req_prod_pvt.wrapping_sub(m.rsp_cons))
                        .min(size - m.outstanding.len() as u32);
                    assert_eq!(free, model_free);
                    let ctx = m.next_context;
                    match ring.push_request(ctx, |id| u64::from(id.0)) {
                        Ok(id) => {
                            assert!(free > 0);
                            assert!(u32::from(id.0) < size, "id {} out of range", id.0);
                            assert!(m.outstanding.insert(id.0, ctx).is_none(), "id {} reused", id.0);
                            m.req_prod_pvt = m.req_prod_pvt.wrapping_add(1);
                            m.next_context += 1;
                        }
                        Err(RingFull(back_ctx)) => {
                            assert_eq!(free, 0);
                            assert_eq!(back_ctx, ctx);
                            break;
                        }
                    }
                }
            }
            // Front: publish.
            2 => {
                let event = mem.atomic_u32(SRING_REQ_EVENT).load(Ordering::Relaxed);
                let (old, new) = (m.req_prod, m.req_prod_pvt);
                let want = (1..=new.wrapping_sub(old)).any(|k| old.wrapping_add(k) == event);
                assert_eq!(ring.push_requests(), want, "notify with req_event {event}");
                m.req_prod = new;
            }
            // Back: an honest response for the `arg`-th published request
            // it has not answered (whatever id the front put there).
            3 | 4 => {
                let pending = m.req_prod.wrapping_sub(back.rsp_prod_pvt);
                if pending == 0 || pending > size {
                    continue;
                }
                let ids: Vec<u16> = m.outstanding.keys().copied().collect();
                if ids.is_empty() {
                    continue;
                }
                let id = u64::from(ids[usize::from(arg) % ids.len()]);
                let mut slot = vec![0u8; P::SLOT_SIZE];
                slot[..P::ID_BYTES].copy_from_slice(&id.to_le_bytes()[..P::ID_BYTES]);
                slot[P::ID_BYTES..].fill(op[2]);
                mem.write(slot_off(back.rsp_prod_pvt), &slot);
                back.rsp_prod_pvt = back.rsp_prod_pvt.wrapping_add(1);
                back.answered.push(id);
            }
            // Back: a response with an arbitrary id, or a duplicate of an
            // earlier one.
            5 => {
                let id = if arg & 1 == 0 || back.answered.is_empty() {
                    u64::from(arg >> 1).wrapping_mul(0x0101_0101_0101_0101) >> (arg % 7)
                } else {
                    back.answered[usize::from(arg >> 1) % back.answered.len()]
                };
                let mut slot = vec![op[1]; P::SLOT_SIZE];
                slot[..P::ID_BYTES].copy_from_slice(&id.to_le_bytes()[..P::ID_BYTES]);
                mem.write(slot_off(back.rsp_prod_pvt), &slot);
                back.rsp_prod_pvt = back.rsp_prod_pvt.wrapping_add(1);
            }
            // Back: raw bytes into the slot at its producer (no advance) or
            // `arg` slots away.
            6 => {
                let idx = back.rsp_prod_pvt.wrapping_add(u32::from(op[1] >> 4));
                let mut slot = vec![0u8; P::SLOT_SIZE];
                for (i, b) in slot.iter_mut().enumerate() {
                    *b = op[2].wrapping_mul(i as u8 | 1) ^ op[1];
                }
                mem.write(slot_off(idx), &slot);
            }
            // Back: publish its responses, or an arbitrary producer index.
            7 => {
                let v = match arg % 4 {
                    0 | 1 => back.rsp_prod_pvt,
                    2 => back.rsp_prod_pvt.wrapping_add(u32::from(arg >> 2)),
                    _ => back.rsp_prod_pvt.wrapping_sub(u32::from(arg >> 2)),
                };
                mem.atomic_u32(SRING_RSP_PROD).store(v, Ordering::Release);
            }
            // Back: scribble req_event.
            8 => {
                let v = m.req_prod.wrapping_add(u32::from(arg % 16)).wrapping_sub(4);
                mem.atomic_u32(SRING_REQ_EVENT).store(v, Ordering::Relaxed);
            }
            // Front: take one response.
            9 => {
                let expect = expect_take::<P>(&m, &mem, slot_off(m.rsp_cons));
                let got = ring.take_response();
                check_take(&mut m, expect, got.map(|o| o.map(|r| (r.id.0, r.response, r.context))));
            }
            // Front: poll (take, wait, final check) with a no-op waker.
            10 => {
                let expect = expect_take::<P>(&m, &mem, slot_off(m.rsp_cons));
                let got = match ring.poll_response(&mut cx, &channel) {
                    Poll::Ready(r) => r.map(|r| Some((r.id.0, r.response, r.context))),
                    Poll::Pending => Ok(None),
                };
                check_take(&mut m, expect, got);
            }
            // Front: final check.
            _ => {
                let rsp_prod = mem.atomic_u32(SRING_RSP_PROD).load(Ordering::Relaxed);
                let there = ring.final_check();
                assert_eq!(there, rsp_prod != m.rsp_cons);
                if !there {
                    let ev = mem.atomic_u32(SRING_RSP_EVENT).load(Ordering::Relaxed);
                    assert_eq!(ev, m.rsp_cons.wrapping_add(1));
                }
            }
        }
        assert_eq!(ring.in_flight(), m.outstanding.len() as u32);
        let st = ring.stats();
        assert_eq!(
            (st.responses, st.unknown_ids, st.bad_producer),
            (m.responses, m.unknown_ids, m.bad_producer)
        );
    }

    let (page, contexts) = ring.into_parts();
    let mut contexts = contexts;
    contexts.sort_unstable();
    let mut want: Vec<u64> = m.outstanding.values().copied().collect();
    want.sort_unstable();
    assert_eq!(contexts, want, "into_parts lost or invented a context");
    drop(page);
    drop(channel);
}

/// What a take must do now, from the model and the slot's bytes.
enum Expect {
    BadProducer { rsp_prod: u32 },
    Empty,
    Slot(Vec<u8>, u64),
}

fn expect_take<P: Fuzzed>(m: &Model, mem: &ringlet_xen::page::SharedMem<'_>, off: usize) -> Expect {
    let rsp_prod = mem.atomic_u32(SRING_RSP_PROD).load(Ordering::Relaxed);
    let avail = rsp_prod.wrapping_sub(m.rsp_cons);
    if avail > m.req_prod.wrapping_sub(m.rsp_cons) {
        return Expect::BadProducer { rsp_prod };
    }
    if avail == 0 {
        return Expect::Empty;
    }
    let mut slot = vec![0u8; P::SLOT_SIZE];
    mem.read(off, &mut slot);
    let id = P::response_id(&slot);
    Expect::Slot(slot, id)
}

type Taken = Result<Option<(u16, Vec<u8>, u64)>, RingError>;

fn check_take(m: &mut Model, expect: Expect, got: Taken) {
    match (expect, got) {
        (Expect::BadProducer { rsp_prod }, Err(RingError::ProducerOutOfRange { rsp_prod: p, rsp_cons, req_prod })) => {
            assert_eq!((p, rsp_cons, req_prod), (rsp_prod, m.rsp_cons, m.req_prod));
            m.bad_producer += 1;
        }
        (Expect::Empty, Ok(None)) => {}
        (Expect::Slot(bytes, raw_id), got) => {
            m.rsp_cons = m.rsp_cons.wrapping_add(1);
            let known = u16::try_from(raw_id).ok().filter(|id| m.outstanding.contains_key(id));
            match (known, got) {
                (Some(id), Ok(Some((gid, rsp, ctx)))) => {
                    assert_eq!(gid, id);
                    assert_eq!(rsp, bytes, "response not the slot's bytes");
                    assert_eq!(Some(ctx), m.outstanding.remove(&id), "wrong context");
                    m.responses += 1;
                }
                (None, Err(RingError::UnknownId(gid))) => {
                    assert_eq!(gid, raw_id);
                    m.unknown_ids += 1;
                }
                (known, got) => panic!("slot with id {raw_id} (outstanding: {known:?}) gave {got:?}"),
            }
        }
        (_, got) => panic!("unexpected take result {got:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[proto, a, b, c, d], ops)) = data.split_first_chunk::<5>() else {
        return;
    };
    let start = u32::from_le_bytes([a, b, c, d]);
    let ops = &ops[..ops.len().min(3 * OPS_MAX)];
    with_world(|w| {
        let pages = w.dom.pages_allocated();
        let grants = w.guest.grant_stats();
        match proto % 3 {
            0 => run::<Small>(w, start, ops),
            1 => run::<Blkif>(w, start, ops),
            _ => run::<Large>(w, start, ops),
        }
        assert_eq!(w.dom.pages_allocated(), pages, "a page leaked");
        assert_eq!(w.guest.grant_stats().granted, grants.granted, "a grant leaked");
    });
});
