//! The async xenstore client: many tasks share one connection over the
//! xenstore ring; requests are matched to replies by id, watch events are
//! routed to their watch by token.
//!
//! # How a request travels
//!
//! ```text
//! task: xs.read(path).await
//!   1. encode (wire::Request) → take a slot (≤ REQUESTS_IN_FLIGHT_MAX,
//!      else wait for one) → req_id → bytes appended to the outbox
//!   2. pump: outbox → req ring (as much as fits), notify the daemon;
//!            rsp ring → whole messages → dispatch:
//!              reply/error → its slot (by req_id), wake its task
//!              watch event → its watch (by token), wake its stream
//!              unknown id  → counted, dropped
//!   3. not done: store the task's waker in its slot, wait on the port
//!      (an event since the last look → pump again)
//! ```
//!
//! There is no reader task: whichever waiting task the port wakes pumps the
//! ring for everybody. The port has one waker slot for this client, so when
//! a task stops waiting (its reply came, or it was dropped) it wakes one
//! other waiter, which takes over the port ("passes the baton"); nobody is
//! left waiting on a port whose waker belongs to a task that left.
//!
//! # Slot states
//!
//! ```text
//! Free ─(1)→ Waiting ─(2)→ Done ─(3)→ Free
//!               └──(4)→ Abandoned ─(5)→ Free
//! ```
//! 1. a request is submitted; 2. its reply (or error) arrives, or the
//!    connection breaks; 3. the task takes the result; 4. the task drops the
//!    request before the reply; 5. the late reply arrives and is discarded.
//!
//! A connection breaks only when the byte stream cannot be trusted any more
//! (a ring index out of range, a length over `XENSTORE_PAYLOAD_MAX`): every
//! waiting request then fails with [`RequestError::Disconnected`], watches
//! end, and later requests fail at once. A single malformed reply fails only
//! its own request.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::mem::offset_of;
use core::pin::Pin;
use core::str::FromStr;
use core::task::{Context, Poll, Waker};

use futures::Stream;

use super::ring::{ByteRing, Consumer, MessageReader, Producer, RingMemory, MESSAGE_MAX};
use super::wire::{
    self, decode, decode_header, EncodeError, Message, Permission, ProtocolError, Request,
    XenstoreError,
};
use crate::abi::xenbus::{XenbusState, XenbusStateError};
use crate::abi::xs_wire::{
    XenstoreDomainInterface, XsdSockmsg, XsdSockmsgType, XENSTORE_RING_SIZE,
};
use crate::evtchn::EventChannel;
use crate::guest::{DeviceRingError, Guest};
use crate::hypervisor::{DomId, XenError};
use crate::page::SharedMem;

/// Requests the tasks of one client may have in flight at once; more wait
/// for a slot.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 16;

/// Extra slots kept for the requests a drop sends (`XS_UNWATCH`, aborting a
/// transaction), so cleaning up never waits behind the tasks.
pub const CLEANUP_SLOTS: usize = 8;

const SLOTS: usize = REQUESTS_IN_FLIGHT_MAX + CLEANUP_SLOTS;

/// Tasks that may wait for a free slot; one more gets [`RequestError::Busy`].
pub const SLOT_WAITERS_MAX: usize = 64;

/// Watches one client may hold.
pub const WATCHES_MAX: usize = 32;

/// Events queued per watch; later ones are dropped (and counted) until the
/// stream is read. A driver re-reads the state on any event, so a dropped
/// event loses nothing as long as one is queued.
pub const WATCH_EVENTS_QUEUED_MAX: usize = 32;

/// Times [`Xenstore::transaction`] runs its body before giving up on
/// conflicts.
pub const TRANSACTION_RETRIES_MAX: u32 = 16;

/// Watch events one [`Xenstore::wait_until`] handles before giving up (a
/// bound against a peer that changes the node forever).
pub const WAIT_EVENTS_MAX: usize = 1024;

/// Bytes waiting to go into the request ring, at most (one message per slot).
const OUTBOX_MAX: usize = SLOTS * MESSAGE_MAX;

// ---------------------------------------------------------------- errors

/// Why the client could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The toolstack gave no xenstore ring.
    NoRing(XenError),
    /// The xenstore port could not be attached.
    Channel(DeviceRingError),
    /// The ring page's indices are inconsistent.
    Ring(ProtocolError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::NoRing(e) => write!(f, "no xenstore ring: {e}"),
            ConnectError::Channel(e) => write!(f, "xenstore port: {e}"),
            ConnectError::Ring(e) => write!(f, "xenstore ring: {e}"),
        }
    }
}

impl core::error::Error for ConnectError {}

/// Why a xenstore request (read, write, directory, rm, mkdir, permissions,
/// watch, transaction start/end) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The daemon refused it (`ENOENT`, `EACCES`, `EAGAIN`, ...).
    Xenstore(XenstoreError),
    /// The daemon's reply broke the protocol (the request's outcome is
    /// unknown).
    Protocol(ProtocolError),
    /// The arguments cannot be sent (bad path or token, too long).
    Encode(EncodeError),
    /// Too many tasks are already waiting for a request slot.
    Busy,
    /// The connection broke (this error says why); no request will succeed.
    Disconnected(ProtocolError),
    /// The node's value is not what the typed read expected (not UTF-8, not
    /// a number, not a xenbus state).
    BadValue,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Xenstore(e) => e.fmt(f),
            RequestError::Protocol(e) => write!(f, "xenstore protocol error: {e}"),
            RequestError::Encode(e) => write!(f, "xenstore request: {e}"),
            RequestError::Busy => f.write_str("xenstore: too many requests waiting"),
            RequestError::Disconnected(e) => write!(f, "xenstore connection broken: {e}"),
            RequestError::BadValue => f.write_str("xenstore: unexpected value"),
        }
    }
}

