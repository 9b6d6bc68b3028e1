//! The front (request-producing) end of an io/ring.h ring.

use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::sync::atomic::{fence, Ordering};
use core::task::{Context, Poll};

use super::{
    RequestId, RingError, RingFull, RingProtocol, RingSetupError, RingStats, SLOT_SIZE_MAX,
};
use crate::abi::ring::{ring_size, RingIdx, SringHeader, SRING_HEADER_SIZE};
use crate::evtchn::{EventChannel, NotifyError};
use crate::grant::{Access, GrantedPage};
use crate::guest::Guest;
use crate::hypervisor::{DomId, GrantRef, PAGE_SIZE};
use crate::page::SharedMem;

/// Rounds of (take, wait, final check) in one poll. Two suffice when the back
/// end behaves (an event is consumed at most once per poll, and a final check
/// that sees work makes the next take return); a back end that moves its
/// producer index back and forth gets a yield instead of a spin.
const POLL_ROUNDS_MAX: usize = 4;

/// A validated response, with the context the driver gave its request.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<R, C> {
    /// The request's id (the ring's, `0..size`).
    pub id: RequestId,
    /// The decoded response (its other fields are still the driver's to
    /// validate).
    pub response: R,
    /// What the driver stored with the request.
    pub context: C,
}

/// The front end of a shared ring over one granted page.
///
/// # State
///
/// Indices are free-running `u32`s compared with wrapping arithmetic:
///
/// ```text
///   rsp_cons <= rsp_prod (back end's) <= req_prod (published) <= req_prod_pvt
///   req_prod_pvt - rsp_cons <= size              (slots in use)
///   outstanding ids + free ids == size           (ids in use)
/// ```
///
/// `rsp_prod` is the back end's word: it is checked against the others on
/// every read (an `Err`, not an assertion); the rest are ours and asserted.
///
/// # Examples
/// ```
/// use ringlet_xen::evtchn::EventChannel;
/// use ringlet_xen::guest::Guest;
/// use ringlet_xen::hypervisor::DomId;
/// use ringlet_xen::ring::{FrontRing, RingProtocol};
///
/// /// A made-up protocol: 8-byte slots holding an id and a value.
/// struct Echo;
///
/// impl RingProtocol for Echo {
///     type Request = (u16, u32);
///     type Response = (u16, u32);
///     const SLOT_SIZE: usize = 8;
///     fn write_request(r: &(u16, u32), slot: &mut [u8]) {
///         slot[0..2].copy_from_slice(&r.0.to_le_bytes());
///         slot[4..8].copy_from_slice(&r.1.to_le_bytes());
///     }
///     fn read_response(slot: &[u8]) -> (u16, u32) {
///         let v = [slot[4], slot[5], slot[6], slot[7]];
///         (u16::from_le_bytes([slot[0], slot[1]]), u32::from_le_bytes(v))
///     }
///     fn response_id(r: &(u16, u32)) -> u64 {
///         u64::from(r.0)
///     }
/// }
///
/// async fn echo(guest: &Guest, backend: DomId) -> Result<u32, Box<dyn core::error::Error>> {
///     let ch = EventChannel::alloc_unbound(guest, backend)?;
///     let mut ring: FrontRing<Echo, u32> = FrontRing::create(guest, backend)?;
///     assert_eq!(ring.size(), 256); // (4096 - 64) / 8 = 504, rounded down
///     // ... publish ring.grant_ref() and ch.port() in xenstore, wait for the back end ...
///     ring.push_request(42, |id| (id.0, 42)).map_err(|_| "ring full")?;
///     ring.push_and_notify(&ch)?;
///     let done = ring.next_response(&ch).await?;
///     assert_eq!(done.context, 42); // what we stored with the request
///     Ok(done.response.1)
/// }
/// ```
pub struct FrontRing<P: RingProtocol, C> {
    page: GrantedPage,
    size: u32,
    req_prod_pvt: RingIdx,
    req_prod: RingIdx,
    rsp_cons: RingIdx,
    outstanding: Vec<Option<C>>,
    free_ids: Vec<u16>,
    stats: RingStats,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: RingProtocol, C> fmt::Debug for FrontRing<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("gref", &self.page.grant_ref())
            .field("size", &self.size)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod", &self.req_prod)
            .field("rsp_cons", &self.rsp_cons)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<P: RingProtocol, C> FrontRing<P, C> {
    /// Allocates a page, grants it read-write to `backend`, and initialises
    /// the ring in it. Publish [`grant_ref`](Self::grant_ref) in xenstore.
    ///
    /// # Errors
    /// [`RingSetupError`] if no page or grant ref is left.
    pub fn create(guest: &Guest, backend: DomId) -> Result<Self, RingSetupError> {
        let page = guest.alloc_page()?;
        let page = GrantedPage::new(page, backend, Access::ReadWrite)
            .map_err(|(_, e)| RingSetupError::Grant(e))?;
        Ok(Self::new(page))
    }

    /// Initialises a ring in `page` (`SHARED_RING_INIT` + `FRONT_RING_INIT`):
    /// all indices 0, both event indices 1.
    pub fn new(page: GrantedPage) -> Self {
        Self::new_at(page, 0)
    }

    /// [`new`](Self::new) with every index starting at `start` (the unit
    /// tests and the `front_ring_response` fuzz target use it to cross the
    /// `u32` wrap). Not part of the API: a real ring starts at 0.
    #[doc(hidden)]
    pub fn new_at(page: GrantedPage, start: RingIdx) -> Self {
        const {
            assert!(P::SLOT_SIZE > 0 && P::SLOT_SIZE <= SLOT_SIZE_MAX);
            assert!(ring_size(P::SLOT_SIZE, PAGE_SIZE) >= 1);
        }
        let size = ring_size(P::SLOT_SIZE, PAGE_SIZE);
        let mem = page.mem();
        let hdr: &SringHeader = mem.view(0);
        mem.fill(0, PAGE_SIZE, 0);
        hdr.req_prod.store(start, Ordering::Relaxed);
        hdr.rsp_prod.store(start, Ordering::Relaxed);
        hdr.req_event
            .store(start.wrapping_add(1), Ordering::Relaxed);
        hdr.rsp_event
            .store(start.wrapping_add(1), Ordering::Relaxed);
        // Orders: the initialised header before anything we publish later.
        fence(Ordering::Release);
        let mut outstanding = Vec::with_capacity(size as usize);
        outstanding.resize_with(size as usize, || None);
        FrontRing {
            page,
            size,
            req_prod_pvt: start,
            req_prod: start,
            rsp_cons: start,
            outstanding,
            free_ids: (0..size as u16).rev().collect(),
            stats: RingStats::default(),
            _protocol: PhantomData,
        }
    }

    fn mem(&self) -> SharedMem<'_> {
        self.page.mem()
    }

