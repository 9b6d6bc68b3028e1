//! The blkfront data path: block requests on a blkif ring, each a future
//! completed by its id.
//!
//! # A request's life
//!
//! ```text
//!   1. submit: pages from the pool, filled (write), granted to the backend;
//!      request written into a ring slot; pushed (notify if the backend asked)
//!   2. in flight: entry Waiting(waker) in `requests`, pages held by the ring
//!   3. response: copied out of the ring once, checked (id with generation,
//!      operation, status); the entry becomes Done(status, pages) and its
//!      waker is woken — or, if its future was dropped (Abandoned), the
//!      pages are released at once
//!   4. collect: the future copies the data out (read), ends the grants and
//!      returns the pages to the pool
//! ```
//!
//! Grants end only in 3 (abandoned) or 4, i.e. after the backend answered;
//! a page whose grant cannot be ended (still mapped) is never reused
//! ([`GrantedPage`]'s drop defers it).
//!
//! # Who reads the ring
//!
//! There is no blkfront task: whichever request future is polled drives the
//! ring (takes every response there, wakes the owners) and, if it must wait,
//! leaves its waker on the event channel — it is the *driver*. A future that
//! completes or is dropped wakes another waiting one (it may have consumed
//! responses and their event since the last final check), so some future
//! always watches the channel while requests are in flight.
//!
//! # Failure
//!
//! A response that breaks the protocol (unknown id, wrong operation, unknown
//! status, producer index out of range) or a failed notification marks the
//! device failed: every request in flight and every later one fails. The
//! pages of requests still in the ring stay granted until the device is
//! dropped.
#![deny(unsafe_code)]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::grant::{Access, GrantedPage};
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::{DomId, PAGE_SIZE};
use ringlet_xen::page::OwnedPage;
use ringlet_xen::ring::{FrontRing, RingError, RingProtocol};

use super::config::{BackendConfig, FlushMethod};
use super::response::{self, Status};
use crate::blkif::{
    self, IndirectRequest, Request, Segment, BLKIF_SECTOR_SIZE, OP_FLUSH_DISKCACHE, OP_INDIRECT,
    OP_READ, OP_WRITE, OP_WRITE_BARRIER, SEGMENTS_PER_INDIRECT_PAGE, SEGMENTS_PER_REQUEST_MAX,
    SLOT_SIZE,
};
use crate::block::{
    check_request, BlockDevice, BlockInfo, FlushError, ProtocolError, ReadError, WriteError,
};

/// Free pages kept for reuse; more are returned to the guest's allocator.
pub const POOL_PAGES_MAX: usize = 256;

/// The front ring blkfront uses.
pub type BlkifRing = FrontRing<Blkif, Submitted>;

/// blkif over the shared front ring: requests arrive encoded, responses are
/// decoded from the slot's first 16 bytes, and the ring sees the low 16 bits
/// of the id (the generation above them is checked by blkfront).
#[derive(Debug)]
pub enum Blkif {}

impl RingProtocol for Blkif {
    type Request = [u8; SLOT_SIZE];
    type Response = blkif::Response;
    const SLOT_SIZE: usize = SLOT_SIZE;

    fn write_request(req: &[u8; SLOT_SIZE], slot: &mut [u8]) {
        slot.copy_from_slice(req);
    }

    fn read_response(slot: &[u8]) -> blkif::Response {
        let mut b = [0u8; blkif::RESPONSE_SIZE];
        b.copy_from_slice(&slot[..blkif::RESPONSE_SIZE]);
        blkif::Response::decode(&b)
    }

    fn response_id(rsp: &blkif::Response) -> u64 {
        response::ring_id(rsp.id)
    }
}

/// What the ring holds for a request in flight: its pages (opaque).
#[derive(Debug)]
pub struct Submitted {
    generation: u64,
    ops: [u8; 2],
    pages: Vec<GrantedPage>,
    indirect: Vec<GrantedPage>,
}

#[derive(Debug)]
enum Entry {
    Waiting(Option<Waker>),
    Done(Status, Vec<GrantedPage>),
    Abandoned,
}

/// Why the device stopped working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Protocol(ProtocolError),
    Disconnected,
}

