//! The xenbus handshake that connects a netfront to its backend, and the
//! supervisor that reconnects it when the backend or the rings go away.
//!
//! # Handshake (frontend `state` node, then what we wait for)
//!
//! ```text
//!   1. read device/vif/N/{backend, backend-id, mac}; validate
//!   2. wait: backend state InitWait (2)
//!   3. read the backend's feature-rx-copy (required) and feature-sg
//!   4. make the tx and rx rings (pages granted to the backend) and one
//!      unbound port; in one transaction (retried on EAGAIN) write
//!      tx-ring-ref, rx-ring-ref, event-channel, request-rx-copy = 1,
//!      feature-rx-notify = 1, feature-sg = 1 only if offered,
//!      feature-no-csum-offload = 1, state = Connected (4)
//!   5. wait: backend state Connected (4)
//!   6. post the rx buffers and notify; the link is up
//! ```
//!
//! The frontend writes Connected in step 4, as Linux netfront and Mini-OS
//! do: Linux netback maps the rings when the frontend is Connected (it
//! ignores Initialised). A backend that goes Closing or Closed while we
//! wait fails a first handshake; one handshake is bounded by
//! [`NetfrontConfig::connect_timeout_ms`]. Everything read is untrusted.
//!
//! Checksum offload: on rx, netfront writes `feature-no-csum-offload = 1`
//! so that the backend sends complete checksums (smoltcp checks them); a
//! `NETRXF_csum_blank` frame that comes anyway is filled. On tx, with
//! [`NetfrontConfig::tx_csum_offload`] (default on), TCP/UDP frames go with
//! `NETTXF_csum_blank | NETTXF_data_validated` and the pseudo-header sum
//! in the field ([`csum`](super::csum)). netif.h needs no feature node for
//! that: a backend takes `csum_blank` on tx from any frontend
//! (`feature-no-csum-offload` and `feature-ipv6-csum-offload` are the
//! frontend's word on what it accepts on rx).
//!
//! # Supervisor (reconnect)
//!
//! ```text
//!   connected ── backend leaves Connected, or the data path fails ──►
//!   1. link down (the runner is woken; tokens stop)
//!   2. frontend Closing; wait (bounded) for the backend Closing/Closed
//!   3. tear down: grants ended (deferred while the backend still maps a
//!      page), port closed; frontend Closed; wait (bounded) backend Closed
//!   4. frontend Initialising; handshake again (waits for InitWait)
//!   5. link up (new rings); or after RECONNECT_ATTEMPTS_MAX failed
//!      handshakes in a row, give up (link Gone)
//! ```
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use core::convert::Infallible;
use core::fmt;
use core::future::poll_fn;
use core::pin::pin;

use futures::future::{select, Either};
use futures::StreamExt;
use ringlet_executor::time::{sleep, timeout, Duration};
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::evtchn::{BindError, EventChannel};
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::ring::{FrontRing, RingSetupError};
use ringlet_xen::xenstore::{
    RequestError, TransactionError, Watch, WatchError, Xenstore, XenstoreError,
};

use super::config::{BackendFeatures, ConfigError, Mac, Negotiated, NetfrontConfig};
use super::device::{Conn, DownReason, Netfront, NetfrontHandle};

/// Longest backend path accepted from `device/vif/N/backend`.
pub const BACKEND_PATH_BYTES_MAX: usize = 256;

/// Failed handshakes in a row after which the supervisor gives up.
pub const RECONNECT_ATTEMPTS_MAX: u32 = 8;

/// Pause before reconnect attempt `n` (1, 2, ...): `n` times this.
pub const RECONNECT_BACKOFF_MS: u64 = 100;

/// How long a teardown waits for the backend to follow (Closing, Closed)
/// before going on without it.
pub const CLOSE_WAIT_MS: u64 = 5_000;

