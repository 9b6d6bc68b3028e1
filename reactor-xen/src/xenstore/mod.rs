//! The xenstore client: the wire codec, the ring transport, and an async
//! client that many tasks share.
//!
//! Layers, bottom up:
//! - [`wire`]: encode requests, decode and validate replies (sans-IO);
//! - [`ring`]: copy bytes through the shared `req`/`rsp` rings, reassemble
//!   messages;
//! - [`client`]: [`Xenstore`], the async client over a [`Guest`]'s xenstore
//!   ring and port: requests in flight matched by id, watches as streams,
//!   transactions retried on conflict.
//!
//! [`Guest`]: crate::guest::Guest

pub mod client;
pub mod ring;
pub mod wire;

pub use client::{
    ConnectError, RequestError, Transaction, TransactionError, WaitError, Watch, WatchError,
    WatchEvent, Xenstore, XenstoreStats,
};
pub use wire::{Access, Permission, ProtocolError, XenstoreError};
