//! Xen's guest ABI as Rust types: the structs and constants of Xen's public
//! headers that Ringlet uses, with no state and no behaviour.
//!
//! Every struct here is `#[repr(C)]`, names the header it comes from, and has
//! a compile-time layout check next to it. Memory that Xen or a backend writes
//! concurrently is typed with atomics so that a `&` to it is sound.

pub mod grant_table;
pub mod shared_info;
pub mod console;
pub mod xs_wire;
