//! Event channels as Xen implements them: per-domain port tables, the
//! `EVTCHNOP_*` operations with Xen's state checks and errors, and the
//! 2-level pending/mask/selector bit protocol on each domain's shared-info
//! page.
//!
//! # Port states
//!
//! ```text
//!            alloc_unbound (1)             bind_interdomain by remote (2)
//!   Free ─────────────────────► Unbound ───────────────────────────► Interdomain
//!    │ ▲                          │  ▲                                   │
//!    │ └──────── close (3) ───────┘  └── remote end closed (4) ──────────┤
//!    │ ▲                                                                 │
//!    │ └──────────────────────────── close (5) ──────────────────────────┘
//!    │        bind_virq (6)
//!    └──────────────────────► Virq ──── close (7) ───► Free
//! ```
//!
//! Port 0 is `Reserved` and never changes state. Closing clears the port's
//! pending bit (as Xen's `evtchn_free` does) but not its mask bit.
//!
//! # Raising an event (2-level ABI, `evtchn_2l_set_pending`)
//!
//! 1. set the port's pending bit; if it was already set, stop (the
//!    notification coalesced);
//! 2. if the port is masked, stop (it stays pending; unmask re-raises it);
//! 3. set the port's word in vCPU 0's `evtchn_pending_sel`; if it was already
//!    set, stop (the guest will find the port when it scans that word);
//! 4. set `evtchn_upcall_pending` (the guest's idle step returns).
//!
//! `EVTCHNOP_unmask` clears the mask bit and, if the port is pending, does
//! steps 3 and 4: an event that arrived while masked is delivered after the
//! unmask (the mask/unmask race).

use core::sync::atomic::Ordering;

use super::faults::{FaultSite, NOTIFY_DELAY_NS_MAX, NOTIFY_LOST_NS_MAX};
use super::trace::TraceEvent;
use super::world::State;
use crate::abi::shared_info::{SharedInfo, BITS_PER_EVENT_WORD};
use crate::hypervisor::{DomId, Port, Virq, XenError};

/// Xen's `-ESRCH`: no such domain.
pub const ESRCH: XenError = XenError(-3);
/// Xen's `-EEXIST`: already bound (e.g. a VIRQ bound twice).
pub const EEXIST: XenError = XenError(-17);

/// Ports the 2-level ABI can address with 64-bit words: 64 × 64.
#[doc(alias = "EVTCHN_2L_NR_CHANNELS")]
pub const PORTS_2L_MAX: u32 = 4096;

/// `NR_VIRQS` (xen/xen.h): size of a domain's VIRQ table.
#[doc(alias = "NR_VIRQS")]
pub const VIRQS_MAX: usize = 24;

/// A dom0 daemon that the sim runs itself, in place of a dom0 process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// xenstored, serving the guest's store ring.
    Xenstore,
    /// The console daemon, draining the guest's console ring.
    Console,
}

impl Service {
    /// The service's name in traces.
    pub fn name(self) -> &'static str {
        match self {
            Service::Xenstore => "xenstored",
            Service::Console => "console",
        }
    }
}

/// The state of one port (see the module's state diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChanState {
    /// Not allocated.
    Free,
    /// Port 0: never allocated.
    Reserved,
    /// Allocated; waiting for `remote` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote`'s `remote_port`.
    Interdomain {
        /// The other domain.
        remote: DomId,
        /// The other domain's port.
        remote_port: Port,
        /// Set when the sim itself consumes this port's events (dom0 end of a
        /// guest's store or console ring).
        service: Option<Service>,
    },
    /// Bound to a VIRQ of vCPU 0.
    Virq(Virq),
}

/// One entry of a domain's port table.
#[derive(Clone, Copy, Debug)]
pub struct Channel {
    /// Its state.
    pub state: ChanState,
    /// Bumped on every allocation, so that a delayed notification never
    /// reaches a later binding of the same port number.
    pub generation: u64,
}

/// Bit position of `port` in the 2-level bitmaps: (word, mask).
fn word_bit(port: Port) -> (usize, u64) {
    let p = port.0 as usize;
    (p / BITS_PER_EVENT_WORD, 1u64 << (p % BITS_PER_EVENT_WORD))
}

/// What setting a pending bit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaiseOutcome {
    /// Already pending: coalesced.
    Coalesced,
    /// Newly pending, but masked (or its word already selected): no new upcall.
    Quiet,
    /// Newly pending and raised `evtchn_upcall_pending`.
    Upcall,
}

