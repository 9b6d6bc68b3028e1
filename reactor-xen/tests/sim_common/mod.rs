//! Shared workloads of the sim integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ringlet_executor::{spawn, timeout, Duration, JoinHandle};
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::ring::RingError;
use ringlet_xen::sim::echo::{
    EchoBackend, EchoBackendConfig, EchoClient, EchoError, ECHO_PAYLOAD_MAX,
};
use ringlet_xen::sim::xenbus::DeviceSpec;
use ringlet_xen::sim::{Prng, Ratio, SimXen};
use ringlet_xen::xenstore::Xenstore;

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// How long the workload waits for one response (virtual time). Far above
/// every benign delay the sim injects.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(1);

/// Most requests pushed at once.
pub const BATCH_MAX: u64 = 8;

/// What an echo workload saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Echoes that came back right.
    pub ok: u64,
    /// Errors by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Responses that never came (the session was then abandoned).
    pub timeouts: u64,
    /// Connections made.
    pub sessions: u64,
    /// Of those, set up through xenbus.
    pub xenbus_sessions: u64,
}

impl Outcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.timeouts
    }
}

fn kind(e: &EchoError) -> &'static str {
    match e {
        EchoError::Ring(RingError::ProducerOutOfRange { .. }) => "producer out of range",
        EchoError::Ring(RingError::UnknownId(_)) => "unknown id",
        EchoError::Ring(_) => "ring",
        EchoError::BadStatus { .. } => "bad status",
        EchoError::BadLength { .. } => "bad length",
        EchoError::Mismatch { .. } => "mismatch",
        EchoError::Refused { .. } => "refused",
        _ => "other",
    }
}

/// Panics if a finished backend task panicked; cancels it otherwise.
async fn retire<T>(task: JoinHandle<T>) {
    // A backend that panicked is a sim bug, never hidden.
    if task.is_finished() {
        if let Err(e) = task.await {
            assert!(
                !e.is_panic(),
                "the echo backend panicked: {:?}",
                e.panic_message()
            );
        }
    } else {
        // Disconnect: the backend goes first (its mapping with it), then
        // the ring's grant can end.
        drop(task);
    }
}

/// Runs `echoes` echoes from `guest` through the echo backend in dom0, in
/// batches, reconnecting after a fatal error or a timeout. With `xs` (the
/// guest's xenstore client), about half the sessions are set up through
/// xenbus, the others directly. Every echo that succeeds is checked against
/// what was sent (a wrong result panics). Must run inside the executor.
pub async fn echo_workload(
    sim: &SimXen,
    guest: DomId,
    prng: &mut Prng,
    echoes: u64,
    backend: EchoBackendConfig,
    xs: Option<&Xenstore>,
) -> Outcome {
    let g = sim.guest(guest);
    let mut out = Outcome::default();
    let mut resolved = 0u64;
    let mut seq = 0u64;
    let sessions_max = echoes + 4;
    while resolved < echoes && out.sessions < sessions_max {
        out.sessions += 1;
        let devid = out.sessions as u32;
        let xenbus = xs.filter(|_| prng.chance(Ratio::new(1, 2)));
        let (mut client, task, device) = if let Some(xs) = xenbus {
            out.xenbus_sessions += 1;
            let paths = sim.add_device(&DeviceSpec::new("echo", guest, devid));
            let task = spawn(EchoBackend::serve_xenbus(
                sim.clone(),
                paths.clone(),
                backend,
            ));
            match timeout(ECHO_TIMEOUT, EchoClient::connect_xenbus(&g, xs, devid)).await {
                Ok(Ok(c)) => (c, Either::Right(task), Some(paths)),
                _ => {
                    *out.errors.entry("xenbus").or_default() += 1;
                    retire(task).await;
                    sim.remove_device(&paths);
                    continue;
                }
            }
        } else {
            let client = EchoClient::connect(&g, DomId::DOM0).expect("client resources");
            let be = EchoBackend::connect(sim, guest, client.ring_ref(), client.port(), backend)
                .expect("the backend connects to a fresh ring");
            (client, Either::Left(spawn(be.run())), None)
        };
        let mut sent: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        'session: while resolved < echoes {
            let room = u64::from(client.free())
                .min(BATCH_MAX)
                .min(echoes - resolved);
            let k = prng.range_inclusive(1, room.max(1));
            for _ in 0..k {
                let len = prng.range_inclusive(0, ECHO_PAYLOAD_MAX as u64) as usize;
                let mut payload = vec![0u8; len];
                prng.fill(&mut payload);
                let tag = seq.to_le_bytes();
                let n = len.min(8);
                payload[..n].copy_from_slice(&tag[..n]);
                seq += 1;
                let id = client.submit(&payload).expect("room was checked");
                assert!(
                    sent.insert(id.0, payload).is_none(),
                    "id {} handed out twice",
                    id.0
                );
            }
            if client.push().is_err() {
                *out.errors.entry("notify").or_default() += 1;
                break 'session;
            }
            while client.in_flight() > 0 {
                match timeout(ECHO_TIMEOUT, client.next()).await {
                    Ok(Ok(e)) => {
                        let want = sent
                            .remove(&e.id.0)
                            .expect("the ring only returns outstanding ids");
                        assert_eq!(e.data, want, "echo {} came back wrong", e.id.0);
                        out.ok += 1;
                        resolved += 1;
                    }
                    Ok(Err(e)) => {
                        *out.errors.entry(kind(&e)).or_default() += 1;
                        match e {
                            EchoError::BadStatus { id, .. }
                            | EchoError::BadLength { id, .. }
                            | EchoError::Mismatch { id }
                            | EchoError::Refused { id } => {
                                sent.remove(&id.0);
                                resolved += 1;
                            }
                            _ => {}
                        }
                        if e.is_fatal() {
                            break 'session;
                        }
                    }
                    Err(_) => {
                        out.timeouts += 1;
                        break 'session;
                    }
                }
            }
        }
        // Requests left without an answer count as resolved (failed).
        resolved += sent.len() as u64;
        match task {
            Either::Left(t) => retire(t).await,
            Either::Right(t) => retire(t).await,
        }
        drop(client);
        if let Some(paths) = device {
            sim.remove_device(&paths);
        }
    }
    out
}

