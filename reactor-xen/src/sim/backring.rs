//! The back (response-producing) end of an io/ring.h ring, for the sim's
//! backend domains (echo now; netback and blkback later).
//!
//! A backend maps the front end's ring page ([`SimDomain::map_grant`]),
//! wraps it in a [`BackRing`] of the same [`RingProtocol`] the front end
//! uses (plus [`BackProtocol`]'s decode/encode of the other direction), and
//! then loops: take requests, push responses, notify when the front end
//! asked for it, and wait with the final check.
//!
//! # State
//!
//! ```text
//!   rsp_prod (published) <= rsp_prod_pvt <= req_cons <= req_prod (front's)
//!   req_prod - req_cons <= size            (else the front end is broken)
//!   req_cons - rsp_prod_pvt <= size        (requests being served)
//! ```
//!
//! `req_prod` is the front end's word and is checked on every read (an
//! `Err`, not an assertion); the others are ours.
//!
//! # Faults
//!
//! On [`push_response`](BackRing::push_response) and
//! [`push_responses`](BackRing::push_responses) the ring asks the world
//! whether to misbehave, as a buggy or hostile backend would:
//! [`FaultSite::RingBadStatus`] (a status the protocol does not define),
//! [`FaultSite::RingBadId`] (an id out of the ring's range),
//! [`FaultSite::RingDuplicateId`] (the response is pushed twice) and
//! [`FaultSite::RingProducerJump`] (`rsp_prod` published far ahead; the ring
//! is then broken for good). Each fault is in the trace.
//!
//! [`SimDomain::map_grant`]: super::SimDomain::map_grant

use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::sync::atomic::{fence, Ordering};
use core::task::{Context, Poll};

use super::faults::FaultSite;
use super::grant::GrantMapping;
use super::prng::Prng;
use super::SimXen;
use crate::abi::ring::{ring_size, RingIdx, SringHeader, SRING_HEADER_SIZE};
use crate::evtchn::EventChannel;
use crate::hypervisor::{DomId, PAGE_SIZE};
use crate::page::SharedMem;
use crate::ring::{RingProtocol, SLOT_SIZE_MAX};

/// Rounds of (take, wait, final check) in one poll, as the front ring does.
const POLL_ROUNDS_MAX: usize = 4;

/// The back end's half of a ring protocol: the directions a front end does
/// not need.
pub trait BackProtocol: RingProtocol {
    /// Decodes a request from a copy of its slot. The bytes come from the
    /// front end: parse, never trust.
    fn read_request(slot: &[u8]) -> Self::Request;
    /// Encodes `rsp` into `slot` (`SLOT_SIZE` bytes, zeroed).
    fn write_response(rsp: &Self::Response, slot: &mut [u8]);
    /// Fault injection: makes `rsp` carry `id` instead of its own.
    fn set_response_id(rsp: &mut Self::Response, id: u64);
    /// Fault injection: makes `rsp` carry a status the protocol does not
    /// define, derived from `noise`.
    fn set_garbage_status(rsp: &mut Self::Response, noise: u64);
}

/// Why the back ring cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackRingError {
    /// The front end's `req_prod` is behind our consumer or more than the
    /// ring's size ahead of it.
    RequestProducerOutOfRange {
        /// The front end's `req_prod`.
        req_prod: RingIdx,
        /// Our `req_cons`.
        req_cons: RingIdx,
    },
    /// An injected [`FaultSite::RingProducerJump`] broke the ring.
    Broken,
}

impl fmt::Display for BackRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackRingError::RequestProducerOutOfRange { req_prod, req_cons } => {
                write!(
                    f,
                    "front end's request producer {req_prod} out of range (consumer {req_cons})"
                )
            }
            BackRingError::Broken => f.write_str("ring broken by an injected fault"),
        }
    }
}

impl core::error::Error for BackRingError {}

/// Counters of a back ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackRingStats {
    /// Requests taken.
    pub requests: u64,
    /// Responses written (faulty ones included).
    pub responses: u64,
    /// Pushes that needed a notification.
    pub notifies: u64,
    /// Pushes whose notification was held off.
    pub notifies_held_off: u64,
    /// Faults injected.
    pub faults: u64,
}

