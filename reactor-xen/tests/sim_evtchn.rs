//! Event channels on the software Xen: wakes through the real demux, the
//! mask/unmask race, Xen's state checks and errors, and stall detection.
#![cfg(feature = "sim")]

use std::cell::Cell;
use std::rc::Rc;

use ringlet_executor::platform::Platform;
use ringlet_executor::{spawn, yield_now, Executor};
use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::hypervisor::{DomId, Hypervisor, Port, Virq, XenError};
use ringlet_xen::sim::evtchn::{ChanState, EEXIST, ESRCH};
use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen, StallPolicy, TraceEvent};

fn world() -> (SimXen, ringlet_xen::sim::SimDomain) {
    let sim = SimXen::new(SimConfig::new(7).quiet().full_trace());
    let guest = sim.create_domain(DomainConfig::new("guest"));
    (sim, guest)
}

/// A connected pair: (guest's channel, dom0's channel).
fn pair(sim: &SimXen, guest: DomId) -> (EventChannel, EventChannel) {
    let g = sim.guest(guest);
    let d0 = sim.guest(DomId::DOM0);
    let front = EventChannel::alloc_unbound(&g, DomId::DOM0).unwrap();
    let back = EventChannel::bind_interdomain(&d0, guest, front.port()).unwrap();
    (front, back)
}

#[test]
fn notify_wakes_the_task_waiting_in_the_other_domain() {
    let (sim, guest) = world();
    let (front, back) = pair(&sim, guest.id());
    let ex = Executor::new(sim.clone());
    let woke = Rc::new(Cell::new(0));
    let w = woke.clone();
    ex.block_on(async move {
        // The bind left dom0's port pending (as Xen does): consume that.
        back.wait().await;
        let waiter = spawn(async move {
            back.wait().await;
            w.set(w.get() + 1);
        });
        yield_now().await;
        assert_eq!(woke.get(), 0, "no event yet");
        front.notify().unwrap();
        waiter.await.unwrap();
        assert_eq!(woke.get(), 1);
    });
    // Nothing needed virtual time to pass.
    assert_eq!(sim.now_ns(), 0);
    assert!(!sim.stalled());
}

#[test]
fn sends_before_the_demux_coalesce_into_one_event() {
    let (sim, guest) = world();
    let (front, back) = pair(&sim, guest.id());
    let d0 = sim.guest(DomId::DOM0);
    d0.demux();
    let _ = back.has_event();
    let before = d0.event_stats().delivered;
    for _ in 0..3 {
        front.notify().unwrap();
    }
    d0.demux();
    assert_eq!(d0.event_stats().delivered - before, 1);
    let coalesced = sim
        .trace_entries()
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                TraceEvent::Coalesced {
                    dom: DomId::DOM0,
                    ..
                }
            )
        })
        .count();
    assert_eq!(coalesced, 2);
}

#[test]
fn event_that_arrives_while_masked_is_delivered_after_unmask() {
    let (sim, guest) = world();
    let (front, back) = pair(&sim, guest.id());
    let g = sim.guest(guest.id());
    front.mask();
    back.notify().unwrap();
    // Xen set the pending bit but, the port being masked, neither the
    // selector nor the upcall: the demux finds nothing to deliver.
    assert!(!guest.upcall_pending());
    g.demux();
    assert!(!front.has_event(), "a masked port must not be delivered");
    // The race: the unmask re-checks the pending bit and delivers.
    front.unmask();
    assert!(
        front.has_event(),
        "the event that arrived while masked is lost"
    );
    assert_eq!(g.event_stats().delivered_on_unmask, 1);
}

#[test]
fn hypervisor_unmask_reraises_the_upcall_like_xen() {
    let (sim, guest) = world();
    let (front, back) = pair(&sim, guest.id());
    let si = guest.shared_info();
    let (w, bit) = (front.port().0 as usize / 64, 1u64 << (front.port().0 % 64));
    si.evtchn_mask[w].fetch_or(bit, std::sync::atomic::Ordering::SeqCst);
    back.notify().unwrap();
    assert!(!guest.upcall_pending());
    guest.evtchn_unmask(front.port()).unwrap();
    assert!(
        guest.upcall_pending(),
        "EVTCHNOP_unmask must re-raise a pending port"
    );
    let _ = sim;
}

#[test]
fn xen_state_checks_and_errors() {
    let (sim, guest) = world();
    let other = sim.create_domain(DomainConfig::new("other"));
    let dom0 = sim.dom0();
    let p = guest.evtchn_alloc_unbound(DomId::DOM0).unwrap();
    // Only the named remote may bind.
    assert_eq!(
        other.evtchn_bind_interdomain(guest.id(), p),
        Err(XenError::EINVAL)
    );
    // No such domain.
    assert_eq!(guest.evtchn_alloc_unbound(DomId(77)), Err(ESRCH));
    assert_eq!(dom0.evtchn_bind_interdomain(DomId(77), p), Err(ESRCH));
    // A port that is not unbound cannot be bound.
    let b = dom0.evtchn_bind_interdomain(guest.id(), p).unwrap();
    assert_eq!(
        dom0.evtchn_bind_interdomain(guest.id(), p),
        Err(XenError::EINVAL)
    );
    // Ports out of the table, free or reserved.
    assert_eq!(guest.evtchn_send(Port(900)), Err(XenError::EINVAL));
    assert_eq!(guest.evtchn_close(Port(0)), Err(XenError::EINVAL));
    assert_eq!(guest.evtchn_unmask(Port(4000)), Err(XenError::EINVAL));
    // VIRQs: one port each, no send on them.
    let t = guest.evtchn_bind_virq(Virq::Timer).unwrap();
    assert_eq!(guest.evtchn_bind_virq(Virq::Timer), Err(EEXIST));
    assert_eq!(guest.evtchn_send(t), Err(XenError::EINVAL));
    guest.evtchn_close(t).unwrap();
    assert_eq!(guest.evtchn_close(t), Err(XenError::EINVAL));
    guest.evtchn_bind_virq(Virq::Timer).unwrap();
    // Closing one end leaves the other unbound, for the closer to rebind;
    // a send on it is dropped silently.
    guest.evtchn_close(p).unwrap();
    assert_eq!(
        dom0.port_state(b),
        Some(ChanState::Unbound { remote: guest.id() })
    );
    assert_eq!(dom0.evtchn_send(b), Ok(()));
    let p2 = guest.evtchn_bind_interdomain(DomId::DOM0, b).unwrap();
    assert_eq!(
        guest.port_state(p2),
        Some(ChanState::Interdomain {
            remote: DomId::DOM0,
            remote_port: b,
            service: None
        })
    );
}

