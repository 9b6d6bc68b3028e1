//! blkfront: the Xen block frontend, and the pieces it is built from.
//!
//! - [`config`]: the backend's xenstore nodes, validated.
//! - [`response`]: a response judged against its request.
//! - [`mod@connect`]: the xenbus handshake, and the watch on the backend.
//! - [`device`]: the data path, [`Blkfront`], a [`BlockDevice`](crate::BlockDevice).

pub mod config;
pub mod connect;
pub mod device;
pub mod response;

pub use config::{BackendConfig, BackendNodes, ConfigError, FlushMethod};
pub use connect::{connect, ConnectError, MonitorError};
pub use device::{Blkfront, BlkfrontStats, BlkifRing};
