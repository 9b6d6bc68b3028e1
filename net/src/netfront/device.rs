//! The netfront data path: [`Netfront`], a smoltcp [`Device`] over a tx and
//! an rx ring that share one event channel.
//!
//! # A frame's life
//!
//! ```text
//! tx: 1. transmit(): a ring slot and a tx page are free, else None (and the
//!        runner is woken once a response frees one)
//!     2. consume(): smoltcp writes the frame into a scratch buffer; with
//!        tx checksum offload on, a TCP/UDP checksum field gets the
//!        pseudo-header sum (flags NETTXF_csum_blank | data_validated;
//!        see super::csum); it is copied into a pool page, the page is
//!        granted read-only, the request pushed (notify only if the
//!        backend asked: req_event)
//!     3. response: copied out once, id checked by the ring, status judged;
//!        only now the grant is ended and the page goes back to the pool
//! rx: 4. refill: pool pages granted writable, rx requests pushed (with
//!        notify: feature-rx-notify), up to NetfrontConfig::rx_buffers
//!     5. receive(): (only while a reply could be sent: tx room, else rx
//!        waits for it) next response copied out once; its grant ended; the
//!        response judged (rx::RxAssembler) before a byte of the page is
//!        read; the fragment copied once into the frame buffer; the page
//!        back to the pool and the ring refilled
//!     6. the frame goes to smoltcp in an RxToken (buffers recycled)
//! ```
//!
//! # Link states
//!
//! ```text
//!   Connected ──1. ring broken / notify failed (data path)──► Down
//!       ▲      ──2. backend leaves Connected (supervisor)────► Down
//!       └─────3. supervisor reconnected (new rings)──────────┘
//! ```
//!
//! While Down, `receive` and `transmit` give no token (smoltcp keeps its
//! data; TCP retransmits after the reconnect), [`Netfront::poll_ready`]
//! reports the reason, and the supervisor
//! ([`NetfrontHandle::supervise`](super::NetfrontHandle::supervise)) tears
//! the connection down and builds a new one. Grants of a torn-down
//! connection are ended when the backend has let go, else deferred by the
//! guest's grant table (never reused while in use).
#![deny(unsafe_code)]

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::poll_fn;
use core::task::{Context, Poll, Waker};

use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::evtchn::{EventChannel, NotifyError};
use ringlet_xen::grant::{Access, GrantedPage};
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::page::OwnedPage;
use ringlet_xen::ring::{FrontRing, RingError, RingFull};
use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::config::{Mac, Negotiated, NetfrontConfig};
use super::csum::{prepare_tx, TxChecksum};
use super::netif::{
    NetifRx, NetifTx, RxRequest, TxRequest, NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY,
    NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, RX_RING_SIZE, TX_RING_SIZE,
};
use super::rx::{RxAssembler, RxDrop, RxMalformed, RxStep, FRAME_LEN_MAX};

/// Frame buffers kept for reuse between rx tokens.
pub const SPARE_BUFFERS_MAX: usize = 8;

/// Rounds of "event consumed, look again" in one arming of the waker (a
/// bound against a backend that notifies without end).
const ARM_ROUNDS_MAX: usize = 4;

/// Responses with unknown ids one connection tolerates at most. Each one
/// most likely leaves a request of ours unanswered for good (its buffer
/// stuck); past the bound (this, or half the smaller of the tx pool and the
/// rx buffers, so stuck buffers can never starve a direction) the link goes
/// down and the supervisor reconnects, which gets every buffer back.
pub const UNKNOWN_IDS_PER_CONNECTION_MAX: u32 = 64;

/// The unknown-id bound of a connection under `config` (see
/// [`UNKNOWN_IDS_PER_CONNECTION_MAX`]).
fn unknown_ids_max(config: &NetfrontConfig) -> u32 {
    let half = config.tx_pages_max.min(config.rx_buffers) / 2;
    UNKNOWN_IDS_PER_CONNECTION_MAX.min(half.max(1))
}

/// The tx ring as netfront uses it: each request holds its granted page.
pub type TxRing = FrontRing<NetifTx, GrantedPage>;
/// The rx ring as netfront uses it: each request holds its granted page.
pub type RxRing = FrontRing<NetifRx, GrantedPage>;

/// Which ring a [`DownReason::RingBroken`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// The tx ring.
    Tx,
    /// The rx ring.
    Rx,
}