/// Why a handshake failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// A xenstore request failed.
    Xenstore(RequestError),
    /// Watching the backend's state failed.
    Watch(WatchError),
    /// Writing the rings in a transaction failed.
    Transaction(TransactionError<RequestError>),
    /// `device/vif/N/backend` is empty, too long or not absolute.
    BadBackendPath,
    /// `backend-id` is not a domain id.
    BadBackendId,
    /// A value (the MAC, a feature) is malformed, or rx copy is not offered.
    Config(ConfigError),
    /// A ring page could not be set up.
    Ring(RingSetupError),
    /// The event channel could not be allocated.
    Bind(BindError),
    /// The backend went to this state instead of connecting.
    BackendState(XenbusState),
    /// The watch on the backend's state ended (xenstore connection broke).
    WatchEnded,
    /// The handshake took longer than `NetfrontConfig::connect_timeout_ms`.
    Timeout,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Xenstore(e) => write!(f, "netfront: {e}"),
            ConnectError::Watch(e) => write!(f, "netfront: {e}"),
            ConnectError::Transaction(e) => write!(f, "netfront: {e}"),
            ConnectError::BadBackendPath => f.write_str("netfront: bad backend path"),
            ConnectError::BadBackendId => f.write_str("netfront: bad backend-id"),
            ConnectError::Config(e) => write!(f, "netfront: {e}"),
            ConnectError::Ring(e) => write!(f, "netfront: {e}"),
            ConnectError::Bind(e) => write!(f, "netfront: event channel: {e}"),
            ConnectError::BackendState(s) => write!(f, "netfront: backend went to {s}"),
            ConnectError::WatchEnded => f.write_str("netfront: xenstore watch ended"),
            ConnectError::Timeout => f.write_str("netfront: backend did not connect in time"),
        }
    }
}

impl core::error::Error for ConnectError {}

impl From<RequestError> for ConnectError {
    fn from(e: RequestError) -> Self {
        ConnectError::Xenstore(e)
    }
}

/// Why the supervisor stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum SuperviseError {
    /// Watching the backend's state failed.
    Watch(WatchError),
    /// Reading the backend's state failed.
    Xenstore(RequestError),
    /// The watch ended (the xenstore connection broke).
    WatchEnded,
    /// [`RECONNECT_ATTEMPTS_MAX`] handshakes in a row failed; the last
    /// error.
    GaveUp(ConnectError),
}

impl fmt::Display for SuperviseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuperviseError::Watch(e) => write!(f, "netfront supervisor: {e}"),
            SuperviseError::Xenstore(e) => write!(f, "netfront supervisor: {e}"),
            SuperviseError::WatchEnded => f.write_str("netfront supervisor: xenstore watch ended"),
            SuperviseError::GaveUp(e) => write!(
                f,
                "netfront supervisor: gave up after {RECONNECT_ATTEMPTS_MAX} attempts: {e}"
            ),
        }
    }
}

impl core::error::Error for SuperviseError {}

/// The frontend's nodes, validated.
struct FrontendNodes {
    dir: String,
    backend_path: String,
    backend: DomId,
}

/// Whether a handshake is the first (backend Closing/Closed fails it) or a
/// reconnect (the backend may still be closing: keep waiting for InitWait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    First,
    Reconnect,
}

async fn read_frontend(xs: &Xenstore, devid: u32) -> Result<FrontendNodes, ConnectError> {
    let dir = format!("device/vif/{devid}");
    let backend_path = xs.read_string(&format!("{dir}/backend")).await?;
    if backend_path.is_empty()
        || backend_path.len() > BACKEND_PATH_BYTES_MAX
        || !backend_path.starts_with('/')
    {
        return Err(ConnectError::BadBackendPath);
    }
    let id: u32 = xs
        .read_int(&format!("{dir}/backend-id"))
        .await
        .map_err(|e| match e {
            RequestError::BadValue => ConnectError::BadBackendId,
            e => e.into(),
        })?;
    let backend = u16::try_from(id)
        .ok()
        .filter(|&d| d < DomId::SELF.0)
        .map(DomId)
        .ok_or(ConnectError::BadBackendId)?;
    Ok(FrontendNodes {
        dir,
        backend_path,
        backend,
    })
}