/// Counters of a [`Blkfront`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkfrontStats {
    /// Ring requests sent.
    pub requests: u64,
    /// Ring requests that used indirect descriptors.
    pub indirect_requests: u64,
    /// Responses with `BLKIF_RSP_ERROR` or `EOPNOTSUPP`.
    pub error_responses: u64,
    /// Responses for requests whose future had been dropped.
    pub abandoned: u64,
    /// The most ring requests in flight at once.
    pub max_in_flight: u32,
    /// Pages allocated from the guest (not taken from the pool).
    pub pages_allocated: u64,
}

struct State {
    ring: FrontRing<Blkif, Submitted>,
    generation: u64,
    requests: BTreeMap<u64, Entry>,
    slot_waiters: VecDeque<Waker>,
    driver: Option<Waker>,
    failed: Option<Failure>,
    pool: Vec<OwnedPage>,
    wake: Vec<Waker>,
    stats: BlkfrontStats,
}

/// A connected Xen block device.
///
/// Built from its parts with [`Blkfront::from_parts`] once the xenbus
/// handshake has connected ring and event channel.
pub struct Blkfront {
    guest: Guest,
    backend: DomId,
    config: BackendConfig,
    channel: EventChannel,
    backend_path: RefCell<Option<alloc::string::String>>,
    state: RefCell<State>,
}

impl fmt::Debug for Blkfront {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Blkfront")
            .field("backend", &self.backend)
            .field("config", &self.config)
            .field("in_flight", &st.ring.in_flight())
            .field("failed", &st.failed)
            .field("stats", &st.stats)
            .finish()
    }
}

impl Blkfront {
    /// A device over a fresh ring (its page granted to `backend` and
    /// published as `ring-ref`), the event `channel` the backend binds to,
    /// and the backend's validated `config`.
    pub fn from_parts(
        guest: Guest,
        backend: DomId,
        ring: BlkifRing,
        channel: EventChannel,
        config: BackendConfig,
    ) -> Blkfront {
        Blkfront {
            guest,
            backend,
            config,
            channel,
            backend_path: RefCell::new(None),
            state: RefCell::new(State {
                ring,
                generation: 0,
                requests: BTreeMap::new(),
                slot_waiters: VecDeque::new(),
                driver: None,
                failed: None,
                pool: Vec::new(),
                wake: Vec::new(),
                stats: BlkfrontStats::default(),
            }),
        }
    }

    pub(crate) fn set_backend_path(&self, path: alloc::string::String) {
        *self.backend_path.borrow_mut() = Some(path);
    }

    /// The backend's xenstore directory, if the device was connected by
    /// the handshake.
    pub fn backend_path(&self) -> Option<alloc::string::String> {
        self.backend_path.borrow().clone()
    }

    /// The backend's configuration.
    pub fn config(&self) -> &BackendConfig {
        &self.config
    }

    /// The backend domain.
    pub fn backend(&self) -> DomId {
        self.backend
    }

    /// The counters.
    pub fn stats(&self) -> BlkfrontStats {
        self.state.borrow().stats
    }

    /// Ring requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.state.borrow().ring.in_flight()
    }

    /// The ring's size: the most requests in flight.
    pub fn ring_size(&self) -> u32 {
        self.state.borrow().ring.size()
    }

    /// Whether the device has failed (protocol error or disconnect).
    pub fn is_failed(&self) -> bool {
        self.state.borrow().failed.is_some()
    }

    /// Marks the device disconnected (the backend left Connected): every
    /// request in flight and later fails with `Disconnected`.
    pub fn disconnect(&self) {
        let mut st = self.state.borrow_mut();
        fail(&mut st, Failure::Disconnected);
        let wake = core::mem::take(&mut st.wake);
        drop(st);
        wake.into_iter().for_each(Waker::wake);
    }

    fn blkif_sector(&self, sector: u64) -> u64 {
        // check_request bounded sector by the device size in bytes.
        sector * u64::from(self.config.sector_size / BLKIF_SECTOR_SIZE as u32)
    }
}

/// What went wrong with a transfer, before mapping to the operation's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XferError {
    Io,
    NotSupported,
    NoResources,
    Failed(Failure),
}

impl From<XferError> for ReadError {
    fn from(e: XferError) -> Self {
        match e {
            XferError::Io | XferError::NotSupported => ReadError::Io,
            XferError::NoResources => ReadError::NoResources,
            XferError::Failed(Failure::Protocol(p)) => ReadError::Protocol(p),
            XferError::Failed(Failure::Disconnected) => ReadError::Disconnected,
        }
    }
}