/// Why the link is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// The backend left Connected (Closing, Closed, or its node vanished,
    /// read as Closed).
    BackendState(XenbusState),
    /// A ring's response producer went out of range: nothing more can be
    /// read from it.
    RingBroken(Ring, RingError),
    /// Notifying the backend failed (its port is gone).
    Notify(NotifyError),
    /// A reconnect is in progress.
    Reconnecting,
    /// The backend answered too many responses with unknown ids (see
    /// [`UNKNOWN_IDS_PER_CONNECTION_MAX`]).
    UnknownIds,
    /// The supervisor gave up reconnecting (or is not running any more).
    Gone,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::BackendState(s) => write!(f, "backend went to {s}"),
            DownReason::RingBroken(r, e) => write!(f, "{r:?} ring broken: {e}"),
            DownReason::Notify(e) => write!(f, "{e}"),
            DownReason::Reconnecting => f.write_str("reconnecting"),
            DownReason::UnknownIds => f.write_str("too many responses with unknown ids"),
            DownReason::Gone => f.write_str("backend gone"),
        }
    }
}

/// Why the device cannot carry frames now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetfrontError {
    /// The link is down for this reason (see the module doc).
    Down(DownReason),
}

impl fmt::Display for NetfrontError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetfrontError::Down(r) => write!(f, "netfront link down: {r}"),
        }
    }
}

impl core::error::Error for NetfrontError {}

/// Counters of a netfront (over all its connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetfrontStats {
    /// Frames handed to smoltcp.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Of those, frames that spanned more than one rx slot.
    pub rx_chains: u64,
    /// Of those, frames whose blank checksum netfront filled.
    pub rx_csum_filled: u64,
    /// Rx packets the backend reported as failed (`NETIF_RSP_ERROR`,
    /// `NETIF_RSP_DROPPED`).
    pub rx_errors: u64,
    /// Rx responses dropped as malformed (bad status, offset or size,
    /// unknown flags, oversized chains, unknown ids).
    pub rx_malformed: u64,
    /// Frames sent (pushed to the tx ring).
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Tx responses that reported failure (`NETIF_RSP_ERROR`/`DROPPED`).
    pub tx_errors: u64,
    /// Tx responses dropped as malformed (unknown status, unknown id).
    pub tx_malformed: u64,
    /// `transmit` calls refused because the ring or the page pool was full.
    pub tx_full: u64,
    /// Of the frames sent, those that went with
    /// `NETTXF_csum_blank | NETTXF_data_validated`: the backend completes
    /// their TCP/UDP checksum (tx checksum offload).
    pub tx_csum_offloaded: u64,
    /// Of the frames sent, TCP/UDP frames whose checksum netfront computed
    /// because the backend could not have completed it (offload on; see
    /// [`csum`](super::csum)). 0 for smoltcp's frames.
    pub tx_csum_computed: u64,
    /// Frames given to a tx token but not sent (oversized, the link went
    /// down, or, with offload on, a TCP/UDP frame that cannot carry a right
    /// checksum: [`TxChecksum::Unsendable`]).
    pub tx_dropped: u64,
    /// `receive` calls that left a frame in the ring because a reply could
    /// not have been sent (tx ring or pool full): rx waits for tx room
    /// rather than drop the reply.
    pub rx_held: u64,
    /// Pages whose grant the backend still used when netfront ended it
    /// (deferred by the grant table, never reused while in use).
    pub grants_busy: u64,
    /// Refills that could not post every rx buffer (no page or grant).
    pub rx_refill_short: u64,
    /// Times the link went down.
    pub link_downs: u64,
    /// Successful reconnects.
    pub reconnects: u64,
}

impl NetfrontStats {
    /// Malformed responses on both rings.
    pub fn malformed(&self) -> u64 {
        self.rx_malformed + self.tx_malformed
    }
}