impl core::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            RequestError::Xenstore(e) => Some(e),
            RequestError::Protocol(e) | RequestError::Disconnected(e) => Some(e),
            RequestError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EncodeError> for RequestError {
    fn from(e: EncodeError) -> Self {
        RequestError::Encode(e)
    }
}

impl RequestError {
    /// Whether the daemon answered with this error.
    pub fn is(&self, e: XenstoreError) -> bool {
        *self == RequestError::Xenstore(e)
    }
}

/// Why a watch could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchError {
    /// The client already holds [`WATCHES_MAX`] watches.
    TooManyWatches,
    /// The `XS_WATCH` request failed.
    Request(RequestError),
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::TooManyWatches => write!(f, "more than {WATCHES_MAX} xenstore watches"),
            WatchError::Request(e) => write!(f, "xenstore watch: {e}"),
        }
    }
}

impl core::error::Error for WatchError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            WatchError::Request(e) => Some(e),
            WatchError::TooManyWatches => None,
        }
    }
}

/// Why [`Xenstore::wait_until`] (or [`Xenstore::wait_for_state`]) gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// The watch could not be set up.
    Watch(WatchError),
    /// Reading the node failed (other than `ENOENT`, which is "absent").
    Request(RequestError),
    /// The connection broke while waiting (the watch ended).
    WatchEnded,
    /// The node changed [`WAIT_EVENTS_MAX`] times without satisfying the
    /// condition.
    TooManyChanges,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Watch(e) => e.fmt(f),
            WaitError::Request(e) => e.fmt(f),
            WaitError::WatchEnded => f.write_str("xenstore watch ended while waiting"),
            WaitError::TooManyChanges => {
                write!(
                    f,
                    "xenstore node changed {WAIT_EVENTS_MAX} times while waiting"
                )
            }
        }
    }
}

impl core::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            WaitError::Watch(e) => Some(e),
            WaitError::Request(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`Xenstore::transaction`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionError<E> {
    /// The body returned this error; the transaction was aborted.
    Body(E),
    /// Starting or ending the transaction failed (other than a conflict).
    Request(RequestError),
    /// Every one of [`TRANSACTION_RETRIES_MAX`] attempts conflicted.
    TooManyConflicts,
}

impl<E: fmt::Display> fmt::Display for TransactionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::Body(e) => write!(f, "xenstore transaction aborted: {e}"),
            TransactionError::Request(e) => write!(f, "xenstore transaction: {e}"),
            TransactionError::TooManyConflicts => write!(
                f,
                "xenstore transaction conflicted {TRANSACTION_RETRIES_MAX} times"
            ),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for TransactionError<E> {}

// ---------------------------------------------------------------- state

/// Counters of one client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenstoreStats {
    /// Requests sent.
    pub requests: u64,
    /// Replies matched to a request.
    pub replies: u64,
    /// Replies whose id matched no request (dropped).
    pub unknown_replies: u64,
    /// Replies that broke the protocol (their request failed).
    pub malformed_replies: u64,
    /// Watch events routed to a watch.
    pub watch_events: u64,
    /// Watch events for no current watch (dropped).
    pub stray_events: u64,
    /// Malformed watch events (dropped).
    pub malformed_events: u64,
    /// Watch events dropped because their watch's queue was full.
    pub events_dropped: u64,
    /// Cleanup requests (unwatch, abort) not sent for lack of a slot.
    pub cleanups_unsent: u64,
}

#[derive(Debug)]
enum Slot {
    Free,
    Waiting {
        req_id: u32,
        kind: XsdSockmsgType,
        waker: Option<Waker>,
    },
    Done(Result<Vec<u8>, RequestError>),
    Abandoned {
        req_id: u32,
    },
}

#[derive(Debug)]
struct WatchEntry {
    token: String,
    queue: VecDeque<String>,
    dropped: u64,
    waker: Option<Waker>,
}

/// The ring ends and the message buffers.
#[derive(Debug)]
struct Io {
    req: Producer,
    rsp: Consumer,
    reader: MessageReader,
    outbox: VecDeque<u8>,
}

/// Who waits for what.
#[derive(Debug)]
struct Table {
    slots: Vec<Slot>,
    slot_waiters: VecDeque<Waker>,
    next_req_id: u32,
    watches: Vec<Option<WatchEntry>>,
    next_token: u64,
    broken: Option<ProtocolError>,
    stats: XenstoreStats,
}

#[derive(Debug)]
struct Core {
    io: Io,
    table: Table,
}

struct Shared {
    guest: Guest,
    channel: EventChannel,
    core: RefCell<Core>,
}

/// A client of the xenstore daemon, shared by the tasks of one domain.
/// Cloning gives another handle on the same connection.
///
/// # Examples
/// ```
/// use ringlet_xen::xenstore::{RequestError, Xenstore};
///
/// async fn hello(xs: &Xenstore) -> Result<(), RequestError> {
///     let name = xs.read_string("name").await?;
///     xs.write("data/greeting", format!("hello from {name}")).await?;
///     for key in xs.directory("data").await? {
///         log::info!("data/{key}");
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Xenstore {
    shared: Rc<Shared>,
}