impl From<XferError> for WriteError {
    fn from(e: XferError) -> Self {
        match e {
            XferError::Io | XferError::NotSupported => WriteError::Io,
            XferError::NoResources => WriteError::NoResources,
            XferError::Failed(Failure::Protocol(p)) => WriteError::Protocol(p),
            XferError::Failed(Failure::Disconnected) => WriteError::Disconnected,
        }
    }
}

impl From<XferError> for FlushError {
    fn from(e: XferError) -> Self {
        match e {
            XferError::Io | XferError::NoResources => FlushError::Io,
            XferError::NotSupported => FlushError::Unsupported,
            XferError::Failed(Failure::Protocol(p)) => FlushError::Protocol(p),
            XferError::Failed(Failure::Disconnected) => FlushError::Disconnected,
        }
    }
}

/// Marks the device failed and queues every waiter's wake.
fn fail(st: &mut State, f: Failure) {
    if st.failed.is_none() {
        st.failed = Some(f);
    }
    for e in st.requests.values_mut() {
        if let Entry::Waiting(w) = e {
            if let Some(w) = w.take() {
                st.wake.push(w);
            }
        }
    }
    st.wake.extend(st.slot_waiters.drain(..));
    st.wake.extend(st.driver.take());
}

/// Ends the grant of a page the backend is done with and keeps the page.
fn release(st: &mut State, page: GrantedPage) {
    match page.end() {
        Ok(owned) if st.pool.len() < POOL_PAGES_MAX => st.pool.push(owned),
        Ok(owned) => drop(owned),
        // Still mapped by the backend: dropping defers the end (never reused).
        Err((page, _)) => drop(page),
    }
}

/// Handles one response the ring validated: checks it against its request
/// and completes or releases the request.
fn dispatch(st: &mut State, id: u16, rsp: blkif::Response, sub: Submitted) {
    let full = response::make_id(sub.generation, id);
    let status = match response::check(&rsp, full, sub.ops) {
        Ok(s) => s,
        Err(e) => {
            // The request is still outstanding at the backend: keep its
            // pages out of reach (drop defers grants still in use).
            drop(sub);
            if let Some(Entry::Waiting(w)) = st.requests.get_mut(&full) {
                st.wake.extend(w.take());
            }
            fail(st, Failure::Protocol(e));
            return;
        }
    };
    if status != Status::Okay {
        st.stats.error_responses += 1;
    }
    for p in sub.indirect {
        release(st, p);
    }
    match st.requests.remove(&full) {
        Some(Entry::Waiting(w)) => {
            st.requests.insert(full, Entry::Done(status, sub.pages));
            st.wake.extend(w);
        }
        Some(Entry::Abandoned) => {
            st.stats.abandoned += 1;
            for p in sub.pages {
                release(st, p);
            }
        }
        Some(Entry::Done(..)) | None => {
            unreachable!("the ring returned a request blkfront does not track")
        }
    }
    st.wake.extend(st.slot_waiters.pop_front());
}

/// One chunk of a transfer in flight.
#[derive(Debug)]
struct Part {
    id: u64,
    offset: usize,
    len: usize,
}

enum Buf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
    Flush,
}

impl Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
            Buf::Flush => 0,
        }
    }
}

/// A read, write or flush: its parts are submitted as ring slots allow and
/// collected as responses arrive.
struct Transfer<'a> {
    dev: &'a Blkfront,
    buf: Buf<'a>,
    sector: u64,
    submitted: usize,
    flush_sent: bool,
    parts: Vec<Part>,
    waker: Option<Waker>,
    error: Option<XferError>,
}

