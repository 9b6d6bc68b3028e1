//! dom0's netback for one sim vif: the backend half of the xenbus
//! handshake, the tx and rx rings served in rx-copy mode, frames to and
//! from a [`Bridge`] port, and the faults a buggy or hostile backend shows.
//!
//! It uses only what a real dom0 has: its xenstore client, grant maps (the
//! rings) and grant copies (the packets), an interdomain event channel.
//!
//! # Connection states (backend `state` node)
//!
//! ```text
//!  1. feature-rx-copy = 1, feature-rx-flip = 0, feature-sg; InitWait
//!  2. wait: frontend Connected; read tx-ring-ref, rx-ring-ref,
//!     event-channel, request-rx-copy (must be 1), feature-sg
//!  3. map both rings, bind the port; Connected
//!  4. serve until the frontend leaves Connected, a ring breaks, or an
//!     injected disconnect (FaultSite::BackendStateChange)
//!  5. unmap, unbind; Closing; wait: frontend Closing/Closed/Initialising;
//!     Closed; wait: frontend Initialising; back to 1 (a reconnect)
//! ```
//!
//! A handshake that fails (bad ring refs, no rx copy) closes (5) and waits
//! for the frontend to start again. The run ends when the frontend's
//! directory goes away or after [`NetbackConfig::connections_max`]
//! connections.
//!
//! # Packets
//!
//! tx: each request chain (`NETTXF_more_data`, at most
//! `XEN_NETIF_NR_SLOTS_MIN` slots) is checked (sizes, offsets, grants) and
//! grant-copied out; every slot gets a response (`NETIF_RSP_OKAY`, or
//! `NETIF_RSP_ERROR` for a bad packet); good frames go to the bridge. A
//! packet sent with `NETTXF_csum_blank` has its TCP/UDP checksum completed
//! first, as Linux does with the `CHECKSUM_PARTIAL` skb it makes of it
//! ([`complete_csum`]); one it cannot parse is dropped after its
//! `NETIF_RSP_OKAY`, as Linux drops it.
//! rx: a frame from the bridge is grant-copied into as many of the
//! frontend's rx buffers as it needs (one, or chunks of
//! [`NetbackConfig::rx_chunk_max`] bytes chained with `NETRXF_more_data`
//! when the frontend wrote `feature-sg`), at an offset chosen by the seed
//! when [`NetbackConfig::rx_offset_random`] is on.
//!
//! # Faults
//!
//! The ring faults of [`BackRing`] (the world's fault sites): a garbage
//! status ([`FaultSite::RingBadStatus`]; for rx one of: an unknown negative
//! status, a size over the page, an offset + size leaving the page, unknown
//! flags, a frame over the MTU), an id out of range
//! ([`FaultSite::RingBadId`]), a duplicate ([`FaultSite::RingDuplicateId`]),
//! a producer index out of range ([`FaultSite::RingProducerJump`], which
//! breaks the ring until a reconnect); and a disconnect
//! ([`FaultSite::BackendStateChange`]) followed by a reconnect.
#![deny(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::format;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::poll_fn;
use core::pin::pin;
use core::task::{Context, Poll};

use futures::future::{select, Either};
use futures::StreamExt;
use ringlet_executor::yield_now;
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::evtchn::{BindError, EventChannel};
use ringlet_xen::hypervisor::{DomId, GrantRef, Port, PAGE_SIZE};
use ringlet_xen::sim::backring::{BackProtocol, BackRing, BackRingError};
use ringlet_xen::sim::xenbus::{DevicePaths, DeviceSpec};
use ringlet_xen::sim::{FaultSite, GrantError, Prng, SimXen};
use ringlet_xen::xenstore::{ConnectError, RequestError, WatchError, Xenstore, XenstoreError};

use super::bridge::{Bridge, BridgeFull, BridgePort, BRIDGE_FRAME_MAX};
use crate::netfront::netif::{
    NetifRx, NetifTx, RxRequest, RxResponse, TxRequest, TxResponse, NETIF_RSP_ERROR,
    NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_DATA_VALIDATED, NETRXF_KNOWN, NETRXF_MORE_DATA,
    NETTXF_CSUM_BLANK, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, XEN_NETIF_NR_SLOTS_MIN,
};
use crate::netfront::Mac;

/// Frontend state changes one wait handles before giving up.
pub const STATE_CHANGES_MAX: usize = 1024;

/// Requests (tx slots, rx frames) handled per wake before yielding.
pub const BATCH_MAX: usize = 64;