/// The back end of a shared ring over a mapped grant.
pub struct BackRing<P: BackProtocol> {
    map: GrantMapping,
    size: u32,
    req_cons: RingIdx,
    rsp_prod_pvt: RingIdx,
    rsp_prod: RingIdx,
    sim: SimXen,
    front: DomId,
    prng: Prng,
    broken: bool,
    /// Responses whose slot a duplicate took (see `push_response`).
    lost: u32,
    stats: BackRingStats,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: BackProtocol> fmt::Debug for BackRing<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("front", &self.front)
            .field("gref", &self.map.gref())
            .field("size", &self.size)
            .field("req_cons", &self.req_cons)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: BackProtocol> BackRing<P> {
    /// `BACK_RING_ATTACH` to the ring in `map` (a writable mapping of the
    /// front end's ring page), starting at the responses already published.
    ///
    /// # Panics
    ///
    /// If the mapping is read-only.
    pub fn attach(map: GrantMapping) -> BackRing<P> {
        const {
            assert!(P::SLOT_SIZE > 0 && P::SLOT_SIZE <= SLOT_SIZE_MAX);
            assert!(ring_size(P::SLOT_SIZE, PAGE_SIZE) >= 1);
        }
        let size = ring_size(P::SLOT_SIZE, PAGE_SIZE);
        let sim = map.sim();
        let front = map.granter();
        let start = map
            .mem()
            .view::<SringHeader>(0)
            .rsp_prod
            .load(Ordering::Acquire);
        BackRing {
            map,
            size,
            req_cons: start,
            rsp_prod_pvt: start,
            rsp_prod: start,
            prng: sim.fork_prng(),
            sim,
            front,
            broken: false,
            lost: 0,
            stats: BackRingStats::default(),
            _protocol: PhantomData,
        }
    }

    fn mem(&self) -> SharedMem<'_> {
        self.map.mem()
    }

    fn header(&self) -> &SringHeader {
        self.map.mem().view(0)
    }

    /// Slots in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The front end's domain.
    pub fn front(&self) -> DomId {
        self.front
    }

    /// The ring's counters.
    pub fn stats(&self) -> BackRingStats {
        self.stats
    }

