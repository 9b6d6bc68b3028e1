//! blkfront: the Xen block frontend, and the pieces it is built from.
//!
//! - [`config`]: the backend's xenstore nodes, validated.
//! - [`inflight`]: requests in flight by id, and response validation.

pub mod config;
pub mod inflight;