/// How a netback behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetbackConfig {
    /// Write `feature-sg = 1` (accept multi-slot tx packets).
    pub sg: bool,
    /// When the frontend wrote `feature-sg`, split rx frames into chunks
    /// of at most this many bytes (0: one slot per frame).
    pub rx_chunk_max: usize,
    /// Put rx data at a seeded offset in the page (not always 0).
    pub rx_offset_random: bool,
    /// Connections (handshakes) served before the run ends: a bound on
    /// reconnect loops.
    pub connections_max: u32,
}

impl Default for NetbackConfig {
    fn default() -> Self {
        NetbackConfig {
            sg: true,
            rx_chunk_max: 0,
            rx_offset_random: false,
            connections_max: 64,
        }
    }
}

/// Counters of one netback (over its connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetbackStats {
    /// Connections made (the backend reached Connected).
    pub connections: u64,
    /// Handshakes that failed (bad nodes, mapping or binding).
    pub handshake_errors: u64,
    /// Disconnects the backend chose (injected).
    pub injected_disconnects: u64,
    /// Disconnects because the frontend left Connected.
    pub frontend_disconnects: u64,
    /// Disconnects because a ring broke.
    pub ring_errors: u64,
    /// Packets taken from the tx ring and sent to the bridge.
    pub tx_packets: u64,
    /// Bytes of those.
    pub tx_bytes: u64,
    /// Tx packets refused (`NETIF_RSP_ERROR`).
    pub tx_errors: u64,
    /// Of the packets sent to the bridge, those sent with
    /// `NETTXF_csum_blank` whose checksum the backend completed.
    pub tx_csum_completed: u64,
    /// Tx packets with `NETTXF_csum_blank` whose checksum could not be
    /// completed (not unfragmented IPv4 TCP/UDP with whole headers):
    /// answered `NETIF_RSP_OKAY`, then dropped (Linux netback's
    /// `checksum_setup` fails them the same way).
    pub tx_csum_dropped: u64,
    /// Frames copied into the frontend's rx buffers.
    pub rx_packets: u64,
    /// Bytes of those.
    pub rx_bytes: u64,
    /// Of those, frames split over several rx slots.
    pub rx_chained: u64,
    /// Frames whose grant copy failed (`NETIF_RSP_ERROR`).
    pub rx_errors: u64,
    /// Frames too big for the frontend's buffers (no sg), dropped.
    pub rx_dropped: u64,
}

/// How a netback's run ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetbackExit {
    /// The frontend's directory went away (the device was removed).
    FrontendGone,
    /// [`NetbackConfig::connections_max`] connections were served.
    ConnectionsDone,
}

/// Why a netback's run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetbackError {
    /// dom0's xenstore client could not connect.
    Connect(ConnectError),
    /// A xenstore request failed.
    Xenstore(RequestError),
    /// A watch could not be set.
    Watch(WatchError),
    /// A watch ended (the xenstore connection broke).
    WatchEnded,
    /// The frontend's state changed [`STATE_CHANGES_MAX`] times in one wait.
    TooManyChanges,
    /// The bridge has no free port.
    Bridge(BridgeFull),
}

impl fmt::Display for NetbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetbackError::Connect(e) => write!(f, "netback: {e}"),
            NetbackError::Xenstore(e) => write!(f, "netback: {e}"),
            NetbackError::Watch(e) => write!(f, "netback: {e}"),
            NetbackError::WatchEnded => f.write_str("netback: xenstore watch ended"),
            NetbackError::TooManyChanges => f.write_str("netback: frontend state keeps changing"),
            NetbackError::Bridge(e) => write!(f, "netback: {e}"),
        }
    }
}

impl core::error::Error for NetbackError {}

impl From<RequestError> for NetbackError {
    fn from(e: RequestError) -> Self {
        NetbackError::Xenstore(e)
    }
}

/// Why one connection could not be made (counted, then the backend closes
/// and waits for the frontend to start over).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandshakeError {
    Node,
    NoRxCopy,
    Map(GrantError),
    Bind(BindError),
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Frontend,
    Injected,
    Ring,
    Gone,
}

impl BackProtocol for NetifTx {
    fn read_request(slot: &[u8]) -> TxRequest {
        TxRequest::decode(slot)
    }

    fn write_response(rsp: &TxResponse, slot: &mut [u8]) {
        rsp.encode(slot);
    }

    fn set_response_id(rsp: &mut TxResponse, id: u64) {
        rsp.id = id as u16;
    }

