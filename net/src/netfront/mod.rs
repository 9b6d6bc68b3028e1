//! netfront: the Xen network frontend, a smoltcp device over netif rings.
//!
//! - [`netif`]: the wire format of xen/io/netif.h (tx/rx requests and
//!   responses, flags, status codes).
//! - [`config`]: netfront's limits, and the xenstore values it reads (MAC,
//!   backend features), validated.
//! - [`rx`]: judging rx responses and assembling frames from them.
#![deny(unsafe_code)]

pub mod config;
pub mod netif;
pub mod rx;

pub use config::{BackendFeatures, ConfigError, Mac, Negotiated, NetfrontConfig};
