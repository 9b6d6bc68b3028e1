//! The pvclock: system time in ns from the `vcpu_time_info` Xen keeps in
//! `vcpu_info` and the TSC.
//!
//! Xen publishes `(tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift)`
//! under a seqlock (`version` odd while it writes). Time now is
//! `system_time + (((tsc - tsc_timestamp) << shift) * mul) >> 32`, with a
//! negative shift meaning a right shift. The reader retries while the
//! version is odd or changed, and the clock is made monotonic on top (Xen's
//! updates can step back by a few ns).
//!
//! The arithmetic is plain Rust and tested on the host; only reading the TSC
//! is target code (`rdtsc`, never `rdtscp`).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::shared_info::VcpuTimeInfo;

/// How often [`PvClock::now_ns`] retries a torn read before declaring Xen
/// broken. Xen's update takes nanoseconds; a thousand retries is never
/// reached by a working hypervisor.
pub const PVCLOCK_RETRIES_MAX: u32 = 1000;

/// One consistent snapshot of `vcpu_time_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSnapshot {
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns) at the last update.
    pub system_time: u64,
    /// 32.32 fixed-point multiplier.
    pub tsc_to_system_mul: u32,
    /// Shift applied before the multiply (negative: right shift).
    pub tsc_shift: i8,
}

impl TimeSnapshot {
    /// System time in ns at TSC value `tsc`.
    ///
    /// The difference `tsc - tsc_timestamp` is taken modulo 2^64 and read as
    /// signed: Xen writes the timestamp in the guest's TSC terms, which is
    /// "negative" (close to 2^64) when the record predates the guest TSC's
    /// zero point, as it does right after the domain is created. A `tsc`
    /// truly before the timestamp counts as no time elapsed.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        let mut delta = u64::try_from(tsc.wrapping_sub(self.tsc_timestamp) as i64).unwrap_or(0);
        if self.tsc_shift >= 0 {
            delta = delta.checked_shl(self.tsc_shift as u32).unwrap_or(u64::MAX);
        } else {
            delta = delta
                .checked_shr(u32::from(self.tsc_shift.unsigned_abs()))
                .unwrap_or(0);
        }
        let scaled = (u128::from(delta) * u128::from(self.tsc_to_system_mul)) >> 32;
        self.system_time
            .saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

/// Reads a consistent snapshot, calling `tsc` inside the seqlock window.
///
/// # Panics
///
/// If the version stays odd or keeps changing for [`PVCLOCK_RETRIES_MAX`]
/// reads: Xen is not updating the clock as its ABI says.
pub fn read(time: &VcpuTimeInfo, mut tsc: impl FnMut() -> u64) -> (TimeSnapshot, u64) {
    for _ in 0..PVCLOCK_RETRIES_MAX {
        // Acquire: the field loads below are not moved above this load.
        let before = time.version.load(Ordering::Acquire);
        if before & 1 == 1 {
            core::hint::spin_loop();
            continue;
        }
        let snapshot = TimeSnapshot {
            tsc_timestamp: time.tsc_timestamp.load(Ordering::Relaxed),
            system_time: time.system_time.load(Ordering::Relaxed),
            tsc_to_system_mul: time.tsc_to_system_mul.load(Ordering::Relaxed),
            tsc_shift: time.tsc_shift.load(Ordering::Relaxed) as i8,
        };
        let now = tsc();
        // Orders the field loads above before the version re-read.
        core::sync::atomic::fence(Ordering::Acquire);
        if time.version.load(Ordering::Relaxed) == before {
            return (snapshot, now);
        }
    }
    panic!("pvclock: version unstable after {PVCLOCK_RETRIES_MAX} reads");
}

/// A monotonic clock over one vCPU's `vcpu_time_info`.
#[derive(Debug)]
pub struct PvClock {
    last_ns: AtomicU64,
}

impl PvClock {
    /// A clock that has not been read yet.
    pub const fn new() -> PvClock {
        PvClock {
            last_ns: AtomicU64::new(0),
        }
    }