impl fmt::Debug for Xenstore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.shared.core.borrow();
        f.debug_struct("Xenstore")
            .field("stats", &core.table.stats)
            .field("broken", &core.table.broken)
            .finish_non_exhaustive()
    }
}

impl RingMemory for SharedMem<'_> {
    fn size(&self) -> usize {
        self.len()
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) {
        self.read(offset, buf);
    }

    fn write_at(&self, offset: usize, data: &[u8]) {
        self.write(offset, data);
    }
}

type Ring<'a> = ByteRing<'a, SharedMem<'a>>;

/// The client's view of the xenstore page: it produces `req`, consumes `rsp`.
fn rings(mem: SharedMem<'_>) -> (Ring<'_>, Ring<'_>) {
    type X = XenstoreDomainInterface;
    let part = |off: usize| {
        mem.get(off, XENSTORE_RING_SIZE)
            .expect("xs ring inside the page")
    };
    (
        ByteRing::new(
            part(offset_of!(X, req)),
            mem.atomic_u32(offset_of!(X, req_cons)),
            mem.atomic_u32(offset_of!(X, req_prod)),
        ),
        ByteRing::new(
            part(offset_of!(X, rsp)),
            mem.atomic_u32(offset_of!(X, rsp_cons)),
            mem.atomic_u32(offset_of!(X, rsp_prod)),
        ),
    )
}

impl Table {
    fn find(&self, req_id: u32) -> Option<usize> {
        self.slots.iter().position(|s| match s {
            Slot::Waiting { req_id: id, .. } | Slot::Abandoned { req_id: id } => *id == req_id,
            _ => false,
        })
    }

    /// Frees slot `i` and wakes every task waiting for a slot (at most
    /// [`SLOT_WAITERS_MAX`]); those that lose the race queue again.
    fn free_slot(&mut self, i: usize, wake: &mut Vec<Waker>) {
        self.slots[i] = Slot::Free;
        wake.extend(self.slot_waiters.drain(..));
    }

    /// Settles slot `i` with `result` (transition 2 or 5).
    fn complete(&mut self, i: usize, result: Result<Vec<u8>, RequestError>, wake: &mut Vec<Waker>) {
        match core::mem::replace(&mut self.slots[i], Slot::Free) {
            Slot::Waiting { waker, .. } => {
                self.slots[i] = Slot::Done(result);
                wake.extend(waker);
            }
            Slot::Abandoned { .. } => self.free_slot(i, wake),
            other => unreachable!("completing a slot in state {other:?}"),
        }
    }

    /// Breaks the connection: everyone waiting learns why.
    fn fail(&mut self, e: ProtocolError, wake: &mut Vec<Waker>) {
        if self.broken.is_some() {
            return;
        }
        self.broken = Some(e);
        for i in 0..self.slots.len() {
            if matches!(self.slots[i], Slot::Waiting { .. } | Slot::Abandoned { .. }) {
                self.complete(i, Err(RequestError::Disconnected(e)), wake);
            }
        }
        wake.extend(self.slot_waiters.drain(..));
        for w in self.watches.iter_mut().flatten() {
            wake.extend(w.waker.take());
        }
    }

    /// Routes one message from the daemon.
    fn dispatch(&mut self, raw: XsdSockmsg, payload: &[u8], wake: &mut Vec<Waker>) {
        let header = match decode_header(raw) {
            Ok(h) => h,
            Err(e) => {
                // The framing is intact (the length was fine): fail only the
                // request it claims to answer, if any.
                self.stats.malformed_replies += 1;
                match self.find(raw.req_id) {
                    Some(i) => self.complete(i, Err(RequestError::Protocol(e)), wake),
                    None => self.stats.unknown_replies += 1,
                }
                return;
            }
        };
        if header.kind == XsdSockmsgType::WatchEvent {
            match decode(header, payload) {
                Ok(Message::WatchEvent { path, token }) => self.route_event(path, token, wake),
                _ => self.stats.malformed_events += 1,
            }
            return;
        }
        let Some(i) = self.find(header.req_id) else {
            self.stats.unknown_replies += 1;
            return;
        };
        let expected = match self.slots[i] {
            Slot::Waiting { kind, .. } => Some(kind),
            _ => None,
        };
        let result = match decode(header, payload) {
            Ok(Message::Error { error, .. }) => Err(RequestError::Xenstore(error)),
            Ok(Message::Reply { header, payload }) => match expected {
                Some(kind) if kind != header.kind => {
                    self.stats.malformed_replies += 1;
                    Err(RequestError::Protocol(ProtocolError::TypeMismatch {
                        expected: kind,
                        got: header.kind,
                    }))
                }
                _ => Ok(payload.to_vec()),
            },
            Ok(Message::WatchEvent { .. }) => unreachable!("handled above"),
            Err(e) => {
                self.stats.malformed_replies += 1;
                Err(RequestError::Protocol(e))
            }
        };
        self.stats.replies += 1;
        self.complete(i, result, wake);
    }

    fn route_event(&mut self, path: &str, token: &str, wake: &mut Vec<Waker>) {
        let Some(w) = self.watches.iter_mut().flatten().find(|w| w.token == token) else {
            self.stats.stray_events += 1;
            return;
        };
        if w.queue.len() >= WATCH_EVENTS_QUEUED_MAX {
            w.dropped += 1;
            self.stats.events_dropped += 1;
        } else {
            w.queue.push_back(String::from(path));
            self.stats.watch_events += 1;
        }
        wake.extend(w.waker.take());
    }

