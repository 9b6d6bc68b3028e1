//! Xen's guest ABI as Rust types: the structs and constants of Xen's public
//! headers that Ringlet uses, with no state and no behaviour.
//!
//! Every struct here is `#[repr(C)]`, names the header it comes from, and has
//! a compile-time layout check next to it. Memory that Xen or a backend writes
//! concurrently is typed with atomics so that a `&` to it is sound.
//!
//! Why not `xen-sys`: its published version (0.0.0-pre2) is essentially
//! empty, so Ringlet writes the ABI itself. `tests/abi_layout.rs` compiles a
//! small C program against libxen-dev's headers and checks every size and
//! offset here against the C compiler's.

pub mod console;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod hypercall;
pub mod memory;
pub mod ring;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod xenbus;
pub mod xs_wire;
