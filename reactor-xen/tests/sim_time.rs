//! Time on the software Xen: virtual, exact, and never early; idle time is
//! skipped, not slept.
#![cfg(feature = "sim")]

use std::cell::RefCell;
use std::rc::Rc;

use ringlet_executor::{sleep, spawn, timeout, Duration, Executor, Instant};
use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::hypervisor::{DomId, Virq};
use ringlet_xen::platform::XenPlatform;
use ringlet_xen::sim::faults::NOTIFY_DELAY_NS_MAX;
use ringlet_xen::sim::{DomainConfig, FaultSite, Faults, Ratio, SimConfig, SimXen, TraceEvent};

#[test]
fn ten_seconds_of_virtual_sleep_end_exactly_at_the_deadline() {
    let sim = SimXen::new(SimConfig::new(1).quiet());
    let ex = Executor::new(sim.clone());
    let waited = ex.block_on(async {
        let t0 = Instant::now();
        sleep(Duration::from_secs(10)).await;
        t0.elapsed()
    });
    assert!(waited >= Duration::from_secs(10), "woke early: {waited:?}");
    assert_eq!(
        sim.now_ns(),
        10_000_000_000,
        "time jumps exactly to the deadline"
    );
}

#[test]
fn many_timers_fire_in_deadline_order_none_early() {
    let sim = SimXen::new(SimConfig::new(2).quiet());
    let ex = Executor::new(sim.clone());
    let mut prng = sim.prng("timers");
    let woke = Rc::new(RefCell::new(Vec::new()));
    ex.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..50u64 {
            let d = prng.range_inclusive(1, 5_000_000_000);
            let woke = woke.clone();
            tasks.push(spawn(async move {
                let t0 = Instant::now();
                sleep(Duration::from_nanos(d)).await;
                let at = t0.elapsed().as_nanos() as u64;
                assert!(at >= d, "timer {i} fired {at} ns after start, deadline {d}");
                woke.borrow_mut().push((d, at));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let woke = woke.borrow();
    assert_eq!(woke.len(), 50);
    assert!(
        woke.windows(2).all(|w| w[0].0 <= w[1].0),
        "not in deadline order"
    );
    // Nothing kept the world awake: each timer fired at its deadline.
    assert!(woke.iter().all(|&(d, at)| d == at));
}

#[test]
fn timeout_on_an_event_that_never_comes_elapses_at_the_deadline() {
    let sim = SimXen::new(SimConfig::new(3).quiet());
    let guest = sim.create_domain(DomainConfig::new("guest"));
    let g = sim.guest(guest.id());
    let ex = Executor::new(sim.clone());
    ex.block_on(async {
        let ch = EventChannel::alloc_unbound(&g, DomId::DOM0).unwrap();
        let r = timeout(Duration::from_millis(250), ch.wait()).await;
        assert!(r.is_err());
    });
    assert_eq!(sim.now_ns(), 250_000_000);
}

#[test]
fn a_delayed_notification_moves_time_to_its_delivery_not_to_the_deadline() {
    let faults = Faults::none().with(FaultSite::NotifyDelay, Ratio::ALWAYS);
    let sim = SimXen::new(SimConfig::new(4).quiet().with_faults(faults));
    let guest = sim.create_domain(DomainConfig::new("guest"));
    let (g, d0) = (sim.guest(guest.id()), sim.guest(DomId::DOM0));
    let ex = Executor::new(sim.clone());
    ex.block_on(async {
        let front = EventChannel::alloc_unbound(&g, DomId::DOM0).unwrap();
        let back = EventChannel::bind_interdomain(&d0, guest.id(), front.port()).unwrap();
        back.notify().unwrap();
        let r = timeout(Duration::from_secs(1), front.wait()).await;
        assert!(r.is_ok(), "the delayed event never came");
    });
    let t = sim.now_ns();
    assert!(t > 0 && t <= NOTIFY_DELAY_NS_MAX, "delivered at {t} ns");
}

#[test]
fn single_domain_block_arms_the_timer_and_raises_virq_timer() {
    // The single-domain platform: the executor parks through
    // Hypervisor::block, which arms the domain's single-shot timer.
    let sim = SimXen::new(SimConfig::new(5).quiet().full_trace());
    let guest = sim.create_domain(DomainConfig::new("guest"));
    let g = sim.guest(guest.id());
    let virq = EventChannel::bind_virq(&g, Virq::Timer).unwrap();
    let ex = Executor::new(XenPlatform::new(g.clone()));
    ex.block_on(async {
        let t0 = Instant::now();
        sleep(Duration::from_secs(3)).await;
        assert!(t0.elapsed() >= Duration::from_secs(3));
    });
    assert_eq!(sim.now_ns(), 3_000_000_000);
    assert!(virq.has_event(), "VIRQ_TIMER was not delivered");
    let fired = sim
        .trace_entries()
        .iter()
        .filter(|e| e.event == TraceEvent::TimerFired { dom: guest.id() })
        .count();
    assert_eq!(fired, 1);
}

#[test]
fn rearming_the_single_shot_timer_replaces_it() {
    let sim = SimXen::new(SimConfig::new(6).quiet().full_trace());
    let guest = sim.create_domain(DomainConfig::new("guest"));
    guest.set_timer(1_000);
    guest.set_timer(2_000);
    sim.advance_to(10_000);
    let fired: Vec<u64> = sim
        .trace_entries()
        .iter()
        .filter(|e| e.event == TraceEvent::TimerFired { dom: guest.id() })
        .map(|e| e.t_ns)
        .collect();
    assert_eq!(fired, [2_000]);
}
