//! Grant tables (v1): giving another domain access to our pages.
//!
//! # States of a grant reference
//!
//! ```text
//!            1. grant_access            2. end_access (flags: no reading/writing)
//!   Free ------------------------> Granted ----------------------------> Free
//!                                    |  ^
//!                 3. end_access while |  | (the grantee unmaps; Xen clears
//!                    reading/writing  v  |  GTF_reading/GTF_writing)
//!                                  Granted, Err(InUse): not reused
//! ```
//!
//! 1. Writing an entry: `frame` and `domid` first, then a release fence, then
//!    `flags` (`GTF_permit_access`, maybe `GTF_readonly`): Xen must never see
//!    the permit bit with a stale frame.
//! 2. Ending: a compare-and-exchange of `flags` to 0 that only succeeds while
//!    neither `GTF_reading` nor `GTF_writing` is set. Once it succeeds Xen
//!    will not let the grantee map the frame again, so the page is ours.
//! 3. While the grantee still has the frame mapped (or a copy in progress),
//!    ending fails with [`EndAccessError::InUse`]; the ref stays Granted and is
//!    never handed out again until an end succeeds.
//!
//! Refs `0..GNTTAB_NR_RESERVED_ENTRIES` belong to the toolstack (console,
//! xenstore) and are never allocated. The table is bounded by the frames the
//! hypervisor mapped; running out is [`GrantError::Exhausted`].
//!
//! [`GrantedPage`] ties a page to its grant: the page is freed only after the
//! grant ended. If it is dropped while the grantee still uses it, the page
//! and its ref are parked on a bounded deferred list and retried later
//! ([`Guest::reclaim_grants`](crate::guest::Guest::reclaim_grants)); past the
//! bound they are leaked (never reused), and counted.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{fence, Ordering};

use crate::abi::grant_table::{
    GrantEntryV1, GNTTAB_NR_RESERVED_ENTRIES, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY,
    GTF_WRITING,
};
use crate::guest::Guest;
use crate::hypervisor::{DomId, Gfn, GrantRef, Page};
use crate::page::{OwnedPage, SharedMem};

/// At most this many pages wait on the deferred list for a grantee to let
/// go; beyond it, a page whose grant cannot be ended is leaked (and counted).
pub const GRANT_DEFERRED_MAX: usize = 256;

/// What the grantee may do with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read and write (`GTF_permit_access`).
    ReadWrite,
    /// Read only (`GTF_permit_access | GTF_readonly`).
    #[doc(alias = "GTF_readonly")]
    ReadOnly,
}

/// Why a grant could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantError {
    /// Every grant reference is in use (granted, or still in use by a grantee).
    Exhausted,
    /// The frame number does not fit a v1 entry's 32-bit `frame` field.
    FrameOutOfRange(Gfn),
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::Exhausted => f.write_str("grant table exhausted"),
            GrantError::FrameOutOfRange(g) => {
                write!(f, "frame {:#x} does not fit a v1 grant entry", g.0)
            }
        }
    }
}

impl core::error::Error for GrantError {}

/// Why a grant could not be ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndAccessError {
    /// The grantee still has the frame mapped or is copying it
    /// (`GTF_reading`/`GTF_writing`); the grant stays and the ref is not
    /// reused. Retry once the backend has let go.
    InUse(GrantRef),
    /// The ref is not currently granted by us (reserved, out of range, or
    /// already ended): a bug in the caller.
    NotGranted(GrantRef),
}

impl fmt::Display for EndAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndAccessError::InUse(r) => write!(f, "grant {} is still in use by the grantee", r.0),
            EndAccessError::NotGranted(r) => write!(f, "grant {} is not granted", r.0),
        }
    }
}

impl core::error::Error for EndAccessError {}

/// Counters of a grant table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantStats {
    /// Refs the table can hand out (entries minus reserved ones).
    pub capacity: u32,
    /// Refs granted now (including deferred ones).
    pub granted: u32,
    /// Successful `grant_access` calls.
    pub grants: u64,
    /// Successful ends.
    pub ends: u64,
    /// Ends refused because the grantee still used the frame.
    pub ends_in_use: u64,
    /// `grant_access` calls refused with `Exhausted`.
    pub exhausted: u64,
    /// Pages waiting on the deferred list now.
    pub deferred: u32,
    /// Pages (and refs) given up because the deferred list was full.
    pub leaked: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefState {
    Reserved,
    Free,
    Granted,
}

