//! The front ring against a hand-written back end (the model of the other
//! side), including a property test over random interleavings with
//! malformed responses.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};
use core::task::{Context, Poll};

use proptest::prelude::*;

use super::*;
use crate::abi::ring::{
    SRING_HEADER_SIZE, SRING_REQ_EVENT, SRING_REQ_PROD, SRING_RSP_EVENT, SRING_RSP_PROD,
};
use crate::evtchn::EventChannel;
use crate::grant::{Access, GrantedPage};
use crate::guest::Guest;
use crate::hypervisor::{DomId, PAGE_SIZE};
use crate::page::SharedMem;
use crate::testing::{counting_waker, Call, MockXen};

const BACKEND: DomId = DomId(0);

/// A test protocol: 112-byte slots like blkif, so the ring has 32 slots.
struct Echo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EchoMsg {
    id: u16,
    value: u32,
}

impl RingProtocol for Echo {
    type Request = EchoMsg;
    type Response = EchoMsg;
    const SLOT_SIZE: usize = 112;

    fn write_request(req: &EchoMsg, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&req.id.to_le_bytes());
        slot[4..8].copy_from_slice(&req.value.to_le_bytes());
    }

    fn read_response(slot: &[u8]) -> EchoMsg {
        EchoMsg {
            id: u16::from_le_bytes([slot[0], slot[1]]),
            value: u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]),
        }
    }

    fn response_id(rsp: &EchoMsg) -> u64 {
        u64::from(rsp.id)
    }
}

const SIZE: u32 = 32;

/// The back end, written the way a real one (netback, blkback) works on
/// io/ring.h.
struct Back<'a> {
    mem: SharedMem<'a>,
    req_cons: u32,
    rsp_prod_pvt: u32,
}

impl<'a> Back<'a> {
    fn new(mem: SharedMem<'a>, start: u32) -> Self {
        Back {
            mem,
            req_cons: start,
            rsp_prod_pvt: start,
        }
    }