/// One connection to the backend: its rings, port and negotiated features.
pub(crate) struct Conn {
    pub(crate) backend: DomId,
    pub(crate) backend_path: String,
    pub(crate) tx: TxRing,
    pub(crate) rx: RxRing,
    pub(crate) channel: EventChannel,
    pub(crate) negotiated: Negotiated,
    assembler: RxAssembler,
    /// `transmit` said None since the last freed slot: wake on tx responses.
    tx_blocked: bool,
    /// Responses with unknown ids on either ring.
    unknown_ids: u32,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("backend", &self.backend)
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .field("channel", &self.channel)
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

impl Conn {
    pub(crate) fn new(
        backend: DomId,
        backend_path: String,
        tx: TxRing,
        rx: RxRing,
        channel: EventChannel,
        negotiated: Negotiated,
    ) -> Conn {
        Conn {
            backend,
            backend_path,
            tx,
            rx,
            channel,
            negotiated,
            assembler: RxAssembler::new(negotiated.sg),
            tx_blocked: false,
            unknown_ids: 0,
        }
    }
}

pub(crate) struct State {
    pub(crate) conn: Option<Conn>,
    /// Why the link is down (`None`: up, with `conn`).
    pub(crate) down: Option<DownReason>,
    runner: Option<Waker>,
    supervisor: Option<Waker>,
    pub(crate) stats: NetfrontStats,
    /// Free tx pages (not granted).
    tx_pool: Vec<OwnedPage>,
    /// Tx pages that exist: in the pool or in flight.
    tx_pages: u32,
    /// Free rx pages (not granted).
    pub(crate) rx_pool: Vec<OwnedPage>,
    spare: Vec<Vec<u8>>,
    tx_scratch: Vec<u8>,
}

pub(crate) struct Inner {
    pub(crate) guest: Guest,
    pub(crate) config: NetfrontConfig,
    pub(crate) mac: Mac,
    pub(crate) state: RefCell<State>,
}

/// A connected Xen network device: a smoltcp [`Device`] (Ethernet, MTU
/// 1514) whose runner is woken through [`register_waker`](Self::register_waker)
/// or [`poll_ready`](Self::poll_ready).
///
/// Made by [`connect`](super::connect); keep a [`NetfrontHandle`] (from
/// [`handle`](Self::handle)) to read its counters and to run its
/// supervisor.
pub struct Netfront {
    inner: Rc<Inner>,
}

impl fmt::Debug for Netfront {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_debug(f, "Netfront")
    }
}

/// A second handle on a [`Netfront`]: counters, link state, and the
/// supervisor that reconnects it. Cheap to clone.
#[derive(Clone)]
pub struct NetfrontHandle {
    pub(crate) inner: Rc<Inner>,
}

impl fmt::Debug for NetfrontHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_debug(f, "NetfrontHandle")
    }
}

impl Inner {
    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        let mut d = f.debug_struct(name);
        d.field("mac", &self.mac).field("config", &self.config);
        if let Ok(st) = self.state.try_borrow() {
            d.field("conn", &st.conn)
                .field("down", &st.down)
                .field("stats", &st.stats);
        }
        d.finish_non_exhaustive()
    }
}

impl State {
    fn new(config: &NetfrontConfig) -> State {
        State {
            conn: None,
            down: Some(DownReason::Reconnecting),
            runner: None,
            supervisor: None,
            stats: NetfrontStats::default(),
            tx_pool: Vec::with_capacity(config.tx_pages_max as usize),
            tx_pages: 0,
            rx_pool: Vec::with_capacity(config.rx_buffers as usize),
            spare: Vec::new(),
            tx_scratch: Vec::with_capacity(FRAME_LEN_MAX),
        }
    }

    fn up(&self) -> Option<&Conn> {
        if self.down.is_some() {
            return None;
        }
        self.conn.as_ref()
    }

    fn wake_all(&mut self) {
        for w in [self.runner.as_ref(), self.supervisor.as_ref()]
            .into_iter()
            .flatten()
        {
            w.wake_by_ref();
        }
    }

    /// Transition 1: the data path found the connection unusable.
    fn fail(&mut self, why: DownReason) {
        if self.down.is_none() {
            log::warn!("netfront: link down: {why}");
            self.down = Some(why);
            self.stats.link_downs += 1;
        }
        self.wake_all();
    }

    /// Ends a finished request's grant and pools its page (or, if the
    /// backend still uses it, lets the grant table defer it).
    fn recycle(pool: &mut Vec<OwnedPage>, bound: usize, busy: &mut u64, page: GrantedPage) -> bool {
        match page.end() {
            Ok(p) if pool.len() < bound => {
                pool.push(p);
                true
            }
            Ok(_) => false,
            Err((still, _)) => {
                *busy += 1;
                drop(still);
                false
            }
        }
    }

