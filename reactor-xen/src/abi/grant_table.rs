//! Grant-table v1 entries (xen/grant_table.h).

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU16, AtomicU32};

/// `GTF_permit_access`: the grantee may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`: the grantee may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by Xen while the grantee has the frame mapped/copies from it.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by Xen while the grantee has the frame mapped writable.
pub const GTF_WRITING: u16 = 1 << 4;

/// One v1 grant entry, `struct grant_entry_v1` (xen/grant_table.h).
///
/// The granting guest writes `domid` and `frame`, then (after a write
/// barrier) `flags`. Xen sets `GTF_reading`/`GTF_writing` in `flags` while
/// the grantee uses the frame.
#[doc(alias = "grant_entry_v1")]
#[repr(C)]
#[derive(Debug)]
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
};
