//! Ringlet's storage stack: an async block-device contract and what sits
//! above and below it.
//!
//! - [`BlockDevice`]: read, write and flush at sector granularity, many
//!   requests in flight, every request bounds-checked ([`check_request`]).
//! - [`MemDevice`]: an in-memory device with injectable faults and latency;
//!   with the `std` feature, `FileDevice` over a host file.
//! - [`read_bytes`]: reads of any byte range through a bounded bounce buffer.
//! - [`CachedDevice`]: a bounded LRU read cache in front of any device.
//!
//! The crate is `no_std` + `alloc`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod blkfront;
pub mod blkif;
pub mod block;
pub mod bytes;
pub mod cache;
#[cfg(feature = "std")]
pub mod file;
pub mod mem;
#[cfg(feature = "sim")]
pub mod sim;
pub mod tar;

pub use block::{
    check_request, BlockDevice, BlockInfo, FlushError, ProtocolError, ReadError, RequestError,
    WriteError,
};
pub use bytes::{read_bytes, AlignedBuf};
pub use cache::{CacheConfig, CacheConfigError, CacheStats, CachedDevice};
#[cfg(feature = "std")]
pub use file::{FileDevice, OpenError};
pub use mem::{Fault, FaultKind, FaultOn, MemDevice, MemStats};