    /// Takes every tx response there is: judges it, ends its grant, pools
    /// its page. Wakes the runner if `transmit` had refused.
    fn reap_tx(&mut self, config: &NetfrontConfig) {
        if self.down.is_some() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut freed = false;
        let mut broken = None;
        for _ in 0..TX_RING_SIZE {
            match conn.tx.take_response() {
                Ok(None) => break,
                Ok(Some(r)) => {
                    match r.response.status {
                        NETIF_RSP_OKAY => {}
                        NETIF_RSP_ERROR | NETIF_RSP_DROPPED => self.stats.tx_errors += 1,
                        _ => self.stats.tx_malformed += 1,
                    }
                    if !Self::recycle(
                        &mut self.tx_pool,
                        config.tx_pages_max as usize,
                        &mut self.stats.grants_busy,
                        r.context,
                    ) {
                        self.tx_pages -= 1;
                    }
                    freed = true;
                }
                Err(RingError::UnknownId(_)) => {
                    self.stats.tx_malformed += 1;
                    conn.unknown_ids += 1;
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        let too_many = conn.unknown_ids >= unknown_ids_max(config);
        if freed && conn.tx_blocked {
            conn.tx_blocked = false;
            if let Some(w) = &self.runner {
                w.wake_by_ref();
            }
        }
        if let Some(e) = broken {
            self.fail(DownReason::RingBroken(Ring::Tx, e));
        } else if too_many {
            self.fail(DownReason::UnknownIds);
        }
    }

    /// Whether a frame can be sent now. If not, marks tx blocked and arms
    /// the tx ring's `rsp_event` (RING_FINAL_CHECK_FOR_RESPONSES), so the
    /// backend's next tx response notifies and [`reap_tx`](Self::reap_tx)
    /// wakes the runner. Without the arming the runner, which waits for that
    /// wake with no timer, would sleep for good once tx filled up.
    fn tx_room_or_arm(&mut self, config: &NetfrontConfig) -> bool {
        for _ in 0..ARM_ROUNDS_MAX {
            self.reap_tx(config);
            if self.can_transmit(config) {
                return true;
            }
            let Some(conn) = self.conn.as_mut().filter(|_| self.down.is_none()) else {
                // Down: the reconnect wakes the runner.
                return false;
            };
            conn.tx_blocked = true;
            if !conn.tx.final_check() {
                return false;
            }
        }
        // Responses keep coming but free nothing usable yet: run again.
        if let Some(w) = &self.runner {
            w.wake_by_ref();
        }
        false
    }

    fn can_transmit(&self, config: &NetfrontConfig) -> bool {
        self.up().is_some_and(|c| c.tx.free_requests() > 0)
            && (!self.tx_pool.is_empty() || self.tx_pages < config.tx_pages_max)
    }

    /// Posts rx buffers until `rx_buffers` are in flight (or no page or
    /// grant is left), then pushes them, notifying if the backend asked.
    pub(crate) fn refill(&mut self, guest: &Guest, config: &NetfrontConfig) {
        if self.down.is_some() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut short = false;
        while conn.rx.in_flight() < config.rx_buffers && conn.rx.free_requests() > 0 {
            let page = match self.rx_pool.pop() {
                Some(p) => p,
                None => match guest.alloc_page() {
                    Ok(p) => p,
                    Err(_) => {
                        short = true;
                        break;
                    }
                },
            };
            let granted = match GrantedPage::new(page, conn.backend, Access::ReadWrite) {
                Ok(g) => g,
                Err((page, _)) => {
                    self.rx_pool.push(page);
                    short = true;
                    break;
                }
            };
            let gref = granted.grant_ref().0;
            if let Err(RingFull(g)) = conn.rx.push_request(granted, |id| RxRequest {
                id: id.0,
                pad: 0,
                gref,
            }) {
                // Counted free above: cannot happen; give the page back.
                if let Ok(p) = g.end() {
                    self.rx_pool.push(p);
                }
                break;
            }
        }
        if short {
            self.stats.rx_refill_short += 1;
        }
        if let Err(e) = conn.rx.push_and_notify(&conn.channel) {
            self.fail(DownReason::Notify(e));
        }
    }

    /// Takes rx responses until a frame is complete (at most one ring's
    /// worth per call). Returns the frame's buffer.
    ///
    /// The ring is refilled only once it is drained: an id is posted again
    /// only after every response the backend had published was read, so a
    /// duplicated response (a broken backend) can never be taken for the
    /// answer to the buffer posted again under its id; it meets an id that
    /// is not outstanding and is dropped.
    fn next_frame(&mut self, guest: &Guest, config: &NetfrontConfig) -> Option<Vec<u8>> {
        self.up()?;
        let mut frame = None;
        let mut broken = None;
        let mut drained = false;
        {
            let conn = self.conn.as_mut().expect("up() checked");
            for _ in 0..RX_RING_SIZE {
                let r = match conn.rx.take_response() {
                    // Empty: re-arm `rsp_event` before saying so
                    // (RING_FINAL_CHECK_FOR_RESPONSES), else responses the
                    // backend publishes from now on would not notify.
                    Ok(None) if conn.rx.final_check() => continue,
                    Ok(None) => {
                        drained = true;
                        break;
                    }
                    Ok(Some(r)) => r,
                    Err(RingError::UnknownId(_)) => {
                        self.stats.rx_malformed += 1;
                        conn.unknown_ids += 1;
                        continue;
                    }
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                };
                let rsp = r.response;
                // The grant ends first: from here the backend cannot change
                // the page, and the judged bytes are the ones copied.
                let step = match r.context.end() {
                    Ok(page) => {
                        let step = conn.assembler.push(&rsp, |frag, dst| {
                            page.mem().read(frag.offset, dst);
                        });
                        if self.rx_pool.len() < config.rx_buffers as usize {
                            self.rx_pool.push(page);
                        }
                        step
                    }
                    Err((still, _)) => {
                        self.stats.grants_busy += 1;
                        drop(still);
                        conn.assembler.drop_fragment(&rsp, RxMalformed::StillMapped)
                    }
                };
                match step {
                    RxStep::Partial => {}
                    RxStep::Dropped(RxDrop::Backend(_)) => self.stats.rx_errors += 1,
                    RxStep::Dropped(RxDrop::Malformed(why)) => {
                        log::debug!("netfront: dropped rx response: {why}");
                        self.stats.rx_malformed += 1;
                    }
                    RxStep::Frame => {
                        if conn.assembler.frame_slots() > 1 {
                            self.stats.rx_chains += 1;
                        }
                        if conn.assembler.csum_filled() {
                            self.stats.rx_csum_filled += 1;
                        }
                        let spare = self.spare.pop().unwrap_or_default();
                        let f = conn.assembler.take_frame(spare);
                        self.stats.rx_frames += 1;
                        self.stats.rx_bytes += f.len() as u64;
                        frame = Some(f);
                        break;
                    }
                }
            }
        }
        if let Some(e) = broken {
            self.fail(DownReason::RingBroken(Ring::Rx, e));
            return None;
        }
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.unknown_ids >= unknown_ids_max(config))
        {
            self.fail(DownReason::UnknownIds);
            return frame;
        }
        if drained {
            self.refill(guest, config);
        }
        frame
    }

    /// Fills `frame`'s checksum field as offload wants it (see
    /// [`csum`](super::csum)), copies the frame into a pool page, grants
    /// it, pushes the request.
    fn send(&mut self, guest: &Guest, config: &NetfrontConfig, frame: &mut [u8]) -> bool {
        if frame.len() > FRAME_LEN_MAX || !self.can_transmit(config) {
            return false;
        }
        let csum = if config.tx_csum_offload {
            prepare_tx(frame)
        } else {
            TxChecksum::Unchanged
        };
        let flags = match csum {
            TxChecksum::Offloaded => NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED,
            TxChecksum::Computed | TxChecksum::Unchanged => 0,
            TxChecksum::Unsendable => {
                log::debug!("netfront: a TCP/UDP frame that cannot be checksummed, not sent");
                return false;
            }
        };
        let page = match self.tx_pool.pop() {
            Some(p) => p,
            None => match guest.alloc_page() {
                Ok(p) => {
                    self.tx_pages += 1;
                    p
                }
                Err(_) => return false,
            },
        };
        // Written before the grant: the backend never sees a partial frame.
        page.mem().write(0, frame);
        let conn = self.conn.as_mut().expect("can_transmit checked");
        let granted = match GrantedPage::new(page, conn.backend, Access::ReadOnly) {
            Ok(g) => g,
            Err((page, _)) => {
                self.tx_pool.push(page);
                return false;
            }
        };
        let gref = granted.grant_ref().0;
        let size = frame.len() as u16;
        if let Err(RingFull(g)) = conn.tx.push_request(granted, |id| TxRequest {
            gref,
            offset: 0,
            flags,
            id: id.0,
            size,
        }) {
            // Never published, so the backend cannot be using it.
            if !Self::recycle(
                &mut self.tx_pool,
                config.tx_pages_max as usize,
                &mut self.stats.grants_busy,
                g,
            ) {
                self.tx_pages -= 1;
            }
            return false;
        }
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        match csum {
            TxChecksum::Offloaded => self.stats.tx_csum_offloaded += 1,
            TxChecksum::Computed => self.stats.tx_csum_computed += 1,
            TxChecksum::Unchanged | TxChecksum::Unsendable => {}
        }
        if let Err(e) = conn.tx.push_and_notify(&conn.channel) {
            self.fail(DownReason::Notify(e));
        }
        true
    }

    /// Registers `waker` for the runner and on the event channel, then
    /// checks both rings (`RING_FINAL_CHECK_FOR_RESPONSES`). Returns
    /// whether there is work now (the caller must not sleep).
    fn arm(&mut self, waker: &Waker, guest: &Guest, config: &NetfrontConfig) -> bool {
        match &self.runner {
            Some(w) if w.will_wake(waker) => {}
            _ => self.runner = Some(waker.clone()),
        }
        if self.up().is_none() {
            return false;
        }
        self.reap_tx(config);
        let Some(conn) = self.up() else {
            return true;
        };
        let mut cx = Context::from_waker(waker);
        let mut registered = false;
        for _ in 0..ARM_ROUNDS_MAX {
            if conn.channel.poll_wait(&mut cx).is_pending() {
                registered = true;
                break;
            }
        }
        if !registered {
            return true;
        }
        let tx_room = self.can_transmit(config);
        // Rx work counts only with tx room (`receive` holds rx without it;
        // the tx wake covers that case).
        let rx_pending = conn.rx.final_check();
        let rx_work = rx_pending && tx_room;
        let tx_work = conn.tx_blocked && (conn.tx.final_check() || tx_room);
        let short = conn.rx.in_flight() < config.rx_buffers;
        if !rx_pending && short {
            // Drained (the final check found nothing): safe to post again
            // buffers an earlier refill could not (see `next_frame`).
            self.refill(guest, config);
            if self.down.is_some() {
                return true;
            }
        }
        rx_work || tx_work
    }

    /// Transition 3: installs a new connection, posts the rx buffers
    /// (notifying the backend) and wakes the runner.
    pub(crate) fn install(&mut self, conn: Conn, guest: &Guest, config: &NetfrontConfig) {
        assert!(
            self.conn.is_none(),
            "netfront: installing over a connection"
        );
        self.conn = Some(conn);
        self.down = None;
        self.refill(guest, config);
        self.wake_all();
    }

    /// Takes the connection away (for teardown); the link is down for `why`.
    pub(crate) fn take_conn(&mut self, why: DownReason) -> Option<Conn> {
        if self.down.is_none() {
            self.stats.link_downs += 1;
        }
        self.down = Some(why);
        if let Some(w) = &self.runner {
            w.wake_by_ref();
        }
        self.conn.take()
    }

    /// Tears `conn` down: every granted page is dropped (its grant ended,
    /// or deferred while the backend still uses it), the port closed.
    pub(crate) fn teardown(&mut self, conn: Conn, config: &NetfrontConfig) {
        let Conn {
            tx, rx, channel, ..
        } = conn;
        let (tx_page, tx_pages) = tx.into_parts();
        let (rx_page, rx_pages) = rx.into_parts();
        for p in tx_pages {
            if !Self::recycle(
                &mut self.tx_pool,
                config.tx_pages_max as usize,
                &mut self.stats.grants_busy,
                p,
            ) {
                self.tx_pages -= 1;
            }
        }
        for p in rx_pages {
            Self::recycle(
                &mut self.rx_pool,
                config.rx_buffers as usize,
                &mut self.stats.grants_busy,
                p,
            );
        }
        for ring in [tx_page, rx_page] {
            if let Err((still, _)) = ring.end() {
                self.stats.grants_busy += 1;
                drop(still);
            }
        }
        drop(channel);
    }
}

impl Netfront {
    pub(crate) fn from_parts(guest: Guest, config: NetfrontConfig, mac: Mac) -> Netfront {
        let state = State::new(&config);
        Netfront {
            inner: Rc::new(Inner {
                guest,
                config,
                mac,
                state: RefCell::new(state),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }

    /// A handle for counters, link state and the supervisor.
    pub fn handle(&self) -> NetfrontHandle {
        NetfrontHandle {
            inner: self.inner.clone(),
        }
    }

    /// The device's MAC address (from xenstore's `mac`).
    pub fn mac(&self) -> Mac {
        self.inner.mac
    }

    /// The counters.
    pub fn stats(&self) -> NetfrontStats {
        self.inner.state.borrow().stats
    }

    /// `Ok` while connected, else why not.
    ///
    /// # Errors
    /// [`NetfrontError::Down`].
    pub fn link(&self) -> Result<(), NetfrontError> {
        self.inner.link()
    }

    /// Registers the runner's waker: it is woken when a frame can be
    /// received, when room to transmit appears after `transmit` said
    /// None, and when the link goes down or up. If there is work already,
    /// it is woken at once.
    pub fn register_waker(&mut self, waker: &Waker) {
        let inner = &*self.inner;
        let work = inner
            .state
            .borrow_mut()
            .arm(waker, &inner.guest, &inner.config);
        if work {
            waker.wake_by_ref();
        }
    }

    /// Ready when there is work (a frame to receive, or room to transmit
    /// after `transmit` said None); `Err` while the link is down. Pending
    /// otherwise, with `cx`'s waker registered as by
    /// [`register_waker`](Self::register_waker).
    ///
    /// # Errors
    /// [`NetfrontError::Down`] (then the waker is woken again on reconnect).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), NetfrontError>> {
        let inner = &*self.inner;
        let mut st = inner.state.borrow_mut();
        let work = st.arm(cx.waker(), &inner.guest, &inner.config);
        if let Some(why) = st.down {
            return Poll::Ready(Err(NetfrontError::Down(why)));
        }
        if work {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Waits for [`poll_ready`](Self::poll_ready).
    ///
    /// # Errors
    /// [`NetfrontError::Down`].
    ///
    /// # Cancellation
    /// Cancel-safe: it consumes nothing.
    pub async fn wait_ready(&mut self) -> Result<(), NetfrontError> {
        poll_fn(|cx| self.poll_ready(cx)).await
    }
}

impl Inner {
    fn link(&self) -> Result<(), NetfrontError> {
        match self.state.borrow().down {
            None => Ok(()),
            Some(why) => Err(NetfrontError::Down(why)),
        }
    }

    /// Ready with the reason once the data path has failed (for the
    /// supervisor); registers `cx`'s waker otherwise.
    pub(crate) fn poll_failed(&self, cx: &mut Context<'_>) -> Poll<DownReason> {
        let mut st = self.state.borrow_mut();
        if let Some(why) = st.down {
            return Poll::Ready(why);
        }
        match &st.supervisor {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.supervisor = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl NetfrontHandle {
    /// The device's MAC address.
    pub fn mac(&self) -> Mac {
        self.inner.mac
    }

    /// The counters.
    pub fn stats(&self) -> NetfrontStats {
        self.inner.state.borrow().stats
    }

    /// `Ok` while connected, else why not.
    ///
    /// # Errors
    /// [`NetfrontError::Down`].
    pub fn link(&self) -> Result<(), NetfrontError> {
        self.inner.link()
    }

    /// The backend's xenstore directory of the current connection.
    pub fn backend_path(&self) -> Option<String> {
        let st = self.inner.state.borrow();
        st.conn.as_ref().map(|c| c.backend_path.clone())
    }

    /// The backend's domain of the current connection.
    pub fn backend(&self) -> Option<DomId> {
        let st = self.inner.state.borrow();
        st.conn.as_ref().map(|c| c.backend)
    }

    /// Tx pages that exist now (pooled or in flight).
    pub fn tx_pages(&self) -> u32 {
        self.inner.state.borrow().tx_pages
    }

    /// Rx and tx requests in flight now.
    pub fn in_flight(&self) -> (u32, u32) {
        let st = self.inner.state.borrow();
        st.conn
            .as_ref()
            .map_or((0, 0), |c| (c.rx.in_flight(), c.tx.in_flight()))
    }
}

/// The frame of one [`Netfront::receive`].
pub struct RxToken<'a> {
    inner: &'a Inner,
    frame: Option<Vec<u8>>,
}

impl fmt::Debug for RxToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxToken")
            .field("len", &self.frame.as_ref().map(Vec::len))
            .finish()
    }
}

impl RxToken<'_> {
    fn recycle(inner: &Inner, mut buf: Vec<u8>) {
        let mut st = inner.state.borrow_mut();
        if st.spare.len() < SPARE_BUFFERS_MAX {
            buf.clear();
            st.spare.push(buf);
        }
    }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(mut self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let frame = self.frame.take().expect("an rx token holds its frame");
        let r = f(&frame);
        Self::recycle(self.inner, frame);
        r
    }
}

impl Drop for RxToken<'_> {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            Self::recycle(self.inner, frame);
        }
    }
}

/// Room for one frame to send ([`Netfront::transmit`], or with a received
/// frame: `receive` gives a frame only when a reply can be sent).
pub struct TxToken<'a> {
    inner: &'a Inner,
}

impl fmt::Debug for TxToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxToken").finish_non_exhaustive()
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let inner = self.inner;
        let mut buf = core::mem::take(&mut inner.state.borrow_mut().tx_scratch);
        buf.clear();
        buf.resize(len, 0);
        // smoltcp writes the frame; no borrow of the state is held.
        let r = f(&mut buf);
        let mut st = inner.state.borrow_mut();
        if !st.send(&inner.guest, &inner.config, &mut buf) {
            st.stats.tx_dropped += 1;
        }
        if buf.capacity() <= FRAME_LEN_MAX {
            st.tx_scratch = buf;
        }
        r
    }
}

