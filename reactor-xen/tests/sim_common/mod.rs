//! Shared workloads of the sim integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ringlet_executor::{spawn, timeout, Duration};
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::ring::RingError;
use ringlet_xen::sim::echo::{EchoBackend, EchoBackendConfig, EchoClient, EchoError, ECHO_PAYLOAD_MAX};
use ringlet_xen::sim::{Prng, SimXen};

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

/// Runs `echoes` echoes from `guest` through the echo backend in dom0, in
/// batches, reconnecting after a fatal error or a timeout. Every echo that
/// succeeds is checked against what was sent (a wrong result panics).
/// Must run inside the executor.
pub async fn echo_workload(
    sim: &SimXen,
    guest: DomId,
    prng: &mut Prng,
    echoes: u64,
    backend: EchoBackendConfig,
) -> Outcome {
    let g = sim.guest(guest);
    let mut out = Outcome::default();
    let mut resolved = 0u64;
    let mut seq = 0u64;
    let sessions_max = echoes + 4;
    while resolved < echoes && out.sessions < sessions_max {
        out.sessions += 1;
        let mut client = EchoClient::connect(&g, DomId::DOM0).expect("client resources");
        let be = EchoBackend::connect(sim, guest, client.ring_ref(), client.port(), backend)
            .expect("the backend connects to a fresh ring");
        let task = spawn(be.run());
        let mut sent: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        'session: while resolved < echoes {
            let room = u64::from(client.free()).min(BATCH_MAX).min(echoes - resolved);
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
                assert!(sent.insert(id.0, payload).is_none(), "id {} handed out twice", id.0);
            }
            if client.push().is_err() {
                *out.errors.entry("notify").or_default() += 1;
                break 'session;
            }
            while client.in_flight() > 0 {
                match timeout(ECHO_TIMEOUT, client.next()).await {
                    Ok(Ok(e)) => {
                        let want = sent.remove(&e.id.0).expect("the ring only returns outstanding ids");
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
        // Disconnect: the backend goes first (its mapping with it), then
        // the ring's grant can end.
        drop(task);
        drop(client);
    }
    out
}