async fn read_mac(xs: &Xenstore, dir: &str) -> Result<Mac, ConnectError> {
    let v = xs.read(&format!("{dir}/mac")).await?;
    Mac::parse(&v).map_err(ConnectError::Config)
}

/// Reads a backend state; a missing node reads as Closed.
async fn backend_state(xs: &Xenstore, path: &str) -> Result<XenbusState, RequestError> {
    match xs.read_state(path).await {
        Ok(s) => Ok(s),
        Err(RequestError::Xenstore(XenstoreError::NoEnt)) => Ok(XenbusState::Closed),
        Err(e) => Err(e),
    }
}

/// Waits until the backend's state is `want`. In [`Mode::First`] Closing
/// and Closed (and, waiting for Connected, a fall back to an earlier
/// state) fail; in [`Mode::Reconnect`] they are waited out.
async fn wait_backend(
    xs: &Xenstore,
    watch: &mut Watch,
    path: &str,
    want: XenbusState,
    mode: Mode,
) -> Result<(), ConnectError> {
    loop {
        let s = match xs.read_state(path).await {
            Ok(s) => Some(s),
            // Not written yet, or a value that is not a state yet.
            Err(RequestError::Xenstore(XenstoreError::NoEnt) | RequestError::BadValue) => None,
            Err(e) => return Err(e.into()),
        };
        match s {
            Some(s) if s == want => return Ok(()),
            Some(s @ (XenbusState::Closing | XenbusState::Closed)) if mode == Mode::First => {
                return Err(ConnectError::BackendState(s));
            }
            _ => {}
        }
        watch.next().await.ok_or(ConnectError::WatchEnded)?;
    }
}

/// Steps 2-5 of the handshake: returns the connection, not yet installed.
async fn handshake(
    guest: &Guest,
    xs: &Xenstore,
    fe: &FrontendNodes,
    mode: Mode,
) -> Result<Conn, ConnectError> {
    let be = &fe.backend_path;
    let state_path = format!("{be}/state");
    let mut watch = xs.watch(&state_path).await.map_err(ConnectError::Watch)?;
    wait_backend(xs, &mut watch, &state_path, XenbusState::InitWait, mode).await?;

    let rx_copy = xs.read_optional(&format!("{be}/feature-rx-copy")).await?;
    let sg = xs.read_optional(&format!("{be}/feature-sg")).await?;
    let offered =
        BackendFeatures::parse(rx_copy.as_deref(), sg.as_deref()).map_err(ConnectError::Config)?;
    let negotiated = Negotiated { sg: offered.sg };

    let tx = FrontRing::create(guest, fe.backend).map_err(ConnectError::Ring)?;
    let rx = FrontRing::create(guest, fe.backend).map_err(ConnectError::Ring)?;
    let channel = EventChannel::alloc_unbound(guest, fe.backend).map_err(ConnectError::Bind)?;
    let tx_ref = format!("{}", tx.grant_ref().0);
    let rx_ref = format!("{}", rx.grant_ref().0);
    let port = format!("{}", channel.port().0);
    let sg = if negotiated.sg { "1" } else { "0" };
    let dir = &fe.dir;
    xs.transaction(async |t| {
        t.write(&format!("{dir}/tx-ring-ref"), &tx_ref).await?;
        t.write(&format!("{dir}/rx-ring-ref"), &rx_ref).await?;
        t.write(&format!("{dir}/event-channel"), &port).await?;
        t.write(&format!("{dir}/request-rx-copy"), "1").await?;
        t.write(&format!("{dir}/feature-rx-notify"), "1").await?;
        t.write(&format!("{dir}/feature-sg"), sg).await?;
        t.write(&format!("{dir}/feature-no-csum-offload"), "1")
            .await?;
        t.write(&format!("{dir}/state"), XenbusState::Connected.as_str())
            .await
    })
    .await
    .map_err(ConnectError::Transaction)?;

    wait_backend(
        xs,
        &mut watch,
        &state_path,
        XenbusState::Connected,
        Mode::First,
    )
    .await?;
    Ok(Conn::new(
        fe.backend,
        fe.backend_path.clone(),
        tx,
        rx,
        channel,
        negotiated,
    ))
}