    fn set_garbage_status(rsp: &mut TxResponse, noise: u64) {
        // Never one of -2..=1 (DROPPED, ERROR, OKAY, NULL).
        let n = (noise >> 1) % 30_000;
        rsp.status = if noise & 1 == 0 {
            2 + n as i16
        } else {
            -3 - n as i16
        };
    }
}

impl BackProtocol for NetifRx {
    fn read_request(slot: &[u8]) -> RxRequest {
        RxRequest::decode(slot)
    }

    fn write_response(rsp: &RxResponse, slot: &mut [u8]) {
        rsp.encode(slot);
    }

    fn set_response_id(rsp: &mut RxResponse, id: u64) {
        rsp.id = id as u16;
    }

    fn set_garbage_status(rsp: &mut RxResponse, noise: u64) {
        let n = (noise / 8) as usize;
        let page = PAGE_SIZE as i16;
        match noise % 5 {
            // An unknown negative status.
            0 => rsp.status = -3 - (n % 1000) as i16,
            // A size over the page.
            1 => rsp.status = page + 1 + (n % 1000) as i16,
            // Offset + size leaving the page.
            2 => {
                rsp.offset = (PAGE_SIZE - 1 - n % 16) as u16;
                rsp.status = rsp.status.max(17);
            }
            // Flags netif.h does not define.
            3 => rsp.flags |= 1 << (5 + n % 11),
            // A frame longer than the MTU (in the page).
            _ => {
                rsp.offset = 0;
                rsp.status = 1515 + (n % 2000) as i16;
                rsp.flags &= NETRXF_KNOWN & !NETRXF_MORE_DATA;
            }
        }
    }
}

/// Adds vif `devid` of `front` with `mac` as the toolstack does (both
/// directories, `mac` in each), backed by dom0.
pub fn add_vif(sim: &SimXen, front: DomId, devid: u32, mac: Mac) -> DevicePaths {
    let mac = format!("{mac}");
    sim.add_device(
        &DeviceSpec::new("vif", front, devid)
            .front_node("mac", &mac)
            .back_node("mac", &mac)
            .back_node("bridge", "simbr0"),
    )
}

/// A shared view of a netback's counters.
#[derive(Clone, Debug, Default)]
pub struct NetbackStatsHandle(Rc<RefCell<NetbackStats>>);

impl NetbackStatsHandle {
    /// The counters now.
    pub fn get(&self) -> NetbackStats {
        *self.0.borrow()
    }
}

/// One connection's rings and port.
struct Connection {
    front: DomId,
    tx: BackRing<NetifTx>,
    rx: BackRing<NetifRx>,
    channel: EventChannel,
    /// The frontend wrote `feature-sg`: rx frames may be chained.
    front_sg: bool,
    /// Rx requests taken but not yet answered (at most the ring's size).
    stash: VecDeque<RxRequest>,
}

/// dom0's netback for one vif (see the module doc).
#[derive(Debug)]
pub struct Netback {
    sim: SimXen,
    port: BridgePort,
    paths: DevicePaths,
    config: NetbackConfig,
    prng: Prng,
    stats: NetbackStatsHandle,
}

impl Netback {
    /// A netback for the vif at `paths` (from [`add_vif`]), on a new port
    /// of `bridge`. Run it with [`run`](Self::run).
    ///
    /// # Errors
    /// [`NetbackError::Bridge`] if the bridge has no free port.
    pub fn new(
        sim: &SimXen,
        bridge: &Bridge,
        paths: DevicePaths,
        config: NetbackConfig,
    ) -> Result<Netback, NetbackError> {
        let port = bridge.attach().map_err(NetbackError::Bridge)?;
        Ok(Netback {
            prng: sim.prng(&format!("netback/{}/{}", paths.front.0, paths.devid)),
            sim: sim.clone(),
            port,
            paths,
            config,
            stats: NetbackStatsHandle::default(),
        })
    }

    /// A view of the counters that outlives the run.
    pub fn stats(&self) -> NetbackStatsHandle {
        self.stats.clone()
    }

    fn count(&self, f: impl FnOnce(&mut NetbackStats)) {
        f(&mut self.stats.0.borrow_mut());
    }

    fn note(&self, text: &str) {
        self.sim.note(
            self.paths.front,
            format!("netback vif{}: {text}", self.paths.devid),
        );
    }

