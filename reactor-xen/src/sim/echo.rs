//! The echo ring: a small request/response protocol over io/ring.h, with a
//! backend that runs in dom0 and a front-end client, so that the core's
//! [`FrontRing`] (and the sim's [`BackRing`]) are exercised end to end over
//! real grants and event channels.
//!
//! A request carries an id and up to [`ECHO_PAYLOAD_MAX`] bytes; the
//! response echoes both. The slot layout (64 bytes, 32 slots per page):
//!
//! ```text
//! request:  id u16 @0 | len u16 @2 | pad u32 @4 | payload [56] @8
//! response: id u16 @0 | status i16 @2 | len u16 @4 | pad u16 @6 | payload [56] @8
//! ```
//!
//! Set-up is either through xenbus, as every real PV device does
//! ([`SimXen::add_device`] with kind `echo`, then
//! [`EchoBackend::serve_xenbus`] in dom0 and [`EchoClient::connect_xenbus`]
//! in the guest: `ring-ref` and `event-channel` in the front end's
//! directory, the states of [`super::xenbus`]), or direct
//! ([`EchoBackend::connect`] is handed the grant ref and port).

use alloc::format;
use alloc::vec::Vec;
use core::fmt;

use core::pin::pin;

use futures::future::{select, Either};

use super::backring::{BackProtocol, BackRing, BackRingError, BackRingStats};
use super::faults::FaultSite;
use super::grant::GrantError as MapError;
use super::prng::Prng;
use super::xenbus::{wait_state, DevicePaths, XenbusBackend, XenbusError};
use super::SimXen;
use crate::abi::xenbus::XenbusState;
use crate::evtchn::{BindError, EventChannel, NotifyError};
use crate::guest::Guest;
use crate::hypervisor::{DomId, GrantRef, Port};
use crate::ring::{
    FrontRing, RequestId, RingError, RingFull, RingProtocol, RingSetupError, RingStats,
};
use crate::xenstore::{ConnectError, RequestError, TransactionError, Xenstore};

/// Bytes of one echo slot.
pub const ECHO_SLOT_SIZE: usize = 64;
/// Most payload bytes in one request.
pub const ECHO_PAYLOAD_MAX: usize = 56;
/// Status: echoed.
pub const ECHO_OK: i16 = 0;
/// Status: the request was malformed (length over [`ECHO_PAYLOAD_MAX`]).
pub const ECHO_ERROR: i16 = -1;

/// An echo request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoRequest {
    /// The ring's request id.
    pub id: u16,
    /// Payload length claimed (a backend checks it).
    pub len: u16,
    /// Payload bytes (`len` of them are meant).
    pub payload: [u8; ECHO_PAYLOAD_MAX],
}

/// An echo response, as decoded from the ring (not yet validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoResponse {
    /// The id of the request answered.
    pub id: u16,
    /// [`ECHO_OK`] or [`ECHO_ERROR`]; anything else is malformed.
    pub status: i16,
    /// Payload length.
    pub len: u16,
    /// Payload bytes.
    pub payload: [u8; ECHO_PAYLOAD_MAX],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The echo protocol's slot codec.
#[derive(Debug)]
pub enum EchoProtocol {}

impl RingProtocol for EchoProtocol {
    type Request = EchoRequest;
    type Response = EchoResponse;
    const SLOT_SIZE: usize = ECHO_SLOT_SIZE;

    fn write_request(req: &EchoRequest, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&req.id.to_le_bytes());
        slot[2..4].copy_from_slice(&req.len.to_le_bytes());
        slot[8..8 + ECHO_PAYLOAD_MAX].copy_from_slice(&req.payload);
    }

    fn read_response(slot: &[u8]) -> EchoResponse {
        let mut payload = [0u8; ECHO_PAYLOAD_MAX];
        payload.copy_from_slice(&slot[8..8 + ECHO_PAYLOAD_MAX]);
        EchoResponse {
            id: u16_at(slot, 0),
            status: u16_at(slot, 2) as i16,
            len: u16_at(slot, 4),
            payload,
        }
    }

    fn response_id(rsp: &EchoResponse) -> u64 {
        u64::from(rsp.id)
    }
}

