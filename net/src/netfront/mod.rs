//! netfront: the Xen network frontend, a smoltcp device over netif rings.
//!
//! - [`netif`]: the wire format of xen/io/netif.h (tx/rx requests and
//!   responses, flags, status codes).
//! - [`config`]: netfront's limits, and the xenstore values it reads (MAC,
//!   backend features), validated.
//! - [`rx`]: judging rx responses and assembling frames from them.
//! - [`csum`]: transmit checksum offload (the pseudo-header sum, or a
//!   full checksum where the backend could not complete one).
//! - [`connect`](mod@connect): the xenbus handshake, and the supervisor
//!   that reconnects.
//! - [`device`]: the data path, [`Netfront`], a smoltcp `Device` and a
//!   [`NetDevice`](crate::NetDevice).
//!
//! netfront sees Xen only through reactor-xen's front ring, grants, event
//! channels and xenstore client; it makes no hypercall itself.
#![deny(unsafe_code)]

pub mod config;
pub mod connect;
pub mod csum;
pub mod device;
pub mod netif;
pub mod rx;

pub use connect::{connect, ConnectError, SuperviseError};
pub use device::{
    DownReason, Netfront, NetfrontError, NetfrontHandle, NetfrontStats, Ring, RxToken, TxToken,
};

pub use config::{BackendFeatures, ConfigError, Mac, Negotiated, NetfrontConfig};