    /// Wakes one task that waits on the client, so that it takes over the
    /// port's waker slot (see the module doc).
    fn pass_baton(&mut self, wake: &mut Vec<Waker>) {
        for s in &mut self.slots {
            if let Slot::Waiting { waker, .. } = s {
                if let Some(w) = waker.take() {
                    wake.push(w);
                    return;
                }
            }
        }
        for w in self.watches.iter_mut().flatten() {
            if let Some(k) = w.waker.take() {
                wake.push(k);
                return;
            }
        }
    }

    fn next_id(&mut self) -> u32 {
        loop {
            let id = self.next_req_id;
            self.next_req_id = self.next_req_id.wrapping_add(1);
            if id != 0 && self.find(id).is_none() {
                return id;
            }
        }
    }
}

impl Core {
    /// Moves bytes both ways and dispatches what arrived. Returns whether
    /// the daemon should be notified.
    fn pump<M: RingMemory>(
        &mut self,
        req: &ByteRing<'_, M>,
        rsp: &ByteRing<'_, M>,
        wake: &mut Vec<Waker>,
    ) -> bool {
        let Core { io, table } = self;
        if table.broken.is_some() {
            return false;
        }
        let mut notify = false;
        while !io.outbox.is_empty() {
            let (front, _) = io.outbox.as_slices();
            match io.req.write(req, front) {
                Ok(0) => break,
                Ok(n) => {
                    io.outbox.drain(..n);
                    notify = true;
                }
                Err(e) => {
                    table.fail(e, wake);
                    return notify;
                }
            }
        }
        loop {
            match io.reader.poll_message(&mut io.rsp, rsp, &mut notify) {
                Ok(Some((raw, payload))) => table.dispatch(raw, payload, wake),
                Ok(None) => break,
                Err(e) => {
                    table.fail(e, wake);
                    break;
                }
            }
        }
        notify
    }

    /// Queues `msg` (an encoded request whose `req_id` is patched here) in a
    /// slot. `Ok(None)`: no slot free now.
    fn submit(
        &mut self,
        msg: &mut [u8],
        kind: XsdSockmsgType,
        cleanup: bool,
    ) -> Result<Option<usize>, RequestError> {
        let Core { io, table } = self;
        if let Some(e) = table.broken {
            return Err(RequestError::Disconnected(e));
        }
        let range = if cleanup {
            0..SLOTS
        } else {
            0..REQUESTS_IN_FLIGHT_MAX
        };
        let Some(i) = range.rev().find(|&i| matches!(table.slots[i], Slot::Free)) else {
            return Ok(None);
        };
        if io.outbox.len() + msg.len() > OUTBOX_MAX {
            return Ok(None);
        }
        let req_id = table.next_id();
        msg[4..8].copy_from_slice(&req_id.to_le_bytes());
        io.outbox.extend(msg.iter());
        table.slots[i] = if cleanup {
            Slot::Abandoned { req_id }
        } else {
            Slot::Waiting {
                req_id,
                kind,
                waker: None,
            }
        };
        table.stats.requests += 1;
        Ok(Some(i))
    }
}

impl Xenstore {
    /// Connects to the xenstore ring the toolstack set up for `guest`.
    ///
    /// # Errors
    /// [`ConnectError`] if there is no ring, its port cannot be attached, or
    /// its indices are inconsistent.
    pub fn new(guest: &Guest) -> Result<Xenstore, ConnectError> {
        let mem = guest.xenstore_mem().map_err(ConnectError::NoRing)?;
        let channel = guest.xenstore_channel().map_err(ConnectError::Channel)?;
        let (req, rsp) = rings(mem);
        let io = Io {
            req: Producer::attach(&req).map_err(ConnectError::Ring)?,
            rsp: Consumer::attach(&rsp).map_err(ConnectError::Ring)?,
            reader: MessageReader::new(),
            outbox: VecDeque::new(),
        };
        let table = Table {
            slots: (0..SLOTS).map(|_| Slot::Free).collect(),
            slot_waiters: VecDeque::new(),
            next_req_id: 1,
            watches: (0..WATCHES_MAX).map(|_| None).collect(),
            next_token: 0,
            broken: None,
            stats: XenstoreStats::default(),
        };
        Ok(Xenstore {
            shared: Rc::new(Shared {
                guest: guest.clone(),
                channel,
                core: RefCell::new(Core { io, table }),
            }),
        })
    }

    /// The client's counters.
    pub fn stats(&self) -> XenstoreStats {
        self.shared.core.borrow().table.stats
    }

    /// Why the connection broke, if it did.
    pub fn broken(&self) -> Option<ProtocolError> {
        self.shared.core.borrow().table.broken
    }

    /// Runs `f` on the core with the rings, then notifies and wakes outside
    /// the borrow.
    fn with_core<R>(
        &self,
        f: impl FnOnce(&mut Core, &Ring<'_>, &Ring<'_>, &mut Vec<Waker>) -> (R, bool),
    ) -> R {
        let mut wake = Vec::new();
        let mem = self
            .shared
            .guest
            .xenstore_mem()
            .expect("the xenstore page was there at connect; the guest caches it");
        let (req, rsp) = rings(mem);
        let (r, notify) = {
            let mut core = self.shared.core.borrow_mut();
            f(&mut core, &req, &rsp, &mut wake)
        };
        if notify {
            // A failed notify leaves the daemon to find the bytes later; the
            // hypercall only fails if the port is gone, which breaks nothing
            // we could repair here.
            let _ = self.shared.channel.notify();
        }
        for w in wake {
            w.wake();
        }
        r
    }

