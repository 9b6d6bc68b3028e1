//! Event-channel operations (xen/event_channel.h): `EVTCHNOP_*` numbers and
//! their argument structs, for the hypercall layer.
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send`.
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_bind_ipi`.
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// `EVTCHNOP_bind_vcpu`.
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_UNMASK: u32 = 9;
/// `EVTCHNOP_reset`.
pub const EVTCHNOP_RESET: u32 = 10;

/// `VIRQ_TIMER` (xen/xen.h): the single-shot/periodic timer fired (per vCPU).
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (xen/xen.h): dump debug state (per vCPU).
pub const VIRQ_DEBUG: u32 = 1;

/// `struct evtchn_alloc_unbound`: a port that `remote_dom` may bind to.
#[doc(alias = "evtchn_alloc_unbound")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// IN: the allocating domain (`DOMID_SELF`).
    pub dom: u16,
    /// IN: the domain allowed to bind.
    pub remote_dom: u16,
    /// OUT: the new port.
    pub port: u32,
}

const _: () = {
    assert!(size_of::<EvtchnAllocUnbound>() == 8);
    assert!(offset_of!(EvtchnAllocUnbound, dom) == 0);
    assert!(offset_of!(EvtchnAllocUnbound, remote_dom) == 2);
    assert!(offset_of!(EvtchnAllocUnbound, port) == 4);
};

/// `struct evtchn_bind_interdomain`: connect to a remote unbound port.
#[doc(alias = "evtchn_bind_interdomain")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: u16,
    /// Explicit padding (implicit in C).
    pub _pad: u16,
    /// IN: its unbound port.
    pub remote_port: u32,
    /// OUT: our new port.
    pub local_port: u32,
}

const _: () = {
    assert!(size_of::<EvtchnBindInterdomain>() == 12);
    assert!(offset_of!(EvtchnBindInterdomain, remote_dom) == 0);
    assert!(offset_of!(EvtchnBindInterdomain, _pad) == 2);
    assert!(offset_of!(EvtchnBindInterdomain, remote_port) == 4);
    assert!(offset_of!(EvtchnBindInterdomain, local_port) == 8);
};

/// `struct evtchn_bind_virq`: bind a virtual IRQ on a vCPU to a port.
#[doc(alias = "evtchn_bind_virq")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

const _: () = {
    assert!(size_of::<EvtchnBindVirq>() == 12);
    assert!(offset_of!(EvtchnBindVirq, virq) == 0);
    assert!(offset_of!(EvtchnBindVirq, vcpu) == 4);
    assert!(offset_of!(EvtchnBindVirq, port) == 8);
};

/// `struct evtchn_close`, `struct evtchn_send` and `struct evtchn_unmask`:
/// the operations whose only argument is a port.
#[doc(alias = "evtchn_close")]
#[doc(alias = "evtchn_send")]
#[doc(alias = "evtchn_unmask")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnPortOp {
    /// IN: the local port.
    pub port: u32,
}

/// `struct evtchn_close`.
pub type EvtchnClose = EvtchnPortOp;
/// `struct evtchn_send`.
pub type EvtchnSend = EvtchnPortOp;
/// `struct evtchn_unmask`.
pub type EvtchnUnmask = EvtchnPortOp;

const _: () = {
    assert!(size_of::<EvtchnPortOp>() == 4);
    assert!(offset_of!(EvtchnPortOp, port) == 0);
};
