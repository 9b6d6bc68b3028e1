//! The local APIC, only as far as event delivery needs it: enable it and
//! acknowledge (EOI) the upcall vector.
//!
//! Xen delivers the event upcall through the emulated LAPIC
//! (`HVMOP_set_evtchn_upcall_vector`), which must be software-enabled (SVR
//! bit 8) for the vector to reach the vCPU, and which needs an EOI for each
//! delivered vector. x2APIC (MSRs) is used when CPUID offers it, else the
//! xAPIC page at the address in `IA32_APIC_BASE` (identity-mapped uncached by
//! the boot page tables).

use core::sync::atomic::{AtomicU64, Ordering};

use super::cpu;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const X2APIC_MSR_BASE: u32 = 0x800;
/// Register offsets (xAPIC byte offset; x2APIC MSR = 0x800 + offset / 16).
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const SVR_ENABLE: u32 = 1 << 8;

/// 0: not set up; 1: x2APIC; otherwise the xAPIC MMIO base.
static MODE: AtomicU64 = AtomicU64::new(0);
const MODE_X2APIC: u64 = 1;

/// Which LAPIC interface is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// MSR access.
    X2apic,
    /// MMIO access at this physical address.
    Xapic(u64),
}

/// Enables the LAPIC with `spurious` as its spurious vector and accepts all
/// priorities (TPR 0).
///
/// # Safety
///
/// Call once during boot with interrupts off. In xAPIC mode the APIC page
/// must be identity-mapped (the boot page tables map the first 4 GiB).
pub(crate) unsafe fn init(spurious: u8) -> Mode {
    let x2apic = cpu::cpuid(1).ecx & (1 << 21) != 0;
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting the enable
    // and x2APIC bits only changes how the LAPIC is accessed.
    let base = unsafe { cpu::rdmsr(IA32_APIC_BASE) };
    let mode = if x2apic {
        // SAFETY: as above; x2APIC is offered (CPUID.1:ECX[21]).
        unsafe { cpu::wrmsr(IA32_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_X2APIC) };
        MODE.store(MODE_X2APIC, Ordering::Relaxed);
        Mode::X2apic
    } else {
        let mmio = base & 0x000f_ffff_ffff_f000;
        MODE.store(mmio, Ordering::Relaxed);
        Mode::Xapic(mmio)
    };
    // SAFETY: the mode is set; these registers exist in both modes.
    unsafe {
        write(REG_TPR, 0);
        write(REG_SVR, SVR_ENABLE | u32::from(spurious));
    }
    mode
}

/// Writes a LAPIC register.
///
/// # Safety
///
/// [`init`] must have chosen the mode; `reg` must be a writable register.
unsafe fn write(reg: u32, value: u32) {
    match MODE.load(Ordering::Relaxed) {
        0 => {}
        MODE_X2APIC => {
            // SAFETY: x2APIC is enabled, so 0x800 + reg/16 is its MSR.
            unsafe { cpu::wrmsr(X2APIC_MSR_BASE + reg / 16, u64::from(value)) }
        }
        mmio => {
            let register = (mmio + u64::from(reg)) as *mut u32;
            // SAFETY: the xAPIC page is identity-mapped (caller of `init`);
            // LAPIC registers are 32-bit, 16-byte aligned, written volatile.
            unsafe { register.write_volatile(value) }
        }
    }
}

/// Signals end of interrupt for the vector being handled. Does nothing
/// before [`init`].
pub(crate) fn eoi() {
    // SAFETY: EOI is a writable register in both modes; writing 0 only
    // retires the in-service vector.
    unsafe { write(REG_EOI, 0) }
}
