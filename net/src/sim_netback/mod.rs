//! The software Xen's network backend (`sim` feature): dom0's netback
//! serving sim netfronts, and a learning bridge that forwards Ethernet
//! frames between them.
//!
//! - [`bridge`]: [`Bridge`], a learning switch with bounded port queues.
//! - [`netback`]: [`Netback`], one vif's backend: the xenbus handshake,
//!   the rings in rx-copy mode, injected faults, disconnect and reconnect.
//! - [`tap_port`] (`std`, Linux): [`TapPort`], a bridge port on a TAP
//!   device, joining a real-time world's bridge to the host's network.
//!
//! ```
//! use ringlet_net::netfront::Mac;
//! use ringlet_net::sim_netback::{add_vif, Bridge, Netback, NetbackConfig};
//! use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
//!
//! let sim = SimXen::new(SimConfig::new(1).quiet());
//! let guest = sim.create_domain(DomainConfig::new("guest")).id();
//! let bridge = Bridge::new(64);
//! let paths = add_vif(&sim, guest, 0, Mac([0, 0x16, 0x3e, 0, 0, 2]));
//! let back = Netback::new(&sim, &bridge, paths, NetbackConfig::default()).unwrap();
//! // ringlet_executor::spawn(back.run()) on the sim's executor, then
//! // ringlet_net::netfront::connect in the guest.
//! # drop(back);
//! ```
#![deny(unsafe_code)]

pub mod bridge;
pub mod netback;
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod tap_port;

pub use bridge::{Bridge, BridgeFull, BridgePort, BridgeStats, PortStats};
pub use netback::{
    add_vif, Netback, NetbackConfig, NetbackError, NetbackExit, NetbackStats, NetbackStatsHandle,
};
#[cfg(all(feature = "std", target_os = "linux"))]
pub use tap_port::{TapOpenError, TapPort, TapPortStats, TapRunError};