/// Steps 1–4 of the module doc on `si` for `port`.
pub(crate) fn set_pending_2l(si: &SharedInfo, port: Port) -> RaiseOutcome {
    let (word, bit) = word_bit(port);
    if si.evtchn_pending[word].fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return RaiseOutcome::Coalesced;
    }
    if si.evtchn_mask[word].load(Ordering::SeqCst) & bit != 0 {
        return RaiseOutcome::Quiet;
    }
    select_and_upcall(si, word)
}

/// Steps 3 and 4.
fn select_and_upcall(si: &SharedInfo, word: usize) -> RaiseOutcome {
    let vcpu = &si.vcpu_info[0];
    let sel = 1u64 << word;
    if vcpu.evtchn_pending_sel.fetch_or(sel, Ordering::SeqCst) & sel != 0 {
        return RaiseOutcome::Quiet;
    }
    vcpu.evtchn_upcall_pending.store(1, Ordering::SeqCst);
    RaiseOutcome::Upcall
}

/// `evtchn_2l_unmask`: whether it raised the upcall.
pub(crate) fn unmask_2l(si: &SharedInfo, port: Port) -> bool {
    let (word, bit) = word_bit(port);
    let was_masked = si.evtchn_mask[word].fetch_and(!bit, Ordering::SeqCst) & bit != 0;
    if was_masked && si.evtchn_pending[word].load(Ordering::SeqCst) & bit != 0 {
        return select_and_upcall(si, word) == RaiseOutcome::Upcall;
    }
    false
}

/// `evtchn_2l_clear_pending`.
fn clear_pending_2l(si: &SharedInfo, port: Port) {
    let (word, bit) = word_bit(port);
    si.evtchn_pending[word].fetch_and(!bit, Ordering::SeqCst);
}

impl State {
    fn resolve(&self, caller: DomId, dom: DomId) -> Result<DomId, XenError> {
        let dom = if dom == DomId::SELF { caller } else { dom };
        if self.domains.contains_key(&dom) {
            Ok(dom)
        } else {
            Err(ESRCH)
        }
    }

    fn channel(&self, dom: DomId, port: Port) -> Result<Channel, XenError> {
        let d = self.domains.get(&dom).ok_or(ESRCH)?;
        d.ports
            .get(port.0 as usize)
            .copied()
            .ok_or(XenError::EINVAL)
    }

    fn set_channel(&mut self, dom: DomId, port: Port, state: ChanState) {
        let d = self
            .domains
            .get_mut(&dom)
            .expect("domain checked by the caller");
        d.ports[port.0 as usize].state = state;
    }

    /// `get_free_port`: the lowest free port, growing the table up to the
    /// domain's limit.
    fn alloc_port(&mut self, dom: DomId) -> Result<Port, XenError> {
        self.generation += 1;
        let generation = self.generation;
        let d = self.domains.get_mut(&dom).ok_or(ESRCH)?;
        if let Some(i) = d.ports.iter().position(|c| c.state == ChanState::Free) {
            d.ports[i].generation = generation;
            return Ok(Port(i as u32));
        }
        if d.ports.len() as u32 >= d.ports_max {
            return Err(XenError::ENOSPC);
        }
        d.ports.push(Channel {
            state: ChanState::Free,
            generation,
        });
        Ok(Port(d.ports.len() as u32 - 1))
    }