/// The guest's bookkeeping of its v1 grant table: which refs are free.
///
/// Sans-IO: every operation takes the shared entries as an argument, so the
/// same code runs over Xen's table, the software Xen's, and a test's `Vec`.
#[derive(Debug)]
pub struct GrantTable {
    state: Vec<RefState>,
    free: Vec<u32>,
    deferred: Vec<(GrantRef, Page)>,
    stats: GrantStats,
}

impl GrantTable {
    /// Bookkeeping for a table of `entries` entries (refs `0..entries`).
    pub fn new(entries: usize) -> GrantTable {
        let entries = u32::try_from(entries).unwrap_or(u32::MAX);
        let reserved = GNTTAB_NR_RESERVED_ENTRIES.min(entries);
        let mut state = Vec::with_capacity(entries as usize);
        state.resize(reserved as usize, RefState::Reserved);
        state.resize(entries as usize, RefState::Free);
        // LIFO: pop from the end, so the lowest refs are handed out first.
        let free: Vec<u32> = (reserved..entries).rev().collect();
        let stats = GrantStats {
            capacity: entries - reserved,
            ..GrantStats::default()
        };
        GrantTable {
            state,
            free,
            deferred: Vec::new(),
            stats,
        }
    }

    /// The table's counters.
    pub fn stats(&self) -> GrantStats {
        let mut s = self.stats;
        s.deferred = self.deferred.len() as u32;
        s
    }

    /// Grants `domid` access to `gfn` and returns the ref to hand to it.
    ///
    /// # Errors
    /// [`GrantError::Exhausted`] when no ref is free;
    /// [`GrantError::FrameOutOfRange`] when `gfn` does not fit 32 bits.
    #[doc(alias = "gnttab_grant_foreign_access")]
    pub fn grant_access(
        &mut self,
        entries: &[GrantEntryV1],
        domid: DomId,
        gfn: Gfn,
        access: Access,
    ) -> Result<GrantRef, GrantError> {
        let frame = u32::try_from(gfn.0).map_err(|_| GrantError::FrameOutOfRange(gfn))?;
        assert_eq!(
            entries.len(),
            self.state.len(),
            "the grant table changed size under the guest"
        );
        let Some(r) = self.free.pop() else {
            self.stats.exhausted += 1;
            return Err(GrantError::Exhausted);
        };
        let idx = r as usize;
        assert_eq!(
            self.state[idx],
            RefState::Free,
            "free list holds a used ref"
        );
        let e = &entries[idx];
        // Pair assertion with `end_access`: a free entry was ended with a
        // successful cmpxchg to 0, after which Xen sets no bits in it.
        assert_eq!(
            e.flags.load(Ordering::Acquire),
            0,
            "free grant entry {r} has flags set"
        );
        e.frame.store(frame, Ordering::Relaxed);
        e.domid.store(domid.0, Ordering::Relaxed);
        // Orders: frame and domid above, before flags below (Mini-OS wmb()).
        fence(Ordering::Release);
        let flags = match access {
            Access::ReadWrite => GTF_PERMIT_ACCESS,
            Access::ReadOnly => GTF_PERMIT_ACCESS | GTF_READONLY,
        };
        e.flags.store(flags, Ordering::Release);
        self.state[idx] = RefState::Granted;
        self.stats.granted += 1;
        self.stats.grants += 1;
        Ok(GrantRef(r))
    }

