//! Ringlet's Xen guest platform.
//!
//! The driver-facing API (event channels, grants, rings, xenstore, console)
//! over one small [`hypervisor::Hypervisor`] trait, implemented by real Xen
//! (PVH, `target_os = "none"`) and by a deterministic software Xen (`sim`).
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod abi;
pub mod console;
pub mod evtchn;
pub mod grant;
pub mod guest;
pub mod hypervisor;
pub mod page;
pub mod platform;
#[allow(unsafe_code)]
pub mod pvh;
pub mod ring;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod xenstore;
