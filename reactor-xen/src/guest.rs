//! The guest handle drivers hold: one domain's hypervisor, event-channel
//! table, grant table and page allocation, behind a cheap `Rc` clone.
//!
//! Everything here runs in the executor's single context: the handle is
//! `!Send`, its tables are `RefCell`s, and no borrow is held across a call
//! out (wakers are woken after the table's borrow ends).
#![deny(unsafe_code)]

use alloc::rc::Rc;
use core::cell::{OnceCell, RefCell};
use core::fmt;

use crate::evtchn::{self, BindError, DemuxStats, EventChannel, EventStats, EventTable};
use crate::grant::{Access, EndAccessError, GrantError, GrantStats, GrantTable, GrantedPage};
use crate::hypervisor::{DomId, Gfn, GrantRef, Hypervisor, OutOfPages, RingPage, XenError};
use crate::page::{OwnedPage, SharedMem};

/// Why a toolstack-provided ring (xenstore, console) is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceRingError {
    /// The hypervisor could not say where the ring is (`HVMOP_get_param`).
    Hypervisor(XenError),
    /// Its port could not be attached.
    Bind(BindError),
}

impl fmt::Display for DeviceRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRingError::Hypervisor(e) => write!(f, "device ring unavailable: {e}"),
            DeviceRingError::Bind(e) => write!(f, "device ring port: {e}"),
        }
    }
}

impl core::error::Error for DeviceRingError {}

/// Why a page could not be shared with another domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharePageError {
    /// No page left to allocate.
    OutOfPages,
    /// The grant failed.
    Grant(GrantError),
}

impl fmt::Display for SharePageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharePageError::OutOfPages => f.write_str("no free page to share"),
            SharePageError::Grant(e) => write!(f, "sharing a page: {e}"),
        }
    }
}

impl core::error::Error for SharePageError {}

struct Inner {
    hv: Rc<dyn Hypervisor>,
    events: RefCell<EventTable>,
    grants: RefCell<GrantTable>,
    xenstore: OnceCell<Result<RingPage, XenError>>,
    console: OnceCell<Result<RingPage, XenError>>,
}

/// One domain as its drivers see it. Cheap to clone (an `Rc`).
///
/// On Xen the PVH boot code builds it over the real hypervisor; on Linux the
/// software Xen builds one per simulated domain. Drivers only take it as an
/// argument.
///
/// # Examples
/// ```
/// use ringlet_xen::evtchn::{BindError, EventChannel};
/// use ringlet_xen::guest::Guest;
/// use ringlet_xen::hypervisor::DomId;
///
/// /// Waits for dom0 to connect to a fresh port, then pings it.
/// async fn ping(guest: &Guest) -> Result<(), Box<dyn core::error::Error>> {
///     let ch = EventChannel::alloc_unbound(guest, DomId::DOM0)?;
///     // ... publish ch.port() in xenstore ...
///     ch.wait().await;
///     ch.notify()?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Guest {
    inner: Rc<Inner>,
}

impl fmt::Debug for Guest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Guest");
        if let Ok(e) = self.inner.events.try_borrow() {
            d.field("events", &e.stats());
        }
        if let Ok(g) = self.inner.grants.try_borrow() {
            d.field("grants", &g.stats());
        }
        d.finish()
    }
}

impl Guest {
    /// The handle for the domain behind `hv`. The grant table's size is
    /// taken from `hv.grant_entries()` now and must not change.
    pub fn new(hv: Rc<dyn Hypervisor>) -> Guest {
        let grants = GrantTable::new(hv.grant_entries().len());
        Guest {
            inner: Rc::new(Inner {
                hv,
                events: RefCell::new(EventTable::default()),
                grants: RefCell::new(grants),
                xenstore: OnceCell::new(),
                console: OnceCell::new(),
            }),
        }
    }

