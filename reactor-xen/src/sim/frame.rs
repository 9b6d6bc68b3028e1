//! Heap pages standing in for machine frames: 4 KiB, page-aligned, zeroed.
//!
//! A guest reaches its frames through raw pointers (as it would reach its
//! RAM); the sim and its backends reach them through the copying accessors
//! here. The world is single-threaded, so an access never overlaps another:
//! the guest and a backend take turns, exactly as if every access were atomic.
//! No Rust reference to the bytes is ever handed out, only to single aligned
//! `AtomicU32`s (the ring indices), whose interior mutability makes shared
//! references sound while the guest writes the same words through pointers.

use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};

use crate::abi::console::XenconsInterface;
use crate::abi::shared_info::SharedInfo;
use crate::abi::xs_wire::XenstoreDomainInterface;
use crate::hypervisor::PAGE_SIZE;

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

    /// The page's address, for the guest that owns it.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    fn check(offset: usize, len: usize) {
        assert!(
            offset <= PAGE_SIZE && len <= PAGE_SIZE - offset,
            "access {offset}+{len} outside a {PAGE_SIZE}-byte page"
        );
    }

    /// Copies `buf.len()` bytes at `offset` out of the page.
    ///
    /// # Panics
    ///
    /// If the range leaves the page.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        Frame::check(offset, buf.len());
        // SAFETY: the range is inside the live page (checked above); `buf` is
        // a distinct Rust allocation, so they do not overlap; no other access
        // runs at the same time (one thread, see the module doc).
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), buf.as_mut_ptr(), buf.len());
        }
    }

    /// Copies `buf` into the page at `offset`.
    ///
    /// # Panics
    ///
    /// If the range leaves the page.
    pub fn write(&self, offset: usize, buf: &[u8]) {
        Frame::check(offset, buf.len());
        // SAFETY: as in `read`, with the copy going the other way; the page is
        // never borrowed as a Rust `&[u8]`, so writing through the pointer
        // invalidates no reference.
        unsafe {
            core::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.as_ptr().add(offset), buf.len());
        }
    }

    /// The aligned 32-bit word at `offset`, as an atomic (ring indices).
    ///
    /// # Panics
    ///
    /// If `offset` is not 4-byte aligned or the word leaves the page.
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        Frame::check(offset, 4);
        assert!(offset % 4 == 0, "unaligned 32-bit word at {offset}");
        // SAFETY: the word is inside the page, which lives as long as `&self`,
        // and is 4-byte aligned (the page is page-aligned); `AtomicU32` has
        // the size and alignment of `u32` and its interior mutability allows
        // the guest's concurrent writes through its raw pointer.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() }
    }
}

impl Frame {
    /// The page viewed as the PV console ring.
    pub fn console_iface(&self) -> &XenconsInterface {
        const _: () = assert!(core::mem::size_of::<XenconsInterface>() <= PAGE_SIZE);
        // SAFETY: the struct fits in the page (checked above), the page is
        // page-aligned (more than the struct's 4-byte alignment) and lives as
        // long as `&self`; the struct is `#[repr(C)]` and made only of
        // atomics, so every byte pattern is valid and the guest's concurrent
        // writes through its pointer are atomic accesses of the same memory.
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

/// A shared-info page with every byte zero.
pub(crate) fn zeroed_shared_info() -> alloc::boxed::Box<SharedInfo> {
    let b = alloc::boxed::Box::<SharedInfo>::new_zeroed();
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
    use std::prelude::rust_2021::*;
    use core::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn new_page_is_zeroed_and_aligned() {
        let f = Frame::new_zeroed();
        assert_eq!(f.ptr().as_ptr() as usize % PAGE_SIZE, 0);
        let mut buf = [0xffu8; PAGE_SIZE];
        f.read(0, &mut buf);
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn write_then_read_and_atomic_view_agree() {
        let f = Frame::new_zeroed();
        f.write(100, b"ring");
        let mut buf = [0u8; 4];
        f.read(100, &mut buf);
        assert_eq!(&buf, b"ring");
        f.atomic_u32(8).store(0x0403_0201, Ordering::SeqCst);
        f.read(8, &mut buf);
        assert_eq!(buf, [1, 2, 3, 4]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn access_past_the_page_panics() {
        let f = Frame::new_zeroed();
        f.write(PAGE_SIZE - 2, b"abc");
    }

    #[test]
    #[should_panic(expected = "unaligned")]
    fn unaligned_atomic_panics() {
        let f = Frame::new_zeroed();
        let _ = f.atomic_u32(2);
    }
}
