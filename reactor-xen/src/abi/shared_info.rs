//! The shared-info page and per-vCPU info (xen/xen.h).
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};

/// Number of vCPUs whose `vcpu_info` lives in the shared-info page.
#[doc(alias = "XEN_LEGACY_MAX_VCPUS")]
pub const LEGACY_MAX_VCPUS: usize = 32;

/// Bits in one word of the event-channel bitmaps (`xen_ulong_t`).
pub const BITS_PER_EVENT_WORD: usize = 64;

/// Words in each 2-level event-channel bitmap: 64 words × 64 bits = 4096 ports.
pub const EVENT_WORDS: usize = BITS_PER_EVENT_WORD;

/// pvclock time parameters, `struct vcpu_time_info` (xen/xen.h).
///
/// Xen updates it under a seqlock: `version` is odd while an update is in
/// progress.
#[doc(alias = "vcpu_time_info")]
#[repr(C)]
#[derive(Debug)]
pub struct VcpuTimeInfo {
    /// Incremented before and after each update.
    pub version: AtomicU32,
    /// Padding.
    pub pad0: AtomicU32,
    /// TSC at the last update.
    pub tsc_timestamp: AtomicU64,
    /// System time in ns at the last update.
    pub system_time: AtomicU64,
    /// TSC → ns multiplier (32.32 fixed point, after the shift).
    pub tsc_to_system_mul: AtomicU32,
    /// Shift applied to the TSC delta before the multiply (signed).
    pub tsc_shift: AtomicU8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: AtomicU8,
    /// Padding.
    pub pad1: [AtomicU8; 2],
}

