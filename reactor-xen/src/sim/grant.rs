//! The grant table as Xen enforces it on the mapping side: a backend maps
//! (or copies) a granted frame only if the grant entry allows it, and while
//! mapped the entry shows it in use.
//!
//! # Grant entry, as seen from the hypervisor
//!
//! ```text
//!                      guest: frame, domid, then flags = permit [| readonly]
//!   (not granted) ──────────────────────────────────────────────► granted
//!        ▲                                                          │  ▲
//!        │ guest end_access: cmpxchg flags → 0,                     │  │ last unmap (3):
//!        │ only while neither reading nor writing (4)               │  │ clear reading
//!        └──────────────────────────────────────────────────────────┘  │
//!                                   map (1): set reading [| writing] ──┤
//!                                   unmap of last writer (2): clear writing
//! ```
//!
//! The checks of transition 1, each refused with its own [`GrantError`]:
//! the ref is in the table; the entry's type is `GTF_permit_access` (not
//! never-granted, not ended); its domid is the mapper's; a writable mapping
//! needs a grant without `GTF_readonly`; the frame belongs to the granter.
//! Like Xen's active-entry table, the frame is looked up on the first
//! mapping and kept for as long as any mapping lives.

use alloc::rc::Rc;
use core::fmt;
use core::sync::atomic::{AtomicU16, Ordering};

use super::frame::Frame;
use super::trace::TraceEvent;
use super::world::State;
use super::World;
use crate::abi::grant_table::{
    GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING,
};
use crate::hypervisor::{DomId, GrantRef, PAGE_SIZE};
use crate::page::SharedMem;

/// Most grant mappings one domain may hold at once (Xen's maptrack limit).
pub const MAPS_PER_DOMAIN_MAX: usize = 8192;

/// Why a grant map or copy was refused (`GNTST_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantError {
    /// The granting domain does not exist (`GNTST_bad_domain`).
    NoSuchDomain,
    /// The ref is past the end of the granter's table (`GNTST_bad_gntref`).
    BadRef,
    /// The entry does not permit access: never granted, or ended/revoked
    /// (`GNTST_general_error`).
    NotGranted,
    /// The entry grants access to another domain (`GNTST_general_error`).
    WrongDomain,
    /// A writable mapping or copy of a read-only grant (`GNTST_general_error`).
    ReadOnly,
    /// The entry names a frame the granter does not own (`GNTST_bad_page`).
    BadFrame,
    /// The mapper holds [`MAPS_PER_DOMAIN_MAX`] mappings (`GNTST_no_device_space`).
    TooManyMappings,
    /// A copy range leaves the page (`GNTST_bad_copy_arg`).
    BadCopyRange,
}

