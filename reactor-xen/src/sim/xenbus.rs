//! Xenbus for the sim: what the toolstack writes to xenstore when it adds a
//! device ([`SimXen::add_device`], as libxl does), and the backend half of
//! the xenbus handshake ([`XenbusBackend`]), over dom0's own xenstore client
//! — so that a sim backend finds its front end, and the front end its
//! backend, exactly as on Xen.
//!
//! # The handshake (xen/io/xenbus.h)
//!
//! ```text
//!  toolstack: frontend/state = Initialising, backend/state = Initialising
//!  backend:   backend/state = InitWait                                  (1)
//!  frontend:  writes ring refs, event channel; frontend/state = Initialised (2)
//!  backend:   reads them, maps, binds; backend/state = Connected        (3)
//!  frontend:  frontend/state = Connected                                (4)
//!  either:    state = Closing, then Closed                              (5)
//! ```
//!
//! Paths: the front end's directory is
//! `/local/domain/<front>/device/<kind>/<devid>` (owned by the front end,
//! readable by the backend) with `backend`, `backend-id` and `state`; the
//! backend's is `/local/domain/<back>/backend/<kind>/<front>/<devid>`
//! (owned by the backend, readable by the front end) with `frontend`,
//! `frontend-id`, `online` and `state`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use super::SimXen;
use crate::abi::xenbus::XenbusState;
use crate::hypervisor::DomId;
use crate::xenstore::{
    Access, ConnectError, Permission, RequestError, WatchError, Xenstore, XenstoreError,
};

/// Watch events a [`XenbusBackend::wait_frontend`] handles before it gives
/// up (a bound against a front end that flips its state forever).
pub const STATE_CHANGES_MAX: usize = 1024;

/// A device to add: its kind, the two domains, and extra nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The device class: `vif`, `vbd`, `echo`, ...
    pub kind: String,
    /// The front end's domain.
    pub front: DomId,
    /// The device number (`device/<kind>/<devid>`).
    pub devid: u32,
    /// The backend's domain (dom0 unless a driver domain).
    pub back: DomId,
    /// Extra nodes in the front end's directory (e.g. `mac`).
    pub front_nodes: Vec<(String, String)>,
    /// Extra nodes in the backend's directory (e.g. `mac`, `bridge`).
    pub back_nodes: Vec<(String, String)>,
}

impl DeviceSpec {
    /// Device `devid` of class `kind` for `front`, backed by dom0.
    pub fn new(kind: &str, front: DomId, devid: u32) -> DeviceSpec {
        DeviceSpec {
            kind: kind.into(),
            front,
            devid,
            back: DomId::DOM0,
            front_nodes: Vec::new(),
            back_nodes: Vec::new(),
        }
    }

    /// This spec with `name = value` in the front end's directory.
    #[must_use]
    pub fn front_node(mut self, name: &str, value: &str) -> DeviceSpec {
        self.front_nodes.push((name.into(), value.into()));
        self
    }

    /// This spec with `name = value` in the backend's directory.
    #[must_use]
    pub fn back_node(mut self, name: &str, value: &str) -> DeviceSpec {
        self.back_nodes.push((name.into(), value.into()));
        self
    }
}

/// Where a device's two directories are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePaths {
    /// The front end's directory (absolute).
    pub frontend: String,
    /// The backend's directory (absolute).
    pub backend: String,
    /// The front end's domain.
    pub front: DomId,
    /// The backend's domain.
    pub back: DomId,
    /// The device number.
    pub devid: u32,
}

impl DevicePaths {
    /// The paths of device `devid` of class `kind` between `front` and `back`.
    pub fn new(kind: &str, front: DomId, back: DomId, devid: u32) -> DevicePaths {
        DevicePaths {
            frontend: format!("/local/domain/{}/device/{kind}/{devid}", front.0),
            backend: format!(
                "/local/domain/{}/backend/{kind}/{}/{devid}",
                back.0, front.0
            ),
            front,
            back,
            devid,
        }
    }
}