const _: () = {
    assert!(size_of::<VcpuTimeInfo>() == 32);
    assert!(offset_of!(VcpuTimeInfo, version) == 0);
    assert!(offset_of!(VcpuTimeInfo, pad0) == 4);
    assert!(offset_of!(VcpuTimeInfo, tsc_timestamp) == 8);
    assert!(offset_of!(VcpuTimeInfo, system_time) == 16);
    assert!(offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
    assert!(offset_of!(VcpuTimeInfo, tsc_shift) == 28);
    assert!(offset_of!(VcpuTimeInfo, flags) == 29);
    assert!(offset_of!(VcpuTimeInfo, pad1) == 30);
};

/// Per-vCPU event and time state, `struct vcpu_info` (xen/xen.h, x86_64).
#[doc(alias = "vcpu_info")]
#[repr(C)]
#[derive(Debug)]
pub struct VcpuInfo {
    /// Set non-zero by Xen when an event is pending for this vCPU; cleared by
    /// the guest before it scans the selector.
    pub evtchn_upcall_pending: AtomicU8,
    /// Upcall mask (PV only; unused by PVH guests).
    pub evtchn_upcall_mask: AtomicU8,
    /// Padding.
    pub pad: [AtomicU8; 6],
    /// Selector: bit `i` set means word `i` of `evtchn_pending` may have
    /// pending, unmasked ports.
    pub evtchn_pending_sel: AtomicU64,
    /// `struct arch_vcpu_info`: cr2 and padding (x86_64).
    pub arch: [AtomicU64; 2],
    /// pvclock parameters.
    pub time: VcpuTimeInfo,
}

const _: () = {
    assert!(size_of::<VcpuInfo>() == 64);
    assert!(offset_of!(VcpuInfo, evtchn_upcall_pending) == 0);
    assert!(offset_of!(VcpuInfo, evtchn_upcall_mask) == 1);
    assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
    assert!(offset_of!(VcpuInfo, arch) == 16);
    assert!(offset_of!(VcpuInfo, time) == 32);
};

/// Event-channel ports in the 2-level ABI: 64 words of 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: usize = EVENT_WORDS * BITS_PER_EVENT_WORD;

/// `struct arch_shared_info` (xen/arch-x86/xen.h, x86_64): p2m bookkeeping
/// for PV guests; unused by a PVH guest but part of the layout.
#[doc(alias = "arch_shared_info")]
#[repr(C)]
#[derive(Debug, Default)]
pub struct ArchSharedInfo {
    /// Number of valid p2m entries (PV only).
    pub max_pfn: AtomicU64,
    /// Frame of the p2m frame list list (PV only).
    pub pfn_to_mfn_frame_list_list: AtomicU64,
    /// NMI reason bits.
    pub nmi_reason: AtomicU64,
    /// Root of the address space where `p2m_vaddr` is valid (PV only).
    pub p2m_cr3: AtomicU64,
    /// Virtual address of the linear p2m list (PV only).
    pub p2m_vaddr: AtomicU64,
    /// Incremented around p2m updates (PV only).
    pub p2m_generation: AtomicU64,
}

const _: () = {
    assert!(size_of::<ArchSharedInfo>() == 48);
    assert!(offset_of!(ArchSharedInfo, max_pfn) == 0);
    assert!(offset_of!(ArchSharedInfo, pfn_to_mfn_frame_list_list) == 8);
    assert!(offset_of!(ArchSharedInfo, nmi_reason) == 16);
    assert!(offset_of!(ArchSharedInfo, p2m_cr3) == 24);
    assert!(offset_of!(ArchSharedInfo, p2m_vaddr) == 32);
    assert!(offset_of!(ArchSharedInfo, p2m_generation) == 40);
};

/// The shared-info page, `struct shared_info` (xen/xen.h, x86_64): vCPU
/// info, the 2-level event-channel bitmaps and the wallclock. The struct is
/// 3136 bytes; the rest of its 4 KiB page is unused.
#[doc(alias = "shared_info")]
#[repr(C)]
#[derive(Debug)]
pub struct SharedInfo {
    /// Per-vCPU info for the first 32 vCPUs.
    pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
    /// Pending bits, one per port; set by Xen, cleared by the guest.
    pub evtchn_pending: [AtomicU64; EVENT_WORDS],
    /// Mask bits, one per port; written only by the guest.
    pub evtchn_mask: [AtomicU64; EVENT_WORDS],
    /// Wallclock version (seqlock like `VcpuTimeInfo::version`).
    pub wc_version: AtomicU32,
    /// Wallclock seconds at system time 0 (low 32 bits).
    pub wc_sec: AtomicU32,
    /// Wallclock nanoseconds at system time 0.
    pub wc_nsec: AtomicU32,
    /// Wallclock seconds at system time 0 (high 32 bits; x86_64).
    pub wc_sec_hi: AtomicU32,
    /// x86 PV bookkeeping.
    pub arch: ArchSharedInfo,
}

const _: () = {
    assert!(offset_of!(SharedInfo, vcpu_info) == 0);
    assert!(offset_of!(SharedInfo, evtchn_pending) == 2048);
    assert!(offset_of!(SharedInfo, evtchn_mask) == 2560);
    assert!(offset_of!(SharedInfo, wc_version) == 3072);
    assert!(offset_of!(SharedInfo, wc_sec) == 3076);
    assert!(offset_of!(SharedInfo, wc_nsec) == 3080);
    assert!(offset_of!(SharedInfo, wc_sec_hi) == 3084);
    assert!(offset_of!(SharedInfo, arch) == 3088);
    assert!(size_of::<SharedInfo>() == 3136);
};

impl Default for VcpuTimeInfo {
    fn default() -> Self {
        VcpuTimeInfo {
            version: AtomicU32::new(0),
            pad0: AtomicU32::new(0),
            tsc_timestamp: AtomicU64::new(0),
            system_time: AtomicU64::new(0),
            tsc_to_system_mul: AtomicU32::new(0),
            tsc_shift: AtomicU8::new(0),
            flags: AtomicU8::new(0),
            pad1: Default::default(),
        }
    }
}

impl Default for VcpuInfo {
    fn default() -> Self {
        VcpuInfo {
            evtchn_upcall_pending: AtomicU8::new(0),
            evtchn_upcall_mask: AtomicU8::new(0),
            pad: Default::default(),
            evtchn_pending_sel: AtomicU64::new(0),
            arch: Default::default(),
            time: VcpuTimeInfo::default(),
        }
    }
}

impl Default for SharedInfo {
    /// An all-zero shared-info page, as Xen hands it to a new domain (for the
    /// software Xen and tests; on real Xen the page is Xen's).
    fn default() -> Self {
        SharedInfo {
            vcpu_info: core::array::from_fn(|_| VcpuInfo::default()),
            evtchn_pending: core::array::from_fn(|_| AtomicU64::new(0)),
            evtchn_mask: core::array::from_fn(|_| AtomicU64::new(0)),
            wc_version: AtomicU32::new(0),
            wc_sec: AtomicU32::new(0),
            wc_nsec: AtomicU32::new(0),
            wc_sec_hi: AtomicU32::new(0),
            arch: ArchSharedInfo::default(),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use core::sync::atomic::Ordering;

    #[test]
    fn default_is_all_zero() {
        let si = alloc::boxed::Box::new(SharedInfo::default());
        assert_eq!(
            si.vcpu_info[31].evtchn_pending_sel.load(Ordering::Relaxed),
            0
        );
        assert!(si
            .evtchn_pending
            .iter()
            .all(|w| w.load(Ordering::Relaxed) == 0));
        assert!(si
            .evtchn_mask
            .iter()
            .all(|w| w.load(Ordering::Relaxed) == 0));
        assert_eq!(EVTCHN_2L_NR_CHANNELS, 4096);
    }
}