impl BackProtocol for EchoProtocol {
    fn read_request(slot: &[u8]) -> EchoRequest {
        let mut payload = [0u8; ECHO_PAYLOAD_MAX];
        payload.copy_from_slice(&slot[8..8 + ECHO_PAYLOAD_MAX]);
        EchoRequest {
            id: u16_at(slot, 0),
            len: u16_at(slot, 2),
            payload,
        }
    }

    fn write_response(rsp: &EchoResponse, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&rsp.id.to_le_bytes());
        slot[2..4].copy_from_slice(&rsp.status.to_le_bytes());
        slot[4..6].copy_from_slice(&rsp.len.to_le_bytes());
        slot[8..8 + ECHO_PAYLOAD_MAX].copy_from_slice(&rsp.payload);
    }

    fn set_response_id(rsp: &mut EchoResponse, id: u64) {
        rsp.id = id as u16;
    }

    fn set_garbage_status(rsp: &mut EchoResponse, noise: u64) {
        // 1..=30000: never ECHO_OK (0) nor ECHO_ERROR (-1).
        rsp.status = (noise % 30_000) as i16 + 1;
    }
}

/// The backend's answer to `req`.
pub fn echo(req: &EchoRequest) -> EchoResponse {
    if usize::from(req.len) > ECHO_PAYLOAD_MAX {
        return EchoResponse {
            id: req.id,
            status: ECHO_ERROR,
            len: 0,
            payload: [0; ECHO_PAYLOAD_MAX],
        };
    }
    EchoResponse {
        id: req.id,
        status: ECHO_OK,
        len: req.len,
        payload: req.payload,
    }
}

// ----- backend -----

/// Why the echo backend could not connect or went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EchoBackendError {
    /// The ring's grant could not be mapped.
    Map(MapError),
    /// The front end's port could not be bound.
    Bind(BindError),
    /// The ring is unusable.
    Ring(BackRingError),
    /// Notifying the front end failed.
    Notify(NotifyError),
}

impl fmt::Display for EchoBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoBackendError::Map(e) => write!(f, "echo backend: mapping the ring: {e}"),
            EchoBackendError::Bind(e) => write!(f, "echo backend: binding the port: {e}"),
            EchoBackendError::Ring(e) => write!(f, "echo backend: {e}"),
            EchoBackendError::Notify(e) => write!(f, "echo backend: {e}"),
        }
    }
}

impl core::error::Error for EchoBackendError {}

/// How the echo backend behaves (default: answers at once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoBackendConfig {
    /// Each batch of requests is answered after a virtual delay drawn from
    /// `0..=latency_ns_max` (0: at once).
    pub latency_ns_max: u64,
}

/// How an echo backend's run ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoBackendExit {
    /// It disconnected on its own ([`FaultSite::BackendStateChange`]).
    Disconnected,
    /// The front end closed the device (xenbus).
    FrontendClosed,
}

/// Why an echo xenbus handshake (either side) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EchoXenbusError {
    /// The xenstore client could not connect.
    Connect(ConnectError),
    /// A xenstore request failed.
    Xenstore(RequestError),
    /// Publishing the ring in a transaction failed.
    Transaction(TransactionError<RequestError>),
    /// A xenbus step failed (the peer closed, the watch ended, ...).
    Xenbus(XenbusError),
    /// The backend could not connect to the ring.
    Backend(EchoBackendError),
    /// The front end could not make its ring.
    Setup(EchoSetupError),
}

