//! vCPU operations (xen/vcpu.h): the single-shot timer and vcpu_info
//! placement.
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

/// `VCPUOP_set_singleshot_timer`: fire `VIRQ_TIMER` at an absolute system time.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `VCPUOP_register_vcpu_info`: move `vcpu_info` out of the shared-info page.
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the deadline has passed.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1;

/// `struct vcpu_set_singleshot_timer`.
#[doc(alias = "vcpu_set_singleshot_timer")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns) at which to fire.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Explicit tail padding (implicit in C).
    pub _pad: u32,
}

const _: () = {
    assert!(size_of::<VcpuSetSingleshotTimer>() == 16);
    assert!(offset_of!(VcpuSetSingleshotTimer, timeout_abs_ns) == 0);
    assert!(offset_of!(VcpuSetSingleshotTimer, flags) == 8);
    assert!(offset_of!(VcpuSetSingleshotTimer, _pad) == 12);
};

/// `struct vcpu_register_vcpu_info`.
#[doc(alias = "vcpu_register_vcpu_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Guest frame holding the new `vcpu_info`.
    pub mfn: u64,
    /// Offset of `vcpu_info` in that frame.
    pub offset: u32,
    /// Reserved, zero.
    pub rsvd: u32,
}

const _: () = {
    assert!(size_of::<VcpuRegisterVcpuInfo>() == 16);
    assert!(offset_of!(VcpuRegisterVcpuInfo, mfn) == 0);
    assert!(offset_of!(VcpuRegisterVcpuInfo, offset) == 8);
    assert!(offset_of!(VcpuRegisterVcpuInfo, rsvd) == 12);
};
