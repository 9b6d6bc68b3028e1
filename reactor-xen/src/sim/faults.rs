//! The sim's fault model: which faults a run injects, and how often.
//!
//! Every fault site is named by a [`FaultSite`]. A run's [`Faults`] gives each
//! site a probability ([`Ratio`]); a site whose ratio is zero is off. The fuzz
//! tests derive the set from the seed ([`Faults::from_seed`]): each site is
//! switched on for about half the seeds, with its own ratio, so that every
//! combination of faults is met over many seeds.
//!
//! Only what real Xen (or a real, possibly buggy or hostile, backend) can do is
//! injected. In particular an event-channel pending bit is never lost: Xen
//! sets it before `EVTCHNOP_send` returns and only the guest clears it. What a
//! guest can observe — and what the sim injects — is a notification that
//! arrives late, one that arrives again after its work was done (spurious), and
//! several sends coalesced into one pending bit.

use core::fmt;

use super::prng::{Prng, Ratio};

/// A place where the sim can inject a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FaultSite {
    /// An `EVTCHNOP_send` sets the target's pending bit only after a short
    /// virtual delay (up to [`NOTIFY_DELAY_NS_MAX`]); sends in between
    /// coalesce with it.
    NotifyDelay,
    /// A notification is "lost" for a long while (up to
    /// [`NOTIFY_LOST_NS_MAX`]) and then repeated: delivered once, late. The
    /// pending bit itself is never lost.
    NotifyLostThenRepeated,
    /// A notification is delivered, and delivered again a little later: the
    /// second one finds no new work.
    NotifyDuplicate,
    /// On a send, another bound port of the target domain is also set pending
    /// (as after `EVTCHNOP_bind_interdomain`, which always raises one).
    SpuriousEvent,
    /// On a send, the target's `evtchn_upcall_pending` is raised with no
    /// new pending port behind it.
    SpuriousUpcall,
    /// xenstored answers a `TRANSACTION_END` commit with `EAGAIN` although
    /// nothing conflicted (the client must retry the transaction).
    XenstoreEagain,
    /// xenstored sends a malformed reply (wrong request id, wrong type,
    /// oversized length, unterminated string, garbage error name).
    XenstoreMalformedReply,
    /// A backend changes its xenbus state unprompted (Closing, then back), or
    /// disconnects.
    BackendStateChange,
    /// A backend answers with an id that is not outstanding.
    RingBadId,
    /// A backend answers twice with the same id.
    RingDuplicateId,
    /// A backend moves `rsp_prod` further ahead than the ring holds.
    RingProducerJump,
    /// A backend answers with a status the protocol does not define.
    RingBadStatus,
}

impl FaultSite {
    /// Every fault site, in declaration order.
    pub const ALL: [FaultSite; 12] = [
        FaultSite::NotifyDelay,
        FaultSite::NotifyLostThenRepeated,
        FaultSite::NotifyDuplicate,
        FaultSite::SpuriousEvent,
        FaultSite::SpuriousUpcall,
        FaultSite::XenstoreEagain,
        FaultSite::XenstoreMalformedReply,
        FaultSite::BackendStateChange,
        FaultSite::RingBadId,
        FaultSite::RingDuplicateId,
        FaultSite::RingProducerJump,
        FaultSite::RingBadStatus,
    ];

    /// The sites that change only timing or add harmless wakes: a correct
    /// guest sees no error under them, only delays.
    pub const BENIGN: [FaultSite; 6] = [
        FaultSite::NotifyDelay,
        FaultSite::NotifyLostThenRepeated,
        FaultSite::NotifyDuplicate,
        FaultSite::SpuriousEvent,
        FaultSite::SpuriousUpcall,
        FaultSite::XenstoreEagain,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether a correct guest recovers from this fault without an error.
    pub fn is_benign(self) -> bool {
        FaultSite::BENIGN.contains(&self)
    }
}

/// Longest virtual delay of a [`FaultSite::NotifyDelay`] notification.
pub const NOTIFY_DELAY_NS_MAX: u64 = 200_000;

/// Longest virtual delay of a [`FaultSite::NotifyLostThenRepeated`] notification.
pub const NOTIFY_LOST_NS_MAX: u64 = 20_000_000;

/// Largest numerator of a ratio chosen by [`Faults::from_seed`], over
/// [`SEEDED_RATIO_DEN`]: a seeded site fires on at most 1 in 4 chances.
pub const SEEDED_RATIO_NUM_MAX: u32 = 25;

/// Denominator of the ratios chosen by [`Faults::from_seed`].
pub const SEEDED_RATIO_DEN: u32 = 100;

/// The probability of each fault site for one run.
#[derive(Clone, PartialEq, Eq)]
pub struct Faults {
    ratios: [Ratio; FaultSite::ALL.len()],
}

impl Faults {
    /// No faults at all.
    pub const fn none() -> Faults {
        Faults {
            ratios: [Ratio::NEVER; FaultSite::ALL.len()],
        }
    }