impl Device for Netfront {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let inner = &*self.inner;
        let frame = {
            let mut st = inner.state.borrow_mut();
            if st.up().is_some() && !st.tx_room_or_arm(&inner.config) {
                // The tx token that comes with a frame must be able to send
                // (an ACK, a SYN-ACK): hold rx until tx has room (the runner
                // is woken then) instead of dropping the reply.
                st.stats.rx_held += 1;
                return None;
            }
            st.next_frame(&inner.guest, &inner.config)?
        };
        Some((
            RxToken {
                inner,
                frame: Some(frame),
            },
            TxToken { inner },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        let inner = &*self.inner;
        let mut st = inner.state.borrow_mut();
        if st.tx_room_or_arm(&inner.config) {
            return Some(TxToken { inner });
        }
        st.stats.tx_full += 1;
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_LEN_MAX;
        // What the peer may send at once is bounded by the posted rx
        // buffers (smoltcp caps the TCP window it advertises with this).
        caps.max_burst_size = Some(self.inner.config.rx_buffers as usize);
        // smoltcp verifies every checksum on rx: netfront asks the backend
        // for full checksums (feature-no-csum-offload), and a blank one
        // that arrives anyway is filled before smoltcp sees the frame. On
        // tx, smoltcp computes the IPv4 header and ICMP checksums; TCP and
        // UDP ones are left to netfront and the backend when offload is on
        // (`send`, `csum::prepare_tx`).
        if self.inner.config.tx_csum_offload {
            caps.checksum.tcp = Checksum::Rx;
            caps.checksum.udp = Checksum::Rx;
        }
        caps
    }
}

impl crate::device::NetDevice for Netfront {
    fn register_waker(&mut self, waker: &Waker) {
        Netfront::register_waker(self, waker);
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.mac.0
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use core::task::Waker;
    use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};