    /// The hypervisor below.
    pub fn hypervisor(&self) -> &dyn Hypervisor {
        &*self.inner.hv
    }

    /// Whether two handles are the same guest.
    pub fn ptr_eq(&self, other: &Guest) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn events(&self) -> &RefCell<EventTable> {
        &self.inner.events
    }

    /// Monotonic time in ns (the hypervisor's clock).
    pub fn now_ns(&self) -> u64 {
        self.inner.hv.now_ns()
    }

    // ----- events -----

    /// Delivers pending events to their ports' waiters: one pass of
    /// [`evtchn::demux`] over this guest's shared info. Executor context only.
    pub fn demux(&self) -> DemuxStats {
        let hv = &*self.inner.hv;
        let stats = evtchn::demux(hv.shared_info(), hv.vcpu_info(), |port| {
            evtchn::deliver(self, port)
        });
        self.inner.events.borrow_mut().record_demux(stats);
        stats
    }

    /// Whether Xen has raised an upcall (or set selector bits) since the last
    /// [`demux`](Self::demux): there is work for it.
    pub fn upcall_pending(&self) -> bool {
        let v = self.inner.hv.vcpu_info();
        v.evtchn_upcall_pending
            .load(core::sync::atomic::Ordering::Acquire)
            != 0
            || v.evtchn_pending_sel
                .load(core::sync::atomic::Ordering::Acquire)
                != 0
    }

    /// Event-channel counters.
    pub fn event_stats(&self) -> EventStats {
        self.inner.events.borrow().stats()
    }

    // ----- pages and grants -----

    /// A zeroed page from the hypervisor's allocator, freed when dropped.
    ///
    /// # Errors
    /// [`OutOfPages`] when none is left.
    pub fn alloc_page(&self) -> Result<OwnedPage, OutOfPages> {
        let page = self.inner.hv.alloc_page()?;
        Ok(OwnedPage::from_page(self.clone(), page))
    }

    /// Allocates a page and grants `domid` access to it.
    ///
    /// # Errors
    /// [`SharePageError`] if no page or no grant ref is left.
    pub fn share_page(&self, domid: DomId, access: Access) -> Result<GrantedPage, SharePageError> {
        let page = self.alloc_page().map_err(|_| SharePageError::OutOfPages)?;
        GrantedPage::new(page, domid, access).map_err(|(_, e)| SharePageError::Grant(e))
    }

    /// Grants `domid` access to frame `gfn` (see [`GrantTable::grant_access`]).
    /// Prefer [`GrantedPage`], which ties the page's life to the grant.
    ///
    /// # Errors
    /// [`GrantError`]; on `Exhausted` deferred grants are retried first.
    pub fn grant_access(
        &self,
        domid: DomId,
        gfn: Gfn,
        access: Access,
    ) -> Result<GrantRef, GrantError> {
        let entries = self.inner.hv.grant_entries();
        let r = self
            .inner
            .grants
            .borrow_mut()
            .grant_access(entries, domid, gfn, access);
        match r {
            Err(GrantError::Exhausted) if self.reclaim_grants() > 0 => self
                .inner
                .grants
                .borrow_mut()
                .grant_access(entries, domid, gfn, access),
            r => r,
        }
    }

    /// Ends a grant (see [`GrantTable::end_access`]).
    ///
    /// # Errors
    /// [`EndAccessError::InUse`] while the grantee uses the frame.
    pub fn end_access(&self, gref: GrantRef) -> Result<(), EndAccessError> {
        let entries = self.inner.hv.grant_entries();
        self.inner.grants.borrow_mut().end_access(entries, gref)
    }

    /// Retries the grants whose pages were dropped while still in use;
    /// frees the pages whose grant ended. Returns how many were freed.
    pub fn reclaim_grants(&self) -> usize {
        let entries = self.inner.hv.grant_entries();
        let pages = self.inner.grants.borrow_mut().reclaim(entries);
        let n = pages.len();
        for p in pages {
            self.inner.hv.free_page(p);
        }
        n
    }

