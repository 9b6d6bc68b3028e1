//! The xenbus handshake that connects a [`Blkfront`] to its backend, and
//! the watch that notices the backend leaving.
//!
//! # States (frontend `state` node, then what we wait for)
//!
//! ```text
//!   1. read device/vbd/N/{backend, backend-id}
//!   2. wait: backend state InitWait (2), Initialised (3) or Connected (4)
//!   3. create the ring page (granted to the backend) and an unbound port;
//!      in one transaction write ring-ref, event-channel,
//!      protocol = "x86_64-abi", state = Initialised (3)
//!   4. wait: backend state Connected (4)
//!   5. read sectors, sector-size, info, feature-* from the backend; validate
//!   6. write state = Connected (4)
//! ```
//!
//! A backend that goes Closing, Closed (or any state outside the path)
//! while we wait fails the handshake; the whole of it is bounded by
//! [`CONNECT_TIMEOUT_MS`]. Everything read is untrusted.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use core::fmt;

use ringlet_executor::time::{timeout, Duration};
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::evtchn::{BindError, EventChannel};
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::ring::RingSetupError;
use ringlet_xen::xenstore::{RequestError, TransactionError, WatchError, Xenstore, XenstoreError};

use super::config::{BackendConfig, BackendNodes, ConfigError};
use super::device::{Blkfront, BlkifRing};
use crate::blkif::PROTOCOL_X86_64;

/// How long the whole handshake may take (libxl's hotplug timeout is 40 s).
pub const CONNECT_TIMEOUT_MS: u64 = 60_000;

/// Longest backend path accepted from `device/vbd/N/backend`.
pub const BACKEND_PATH_BYTES_MAX: usize = 256;

/// Why [`connect`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// A xenstore request failed.
    Xenstore(RequestError),
    /// Watching the backend's state failed.
    Watch(WatchError),
    /// `device/vbd/N/backend` is empty, too long or not absolute.
    BadBackendPath,
    /// `backend-id` is not a domain id.
    BadBackendId,
    /// The ring page could not be set up.
    Ring(RingSetupError),
    /// The event channel could not be allocated.
    Bind(BindError),
    /// The backend's nodes are missing or malformed.
    Config(ConfigError),
    /// The backend went to this state instead of connecting.
    BackendState(XenbusState),
    /// The watch on the backend's state ended (xenstore connection broke).
    WatchEnded,
    /// The handshake took longer than [`CONNECT_TIMEOUT_MS`].
    Timeout,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Xenstore(e) => write!(f, "blkfront: {e}"),
            ConnectError::Watch(e) => write!(f, "blkfront: {e}"),
            ConnectError::BadBackendPath => f.write_str("blkfront: bad backend path"),
            ConnectError::BadBackendId => f.write_str("blkfront: bad backend-id"),
            ConnectError::Ring(e) => write!(f, "blkfront: {e}"),
            ConnectError::Bind(e) => write!(f, "blkfront: event channel: {e}"),
            ConnectError::Config(e) => write!(f, "blkfront: {e}"),
            ConnectError::BackendState(s) => write!(f, "blkfront: backend went to state {s:?}"),
            ConnectError::WatchEnded => f.write_str("blkfront: xenstore watch ended"),
            ConnectError::Timeout => write!(
                f,
                "blkfront: backend did not connect within {CONNECT_TIMEOUT_MS} ms"
            ),
        }
    }
}

impl core::error::Error for ConnectError {}

impl From<RequestError> for ConnectError {
    fn from(e: RequestError) -> Self {
        ConnectError::Xenstore(e)
    }
}