    fn unconnected_with(config: NetfrontConfig) -> (SimXen, Netfront) {
        let sim = SimXen::new(SimConfig::new(1).quiet());
        let dom = sim.create_domain(DomainConfig::new("g")).id();
        let nf = Netfront::from_parts(sim.guest(dom), config, Mac([0, 0x16, 0x3e, 0, 0, 1]));
        (sim, nf)
    }

    fn unconnected() -> (SimXen, Netfront) {
        unconnected_with(NetfrontConfig::default())
    }

    /// Offload on (the default): smoltcp leaves TCP and UDP checksums on tx
    /// to the device and verifies everything on rx; IPv4 and ICMP stay its
    /// own both ways.
    #[test]
    fn capabilities_are_ethernet_1514_with_tx_csum_offload() {
        let (_sim, nf) = unconnected();
        let caps = nf.capabilities();
        assert_eq!(caps.medium, Medium::Ethernet);
        assert_eq!(caps.max_transmission_unit, 1514);
        assert_eq!(caps.max_burst_size, Some(128));
        let c = &caps.checksum;
        assert!(c.tcp.rx() && !c.tcp.tx());
        assert!(c.udp.rx() && !c.udp.tx());
        assert!(c.ipv4.rx() && c.ipv4.tx());
        assert!(c.icmpv4.rx() && c.icmpv4.tx());
    }