    /// Requests taken but not yet answered.
    pub fn in_service(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    fn fault(&mut self, site: FaultSite) -> bool {
        let hit = self.sim.fault(site, self.front);
        if hit {
            self.stats.faults += 1;
        }
        hit
    }

    /// Takes the next request, if the front end published one and a
    /// response slot is free for it. The slot is copied out once.
    ///
    /// # Errors
    ///
    /// [`BackRingError`] if the front end's producer index is out of range
    /// or the ring was broken by a fault.
    pub fn take_request(&mut self) -> Result<Option<P::Request>, BackRingError> {
        if self.broken {
            return Err(BackRingError::Broken);
        }
        // Acquire (xen_rmb): the slot reads below happen after this load.
        let req_prod = self.header().req_prod.load(Ordering::Acquire);
        let unconsumed = req_prod.wrapping_sub(self.req_cons);
        if unconsumed > self.size {
            return Err(BackRingError::RequestProducerOutOfRange {
                req_prod,
                req_cons: self.req_cons,
            });
        }
        // RING_REQUEST_CONS_OVERFLOW: every slot holds a request we took
        // and have not answered; answer first.
        if unconsumed == 0 || self.in_service() >= self.size {
            return Ok(None);
        }
        let idx = (self.req_cons & (self.size - 1)) as usize;
        let mut buf = [0u8; SLOT_SIZE_MAX];
        let slot = &mut buf[..P::SLOT_SIZE];
        self.mem()
            .read(SRING_HEADER_SIZE + idx * P::SLOT_SIZE, slot);
        self.req_cons = self.req_cons.wrapping_add(1);
        self.stats.requests += 1;
        Ok(Some(P::read_request(slot)))
    }

    fn write_slot(&mut self, slot: &[u8]) {
        let idx = (self.rsp_prod_pvt & (self.size - 1)) as usize;
        self.mem()
            .write(SRING_HEADER_SIZE + idx * P::SLOT_SIZE, slot);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        self.stats.responses += 1;
    }

    /// Writes a response into the next slot (not yet visible to the front
    /// end: see [`push_responses`](Self::push_responses)).
    ///
    /// # Panics
    ///
    /// If no request is being served (more responses than requests is a
    /// backend bug), unless an injected duplicate took this response's slot.
    pub fn push_response(&mut self, mut rsp: P::Response) {
        if self.in_service() == 0 {
            assert!(self.lost > 0, "back ring: response without a request");
            self.lost -= 1;
            return;
        }
        if self.fault(FaultSite::RingBadStatus) {
            P::set_garbage_status(&mut rsp, self.prng.next_u64());
        }
        if self.fault(FaultSite::RingBadId) {
            // An id the front end never handed out (ids are often u16).
            let size = u64::from(self.size);
            let id = size + self.prng.below(u64::from(u16::MAX) + 1 - size);
            P::set_response_id(&mut rsp, id);
        }
        let mut buf = [0u8; SLOT_SIZE_MAX];
        let slot = &mut buf[..P::SLOT_SIZE];
        P::write_response(&rsp, slot);
        self.write_slot(slot);
        // A second copy only into the slot of a request already taken (never
        // past `req_cons`, so the backend's own input stays intact). That
        // request's own response is then dropped when the backend gives it:
        // a backend this broken loses one.
        if self.in_service() > 0 && self.fault(FaultSite::RingDuplicateId) {
            self.write_slot(slot);
            self.lost += 1;
        }
    }

    /// Publishes the responses written so far and says whether the front
    /// end must be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    #[doc(alias = "RING_PUSH_RESPONSES_AND_CHECK_NOTIFY")]
    pub fn push_responses(&mut self) -> bool {
        let old = self.rsp_prod;
        let mut new = self.rsp_prod_pvt;
        if old == new || self.broken {
            return false;
        }
        if self.fault(FaultSite::RingProducerJump) {
            new = new.wrapping_add(self.size + 1 + self.prng.below(u64::from(self.size)) as u32);
            self.broken = true;
        }
        let hdr = self.header();
        // Orders: the response slots before the producer index (xen_wmb).
        fence(Ordering::Release);
        hdr.rsp_prod.store(new, Ordering::Relaxed);
        // Orders: the producer store before the rsp_event load (xen_mb).
        fence(Ordering::SeqCst);
        let event = hdr.rsp_event.load(Ordering::Relaxed);
        let notify = new.wrapping_sub(event) < new.wrapping_sub(old);
        self.rsp_prod = new;
        if notify {
            self.stats.notifies += 1;
        } else {
            self.stats.notifies_held_off += 1;
        }
        notify
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: if no request is waiting, asks the
    /// front end to notify on the next one, then looks again. `true` means
    /// there is a request (or a bad index) to take.
    #[doc(alias = "RING_FINAL_CHECK_FOR_REQUESTS")]
    pub fn final_check(&self) -> bool {
        let hdr = self.header();
        if hdr.req_prod.load(Ordering::Acquire) != self.req_cons {
            return true;
        }
        hdr.req_event
            .store(self.req_cons.wrapping_add(1), Ordering::Relaxed);
        // Orders: the req_event store before the req_prod re-read (xen_mb).
        fence(Ordering::SeqCst);
        hdr.req_prod.load(Ordering::Acquire) != self.req_cons
    }

    /// The next request, waiting on `channel` (the port the front end
    /// notifies): take; else register the waker; then the final check.
    pub fn poll_request(
        &mut self,
        cx: &mut Context<'_>,
        channel: &EventChannel,
    ) -> Poll<Result<P::Request, BackRingError>> {
        for _ in 0..POLL_ROUNDS_MAX {
            if let Some(r) = self.take_request().transpose() {
                return Poll::Ready(r);
            }
            if channel.poll_wait(cx).is_ready() {
                continue;
            }
            if self.in_service() >= self.size || !self.final_check() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Waits for the next request (see [`poll_request`](Self::poll_request)).
    ///
    /// # Cancellation
    ///
    /// Cancel-safe: a request is only consumed by the poll that returns it.
    pub fn next_request<'a>(&'a mut self, channel: &'a EventChannel) -> NextRequest<'a, P> {
        NextRequest {
            ring: self,
            channel,
        }
    }
}

/// The future of [`BackRing::next_request`].
#[must_use = "futures do nothing unless polled"]
pub struct NextRequest<'a, P: BackProtocol> {
    ring: &'a mut BackRing<P>,
    channel: &'a EventChannel,
}

impl<P: BackProtocol> fmt::Debug for NextRequest<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextRequest")
            .field("ring", &self.ring)
            .finish()
    }
}

impl<P: BackProtocol> Future for NextRequest<'_, P> {
    type Output = Result<P::Request, BackRingError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.ring.poll_request(cx, this.channel)
    }
}

#[cfg(test)]
mod test {
    use alloc::vec::Vec;

    use super::*;
    use crate::abi::ring::{SRING_REQ_EVENT, SRING_REQ_PROD, SRING_RSP_EVENT, SRING_RSP_PROD};
    use crate::grant::Access;
    use crate::grant::GrantedPage;
    use crate::sim::echo::{echo, EchoProtocol, EchoRequest, ECHO_PAYLOAD_MAX};
    use crate::sim::{DomainConfig, SimConfig, SimXen};

