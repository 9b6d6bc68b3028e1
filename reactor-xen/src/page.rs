//! Guest memory shared with other domains: [`SharedMem`], a view of shared
//! bytes that is only ever read and written with volatile or atomic
//! operations, [`Page`], the unforgeable token for a page the hypervisor
//! allocated, and [`OwnedPage`], a page from the hypervisor's allocator that
//! goes back to it when dropped.
//!
//! This is the one low-level module of the shared core that uses `unsafe`:
//! everything above it (grants, rings, event channels, xenstore, drivers)
//! reaches shared memory through [`SharedMem`]'s safe methods.
#![allow(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8};

use crate::abi::grant_table::GrantEntryV1;
use crate::abi::ring::SringHeader;
use crate::abi::shared_info::{SharedInfo, VcpuInfo};
use crate::guest::Guest;
use crate::hypervisor::{Gfn, PAGE_SIZE};

/// Types that may be viewed in place in memory another domain writes.
///
/// # Safety
///
/// An implementor MUST be `#[repr(C)]` and made only of atomics (and arrays
/// and structs of them), so that every bit pattern is a valid value and
/// concurrent writes by another domain are atomic writes, not data races.
pub unsafe trait SharedLayout: Sized {}

// SAFETY: `#[repr(C)]`, only `AtomicU32`/`AtomicU8` fields.
unsafe impl SharedLayout for SringHeader {}
// SAFETY: `#[repr(C)]`, only `AtomicU16`/`AtomicU32` fields.
unsafe impl SharedLayout for GrantEntryV1 {}
// SAFETY: `#[repr(C)]`, only atomics and arrays/structs of atomics.
unsafe impl SharedLayout for SharedInfo {}
// SAFETY: `#[repr(C)]`, only atomics and arrays/structs of atomics.
unsafe impl SharedLayout for VcpuInfo {}
// SAFETY: an atomic.
unsafe impl SharedLayout for AtomicU8 {}
// SAFETY: an atomic.
unsafe impl SharedLayout for AtomicU16 {}
// SAFETY: an atomic.
unsafe impl SharedLayout for AtomicU32 {}
// SAFETY: an atomic.
unsafe impl SharedLayout for AtomicU64 {}

/// A view of `len` bytes of memory shared with another domain (a ring page, a
/// granted buffer), valid for `'a`.
///
/// Every access is volatile (byte copies) or atomic (indices, flags), so the
/// other side writing concurrently is not undefined behaviour; what it writes
/// is still untrusted: copy it out once, then validate the copy.
///
/// Offsets and lengths are the caller's arithmetic, not input: an access out
/// of bounds is a bug and panics. Validate offsets that come from another
/// domain before using them (see [`SharedMem::get`]).
#[derive(Clone, Copy)]
pub struct SharedMem<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _life: PhantomData<&'a [AtomicU8]>,
}

impl fmt::Debug for SharedMem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMem")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