    /// Grant-table counters.
    pub fn grant_stats(&self) -> GrantStats {
        self.inner.grants.borrow().stats()
    }

    pub(crate) fn defer_grant(&self, gref: GrantRef, page: OwnedPage) {
        let raw = page.into_page();
        let leaked = self.inner.grants.borrow_mut().defer(gref, raw);
        if let Err(p) = leaked {
            log::warn!(
                "grant {} still in use and the deferred list is full: leaking frame {:#x}",
                gref.0,
                p.gfn().0
            );
        }
    }

    // ----- toolstack rings -----

    fn ring(
        cell: &OnceCell<Result<RingPage, XenError>>,
        get: impl FnOnce() -> Result<RingPage, XenError>,
    ) -> Result<RingPage, XenError> {
        *cell.get_or_init(get)
    }

    /// The xenstore ring page (`HVM_PARAM_STORE_PFN`), for the xenstore client.
    ///
    /// # Errors
    /// The hypervisor's error if the toolstack gave no xenstore ring.
    pub fn xenstore_mem(&self) -> Result<SharedMem<'_>, XenError> {
        let r = Self::ring(&self.inner.xenstore, || self.inner.hv.xenstore_ring())?;
        Ok(SharedMem::hypervisor_page(self, r.page))
    }

    /// A handle on the xenstore port (`HVM_PARAM_STORE_EVTCHN`); events
    /// delivered before this call are not lost.
    ///
    /// # Errors
    /// [`DeviceRingError`] if there is no xenstore ring or its port is unusable.
    pub fn xenstore_channel(&self) -> Result<EventChannel, DeviceRingError> {
        let r = Self::ring(&self.inner.xenstore, || self.inner.hv.xenstore_ring())
            .map_err(DeviceRingError::Hypervisor)?;
        EventChannel::attach(self, r.port).map_err(DeviceRingError::Bind)
    }

    /// The PV console ring page (`HVM_PARAM_CONSOLE_PFN`).
    ///
    /// # Errors
    /// The hypervisor's error if the toolstack gave no console ring.
    pub fn console_mem(&self) -> Result<SharedMem<'_>, XenError> {
        let r = Self::ring(&self.inner.console, || self.inner.hv.console_ring())?;
        Ok(SharedMem::hypervisor_page(self, r.page))
    }

    /// A handle on the console port (`HVM_PARAM_CONSOLE_EVTCHN`).
    ///
    /// # Errors
    /// [`DeviceRingError`] if there is no console ring or its port is unusable.
    pub fn console_channel(&self) -> Result<EventChannel, DeviceRingError> {
        let r = Self::ring(&self.inner.console, || self.inner.hv.console_ring())
            .map_err(DeviceRingError::Hypervisor)?;
        EventChannel::attach(self, r.port).map_err(DeviceRingError::Bind)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::abi::grant_table::{GTF_READING, GTF_WRITING};
    use crate::testing::{MockXen, MOCK_GRANT_ENTRIES};
    use alloc::vec::Vec;
    use core::sync::atomic::Ordering;

    #[test]
    fn granted_page_lifecycle() {
        let xen = MockXen::new();
        let g = xen.guest();
        let base = xen.pages_in_use();
        let p = g.share_page(DomId(0), Access::ReadOnly).unwrap();
        assert_eq!(xen.pages_in_use(), base + 1);
        assert_eq!(p.access(), Access::ReadOnly);
        p.mem().write(0, b"hello");
        // The back end maps it read-only; a write mapping is refused.
        assert!(xen.map_grant(p.grant_ref(), DomId(0), true).is_none());
        assert!(xen.map_grant(p.grant_ref(), DomId(1), false).is_none());
        let m = xen.map_grant(p.grant_ref(), DomId(0), false).unwrap();
        let mut b = [0u8; 5];
        m.read(0, &mut b);
        assert_eq!(&b, b"hello");
        // Still mapped: ending fails, the page comes back granted.
        let gref = p.grant_ref();
        let (p, e) = p.end().unwrap_err();
        assert_eq!(e, EndAccessError::InUse(gref));
        xen.unmap_grant(gref);
        let page = p.end().unwrap();
        assert_eq!(xen.entry(gref).flags.load(Ordering::SeqCst), 0);
        assert_eq!(g.grant_stats().granted, 0);
        drop(page);
        assert_eq!(xen.pages_in_use(), base);
    }

    #[test]
    fn dropped_in_use_page_is_deferred_not_freed_or_reused() {
        let xen = MockXen::new();
        let g = xen.guest();
        let base = xen.pages_in_use();
        let p = g.share_page(DomId(0), Access::ReadWrite).unwrap();
        let gref = p.grant_ref();
        let _m = xen.map_grant(gref, DomId(0), true).unwrap();
        drop(p);
        assert_eq!(xen.pages_in_use(), base + 1, "still mapped: not freed");
        assert_eq!(g.grant_stats().deferred, 1);
        assert_eq!(g.reclaim_grants(), 0);
        // Every other ref can be used; the deferred one is not handed out.
        let usable = MOCK_GRANT_ENTRIES - 8;
        let others: Vec<_> = (0..usable - 1)
            .map(|_| g.share_page(DomId(0), Access::ReadWrite).unwrap())
            .collect();
        assert!(others.iter().all(|o| o.grant_ref() != gref));
        assert_eq!(
            g.share_page(DomId(0), Access::ReadWrite).unwrap_err(),
            SharePageError::Grant(GrantError::Exhausted)
        );
        // The back end lets go: the next grant reclaims the deferred one.
        xen.unmap_grant(gref);
        let again = g.share_page(DomId(0), Access::ReadWrite).unwrap();
        assert_eq!(again.grant_ref(), gref);
        assert_eq!(g.grant_stats().deferred, 0);
        drop(again);
        drop(others);
        assert_eq!(xen.pages_in_use(), base);
        assert_eq!(g.grant_stats().granted, 0);
    }

    #[test]
    fn in_use_bits_set_by_xen_block_end() {
        let xen = MockXen::new();
        let g = xen.guest();
        let r = g
            .grant_access(DomId(4), Gfn(0x42), Access::ReadWrite)
            .unwrap();
        xen.entry(r).flags.fetch_or(GTF_WRITING, Ordering::SeqCst);
        assert_eq!(g.end_access(r), Err(EndAccessError::InUse(r)));
        xen.entry(r).flags.fetch_and(!GTF_WRITING, Ordering::SeqCst);
        xen.entry(r).flags.fetch_or(GTF_READING, Ordering::SeqCst);
        assert_eq!(g.end_access(r), Err(EndAccessError::InUse(r)));
        xen.entry(r).flags.fetch_and(!GTF_READING, Ordering::SeqCst);
        assert_eq!(g.end_access(r), Ok(()));
    }

    #[test]
    fn toolstack_rings() {
        let xen = MockXen::new();
        let g = xen.guest();
        let mem = g.xenstore_mem().unwrap();
        assert_eq!(mem.len(), crate::hypervisor::PAGE_SIZE);
        mem.write(0, &[1, 2, 3]);
        let mut b = [0u8; 3];
        g.xenstore_mem().unwrap().read(0, &mut b);
        assert_eq!(b, [1, 2, 3]);
        assert_eq!(g.console_mem().unwrap_err(), XenError::ENOENT);
        assert_eq!(
            g.console_channel().unwrap_err(),
            DeviceRingError::Hypervisor(XenError::ENOENT)
        );
        let a = g.xenstore_channel().unwrap();
        assert_eq!(a.port(), crate::hypervisor::Port(1));
        assert!(g.clone().ptr_eq(&g));
    }
}
