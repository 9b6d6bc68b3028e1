//! Real Xen: the PVH guest platform, the only code with asm and hypercalls.
//!
//! On `target_os = "none"` this module is a PVH kernel's lowest layer: the
//! entry note and the switch to long mode ([`boot`]), descriptor tables and
//! instructions (`cpu`), the hypercall page (`hypercall`), the heap
//! (`heap`), event delivery and the LAPIC (`lapic`), the pvclock
//! ([`clock`]), the crash path (`trap`) and [`Pvh`], the [`Hypervisor`]
//! over real hypercalls. The boot sequence is in `start`; docs/boot.md walks
//! through it.
//!
//! The arithmetic parts ([`layout`], [`clock`]) compile and are tested on
//! every target.
//!
//! [`Hypervisor`]: crate::hypervisor::Hypervisor

pub mod clock;
pub mod layout;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod hypercall;
#[cfg(target_os = "none")]
mod lapic;
#[cfg(target_os = "none")]
mod sched;
#[cfg(target_os = "none")]
mod start;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod xen;

#[cfg(target_os = "none")]
pub use heap::{heap_free_bytes, shared_pages, SHARED_PAGES_MAX};
#[cfg(target_os = "none")]
pub use sched::XenVersion;
#[cfg(target_os = "none")]
pub use start::{CMDLINE_BYTES_MAX, GRANT_FRAMES};
#[cfg(target_os = "none")]
pub use trap::{
    crash, set_crash_console, CrashConsole, CRASH_REPORT_BYTES, UPCALLS, UPCALLS_AT_HLT,
};
#[cfg(target_os = "none")]
pub use xen::Pvh;
