//! The kernel heap (`#[global_allocator]`) and the pages shared with
//! backends.
//!
//! The heap is [`talc`] over the regions [`super::layout::usable`] leaves of
//! the start info's RAM. Pages for backends come from the same heap with
//! 4 KiB size and alignment, zeroed; identity mapping makes a page's address
//! its guest-physical address, so its frame number is `address >> 12`.
//! Allocation happens only in the executor's context: interrupt handlers
//! never allocate, so the spin lock is never contended on the single vCPU.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use talc::source::Manual;
use talc::TalcLock;

use super::layout::Region;
use crate::hypervisor::{Gfn, OutOfPages, Page, PAGE_SIZE};

/// The most pages that may be shared with backends at once: a bound on what
/// drivers can pin (rings plus buffers), far below the heap of a 64 MiB guest.
pub const SHARED_PAGES_MAX: usize = 4096;

#[global_allocator]
static HEAP: CountingHeap = CountingHeap {
    talc: TalcLock::new(Manual),
    in_use: AtomicUsize::new(0),
};

/// talc with a count of the bytes handed out, so that appliances can size
/// caches from what is free ([`heap_free_bytes`]) without probing.
struct CountingHeap {
    talc: TalcLock<spinning_top::RawSpinlock, Manual>,
    in_use: AtomicUsize,
}

impl CountingHeap {
    /// Adds `add` and takes `sub` from the count. A plain load and store,
    /// not a locked read-modify-write (about 20 ns each, on every
    /// allocation): allocation happens on the one vCPU, never in an
    /// interrupt handler (module doc), so nothing runs between the two.
    fn count(&self, add: usize, sub: usize) {
        let n = self.in_use.load(Ordering::Relaxed);
        self.in_use.store(n + add - sub, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to talc's `GlobalAlloc` with the caller's
// arguments unchanged and only adds bookkeeping on a plain counter, so it
// keeps talc's guarantees.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded (the caller upholds `alloc`'s contract).
        let p = unsafe { self.talc.alloc(layout) };
        if !p.is_null() {
            self.count(layout.size(), 0);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { self.talc.alloc_zeroed(layout) };
        if !p.is_null() {
            self.count(layout.size(), 0);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { self.talc.dealloc(ptr, layout) };
        self.count(0, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { self.talc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.count(new_size, layout.size());
        }
        p
    }
}

static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);
static SHARED_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Hands `regions` to the heap; returns the bytes claimed.
///
/// # Safety
///
/// Call once during boot. Every region must be identity-mapped RAM that
/// nothing else uses, now or later (not the image, not the start info, not a
/// page Xen maps over).
pub(crate) unsafe fn init(regions: &[Region]) -> u64 {
    let mut talc = HEAP.talc.lock();
    let mut total = 0;
    for region in regions {
        // SAFETY: the caller guarantees the region is unused, mapped RAM that
        // stays reserved for the heap for the rest of the guest's life.
        let claimed = unsafe { talc.claim(region.start as *mut u8, region.len() as usize) };
        if claimed.is_some() {
            total += region.len();
        }
    }
    HEAP_BYTES.store(total, Ordering::Relaxed);
    total
}

/// Bytes handed to the heap at boot.
pub fn heap_bytes() -> u64 {
    HEAP_BYTES.load(Ordering::Relaxed)
}

/// Heap bytes not handed out now (the heap's size less what is allocated;
/// allocator overhead and fragmentation make the largest single block
/// smaller).
pub fn heap_free_bytes() -> u64 {
    heap_bytes().saturating_sub(HEAP.in_use.load(Ordering::Relaxed) as u64)
}

/// Pages currently shared with backends (allocated and not freed).
pub fn shared_pages() -> usize {
    SHARED_PAGES.load(Ordering::Relaxed)
}

const PAGE_LAYOUT: Layout = match Layout::from_size_align(PAGE_SIZE, PAGE_SIZE) {
    Ok(layout) => layout,
    Err(_) => panic!("page layout"),
};

/// A zeroed, page-aligned page from the heap.
///
/// # Errors
///
/// [`OutOfPages`] when [`SHARED_PAGES_MAX`] pages are out or the heap is full.
pub(crate) fn alloc_page() -> Result<Page, OutOfPages> {
    if SHARED_PAGES.fetch_add(1, Ordering::AcqRel) >= SHARED_PAGES_MAX {
        SHARED_PAGES.fetch_sub(1, Ordering::AcqRel);
        return Err(OutOfPages);
    }
    // SAFETY: PAGE_LAYOUT has a non-zero size.
    let ptr = unsafe { HEAP.alloc_zeroed(PAGE_LAYOUT) };
    let Some(ptr) = NonNull::new(ptr) else {
        SHARED_PAGES.fetch_sub(1, Ordering::AcqRel);
        return Err(OutOfPages);
    };
    let gfn = Gfn(ptr.as_ptr() as u64 / PAGE_SIZE as u64);
    // SAFETY: a fresh PAGE_LAYOUT allocation (page-aligned, zeroed) that
    // nothing else references; PVH's guest-physical addresses are identity
    // mapped, so its frame number is its address / PAGE_SIZE.
    Ok(unsafe { Page::new_unchecked(ptr, gfn) })
}

/// Returns a page from [`alloc_page`] to the heap.
///
/// # Safety
///
/// `page` must come from [`alloc_page`], and no grant of it may be active.
pub(crate) unsafe fn free_page(page: Page) {
    // SAFETY: the page was allocated with PAGE_LAYOUT by `alloc_page`
    // (caller), and no one else can reach it any more.
    unsafe { HEAP.dealloc(page.ptr().as_ptr(), PAGE_LAYOUT) };
    SHARED_PAGES.fetch_sub(1, Ordering::AcqRel);
}
