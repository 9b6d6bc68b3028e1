//! Grants on the software Xen: what a backend may map, and what the
//! granting guest sees while it is mapped.
#![cfg(feature = "sim")]

use std::sync::atomic::Ordering;

use ringlet_xen::abi::grant_table::{GTF_READING, GTF_WRITING};
use ringlet_xen::grant::{Access, EndAccessError};
use ringlet_xen::hypervisor::{DomId, GrantRef, Hypervisor, PAGE_SIZE};
use ringlet_xen::sim::{DomainConfig, GrantError, SimConfig, SimXen};

fn world() -> (
    SimXen,
    ringlet_xen::sim::SimDomain,
    ringlet_xen::sim::SimDomain,
) {
    let sim = SimXen::new(SimConfig::new(11).quiet());
    let guest = sim.create_domain(DomainConfig::new("guest"));
    let other = sim.create_domain(DomainConfig::new("other"));
    (sim, guest, other)
}

fn flags(d: &ringlet_xen::sim::SimDomain, gref: GrantRef) -> u16 {
    d.grant_entries()[gref.0 as usize]
        .flags
        .load(Ordering::SeqCst)
}

#[test]
fn backend_maps_and_sees_the_guests_bytes_both_ways() {
    let (sim, guest, _) = world();
    let g = sim.guest(guest.id());
    let page = g.share_page(DomId::DOM0, Access::ReadWrite).unwrap();
    page.mem().write(100, b"from the guest");
    let map = sim
        .dom0()
        .map_grant(guest.id(), page.grant_ref(), false)
        .unwrap();
    let mut buf = [0u8; 14];
    map.read(100, &mut buf);
    assert_eq!(&buf, b"from the guest");
    map.mem().write(200, b"from dom0");
    let mut back = [0u8; 9];
    page.mem().read(200, &mut back);
    assert_eq!(&back, b"from dom0");
}

#[test]
fn mapping_sets_in_use_flags_and_end_access_fails_until_unmapped() {
    let (sim, guest, _) = world();
    let g = sim.guest(guest.id());
    let gref = g.share_page(DomId::DOM0, Access::ReadWrite).map(|p| {
        let r = p.grant_ref();
        std::mem::forget(p);
        r
    });
    let gref = gref.unwrap();
    let dom0 = sim.dom0();
    let ro = dom0.map_grant(guest.id(), gref, true).unwrap();
    assert_eq!(
        flags(&guest, gref) & (GTF_READING | GTF_WRITING),
        GTF_READING
    );
    let rw = dom0.map_grant(guest.id(), gref, false).unwrap();
    assert_eq!(
        flags(&guest, gref) & (GTF_READING | GTF_WRITING),
        GTF_READING | GTF_WRITING
    );
    assert_eq!(g.end_access(gref), Err(EndAccessError::InUse(gref)));
    drop(rw);
    // A read-only mapping remains: still reading, no longer writing.
    assert_eq!(
        flags(&guest, gref) & (GTF_READING | GTF_WRITING),
        GTF_READING
    );
    assert_eq!(g.end_access(gref), Err(EndAccessError::InUse(gref)));
    drop(ro);
    assert_eq!(flags(&guest, gref) & (GTF_READING | GTF_WRITING), 0);
    g.end_access(gref).unwrap();
    // Ended: the backend can no longer map it.
    assert_eq!(
        dom0.map_grant(guest.id(), gref, true).unwrap_err(),
        GrantError::NotGranted
    );
}

#[test]
fn wrong_domain_readonly_revoked_and_bad_refs_are_refused() {
    let (sim, guest, other) = world();
    let g = sim.guest(guest.id());
    let rw = g.share_page(DomId::DOM0, Access::ReadWrite).unwrap();
    let ro = g.share_page(DomId::DOM0, Access::ReadOnly).unwrap();
    // Granted to dom0, mapped by another domain.
    assert_eq!(
        other
            .map_grant(guest.id(), rw.grant_ref(), true)
            .unwrap_err(),
        GrantError::WrongDomain
    );
    // Writable mapping of a read-only grant; a read-only one is fine.
    let dom0 = sim.dom0();
    assert_eq!(
        dom0.map_grant(guest.id(), ro.grant_ref(), false)
            .unwrap_err(),
        GrantError::ReadOnly
    );
    assert!(dom0.map_grant(guest.id(), ro.grant_ref(), true).is_ok());
    // Never granted, out of the table, unknown domain.
    assert_eq!(
        dom0.map_grant(guest.id(), GrantRef(300), true).unwrap_err(),
        GrantError::NotGranted
    );
    let n = guest.grant_entries().len() as u32;
    assert_eq!(
        dom0.map_grant(guest.id(), GrantRef(n), true).unwrap_err(),
        GrantError::BadRef
    );
    assert_eq!(
        dom0.map_grant(DomId(99), GrantRef(9), true).unwrap_err(),
        GrantError::NoSuchDomain
    );
    // Revoked: the guest ended the grant (the page is freed with it).
    let gref = rw.grant_ref();
    drop(rw);
    assert_eq!(
        dom0.map_grant(guest.id(), gref, true).unwrap_err(),
        GrantError::NotGranted
    );
    assert_eq!(g.grant_stats().deferred, 0);
}

