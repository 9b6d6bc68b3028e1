//! Heap pages standing in for machine frames: 4 KiB, page-aligned, zeroed.
//!
//! A guest reaches its frames through raw pointers ([`crate::page::SharedMem`]
//! over the address [`Frame::ptr`] gives it); the sim and its backends reach
//! them through [`Frame::mem`], the same volatile/atomic view. No Rust
//! reference to a frame's bytes is ever made, only to atomics inside it, so
//! the guest and the sim may both access a frame at any time.

use alloc::boxed::Box;
use core::ptr::NonNull;
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};

use crate::abi::console::XenconsInterface;
use crate::abi::shared_info::SharedInfo;
use crate::abi::xs_wire::XenstoreDomainInterface;
use crate::hypervisor::{Gfn, Page, PAGE_SIZE};
use crate::page::SharedMem;

/// One page of simulated RAM, freed when the last owner drops it.
///
/// Like a page in Xen, a frame stays alive while anything maps it: the
/// domain's allocator and each backend mapping hold an `Rc<Frame>`.
#[derive(Debug)]
pub struct Frame {
    ptr: NonNull<u8>,
}

fn layout() -> Layout {
    // PAGE_SIZE is a non-zero power of two, so this cannot fail.
    Layout::from_size_align(PAGE_SIZE, PAGE_SIZE).expect("page layout")
}

impl Frame {
    /// A new zeroed page.
    pub fn new_zeroed() -> Frame {
        let layout = layout();
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        Frame { ptr }
    }

    /// A new zeroed frame for a guest's RAM, with the guest's [`Page`] token
    /// for it as frame `gfn`.
    ///
    /// The caller (the domain's allocator) MUST keep the `Rc` in the
    /// domain's page table until the token comes back through `free_page`.
    pub(crate) fn new_guest_page(gfn: Gfn) -> (alloc::rc::Rc<Frame>, Page) {
        let frame = alloc::rc::Rc::new(Frame::new_zeroed());
        // SAFETY: the frame is new, PAGE_SIZE bytes, page-aligned and zeroed,
        // so this is the only token for it; the allocator keeps `frame` alive
        // until the token is freed (this fn's contract).
        let page = unsafe { Page::new_unchecked(frame.ptr, gfn) };
        (frame, page)
    }

    /// The page's address, for the guest that owns it.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The page as shared memory, valid while `self` lives.
    pub fn mem(&self) -> SharedMem<'_> {
        // SAFETY: the allocation is PAGE_SIZE bytes, readable and writable,
        // and lives until `self` drops, which the borrow outlives; no Rust
        // reference to its bytes exists (module doc): every access, the
        // guest's and the sim's, is volatile or atomic.
        unsafe { SharedMem::new(self.ptr, PAGE_SIZE) }
    }

    /// The page viewed as the PV console ring.
    pub fn console_iface(&self) -> &XenconsInterface {
        const _: () = assert!(core::mem::size_of::<XenconsInterface>() <= PAGE_SIZE);
        // SAFETY: the struct fits in the page (checked above), the page is
        // page-aligned (more than the struct's 4-byte alignment) and lives as
        // long as `&self`; the struct is `#[repr(C)]` and made only of
        // atomics, so every byte pattern is valid and the guest's concurrent
        // writes are atomic accesses of the same memory.
        unsafe { &*self.ptr.as_ptr().cast::<XenconsInterface>() }
    }

    /// The page viewed as the xenstore ring.
    pub fn xenstore_iface(&self) -> &XenstoreDomainInterface {
        const _: () = assert!(core::mem::size_of::<XenstoreDomainInterface>() <= PAGE_SIZE);
        // SAFETY: as in `console_iface`: fits, aligned, alive for `&self`,
        // `#[repr(C)]` of atomics only.
        unsafe { &*self.ptr.as_ptr().cast::<XenstoreDomainInterface>() }
    }
}

/// A shared-info page with every byte zero (no port pending or masked).
pub(crate) fn zeroed_shared_info() -> Box<SharedInfo> {
    let b = Box::<SharedInfo>::new_zeroed();
    // SAFETY: `SharedInfo` is `#[repr(C)]` and made only of atomic integers
    // (and arrays and structs of them), for which all-zero bytes are a valid
    // value.
    unsafe { b.assume_init() }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this layout and is freed
        // only here, once.
        unsafe { dealloc(self.ptr.as_ptr(), layout()) };
    }
}

#[cfg(test)]
mod test {
    use core::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn new_page_is_zeroed_and_aligned() {
        let f = Frame::new_zeroed();
        assert_eq!(f.ptr().as_ptr() as usize % PAGE_SIZE, 0);
        let mut buf = [0xffu8; PAGE_SIZE];
        f.mem().read(0, &mut buf);
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn byte_view_and_ring_views_share_the_page() {
        let f = Frame::new_zeroed();
        f.mem().write(3080, &7u32.to_le_bytes());
        assert_eq!(f.console_iface().out_cons.load(Ordering::SeqCst), 7);
        f.xenstore_iface()
            .req_prod
            .store(0x0403_0201, Ordering::SeqCst);
        let mut buf = [0u8; 4];
        f.mem().read(2052, &mut buf);
        assert_eq!(buf, [1, 2, 3, 4]);
    }

    #[test]
    fn zeroed_shared_info_has_nothing_pending() {
        let si = zeroed_shared_info();
        assert!(si
            .evtchn_pending
            .iter()
            .all(|w| w.load(Ordering::SeqCst) == 0));
        assert!(si.evtchn_mask.iter().all(|w| w.load(Ordering::SeqCst) == 0));
        assert_eq!(
            si.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst),
            0
        );
    }
}