impl fmt::Display for EchoXenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoXenbusError::Connect(e) => write!(f, "echo xenbus: {e}"),
            EchoXenbusError::Xenstore(e) => write!(f, "echo xenbus: {e}"),
            EchoXenbusError::Transaction(e) => write!(f, "echo xenbus: {e}"),
            EchoXenbusError::Xenbus(e) => write!(f, "echo {e}"),
            EchoXenbusError::Backend(e) => write!(f, "echo xenbus: {e}"),
            EchoXenbusError::Setup(e) => write!(f, "echo xenbus: {e}"),
        }
    }
}

impl core::error::Error for EchoXenbusError {}

impl From<XenbusError> for EchoXenbusError {
    fn from(e: XenbusError) -> Self {
        EchoXenbusError::Xenbus(e)
    }
}

impl From<RequestError> for EchoXenbusError {
    fn from(e: RequestError) -> Self {
        EchoXenbusError::Xenstore(e)
    }
}

/// The echo backend for one front end, in dom0.
#[derive(Debug)]
pub struct EchoBackend {
    ring: BackRing<EchoProtocol>,
    channel: EventChannel,
    sim: SimXen,
    front: DomId,
    config: EchoBackendConfig,
    prng: Prng,
}

impl EchoBackend {
    /// Connects to `front`'s ring as dom0: maps grant `ring_ref` writable
    /// and binds to `front`'s unbound `port` (both as a real backend reads
    /// them from xenstore).
    ///
    /// # Errors
    ///
    /// [`EchoBackendError::Map`] or [`EchoBackendError::Bind`].
    pub fn connect(
        sim: &SimXen,
        front: DomId,
        ring_ref: GrantRef,
        port: Port,
        config: EchoBackendConfig,
    ) -> Result<EchoBackend, EchoBackendError> {
        let map = sim
            .dom0()
            .map_grant(front, ring_ref, false)
            .map_err(EchoBackendError::Map)?;
        let channel = EventChannel::bind_interdomain(&sim.guest(DomId::DOM0), front, port)
            .map_err(EchoBackendError::Bind)?;
        Ok(EchoBackend {
            ring: BackRing::attach(map),
            channel,
            sim: sim.clone(),
            front,
            config,
            prng: sim.fork_prng(),
        })
    }

    /// The ring's counters.
    pub fn stats(&self) -> BackRingStats {
        self.ring.stats()
    }

    /// The backend of the echo device at `paths` (added with
    /// [`SimXen::add_device`]), through xenbus: InitWait; wait for the front
    /// end to be Initialised; read `ring-ref` and `event-channel`; connect;
    /// Connected; serve until the ring breaks, a fault disconnects it or the
    /// front end closes; then Closing and Closed.
    ///
    /// # Errors
    ///
    /// [`EchoXenbusError`] if the handshake or the ring failed.
    ///
    /// # Cancellation
    ///
    /// Dropping the future disconnects the backend (its mapping and port
    /// go) without updating xenstore, as a crashed backend would.
    pub async fn serve_xenbus(
        sim: SimXen,
        paths: DevicePaths,
        config: EchoBackendConfig,
    ) -> Result<EchoBackendExit, EchoXenbusError> {
        let xs = sim.dom0_xenstore().map_err(EchoXenbusError::Connect)?;
        let xb = XenbusBackend::new(xs, paths.clone());
        xb.set_state(XenbusState::InitWait).await?;
        xb.wait_frontend(|s| matches!(s, XenbusState::Initialised | XenbusState::Connected))
            .await?;
        let ring_ref: u32 = xb.read_frontend_int("ring-ref").await?;
        let port: u32 = xb.read_frontend_int("event-channel").await?;
        let be =
            match EchoBackend::connect(&sim, paths.front, GrantRef(ring_ref), Port(port), config) {
                Ok(be) => be,
                Err(e) => {
                    let _ = xb.close().await;
                    return Err(EchoXenbusError::Backend(e));
                }
            };
        xb.set_state(XenbusState::Connected).await?;
        let closed = xb.wait_frontend(|s| matches!(s, XenbusState::Closing | XenbusState::Closed));
        let exit = match select(pin!(be.run()), pin!(closed)).await {
            Either::Left((r, _)) => r.map_err(EchoXenbusError::Backend),
            Either::Right((Ok(_), _)) => Ok(EchoBackendExit::FrontendClosed),
            // The state watch failed (the xenstore connection broke): keep
            // serving the ring without it.
            Either::Right((Err(_), run)) => run.await.map_err(EchoXenbusError::Backend),
        };
        let _ = xb.close().await;
        exit
    }

