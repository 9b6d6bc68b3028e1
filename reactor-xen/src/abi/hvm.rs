//! HVM parameters and operations (xen/hvm/params.h, xen/hvm/hvm_op.h).
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

/// `HVM_PARAM_CALLBACK_IRQ`: how event upcalls are delivered (GSI, vector).
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_STORE_PFN`: the xenstore ring's frame.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`: the xenstore ring's port.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN`: the PV console ring's frame.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`: the PV console ring's port.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`: in the top byte of
/// `HVM_PARAM_CALLBACK_IRQ`'s value, deliver upcalls on the vector in the
/// low byte.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;
/// Shift of the callback type in `HVM_PARAM_CALLBACK_IRQ`'s value.
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_SHIFT: u32 = 56;

/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u32 = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u32 = 1;
/// `HVMOP_set_evtchn_upcall_vector`: per-vCPU upcall vector (preferred to
/// `HVM_PARAM_CALLBACK_IRQ`).
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

/// `struct xen_hvm_param`: the argument of `HVMOP_set_param`/`get_param`.
#[doc(alias = "xen_hvm_param")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    /// IN: the domain (`DOMID_SELF`).
    pub domid: u16,
    /// Padding.
    pub pad: u16,
    /// IN: `HVM_PARAM_*`.
    pub index: u32,
    /// IN (set) / OUT (get): the value.
    pub value: u64,
}

const _: () = {
    assert!(size_of::<XenHvmParam>() == 16);
    assert!(offset_of!(XenHvmParam, domid) == 0);
    assert!(offset_of!(XenHvmParam, pad) == 2);
    assert!(offset_of!(XenHvmParam, index) == 4);
    assert!(offset_of!(XenHvmParam, value) == 8);
};

/// `struct xen_hvm_evtchn_upcall_vector`: the argument of
/// `HVMOP_set_evtchn_upcall_vector`.
#[doc(alias = "xen_hvm_evtchn_upcall_vector")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmEvtchnUpcallVector {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// IN: the interrupt vector.
    pub vector: u8,
    /// Explicit tail padding (implicit in C).
    pub _pad: [u8; 3],
}

const _: () = {
    assert!(size_of::<XenHvmEvtchnUpcallVector>() == 8);
    assert!(offset_of!(XenHvmEvtchnUpcallVector, vcpu) == 0);
    assert!(offset_of!(XenHvmEvtchnUpcallVector, vector) == 4);
    assert!(offset_of!(XenHvmEvtchnUpcallVector, _pad) == 5);
};
