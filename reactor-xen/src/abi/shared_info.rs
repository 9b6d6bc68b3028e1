//! The shared-info page and per-vCPU info (xen/xen.h).

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

/// The start of `struct shared_info` (xen/xen.h): vCPU info and the 2-level
/// event-channel bitmaps. The wallclock and `arch_shared_info` fields that
/// follow are not used by Ringlet and are not declared; the page is 4 KiB.
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
}

const _: () = {
    assert!(offset_of!(SharedInfo, vcpu_info) == 0);
    assert!(offset_of!(SharedInfo, evtchn_pending) == 2048);
    assert!(offset_of!(SharedInfo, evtchn_mask) == 2560);
    assert!(offset_of!(SharedInfo, wc_version) == 3072);
    assert!(offset_of!(SharedInfo, wc_sec) == 3076);
    assert!(offset_of!(SharedInfo, wc_nsec) == 3080);
    assert!(size_of::<SharedInfo>() <= 4096);
};
