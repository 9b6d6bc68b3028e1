//! Test support: a mock hypervisor for the crate's own unit tests, and (with
//! the `testing` feature) the harness that checks hand-written ABI structs
//! against Xen's C headers, shared by the layout tests of every driver crate.

#[cfg(feature = "testing")]
pub mod c_layout;
#[cfg(test)]
mod mock;
#[cfg(test)]
pub(crate) use mock::*;
