//! The core's front ring against the sim's echo backend: every echo right
//! without faults, and under each injected fault an error or a recovery —
//! never a panic and never a wrong result.
#![cfg(feature = "sim")]

mod sim_common;

use ringlet_executor::Executor;
use ringlet_xen::sim::echo::{EchoBackendConfig, EchoClient};
use ringlet_xen::sim::{DomainConfig, FaultSite, Faults, Ratio, SimConfig, SimXen};
use sim_common::{echo_workload, Outcome};

const ECHOES: u64 = 300;

fn run(config: SimConfig, backend: EchoBackendConfig) -> (SimXen, Outcome) {
    let sim = SimXen::new(config);
    let guest = sim.create_domain(DomainConfig::new("guest"));
    let ex = Executor::new(sim.clone());
    let mut prng = sim.prng("workload");
    let out = ex.block_on(echo_workload(
        &sim,
        guest.id(),
        &mut prng,
        ECHOES,
        backend,
        None,
    ));
    (sim, out)
}

#[test]
fn every_echo_comes_back_without_faults() {
    let (sim, out) = run(SimConfig::new(1).quiet(), EchoBackendConfig::default());
    assert_eq!(out.ok, ECHOES, "{out:?}");
    assert_eq!(out.error_count(), 0);
    assert_eq!(out.sessions, 1);
    // The backend answered at once: no virtual time passed.
    assert_eq!(sim.now_ns(), 0);
}

#[test]
fn backend_latency_takes_virtual_time() {
    let (sim, out) = run(
        SimConfig::new(2).quiet(),
        EchoBackendConfig {
            latency_ns_max: 5_000_000,
        },
    );
    assert_eq!(out.ok, ECHOES);
    assert!(sim.now_ns() > 0);
}

#[test]
fn notify_hold_off_skips_notifications_while_the_backend_is_busy() {
    let sim = SimXen::new(SimConfig::new(3).quiet());
    let guest = sim.create_domain(DomainConfig::new("guest"));
    let ex = Executor::new(sim.clone());
    let g = sim.guest(guest.id());
    ex.block_on(async {
        let mut c = EchoClient::connect(&g, ringlet_xen::hypervisor::DomId::DOM0).unwrap();
        let be = ringlet_xen::sim::echo::EchoBackend::connect(
            &sim,
            guest.id(),
            c.ring_ref(),
            c.port(),
            EchoBackendConfig::default(),
        )
        .unwrap();
        let task = ringlet_executor::spawn(be.run());
        // Two pushes before the backend runs: the second is held off (the
        // backend has not yet re-armed req_event past the first).
        c.submit(b"a").unwrap();
        assert!(c.push().unwrap());
        c.submit(b"b").unwrap();
        assert!(!c.push().unwrap());
        for _ in 0..2 {
            c.next().await.unwrap();
        }
        assert_eq!(c.stats().notifies_held_off, 1);
        drop(task);
    });
}

/// The workload under one fault site at a high ratio.
fn under(site: FaultSite, seed: u64) -> Outcome {
    let faults = Faults::none().with(site, Ratio::new(1, 5));
    let (sim, out) = run(
        SimConfig::new(seed).quiet().with_faults(faults),
        EchoBackendConfig {
            latency_ns_max: 100_000,
        },
    );
    assert!(
        sim.trace_count() > 0 && out.ok + out.error_count() > 0,
        "{site:?}: nothing happened"
    );
    out
}

#[test]
fn benign_faults_only_delay_every_echo_still_comes_back() {
    for site in [
        FaultSite::NotifyDelay,
        FaultSite::NotifyLostThenRepeated,
        FaultSite::NotifyDuplicate,
        FaultSite::SpuriousEvent,
        FaultSite::SpuriousUpcall,
    ] {
        for seed in 0..4 {
            let out = under(site, seed);
            assert_eq!(out.ok, ECHOES, "{site:?} seed {seed}: {out:?}");
            assert_eq!(out.error_count(), 0, "{site:?} seed {seed}: {out:?}");
        }
    }
}

#[test]
fn bad_ids_are_dropped_and_their_requests_time_out() {
    let out = under(FaultSite::RingBadId, 1);
    assert!(
        out.errors.get("unknown id").copied().unwrap_or(0) > 0,
        "{out:?}"
    );
    assert!(out.timeouts > 0, "{out:?}");
    assert!(out.ok > 0, "{out:?}");
}

#[test]
fn duplicate_responses_are_detected() {
    let out = under(FaultSite::RingDuplicateId, 1);
    let seen: u64 = ["unknown id", "mismatch", "producer out of range"]
        .iter()
        .map(|k| out.errors.get(k).copied().unwrap_or(0))
        .sum();
    assert!(seen > 0, "{out:?}");
    assert!(out.ok > 0, "{out:?}");
}

#[test]
fn producer_jump_breaks_the_ring_and_the_client_reconnects() {
    let out = under(FaultSite::RingProducerJump, 1);
    assert!(
        out.errors
            .get("producer out of range")
            .copied()
            .unwrap_or(0)
            > 0,
        "{out:?}"
    );
    assert!(out.sessions > 1, "{out:?}");
    assert!(out.ok > 0, "{out:?}");
}

#[test]
fn garbage_status_is_an_error_not_a_result() {
    let out = under(FaultSite::RingBadStatus, 1);
    assert!(
        out.errors.get("bad status").copied().unwrap_or(0) > 0,
        "{out:?}"
    );
    assert!(out.ok > 0, "{out:?}");
}

#[test]
fn backend_that_disconnects_is_survived_by_reconnecting() {
    let out = under(FaultSite::BackendStateChange, 1);
    assert!(out.timeouts > 0, "{out:?}");
    assert!(out.sessions > 1, "{out:?}");
    assert!(out.ok > 0, "{out:?}");
}