    fn idx(&self, name: usize) -> &'a core::sync::atomic::AtomicU32 {
        self.mem.atomic_u32(name)
    }

    fn slot_off(i: u32) -> usize {
        SRING_HEADER_SIZE + (i & (SIZE - 1)) as usize * Echo::SLOT_SIZE
    }

    /// Consumes every published request.
    fn take_requests(&mut self) -> Vec<EchoMsg> {
        let prod = self.idx(SRING_REQ_PROD).load(Ordering::Acquire);
        let mut out = Vec::new();
        while self.req_cons != prod {
            let mut b = [0u8; 8];
            self.mem.read(Self::slot_off(self.req_cons), &mut b);
            out.push(EchoMsg {
                id: u16::from_le_bytes([b[0], b[1]]),
                value: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            });
            self.req_cons = self.req_cons.wrapping_add(1);
        }
        out
    }

    fn write_response(&mut self, m: EchoMsg) {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&m.id.to_le_bytes());
        b[4..8].copy_from_slice(&m.value.to_le_bytes());
        self.mem.write(Self::slot_off(self.rsp_prod_pvt), &b);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// RING_PUSH_RESPONSES_AND_CHECK_NOTIFY.
    fn push_responses(&mut self) -> bool {
        let old = self.idx(SRING_RSP_PROD).load(Ordering::Relaxed);
        let new = self.rsp_prod_pvt;
        fence(Ordering::Release);
        self.idx(SRING_RSP_PROD).store(new, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let ev = self.idx(SRING_RSP_EVENT).load(Ordering::Relaxed);
        new.wrapping_sub(ev) < new.wrapping_sub(old)
    }

    /// RING_FINAL_CHECK_FOR_REQUESTS.
    fn final_check(&mut self) -> bool {
        if self.idx(SRING_REQ_PROD).load(Ordering::Acquire) != self.req_cons {
            return true;
        }
        self.idx(SRING_REQ_EVENT)
            .store(self.req_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.idx(SRING_REQ_PROD).load(Ordering::Acquire) != self.req_cons
    }
}

fn setup(xen: &std_rc::Rc<MockXen>, start: u32) -> (Guest, FrontRing<Echo, u32>) {
    let g = xen.guest();
    let page = GrantedPage::new(g.alloc_page().unwrap(), BACKEND, Access::ReadWrite).unwrap();
    (g, FrontRing::new_at(page, start))
}

mod std_rc {
    pub(super) use alloc::rc::Rc;
}

#[test]
fn ring_size_is_io_ring_h_s() {
    let xen = MockXen::new();
    let (_g, ring) = setup(&xen, 0);
    assert_eq!(ring.size(), SIZE);
    assert_eq!(ring.free_requests(), SIZE);
    let mem = ring.page().mem();
    assert_eq!(mem.atomic_u32(SRING_REQ_EVENT).load(Ordering::Relaxed), 1);
    assert_eq!(mem.atomic_u32(SRING_RSP_EVENT).load(Ordering::Relaxed), 1);
}

#[test]
fn round_trip_with_hold_off() {
    let xen = MockXen::new();
    let (_g, mut ring) = setup(&xen, 0);
    let mem = xen.map_grant(ring.grant_ref(), BACKEND, true).unwrap();
    let mut back = Back::new(mem, 0);
    for v in 0..3 {
        ring.push_request(v, |id| EchoMsg { id: id.0, value: v })
            .unwrap();
    }
    assert!(
        ring.push_requests(),
        "the idle back end (req_event 1) wants a notify"
    );
    // The back end is busy (has not done its final check): hold off.
    ring.push_request(3, |id| EchoMsg { id: id.0, value: 3 })
        .unwrap();
    assert!(!ring.push_requests());
    assert_eq!(ring.stats().notifies_held_off, 1);
    let reqs = back.take_requests();
    assert_eq!(reqs.len(), 4);
    assert!(!back.final_check(), "back end goes idle");
    ring.push_request(4, |id| EchoMsg { id: id.0, value: 4 })
        .unwrap();
    assert!(ring.push_requests(), "idle again: notify");
    // Responses, in another order than requests.
    for r in reqs.iter().rev() {
        back.write_response(*r);
    }
    assert!(
        back.push_responses(),
        "front never checked: rsp_event 1 is passed"
    );
    let mut got = Vec::new();
    while let Some(r) = ring.take_response().unwrap() {
        assert_eq!(r.response.value, r.context);
        assert_eq!(r.id.0, r.response.id);
        got.push(r.context);
    }
    assert_eq!(got, [3, 2, 1, 0]);
    assert!(!ring.final_check());
    assert_eq!(ring.in_flight(), 1);
    assert_eq!(ring.stats().responses, 4);
}

#[test]
fn full_ring_gives_the_context_back() {
    let xen = MockXen::new();
    let (_g, mut ring) = setup(&xen, 0);
    for v in 0..SIZE {
        ring.push_request(v, |id| EchoMsg { id: id.0, value: v })
            .unwrap();
    }
    assert_eq!(ring.free_requests(), 0);
    assert_eq!(
        ring.push_request(99, |_| unreachable!("no slot, no build")),
        Err(RingFull(99))
    );
}

#[test]
fn producer_out_of_range_consumes_nothing() {
    let xen = MockXen::new();
    let (_g, mut ring) = setup(&xen, 0);
    let mem = xen.map_grant(ring.grant_ref(), BACKEND, true).unwrap();
    ring.push_request(7, |id| EchoMsg { id: id.0, value: 7 })
        .unwrap();
    ring.push_requests();
    // Ahead of the one published request.
    mem.atomic_u32(SRING_RSP_PROD).store(2, Ordering::SeqCst);
    let e = ring.take_response().unwrap_err();
    assert_eq!(
        e,
        RingError::ProducerOutOfRange {
            rsp_prod: 2,
            rsp_cons: 0,
            req_prod: 1
        }
    );
    // Behind the consumer.
    mem.atomic_u32(SRING_RSP_PROD)
        .store(u32::MAX, Ordering::SeqCst);
    assert!(matches!(
        ring.take_response(),
        Err(RingError::ProducerOutOfRange { .. })
    ));
    assert_eq!(ring.stats().bad_producer, 2);
    // The back end fixes it: the response is delivered normally.
    let mut back = Back::new(mem, 0);
    let r = back.take_requests();
    back.write_response(r[0]);
    back.push_responses();
    assert_eq!(ring.take_response().unwrap().unwrap().context, 7);
}

#[test]
fn unknown_and_duplicate_ids_are_errors() {
    let xen = MockXen::new();
    let (_g, mut ring) = setup(&xen, 0);
    let mem = xen.map_grant(ring.grant_ref(), BACKEND, true).unwrap();
    let mut back = Back::new(mem, 0);
    for v in 0..3 {
        ring.push_request(v, |id| EchoMsg { id: id.0, value: v })
            .unwrap();
    }
    ring.push_requests();
    let r = back.take_requests();
    back.write_response(r[0]);
    back.write_response(EchoMsg { id: 500, value: 1 }); // out of range
    back.write_response(r[0]); // duplicate (in place of r[2]'s)
    back.push_responses();
    assert_eq!(ring.take_response().unwrap().unwrap().context, 0);
    assert_eq!(ring.take_response().unwrap_err(), RingError::UnknownId(500));
    assert_eq!(
        ring.take_response().unwrap_err(),
        RingError::UnknownId(u64::from(r[0].id))
    );
    assert_eq!(ring.take_response().unwrap(), None);
    assert_eq!(ring.stats().unknown_ids, 2);
    // Requests 1 and 2 are still outstanding; teardown hands them back.
    assert_eq!(ring.in_flight(), 2);
    let (_page, mut ctx) = ring.into_parts();
    ctx.sort();
    assert_eq!(ctx, [1, 2]);
}

#[test]
fn poll_response_registers_then_final_checks() {
    let xen = MockXen::new();
    let (g, mut ring) = setup(&xen, 0);
    let ch = EventChannel::alloc_unbound(&g, BACKEND).unwrap();
    let mem = xen.map_grant(ring.grant_ref(), BACKEND, true).unwrap();
    let mut back = Back::new(mem, 0);
    let (w, count) = counting_waker();
    let mut cx = Context::from_waker(&w);

    ring.push_request(1, |id| EchoMsg { id: id.0, value: 1 })
        .unwrap();
    assert!(ring.push_and_notify(&ch).unwrap());
    assert_eq!(xen.calls.borrow().last(), Some(&Call::Send(ch.port())));
    assert!(ring.poll_response(&mut cx, &ch).is_pending());
    // The final check asked for a notification at the next response.
    assert_eq!(
        back.mem.atomic_u32(SRING_RSP_EVENT).load(Ordering::SeqCst),
        1
    );
    let r = back.take_requests();
    back.write_response(r[0]);
    assert!(back.push_responses(), "the front is waiting: notify");
    xen.raise(ch.port());
    g.demux();
    assert_eq!(count.get(), 1);
    match ring.poll_response(&mut cx, &ch) {
        Poll::Ready(Ok(r)) => assert_eq!(r.context, 1),
        other => panic!("expected the response, got {other:?}"),
    }
    // A response pushed without a notification (the back end saw no
    // rsp_event) is still found by the final check of the next poll.
    ring.push_request(2, |id| EchoMsg { id: id.0, value: 2 })
        .unwrap();
    ring.push_requests();
    let r = back.take_requests();
    back.write_response(r[0]);
    let _ = back.push_responses();
    match ring.poll_response(&mut cx, &ch) {
        Poll::Ready(Ok(r)) => assert_eq!(r.context, 2),
        other => panic!("expected the response, got {other:?}"),
    }
}

#[test]
fn next_response_future() {
    let xen = MockXen::new();
    let (g, mut ring) = setup(&xen, 0);
    let ch = EventChannel::alloc_unbound(&g, BACKEND).unwrap();
    let mem = xen.map_grant(ring.grant_ref(), BACKEND, true).unwrap();
    let mut back = Back::new(mem, 0);
    ring.push_request(5, |id| EchoMsg { id: id.0, value: 5 })
        .unwrap();
    ring.push_requests();
    let (w, _) = counting_waker();
    let mut cx = Context::from_waker(&w);
    {
        let mut fut = core::pin::pin!(ring.next_response(&ch));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let r = back.take_requests();
        back.write_response(r[0]);
        back.push_responses();
        xen.raise(ch.port());
        g.demux();
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(r.context, 5),
            other => panic!("{other:?}"),
        }
    }
    let _ = PAGE_SIZE;
}