    /// Sends a request nobody waits for (unwatch or abort from a drop).
    fn send_cleanup(&self, req: Request<'_>, tx_id: u32) {
        let mut msg = Vec::new();
        if req.encode(0, tx_id, &mut msg).is_err() {
            return;
        }
        self.with_core(|core, reqr, rspr, wake| {
            let r = core.submit(&mut msg, req.kind(), true);
            if !matches!(r, Ok(Some(_))) {
                core.table.stats.cleanups_unsent += 1;
            }
            let notify = core.pump(reqr, rspr, wake);
            ((), notify)
        });
    }

    /// Sends `req` in transaction `tx_id` (0: none) and waits for the raw
    /// reply payload.
    async fn call(&self, req: Request<'_>, tx_id: u32) -> Result<Vec<u8>, RequestError> {
        let mut msg = Vec::new();
        req.encode(0, tx_id, &mut msg)?;
        Call {
            xs: self,
            msg,
            kind: req.kind(),
            slot: None,
            queued: false,
        }
        .await
    }

    async fn call_ok(&self, req: Request<'_>, tx_id: u32) -> Result<(), RequestError> {
        let payload = self.call(req, tx_id).await?;
        wire::parse_ok(&payload).map_err(|e| self.bad_reply(e))
    }

    /// A reply that failed its operation's parser: counted, then the error.
    fn bad_reply(&self, e: ProtocolError) -> RequestError {
        self.shared.core.borrow_mut().table.stats.malformed_replies += 1;
        RequestError::Protocol(e)
    }

    // ----- operations (transaction 0 = none) -----

    async fn read_in(&self, tx: u32, path: &str) -> Result<Vec<u8>, RequestError> {
        self.call(Request::Read(path), tx).await
    }

    async fn read_string_in(&self, tx: u32, path: &str) -> Result<String, RequestError> {
        let v = self.read_in(tx, path).await?;
        String::from_utf8(v).map_err(|_| RequestError::BadValue)
    }