    /// Time in ns since Xen's system-time origin (the host's boot), never
    /// less than an earlier call returned.
    pub fn now_ns(&self, time: &VcpuTimeInfo, tsc: impl FnMut() -> u64) -> u64 {
        let (snapshot, now) = read(time, tsc);
        let ns = snapshot.ns_at(now);
        let previous = self.last_ns.fetch_max(ns, Ordering::AcqRel);
        ns.max(previous)
    }
}

impl Default for PvClock {
    fn default() -> Self {
        PvClock::new()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn time(version: u32, snapshot: TimeSnapshot) -> VcpuTimeInfo {
        let t = VcpuTimeInfo::default();
        t.version.store(version, Ordering::Relaxed);
        t.tsc_timestamp
            .store(snapshot.tsc_timestamp, Ordering::Relaxed);
        t.system_time.store(snapshot.system_time, Ordering::Relaxed);
        t.tsc_to_system_mul
            .store(snapshot.tsc_to_system_mul, Ordering::Relaxed);
        t.tsc_shift
            .store(snapshot.tsc_shift as u8, Ordering::Relaxed);
        t
    }

    // A 2 GHz TSC: 0.5 ns per tick = mul 2^31 with shift 0.
    const GHZ2: TimeSnapshot = TimeSnapshot {
        tsc_timestamp: 1000,
        system_time: 5_000_000,
        tsc_to_system_mul: 1 << 31,
        tsc_shift: 0,
    };

    #[test]
    fn scales_the_tsc_delta() {
        assert_eq!(GHZ2.ns_at(1000), 5_000_000);
        assert_eq!(GHZ2.ns_at(3000), 5_001_000);
        // Shift +1 doubles the delta before the multiply, -1 halves it.
        assert_eq!(
            TimeSnapshot {
                tsc_shift: 1,
                ..GHZ2
            }
            .ns_at(3000),
            5_002_000
        );
        assert_eq!(
            TimeSnapshot {
                tsc_shift: -1,
                ..GHZ2
            }
            .ns_at(3000),
            5_000_500
        );
        // A TSC before the timestamp does not go back in time.
        assert_eq!(GHZ2.ns_at(10), 5_000_000);
    }

    #[test]
    fn a_timestamp_before_the_guest_tsc_zero_point_wraps() {
        // Seen on Xen 4.17 right after domain creation: the first record's
        // timestamp is 2^64 - 18589305 in guest TSC terms.
        let s = TimeSnapshot {
            tsc_timestamp: 18446744073690962311,
            system_time: 29_732_336_072,
            tsc_to_system_mul: 3_736_432_085,
            tsc_shift: -1,
        };
        let at = |tsc: u64| s.ns_at(tsc);
        // 1_489_403_884 guest ticks are 1_507_993_189 ticks after the stamp.
        let want = 29_732_336_072 + (((1_507_993_189u128 >> 1) * 3_736_432_085) >> 32) as u64;
        assert_eq!(at(1_489_403_884), want);
        // And time moves forward with the TSC.
        assert!(at(1_619_363_528) > at(1_489_403_884));
    }

    #[test]
    fn large_deltas_do_not_overflow() {
        let s = TimeSnapshot {
            tsc_timestamp: 0,
            system_time: 0,
            tsc_to_system_mul: u32::MAX,
            tsc_shift: 0,
        };
        // 2^40 ticks at ~1 ns each.
        assert_eq!(
            s.ns_at(1 << 40),
            (((1u128 << 40) * u128::from(u32::MAX)) >> 32) as u64
        );
    }

    #[test]
    #[should_panic(expected = "version unstable")]
    fn a_version_stuck_odd_is_a_broken_xen() {
        let t = time(3, GHZ2);
        let _ = read(&t, || 3000);
    }

    #[test]
    fn a_changed_version_is_read_again() {
        let t = time(2, GHZ2);
        let mut calls = 0;
        let (snapshot, now) = read(&t, || {
            calls += 1;
            if calls == 1 {
                // Xen updates the snapshot while we read.
                t.version.store(4, Ordering::Relaxed);
                t.system_time.store(9_000_000, Ordering::Relaxed);
            }
            3000
        });
        assert_eq!(calls, 2);
        assert_eq!(snapshot.system_time, 9_000_000);
        assert_eq!(snapshot.ns_at(now), 9_001_000);
    }

    #[test]
    fn the_clock_never_goes_back() {
        let clock = PvClock::new();
        let t = time(2, GHZ2);
        assert_eq!(clock.now_ns(&t, || 3000), 5_001_000);
        // Xen's next update is a little behind what we extrapolated.
        t.system_time.store(5_000_900, Ordering::Relaxed);
        t.tsc_timestamp.store(3000, Ordering::Relaxed);
        assert_eq!(clock.now_ns(&t, || 3000), 5_001_000);
        assert_eq!(clock.now_ns(&t, || 3400), 5_001_100);
    }
}