/// What one fuzz run does, derived from its seed (printed first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Guests, each running its own echo workload at the same time.
    pub guests: u64,
    /// Echoes per guest.
    pub echoes: u64,
    /// The echo backend's latency bound.
    pub latency_ns_max: u64,
    /// Xenstore writes and read-backs per guest.
    pub xenstore_ops: u64,
    /// Whether echo sessions may be set up through xenbus.
    pub xenbus: bool,
}

impl RunOptions {
    pub fn from_seed(seed: u64) -> RunOptions {
        let mut p = Prng::for_part(seed, "run-options");
        RunOptions {
            guests: p.range_inclusive(1, 2),
            echoes: p.range_inclusive(4, 24),
            latency_ns_max: *p.pick(&[0, 10_000, 2_000_000]).expect("non-empty"),
            xenstore_ops: p.range_inclusive(0, 3),
            xenbus: p.chance(Ratio::new(1, 2)),
        }
    }
}

/// What a whole run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub echo: Vec<Outcome>,
    pub xenstore_ok: u64,
    pub xenstore_errors: u64,
    pub end_ns: u64,
    pub trace_digest: u64,
    pub trace_count: u64,
}

/// Writes then reads back `ops` keys through the guest's xenstore client.
/// A read that succeeds must return what was written (else panic).
pub async fn xenstore_workload(xs: &Xenstore, ops: u64) -> (u64, u64) {
    let (mut ok, mut err) = (0, 0);
    for i in 0..ops {
        let key = format!("data/fuzz{i}");
        let value = format!("value {i}");
        match timeout(ECHO_TIMEOUT, xs.write(&key, &value)).await {
            Ok(Ok(())) => {}
            _ => {
                err += 1;
                continue;
            }
        }
        match timeout(ECHO_TIMEOUT, xs.read(&key)).await {
            Ok(Ok(v)) => {
                assert_eq!(v, value.as_bytes(), "xenstore read back a wrong value");
                ok += 1;
            }
            _ => err += 1,
        }
    }
    (ok, err)
}

/// One whole run of the fuzz/determinism scenario for `config` (built from
/// a seed): guests, echo workloads and xenstore traffic, at once.
pub fn run_scenario(config: ringlet_xen::sim::SimConfig) -> RunReport {
    use ringlet_executor::platform::Platform;
    use ringlet_executor::Executor;
    use ringlet_xen::sim::DomainConfig;

    let seed = config.seed;
    let opts = RunOptions::from_seed(seed);
    if config.print_header {
        eprintln!("ringlet sim: seed {seed} options {opts:?}");
    }
    let sim = SimXen::new(config);
    let guests: Vec<DomId> = (0..opts.guests)
        .map(|i| {
            sim.create_domain(DomainConfig::new(&format!("guest{i}")))
                .id()
        })
        .collect();
    let ex = Executor::new(sim.clone());
    let backend = EchoBackendConfig {
        latency_ns_max: opts.latency_ns_max,
    };
    let mut report = ex.block_on(async {
        let mut tasks = Vec::new();
        for &g in &guests {
            let sim = sim.clone();
            let opts = opts.clone();
            tasks.push(spawn(async move {
                let mut prng = sim.prng(&format!("workload-d{}", g.0));
                // One xenstore client per domain (its ring has one reader).
                let xs = Xenstore::new(&sim.guest(g)).expect("the guest's store ring");
                let xb = opts.xenbus.then_some(&xs);
                let echo = echo_workload(&sim, g, &mut prng, opts.echoes, backend, xb).await;
                let ops = xenstore_workload(&xs, opts.xenstore_ops).await;
                (echo, ops)
            }));
        }
        let mut report = RunReport::default();
        for t in tasks {
            let (echo, (ok, err)) = t.await.expect("a workload task panicked");
            report.echo.push(echo);
            report.xenstore_ok += ok;
            report.xenstore_errors += err;
        }
        report
    });
    // Let cancelled backends drop their mappings and deferred grants end.
    ex.run_until_stalled();
    Platform::poll(&sim);
    for &g in &guests {
        let guest = sim.guest(g);
        assert_eq!(
            guest.grant_stats().deferred,
            0,
            "d{}: grants left deferred",
            g.0
        );
        let pages = sim.domain(g).expect("exists").pages_allocated();
        assert_eq!(pages, 0, "d{}: {pages} pages leaked", g.0);
    }
    report.end_ns = sim.now_ns();
    report.trace_digest = sim.trace_digest();
    report.trace_count = sim.trace_count();
    report
}