    async fn read_int_in<T: FromStr>(&self, tx: u32, path: &str) -> Result<T, RequestError> {
        let v = self.read_in(tx, path).await?;
        let s = core::str::from_utf8(&v).map_err(|_| RequestError::BadValue)?;
        // Only plain decimals: no sign games, no whitespace.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(RequestError::BadValue);
        }
        s.parse().map_err(|_| RequestError::BadValue)
    }

    async fn write_in(&self, tx: u32, path: &str, value: &[u8]) -> Result<(), RequestError> {
        self.call_ok(Request::Write(path, value), tx).await
    }

    async fn directory_in(&self, tx: u32, path: &str) -> Result<Vec<String>, RequestError> {
        let p = self.call(Request::Directory(path), tx).await?;
        let names = wire::parse_directory(&p).map_err(|e| self.bad_reply(e))?;
        Ok(names.into_iter().map(String::from).collect())
    }

    async fn get_permissions_in(
        &self,
        tx: u32,
        path: &str,
    ) -> Result<Vec<Permission>, RequestError> {
        let p = self.call(Request::GetPerms(path), tx).await?;
        wire::parse_permissions(&p).map_err(|e| self.bad_reply(e))
    }

    /// Reads the value of `path` (absolute, or relative to this domain's
    /// home `/local/domain/<id>`).
    ///
    /// # Errors
    /// [`RequestError`]: e.g. `Xenstore(NoEnt)`, `Xenstore(Acces)`.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, RequestError> {
        self.read_in(0, path).await
    }

    /// Reads `path` as UTF-8.
    ///
    /// # Errors
    /// As [`read`](Self::read); [`RequestError::BadValue`] if not UTF-8.
    pub async fn read_string(&self, path: &str) -> Result<String, RequestError> {
        self.read_string_in(0, path).await
    }

    /// Reads `path` as a decimal integer (`u32`, `u64`, `i32`, ...).
    ///
    /// # Errors
    /// As [`read`](Self::read); [`RequestError::BadValue`] if the value is
    /// not a plain decimal that fits `T`.
    pub async fn read_int<T: FromStr>(&self, path: &str) -> Result<T, RequestError> {
        self.read_int_in(0, path).await
    }

    /// Reads a xenbus `state` node.
    ///
    /// # Errors
    /// As [`read`](Self::read); [`RequestError::BadValue`] if the value is
    /// not a xenbus state.
    pub async fn read_state(&self, path: &str) -> Result<XenbusState, RequestError> {
        let v = self.read(path).await?;
        XenbusState::parse(&v).map_err(|_: XenbusStateError| RequestError::BadValue)
    }

    /// This domain's id (the `domid` key of its home).
    ///
    /// # Errors
    /// As [`read_int`](Self::read_int).
    pub async fn domid(&self) -> Result<DomId, RequestError> {
        self.read_int::<u16>("domid").await.map(DomId)
    }

    /// Reads `path`, or `None` if it does not exist (`ENOENT`).
    ///
    /// # Errors
    /// As [`read`](Self::read), except `ENOENT`.
    pub async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>, RequestError> {
        match self.read(path).await {
            Ok(v) => Ok(Some(v)),
            Err(RequestError::Xenstore(XenstoreError::NoEnt)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until `check` accepts the value of `path` (`None`: the node
    /// does not exist) and returns what it returned. `check` runs on the
    /// current value first, then after every change a watch on `path` sees.
    ///
    /// # Errors
    /// [`WaitError`]; a read error other than `ENOENT` ends the wait.
    ///
    /// # Cancellation
    /// Cancel-safe: dropping the future drops the watch (unregistering it).
    ///
    /// # Examples
    /// ```
    /// use ringlet_xen::xenstore::{WaitError, Xenstore};
    ///
    /// /// Waits for dom0 to write `data/go` (any value) and returns it.
    /// async fn wait_go(xs: &Xenstore) -> Result<Vec<u8>, WaitError> {
    ///     xs.wait_until("data/go", |v| v.map(<[u8]>::to_vec)).await
    /// }
    /// ```
    pub async fn wait_until<T>(
        &self,
        path: &str,
        mut check: impl FnMut(Option<&[u8]>) -> Option<T>,
    ) -> Result<T, WaitError> {
        let mut watch = self.watch(path).await.map_err(WaitError::Watch)?;
        for _ in 0..WAIT_EVENTS_MAX {
            let value = self.read_optional(path).await.map_err(WaitError::Request)?;
            if let Some(t) = check(value.as_deref()) {
                return Ok(t);
            }
            watch.next().await.ok_or(WaitError::WatchEnded)?;
        }
        Err(WaitError::TooManyChanges)
    }

    /// Waits until the xenbus `state` node at `path` holds a state `accept`
    /// takes, and returns that state. An absent node or a value that is not
    /// a state counts as not accepted (a peer may not have written it yet).
    ///
    /// # Errors
    /// [`WaitError`].
    pub async fn wait_for_state(
        &self,
        path: &str,
        mut accept: impl FnMut(XenbusState) -> bool,
    ) -> Result<XenbusState, WaitError> {
        self.wait_until(path, |v| {
            v.and_then(|v| XenbusState::parse(v).ok())
                .filter(|&s| accept(s))
        })
        .await
    }

    /// Writes `value` to `path`, creating it (and missing parents).
    ///
    /// # Errors
    /// [`RequestError`]: e.g. `Xenstore(Acces)`, `Xenstore(TooBig)`,
    /// `Xenstore(Quota)`, `Encode(TooLong)`.
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), RequestError> {
        self.write_in(0, path, value.as_ref()).await
    }

    /// Creates `path` with an empty value (no error if it exists).
    ///
    /// # Errors
    /// [`RequestError`]: e.g. `Xenstore(Acces)`.
    pub async fn mkdir(&self, path: &str) -> Result<(), RequestError> {
        self.call_ok(Request::Mkdir(path), 0).await
    }

    /// Removes `path` and everything below it.
    ///
    /// # Errors
    /// [`RequestError`]: e.g. `Xenstore(Acces)`, `Xenstore(NoEnt)` (the
    /// parent is missing too).
    pub async fn rm(&self, path: &str) -> Result<(), RequestError> {
        self.call_ok(Request::Rm(path), 0).await
    }

    /// The names of the children of `path`.
    ///
    /// # Errors
    /// [`RequestError`]: e.g. `Xenstore(NoEnt)`.
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, RequestError> {
        self.directory_in(0, path).await
    }

    /// The permissions of `path`: the first entry is the owner (and the
    /// access of every domain not listed).
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn get_permissions(&self, path: &str) -> Result<Vec<Permission>, RequestError> {
        self.get_permissions_in(0, path).await
    }

    /// Sets the permissions of `path`.
    ///
    /// # Errors
    /// [`RequestError`]: e.g. `Xenstore(Acces)` (not the owner),
    /// `Encode(BadPermissions)` (empty list).
    pub async fn set_permissions(
        &self,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), RequestError> {
        self.call_ok(Request::SetPerms(path, perms), 0).await
    }

    /// The home path of domain `domid` (`/local/domain/<id>`).
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn get_domain_path(&self, domid: DomId) -> Result<String, RequestError> {
        let p = self.call(Request::GetDomainPath(domid), 0).await?;
        wire::parse_string(&p)
            .map(String::from)
            .map_err(|e| self.bad_reply(e))
    }

    /// Watches `path` and everything below it. The stream yields the path of
    /// each changed node; the daemon fires once at registration. Dropping the
    /// [`Watch`] unregisters it.
    ///
    /// # Errors
    /// [`WatchError`].
    pub async fn watch(&self, path: &str) -> Result<Watch, WatchError> {
        let (idx, token) = {
            let mut core = self.shared.core.borrow_mut();
            let t = &mut core.table;
            let idx = t
                .watches
                .iter()
                .position(Option::is_none)
                .ok_or(WatchError::TooManyWatches)?;
            let mut token = String::from("rl");
            let mut digits = Vec::new();
            wire::push_decimal(&mut digits, t.next_token);
            t.next_token += 1;
            token.extend(digits.iter().map(|&b| char::from(b)));
            // Registered before the request so that an event arriving before
            // the ack is not lost.
            t.watches[idx] = Some(WatchEntry {
                token: token.clone(),
                queue: VecDeque::new(),
                dropped: 0,
                waker: None,
            });
            (idx, token)
        };
        // Dropped on failure: that frees the entry.
        let mut watch = Watch {
            xs: self.clone(),
            idx,
            token,
            path: String::from(path),
            registered: false,
        };
        self.call_ok(Request::Watch(path, &watch.token), 0)
            .await
            .map_err(WatchError::Request)?;
        watch.registered = true;
        Ok(watch)
    }

    /// Starts a transaction. Prefer [`transaction`](Self::transaction),
    /// which retries conflicts.
    ///
    /// # Errors
    /// [`RequestError`]: e.g. `Xenstore(Quota)`.
    pub async fn transaction_start(&self) -> Result<Transaction<'_>, RequestError> {
        let p = self.call(Request::TransactionStart, 0).await?;
        let id = wire::parse_transaction_id(&p).map_err(|e| self.bad_reply(e))?;
        Ok(Transaction {
            xs: self,
            id,
            ended: false,
        })
    }

    /// Runs `body` in a transaction and commits it; when the commit
    /// conflicts (`EAGAIN`) runs it again in a new transaction, up to
    /// [`TRANSACTION_RETRIES_MAX`] times. The body must only use the
    /// transaction for xenstore (its effects are discarded on a conflict).
    ///
    /// # Errors
    /// [`TransactionError::Body`] if `body` fails (the transaction is
    /// aborted), [`TransactionError::Request`] if starting or committing
    /// fails otherwise, [`TransactionError::TooManyConflicts`].
    ///
    /// # Examples
    /// ```
    /// use ringlet_xen::xenstore::{RequestError, TransactionError, Xenstore};
    ///
    /// async fn bump(xs: &Xenstore) -> Result<u32, TransactionError<RequestError>> {
    ///     xs.transaction(async |tx| {
    ///         let n: u32 = tx.read_int("data/counter").await.unwrap_or(0);
    ///         tx.write("data/counter", format!("{}", n + 1)).await?;
    ///         Ok(n + 1)
    ///     })
    ///     .await
    /// }
    /// ```
    pub async fn transaction<T, E, F>(&self, mut body: F) -> Result<T, TransactionError<E>>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T, E>,
    {
        for _ in 0..TRANSACTION_RETRIES_MAX {
            let tx = self
                .transaction_start()
                .await
                .map_err(TransactionError::Request)?;
            let value = match body(&tx).await {
                Ok(v) => v,
                Err(e) => {
                    // The body's error wins over a failure to abort.
                    let _ = tx.abort().await;
                    return Err(TransactionError::Body(e));
                }
            };
            match tx.commit().await {
                Ok(()) => return Ok(value),
                Err(RequestError::Xenstore(XenstoreError::Again)) => continue,
                Err(e) => return Err(TransactionError::Request(e)),
            }
        }
        Err(TransactionError::TooManyConflicts)
    }
}

/// The future of one request: submit, pump, wait.
struct Call<'a> {
    xs: &'a Xenstore,
    msg: Vec<u8>,
    kind: XsdSockmsgType,
    slot: Option<usize>,
    /// Waiting for a free slot (its waker is in `slot_waiters`).
    queued: bool,
}