/// Connects to the virtual network device `config.devid`
/// (`device/vif/<devid>`) and returns it with the link up.
///
/// Run [`NetfrontHandle::supervise`] next to it so that a backend that
/// goes away (or breaks a ring) is reconnected.
///
/// # Errors
/// [`ConnectError`].
///
/// # Cancellation
/// Dropping the future abandons the handshake; the rings and port it made
/// are released (grants the backend still maps are deferred).
///
/// # Examples
/// ```
/// use ringlet_net::netfront::{connect, NetfrontConfig};
/// use ringlet_xen::guest::Guest;
/// use ringlet_xen::xenstore::Xenstore;
///
/// async fn up(guest: &Guest, xs: &Xenstore) -> Result<(), Box<dyn core::error::Error>> {
///     let nic = connect(guest, xs, NetfrontConfig::new(0)).await?;
///     let handle = nic.handle();
///     let xs2 = xs.clone();
///     ringlet_executor::spawn(async move { handle.supervise(&xs2).await }).detach();
///     log::info!("vif0 is {}", nic.mac());
///     // ... hand `nic` to the network stack ...
///     Ok(())
/// }
/// ```
pub async fn connect(
    guest: &Guest,
    xs: &Xenstore,
    config: NetfrontConfig,
) -> Result<Netfront, ConnectError> {
    let config = config.clamped();
    let limit = Duration::from_millis(config.connect_timeout_ms);
    let nf = timeout(limit, async {
        let fe = read_frontend(xs, config.devid).await?;
        let mac = read_mac(xs, &fe.dir).await?;
        let conn = handshake(guest, xs, &fe, Mode::First).await?;
        let nf = Netfront::from_parts(guest.clone(), config, mac);
        nf.inner().state.borrow_mut().install(conn, guest, &config);
        Ok::<Netfront, ConnectError>(nf)
    })
    .await
    .map_err(|_| ConnectError::Timeout)??;
    log::info!(
        "netfront: vif{} {} connected, tx checksum offload {}",
        config.devid,
        nf.mac(),
        if config.tx_csum_offload { "on" } else { "off" }
    );
    Ok(nf)
}

impl NetfrontHandle {
    /// Keeps the device connected: waits until the backend leaves
    /// Connected or the data path fails, tears the connection down and
    /// makes a new one (see the module doc). Returns only on failure.
    ///
    /// # Errors
    /// [`SuperviseError`]: the watch failed, or the backend did not come
    /// back within [`RECONNECT_ATTEMPTS_MAX`] attempts (the link is then
    /// down with [`DownReason::Gone`]).
    ///
    /// # Cancellation
    /// Dropping the future stops supervising; a connection being torn down
    /// stays down.
    pub async fn supervise(&self, xs: &Xenstore) -> Result<Infallible, SuperviseError> {
        let inner = &self.inner;
        let config = inner.config;
        let dir = format!("device/vif/{}", config.devid);
        let fe_state = format!("{dir}/state");
        loop {
            let be = self.backend_path();
            let why = match be.as_deref() {
                Some(be) => self.wait_down(xs, be).await?,
                None => DownReason::Reconnecting,
            };
            log::warn!("netfront: vif{}: {why}; reconnecting", config.devid);
            // 1.
            let conn = inner.state.borrow_mut().take_conn(why);
            // 2.
            let be_state = be.as_ref().map(|b| format!("{b}/state"));
            let _ = xs.write(&fe_state, XenbusState::Closing.as_str()).await;
            if let Some(p) = &be_state {
                wait_closed(xs, p, &[XenbusState::Closing, XenbusState::Closed]).await;
            }
            // 3.
            if let Some(conn) = conn {
                inner.state.borrow_mut().teardown(conn, &config);
            }
            let _ = xs.write(&fe_state, XenbusState::Closed.as_str()).await;
            if let Some(p) = &be_state {
                wait_closed(xs, p, &[XenbusState::Closed, XenbusState::InitWait]).await;
            }
            // 4., 5.
            self.reconnect(xs, &fe_state).await?;
        }
    }