    /// Serves the vif: handshakes, packets, disconnects and reconnects,
    /// until the frontend's directory goes away or
    /// [`NetbackConfig::connections_max`] connections were served.
    ///
    /// # Errors
    /// [`NetbackError`] when xenstore fails it.
    ///
    /// # Cancellation
    /// Dropping the future disconnects at once (mappings and port go)
    /// without a word in xenstore, as a crashed backend would.
    pub async fn run(mut self) -> Result<NetbackExit, NetbackError> {
        let xs = self.sim.dom0_xenstore().map_err(NetbackError::Connect)?;
        let be = self.paths.backend.clone();
        let fe_state = format!("{}/state", self.paths.frontend);
        let mut served = 0;
        // A frontend already Connected when this backend starts was
        // connected to an earlier backend (which crashed): its ring refs are
        // stale. Close first, so that it starts over.
        let mut stale = xs
            .read_optional(&fe_state)
            .await?
            .as_deref()
            .map(XenbusState::parse)
            == Some(Ok(XenbusState::Connected));
        loop {
            if stale {
                stale = false;
                self.note("frontend connected to an earlier backend: closing first");
                xs.write(&format!("{be}/state"), XenbusState::Closing.as_str())
                    .await?;
                let accept = |s| {
                    matches!(
                        s,
                        XenbusState::Closing | XenbusState::Closed | XenbusState::Initialising
                    )
                };
                if wait_front(&xs, &fe_state, accept).await?.is_none() {
                    return Ok(NetbackExit::FrontendGone);
                }
                xs.write(&format!("{be}/state"), XenbusState::Closed.as_str())
                    .await?;
                if wait_front(&xs, &fe_state, |s| s == XenbusState::Initialising)
                    .await?
                    .is_none()
                {
                    return Ok(NetbackExit::FrontendGone);
                }
            }
            // 1.
            xs.write(&format!("{be}/feature-rx-copy"), "1").await?;
            xs.write(&format!("{be}/feature-rx-flip"), "0").await?;
            let sg = if self.config.sg { "1" } else { "0" };
            xs.write(&format!("{be}/feature-sg"), sg).await?;
            xs.write(&format!("{be}/state"), XenbusState::InitWait.as_str())
                .await?;
            // 2.
            let Some(s) = wait_front(&xs, &fe_state, |s| {
                matches!(
                    s,
                    XenbusState::Connected | XenbusState::Closing | XenbusState::Closed
                )
            })
            .await?
            else {
                return Ok(NetbackExit::FrontendGone);
            };
            let ended = if s == XenbusState::Connected {
                match self.handshake(&xs).await? {
                    Ok(conn) => {
                        // 3.
                        xs.write(&format!("{be}/state"), XenbusState::Connected.as_str())
                            .await?;
                        self.count(|s| s.connections += 1);
                        self.note("connected");
                        served += 1;
                        // 4.
                        let e = self.serve(&xs, conn, &fe_state).await?;
                        self.note(&format!("disconnected: {e:?}"));
                        e
                    }
                    Err(e) => {
                        self.note(&format!("handshake failed: {e:?}"));
                        self.count(|s| s.handshake_errors += 1);
                        Ended::Frontend
                    }
                }
            } else {
                Ended::Frontend
            };
            if ended == Ended::Gone {
                return Ok(NetbackExit::FrontendGone);
            }
            // 5.
            xs.write(&format!("{be}/state"), XenbusState::Closing.as_str())
                .await?;
            let accept = |s| {
                matches!(
                    s,
                    XenbusState::Closing | XenbusState::Closed | XenbusState::Initialising
                )
            };
            if wait_front(&xs, &fe_state, accept).await?.is_none() {
                return Ok(NetbackExit::FrontendGone);
            }
            xs.write(&format!("{be}/state"), XenbusState::Closed.as_str())
                .await?;
            if served >= self.config.connections_max {
                return Ok(NetbackExit::ConnectionsDone);
            }
            if wait_front(&xs, &fe_state, |s| s == XenbusState::Initialising)
                .await?
                .is_none()
            {
                return Ok(NetbackExit::FrontendGone);
            }
        }
    }