use core::future::Future;

/// What the back end does in one step of the property test.
#[derive(Clone, Debug)]
enum Op {
    /// The front writes up to n requests.
    Push(u8),
    /// The front publishes (and checks notify).
    Publish,
    /// The front consumes everything available.
    Consume,
    /// The front's final check.
    FrontFinalCheck,
    /// The back end takes all published requests.
    BackTake,
    /// The back end answers up to n taken requests (picking by `pick`),
    /// with a fault.
    BackRespond(u8, u8, Fault),
    /// The back end publishes its responses.
    BackPush,
    /// The back end's final check.
    BackFinalCheck,
    /// The back end scribbles an out-of-range rsp_prod, the front reads it,
    /// the back end restores it.
    BadProducer(bool, u8),
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// An id beyond the ring.
    OutOfRange(u16),
    /// The id of some earlier request (maybe completed, maybe reissued).
    Stale(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let fault = prop_oneof![
        6 => Just(Fault::None),
        1 => (SIZE as u16..=u16::MAX).prop_map(Fault::OutOfRange),
        1 => any::<u8>().prop_map(Fault::Stale),
    ];
    prop_oneof![
        3 => (1u8..12).prop_map(Op::Push),
        2 => Just(Op::Publish),
        2 => Just(Op::Consume),
        1 => Just(Op::FrontFinalCheck),
        2 => Just(Op::BackTake),
        3 => (1u8..12, any::<u8>(), fault).prop_map(|(n, p, f)| Op::BackRespond(n, p, f)),
        2 => Just(Op::BackPush),
        1 => Just(Op::BackFinalCheck),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(a, k)| Op::BadProducer(a, k)),
    ]
}

