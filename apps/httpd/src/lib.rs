#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(any(test, not(target_os = "none")))]
extern crate std;

pub mod access_log;
pub mod cache;
#[cfg(feature = "appliance")]
pub mod client;
pub mod http;
#[cfg(not(target_os = "none"))]
pub mod pack;
#[cfg(feature = "appliance")]
pub mod server;
#[cfg(all(feature = "appliance", not(target_os = "none")))]
pub mod sim_dom0;
#[cfg(feature = "appliance")]
mod tar_site;