#[test]
fn port_table_exhaustion_is_enospc() {
    let sim = SimXen::new(SimConfig::new(1).quiet());
    let mut cfg = DomainConfig::new("small");
    cfg.ports_max = 8;
    let d = sim.create_domain(cfg);
    // Port 0 is reserved and the store and console rings use two.
    let mut got = Vec::new();
    loop {
        match d.evtchn_alloc_unbound(DomId::DOM0) {
            Ok(p) => got.push(p),
            Err(e) => {
                assert_eq!(e, XenError::ENOSPC);
                break;
            }
        }
    }
    assert_eq!(got.len(), 5);
    // A closed port is reused (lowest first, as Xen's get_free_port).
    d.evtchn_close(got[1]).unwrap();
    assert_eq!(d.evtchn_alloc_unbound(DomId::DOM0), Ok(got[1]));
}

#[test]
#[should_panic(expected = "sim stalled")]
fn waiting_for_an_event_nobody_sends_is_reported_as_a_stall() {
    let (sim, guest) = world();
    let (front, _back) = pair(&sim, guest.id());
    let ex = Executor::new(sim.clone());
    ex.block_on(async move { front.wait().await });
}

#[test]
fn stall_can_be_counted_instead_of_panicking() {
    let mut cfg = SimConfig::new(3).quiet();
    cfg.on_stall = StallPolicy::Count;
    let sim = SimXen::new(cfg);
    // Building dom0 notified its own xenstored and console: that is work.
    Platform::park(&sim, None);
    assert_eq!(sim.stalls(), 0);
    Platform::park(&sim, None);
    assert_eq!(sim.stalls(), 1);
    // With a deadline it is not a stall: time jumps to it.
    Platform::park(&sim, Some(5_000));
    assert_eq!(sim.stalls(), 1);
    assert_eq!(sim.now_ns(), 5_000);
}

/// The example of docs/sim-testing.md, verbatim.
#[test]
fn guest_notifies_dom0() {
    // 1. A world: dom0 exists; guests are created. The seed feeds everything.
    let sim = SimXen::new(SimConfig::new(7));
    let guest = sim.create_domain(DomainConfig::new("guest").cmdline("ip=10.0.0.2/24"));
    // 2. Each domain's drivers get its Guest handle (one per domain: the
    //    world runs its event demux).
    let (g, d0) = (sim.guest(guest.id()), sim.guest(DomId::DOM0));
    // 3. The world is the executor's platform: guests and backends share it.
    let ex = Executor::new(sim.clone());
    ex.block_on(async {
        let front = EventChannel::alloc_unbound(&g, DomId::DOM0).unwrap();
        let back = EventChannel::bind_interdomain(&d0, guest.id(), front.port()).unwrap();
        let backend = spawn(async move {
            back.wait().await; // Xen leaves a fresh interdomain port pending
            back.wait().await; // the guest's notification
        });
        front.notify().unwrap();
        backend.await.unwrap();
    });
}

#[test]
fn a_late_notification_survives_the_sender_closing_its_end() {
    use ringlet_xen::sim::{FaultSite, Faults, Ratio};
    // The sender notifies, then closes at once; the notification is late.
    // On Xen the bit was set at the send, so the receiver still sees it.
    let faults = Faults::none().with(FaultSite::NotifyDelay, Ratio::ALWAYS);
    let sim = SimXen::new(SimConfig::new(9).quiet().with_faults(faults));
    let guest = sim.create_domain(DomainConfig::new("guest"));
    let dom0 = sim.dom0();
    let p = guest.evtchn_alloc_unbound(DomId::DOM0).unwrap();
    let b = dom0.evtchn_bind_interdomain(guest.id(), p).unwrap();
    dom0.evtchn_send(b).unwrap();
    dom0.evtchn_close(b).unwrap();
    assert!(!guest.upcall_pending());
    sim.advance_to(ringlet_xen::sim::faults::NOTIFY_DELAY_NS_MAX);
    assert!(guest.upcall_pending(), "the pending bit was lost");
    // But a receiver that closed its own port gets nothing.
    let p2 = guest.evtchn_alloc_unbound(DomId::DOM0).unwrap();
    let b2 = dom0.evtchn_bind_interdomain(guest.id(), p2).unwrap();
    guest.shared_info().vcpu_info[0]
        .evtchn_upcall_pending
        .store(0, std::sync::atomic::Ordering::SeqCst);
    dom0.evtchn_send(b2).unwrap();
    guest.evtchn_close(p2).unwrap();
    sim.advance_to(2 * ringlet_xen::sim::faults::NOTIFY_DELAY_NS_MAX + 1);
    let w = p2.0 as usize / 64;
    let bit = 1u64 << (p2.0 % 64);
    let pending = guest.shared_info().evtchn_pending[w].load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(pending & bit, 0);
}