impl Future for Call<'_> {
    type Output = Result<Vec<u8>, RequestError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let xs = this.xs;
            let out = xs.with_core(|core, req, rsp, wake| {
                let mut notify = core.pump(req, rsp, wake);
                if this.slot.is_none() {
                    match core.submit(&mut this.msg, this.kind, false) {
                        Err(e) => return (Poll::Ready(Err(e)), notify),
                        Ok(Some(i)) => {
                            this.slot = Some(i);
                            this.queued = false;
                            notify |= core.pump(req, rsp, wake);
                        }
                        Ok(None) => {
                            let waiters = &mut core.table.slot_waiters;
                            if waiters.len() >= SLOT_WAITERS_MAX {
                                if !this.queued {
                                    return (Poll::Ready(Err(RequestError::Busy)), notify);
                                }
                                // Already queued (a spurious poll): keep our place.
                            } else if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                                waiters.push_back(cx.waker().clone());
                            }
                            this.queued = true;
                            return (Poll::Pending, notify);
                        }
                    }
                }
                let i = this.slot.expect("submitted");
                let t = &mut core.table;
                match &mut t.slots[i] {
                    Slot::Done(_) => {
                        let Slot::Done(r) = core::mem::replace(&mut t.slots[i], Slot::Free) else {
                            unreachable!()
                        };
                        t.free_slot(i, wake);
                        t.pass_baton(wake);
                        this.slot = None;
                        (Poll::Ready(r), notify)
                    }
                    Slot::Waiting { waker, .. } => {
                        match waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            _ => *waker = Some(cx.waker().clone()),
                        }
                        (Poll::Pending, notify)
                    }
                    other => unreachable!("own slot in state {other:?}"),
                }
            });
            match out {
                Poll::Ready(r) => {
                    this.msg = Vec::new();
                    return Poll::Ready(r);
                }
                Poll::Pending if this.queued => return Poll::Pending,
                Poll::Pending => {}
            }
            // Final check: an event since the pump means more to read.
            match xs.shared.channel.poll_wait(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if self.slot.is_none() && !self.queued {
            return;
        }
        let slot = self.slot.take();
        self.xs.with_core(|core, _, _, wake| {
            let t = &mut core.table;
            if let Some(i) = slot {
                match core::mem::replace(&mut t.slots[i], Slot::Free) {
                    // Transition 4: the reply will be discarded when it comes.
                    Slot::Waiting { req_id, .. } => t.slots[i] = Slot::Abandoned { req_id },
                    Slot::Done(_) => t.free_slot(i, wake),
                    other => t.slots[i] = other,
                }
            }
            // Our waker may hold the port's slot: hand it on.
            t.pass_baton(wake);
            ((), false)
        });
    }
}