    /// Faults chosen by `prng`: each site is on with probability 1/2, with a
    /// ratio between 1/100 and [`SEEDED_RATIO_NUM_MAX`]/100.
    pub fn from_prng(prng: &mut Prng) -> Faults {
        let mut faults = Faults::none();
        for site in FaultSite::ALL {
            if prng.chance(Ratio::new(1, 2)) {
                let num = prng.range_inclusive(1, u64::from(SEEDED_RATIO_NUM_MAX)) as u32;
                faults.ratios[site.index()] = Ratio::new(num, SEEDED_RATIO_DEN);
            }
        }
        faults
    }

    /// Faults chosen by the part `"faults"` of the run seeded with `seed`.
    pub fn from_seed(seed: u64) -> Faults {
        Faults::from_prng(&mut Prng::for_part(seed, "faults"))
    }

    /// These faults with `site` set to `ratio`.
    #[must_use]
    pub fn with(mut self, site: FaultSite, ratio: Ratio) -> Faults {
        self.ratios[site.index()] = ratio;
        self
    }

    /// These faults without the sites that are not [benign](FaultSite::is_benign).
    #[must_use]
    pub fn benign_only(mut self) -> Faults {
        for site in FaultSite::ALL {
            if !site.is_benign() {
                self.ratios[site.index()] = Ratio::NEVER;
            }
        }
        self
    }

    /// The probability of `site`.
    pub fn ratio(&self, site: FaultSite) -> Ratio {
        self.ratios[site.index()]
    }

    /// Whether `site` can fire at all.
    pub fn is_enabled(&self, site: FaultSite) -> bool {
        !self.ratio(site).is_never()
    }

    /// The sites that are on.
    pub fn enabled(&self) -> impl Iterator<Item = FaultSite> + '_ {
        FaultSite::ALL.into_iter().filter(|s| self.is_enabled(*s))
    }
}

impl Default for Faults {
    fn default() -> Faults {
        Faults::none()
    }
}

impl fmt::Debug for Faults {
    /// Lists only the sites that are on: `Faults { NotifyDelay: 3/100 }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_struct("Faults");
        for site in self.enabled() {
            let name = std::format!("{site:?}");
            m.field(&name, &self.ratio(site));
        }
        m.finish()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::format;
    use std::prelude::rust_2021::*;

    #[test]
    fn all_lists_every_site_in_index_order() {
        for (i, site) in FaultSite::ALL.into_iter().enumerate() {
            assert_eq!(site.index(), i);
        }
    }

    #[test]
    fn none_enables_nothing_and_prints_empty() {
        let f = Faults::none();
        assert_eq!(f.enabled().count(), 0);
        assert_eq!(format!("{f:?}"), "Faults");
    }

    #[test]
    fn with_sets_one_site() {
        let f = Faults::none().with(FaultSite::RingBadId, Ratio::new(1, 3));
        assert_eq!(f.enabled().collect::<Vec<_>>(), [FaultSite::RingBadId]);
        assert_eq!(format!("{f:?}"), "Faults { RingBadId: 1/3 }");
        assert!(f.benign_only().enabled().next().is_none());
    }

    #[test]
    fn seeded_faults_are_deterministic_and_vary() {
        assert_eq!(Faults::from_seed(5), Faults::from_seed(5));
        let distinct = (0..32)
            .map(|s| format!("{:?}", Faults::from_seed(s)))
            .collect::<std::collections::BTreeSet<_>>();
        assert!(
            distinct.len() > 16,
            "only {} distinct fault sets",
            distinct.len()
        );
        // Over many seeds every site is on sometimes and off sometimes.
        for site in FaultSite::ALL {
            let on = (0..200)
                .filter(|&s| Faults::from_seed(s).is_enabled(site))
                .count();
            assert!((40..160).contains(&on), "{site:?} on for {on}/200 seeds");
        }
    }
}