    /// Ends a grant made by [`grant_access`](Self::grant_access).
    ///
    /// # Errors
    /// [`EndAccessError::InUse`] while the grantee uses the frame (the ref
    /// stays granted and is not reused); [`EndAccessError::NotGranted`] if
    /// `gref` is not granted.
    #[doc(alias = "gnttab_end_foreign_access_ref")]
    pub fn end_access(
        &mut self,
        entries: &[GrantEntryV1],
        gref: GrantRef,
    ) -> Result<(), EndAccessError> {
        let idx = gref.0 as usize;
        if self.state.get(idx) != Some(&RefState::Granted) {
            return Err(EndAccessError::NotGranted(gref));
        }
        let flags = &entries[idx].flags;
        let mut cur = flags.load(Ordering::Acquire);
        loop {
            if cur & (GTF_READING | GTF_WRITING) != 0 {
                self.stats.ends_in_use += 1;
                return Err(EndAccessError::InUse(gref));
            }
            // Only Xen changes flags besides us, and only by setting
            // reading/writing: the loop ends within two rounds.
            match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.state[idx] = RefState::Free;
        self.free.push(gref.0);
        self.stats.granted -= 1;
        self.stats.ends += 1;
        Ok(())
    }

    /// Parks a page whose grant could not be ended, to be retried by
    /// [`reclaim`](Self::reclaim). Returns the page back if the deferred list
    /// is full: the caller must then leak it.
    pub(crate) fn defer(&mut self, gref: GrantRef, page: Page) -> Result<(), Page> {
        if self.deferred.len() >= GRANT_DEFERRED_MAX {
            self.stats.leaked += 1;
            return Err(page);
        }
        self.deferred.push((gref, page));
        Ok(())
    }

    /// Retries ending the deferred grants; returns the pages whose grant
    /// ended (to be freed by the caller).
    pub(crate) fn reclaim(&mut self, entries: &[GrantEntryV1]) -> Vec<Page> {
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.deferred.len() {
            let gref = self.deferred[i].0;
            if self.end_access(entries, gref).is_ok() {
                done.push(self.deferred.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        done
    }
}

/// A page granted to another domain. The page stays allocated while the
/// grant exists; it goes back to the allocator only after the grant ended.
///
/// Dropping a `GrantedPage` ends the grant; if the grantee still uses the
/// page, the page and ref are deferred (see the module docs), never reused
/// while in use.
///
/// # Examples
/// ```
/// use ringlet_xen::grant::{Access, GrantedPage};
/// use ringlet_xen::guest::Guest;
/// use ringlet_xen::hypervisor::DomId;
///
/// /// Shares a read-only page with dom0; returns the ref to publish.
/// fn share(guest: &Guest, bytes: &[u8]) -> Result<GrantedPage, Box<dyn core::error::Error>> {
///     let page = guest.alloc_page()?;
///     page.mem().write(0, bytes); // before the grant: nobody else sees it yet
///     let granted = GrantedPage::new(page, DomId::DOM0, Access::ReadOnly).map_err(|(_, e)| e)?;
///     // ... publish granted.grant_ref() ...
///     Ok(granted)
/// }
///
/// /// Takes the page back once dom0 has unmapped it.
/// fn unshare(granted: GrantedPage) -> Result<(), GrantedPage> {
///     match granted.end() {
///         Ok(page) => Ok(drop(page)), // back to the allocator
///         Err((still_granted, _in_use)) => Err(still_granted),
///     }
/// }
/// ```
pub struct GrantedPage {
    page: Option<OwnedPage>,
    gref: GrantRef,
    domid: DomId,
    access: Access,
}

impl fmt::Debug for GrantedPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantedPage")
            .field("gref", &self.gref)
            .field("domid", &self.domid)
            .field("access", &self.access)
            .field("page", &self.page)
            .finish()
    }
}

impl GrantedPage {
    /// Grants `domid` access to `page`.
    ///
    /// # Errors
    /// The page comes back with the [`GrantError`] if the grant failed.
    pub fn new(
        page: OwnedPage,
        domid: DomId,
        access: Access,
    ) -> Result<GrantedPage, (OwnedPage, GrantError)> {
        match page.guest().grant_access(domid, page.gfn(), access) {
            Ok(gref) => Ok(GrantedPage {
                page: Some(page),
                gref,
                domid,
                access,
            }),
            Err(e) => Err((page, e)),
        }
    }

    fn owned(&self) -> &OwnedPage {
        self.page
            .as_ref()
            .expect("GrantedPage holds its page until drop")
    }

    /// The grant reference to give the grantee (e.g. `ring-ref` in xenstore).
    pub fn grant_ref(&self) -> GrantRef {
        self.gref
    }

    /// The grantee.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// What the grantee may do.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The page's frame number.
    pub fn gfn(&self) -> Gfn {
        self.owned().gfn()
    }

    /// The guest the page belongs to.
    pub fn guest(&self) -> &Guest {
        self.owned().guest()
    }

    /// The page's bytes (shared with the grantee: volatile/atomic only).
    pub fn mem(&self) -> SharedMem<'_> {
        self.owned().mem()
    }

    /// Ends the grant and returns the page.
    ///
    /// # Errors
    /// `(self, EndAccessError::InUse)` while the grantee still uses the page.
    pub fn end(mut self) -> Result<OwnedPage, (GrantedPage, EndAccessError)> {
        let r = self.owned().guest().end_access(self.gref);
        match r {
            Ok(()) => Ok(self
                .page
                .take()
                .expect("GrantedPage holds its page until drop")),
            Err(e) => Err((self, e)),
        }
    }
}

impl Drop for GrantedPage {
    fn drop(&mut self) {
        let Some(page) = self.page.take() else {
            return;
        };
        let guest = page.guest().clone();
        match guest.end_access(self.gref) {
            Ok(()) => drop(page),
            Err(_) => guest.defer_grant(self.gref, page),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::vec;

    fn table(n: usize) -> (GrantTable, Vec<GrantEntryV1>) {
        let entries: Vec<GrantEntryV1> = (0..n).map(|_| GrantEntryV1::default()).collect();
        (GrantTable::new(n), entries)
    }

    /// Transitions 1 and 2.
    #[test]
    fn grant_writes_entry_then_end_clears_it() {
        let (mut t, e) = table(16);
        let r = t
            .grant_access(&e, DomId(3), Gfn(0x1234), Access::ReadWrite)
            .unwrap();
        assert_eq!(
            r,
            GrantRef(GNTTAB_NR_RESERVED_ENTRIES),
            "reserved refs skipped"
        );
        let ent = &e[r.0 as usize];
        assert_eq!(ent.frame.load(Ordering::Relaxed), 0x1234);
        assert_eq!(ent.domid.load(Ordering::Relaxed), 3);
        assert_eq!(ent.flags.load(Ordering::Relaxed), GTF_PERMIT_ACCESS);
        let r2 = t
            .grant_access(&e, DomId(3), Gfn(7), Access::ReadOnly)
            .unwrap();
        assert_eq!(
            e[r2.0 as usize].flags.load(Ordering::Relaxed),
            GTF_PERMIT_ACCESS | GTF_READONLY
        );
        t.end_access(&e, r).unwrap();
        assert_eq!(ent.flags.load(Ordering::Relaxed), 0);
        assert_eq!(t.end_access(&e, r), Err(EndAccessError::NotGranted(r)));
        assert_eq!(t.stats().granted, 1);
    }

    #[test]
    fn reserved_and_out_of_range_refs_cannot_be_ended() {
        let (mut t, e) = table(16);
        assert_eq!(
            t.end_access(&e, GrantRef(1)),
            Err(EndAccessError::NotGranted(GrantRef(1)))
        );
        assert_eq!(
            t.end_access(&e, GrantRef(99)),
            Err(EndAccessError::NotGranted(GrantRef(99)))
        );
    }

    #[test]
    fn exhaustion_is_an_error_and_recovers() {
        let (mut t, e) = table(12);
        let refs: Vec<_> = (0..4)
            .map(|i| {
                t.grant_access(&e, DomId(0), Gfn(i), Access::ReadWrite)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            t.grant_access(&e, DomId(0), Gfn(9), Access::ReadWrite),
            Err(GrantError::Exhausted)
        );
        assert_eq!(t.stats().exhausted, 1);
        t.end_access(&e, refs[2]).unwrap();
        assert_eq!(
            t.grant_access(&e, DomId(0), Gfn(9), Access::ReadWrite),
            Ok(refs[2])
        );
    }

    /// Transition 3, then 2 once the grantee lets go.
    #[test]
    fn in_use_entry_is_not_ended_nor_reused() {
        let (mut t, e) = table(10); // two usable refs: 8 and 9
        let a = t
            .grant_access(&e, DomId(1), Gfn(1), Access::ReadWrite)
            .unwrap();
        let b = t
            .grant_access(&e, DomId(1), Gfn(2), Access::ReadWrite)
            .unwrap();
        // The backend maps `a` (Xen sets GTF_reading|GTF_writing).
        e[a.0 as usize]
            .flags
            .fetch_or(GTF_READING | GTF_WRITING, Ordering::SeqCst);
        assert_eq!(t.end_access(&e, a), Err(EndAccessError::InUse(a)));
        assert_eq!(t.stats().ends_in_use, 1);
        t.end_access(&e, b).unwrap();
        // Only `b` is reusable.
        assert_eq!(
            t.grant_access(&e, DomId(1), Gfn(3), Access::ReadWrite),
            Ok(b)
        );
        assert_eq!(
            t.grant_access(&e, DomId(1), Gfn(4), Access::ReadWrite),
            Err(GrantError::Exhausted)
        );
        // Entry `a` still says what it said.
        assert_eq!(e[a.0 as usize].frame.load(Ordering::Relaxed), 1);
        // Only reading still set: still in use.
        e[a.0 as usize]
            .flags
            .fetch_and(!GTF_WRITING, Ordering::SeqCst);
        assert_eq!(t.end_access(&e, a), Err(EndAccessError::InUse(a)));
        // Backend unmaps: end succeeds, ref comes back.
        e[a.0 as usize]
            .flags
            .fetch_and(!GTF_READING, Ordering::SeqCst);
        t.end_access(&e, a).unwrap();
        assert_eq!(
            t.grant_access(&e, DomId(1), Gfn(5), Access::ReadOnly),
            Ok(a)
        );
    }

    #[test]
    fn frame_must_fit_32_bits() {
        let (mut t, e) = table(10);
        assert_eq!(
            t.grant_access(&e, DomId(0), Gfn(1 << 32), Access::ReadWrite),
            Err(GrantError::FrameOutOfRange(Gfn(1 << 32)))
        );
        assert_eq!(t.stats().granted, 0);
    }

    #[test]
    fn tiny_tables_have_no_usable_refs() {
        let (mut t, e) = table(4);
        assert_eq!(t.stats().capacity, 0);
        assert_eq!(
            t.grant_access(&e, DomId(0), Gfn(1), Access::ReadWrite),
            Err(GrantError::Exhausted)
        );
        let _ = vec![0u8; 0];
    }

    #[derive(Clone, Debug)]
    enum Op {
        Grant(u8, bool),
        End(u8),
        Map(u8, bool),
        Unmap(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (any::<u8>(), any::<bool>()).prop_map(|(d, ro)| Op::Grant(d, ro)),
            2 => any::<u8>().prop_map(Op::End),
            1 => (any::<u8>(), any::<bool>()).prop_map(|(i, w)| Op::Map(i, w)),
            1 => any::<u8>().prop_map(Op::Unmap),
        ]
    }

    proptest::proptest! {
        /// The allocator against a model of the grantee (which maps and
        /// unmaps as Xen lets it): refs are unique while granted, an entry in
        /// use is never ended nor reused, exhaustion happens exactly at
        /// capacity, and entries say what was granted.
        #[test]
        fn allocator_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
            use alloc::collections::BTreeMap;
            const N: usize = 24;
            let (mut t, e) = table(N);
            // ref -> (domid, frame, readonly, mapped)
            let mut model: BTreeMap<u32, (u16, u32, bool, bool)> = BTreeMap::new();
            let mut frame = 0u32;
            for op in ops {
                let nth = |i: u8, m: &BTreeMap<u32, (u16, u32, bool, bool)>| {
                    m.keys().nth(usize::from(i) % m.len().max(1)).copied()
                };
                match op {
                    Op::Grant(d, ro) => {
                        frame += 1;
                        let acc = if ro { Access::ReadOnly } else { Access::ReadWrite };
                        match t.grant_access(&e, DomId(u16::from(d)), Gfn(u64::from(frame)), acc) {
                            Ok(r) => {
                                proptest::prop_assert!(r.0 >= GNTTAB_NR_RESERVED_ENTRIES && (r.0 as usize) < N);
                                proptest::prop_assert!(model.insert(r.0, (u16::from(d), frame, ro, false)).is_none());
                            }
                            Err(GrantError::Exhausted) => {
                                proptest::prop_assert_eq!(model.len(), N - 8);
                            }
                            Err(x) => proptest::prop_assert!(false, "{:?}", x),
                        }
                    }
                    Op::End(i) => {
                        if let Some(r) = nth(i, &model) {
                            let mapped = model[&r].3;
                            let res = t.end_access(&e, GrantRef(r));
                            if mapped {
                                proptest::prop_assert_eq!(res, Err(EndAccessError::InUse(GrantRef(r))));
                            } else {
                                proptest::prop_assert_eq!(res, Ok(()));
                                model.remove(&r);
                                proptest::prop_assert_eq!(e[r as usize].flags.load(Ordering::SeqCst), 0);
                            }
                        }
                    }
                    Op::Map(i, w) => {
                        // Xen's check: permit set, and not read-only for a write.
                        if let Some(r) = nth(i, &model) {
                            let ent = model.get_mut(&r).unwrap();
                            if !(w && ent.2) {
                                let set = if w { GTF_READING | GTF_WRITING } else { GTF_READING };
                                e[r as usize].flags.fetch_or(set, Ordering::SeqCst);
                                ent.3 = true;
                            }
                        }
                    }
                    Op::Unmap(i) => {
                        if let Some(r) = nth(i, &model) {
                            e[r as usize].flags.fetch_and(!(GTF_READING | GTF_WRITING), Ordering::SeqCst);
                            model.get_mut(&r).unwrap().3 = false;
                        }
                    }
                }
                proptest::prop_assert_eq!(t.stats().granted as usize, model.len());
                for (&r, &(d, f, ro, _)) in &model {
                    let ent = &e[r as usize];
                    proptest::prop_assert_eq!(ent.domid.load(Ordering::SeqCst), d);
                    proptest::prop_assert_eq!(ent.frame.load(Ordering::SeqCst), f);
                    let fl = ent.flags.load(Ordering::SeqCst);
                    proptest::prop_assert!(fl & GTF_PERMIT_ACCESS != 0);
                    proptest::prop_assert_eq!(fl & GTF_READONLY != 0, ro);
                }
            }
        }
    }
}
