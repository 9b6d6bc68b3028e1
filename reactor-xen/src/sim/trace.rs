//! The run's trace: every event delivery, hypercall outcome, ring message
//! and time jump, in order, with the virtual time it happened at.
//!
//! Two runs with the same seed produce the same trace, byte for byte; the
//! determinism tests compare them. Every entry is folded into a running
//! 64-bit digest (FNV-1a over the entry's `Debug` text), so long runs can be
//! compared without keeping the entries; [`TraceMode::Full`] also keeps them,
//! up to [`TRACE_ENTRIES_MAX`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use super::faults::FaultSite;
use crate::hypervisor::{DomId, GrantRef, Port};

/// Most entries a [`TraceMode::Full`] trace keeps; later ones only feed the digest.
pub const TRACE_ENTRIES_MAX: usize = 1 << 20;

/// How much of the trace a run keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceMode {
    /// Only the digest and the count (cheap; the fuzz tests use it).
    Digest,
    /// The digest and every entry (up to [`TRACE_ENTRIES_MAX`]).
    Full,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceEvent {
    /// A domain was created.
    DomainCreated {
        /// The new domain.
        dom: DomId,
    },
    /// `EVTCHNOP_alloc_unbound` succeeded.
    AllocUnbound {
        /// The caller.
        dom: DomId,
        /// The new port.
        port: Port,
        /// Who may bind to it.
        remote: DomId,
    },
    /// `EVTCHNOP_bind_interdomain` succeeded.
    BindInterdomain {
        /// The caller.
        dom: DomId,
        /// The caller's new port.
        port: Port,
        /// The other end.
        remote: DomId,
        /// The other end's port.
        remote_port: Port,
    },
    /// `EVTCHNOP_bind_virq` succeeded.
    BindVirq {
        /// The caller.
        dom: DomId,
        /// The new port.
        port: Port,
        /// The `VIRQ_*` number.
        virq: u32,
    },
    /// `EVTCHNOP_close` succeeded.
    Close {
        /// The caller.
        dom: DomId,
        /// The closed port.
        port: Port,
    },
    /// `EVTCHNOP_send` was called (whatever it then did).
    Send {
        /// The caller.
        dom: DomId,
        /// The caller's port.
        port: Port,
    },
    /// A port's pending bit was set (2-level ABI).
    Pending {
        /// The receiving domain.
        dom: DomId,
        /// The receiving port.
        port: Port,
        /// Whether this raised `evtchn_upcall_pending` (unmasked, newly selected).
        upcall: bool,
    },
    /// A port's pending bit was already set: the notification coalesced.
    Coalesced {
        /// The receiving domain.
        dom: DomId,
        /// The receiving port.
        port: Port,
    },
    /// A dom0 service (xenstored, console) was notified.
    ServiceNotified {
        /// The guest whose ring it serves.
        guest: DomId,
        /// Which service.
        service: &'static str,
    },
    /// `EVTCHNOP_unmask` raised the upcall for a port left pending while masked.
    UnmaskRaised {
        /// The caller.
        dom: DomId,
        /// The unmasked port.
        port: Port,
    },
    /// A fault was injected.
    Fault {
        /// The site.
        site: FaultSite,
        /// The domain it hit.
        dom: DomId,
    },
    /// A domain's single-shot timer fired.
    TimerFired {
        /// The domain.
        dom: DomId,
    },
    /// Virtual time jumped forward (the world was idle).
    TimeJump {
        /// The new time.
        to_ns: u64,
    },
    /// A grant was mapped.
    GrantMap {
        /// The mapping domain.
        mapper: DomId,
        /// The granting domain.
        granter: DomId,
        /// The grant.
        gref: GrantRef,
        /// Whether the mapping is read-only.
        readonly: bool,
    },
    /// A grant mapping was dropped.
    GrantUnmap {
        /// The mapping domain.
        mapper: DomId,
        /// The granting domain.
        granter: DomId,
        /// The grant.
        gref: GrantRef,
    },
    /// A grant was refused (mapping or copy).
    GrantRefused {
        /// The mapping domain.
        mapper: DomId,
        /// The granting domain.
        granter: DomId,
        /// The grant.
        gref: GrantRef,
        /// Why.
        why: &'static str,
    },
    /// A domain shut down.
    Shutdown {
        /// The domain.
        dom: DomId,
        /// `SHUTDOWN_*` code.
        reason: u32,
    },
    /// A free-form note from a backend or a test (ring messages, states).
    Note {
        /// The domain it concerns.
        dom: DomId,
        /// The text.
        text: String,
    },
}

/// One trace entry: when, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Virtual time in ns.
    pub t_ns: u64,
    /// What happened.
    pub event: TraceEvent,
}

/// Folds text into an FNV-1a digest without allocating.
struct Digest(u64);

impl fmt::Write for Digest {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(())
    }
}

/// A run's trace.
#[derive(Debug)]
pub struct Trace {
    mode: TraceMode,
    digest: u64,
    count: u64,
    entries: Vec<TraceEntry>,
}

impl Trace {
    /// An empty trace.
    pub fn new(mode: TraceMode) -> Trace {
        Trace {
            mode,
            digest: 0xcbf2_9ce4_8422_2325,
            count: 0,
            entries: Vec::new(),
        }
    }

    /// Records `event` at `t_ns`.
    pub fn record(&mut self, t_ns: u64, event: TraceEvent) {
        let entry = TraceEntry { t_ns, event };
        let mut d = Digest(self.digest);
        // Writing to a Digest never fails.
        let _ = writeln!(d, "{entry:?}");
        self.digest = d.0;
        self.count += 1;
        if self.mode == TraceMode::Full && self.entries.len() < TRACE_ENTRIES_MAX {
            self.entries.push(entry);
        }
    }

    /// The digest of every entry so far.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// How many entries were recorded (kept or not).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The kept entries ([`TraceMode::Full`] only).
    pub fn entries(&self) -> &[TraceEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::prelude::rust_2021::*;

    #[test]
    fn digest_depends_on_content_order_and_time() {
        let ev = |p| TraceEvent::Send {
            dom: DomId(1),
            port: Port(p),
        };
        let run = |evs: &[(u64, TraceEvent)]| {
            let mut t = Trace::new(TraceMode::Digest);
            for (at, e) in evs {
                t.record(*at, e.clone());
            }
            t.digest()
        };
        let a = run(&[(1, ev(3)), (2, ev(4))]);
        assert_eq!(a, run(&[(1, ev(3)), (2, ev(4))]));
        assert_ne!(a, run(&[(1, ev(4)), (2, ev(3))]));
        assert_ne!(a, run(&[(1, ev(3)), (3, ev(4))]));
    }

    #[test]
    fn full_mode_keeps_entries_digest_mode_does_not() {
        let mut full = Trace::new(TraceMode::Full);
        let mut dig = Trace::new(TraceMode::Digest);
        for t in [&mut full, &mut dig] {
            t.record(5, TraceEvent::TimeJump { to_ns: 5 });
        }
        assert_eq!(full.entries().len(), 1);
        assert!(dig.entries().is_empty());
        assert_eq!(full.digest(), dig.digest());
        assert_eq!(full.count(), 1);
    }
}