    /// Waits until the backend at `be` leaves Connected or the data path
    /// fails; returns why.
    async fn wait_down(&self, xs: &Xenstore, be: &str) -> Result<DownReason, SuperviseError> {
        let path = format!("{be}/state");
        let mut watch = xs.watch(&path).await.map_err(SuperviseError::Watch)?;
        loop {
            match backend_state(xs, &path).await {
                Ok(XenbusState::Connected) => {}
                Ok(s) => return Ok(DownReason::BackendState(s)),
                Err(e) => return Err(SuperviseError::Xenstore(e)),
            }
            let failed = pin!(poll_fn(|cx| self.inner.poll_failed(cx)));
            match select(StreamExt::next(&mut watch), failed).await {
                Either::Left((Some(_), _)) => {}
                Either::Left((None, _)) => return Err(SuperviseError::WatchEnded),
                Either::Right((why, _)) => return Ok(why),
            }
        }
    }

    async fn reconnect(&self, xs: &Xenstore, fe_state: &str) -> Result<(), SuperviseError> {
        let inner = &self.inner;
        let config = inner.config;
        let limit = Duration::from_millis(config.connect_timeout_ms);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = timeout(limit, async {
                let fe = read_frontend(xs, config.devid).await?;
                xs.write(fe_state, XenbusState::Initialising.as_str())
                    .await?;
                handshake(&inner.guest, xs, &fe, Mode::Reconnect).await
            })
            .await
            .unwrap_or(Err(ConnectError::Timeout));
            match r {
                Ok(conn) => {
                    let mut st = inner.state.borrow_mut();
                    st.stats.reconnects += 1;
                    st.install(conn, &inner.guest, &config);
                    log::info!("netfront: vif{} reconnected", config.devid);
                    return Ok(());
                }
                Err(e) if attempt >= RECONNECT_ATTEMPTS_MAX => {
                    inner.state.borrow_mut().down = Some(DownReason::Gone);
                    return Err(SuperviseError::GaveUp(e));
                }
                Err(e) => {
                    log::warn!("netfront: vif{} reconnect {attempt}: {e}", config.devid);
                    // Leave the backend a clean Closed to start from.
                    let _ = xs.write(fe_state, XenbusState::Closing.as_str()).await;
                    let _ = xs.write(fe_state, XenbusState::Closed.as_str()).await;
                    sleep(Duration::from_millis(
                        RECONNECT_BACKOFF_MS * u64::from(attempt),
                    ))
                    .await;
                }
            }
        }
    }
}

/// Waits (at most [`CLOSE_WAIT_MS`]) for the backend state at `path` to be
/// one of `states`; going on without it is fine (a dead backend never
/// answers), so errors and timeouts are ignored.
async fn wait_closed(xs: &Xenstore, path: &str, states: &[XenbusState]) {
    let wait = async {
        let mut watch = xs.watch(path).await.ok()?;
        loop {
            let s = backend_state(xs, path).await.ok()?;
            if states.contains(&s) {
                return Some(());
            }
            watch.next().await?;
        }
    };
    let _ = timeout(Duration::from_millis(CLOSE_WAIT_MS), wait).await;
}
