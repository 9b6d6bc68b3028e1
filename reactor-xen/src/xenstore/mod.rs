//! The xenstore client: the wire codec, the ring transport, and an async
//! client that many tasks share.
//!
//! Layers, bottom up:
//! - [`wire`]: encode requests, decode and validate replies (sans-IO);
//! - [`ring`]: copy bytes through the shared `req`/`rsp` rings, reassemble
//!   messages;

pub mod ring;
pub mod wire;