    /// A hostile front end: a granted page whose indices the test writes.
    fn setup() -> (SimXen, GrantedPage, BackRing<EchoProtocol>) {
        let sim = SimXen::new(SimConfig::new(1).quiet());
        let guest = sim.create_domain(DomainConfig::new("front")).id();
        let g = sim.guest(guest);
        let page = g.share_page(DomId::DOM0, Access::ReadWrite).unwrap();
        let map = sim
            .dom0()
            .map_grant(guest, page.grant_ref(), false)
            .unwrap();
        let ring = BackRing::attach(map);
        (sim, page, ring)
    }

    fn put_request(page: &GrantedPage, idx: u32, id: u16) {
        let req = EchoRequest {
            id,
            len: 1,
            payload: [id as u8; ECHO_PAYLOAD_MAX],
        };
        let mut slot = [0u8; 64];
        EchoProtocol::write_request(&req, &mut slot);
        let at = SRING_HEADER_SIZE + (idx as usize % 32) * 64;
        page.mem().write(at, &slot);
    }

    fn set(page: &GrantedPage, off: usize, v: u32) {
        page.mem().atomic_u32(off).store(v, Ordering::SeqCst);
    }

    fn get(page: &GrantedPage, off: usize) -> u32 {
        page.mem().atomic_u32(off).load(Ordering::SeqCst)
    }

    #[test]
    fn takes_published_requests_in_order_and_answers_them() {
        let (_sim, page, mut ring) = setup();
        assert_eq!(ring.size(), 32);
        for i in 0..3 {
            put_request(&page, i, i as u16 + 10);
        }
        set(&page, SRING_REQ_PROD, 3);
        let ids: Vec<u16> = core::iter::from_fn(|| ring.take_request().unwrap())
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [10, 11, 12]);
        assert_eq!(ring.in_service(), 3);
        for id in ids {
            ring.push_response(echo(&EchoRequest {
                id,
                len: 0,
                payload: [0; ECHO_PAYLOAD_MAX],
            }));
        }
        // Not visible until pushed; the front end asked (rsp_event = 1).
        assert_eq!(get(&page, SRING_RSP_PROD), 0);
        set(&page, SRING_RSP_EVENT, 1);
        assert!(ring.push_responses());
        assert_eq!(get(&page, SRING_RSP_PROD), 3);
    }

    #[test]
    fn a_producer_more_than_a_ring_ahead_is_an_error() {
        let (_sim, page, mut ring) = setup();
        set(&page, SRING_REQ_PROD, 33);
        assert_eq!(
            ring.take_request(),
            Err(BackRingError::RequestProducerOutOfRange {
                req_prod: 33,
                req_cons: 0
            })
        );
        // Behind the consumer (wrapped) too.
        set(&page, SRING_REQ_PROD, u32::MAX);
        assert!(ring.take_request().is_err());
    }

    #[test]
    fn never_takes_more_requests_than_response_slots() {
        let (_sim, page, mut ring) = setup();
        for i in 0..32 {
            put_request(&page, i, i as u16);
        }
        set(&page, SRING_REQ_PROD, 32);
        for _ in 0..32 {
            assert!(ring.take_request().unwrap().is_some());
        }
        // A hostile front end publishes one more before any response.
        set(&page, SRING_REQ_PROD, 33);
        assert_eq!(ring.take_request(), Ok(None));
        assert_eq!(ring.in_service(), 32);
    }

    #[test]
    fn notify_hold_off_and_final_check_follow_io_ring_h() {
        let (_sim, page, mut ring) = setup();
        put_request(&page, 0, 1);
        set(&page, SRING_REQ_PROD, 1);
        let r = ring.take_request().unwrap().unwrap();
        ring.push_response(echo(&r));
        // The front end wants a notification only past response 5.
        set(&page, SRING_RSP_EVENT, 5);
        assert!(!ring.push_responses());
        assert_eq!(ring.stats().notifies_held_off, 1);
        // Final check with nothing pending re-arms req_event past req_cons.
        assert!(!ring.final_check());
        assert_eq!(get(&page, SRING_REQ_EVENT), 2);
        // A request published meanwhile is seen.
        put_request(&page, 1, 2);
        set(&page, SRING_REQ_PROD, 2);
        assert!(ring.final_check());
    }

    #[test]
    #[should_panic(expected = "response without a request")]
    fn a_response_without_a_request_is_a_backend_bug() {
        let (_sim, _page, mut ring) = setup();
        ring.push_response(echo(&EchoRequest {
            id: 0,
            len: 0,
            payload: [0; ECHO_PAYLOAD_MAX],
        }));
    }
}
