//! Grant-table v1 entries, flags and operations (xen/grant_table.h).
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU16, AtomicU32};

/// `GTF_invalid`: the entry grants nothing.
#[doc(alias = "GTF_invalid")]
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: the grantee may map or copy the frame.
#[doc(alias = "GTF_permit_access")]
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`: the grantee may transfer a page to us (unused).
#[doc(alias = "GTF_accept_transfer")]
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive`: a transitive grant (v2 only; unused).
#[doc(alias = "GTF_transitive")]
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`: the entry's type bits.
#[doc(alias = "GTF_type_mask")]
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: the grantee may only read.
#[doc(alias = "GTF_readonly")]
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by Xen while the grantee has the frame mapped/copies from it.
#[doc(alias = "GTF_reading")]
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by Xen while the grantee has the frame mapped writable.
#[doc(alias = "GTF_writing")]
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT`: map write-through (cache attribute).
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`: map uncached (cache attribute).
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`: PAT cache attribute bit.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page`: a sub-page grant (v2 only).
#[doc(alias = "GTF_sub_page")]
pub const GTF_SUB_PAGE: u16 = 1 << 8;

/// `GNTTAB_NR_RESERVED_ENTRIES`: refs `0..8` belong to the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`: the ref the toolstack uses for the console page.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the ref the toolstack uses for the xenstore page.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// v1 entries per 4 KiB grant-table frame.
pub const GRANT_ENTRIES_V1_PER_FRAME: usize = 4096 / size_of::<GrantEntryV1>();

/// `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`.
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTTABOP_setup_table`.
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_copy`.
pub const GNTTABOP_COPY: u32 = 5;
/// `GNTTABOP_query_size`: how many frames the table has and may have.
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `GNTTABOP_set_version`.
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// `GNTTABOP_get_version`.
pub const GNTTABOP_GET_VERSION: u32 = 10;

/// `GNTST_okay`: a grant operation's status on success.
#[doc(alias = "GNTST_okay")]
pub const GNTST_OKAY: i16 = 0;

/// One v1 grant entry, `struct grant_entry_v1` (xen/grant_table.h).
///
/// The granting guest writes `domid` and `frame`, then (after a write
/// barrier) `flags`. Xen sets `GTF_reading`/`GTF_writing` in `flags` while
/// the grantee uses the frame.
#[doc(alias = "grant_entry_v1")]
#[repr(C)]
#[derive(Debug, Default)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags.
    pub flags: AtomicU16,
    /// The domain being granted access.
    pub domid: AtomicU16,
    /// The guest frame number being granted.
    pub frame: AtomicU32,
}

const _: () = {
    assert!(size_of::<GrantEntryV1>() == 8);
    assert!(offset_of!(GrantEntryV1, flags) == 0);
    assert!(offset_of!(GrantEntryV1, domid) == 2);
    assert!(offset_of!(GrantEntryV1, frame) == 4);
    assert!(GRANT_ENTRIES_V1_PER_FRAME == 512);
};

/// `struct gnttab_query_size` (xen/grant_table.h): the argument of
/// `GNTTABOP_query_size`.
#[doc(alias = "gnttab_query_size")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// IN: the domain (`DOMID_SELF`).
    pub dom: u16,
    /// Explicit padding (implicit in C).
    pub _pad: u16,
    /// OUT: frames the table has now.
    pub nr_frames: u32,
    /// OUT: frames the table may grow to.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Explicit tail padding (implicit in C).
    pub _pad2: u16,
}

const _: () = {
    assert!(size_of::<GnttabQuerySize>() == 16);
    assert!(offset_of!(GnttabQuerySize, dom) == 0);
    assert!(offset_of!(GnttabQuerySize, nr_frames) == 4);
    assert!(offset_of!(GnttabQuerySize, max_nr_frames) == 8);
    assert!(offset_of!(GnttabQuerySize, status) == 12);
};

/// `struct gnttab_set_version` (xen/grant_table.h).
#[doc(alias = "gnttab_set_version")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN/OUT: the grant-table version (Ringlet uses 1).
    pub version: u32,
}

const _: () = {
    assert!(size_of::<GnttabSetVersion>() == 4);
    assert!(offset_of!(GnttabSetVersion, version) == 0);
};
