//! Ringlet's network stack: [smoltcp] driven by one async runner task, with
//! async TCP and UDP sockets.
//!
//! - [`Stack`] + [`Runner`]: one task owns the smoltcp interface and polls
//!   it when the device, a socket or a deadline asks (see [`stack`] for the
//!   wake rules and the per-run bound);
//! - [`NetDevice`]: the device contract (netfront, [`cable`], a TAP device);
//! - [`TcpListener`] (a real backlog), [`TcpStream`] (read, write, split,
//!   shutdown, abort, timeouts), [`UdpSocket`]; ICMP echo is answered by the
//!   interface;
//! - [`StackConfig`] bounds every buffer and socket count; [`IpConfig`]
//!   reads `ip=`/`gw=` from the kernel command line, or asks DHCPv4.
//!
//! With the `std` feature, [`TcpStream`] and its halves implement
//! `futures::io::{AsyncRead, AsyncWrite}`; without it they offer the same
//! operations as inherent `async fn`s and `poll_*` methods.
//!
//! ```
//! use ringlet_executor::{spawn, Executor, StdPlatform};
//! use ringlet_net::cable::{Cable, CableConfig};
//! use ringlet_net::{IpConfig, Stack, StackConfig, TcpListener, TcpStream};
//!
//! Executor::new(StdPlatform::new()).block_on(async {
//!     let (a, b) = Cable::pair(CableConfig::default());
//!     let cfg = |s| StackConfig::new(IpConfig::from_cmdline(s).unwrap());
//!     let (server, run_a) = Stack::new(a, cfg("ip=10.0.0.1/24")).unwrap();
//!     let (client, run_b) = Stack::new(b, cfg("ip=10.0.0.2/24")).unwrap();
//!     spawn(run_a.run()).detach();
//!     spawn(run_b.run()).detach();
//!
//!     let mut listener = TcpListener::bind(&server, 7, 4).unwrap();
//!     let echo = spawn(async move {
//!         let (mut conn, _peer) = listener.accept().await;
//!         let mut buf = [0; 64];
//!         let n = conn.read(&mut buf).await.unwrap();
//!         conn.write_all(&buf[..n]).await.unwrap();
//!         conn.close().await.unwrap();
//!     });
//!     let addr = core::net::Ipv4Addr::new(10, 0, 0, 1);
//!     let mut conn = TcpStream::connect(&client, (addr, 7)).await.unwrap();
//!     conn.write_all(b"ping").await.unwrap();
//!     let mut buf = [0; 4];
//!     let mut got = 0;
//!     while got < 4 {
//!         got += conn.read(&mut buf[got..]).await.unwrap();
//!     }
//!     assert_eq!(&buf, b"ping");
//!     echo.await.unwrap();
//! });
//! ```
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