    fn serve(&mut self, req: &EchoRequest) {
        let rsp = echo(req);
        self.sim.note(
            self.front,
            alloc::format!(
                "echo back: id {} len {} status {}",
                req.id,
                req.len,
                rsp.status
            ),
        );
        self.ring.push_response(rsp);
    }

    /// Serves requests until the ring breaks or the backend disconnects
    /// (under [`FaultSite::BackendStateChange`]). Cancel it (drop its
    /// task) to disconnect it from outside: its mapping and port go.
    ///
    /// # Errors
    ///
    /// [`EchoBackendError::Ring`] when the front end broke the ring (or a
    /// fault did), [`EchoBackendError::Notify`] if notifying failed.
    pub async fn run(mut self) -> Result<EchoBackendExit, EchoBackendError> {
        loop {
            let first = self
                .ring
                .next_request(&self.channel)
                .await
                .map_err(EchoBackendError::Ring)?;
            if self.sim.fault(FaultSite::BackendStateChange, self.front) {
                self.sim.note(self.front, "echo back: disconnecting");
                return Ok(EchoBackendExit::Disconnected);
            }
            // Take the whole batch first, then answer it (as blkback does):
            // responses then overtake requests still in the ring.
            let mut batch = alloc::vec![first];
            while let Some(req) = self.ring.take_request().map_err(EchoBackendError::Ring)? {
                batch.push(req);
            }
            if self.config.latency_ns_max > 0 {
                let ns = self.prng.range_inclusive(0, self.config.latency_ns_max);
                ringlet_executor::sleep(core::time::Duration::from_nanos(ns)).await;
            }
            for req in &batch {
                self.serve(req);
            }
            if self.ring.push_responses() {
                self.channel.notify().map_err(EchoBackendError::Notify)?;
            }
        }
    }
}

// ----- front end -----

/// Why an echo could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EchoSetupError {
    /// The ring page could not be made.
    Ring(RingSetupError),
    /// The event channel could not be made.
    Bind(BindError),
}

impl fmt::Display for EchoSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoSetupError::Ring(e) => write!(f, "echo client: {e}"),
            EchoSetupError::Bind(e) => write!(f, "echo client: {e}"),
        }
    }
}

impl core::error::Error for EchoSetupError {}

/// Why an echo failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EchoError {
    /// The ring rejected the response (bad producer index: the ring is
    /// unusable; unknown id: the response was dropped).
    Ring(RingError),
    /// The response's status is neither [`ECHO_OK`] nor [`ECHO_ERROR`].
    BadStatus {
        /// The request.
        id: RequestId,
        /// The status received.
        status: i16,
    },
    /// The response claims more than [`ECHO_PAYLOAD_MAX`] bytes.
    BadLength {
        /// The request.
        id: RequestId,
        /// The length received.
        len: u16,
    },
    /// The response does not echo the request (a backend answering with
    /// another request's id).
    Mismatch {
        /// The request.
        id: RequestId,
    },
    /// The backend refused the request ([`ECHO_ERROR`]).
    Refused {
        /// The request.
        id: RequestId,
    },
}

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoError::Ring(e) => write!(f, "echo: {e}"),
            EchoError::BadStatus { id, status } => {
                write!(f, "echo {}: unknown status {status}", id.0)
            }
            EchoError::BadLength { id, len } => write!(f, "echo {}: length {len} too long", id.0),
            EchoError::Mismatch { id } => {
                write!(f, "echo {}: response does not match the request", id.0)
            }
            EchoError::Refused { id } => write!(f, "echo {}: refused by the backend", id.0),
        }
    }
}

