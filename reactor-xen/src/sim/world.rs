//! The world's state: virtual time, the schedule of future events, the
//! domains and their port tables, the fault generator and the trace.
//!
//! Everything here is plain data behind one `RefCell` in [`super::SimXen`];
//! no method calls out into guest code (wakers, pollers), so a borrow never
//! outlives one operation.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::string::String;

use super::domain::{DomainMem, DomainState};
use super::evtchn::Service;
use super::faults::{FaultSite, Faults};
use super::prng::Prng;
use super::trace::{Trace, TraceEvent};
use crate::hypervisor::{DomId, Port, Virq};

/// Something that will happen at a point of virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scheduled {
    /// A delayed notification: set `port` pending in `dom`, if the port still
    /// has the binding of `generation`.
    Raise {
        dom: DomId,
        port: Port,
        generation: u64,
    },
    /// `dom`'s single-shot timer, armed as `generation`.
    Timer { dom: DomId, generation: u64 },
}

/// Most events in the schedule. Delayed notifications beyond it are
/// delivered at once (faults degrade; the pending bit is never dropped).
pub(crate) const SCHEDULED_MAX: usize = 1 << 16;

/// A domain's armed single-shot timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ArmedTimer {
    /// Its entry in the schedule.
    pub(crate) key: (u64, u64),
    /// Its generation (a fired entry of an older one is ignored).
    pub(crate) generation: u64,
}

/// Scheduled events delivered per [`State::deliver_due`] call before it
/// yields (a bound against a run that schedules events at the current time
/// forever).
pub(crate) const DELIVERIES_PER_STEP_MAX: usize = 100_000;

/// The mutable world.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) seed: u64,
    pub(crate) now_ns: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Scheduled>,
    pub(crate) faults: Faults,
    pub(crate) fault_prng: Prng,
    /// Hands out generators to parts made at run time (each back ring).
    pub(crate) fork_prng: Prng,
    pub(crate) domains: BTreeMap<DomId, DomainState>,
    pub(crate) next_domid: u16,
    pub(crate) generation: u64,
    pub(crate) trace: Trace,
    /// Services notified since they last ran: (service, guest it serves).
    pub(crate) service_pending: BTreeSet<(Service, DomId)>,
    pub(crate) stalls: u64,
}

impl State {
    pub(crate) fn new(seed: u64, faults: Faults, trace: Trace) -> State {
        State {
            seed,
            now_ns: 0,
            seq: 0,
            queue: BTreeMap::new(),
            faults,
            fault_prng: Prng::for_part(seed, "fault-sites"),
            fork_prng: Prng::for_part(seed, "forks"),
            domains: BTreeMap::new(),
            next_domid: 0,
            generation: 0,
            trace,
            service_pending: BTreeSet::new(),
            stalls: 0,
        }
    }

    /// Records `event` at the current time.
    pub(crate) fn record(&mut self, event: TraceEvent) {
        self.trace.record(self.now_ns, event);
    }

    /// Whether `site` fires now (drawing from the fault generator only when
    /// the site is on); records the fault when it does.
    pub(crate) fn fault(&mut self, site: FaultSite, dom: DomId) -> bool {
        let ratio = self.faults.ratio(site);
        if ratio.is_never() || !self.fault_prng.chance(ratio) {
            return false;
        }
        self.record(TraceEvent::Fault { site, dom });
        true
    }

    /// Schedules `ev` at `at_ns` (never before now); returns its key.
    pub(crate) fn schedule_at(&mut self, at_ns: u64, ev: Scheduled) -> (u64, u64) {
        let key = (at_ns.max(self.now_ns), self.seq + 1);
        self.seq += 1;
        self.queue.insert(key, ev);
        key
    }

    /// Events in the schedule.
    #[cfg(test)]
    pub(crate) fn scheduled_len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the schedule is at its bound: faults that would delay an
    /// event then deliver it at once instead.
    pub(crate) fn schedule_full(&self) -> bool {
        self.queue.len() >= SCHEDULED_MAX
    }

    /// Schedules `ev` `delay_ns` from now.
    pub(crate) fn schedule_in(&mut self, delay_ns: u64, ev: Scheduled) {
        self.schedule_at(self.now_ns.saturating_add(delay_ns), ev);
    }

    /// Schedules a delayed raise of `dom`'s `port`, or raises it now if the
    /// schedule is full (the pending bit is never dropped).
    pub(crate) fn raise_later(&mut self, delay_ns: u64, dom: DomId, port: Port, generation: u64) {
        if self.schedule_full() {
            self.raise_if_current(dom, port, generation);
        } else {
            self.schedule_in(
                delay_ns,
                Scheduled::Raise {
                    dom,
                    port,
                    generation,
                },
            );
        }
    }

    /// The time of the earliest scheduled event.
    pub(crate) fn next_event_ns(&self) -> Option<u64> {
        self.queue.keys().next().map(|&(t, _)| t)
    }

    /// Moves virtual time forward to `to_ns` (never backward).
    pub(crate) fn advance_to(&mut self, to_ns: u64) {
        if to_ns > self.now_ns {
            self.now_ns = to_ns;
            self.record(TraceEvent::TimeJump { to_ns });
        }
    }

    /// Moves time forward to `to_ns` without a trace entry: a real-time
    /// world following the wall clock (its time moves all the time).
    pub(crate) fn follow_to(&mut self, to_ns: u64) {
        self.now_ns = self.now_ns.max(to_ns);
    }

    /// Delivers every scheduled event due by now, in (time, order) order.
    /// Returns how many it delivered.
    pub(crate) fn deliver_due(&mut self) -> usize {
        let mut n = 0;
        while n < DELIVERIES_PER_STEP_MAX {
            let Some(entry) = self.queue.first_entry() else {
                break;
            };
            if entry.key().0 > self.now_ns {
                break;
            }
            let ev = entry.remove();
            n += 1;
            match ev {
                Scheduled::Raise {
                    dom,
                    port,
                    generation,
                } => self.raise_if_current(dom, port, generation),
                Scheduled::Timer { dom, generation } => self.fire_timer(dom, generation),
            }
        }
        n
    }

    /// `VCPUOP_set_singleshot_timer` for `dom`'s vCPU 0: replaces any armed
    /// timer; at `deadline_ns` it raises VIRQ_TIMER (if bound).
    pub(crate) fn set_timer(&mut self, dom: DomId, deadline_ns: u64) {
        self.generation += 1;
        let generation = self.generation;
        let Some(d) = self.domains.get_mut(&dom) else {
            return;
        };
        // The timer it replaces leaves the schedule (one entry per domain).
        if let Some(old) = d.timer.take() {
            self.queue.remove(&old.key);
        }
        let key = self.schedule_at(deadline_ns, Scheduled::Timer { dom, generation });
        let d = self.domains.get_mut(&dom).expect("checked above");
        d.timer = Some(ArmedTimer { key, generation });
    }

    fn fire_timer(&mut self, dom: DomId, generation: u64) {
        let Some(d) = self.domains.get_mut(&dom) else {
            return;
        };
        match d.timer {
            Some(t) if t.generation == generation => d.timer = None,
            _ => return,
        }
        self.record(TraceEvent::TimerFired { dom });
        self.send_virq(dom, Virq::Timer);
    }

    /// The domain `dom`'s memory, if it exists.
    pub(crate) fn mem(&self, dom: DomId) -> Option<Rc<DomainMem>> {
        self.domains.get(&dom).map(|d| d.mem.clone())
    }

    /// Records a note.
    pub(crate) fn note(&mut self, dom: DomId, text: String) {
        self.record(TraceEvent::Note { dom, text });
    }
}