/// A transaction: reads see a snapshot taken at its start, writes become
/// visible at [`commit`](Self::commit) — or not at all, if something it read
/// or wrote changed meanwhile (`EAGAIN`). Dropping it unfinished aborts it.
#[derive(Debug)]
pub struct Transaction<'a> {
    xs: &'a Xenstore,
    id: u32,
    ended: bool,
}

impl Transaction<'_> {
    /// The daemon's transaction id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// [`Xenstore::read`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, RequestError> {
        self.xs.read_in(self.id, path).await
    }

    /// [`Xenstore::read_string`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn read_string(&self, path: &str) -> Result<String, RequestError> {
        self.xs.read_string_in(self.id, path).await
    }

    /// [`Xenstore::read_int`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn read_int<T: FromStr>(&self, path: &str) -> Result<T, RequestError> {
        self.xs.read_int_in(self.id, path).await
    }

    /// [`Xenstore::write`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), RequestError> {
        self.xs.write_in(self.id, path, value.as_ref()).await
    }

    /// [`Xenstore::mkdir`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn mkdir(&self, path: &str) -> Result<(), RequestError> {
        self.xs.call_ok(Request::Mkdir(path), self.id).await
    }

    /// [`Xenstore::rm`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn rm(&self, path: &str) -> Result<(), RequestError> {
        self.xs.call_ok(Request::Rm(path), self.id).await
    }

    /// [`Xenstore::directory`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, RequestError> {
        self.xs.directory_in(self.id, path).await
    }

    /// [`Xenstore::get_permissions`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn get_permissions(&self, path: &str) -> Result<Vec<Permission>, RequestError> {
        self.xs.get_permissions_in(self.id, path).await
    }

    /// [`Xenstore::set_permissions`] in this transaction.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn set_permissions(
        &self,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), RequestError> {
        self.xs
            .call_ok(Request::SetPerms(path, perms), self.id)
            .await
    }

    /// Commits. `Err(RequestError::Xenstore(XenstoreError::Again))` means it
    /// conflicted and nothing was applied: run it again.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn commit(mut self) -> Result<(), RequestError> {
        self.ended = true;
        self.xs
            .call_ok(Request::TransactionEnd(true), self.id)
            .await
    }

    /// Aborts: nothing it wrote is applied.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn abort(mut self) -> Result<(), RequestError> {
        self.ended = true;
        self.xs
            .call_ok(Request::TransactionEnd(false), self.id)
            .await
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.xs
                .send_cleanup(Request::TransactionEnd(false), self.id);
        }
    }
}

/// One change a watch saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed: the watched path or one below it (relative if
    /// the watch's path was relative).
    pub path: String,
}

/// A registered watch: a [`Stream`] of [`WatchEvent`]s. It ends (yields
/// `None`) only if the connection breaks. Dropping it unregisters the watch.
///
/// # Cancellation
/// Cancel-safe: events are queued in the watch, not in the future.
pub struct Watch {
    xs: Xenstore,
    idx: usize,
    token: String,
    path: String,
    registered: bool,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("path", &self.path)
            .field("token", &self.token)
            .finish()
    }
}

impl Watch {
    /// The watched path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Events dropped because the queue held [`WATCH_EVENTS_QUEUED_MAX`].
    pub fn dropped(&self) -> u64 {
        let core = self.xs.shared.core.borrow();
        core.table.watches[self.idx]
            .as_ref()
            .map_or(0, |w| w.dropped)
    }

    /// The next event (`None` if the connection broke).
    pub async fn next(&mut self) -> Option<WatchEvent> {
        futures::StreamExt::next(self).await
    }

    /// Unregisters the watch and waits for the daemon's answer.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn unwatch(mut self) -> Result<(), RequestError> {
        self.registered = false;
        self.xs
            .call_ok(Request::Unwatch(&self.path, &self.token), 0)
            .await
    }
}

impl Stream for Watch {
    type Item = WatchEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        let this = self.get_mut();
        loop {
            let idx = this.idx;
            let out = this.xs.with_core(|core, req, rsp, wake| {
                let notify = core.pump(req, rsp, wake);
                let t = &mut core.table;
                let entry = t.watches[idx].as_mut().expect("own watch entry");
                if let Some(path) = entry.queue.pop_front() {
                    t.pass_baton(wake);
                    return (Poll::Ready(Some(WatchEvent { path })), notify);
                }
                if t.broken.is_some() {
                    return (Poll::Ready(None), notify);
                }
                match &entry.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => entry.waker = Some(cx.waker().clone()),
                }
                (Poll::Pending, notify)
            });
            if out.is_ready() {
                return out;
            }
            match this.xs.shared.channel.poll_wait(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        {
            let mut wake = Vec::new();
            let mut core = self.xs.shared.core.borrow_mut();
            core.table.watches[self.idx] = None;
            core.table.pass_baton(&mut wake);
            drop(core);
            for w in wake {
                w.wake();
            }
        }
        if self.registered {
            self.xs
                .send_cleanup(Request::Unwatch(&self.path, &self.token), 0);
        }
    }
}