impl core::error::Error for EchoError {}

impl EchoError {
    /// Whether the ring can no longer be used (reconnect).
    pub fn is_fatal(&self) -> bool {
        matches!(self, EchoError::Ring(RingError::ProducerOutOfRange { .. }))
    }
}

/// A request in flight: what was sent, to check the echo against.
#[derive(Debug)]
struct Sent {
    len: usize,
    payload: [u8; ECHO_PAYLOAD_MAX],
}

/// One completed echo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echoed {
    /// The request's id.
    pub id: RequestId,
    /// The bytes echoed (equal to those sent: checked).
    pub data: Vec<u8>,
}

/// The front end of an echo ring, over the core's [`FrontRing`].
#[derive(Debug)]
pub struct EchoClient {
    ring: FrontRing<EchoProtocol, Sent>,
    channel: EventChannel,
}

impl EchoClient {
    /// Makes a ring granted to `backend` and an unbound port for it.
    /// Give [`ring_ref`](Self::ring_ref) and [`port`](Self::port) to the
    /// backend.
    ///
    /// # Errors
    ///
    /// [`EchoSetupError`] if no page, grant or port is left.
    pub fn connect(guest: &Guest, backend: DomId) -> Result<EchoClient, EchoSetupError> {
        let ring = FrontRing::create(guest, backend).map_err(EchoSetupError::Ring)?;
        let channel = EventChannel::alloc_unbound(guest, backend).map_err(EchoSetupError::Bind)?;
        Ok(EchoClient { ring, channel })
    }

    /// The front end of echo device `devid` through xenbus: reads
    /// `backend` and `backend-id` from `device/echo/<devid>`, makes the ring,
    /// publishes `ring-ref`, `event-channel` and state Initialised in one
    /// transaction, waits for the backend to be Connected, then writes
    /// Connected. `xs` is this guest's xenstore client.
    ///
    /// # Errors
    ///
    /// [`EchoXenbusError`].
    pub async fn connect_xenbus(
        guest: &Guest,
        xs: &Xenstore,
        devid: u32,
    ) -> Result<EchoClient, EchoXenbusError> {
        let dir = format!("device/echo/{devid}");
        let backend = xs.read_string(&format!("{dir}/backend")).await?;
        let backend_id: u16 = xs.read_int(&format!("{dir}/backend-id")).await?;
        let client =
            EchoClient::connect(guest, DomId(backend_id)).map_err(EchoXenbusError::Setup)?;
        let (ring_ref, port) = (
            format!("{}", client.ring_ref().0),
            format!("{}", client.port().0),
        );
        xs.transaction(async |tx| {
            tx.write(&format!("{dir}/ring-ref"), &ring_ref).await?;
            tx.write(&format!("{dir}/event-channel"), &port).await?;
            tx.write(&format!("{dir}/state"), XenbusState::Initialised.as_str())
                .await
        })
        .await
        .map_err(EchoXenbusError::Transaction)?;
        wait_state(xs, &format!("{backend}/state"), |s| {
            s == XenbusState::Connected
        })
        .await?;
        xs.write(&format!("{dir}/state"), XenbusState::Connected.as_str())
            .await?;
        Ok(client)
    }

    /// The ring page's grant.
    pub fn ring_ref(&self) -> GrantRef {
        self.ring.grant_ref()
    }

    /// The port the backend binds to.
    pub fn port(&self) -> Port {
        self.channel.port()
    }

    /// Requests that can be submitted now.
    pub fn free(&self) -> u32 {
        self.ring.free_requests()
    }

    /// Requests awaiting a response.
    pub fn in_flight(&self) -> u32 {
        self.ring.in_flight()
    }

