//! Ringlet: an `async fn main` as a Xen PVH guest kernel.
//!
//! ```no_run
//! # #[cfg(any())]
//! #[ringlet::main]
//! async fn main(env: ringlet::Env) -> Result<(), core::fmt::Error> {
//!     log::info!("hello from ringlet, command line {:?}", env.cmdline());
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! An appliance is a binary crate with:
//! - `#![cfg_attr(target_os = "none", no_std, no_main)]` at its root;
//! - `#[ringlet::main] async fn main(env: ringlet::Env) -> R`, where `R` is
//!   `()` or `Result<(), E: Display>` ([`rt::MainResult`]);
//! - a build script that links the PVH kernel with Ringlet's linker script
//!   (apps/hello/build.rs is this, verbatim):
//!   ```text
//!   fn main() {
//!       if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
//!           let script = std::env::var("DEP_RINGLET_LINKER_SCRIPT").unwrap();
//!           println!("cargo::rustc-link-arg-bins=-T{script}");
//!           println!("cargo::rustc-link-arg-bins=--no-pie");
//!       }
//!   }
//!   ```
//! - `ringlet` as a dependency, with the `sim` feature for hosted builds.
//!
//! `cargo build --release --target x86_64-unknown-none` then makes a PVH
//! kernel ELF (docs/boot.md); `cargo run` runs it on the software Xen.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
// Hosted without `sim` there is no runtime: its shared parts go unused.
#![cfg_attr(not(any(target_os = "none", feature = "sim")), allow(dead_code))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub use ringlet_executor as executor;
pub use ringlet_macros::main;
pub use ringlet_xen as xen;

mod env;
pub mod rt;

pub use env::{
    Env, ShutdownKind, ShutdownRequested, ShutdownSignal, CONTROL_SHUTDOWN, SHUTDOWN_WAITERS_MAX,
};