    fn header(&self) -> &SringHeader {
        self.page.mem().view(0)
    }

    /// The grant of the ring page (`ring-ref`, `tx-ring-ref`, ...).
    pub fn grant_ref(&self) -> GrantRef {
        self.page.grant_ref()
    }

    /// The ring page.
    pub fn page(&self) -> &GrantedPage {
        &self.page
    }

    /// Slots in the ring (`RING_SIZE`).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests that can be pushed now (free slots and free ids).
    #[doc(alias = "RING_FREE_REQUESTS")]
    pub fn free_requests(&self) -> u32 {
        let slots = self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        slots.min(self.free_ids.len() as u32)
    }

    /// Requests whose response has not arrived.
    pub fn in_flight(&self) -> u32 {
        self.size - self.free_ids.len() as u32
    }

    /// The ring's counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    fn check_invariants(&self) {
        let used = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        assert!(
            used <= self.size,
            "ring: {used} slots in use > size {}",
            self.size
        );
        assert!(
            self.req_prod.wrapping_sub(self.rsp_cons) <= used,
            "ring: published requests beyond the private producer"
        );
        assert!(
            self.free_ids.len() <= self.size as usize,
            "ring: too many free ids"
        );
    }

    /// Writes a request into the next free slot (not yet visible to the back
    /// end: see [`push_requests`](Self::push_requests)). `build` gets the id
    /// to put in the request; `context` comes back with its response.
    ///
    /// # Errors
    /// [`RingFull`] (with `context`) if no slot or id is free.
    pub fn push_request(
        &mut self,
        context: C,
        build: impl FnOnce(RequestId) -> P::Request,
    ) -> Result<RequestId, RingFull<C>> {
        if self.free_requests() == 0 {
            return Err(RingFull(context));
        }
        let id = self
            .free_ids
            .pop()
            .expect("free_requests counted a free id");
        let slot_ref = &mut self.outstanding[usize::from(id)];
        assert!(slot_ref.is_none(), "ring: free id {id} is outstanding");
        *slot_ref = Some(context);
        let req = build(RequestId(id));
        let mut buf = [0u8; SLOT_SIZE_MAX];
        let slot = &mut buf[..P::SLOT_SIZE];
        P::write_request(&req, slot);
        let idx = (self.req_prod_pvt & (self.size - 1)) as usize;
        self.mem()
            .write(SRING_HEADER_SIZE + idx * P::SLOT_SIZE, slot);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        self.stats.requests += 1;
        self.check_invariants();
        Ok(RequestId(id))
    }

    /// Publishes the requests written so far and says whether the back end
    /// must be notified (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`): only if
    /// its `req_event` lies among the requests just published.
    #[doc(alias = "RING_PUSH_REQUESTS_AND_CHECK_NOTIFY")]
    pub fn push_requests(&mut self) -> bool {
        let old = self.req_prod;
        let new = self.req_prod_pvt;
        if old == new {
            return false;
        }
        let hdr = self.header();
        // Orders: the request slots written above before the producer index
        // (xen_wmb): the back end must not see the index before the slots.
        fence(Ordering::Release);
        hdr.req_prod.store(new, Ordering::Relaxed);
        // Orders: the producer index store before the req_event load
        // (xen_mb): otherwise we could miss a back end going idle.
        fence(Ordering::SeqCst);
        let event = hdr.req_event.load(Ordering::Relaxed);
        let notify = new.wrapping_sub(event) < new.wrapping_sub(old);
        self.req_prod = new;
        self.stats.pushes += 1;
        if notify {
            self.stats.notifies += 1;
        } else {
            self.stats.notifies_held_off += 1;
        }
        self.check_invariants();
        notify
    }

    /// [`push_requests`](Self::push_requests), then notifies `channel` if
    /// needed. Returns whether it notified.
    ///
    /// # Errors
    /// [`NotifyError`] if the notification failed.
    pub fn push_and_notify(&mut self, channel: &EventChannel) -> Result<bool, NotifyError> {
        if self.push_requests() {
            channel.notify()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Takes the next response if one is there, without waiting and without
    /// the final check. The slot is copied out once and validated.
    ///
    /// # Errors
    /// [`RingError::ProducerOutOfRange`] (nothing consumed) or
    /// [`RingError::UnknownId`] (the slot was consumed, the response dropped).
    pub fn take_response(&mut self) -> Result<Option<Response<P::Response, C>>, RingError> {
        // Acquire (xen_rmb): the slot reads below happen after this load.
        let rsp_prod = self.header().rsp_prod.load(Ordering::Acquire);
        let avail = rsp_prod.wrapping_sub(self.rsp_cons);
        let published = self.req_prod.wrapping_sub(self.rsp_cons);
        if avail > published {
            self.stats.bad_producer += 1;
            return Err(RingError::ProducerOutOfRange {
                rsp_prod,
                rsp_cons: self.rsp_cons,
                req_prod: self.req_prod,
            });
        }
        if avail == 0 {
            return Ok(None);
        }
        let idx = (self.rsp_cons & (self.size - 1)) as usize;
        let mut buf = [0u8; SLOT_SIZE_MAX];
        let slot = &mut buf[..P::SLOT_SIZE];
        self.mem()
            .read(SRING_HEADER_SIZE + idx * P::SLOT_SIZE, slot);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        let response = P::read_response(slot);
        let raw_id = P::response_id(&response);
        let context = usize::try_from(raw_id)
            .ok()
            .filter(|&i| i < self.size as usize)
            .and_then(|i| self.outstanding[i].take());
        let r = match context {
            None => {
                self.stats.unknown_ids += 1;
                Err(RingError::UnknownId(raw_id))
            }
            Some(context) => {
                let id = raw_id as u16;
                self.free_ids.push(id);
                self.stats.responses += 1;
                Ok(Some(Response {
                    id: RequestId(id),
                    response,
                    context,
                }))
            }
        };
        self.check_invariants();
        r
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: if no response is waiting, asks the
    /// back end to notify on the next one (`rsp_event = rsp_cons + 1`), then
    /// looks again. `true` means a response (or a bad producer index) is
    /// there to take.
    #[doc(alias = "RING_FINAL_CHECK_FOR_RESPONSES")]
    pub fn final_check(&self) -> bool {
        let hdr = self.header();
        if hdr.rsp_prod.load(Ordering::Acquire) != self.rsp_cons {
            return true;
        }
        hdr.rsp_event
            .store(self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
        // Orders: the rsp_event store before the rsp_prod re-read (xen_mb),
        // so either the back end sees our rsp_event or we see its response.
        fence(Ordering::SeqCst);
        hdr.rsp_prod.load(Ordering::Acquire) != self.rsp_cons
    }

    /// The next validated response, waiting on `channel` (the port the back
    /// end notifies): take; else register the waker; then the final check;
    /// only then Pending.
    ///
    /// The poll registers `cx`'s waker in `channel`'s handle (one waker per
    /// handle): rings that share a port and are polled from different tasks
    /// need one handle each ([`EventChannel::try_clone`]).
    pub fn poll_response(
        &mut self,
        cx: &mut Context<'_>,
        channel: &EventChannel,
    ) -> Poll<Result<Response<P::Response, C>, RingError>> {
        for _ in 0..POLL_ROUNDS_MAX {
            if let Some(r) = self.take_response().transpose() {
                return Poll::Ready(r);
            }
            if channel.poll_wait(cx).is_ready() {
                continue;
            }
            if !self.final_check() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Waits for the next validated response (see
    /// [`poll_response`](Self::poll_response)).
    ///
    /// # Cancellation
    /// Cancel-safe: a response is only consumed by the poll that returns it.
    pub fn next_response<'a>(&'a mut self, channel: &'a EventChannel) -> NextResponse<'a, P, C> {
        NextResponse {
            ring: self,
            channel,
        }
    }

    /// Tears the ring down: the page (drop it to end its grant) and the
    /// contexts of requests that never got a response (their grants are the
    /// driver's to end, once the back end has disconnected).
    pub fn into_parts(self) -> (GrantedPage, Vec<C>) {
        let contexts = self.outstanding.into_iter().flatten().collect();
        (self.page, contexts)
    }
}

/// The future of [`FrontRing::next_response`].
#[must_use = "futures do nothing unless polled"]
pub struct NextResponse<'a, P: RingProtocol, C> {
    ring: &'a mut FrontRing<P, C>,
    channel: &'a EventChannel,
}

impl<P: RingProtocol, C> fmt::Debug for NextResponse<'_, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextResponse")
            .field("ring", &self.ring)
            .finish()
    }
}

impl<P: RingProtocol, C> Future for NextResponse<'_, P, C> {
    type Output = Result<Response<P::Response, C>, RingError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.ring.poll_response(cx, this.channel)
    }
}