    /// The ring's counters.
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }

    /// Writes a request echoing `data` (not yet published: see
    /// [`push`](Self::push)).
    ///
    /// # Errors
    ///
    /// [`RingFull`] if no slot is free.
    ///
    /// # Panics
    ///
    /// If `data` is longer than [`ECHO_PAYLOAD_MAX`].
    pub fn submit(&mut self, data: &[u8]) -> Result<RequestId, RingFull<()>> {
        assert!(data.len() <= ECHO_PAYLOAD_MAX, "echo payload too long");
        let mut payload = [0u8; ECHO_PAYLOAD_MAX];
        payload[..data.len()].copy_from_slice(data);
        let sent = Sent {
            len: data.len(),
            payload,
        };
        self.ring
            .push_request(sent, |id| EchoRequest {
                id: id.0,
                len: data.len() as u16,
                payload,
            })
            .map_err(|_| RingFull(()))
    }

    /// Publishes the submitted requests, notifying the backend if it asked.
    ///
    /// # Errors
    ///
    /// [`NotifyError`] if the notification failed.
    pub fn push(&mut self) -> Result<bool, NotifyError> {
        self.ring.push_and_notify(&self.channel)
    }

    /// The next echo, validated: the ring checked the id; here the status,
    /// the length and that the bytes are the ones sent.
    ///
    /// # Errors
    ///
    /// [`EchoError`] for a response that cannot be trusted.
    ///
    /// # Cancellation
    ///
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<Echoed, EchoError> {
        let r = self
            .ring
            .next_response(&self.channel)
            .await
            .map_err(EchoError::Ring)?;
        let (id, rsp, sent) = (r.id, r.response, r.context);
        match rsp.status {
            ECHO_OK => {}
            ECHO_ERROR => return Err(EchoError::Refused { id }),
            status => return Err(EchoError::BadStatus { id, status }),
        }
        let len = usize::from(rsp.len);
        if len > ECHO_PAYLOAD_MAX {
            return Err(EchoError::BadLength { id, len: rsp.len });
        }
        if len != sent.len || rsp.payload[..len] != sent.payload[..len] {
            return Err(EchoError::Mismatch { id });
        }
        Ok(Echoed {
            id,
            data: rsp.payload[..len].to_vec(),
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn request_and_response_round_trip_through_slots() {
        let mut payload = [0u8; ECHO_PAYLOAD_MAX];
        payload[..3].copy_from_slice(b"abc");
        let req = EchoRequest {
            id: 7,
            len: 3,
            payload,
        };
        let mut slot = [0u8; ECHO_SLOT_SIZE];
        EchoProtocol::write_request(&req, &mut slot);
        assert_eq!(&slot[..8], &[7, 0, 3, 0, 0, 0, 0, 0]);
        assert_eq!(EchoProtocol::read_request(&slot), req);
        let rsp = echo(&req);
        let mut slot = [0u8; ECHO_SLOT_SIZE];
        EchoProtocol::write_response(&rsp, &mut slot);
        assert_eq!(&slot[..8], &[7, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(EchoProtocol::read_response(&slot), rsp);
        assert_eq!(EchoProtocol::response_id(&rsp), 7);
    }

    #[test]
    fn overlong_request_is_refused() {
        let req = EchoRequest {
            id: 1,
            len: 57,
            payload: [0; ECHO_PAYLOAD_MAX],
        };
        assert_eq!(echo(&req).status, ECHO_ERROR);
    }

    #[test]
    fn garbage_status_is_never_a_defined_one() {
        let mut rsp = echo(&EchoRequest {
            id: 1,
            len: 0,
            payload: [0; ECHO_PAYLOAD_MAX],
        });
        for noise in [0, 1, 29_999, 30_000, u64::MAX] {
            EchoProtocol::set_garbage_status(&mut rsp, noise);
            assert!(rsp.status != ECHO_OK && rsp.status != ECHO_ERROR);
        }
    }

    #[test]
    fn malformed_response_bytes_decode_without_panic() {
        let slot = [0xffu8; ECHO_SLOT_SIZE];
        let r = EchoProtocol::read_response(&slot);
        assert_eq!((r.id, r.status, r.len), (0xffff, -1, 0xffff));
    }
}