#[test]
fn grant_copy_checks_like_map_and_bounds_the_range() {
    let (sim, guest, other) = world();
    let g = sim.guest(guest.id());
    let ro = g.share_page(DomId::DOM0, Access::ReadOnly).unwrap();
    ro.mem().write(0, b"copy me");
    let dom0 = sim.dom0();
    let mut buf = [0u8; 7];
    dom0.copy_from_grant(guest.id(), ro.grant_ref(), 0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"copy me");
    assert_eq!(
        dom0.copy_to_grant(guest.id(), ro.grant_ref(), 0, b"x"),
        Err(GrantError::ReadOnly)
    );
    assert_eq!(
        dom0.copy_from_grant(guest.id(), ro.grant_ref(), PAGE_SIZE - 3, &mut buf),
        Err(GrantError::BadCopyRange)
    );
    assert_eq!(
        other.copy_from_grant(guest.id(), ro.grant_ref(), 0, &mut buf),
        Err(GrantError::WrongDomain)
    );
    // A copy leaves no in-use flag behind.
    assert_eq!(
        flags(&guest, ro.grant_ref()) & (GTF_READING | GTF_WRITING),
        0
    );
}

#[test]
fn page_dropped_while_mapped_is_deferred_then_reclaimed() {
    let (sim, guest, _) = world();
    let g = sim.guest(guest.id());
    let page = g.share_page(DomId::DOM0, Access::ReadWrite).unwrap();
    let map = sim
        .dom0()
        .map_grant(guest.id(), page.grant_ref(), false)
        .unwrap();
    let before = guest.pages_allocated();
    drop(page);
    // In use: neither ended nor freed.
    assert_eq!(g.grant_stats().deferred, 1);
    assert_eq!(guest.pages_allocated(), before);
    // The backend's writes still land in a live page.
    map.mem().write(0, b"late");
    drop(map);
    assert_eq!(g.reclaim_grants(), 1);
    assert_eq!(guest.pages_allocated(), before - 1);
}

#[test]
fn toolstack_grants_of_console_and_store_pages_are_mappable_by_dom0() {
    let (sim, guest, _) = world();
    let dom0 = sim.dom0();
    use ringlet_xen::sim::domain::{GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE};
    let store = dom0
        .map_grant(guest.id(), GNTTAB_RESERVED_XENSTORE, false)
        .unwrap();
    let cons = dom0
        .map_grant(guest.id(), GNTTAB_RESERVED_CONSOLE, false)
        .unwrap();
    // They are the guest's own ring pages.
    store.mem().write(0, b"Q");
    cons.mem().write(0, b"C");
    let g = sim.guest(guest.id());
    let mut b = [0u8; 1];
    g.xenstore_mem().unwrap().read(0, &mut b);
    assert_eq!(&b, b"Q");
    g.console_mem().unwrap().read(0, &mut b);
    assert_eq!(&b, b"C");
}

#[test]
#[should_panic(expected = "still permits access")]
fn freeing_a_page_that_is_still_granted_is_a_guest_bug() {
    let (_sim, guest, _) = world();
    let page = guest.alloc_page().unwrap();
    let e = &guest.grant_entries()[20];
    e.frame.store(page.gfn().0 as u32, Ordering::SeqCst);
    e.flags.store(
        ringlet_xen::abi::grant_table::GTF_PERMIT_ACCESS,
        Ordering::SeqCst,
    );
    guest.free_page(page);
}

#[test]
fn page_allocator_is_bounded() {
    let sim = SimXen::new(SimConfig::new(2).quiet());
    let mut cfg = DomainConfig::new("tiny");
    cfg.pages_max = 3;
    let d = sim.create_domain(cfg);
    let pages: Vec<_> = (0..3).map(|_| d.alloc_page().unwrap()).collect();
    assert!(d.alloc_page().is_err());
    let gfn = pages[1].gfn();
    let mut it = pages.into_iter();
    let _a = it.next();
    d.free_page(it.next().unwrap());
    // The freed frame number is reused.
    assert_eq!(d.alloc_page().unwrap().gfn(), gfn);
}
