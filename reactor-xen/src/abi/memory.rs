//! Memory operations (xen/memory.h): mapping the shared-info page and the
//! grant-table frames into the guest's physical address space.
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_memory_map`: the guest's e820-style map.
pub const XENMEM_MEMORY_MAP: u32 = 9;

/// `XENMAPSPACE_shared_info`: map the shared-info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`: map a grant-table frame (`idx` = frame number).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn`: move a guest frame.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPIDX_grant_table_status`: or'ed into `idx` to map a v2 status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `struct xen_add_to_physmap`: the argument of `XENMEM_add_to_physmap`.
#[doc(alias = "xen_add_to_physmap")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// The domain whose physmap changes (`DOMID_SELF`).
    pub domid: u16,
    /// Pages to go through for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space (e.g. the grant-table frame number).
    pub idx: u64,
    /// The guest frame where the page should appear.
    pub gpfn: u64,
}

const _: () = {
    assert!(size_of::<XenAddToPhysmap>() == 24);
    assert!(offset_of!(XenAddToPhysmap, domid) == 0);
    assert!(offset_of!(XenAddToPhysmap, size) == 2);
    assert!(offset_of!(XenAddToPhysmap, space) == 4);
    assert!(offset_of!(XenAddToPhysmap, idx) == 8);
    assert!(offset_of!(XenAddToPhysmap, gpfn) == 16);
};