/// Reads an optional node: `None` if it does not exist.
async fn optional(xs: &Xenstore, path: &str) -> Result<Option<String>, ConnectError> {
    match xs.read_string(path).await {
        Ok(v) => Ok(Some(v)),
        Err(RequestError::Xenstore(XenstoreError::NoEnt)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Waits until the backend's state is one of `want`, failing on a state
/// that is not on the way there.
async fn wait_backend(
    xs: &Xenstore,
    watch: &mut ringlet_xen::xenstore::Watch,
    state_path: &str,
    want: &[XenbusState],
) -> Result<XenbusState, ConnectError> {
    loop {
        match xs.read_state(state_path).await {
            Ok(s) if want.contains(&s) => return Ok(s),
            Ok(
                XenbusState::Unknown
                | XenbusState::Initialising
                | XenbusState::InitWait
                | XenbusState::Initialised,
            ) => {}
            Ok(s) => return Err(ConnectError::BackendState(s)),
            // Not written yet: keep waiting.
            Err(RequestError::Xenstore(XenstoreError::NoEnt)) => {}
            Err(e) => return Err(e.into()),
        }
        watch.next().await.ok_or(ConnectError::WatchEnded)?;
    }
}

/// Connects to the virtual block device `devid` (e.g. 51712 for `xvda`)
/// and returns it ready for requests.
///
/// # Errors
///
/// See [`ConnectError`].
///
/// # Cancellation
///
/// Dropping the future abandons the handshake; the ring page and port it
/// made are released.
pub async fn connect(guest: &Guest, xs: &Xenstore, devid: u32) -> Result<Blkfront, ConnectError> {
    match timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        handshake(guest, xs, devid),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

async fn handshake(guest: &Guest, xs: &Xenstore, devid: u32) -> Result<Blkfront, ConnectError> {
    let fe = format!("device/vbd/{devid}");
    let be = xs.read_string(&format!("{fe}/backend")).await?;
    if be.is_empty() || be.len() > BACKEND_PATH_BYTES_MAX || !be.starts_with('/') {
        return Err(ConnectError::BadBackendPath);
    }
    let be_id: u32 = xs
        .read_int(&format!("{fe}/backend-id"))
        .await
        .map_err(|e| match e {
            RequestError::BadValue => ConnectError::BadBackendId,
            e => e.into(),
        })?;
    let be_id = u16::try_from(be_id)
        .ok()
        .filter(|&d| d < DomId::SELF.0)
        .ok_or(ConnectError::BadBackendId)?;
    let backend = DomId(be_id);
    let state_path = format!("{be}/state");
    let mut watch = xs.watch(&state_path).await.map_err(ConnectError::Watch)?;
    use XenbusState::{Connected, InitWait, Initialised};
    wait_backend(
        xs,
        &mut watch,
        &state_path,
        &[InitWait, Initialised, Connected],
    )
    .await?;

    let ring = BlkifRing::create(guest, backend).map_err(ConnectError::Ring)?;
    let channel = EventChannel::alloc_unbound(guest, backend).map_err(ConnectError::Bind)?;
    let gref = format!("{}", ring.grant_ref().0);
    let port = format!("{}", channel.port().0);
    xs.transaction(async |tx| {
        tx.write(&format!("{fe}/ring-ref"), &gref).await?;
        tx.write(&format!("{fe}/event-channel"), &port).await?;
        tx.write(&format!("{fe}/protocol"), PROTOCOL_X86_64).await?;
        tx.write(&format!("{fe}/state"), "3").await?;
        Ok::<(), RequestError>(())
    })
    .await
    .map_err(|e| match e {
        TransactionError::Body(e) | TransactionError::Request(e) => ConnectError::Xenstore(e),
        TransactionError::TooManyConflicts => {
            ConnectError::Xenstore(RequestError::Xenstore(XenstoreError::Again))
        }
        _ => ConnectError::Xenstore(RequestError::Busy),
    })?;

    wait_backend(xs, &mut watch, &state_path, &[Connected]).await?;
    let n = |k: &str| format!("{be}/{k}");
    let sectors = optional(xs, &n("sectors")).await?;
    let sector_size = optional(xs, &n("sector-size")).await?;
    let info = optional(xs, &n("info")).await?;
    let flush = optional(xs, &n("feature-flush-cache")).await?;
    let barrier = optional(xs, &n("feature-barrier")).await?;
    let indirect = optional(xs, &n("feature-max-indirect-segments")).await?;
    let config = BackendConfig::parse(&BackendNodes {
        sectors: sectors.as_deref(),
        sector_size: sector_size.as_deref(),
        info: info.as_deref(),
        feature_flush_cache: flush.as_deref(),
        feature_barrier: barrier.as_deref(),
        feature_max_indirect_segments: indirect.as_deref(),
    })
    .map_err(ConnectError::Config)?;
    xs.write(&format!("{fe}/state"), "4").await?;
    let dev = Blkfront::from_parts(guest.clone(), backend, ring, channel, config);
    dev.set_backend_path(be);
    Ok(dev)
}

/// Why [`Blkfront::monitor`] stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum MonitorError {
    /// The device was not made by [`connect`] (no backend path known).
    NotConnected,
    /// Watching failed.
    Watch(WatchError),
    /// The watch ended (xenstore connection broke); the device is marked
    /// disconnected.
    WatchEnded,
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorError::NotConnected => f.write_str("blkfront: no backend path to watch"),
            MonitorError::Watch(e) => write!(f, "blkfront: {e}"),
            MonitorError::WatchEnded => f.write_str("blkfront: xenstore watch ended"),
        }
    }
}

impl core::error::Error for MonitorError {}

impl Blkfront {
    /// Watches the backend's state until it leaves Connected, then marks
    /// the device disconnected (requests in flight and later fail with
    /// `Disconnected`) and returns the state it saw. Spawn it next to the
    /// device's users: without it a backend that goes away leaves requests
    /// waiting.
    ///
    /// # Errors
    ///
    /// [`MonitorError`].
    pub async fn monitor(&self, xs: &Xenstore) -> Result<XenbusState, MonitorError> {
        let path = format!(
            "{}/state",
            self.backend_path().ok_or(MonitorError::NotConnected)?
        );
        let mut watch = xs.watch(&path).await.map_err(MonitorError::Watch)?;
        loop {
            match xs.read_state(&path).await {
                Ok(XenbusState::Connected) => {}
                Ok(s) => {
                    self.disconnect();
                    return Ok(s);
                }
                Err(_) => {
                    self.disconnect();
                    return Ok(XenbusState::Unknown);
                }
            }
            if watch.next().await.is_none() {
                self.disconnect();
                return Err(MonitorError::WatchEnded);
            }
        }
    }
}