impl<'a> Transfer<'a> {
    fn new(dev: &'a Blkfront, sector: u64, buf: Buf<'a>) -> Transfer<'a> {
        Transfer {
            dev,
            buf,
            sector,
            submitted: 0,
            flush_sent: false,
            parts: Vec::new(),
            waker: None,
            error: None,
        }
    }

    fn all_submitted(&self) -> bool {
        match self.buf {
            Buf::Flush => self.flush_sent,
            _ => self.submitted == self.buf.len(),
        }
    }

    /// Collects finished parts (copying read data out). Returns whether all
    /// parts submitted so far are done.
    fn collect(&mut self, st: &mut State, cx: &mut Context<'_>) {
        let mut i = 0;
        while i < self.parts.len() {
            let id = self.parts[i].id;
            match st.requests.get_mut(&id) {
                Some(Entry::Waiting(w)) => {
                    match w {
                        Some(old) if old.will_wake(cx.waker()) => {}
                        _ => *w = Some(cx.waker().clone()),
                    }
                    i += 1;
                }
                Some(Entry::Done(..)) => {
                    let Some(Entry::Done(status, pages)) = st.requests.remove(&id) else {
                        unreachable!()
                    };
                    let part = self.parts.swap_remove(i);
                    match status {
                        Status::Okay => {
                            if let Buf::Read(buf) = &mut self.buf {
                                let dst = &mut buf[part.offset..part.offset + part.len];
                                for (chunk, page) in dst.chunks_mut(PAGE_SIZE).zip(&pages) {
                                    page.mem().read(0, chunk);
                                }
                            }
                        }
                        Status::Error => self.error = self.error.or(Some(XferError::Io)),
                        Status::NotSupported => {
                            self.error = self.error.or(Some(XferError::NotSupported))
                        }
                    }
                    for p in pages {
                        release(st, p);
                    }
                }
                Some(Entry::Abandoned) | None => {
                    unreachable!("a transfer's part is tracked until collected")
                }
            }
        }
    }

    /// Takes a page from the pool or the allocator.
    fn page(&self, st: &mut State) -> Result<OwnedPage, XferError> {
        if let Some(p) = st.pool.pop() {
            return Ok(p);
        }
        st.stats.pages_allocated += 1;
        self.dev
            .guest
            .alloc_page()
            .map_err(|_| XferError::NoResources)
    }

    fn grant(
        &self,
        st: &mut State,
        page: OwnedPage,
        access: Access,
    ) -> Result<GrantedPage, XferError> {
        GrantedPage::new(page, self.dev.backend, access).map_err(|(page, _)| {
            if st.pool.len() < POOL_PAGES_MAX {
                st.pool.push(page);
            }
            XferError::NoResources
        })
    }

    /// Builds and writes the next part's request into the ring (not pushed).
    fn submit_one(&mut self, st: &mut State) -> Result<(), XferError> {
        let dev = self.dev;
        st.generation += 1;
        let generation = st.generation;
        let (slot, sub, len) = match &self.buf {
            Buf::Flush => {
                let op = match dev.config.flush {
                    FlushMethod::FlushDiskcache => OP_FLUSH_DISKCACHE,
                    FlushMethod::Barrier => OP_WRITE_BARRIER,
                    FlushMethod::None => unreachable!("no flush request without a flush method"),
                };
                let req = Request {
                    operation: op,
                    ..Request::default()
                };
                (
                    Slot::Direct(req),
                    Submitted {
                        generation,
                        ops: [op; 2],
                        pages: Vec::new(),
                        indirect: Vec::new(),
                    },
                    0,
                )
            }
            Buf::Read(_) | Buf::Write(_) => {
                let write = matches!(self.buf, Buf::Write(_));
                let op = if write { OP_WRITE } else { OP_READ };
                let access = if write {
                    Access::ReadOnly
                } else {
                    Access::ReadWrite
                };
                let remaining = self.buf.len() - self.submitted;
                let len = remaining.min(dev.config.segments_max as usize * PAGE_SIZE);
                let npages = len.div_ceil(PAGE_SIZE);
                let mut pages = Vec::with_capacity(npages);
                let mut segs = Vec::with_capacity(npages);
                for i in 0..npages {
                    let plen = (len - i * PAGE_SIZE).min(PAGE_SIZE);
                    let page = match self.page(st) {
                        Ok(p) => p,
                        Err(e) => {
                            pages.into_iter().for_each(|p| release(st, p));
                            return Err(e);
                        }
                    };
                    if let Buf::Write(data) = &self.buf {
                        let at = self.submitted + i * PAGE_SIZE;
                        page.mem().write(0, &data[at..at + plen]);
                    }
                    let granted = match self.grant(st, page, access) {
                        Ok(g) => g,
                        Err(e) => {
                            pages.into_iter().for_each(|p| release(st, p));
                            return Err(e);
                        }
                    };
                    segs.push(Segment {
                        gref: granted.grant_ref().0,
                        first_sect: 0,
                        last_sect: (plen / BLKIF_SECTOR_SIZE - 1) as u8,
                        _pad: 0,
                    });
                    pages.push(granted);
                }
                let sector =
                    dev.blkif_sector(self.sector) + (self.submitted / BLKIF_SECTOR_SIZE) as u64;
                if npages <= SEGMENTS_PER_REQUEST_MAX {
                    let mut req = Request {
                        operation: op,
                        nr_segments: npages as u8,
                        sector_number: sector,
                        ..Request::default()
                    };
                    req.seg[..npages].copy_from_slice(&segs);
                    (
                        Slot::Direct(req),
                        Submitted {
                            generation,
                            ops: [op; 2],
                            pages,
                            indirect: Vec::new(),
                        },
                        len,
                    )
                } else {
                    // Indirect: the segments go into granted pages of their own.
                    let mut indirect = Vec::new();
                    let mut req = IndirectRequest {
                        operation: OP_INDIRECT,
                        indirect_op: op,
                        nr_segments: npages as u16,
                        sector_number: sector,
                        ..IndirectRequest::default()
                    };
                    for (i, chunk) in segs.chunks(SEGMENTS_PER_INDIRECT_PAGE).enumerate() {
                        let page = match self.page(st) {
                            Ok(p) => p,
                            Err(e) => {
                                pages
                                    .into_iter()
                                    .chain(indirect)
                                    .for_each(|p| release(st, p));
                                return Err(e);
                            }
                        };
                        for (j, s) in chunk.iter().enumerate() {
                            page.mem().write(j * 8, &s.encode());
                        }
                        let granted = match self.grant(st, page, Access::ReadOnly) {
                            Ok(g) => g,
                            Err(e) => {
                                pages
                                    .into_iter()
                                    .chain(indirect)
                                    .for_each(|p| release(st, p));
                                return Err(e);
                            }
                        };
                        req.indirect_grefs[i] = granted.grant_ref().0;
                        indirect.push(granted);
                    }
                    st.stats.indirect_requests += 1;
                    (
                        Slot::Indirect(req),
                        Submitted {
                            generation,
                            ops: [OP_INDIRECT, op],
                            pages,
                            indirect,
                        },
                        len,
                    )
                }
            }
        };
        let pushed = st.ring.push_request(sub, |rid| {
            let id = response::make_id(generation, rid.0);
            match slot {
                Slot::Direct(mut r) => {
                    r.id = id;
                    r.encode()
                }
                Slot::Indirect(mut r) => {
                    r.id = id;
                    r.encode()
                }
            }
        });
        let rid = match pushed {
            Ok(rid) => rid,
            Err(full) => {
                // Callers check for a free slot first; give the pages back.
                let sub = full.0;
                sub.pages
                    .into_iter()
                    .chain(sub.indirect)
                    .for_each(|p| release(st, p));
                return Err(XferError::NoResources);
            }
        };
        let id = response::make_id(generation, rid.0);
        st.requests.insert(id, Entry::Waiting(self.waker.clone()));
        st.stats.requests += 1;
        st.stats.max_in_flight = st.stats.max_in_flight.max(st.ring.in_flight());
        self.parts.push(Part {
            id,
            offset: self.submitted,
            len,
        });
        self.submitted += len;
        if matches!(self.buf, Buf::Flush) {
            self.flush_sent = true;
        }
        Ok(())
    }

    /// Passes the driver role on when this transfer stops being polled.
    ///
    /// It may have taken responses (and with them the event that announced
    /// them) since the last final check, so the ring may hold responses no
    /// one was told about, and `rsp_event` may lie behind: another waiting
    /// transfer must poll the ring (take, register, final check). It is
    /// woken unless this transfer's own poll registered last and nothing is
    /// left in flight.
    fn hand_off(&self, st: &mut State) {
        st.driver = None;
        let me = self.waker.as_ref();
        let next = st.requests.values().find_map(|e| match e {
            Entry::Waiting(Some(w)) if me.is_none_or(|m| !m.will_wake(w)) => Some(w.clone()),
            _ => None,
        });
        match next {
            Some(w) => st.wake.push(w),
            None => st.wake.extend(st.slot_waiters.pop_front()),
        }
    }

    /// Abandons the parts still in flight (their pages are released when
    /// the backend answers) and finished ones not yet collected.
    fn abandon(&mut self, st: &mut State) {
        for part in self.parts.drain(..) {
            match st.requests.remove(&part.id) {
                Some(Entry::Waiting(_)) => {
                    if st.failed.is_none() {
                        st.requests.insert(part.id, Entry::Abandoned);
                    }
                }
                Some(Entry::Done(_, pages)) => pages.into_iter().for_each(|p| release(st, p)),
                Some(Entry::Abandoned) | None => {}
            }
        }
    }

    fn poll_inner(&mut self, st: &mut State, cx: &mut Context<'_>) -> Poll<Result<(), XferError>> {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
        for _ in 0..st.ring.size() as usize + 2 {
            if let Some(f) = st.failed {
                return Poll::Ready(Err(XferError::Failed(f)));
            }
            self.collect(st, cx);
            if let Some(e) = self.error {
                return Poll::Ready(Err(e));
            }
            let mut wrote = false;
            while !self.all_submitted() {
                if st.ring.free_requests() == 0 {
                    if !st.slot_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        st.slot_waiters.push_back(cx.waker().clone());
                    }
                    break;
                }
                self.submit_one(st)?;
                wrote = true;
            }
            if wrote && st.ring.push_and_notify(&self.dev.channel).is_err() {
                fail(st, Failure::Disconnected);
                continue;
            }
            if self.all_submitted() && self.parts.is_empty() {
                return Poll::Ready(Ok(()));
            }
            match st.ring.poll_response(cx, &self.dev.channel) {
                Poll::Ready(Ok(r)) => dispatch(st, r.id.0, r.response, r.context),
                Poll::Ready(Err(RingError::ProducerOutOfRange { .. })) => {
                    fail(st, Failure::Protocol(ProtocolError::ProducerOverrun))
                }
                Poll::Ready(Err(_)) => fail(st, Failure::Protocol(ProtocolError::UnknownId)),
                Poll::Pending => {
                    st.driver = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
        // Many responses in one poll: yield, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

enum Slot {
    Direct(Request),
    Indirect(IndirectRequest),
}

impl Future for Transfer<'_> {
    type Output = Result<(), XferError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let dev = this.dev;
        let mut st = dev.state.borrow_mut();
        let r = this.poll_inner(&mut st, cx);
        if r.is_ready() {
            this.abandon(&mut st);
            this.hand_off(&mut st);
        }
        let wake = core::mem::take(&mut st.wake);
        drop(st);
        wake.into_iter().for_each(Waker::wake);
        r
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        let mut st = self.dev.state.borrow_mut();
        self.abandon(&mut st);
        self.hand_off(&mut st);
        let wake = core::mem::take(&mut st.wake);
        drop(st);
        wake.into_iter().for_each(Waker::wake);
    }
}

impl BlockDevice for Blkfront {
    fn info(&self) -> BlockInfo {
        self.config.block_info()
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_request(&self.info(), sector, buf.len(), buf.as_ptr() as usize)?;
        if let Some(f) = self.state.borrow().failed {
            return Err(XferError::Failed(f).into());
        }
        if buf.is_empty() {
            return Ok(());
        }
        Transfer::new(self, sector, Buf::Read(buf))
            .await
            .map_err(ReadError::from)
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), WriteError> {
        check_request(&self.info(), sector, buf.len(), buf.as_ptr() as usize)?;
        if self.config.read_only {
            return Err(WriteError::ReadOnly);
        }
        if let Some(f) = self.state.borrow().failed {
            return Err(XferError::Failed(f).into());
        }
        if buf.is_empty() {
            return Ok(());
        }
        Transfer::new(self, sector, Buf::Write(buf))
            .await
            .map_err(WriteError::from)
    }

    async fn flush(&self) -> Result<(), FlushError> {
        if let Some(f) = self.state.borrow().failed {
            return Err(XferError::Failed(f).into());
        }
        if self.config.flush == FlushMethod::None || self.config.read_only {
            return Ok(());
        }
        Transfer::new(self, 0, Buf::Flush)
            .await
            .map_err(FlushError::from)
    }
}