impl SimXen {
    /// Adds a device as the toolstack does (libxl's device add): writes the
    /// front end's and the backend's directories with their links, `state`
    /// = Initialising in both, `online` = 1, the spec's extra nodes, and
    /// libxl's permissions (each side owns its directory, the other may
    /// read it). Watches on them fire when the world next runs its daemons.
    ///
    /// # Panics
    ///
    /// If xenstored refuses (a node or quota limit in the sim's store: a
    /// test set-up error).
    pub fn add_device(&self, spec: &DeviceSpec) -> DevicePaths {
        let p = DevicePaths::new(&spec.kind, spec.front, spec.back, spec.devid);
        let state = XenbusState::Initialising.as_str();
        let front_id = format!("{}", spec.front.0);
        let back_id = format!("{}", spec.back.0);
        let mut front: Vec<(&str, &str)> = alloc::vec![
            ("backend", p.backend.as_str()),
            ("backend-id", back_id.as_str()),
            ("state", state),
        ];
        front.extend(
            spec.front_nodes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut back: Vec<(&str, &str)> = alloc::vec![
            ("frontend", p.frontend.as_str()),
            ("frontend-id", front_id.as_str()),
            ("online", "1"),
            ("state", state),
        ];
        back.extend(
            spec.back_nodes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let front_perms = [
            Permission {
                domid: spec.front,
                access: Access::None,
            },
            Permission {
                domid: spec.back,
                access: Access::Read,
            },
        ];
        let back_perms = [
            Permission {
                domid: spec.back,
                access: Access::None,
            },
            Permission {
                domid: spec.front,
                access: Access::Read,
            },
        ];
        self.xenstore(|xs| -> Result<(), XenstoreError> {
            for (dir, nodes, perms) in [
                (&p.frontend, &front, &front_perms),
                (&p.backend, &back, &back_perms),
            ] {
                xs.mkdir_as(DomId::DOM0, dir)?;
                xs.set_perms_as(DomId::DOM0, dir, perms)?;
                for (name, value) in nodes.iter() {
                    let path = format!("{dir}/{name}");
                    xs.write_as(DomId::DOM0, &path, value.as_bytes())?;
                    xs.set_perms_as(DomId::DOM0, &path, perms)?;
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("xenstored refused to add {p:?}: {e:?}"));
        self.note(spec.front, format!("toolstack: added {}", p.frontend));
        p
    }

    /// Removes a device's two directories (libxl's forced device remove).
    pub fn remove_device(&self, paths: &DevicePaths) {
        self.xenstore(|xs| {
            let _ = xs.rm_as(DomId::DOM0, &paths.frontend);
            let _ = xs.rm_as(DomId::DOM0, &paths.backend);
        });
    }

    /// dom0's xenstore client, shared by the sim's backends (one client per
    /// domain: its ring has one reader).
    ///
    /// # Errors
    ///
    /// [`ConnectError`] if the client cannot attach to dom0's ring.
    pub fn dom0_xenstore(&self) -> Result<Xenstore, ConnectError> {
        if let Some(xs) = self.world.dom0_xenstore.borrow().as_ref() {
            return Ok(xs.clone());
        }
        let xs = Xenstore::new(&self.guest(DomId::DOM0))?;
        *self.world.dom0_xenstore.borrow_mut() = Some(xs.clone());
        Ok(xs)
    }
}

/// Why a xenbus step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XenbusError {
    /// A xenstore request failed.
    Xenstore(RequestError),
    /// The watch could not be set.
    Watch(WatchError),
    /// The peer went to Closing or Closed (or its directory vanished) while
    /// we waited for another state.
    PeerClosed(XenbusState),
    /// The watch stream ended (the xenstore connection broke).
    WatchEnded,
    /// The peer's state changed [`STATE_CHANGES_MAX`] times without
    /// reaching the one awaited.
    TooManyChanges,
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenbusError::Xenstore(e) => write!(f, "xenbus: {e}"),
            XenbusError::Watch(e) => write!(f, "xenbus: {e}"),
            XenbusError::PeerClosed(s) => write!(f, "xenbus: peer went to {s}"),
            XenbusError::WatchEnded => f.write_str("xenbus: the state watch ended"),
            XenbusError::TooManyChanges => f.write_str("xenbus: the peer's state keeps changing"),
        }
    }
}

impl core::error::Error for XenbusError {}

impl From<RequestError> for XenbusError {
    fn from(e: RequestError) -> Self {
        XenbusError::Xenstore(e)
    }
}

/// Reads `path`'s xenbus state; a missing node reads as Closed (the
/// directory was removed: the device is gone).
async fn read_state(xs: &Xenstore, path: &str) -> Result<XenbusState, XenbusError> {
    match xs.read_state(path).await {
        Ok(s) => Ok(s),
        Err(e) if e.is(XenstoreError::NoEnt) => Ok(XenbusState::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Waits (with a watch on `state_path`) until `until` accepts the state
/// there. Closing and Closed end the wait with [`XenbusError::PeerClosed`]
/// unless `until` accepts them.
///
/// # Errors
///
/// [`XenbusError`].
///
/// # Cancellation
///
/// Cancel-safe (the watch is dropped with the future).
pub async fn wait_state(
    xs: &Xenstore,
    state_path: &str,
    until: impl Fn(XenbusState) -> bool,
) -> Result<XenbusState, XenbusError> {
    let mut watch = xs.watch(state_path).await.map_err(XenbusError::Watch)?;
    for _ in 0..STATE_CHANGES_MAX {
        let s = read_state(xs, state_path).await?;
        if until(s) {
            return Ok(s);
        }
        if matches!(s, XenbusState::Closing | XenbusState::Closed) {
            return Err(XenbusError::PeerClosed(s));
        }
        if watch.next().await.is_none() {
            return Err(XenbusError::WatchEnded);
        }
    }
    Err(XenbusError::TooManyChanges)
}

/// The backend half of a device's xenbus handshake, over dom0's xenstore
/// client (see the module doc for the steps).
#[derive(Debug, Clone)]
pub struct XenbusBackend {
    xs: Xenstore,
    paths: DevicePaths,
}

impl XenbusBackend {
    /// The handshake of the device at `paths`, through `xs` (the backend
    /// domain's client: [`SimXen::dom0_xenstore`]).
    pub fn new(xs: Xenstore, paths: DevicePaths) -> XenbusBackend {
        XenbusBackend { xs, paths }
    }

    /// The device's directories.
    pub fn paths(&self) -> &DevicePaths {
        &self.paths
    }

    /// The client.
    pub fn xenstore(&self) -> &Xenstore {
        &self.xs
    }

    /// Writes the backend's `state`.
    ///
    /// # Errors
    ///
    /// [`XenbusError::Xenstore`].
    pub async fn set_state(&self, state: XenbusState) -> Result<(), XenbusError> {
        let path = format!("{}/state", self.paths.backend);
        self.xs.write(&path, state.as_str()).await?;
        Ok(())
    }

    /// The front end's `state` (Closed if its directory is gone).
    ///
    /// # Errors
    ///
    /// [`XenbusError::Xenstore`].
    pub async fn frontend_state(&self) -> Result<XenbusState, XenbusError> {
        read_state(&self.xs, &format!("{}/state", self.paths.frontend)).await
    }

    /// Waits until the front end's state satisfies `until` (see
    /// [`wait_state`]).
    ///
    /// # Errors
    ///
    /// [`XenbusError`]; [`XenbusError::PeerClosed`] if it closes first.
    pub async fn wait_frontend(
        &self,
        until: impl Fn(XenbusState) -> bool,
    ) -> Result<XenbusState, XenbusError> {
        wait_state(&self.xs, &format!("{}/state", self.paths.frontend), until).await
    }

    /// Reads the front end's node `name` as a decimal (`ring-ref`,
    /// `event-channel`): untrusted, parsed and bounded by `T`.
    ///
    /// # Errors
    ///
    /// [`XenbusError::Xenstore`] (`BadValue` for a malformed number).
    pub async fn read_frontend_int<T: FromStr>(&self, name: &str) -> Result<T, XenbusError> {
        Ok(self
            .xs
            .read_int(&format!("{}/{name}", self.paths.frontend))
            .await?)
    }

    /// Writes the backend's node `name`.
    ///
    /// # Errors
    ///
    /// [`XenbusError::Xenstore`].
    pub async fn write_backend(&self, name: &str, value: &str) -> Result<(), XenbusError> {
        self.xs
            .write(&format!("{}/{name}", self.paths.backend), value)
            .await?;
        Ok(())
    }

    /// Closes the backend's side: Closing, then Closed.
    ///
    /// # Errors
    ///
    /// [`XenbusError::Xenstore`].
    pub async fn close(&self) -> Result<(), XenbusError> {
        self.set_state(XenbusState::Closing).await?;
        self.set_state(XenbusState::Closed).await
    }
}
