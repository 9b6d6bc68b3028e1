//! Hypercalls: the hypercall page and the one asm wrapper every hypercall
//! goes through.
//!
//! A PVH guest finds Xen through CPUID: leaves `0x40000000 + 0x100 * i` carry
//! the signature "XenVMMXenVMM" (the offset moves when Xen also offers
//! Viridian); leaf `base + 2` gives the MSR that, written with a page's
//! physical address, makes Xen fill that page with one 32-byte stub per
//! hypercall (`mov $nr, %eax; vmmcall/vmcall; ret`). A call is then
//! `call page + nr * 32` with the arguments in rdi, rsi, rdx, r10, r8 and the
//! result in rax (xen/arch-x86/xen-x86_64.h).

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};

use super::cpu;
use crate::abi::hypercall::HYPERCALL_ENTRY_SIZE;

pub(crate) use crate::abi::hypercall::{
    HYPERVISOR_EVENT_CHANNEL_OP as EVENT_CHANNEL_OP, HYPERVISOR_HVM_OP as HVM_OP,
    HYPERVISOR_MEMORY_OP as MEMORY_OP, HYPERVISOR_SCHED_OP as SCHED_OP,
    HYPERVISOR_VCPU_OP as VCPU_OP, HYPERVISOR_XEN_VERSION as XEN_VERSION,
};

/// The highest CPUID base probed for Xen's leaves (`0x40000000 + 0x100 * i`).
const CPUID_BASE_LAST: u32 = 0x4001_0000;

/// The number of hypercall stubs in the page (4096 / 32).
const HYPERCALLS_MAX: u32 = 128;

/// Xen was not found or its hypercall page could not be installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HypercallPageError {
    /// No CPUID leaf carries the "XenVMMXenVMM" signature: not on Xen.
    NotXen,
    /// Xen's leaves stop before `base + 2` (the hypercall-page leaf).
    NoHypercallLeaf,
}

impl core::fmt::Display for HypercallPageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HypercallPageError::NotXen => {
                f.write_str("no Xen CPUID signature (not running on Xen)")
            }
            HypercallPageError::NoHypercallLeaf => {
                f.write_str("Xen's CPUID leaves lack the hypercall-page leaf")
            }
        }
    }
}

impl core::error::Error for HypercallPageError {}

// The page Xen fills with hypercall stubs. Until then it holds `int3`, so a
// hypercall before `init` traps (#BP) instead of running garbage.
global_asm!(
    ".pushsection .text.ringlet_hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".global ringlet_hypercall_page",
    "ringlet_hypercall_page:",
    ".fill 4096, 1, 0xcc",
    ".popsection",
    options(att_syntax),
);

unsafe extern "C" {
    static ringlet_hypercall_page: [u8; 4096];
}

static READY: AtomicBool = AtomicBool::new(false);

/// Finds Xen's CPUID leaves; returns their base.
pub(crate) fn xen_cpuid_base() -> Option<u32> {
    let mut base = 0x4000_0000;
    while base <= CPUID_BASE_LAST {
        let leaf = cpu::cpuid(base);
        let signature = [leaf.ebx, leaf.ecx, leaf.edx];
        if signature == [0x566e_6558, 0x65584d4d, 0x4d4d566e] && leaf.eax >= base + 2 {
            return Some(base);
        }
        base += 0x100;
    }
    None
}

/// Asks Xen to fill the hypercall page.
///
/// # Errors
///
/// [`HypercallPageError`] when not on Xen.
pub(crate) fn init() -> Result<u32, HypercallPageError> {
    let base = xen_cpuid_base().ok_or(HypercallPageError::NotXen)?;
    if cpu::cpuid(base).eax < base + 2 {
        return Err(HypercallPageError::NoHypercallLeaf);
    }
    let msr = cpu::cpuid(base + 2).ebx;
    // SAFETY: the page is in the image (identity-mapped, so its address is
    // its physical address), 4 KiB aligned, used for nothing else; Xen writes
    // the stubs into it when the MSR is written.
    unsafe {
        let page = core::ptr::addr_of!(ringlet_hypercall_page) as u64;
        cpu::wrmsr(msr, page);
    }
    READY.store(true, Ordering::Release);
    Ok(base)
}

/// Whether [`init`] installed the hypercall page.
pub(crate) fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Calls hypercall `nr` with up to five arguments; returns Xen's rax.
///
/// # Safety
///
/// [`init`] must have succeeded, and the arguments must be valid for the
/// hypercall: every pointer among them must point to memory of the layout the
/// hypercall expects that Xen may read (and, for output fields, write) for
/// the duration of the call.
#[inline]
pub(crate) unsafe fn hypercall(nr: u32, args: [u64; 5]) -> i64 {
    debug_assert!(nr < HYPERCALLS_MAX);
    debug_assert!(ready());
    // SAFETY: the page is filled (caller), so the entry is Xen's stub for
    // `nr`. Argument registers are treated as clobbered (Xen's debug builds
    // poison them), and memory is not `nomem`: Xen reads and writes guest
    // memory through the pointers the caller passes.
    unsafe {
        let entry = core::ptr::addr_of!(ringlet_hypercall_page)
            .cast::<u8>()
            .add(nr as usize * HYPERCALL_ENTRY_SIZE);
        let ret: i64;
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            inlateout("rdi") args[0] => _,
            inlateout("rsi") args[1] => _,
            inlateout("rdx") args[2] => _,
            inlateout("r10") args[3] => _,
            inlateout("r8") args[4] => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
        ret
    }
}
