//! Ringlet's httpd appliance: a static site served over HTTP/1.1 from a tar
//! image on the first vbd.
//!
//! The crate is a library and the appliance binary (`src/main.rs`):
//!
//! - [`http`]: the sans-IO HTTP/1.1 core — request heads parsed with
//!   httparse into a bounded per-connection queue, and responses (head bytes
//!   plus a body plan) decided against a [`http::Site`]. No sockets, disks
//!   or clocks; fuzzed by `fuzz/` at the repository root.
//! - [`access_log`]: the access-log line and its token-bucket rate limit.
//! - `server` (feature `appliance`): the accept loop and the connection
//!   tasks over ringlet-net sockets, streaming files from the tar store
//!   (`tar_site`), with deadlines, timeouts and graceful shutdown.
//! - `pack` (hosted builds): a directory packed into a tar image in memory,
//!   and the demo site.
//!
//! The crate is `no_std` + `alloc`; hosted builds (not `target_os =
//! "none"`) also link `std` for `pack`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(any(test, not(target_os = "none")))]
extern crate std;

pub mod access_log;
#[cfg(feature = "appliance")]
pub mod client;
pub mod http;
#[cfg(not(target_os = "none"))]
pub mod pack;
#[cfg(feature = "appliance")]
pub mod server;
#[cfg(feature = "appliance")]
mod tar_site;
