//! [`Pvh`]: the [`Hypervisor`] over real hypercalls.
//!
//! Built once by the boot path (`start`) after the hypercall page, the heap,
//! shared info, the grant table and event delivery are set up, and handed to
//! the appliance's runtime. Its references are `'static`: what they point to
//! (shared info, the grant table, the command line) lives as long as the
//! domain. There is no public constructor: only the boot path makes one.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use super::clock::PvClock;
use super::hypercall::{self, hypercall};
use super::sched::XenVersion;
use super::{console, cpu, heap, sched};
use crate::abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq, EvtchnPortOp,
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE,
    EVTCHNOP_SEND, EVTCHNOP_UNMASK,
};
use crate::abi::grant_table::GrantEntryV1;
use crate::abi::hvm::{
    XenHvmParam, HVMOP_GET_PARAM, HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use crate::abi::hypercall::DOMID_SELF;
use crate::abi::shared_info::{SharedInfo, VcpuInfo};
use crate::abi::vcpu::{VcpuSetSingleshotTimer, VCPUOP_SET_SINGLESHOT_TIMER};
use crate::hypervisor::{
    DomId, Hypervisor, OutOfPages, Page, Port, RingPage, ShutdownReason, Virq, XenError, PAGE_SIZE,
};

/// No port yet (the timer VIRQ is bound during boot).
pub(crate) const NO_PORT: u32 = u32::MAX;

/// The real-Xen [`Hypervisor`].
#[derive(Debug)]
pub struct Pvh {
    pub(crate) shared_info: &'static SharedInfo,
    pub(crate) grant_entries: &'static [GrantEntryV1],
    pub(crate) cmdline: &'static str,
    pub(crate) version: XenVersion,
    pub(crate) clock: PvClock,
    /// The port `VIRQ_TIMER` is bound to, so the single-shot timer that
    /// `block` arms always raises an event.
    pub(crate) timer_port: AtomicU32,
}

impl Pvh {
    /// Xen's version, as `XENVER_version` and `XENVER_extraversion` gave it.
    pub fn xen_version(&self) -> XenVersion {
        self.version
    }

    /// Bytes the heap got at boot.
    pub fn heap_bytes(&self) -> u64 {
        heap::heap_bytes()
    }

    /// Binds `VIRQ_TIMER` for `block`'s timer and unmasks it. Called once
    /// during boot.
    pub(crate) fn bind_timer(&self) -> Result<Port, XenError> {
        let port = bind_virq(Virq::Timer)?;
        self.timer_port.store(port.0, Ordering::Relaxed);
        self.evtchn_unmask(port)?;
        Ok(port)
    }
}

/// Runs an event-channel operation on `arg`.
fn evtchn_op<T>(cmd: u32, arg: &mut T) -> Result<(), XenError> {
    // SAFETY: `arg` is the `evtchn_*` struct for `cmd` (each caller pairs
    // them), valid for reads and writes across the call.
    let ret = unsafe {
        hypercall(
            hypercall::EVENT_CHANNEL_OP,
            [cmd.into(), arg as *mut T as u64, 0, 0, 0],
        )
    };
    result(ret)
}

fn result(ret: i64) -> Result<(), XenError> {
    if ret < 0 {
        Err(XenError(i32::try_from(ret).unwrap_or(i32::MIN)))
    } else {
        Ok(())
    }
}

fn bind_virq(virq: Virq) -> Result<Port, XenError> {
    let mut arg = EvtchnBindVirq {
        virq: virq as u32,
        vcpu: 0,
        port: 0,
    };
    evtchn_op(EVTCHNOP_BIND_VIRQ, &mut arg)?;
    Ok(Port(arg.port))
}

/// `HVMOP_get_param` for this domain.
pub(crate) fn hvm_get_param(index: u32) -> Result<u64, XenError> {
    let mut arg = XenHvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: `arg` is a valid `xen_hvm_param` for HVMOP_get_param, which
    // writes `value`; it lives across the call.
    let ret = unsafe {
        hypercall(
            hypercall::HVM_OP,
            [HVMOP_GET_PARAM.into(), &mut arg as *mut _ as u64, 0, 0, 0],
        )
    };
    result(ret)?;
    Ok(arg.value)
}

/// A toolstack ring page: its frame from `pfn_param`, its port from
/// `evtchn_param`.
fn ring_page(pfn_param: u32, evtchn_param: u32) -> Result<RingPage, XenError> {
    let pfn = hvm_get_param(pfn_param)?;
    let port = hvm_get_param(evtchn_param)?;
    // The boot page tables identity-map the first IDENTITY_MAP_GIB GiB; a
    // frame beyond (or 0: not set up) cannot be used.
    let limit = super::boot::IDENTITY_MAP_GIB << 30;
    let address = pfn
        .checked_mul(PAGE_SIZE as u64)
        .filter(|&a| a != 0 && a < limit);
    let (Some(address), Ok(port)) = (address, u32::try_from(port)) else {
        return Err(XenError::EINVAL);
    };
    let page = NonNull::new(address as *mut u8).ok_or(XenError::EINVAL)?;
    Ok(RingPage {
        page,
        port: Port(port),
    })
}

impl Hypervisor for Pvh {
    fn evtchn_alloc_unbound(&self, remote: DomId) -> Result<Port, XenError> {
        let mut arg = EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: remote.0,
            port: 0,
        };
        evtchn_op(EVTCHNOP_ALLOC_UNBOUND, &mut arg)?;
        Ok(Port(arg.port))
    }

    fn evtchn_bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, XenError> {
        let mut arg = EvtchnBindInterdomain {
            remote_dom: remote.0,
            _pad: 0,
            remote_port: remote_port.0,
            local_port: 0,
        };
        evtchn_op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg)?;
        Ok(Port(arg.local_port))
    }

    fn evtchn_bind_virq(&self, virq: Virq) -> Result<Port, XenError> {
        // The timer VIRQ is bound at boot (a second bind would fail with
        // EEXIST); hand out that port.
        let timer = self.timer_port.load(Ordering::Relaxed);
        if virq == Virq::Timer && timer != NO_PORT {
            return Ok(Port(timer));
        }
        bind_virq(virq)
    }

    fn evtchn_send(&self, port: Port) -> Result<(), XenError> {
        evtchn_op(EVTCHNOP_SEND, &mut EvtchnPortOp { port: port.0 })
    }

    fn evtchn_close(&self, port: Port) -> Result<(), XenError> {
        if port.0 == self.timer_port.load(Ordering::Relaxed) {
            // `block` depends on it; keep it bound.
            return Err(XenError::EPERM);
        }
        evtchn_op(EVTCHNOP_CLOSE, &mut EvtchnPortOp { port: port.0 })
    }

    fn evtchn_unmask(&self, port: Port) -> Result<(), XenError> {
        evtchn_op(EVTCHNOP_UNMASK, &mut EvtchnPortOp { port: port.0 })
    }

    fn shared_info(&self) -> &SharedInfo {
        self.shared_info
    }

    fn vcpu_info(&self) -> &VcpuInfo {
        &self.shared_info.vcpu_info[0]
    }

    fn grant_entries(&self) -> &[GrantEntryV1] {
        self.grant_entries
    }

    fn alloc_page(&self) -> Result<Page, OutOfPages> {
        heap::alloc_page()
    }

    fn free_page(&self, page: Page) {
        assert!(
            (page.ptr().as_ptr() as usize).is_multiple_of(PAGE_SIZE)
                && page.gfn().0 == page.ptr().as_ptr() as u64 / PAGE_SIZE as u64,
            "free_page: not a page from alloc_page"
        );
        // SAFETY: a `Page` is made only by `Page::new_unchecked`, which this
        // implementation calls only in `heap::alloc_page`, and is not Clone:
        // so `page` came from `alloc_page` and is freed once. The trait's
        // contract: the caller ended every grant of it.
        unsafe { heap::free_page(page) }
    }

    fn xenstore_ring(&self) -> Result<RingPage, XenError> {
        ring_page(HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN)
    }

    fn console_ring(&self) -> Result<RingPage, XenError> {
        ring_page(HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN)
    }

    fn now_ns(&self) -> u64 {
        self.clock.now_ns(&self.vcpu_info().time, cpu::rdtsc)
    }

    fn block(&self, deadline_ns: Option<u64>) {
        // Interrupts are off everywhere but inside `enable_interrupts_and_halt`.
        cpu::cli();
        if self
            .vcpu_info()
            .evtchn_upcall_pending
            .load(Ordering::Acquire)
            != 0
        {
            return;
        }
        if let Some(deadline) = deadline_ns {
            if deadline <= self.now_ns() {
                return;
            }
            // flags 0: a deadline that passes before Xen arms the timer fires
            // at once instead of failing with ETIME.
            let mut arg = VcpuSetSingleshotTimer {
                timeout_abs_ns: deadline,
                flags: 0,
                _pad: 0,
            };
            // SAFETY: `arg` is a valid `vcpu_set_singleshot_timer` for vCPU 0,
            // read by Xen during the call.
            let ret = unsafe {
                hypercall(
                    hypercall::VCPU_OP,
                    [
                        VCPUOP_SET_SINGLESHOT_TIMER.into(),
                        0,
                        &mut arg as *mut _ as u64,
                        0,
                        0,
                    ],
                )
            };
            if ret < 0 {
                // No timer: do not halt past the deadline; the caller polls again.
                return;
            }
        }
        // An event that arrived since the check above left the vector
        // pending in the LAPIC: `sti; hlt` takes it at once.
        cpu::enable_interrupts_and_halt();
        log::trace!("block({deadline_ns:?}) woke at {}", self.now_ns());
    }

    fn early_console_write(&self, bytes: &[u8]) {
        console::write_bytes(bytes);
    }

    fn cmdline(&self) -> &str {
        self.cmdline
    }

    fn shutdown(&self, reason: ShutdownReason) {
        sched::shutdown(reason);
        // Xen does not return from SCHEDOP_shutdown for this domain; if it
        // refused, there is nothing left to run.
        cpu::halt_forever()
    }
}