impl<'a> SharedMem<'a> {
    /// A view of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// For all of `'a`, `ptr..ptr + len` MUST be valid for reads and writes,
    /// and no Rust reference (`&[u8]`, `&mut [u8]`, ...) to those bytes may
    /// exist in this domain other than ones made by `SharedMem` itself (all
    /// other accesses in this domain are volatile or atomic too).
    pub unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        SharedMem {
            ptr,
            len,
            _life: PhantomData,
        }
    }

    /// Bytes in the view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte's address (for a hypervisor implementation that maps
    /// or copies the memory; never dereference it outside this module).
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The sub-view `offset..offset + len`, or `None` if it does not fit:
    /// the checked way to use offsets and lengths another domain sent.
    pub fn get(&self, offset: usize, len: usize) -> Option<SharedMem<'a>> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset <= end <= self.len`, so the pointer stays inside
        // (or one past) the region `new`'s contract covers.
        let ptr = unsafe { self.ptr.add(offset) };
        Some(SharedMem {
            ptr,
            len,
            _life: PhantomData,
        })
    }

    fn check(&self, offset: usize, len: usize) {
        let end = offset.checked_add(len);
        assert!(
            end.is_some_and(|e| e <= self.len),
            "shared memory access {offset}+{len} out of bounds ({})",
            self.len
        );
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` (volatile reads).
    ///
    /// # Panics
    /// If `offset + buf.len()` exceeds the view.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.check(offset, buf.len());
        // SAFETY: in bounds (checked above), so `src` is valid for
        // `buf.len()` bytes of reads per `new`'s contract.
        let src = unsafe { self.ptr.as_ptr().add(offset) };
        let mut i = 0;
        while i < buf.len() && !(src as usize + i).is_multiple_of(8) {
            // SAFETY: `i < buf.len()`, in bounds; a byte needs no alignment.
            buf[i] = unsafe { src.add(i).read_volatile() };
            i += 1;
        }
        while i + 8 <= buf.len() {
            // SAFETY: `src + i` is 8-aligned (loop above) and `i + 8` is in
            // bounds.
            let w = unsafe { src.add(i).cast::<u64>().read_volatile() };
            buf[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            i += 8;
        }
        while i < buf.len() {
            // SAFETY: `i < buf.len()`, in bounds.
            buf[i] = unsafe { src.add(i).read_volatile() };
            i += 1;
        }
    }

    /// Copies `data` to `offset` (volatile writes).
    ///
    /// # Panics
    /// If `offset + data.len()` exceeds the view.
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len());
        // SAFETY: in bounds (checked above), valid for writes per `new`.
        let dst = unsafe { self.ptr.as_ptr().add(offset) };
        let mut i = 0;
        while i < data.len() && !(dst as usize + i).is_multiple_of(8) {
            // SAFETY: `i < data.len()`, in bounds.
            unsafe { dst.add(i).write_volatile(data[i]) };
            i += 1;
        }
        while i + 8 <= data.len() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[i..i + 8]);
            // SAFETY: `dst + i` is 8-aligned and `i + 8` is in bounds.
            unsafe {
                dst.add(i)
                    .cast::<u64>()
                    .write_volatile(u64::from_ne_bytes(w))
            };
            i += 8;
        }
        while i < data.len() {
            // SAFETY: `i < data.len()`, in bounds.
            unsafe { dst.add(i).write_volatile(data[i]) };
            i += 1;
        }
    }

    /// Sets `len` bytes at `offset` to `byte` (volatile writes).
    ///
    /// # Panics
    /// If `offset + len` exceeds the view.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.check(offset, len);
        for i in 0..len {
            // SAFETY: `offset + i < offset + len <= self.len`.
            unsafe { self.ptr.as_ptr().add(offset + i).write_volatile(byte) };
        }
    }

    /// A `T` in place at `offset`, for types made of atomics (ring headers,
    /// index words, grant entries).
    ///
    /// # Panics
    /// If `T` does not fit at `offset` or `offset` is not aligned for `T`.
    pub fn view<T: SharedLayout>(&self, offset: usize) -> &'a T {
        self.check(offset, size_of::<T>());
        // SAFETY: in bounds (checked above).
        let p = unsafe { self.ptr.as_ptr().add(offset) };
        assert!(
            (p as usize).is_multiple_of(align_of::<T>()),
            "shared memory view at {offset} is misaligned"
        );
        // SAFETY: in bounds and aligned for `T` (checked); `T: SharedLayout`
        // makes any bit pattern valid and concurrent writes atomic; the bytes
        // stay valid for `'a` per `new`'s contract.
        unsafe { &*p.cast::<T>() }
    }

    /// The `AtomicU32` at `offset` (a ring index).
    ///
    /// # Panics
    /// If out of bounds or not 4-aligned.
    pub fn atomic_u32(&self, offset: usize) -> &'a AtomicU32 {
        self.view(offset)
    }

    /// The `AtomicU16` at `offset`.
    ///
    /// # Panics
    /// If out of bounds or not 2-aligned.
    pub fn atomic_u16(&self, offset: usize) -> &'a AtomicU16 {
        self.view(offset)
    }

    /// The `AtomicU8` at `offset`.
    ///
    /// # Panics
    /// If out of bounds.
    pub fn atomic_u8(&self, offset: usize) -> &'a AtomicU8 {
        self.view(offset)
    }

    /// A view of a page the hypervisor set up for the whole life of the
    /// implementation (xenstore, console: [`crate::hypervisor::RingPage`]),
    /// borrowed from the guest that keeps the implementation alive.
    pub(crate) fn hypervisor_page(_owner: &'a Guest, ptr: NonNull<u8>) -> SharedMem<'a> {
        // SAFETY: the `Hypervisor` contract: `xenstore_ring`/`console_ring`
        // pages are mapped, PAGE_SIZE bytes, for as long as the
        // implementation lives, and are only accessed with volatile or atomic
        // operations; `_owner` holds the implementation alive for `'a`.
        unsafe { SharedMem::new(ptr, PAGE_SIZE) }
    }
}

/// A 4 KiB page of guest memory that may be granted to another domain: a
/// token for one page that [`Hypervisor::alloc_page`](crate::hypervisor::Hypervisor::alloc_page) handed out.
///
/// Its fields are private and it is neither `Clone` nor `Copy`, so holding a
/// `Page` proves the page is allocated and that nobody else can free it: this
/// is what makes the safe [`Hypervisor::free_page`](crate::hypervisor::Hypervisor::free_page) sound (a forged `Page`
/// could free memory another owner still uses). Only a hypervisor
/// implementation makes one, with [`Page::new_unchecked`].
///
/// ```compile_fail
/// use core::ptr::NonNull;
/// use ringlet_xen::hypervisor::{Gfn, Page};
/// // Safe code cannot make a `Page` for memory it does not own.
/// let forged = Page { ptr: NonNull::dangling(), gfn: Gfn(0) };
/// ```
#[derive(Debug)]
pub struct Page {
    ptr: NonNull<u8>,
    gfn: Gfn,
}