    /// Step 2 and the mapping of step 3. The outer `Result` is xenstore
    /// failing; the inner one a frontend that cannot be served.
    async fn handshake(
        &self,
        xs: &Xenstore,
    ) -> Result<Result<Connection, HandshakeError>, NetbackError> {
        let fe = &self.paths.frontend;
        let read = async |name: &str| -> Result<Option<u32>, NetbackError> {
            match xs.read_int::<u32>(&format!("{fe}/{name}")).await {
                Ok(v) => Ok(Some(v)),
                Err(RequestError::BadValue | RequestError::Xenstore(XenstoreError::NoEnt)) => {
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        };
        let (Some(tx_ref), Some(rx_ref), Some(port)) = (
            read("tx-ring-ref").await?,
            read("rx-ring-ref").await?,
            read("event-channel").await?,
        ) else {
            return Ok(Err(HandshakeError::Node));
        };
        if read("request-rx-copy").await? != Some(1) {
            return Ok(Err(HandshakeError::NoRxCopy));
        }
        let front_sg = read("feature-sg").await?.is_some_and(|v| v != 0);
        let dom0 = self.sim.dom0();
        let front = self.paths.front;
        let tx = match dom0.map_grant(front, GrantRef(tx_ref), false) {
            Ok(m) => m,
            Err(e) => return Ok(Err(HandshakeError::Map(e))),
        };
        let rx = match dom0.map_grant(front, GrantRef(rx_ref), false) {
            Ok(m) => m,
            Err(e) => return Ok(Err(HandshakeError::Map(e))),
        };
        let channel =
            match EventChannel::bind_interdomain(&self.sim.guest(DomId::DOM0), front, Port(port)) {
                Ok(c) => c,
                Err(e) => return Ok(Err(HandshakeError::Bind(e))),
            };
        Ok(Ok(Connection {
            front,
            tx: BackRing::attach(tx),
            rx: BackRing::attach(rx),
            channel,
            front_sg,
            stash: VecDeque::new(),
        }))
    }

    /// Step 4: serves the connection until it ends (dropping it unmaps the
    /// rings and closes the port).
    async fn serve(
        &mut self,
        xs: &Xenstore,
        mut conn: Connection,
        fe_state: &str,
    ) -> Result<Ended, NetbackError> {
        let mut watch = xs.watch(fe_state).await.map_err(NetbackError::Watch)?;
        loop {
            let state_changed = {
                let work = pin!(poll_fn(|cx| self.poll_work(&mut conn, cx)));
                match select(work, StreamExt::next(&mut watch)).await {
                    Either::Left(((), _)) => false,
                    Either::Right((Some(_), _)) => true,
                    Either::Right((None, _)) => return Err(NetbackError::WatchEnded),
                }
            };
            if state_changed {
                match xs.read_optional(fe_state).await? {
                    None => return Ok(Ended::Gone),
                    Some(v) if XenbusState::parse(&v) == Ok(XenbusState::Connected) => {}
                    Some(_) => {
                        self.count(|s| s.frontend_disconnects += 1);
                        return Ok(Ended::Frontend);
                    }
                }
                continue;
            }
            if self.sim.fault(FaultSite::BackendStateChange, conn.front) {
                self.count(|s| s.injected_disconnects += 1);
                return Ok(Ended::Injected);
            }
            let r = self
                .tx_batch(&mut conn)
                .and_then(|()| self.rx_batch(&mut conn));
            let notify_tx = conn.tx.push_responses();
            let notify_rx = conn.rx.push_responses();
            if let Err(e) = r {
                self.note(&format!("ring error: {e}"));
                self.count(|s| s.ring_errors += 1);
                return Ok(Ended::Ring);
            }
            if (notify_tx || notify_rx) && conn.channel.notify().is_err() {
                self.count(|s| s.ring_errors += 1);
                return Ok(Ended::Ring);
            }
            yield_now().await;
        }
    }

    /// The rx chunk size in use: [`NetbackConfig::rx_chunk_max`], raised
    /// so that a frame never needs more than `XEN_NETIF_NR_SLOTS_MIN` slots.
    fn chunk(&self) -> usize {
        self.config
            .rx_chunk_max
            .max(BRIDGE_FRAME_MAX.div_ceil(XEN_NETIF_NR_SLOTS_MIN))
    }

    /// Rx slots the head frame needs (0: nothing queued).
    fn slots_needed(&self, conn: &Connection) -> usize {
        match self.port.peek_len() {
            None => 0,
            Some(len) if conn.front_sg && self.config.rx_chunk_max > 0 => {
                len.div_ceil(self.chunk()).max(1)
            }
            Some(_) => 1,
        }
    }

    /// Ready when there is work: a notification, a tx request, or a frame
    /// for which rx requests are there (or may be taken).
    fn poll_work(&self, conn: &mut Connection, cx: &mut Context<'_>) -> Poll<()> {
        if conn.channel.poll_wait(cx).is_ready() {
            return Poll::Ready(());
        }
        let frames = self.port.poll_ready(cx).is_ready();
        if conn.tx.final_check() {
            return Poll::Ready(());
        }
        let need = self.slots_needed(conn);
        if frames && (conn.stash.len() >= need || conn.rx.final_check()) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Takes up to [`BATCH_MAX`] tx packets, copies them out, then answers
    /// every slot (the whole batch is taken first, as Linux netback does, so
    /// responses overtake requests still in the ring), and sends good
    /// frames to the bridge.
    fn tx_batch(&mut self, conn: &mut Connection) -> Result<(), BackRingError> {
        let mut answers: Vec<TxResponse> = Vec::new();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut result = Ok(());
        for _ in 0..BATCH_MAX {
            let first = match conn.tx.take_request() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let mut slots = vec![first];
            let mut extras = Vec::new();
            let mut ok = true;
            if first.flags & NETTXF_EXTRA_INFO != 0 {
                // One extra-info slot (netfront never sends one; a real
                // backend answers it with NETIF_RSP_NULL).
                match conn.tx.take_request() {
                    Ok(Some(x)) => extras.push(x),
                    _ => ok = false,
                }
            }
            while ok
                && slots
                    .last()
                    .is_some_and(|s| s.flags & NETTXF_MORE_DATA != 0)
            {
                if slots.len() >= XEN_NETIF_NR_SLOTS_MIN {
                    ok = false;
                    break;
                }
                match conn.tx.take_request() {
                    Ok(Some(s)) => slots.push(s),
                    _ => ok = false,
                }
            }
            let mut frame = if ok {
                self.copy_tx(conn.front, &slots)
            } else {
                None
            };
            // Linux answers OKAY once the data is copied, and only then
            // finds (in `checksum_setup`) a blank checksum it cannot fill.
            let mut csum_dropped = false;
            if let Some(f) = frame
                .as_mut()
                .filter(|_| first.flags & NETTXF_CSUM_BLANK != 0)
            {
                if complete_csum(f) {
                    self.count(|s| s.tx_csum_completed += 1);
                } else {
                    self.count(|s| s.tx_csum_dropped += 1);
                    csum_dropped = true;
                }
            }
            let status = if frame.is_some() {
                NETIF_RSP_OKAY
            } else {
                NETIF_RSP_ERROR
            };
            answers.extend(slots.iter().map(|s| TxResponse { id: s.id, status }));
            answers.extend(extras.iter().map(|x| TxResponse {
                id: x.id,
                status: NETIF_RSP_NULL,
            }));
            match frame {
                Some(_) if csum_dropped => {}
                Some(f) => {
                    self.count(|s| {
                        s.tx_packets += 1;
                        s.tx_bytes += f.len() as u64;
                    });
                    frames.push(f);
                }
                None => self.count(|s| s.tx_errors += 1),
            }
        }
        for a in answers {
            conn.tx.push_response(a);
        }
        for f in frames {
            self.port.send(&f);
        }
        result
    }

    /// Checks a tx chain's sizes and copies its bytes out of the
    /// frontend's grants; `None` for a bad packet.
    fn copy_tx(&self, front: DomId, slots: &[TxRequest]) -> Option<Vec<u8>> {
        let total = usize::from(slots[0].size);
        let rest: usize = slots[1..].iter().map(|s| usize::from(s.size)).sum();
        if total > BRIDGE_FRAME_MAX || rest > total {
            return None;
        }
        let mut frame = vec![0u8; total];
        let mut at = 0;
        for (i, s) in slots.iter().enumerate() {
            let len = if i == 0 {
                total - rest
            } else {
                usize::from(s.size)
            };
            if usize::from(s.offset) + len > PAGE_SIZE {
                return None;
            }
            let dom0 = self.sim.dom0();
            dom0.copy_from_grant(
                front,
                GrantRef(s.gref),
                usize::from(s.offset),
                &mut frame[at..at + len],
            )
            .ok()?;
            at += len;
        }
        Some(frame)
    }

    /// Copies up to [`BATCH_MAX`] bridge frames into the frontend's rx
    /// buffers, while it has posted enough of them.
    fn rx_batch(&mut self, conn: &mut Connection) -> Result<(), BackRingError> {
        for _ in 0..BATCH_MAX {
            let need = self.slots_needed(conn);
            if need == 0 {
                return Ok(());
            }
            // Take what the frontend posted (as Linux netback consumes rx
            // requests ahead), at least what this frame needs.
            while let Some(r) = conn.rx.take_request()? {
                conn.stash.push_back(r);
            }
            while conn.stash.len() < need {
                match conn.rx.take_request()? {
                    Some(r) => conn.stash.push_back(r),
                    None => return Ok(()),
                }
            }
            let frame = self.port.recv().expect("peeked a frame");
            if frame.len() > PAGE_SIZE && need == 1 {
                self.count(|s| s.rx_dropped += 1);
                continue;
            }
            let chunk = if need == 1 { frame.len() } else { self.chunk() };
            let mut failed = false;
            for (i, part) in frame.chunks(chunk.max(1)).enumerate() {
                let req = conn.stash.pop_front().expect("stash holds `need` requests");
                let room = PAGE_SIZE - part.len();
                let offset = if self.config.rx_offset_random {
                    self.prng.below(room as u64 + 1) as usize
                } else {
                    0
                };
                let more = i + 1 < need;
                let copied = self
                    .sim
                    .dom0()
                    .copy_to_grant(conn.front, GrantRef(req.gref), offset, part)
                    .is_ok();
                failed |= !copied;
                let flags = if more { NETRXF_MORE_DATA } else { 0 } | NETRXF_DATA_VALIDATED;
                conn.rx.push_response(RxResponse {
                    id: req.id,
                    offset: offset as u16,
                    flags,
                    status: if copied {
                        part.len() as i16
                    } else {
                        NETIF_RSP_ERROR
                    },
                });
            }
            self.count(|s| {
                if failed {
                    s.rx_errors += 1;
                } else {
                    s.rx_packets += 1;
                    s.rx_bytes += frame.len() as u64;
                    if need > 1 {
                        s.rx_chained += 1;
                    }
                }
            });
        }
        Ok(())
    }
}

/// Completes the TCP or UDP checksum of a frame sent with
/// `NETTXF_csum_blank`, as Linux does: xen-netback's `checksum_setup` →
/// `skb_checksum_setup(skb, false)` finds where the checksum starts, then
/// `skb_checksum_help` sums from there to the end of the frame (the field
/// holds the pseudo-header sum the frontend put there and is summed with
/// the rest) and stores the complement, 0 as 0xffff (`CSUM_MANGLED_0`).
/// Returns false, the frame untouched, when the frame is not what
/// `skb_checksum_setup_ipv4` accepts: Ethernet type IPv4 (no VLAN tag), a
/// whole IPv4 header, not a fragment, TCP with 20 header bytes or UDP with
/// 8. (Linux does not look at the IP version or at a header length under
/// 5 words there; this model refuses those too.)
pub fn complete_csum(frame: &mut [u8]) -> bool {
    const ETH: usize = 14;
    if frame.len() < ETH + 20 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let ip = &frame[ETH..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if ip[0] >> 4 != 4 || ihl < 20 || frag & 0x3fff != 0 {
        return false;
    }
    let (header, field) = match ip[9] {
        6 => (20, 16),
        17 => (8, 6),
        _ => return false,
    };
    let start = ETH + ihl;
    if frame.len() < start + header {
        return false;
    }
    let sum = !smoltcp::wire::checksum::data(&frame[start..]);
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[start + field..start + field + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Waits until the frontend state at `path` is one `accept` takes and
/// returns it; `None` if the node is gone (the device was removed).
async fn wait_front(
    xs: &Xenstore,
    path: &str,
    accept: impl Fn(XenbusState) -> bool,
) -> Result<Option<XenbusState>, NetbackError> {
    let mut watch = xs.watch(path).await.map_err(NetbackError::Watch)?;
    for _ in 0..STATE_CHANGES_MAX {
        match xs.read_optional(path).await? {
            None => return Ok(None),
            Some(v) => {
                if let Ok(s) = XenbusState::parse(&v) {
                    if accept(s) {
                        return Ok(Some(s));
                    }
                }
            }
        }
        if StreamExt::next(&mut watch).await.is_none() {
            return Err(NetbackError::WatchEnded);
        }
    }
    Err(NetbackError::TooManyChanges)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn garbage_rx_responses_are_always_malformed() {
        use crate::netfront::rx::{RxAssembler, RxStep};
        for noise in 0..2000u64 {
            let mut rsp = RxResponse {
                id: 1,
                offset: 0,
                flags: 0,
                status: 60,
            };
            NetifRx::set_garbage_status(&mut rsp, noise.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut a = RxAssembler::new(true);
            let step = a.push(&rsp, |_, dst| dst.fill(0));
            assert!(
                matches!(step, RxStep::Dropped(_)),
                "noise {noise}: {rsp:?} gave {step:?}"
            );
        }
    }

    /// An Ethernet + IPv4 frame (header of `ihl` words) around a TCP or UDP
    /// segment of `len` payload bytes, its checksum computed by smoltcp.
    fn full_frame(tcp: bool, ihl: u8, len: usize) -> Vec<u8> {
        use smoltcp::wire::{IpAddress, Ipv4Address, TcpPacket, UdpPacket};
        let l4 = if tcp { 20 } else { 8 } + len;
        let ip_len = usize::from(ihl) * 4;
        let mut f = vec![0u8; 14 + ip_len + l4];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x40 | ihl;
        f[16..18].copy_from_slice(&((ip_len + l4) as u16).to_be_bytes());
        f[23] = if tcp { 6 } else { 17 };
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        for (i, b) in f[14 + 20..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0x5a;
        }
        let start = 14 + ip_len;
        let (s, d) = (
            IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)),
            IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)),
        );
        if tcp {
            f[start + 12] = 5 << 4;
            TcpPacket::new_unchecked(&mut f[start..]).fill_checksum(&s, &d);
        } else {
            f[start + 4..start + 6].copy_from_slice(&(l4 as u16).to_be_bytes());
            UdpPacket::new_unchecked(&mut f[start..]).fill_checksum(&s, &d);
        }
        f
    }

    /// The backend's completion of a frame whose field holds the
    /// pseudo-header sum gives smoltcp's full checksum (TCP and UDP, odd
    /// lengths, IPv4 options).
    #[test]
    fn csum_blank_is_completed_as_linux_does() {
        use smoltcp::wire::{checksum, IpProtocol, Ipv4Address};
        for tcp in [true, false] {
            for ihl in [5, 6, 15] {
                for len in [0, 1, 2, 99, 1000] {
                    let want = full_frame(tcp, ihl, len);
                    let start = 14 + usize::from(ihl) * 4;
                    let field = start + if tcp { 16 } else { 6 };
                    let proto = if tcp {
                        IpProtocol::Tcp
                    } else {
                        IpProtocol::Udp
                    };
                    let pseudo = checksum::pseudo_header_v4(
                        &Ipv4Address::new(10, 0, 0, 1),
                        &Ipv4Address::new(10, 0, 0, 2),
                        proto,
                        (want.len() - start) as u32,
                    );
                    let mut f = want.clone();
                    f[field..field + 2].copy_from_slice(&pseudo.to_be_bytes());
                    assert!(complete_csum(&mut f));
                    if tcp && want[field..field + 2] == [0, 0] {
                        // Linux stores a computed 0 as 0xffff, TCP too.
                        assert_eq!(f[field..field + 2], [0xff, 0xff]);
                    } else {
                        assert_eq!(f, want, "tcp {tcp} ihl {ihl} len {len}");
                    }
                }
            }
        }
    }

    /// What Linux's `skb_checksum_setup_ipv4` refuses is refused, the frame
    /// left as it was.
    #[test]
    fn csum_blank_that_cannot_be_completed() {
        let good = full_frame(true, 5, 10);
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut vlan = good.clone();
        vlan[12..14].copy_from_slice(&[0x81, 0x00]);
        let mut icmp = good.clone();
        icmp[23] = 1;
        let mut more_frags = good.clone();
        more_frags[20] = 0x20;
        let mut offset = good.clone();
        offset[21] = 1;
        let mut v6 = good.clone();
        v6[14] = 0x65;
        let mut ihl4 = good.clone();
        ihl4[14] = 0x44;
        let short_tcp = good[..14 + 20 + 19].to_vec();
        let short_ip = good[..14 + 19].to_vec();
        let short_udp = full_frame(false, 5, 0)[..14 + 20 + 7].to_vec();
        for (i, f) in [
            arp, vlan, icmp, more_frags, offset, v6, ihl4, short_tcp, short_ip, short_udp,
        ]
        .into_iter()
        .enumerate()
        {
            let mut g = f.clone();
            assert!(!complete_csum(&mut g), "case {i}");
            assert_eq!(g, f, "case {i}");
        }
        // The Don't Fragment bit is not a fragment.
        let mut df = good.clone();
        df[20] = 0x40;
        assert!(complete_csum(&mut df));
    }

    #[test]
    fn garbage_tx_status_is_never_defined() {
        for noise in 0..1000u64 {
            let mut r = TxResponse { id: 0, status: 0 };
            NetifTx::set_garbage_status(&mut r, noise.wrapping_mul(0x2545_f491_4f6c_dd1d));
            assert!(!(-2..=1).contains(&r.status), "{r:?}");
        }
    }
}