    /// Offload off: smoltcp computes and verifies every checksum.
    #[test]
    fn capabilities_without_offload_are_software_checksums() {
        let (_sim, nf) = unconnected_with(NetfrontConfig {
            tx_csum_offload: false,
            ..NetfrontConfig::default()
        });
        let both = smoltcp::phy::ChecksumCapabilities::default();
        assert_eq!(
            alloc::format!("{:?}", nf.capabilities().checksum),
            alloc::format!("{both:?}")
        );
    }

    /// Down (before the first connection): no tokens, and `poll_ready`
    /// reports why instead of sleeping.
    #[test]
    fn down_link_gives_no_tokens_and_reports_why() {
        let (_sim, mut nf) = unconnected();
        let ts = Instant::from_millis(0);
        assert!(nf.transmit(ts).is_none());
        assert!(nf.receive(ts).is_none());
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(
            nf.poll_ready(&mut cx),
            Poll::Ready(Err(NetfrontError::Down(DownReason::Reconnecting)))
        );
        assert_eq!(
            nf.link(),
            Err(NetfrontError::Down(DownReason::Reconnecting))
        );
        let s = nf.stats();
        assert_eq!((s.tx_full, s.rx_frames), (1, 0));
        assert_eq!(crate::NetDevice::mac(&nf), [0, 0x16, 0x3e, 0, 0, 1]);
    }
}