    /// `EVTCHNOP_alloc_unbound` (transition 1).
    pub(crate) fn evtchn_alloc_unbound(
        &mut self,
        dom: DomId,
        remote: DomId,
    ) -> Result<Port, XenError> {
        let remote = self.resolve(dom, remote)?;
        let port = self.alloc_port(dom)?;
        self.set_channel(dom, port, ChanState::Unbound { remote });
        self.record(TraceEvent::AllocUnbound { dom, port, remote });
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain` (transition 2). Like Xen, it leaves the new
    /// local port pending, since notifications sent to the unbound port
    /// before the bind were dropped.
    pub(crate) fn evtchn_bind_interdomain(
        &mut self,
        dom: DomId,
        remote: DomId,
        remote_port: Port,
        service: Option<Service>,
    ) -> Result<Port, XenError> {
        let remote = self.resolve(dom, remote)?;
        let rchan = self.channel(remote, remote_port)?;
        if rchan.state != (ChanState::Unbound { remote: dom }) {
            return Err(XenError::EINVAL);
        }
        let port = self.alloc_port(dom)?;
        // alloc_port only picks Free ports and the remote one is Unbound, so
        // even a loopback bind (remote == dom) gets a different port.
        assert!(remote != dom || port != remote_port);
        self.set_channel(
            dom,
            port,
            ChanState::Interdomain {
                remote,
                remote_port,
                service,
            },
        );
        self.set_channel(
            remote,
            remote_port,
            ChanState::Interdomain {
                remote: dom,
                remote_port: port,
                service: None,
            },
        );
        self.record(TraceEvent::BindInterdomain {
            dom,
            port,
            remote,
            remote_port,
        });
        self.raise(dom, port);
        Ok(port)
    }

    /// `EVTCHNOP_bind_virq` for vCPU 0 (transition 6).
    pub(crate) fn evtchn_bind_virq(&mut self, dom: DomId, virq: Virq) -> Result<Port, XenError> {
        let v = virq as usize;
        let d = self.domains.get(&dom).ok_or(ESRCH)?;
        if v >= VIRQS_MAX {
            return Err(XenError::EINVAL);
        }
        if d.virqs[v].is_some() {
            return Err(EEXIST);
        }
        let port = self.alloc_port(dom)?;
        self.set_channel(dom, port, ChanState::Virq(virq));
        self.domains.get_mut(&dom).expect("checked").virqs[v] = Some(port);
        self.record(TraceEvent::BindVirq {
            dom,
            port,
            virq: v as u32,
        });
        Ok(port)
    }

    /// `EVTCHNOP_close` (transitions 3, 4, 5, 7).
    pub(crate) fn evtchn_close(&mut self, dom: DomId, port: Port) -> Result<(), XenError> {
        let chan = self.channel(dom, port)?;
        match chan.state {
            ChanState::Free | ChanState::Reserved => return Err(XenError::EINVAL),
            ChanState::Unbound { .. } => {}
            ChanState::Virq(virq) => {
                self.domains.get_mut(&dom).expect("checked").virqs[virq as usize] = None;
            }
            ChanState::Interdomain {
                remote,
                remote_port,
                ..
            } => {
                // Transition 4 on the other end, if it is still ours.
                if let Ok(rchan) = self.channel(remote, remote_port) {
                    if let ChanState::Interdomain {
                        remote: back,
                        remote_port: back_port,
                        ..
                    } = rchan.state
                    {
                        if back == dom && back_port == port {
                            self.set_channel(
                                remote,
                                remote_port,
                                ChanState::Unbound { remote: dom },
                            );
                        }
                    }
                }
            }
        }
        self.set_channel(dom, port, ChanState::Free);
        clear_pending_2l(&self.domains[&dom].mem.shared_info, port);
        self.record(TraceEvent::Close { dom, port });
        Ok(())
    }

    /// `EVTCHNOP_send`: notifies the other end of an interdomain port, drops
    /// the notification on an unbound port, and refuses anything else.
    pub(crate) fn evtchn_send(&mut self, dom: DomId, port: Port) -> Result<(), XenError> {
        let chan = self.channel(dom, port)?;
        self.record(TraceEvent::Send { dom, port });
        match chan.state {
            ChanState::Interdomain {
                remote,
                remote_port,
                ..
            } => {
                self.notify(remote, remote_port);
                Ok(())
            }
            ChanState::Unbound { .. } => Ok(()),
            ChanState::Free | ChanState::Reserved | ChanState::Virq(_) => Err(XenError::EINVAL),
        }
    }

    /// `EVTCHNOP_unmask`.
    pub(crate) fn evtchn_unmask(&mut self, dom: DomId, port: Port) -> Result<(), XenError> {
        self.channel(dom, port)?;
        if unmask_2l(&self.domains[&dom].mem.shared_info, port) {
            self.record(TraceEvent::UnmaskRaised { dom, port });
        }
        Ok(())
    }

    /// Raises `virq` in `dom` if it is bound (`send_guest_vcpu_virq`).
    pub(crate) fn send_virq(&mut self, dom: DomId, virq: Virq) {
        let port = self.domains.get(&dom).and_then(|d| d.virqs[virq as usize]);
        if let Some(port) = port {
            self.raise(dom, port);
        }
    }

    /// Delivers a notification to `dom`'s `port` now, or as the injected
    /// faults decide: later, twice, or with a spurious companion. The pending
    /// bit is always set eventually.
    pub(crate) fn notify(&mut self, dom: DomId, port: Port) {
        let generation = match self.channel(dom, port) {
            Ok(c) => c.generation,
            Err(_) => return,
        };
        if self.fault(FaultSite::NotifyLostThenRepeated, dom) {
            let delay = self.fault_prng.range_inclusive(1, NOTIFY_LOST_NS_MAX);
            self.raise_later(delay, dom, port, generation);
        } else if self.fault(FaultSite::NotifyDelay, dom) {
            let delay = self.fault_prng.range_inclusive(1, NOTIFY_DELAY_NS_MAX);
            self.raise_later(delay, dom, port, generation);
        } else {
            self.raise(dom, port);
        }
        if self.fault(FaultSite::NotifyDuplicate, dom) {
            let delay = self.fault_prng.range_inclusive(1, NOTIFY_DELAY_NS_MAX);
            self.raise_later(delay, dom, port, generation);
        }
        if self.fault(FaultSite::SpuriousEvent, dom) {
            let bound: alloc::vec::Vec<(Port, u64)> = self.domains[&dom]
                .ports
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    matches!(c.state, ChanState::Interdomain { .. } | ChanState::Virq(_))
                })
                .map(|(i, c)| (Port(i as u32), c.generation))
                .collect();
            if let Some(&(p, g)) = self.fault_prng.pick(&bound) {
                let delay = self.fault_prng.range_inclusive(0, NOTIFY_DELAY_NS_MAX);
                self.raise_later(delay, dom, p, g);
            }
        }
        if self.fault(FaultSite::SpuriousUpcall, dom) {
            let si = &self.domains[&dom].mem.shared_info;
            si.vcpu_info[0]
                .evtchn_upcall_pending
                .store(1, Ordering::SeqCst);
        }
    }

    /// Sets `dom`'s `port` pending now (or hands it to the sim's service).
    pub(crate) fn raise(&mut self, dom: DomId, port: Port) {
        let Ok(chan) = self.channel(dom, port) else {
            return;
        };
        if let ChanState::Interdomain {
            remote,
            service: Some(service),
            ..
        } = chan.state
        {
            self.service_pending.insert((service, remote));
            self.record(TraceEvent::ServiceNotified {
                guest: remote,
                service: service.name(),
            });
            return;
        }
        let outcome = set_pending_2l(&self.domains[&dom].mem.shared_info, port);
        let ev = match outcome {
            RaiseOutcome::Coalesced => TraceEvent::Coalesced { dom, port },
            RaiseOutcome::Quiet => TraceEvent::Pending {
                dom,
                port,
                upcall: false,
            },
            RaiseOutcome::Upcall => TraceEvent::Pending {
                dom,
                port,
                upcall: true,
            },
        };
        self.record(ev);
    }

    /// A scheduled raise: delivered if the receiving port is still the
    /// allocation it was when the notification was sent. On Xen the bit
    /// would already be set, and only the receiver closing its port clears
    /// it: the sender closing its end (the port becomes Unbound) does not.
    pub(crate) fn raise_if_current(&mut self, dom: DomId, port: Port, generation: u64) {
        match self.channel(dom, port) {
            Ok(c)
                if c.generation == generation
                    && !matches!(c.state, ChanState::Free | ChanState::Reserved) =>
            {
                self.raise(dom, port)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::sim::domain::zeroed_shared_info;
    use std::prelude::rust_2021::*;

    #[test]
    fn set_pending_steps_1_to_4() {
        let si = zeroed_shared_info();
        assert_eq!(set_pending_2l(&si, Port(70)), RaiseOutcome::Upcall);
        assert_eq!(si.evtchn_pending[1].load(Ordering::SeqCst), 1 << 6);
        assert_eq!(
            si.vcpu_info[0].evtchn_pending_sel.load(Ordering::SeqCst),
            1 << 1
        );
        assert_eq!(
            si.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst),
            1
        );
        // Step 1: already pending → coalesced.
        assert_eq!(set_pending_2l(&si, Port(70)), RaiseOutcome::Coalesced);
        // Step 3: same word already selected → no new upcall.
        assert_eq!(set_pending_2l(&si, Port(71)), RaiseOutcome::Quiet);
    }

    #[test]
    fn masked_port_stays_pending_and_unmask_raises_it() {
        let si = zeroed_shared_info();
        si.evtchn_mask[0].store(1 << 5, Ordering::SeqCst);
        assert_eq!(set_pending_2l(&si, Port(5)), RaiseOutcome::Quiet);
        assert_eq!(
            si.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst),
            0
        );
        assert_eq!(si.vcpu_info[0].evtchn_pending_sel.load(Ordering::SeqCst), 0);
        assert!(unmask_2l(&si, Port(5)));
        assert_eq!(
            si.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst),
            1
        );
        assert_eq!(si.evtchn_mask[0].load(Ordering::SeqCst), 0);
        // Unmasking an unmasked port does nothing.
        si.vcpu_info[0]
            .evtchn_upcall_pending
            .store(0, Ordering::SeqCst);
        si.vcpu_info[0]
            .evtchn_pending_sel
            .store(0, Ordering::SeqCst);
        assert!(!unmask_2l(&si, Port(5)));
        assert_eq!(
            si.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst),
            0
        );
    }

    #[test]
    fn unmask_of_idle_port_raises_nothing() {
        let si = zeroed_shared_info();
        si.evtchn_mask[0].store(1 << 9, Ordering::SeqCst);
        assert!(!unmask_2l(&si, Port(9)));
        assert_eq!(
            si.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst),
            0
        );
    }
}