impl GrantError {
    fn name(self) -> &'static str {
        match self {
            GrantError::NoSuchDomain => "no such domain",
            GrantError::BadRef => "grant ref out of range",
            GrantError::NotGranted => "entry does not permit access",
            GrantError::WrongDomain => "entry grants access to another domain",
            GrantError::ReadOnly => "read-only grant",
            GrantError::BadFrame => "frame not owned by the granter",
            GrantError::TooManyMappings => "too many mappings held",
            GrantError::BadCopyRange => "copy range leaves the page",
        }
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for GrantError {}

/// One of a domain's grants that is mapped now (Xen's `active_grant_entry`).
#[derive(Debug)]
pub(crate) struct ActiveGrant {
    pub(crate) frame: Rc<Frame>,
    pub(crate) gfn: u64,
    /// Every mapping (read-only or writable).
    pub(crate) pins: u32,
    /// Writable mappings.
    pub(crate) writers: u32,
}

impl State {
    /// Checks of transition 1 without changing anything; the frame to use.
    fn check_grant(
        &self,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<Rc<Frame>, GrantError> {
        let g = self.domains.get(&granter).ok_or(GrantError::NoSuchDomain)?;
        let entry = g
            .mem
            .grants
            .get(gref.0 as usize)
            .ok_or(GrantError::BadRef)?;
        let flags = entry.flags.load(Ordering::SeqCst);
        if flags & GTF_TYPE_MASK != GTF_PERMIT_ACCESS {
            return Err(GrantError::NotGranted);
        }
        if entry.domid.load(Ordering::SeqCst) != mapper.0 {
            return Err(GrantError::WrongDomain);
        }
        if !readonly && flags & GTF_READONLY != 0 {
            return Err(GrantError::ReadOnly);
        }
        if let Some(a) = g.active.get(&gref.0) {
            return Ok(a.frame.clone());
        }
        g.frame(u64::from(entry.frame.load(Ordering::SeqCst)))
            .ok_or(GrantError::BadFrame)
    }

    fn refuse(
        &mut self,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        e: GrantError,
    ) -> GrantError {
        self.record(TraceEvent::GrantRefused {
            mapper,
            granter,
            gref,
            why: e.name(),
        });
        e
    }

    /// Transition 1: checks, then sets the in-use flags and pins the frame.
    pub(crate) fn map_grant(
        &mut self,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<Rc<Frame>, GrantError> {
        let held = self.domains.get(&mapper).map_or(0, |d| d.maps_held);
        if held >= MAPS_PER_DOMAIN_MAX {
            return Err(self.refuse(mapper, granter, gref, GrantError::TooManyMappings));
        }
        let frame = match self.check_grant(mapper, granter, gref, readonly) {
            Ok(f) => f,
            Err(e) => return Err(self.refuse(mapper, granter, gref, e)),
        };
        let g = self.domains.get_mut(&granter).expect("checked");
        let entry = &g.mem.grants[gref.0 as usize];
        let set = GTF_READING | if readonly { 0 } else { GTF_WRITING };
        set_flags(&entry.flags, set);
        let gfn = u64::from(entry.frame.load(Ordering::SeqCst));
        let active = g.active.entry(gref.0).or_insert_with(|| ActiveGrant {
            frame: frame.clone(),
            gfn,
            pins: 0,
            writers: 0,
        });
        active.pins += 1;
        if !readonly {
            active.writers += 1;
        }
        if let Some(m) = self.domains.get_mut(&mapper) {
            m.maps_held += 1;
        }
        self.record(TraceEvent::GrantMap {
            mapper,
            granter,
            gref,
            readonly,
        });
        Ok(frame)
    }

    /// Transitions 2 and 3.
    pub(crate) fn unmap_grant(
        &mut self,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
    ) {
        if let Some(m) = self.domains.get_mut(&mapper) {
            m.maps_held -= 1;
        }
        let g = self
            .domains
            .get_mut(&granter)
            .expect("a mapped granter exists");
        let active = g
            .active
            .get_mut(&gref.0)
            .expect("a mapping has an active entry");
        let entry = &g.mem.grants[gref.0 as usize];
        assert!(active.pins > 0);
        active.pins -= 1;
        if !readonly {
            assert!(active.writers > 0);
            active.writers -= 1;
            if active.writers == 0 {
                clear_flags(&entry.flags, GTF_WRITING);
            }
        }
        if active.pins == 0 {
            clear_flags(&entry.flags, GTF_READING);
            g.active.remove(&gref.0);
        }
        self.record(TraceEvent::GrantUnmap {
            mapper,
            granter,
            gref,
        });
    }

    /// The checks of a `GNTTABOP_copy` on one side; the frame to copy with.
    /// The in-use flags are set and cleared within the operation, which the
    /// guest cannot observe in a single-threaded world.
    pub(crate) fn copy_access(
        &mut self,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
        offset: usize,
        len: usize,
    ) -> Result<Rc<Frame>, GrantError> {
        if offset > PAGE_SIZE || len > PAGE_SIZE - offset {
            return Err(self.refuse(mapper, granter, gref, GrantError::BadCopyRange));
        }
        match self.check_grant(mapper, granter, gref, readonly) {
            Ok(f) => Ok(f),
            Err(e) => Err(self.refuse(mapper, granter, gref, e)),
        }
    }
}

/// Sets `bits` in a grant entry's flags (Xen uses a cmpxchg loop, as the
/// guest may change the flags concurrently).
fn set_flags(flags: &AtomicU16, bits: u16) {
    let mut cur = flags.load(Ordering::SeqCst);
    while let Err(now) = flags.compare_exchange(cur, cur | bits, Ordering::SeqCst, Ordering::SeqCst)
    {
        cur = now;
    }
}

/// Clears `bits` in a grant entry's flags.
fn clear_flags(flags: &AtomicU16, bits: u16) {
    flags.fetch_and(!bits, Ordering::SeqCst);
}

/// A granted page mapped into a backend's domain; unmapped on drop.
///
/// Access goes through copies and atomics, never Rust references to the
/// bytes, because the granting guest writes the same page.
pub struct GrantMapping {
    world: Rc<World>,
    mapper: DomId,
    granter: DomId,
    gref: GrantRef,
    readonly: bool,
    frame: Rc<Frame>,
}

impl fmt::Debug for GrantMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantMapping")
            .field("mapper", &self.mapper)
            .field("granter", &self.granter)
            .field("gref", &self.gref)
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

impl GrantMapping {
    pub(crate) fn new(
        world: Rc<World>,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
        frame: Rc<Frame>,
    ) -> GrantMapping {
        GrantMapping {
            world,
            mapper,
            granter,
            gref,
            readonly,
            frame,
        }
    }

    /// The world the mapping lives in.
    pub fn sim(&self) -> super::SimXen {
        super::SimXen {
            world: self.world.clone(),
        }
    }

    /// The domain that granted the page.
    pub fn granter(&self) -> DomId {
        self.granter
    }

    /// The grant ref mapped.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// Whether the mapping is read-only.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// Copies `buf.len()` bytes at `offset` out of the page.
    ///
    /// # Panics
    ///
    /// If the range leaves the page.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.frame.mem().read(offset, buf);
    }

    /// The page as shared memory (volatile and atomic access), for
    /// writable mappings (rings, buffers the backend fills).
    ///
    /// # Panics
    ///
    /// If the mapping is read-only: on Xen a write through it would fault,
    /// so a backend must use [`read`](Self::read).
    pub fn mem(&self) -> SharedMem<'_> {
        assert!(
            !self.readonly,
            "a read-only grant mapping has no writable view"
        );
        self.frame.mem()
    }
}

impl Drop for GrantMapping {
    fn drop(&mut self) {
        self.world.state.borrow_mut().unmap_grant(
            self.mapper,
            self.granter,
            self.gref,
            self.readonly,
        );
    }
}