/// Runs `ops` against the model. The model of the front: the ids
/// outstanding (id -> value); of the back: requests taken and not answered.
fn run_model(start: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let xen = MockXen::new();
    let (_g, mut ring) = setup(&xen, start);
    let mem = xen.map_grant(ring.grant_ref(), BACKEND, true).unwrap();
    let mut back = Back::new(mem, start);

    let mut outstanding: BTreeMap<u16, u32> = BTreeMap::new();
    let mut written = 0u32; // requests written, not yet published
    let mut published_unconsumed = 0u32; // slots published and not consumed
    let mut taken: Vec<EchoMsg> = Vec::new();
    let mut history: Vec<u16> = Vec::new();
    let mut tainted = false; // a dishonest response may have matched a real id
    let mut back_sleeping = true; // req_event starts at start + 1
    let mut front_waiting = true; // rsp_event starts at start + 1
    let mut rsp_pushed = start;
    let mut rsp_cons = start;
    let mut next_value = 0u32;

    for op in ops {
        match *op {
            Op::Push(n) => {
                for _ in 0..n {
                    let used = published_unconsumed + written;
                    let expect_room = used < SIZE && (outstanding.len() as u32) < SIZE;
                    prop_assert_eq!(ring.free_requests() > 0, expect_room);
                    let v = next_value;
                    match ring.push_request(v, |id| EchoMsg { id: id.0, value: v }) {
                        Ok(id) => {
                            prop_assert!(expect_room);
                            prop_assert!(
                                outstanding.insert(id.0, v).is_none(),
                                "id reused while outstanding"
                            );
                            history.push(id.0);
                            written += 1;
                            next_value += 1;
                        }
                        Err(RingFull(c)) => {
                            prop_assert!(!expect_room);
                            prop_assert_eq!(c, v);
                            break;
                        }
                    }
                }
            }
            Op::Publish => {
                let notify = ring.push_requests();
                if written == 0 {
                    prop_assert!(!notify);
                } else {
                    prop_assert_eq!(
                        notify,
                        back_sleeping,
                        "hold-off must match the back end's state"
                    );
                    if notify {
                        back_sleeping = false;
                    }
                }
                published_unconsumed += written;
                written = 0;
            }
            Op::Consume => loop {
                match ring.take_response() {
                    Ok(None) => {
                        prop_assert_eq!(rsp_cons, rsp_pushed);
                        break;
                    }
                    Ok(Some(r)) => {
                        prop_assert_ne!(rsp_cons, rsp_pushed);
                        rsp_cons = rsp_cons.wrapping_add(1);
                        published_unconsumed -= 1;
                        let v = outstanding.remove(&r.id.0);
                        prop_assert_eq!(v, Some(r.context), "only outstanding ids complete");
                        if !tainted {
                            prop_assert_eq!(r.response.value, r.context, "data integrity");
                        }
                    }
                    Err(RingError::UnknownId(id)) => {
                        prop_assert_ne!(rsp_cons, rsp_pushed);
                        rsp_cons = rsp_cons.wrapping_add(1);
                        published_unconsumed -= 1;
                        prop_assert!(
                            id >= u64::from(SIZE) || !outstanding.contains_key(&(id as u16)),
                            "a valid id was refused"
                        );
                    }
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            },
            Op::FrontFinalCheck => {
                let more = ring.final_check();
                prop_assert_eq!(more, rsp_cons != rsp_pushed);
                if !more {
                    front_waiting = true;
                }
            }
            Op::BackTake => {
                let got = back.take_requests();
                if !got.is_empty() {
                    back_sleeping = false;
                }
                taken.extend(got);
            }
            Op::BackRespond(n, pick, fault) => {
                for k in 0..n {
                    if taken.is_empty() {
                        break;
                    }
                    let i = (usize::from(pick) + usize::from(k)) % taken.len();
                    let req = taken.swap_remove(i);
                    let rsp = match (k, fault) {
                        (0, Fault::OutOfRange(id)) => EchoMsg {
                            id,
                            value: req.value,
                        },
                        (0, Fault::Stale(h)) if !history.is_empty() => {
                            tainted = true;
                            let id = history[usize::from(h) % history.len()];
                            EchoMsg {
                                id,
                                value: req.value,
                            }
                        }
                        _ => req,
                    };
                    back.write_response(rsp);
                }
            }
            Op::BackPush => {
                let old = rsp_pushed;
                let notify = back.push_responses();
                rsp_pushed = back.rsp_prod_pvt;
                if rsp_pushed != old {
                    prop_assert_eq!(notify, front_waiting, "no lost or spurious response notify");
                    if notify {
                        front_waiting = false;
                    }
                }
            }
            Op::BackFinalCheck => {
                if !back.final_check() {
                    back_sleeping = true;
                }
            }
            Op::BadProducer(ahead, k) => {
                let bad = if ahead {
                    // Beyond the published requests.
                    rsp_cons
                        .wrapping_add(published_unconsumed)
                        .wrapping_add(1 + u32::from(k))
                } else {
                    rsp_cons.wrapping_sub(1 + u32::from(k))
                };
                back.idx(SRING_RSP_PROD).store(bad, Ordering::SeqCst);
                let r = ring.take_response();
                let is_bad_producer = matches!(r, Err(RingError::ProducerOutOfRange { .. }));
                prop_assert!(is_bad_producer, "got {:?}", r);
                back.idx(SRING_RSP_PROD).store(rsp_pushed, Ordering::SeqCst);
            }
        }
        prop_assert_eq!(ring.in_flight() as usize, outstanding.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn front_ring_against_model(
        start in prop_oneof![Just(0u32), Just(u32::MAX - 20), any::<u32>()],
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run_model(start, &ops)?;
    }
}
