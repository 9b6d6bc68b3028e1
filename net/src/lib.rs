#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod cable;
pub mod config;
pub mod device;
pub mod error;
pub mod netfront;
#[cfg(feature = "sim")]
pub mod sim_netback;
pub mod stack;
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod tap;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod tests;

pub use crate::config::{ConfigError, IpConfig, IpConfigError, Ipv4Config, StackConfig};
pub use crate::device::NetDevice;
pub use crate::error::{
    BindError, ConnectError, ReadError, UdpRecvError, UdpSendError, WriteError,
};
pub use crate::stack::{Runner, Stack, StackStats};
pub use crate::tcp::{TcpListener, TcpReader, TcpStream, TcpWriter};
pub use crate::udp::UdpSocket;
/// Address types (smoltcp's; `Ipv4Address` is `core::net::Ipv4Addr`).
pub use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