impl Page {
    /// The token for the page mapped at `ptr` with frame number `gfn`.
    ///
    /// # Safety
    ///
    /// For use by [`Hypervisor`](crate::hypervisor::Hypervisor) implementations in `alloc_page` only. The
    /// caller MUST guarantee that `ptr..ptr + PAGE_SIZE` is a page its
    /// allocator has just handed out (mapped, `PAGE_SIZE`-aligned, zeroed),
    /// that `gfn` is that page's frame number, and that no other `Page` for it
    /// exists until this one is passed to the same implementation's
    /// `free_page`.
    pub unsafe fn new_unchecked(ptr: NonNull<u8>, gfn: Gfn) -> Page {
        Page { ptr, gfn }
    }

    /// Where the page is mapped in the guest (never dereference it outside a
    /// [`crate::page::SharedMem`]).
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Its guest frame number, as written into a grant entry.
    pub fn gfn(&self) -> Gfn {
        self.gfn
    }
}

/// A page from the hypervisor's page allocator, owned by the guest: returned
/// to the allocator when dropped. Pages are granted to a backend through
/// [`crate::grant::GrantedPage`], which keeps the page until the grant ends.
pub struct OwnedPage {
    page: Option<Page>,
    guest: Guest,
}

impl fmt::Debug for OwnedPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPage")
            .field("page", &self.page)
            .finish()
    }
}

impl OwnedPage {
    pub(crate) fn from_page(guest: Guest, page: Page) -> OwnedPage {
        OwnedPage {
            page: Some(page),
            guest,
        }
    }

    fn page(&self) -> &Page {
        self.page
            .as_ref()
            .expect("OwnedPage holds its page until drop")
    }

    /// The page's guest frame number.
    pub fn gfn(&self) -> Gfn {
        self.page().gfn()
    }

    /// The guest this page belongs to.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// The page's bytes, for volatile/atomic access.
    pub fn mem(&self) -> SharedMem<'_> {
        // SAFETY: the `Hypervisor` contract: a page from `alloc_page` is
        // mapped at `ptr`, PAGE_SIZE bytes, until `free_page`, which only our
        // `Drop` calls (after the borrow of `self` ends) since we hold the one
        // `Page` token for it (unforgeable, not Clone), and is only accessed
        // with volatile or atomic operations.
        unsafe { SharedMem::new(self.page().ptr(), PAGE_SIZE) }
    }

    /// Gives up ownership without freeing: the page is leaked on purpose
    /// (used when a grant of it cannot be ended).
    pub(crate) fn into_page(mut self) -> Page {
        self.page
            .take()
            .expect("OwnedPage holds its page until drop")
    }
}

impl Drop for OwnedPage {
    fn drop(&mut self) {
        if let Some(page) = self.page.take() {
            self.guest.hypervisor().free_page(page);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec;
    use core::sync::atomic::Ordering;

    fn with_buf<R>(len: usize, f: impl FnOnce(SharedMem<'_>) -> R) -> R {
        let mut backing: Box<[u64]> = vec![0u64; len.div_ceil(8) + 1].into_boxed_slice();
        let ptr = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives the view (dropped after `f`), and is only
        // accessed through it while `f` runs.
        let mem = unsafe { SharedMem::new(ptr, len) };
        let r = f(mem);
        drop(backing);
        r
    }

    #[test]
    fn read_write_roundtrip_at_every_alignment() {
        with_buf(64, |mem| {
            for off in 0..9 {
                for len in 0..=40 {
                    let data: alloc::vec::Vec<u8> = (0..len).map(|i| (i * 7 + off) as u8).collect();
                    mem.fill(0, 64, 0xee);
                    mem.write(off, &data);
                    let mut out = vec![0u8; len];
                    mem.read(off, &mut out);
                    assert_eq!(out, data, "off {off} len {len}");
                    let mut before = [0u8; 1];
                    if off > 0 {
                        mem.read(off - 1, &mut before);
                        assert_eq!(before[0], 0xee);
                    }
                    if off + len < 64 {
                        mem.read(off + len, &mut before);
                        assert_eq!(before[0], 0xee);
                    }
                }
            }
        });
    }

    #[test]
    fn get_checks_bounds() {
        with_buf(16, |mem| {
            assert!(mem.get(0, 16).is_some());
            assert!(mem.get(8, 8).is_some());
            assert!(mem.get(9, 8).is_none());
            assert!(mem.get(usize::MAX, 2).is_none());
            let sub = mem.get(4, 4).unwrap();
            sub.write(0, &[1, 2, 3, 4]);
            let mut b = [0u8; 8];
            mem.read(0, &mut b);
            assert_eq!(b, [0, 0, 0, 0, 1, 2, 3, 4]);
        });
    }

    #[test]
    fn atomics_alias_bytes() {
        with_buf(16, |mem| {
            mem.atomic_u32(4).store(0x0403_0201, Ordering::Relaxed);
            let mut b = [0u8; 4];
            mem.read(4, &mut b);
            assert_eq!(b, [1, 2, 3, 4]);
        });
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn read_out_of_bounds_panics() {
        with_buf(16, |mem| mem.read(10, &mut [0u8; 8]));
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_atomic_panics() {
        with_buf(16, |mem| {
            mem.atomic_u32(2);
        });
    }
}
