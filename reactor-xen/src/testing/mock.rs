//! A minimal in-memory hypervisor for the shared core's unit tests: real
//! shared-info and grant-table memory, pages from the heap, a clock the test
//! moves, and a log of the hypercalls made. It models only what Xen itself
//! does to guest memory (setting pending/selector/upcall bits); it is not
//! the software Xen (`sim`).
#![allow(unsafe_code)]

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use crate::abi::grant_table::{
    GrantEntryV1, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING,
};
use crate::abi::shared_info::{SharedInfo, VcpuInfo, BITS_PER_EVENT_WORD};
use crate::guest::Guest;
use crate::hypervisor::{
    DomId, Gfn, GrantRef, Hypervisor, OutOfPages, Page, Port, RingPage, ShutdownReason, Virq,
    XenError, PAGE_SIZE,
};
use crate::page::SharedMem;

/// Grant entries of the mock's table (8 reserved + 24 usable).
pub(crate) const MOCK_GRANT_ENTRIES: usize = 32;
/// Pages the mock can hand out.
pub(crate) const MOCK_PAGES: usize = 64;
const GFN_BASE: u64 = 0x1000;

/// A hypercall the guest made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    AllocUnbound(DomId, Port),
    BindInterdomain(DomId, Port, Port),
    BindVirq(Virq, Port),
    Send(Port),
    Close(Port),
    Unmask(Port),
    Block(Option<u64>),
}

pub(crate) struct MockXen {
    shared: Box<SharedInfo>,
    grants: Box<[GrantEntryV1]>,
    pages: RefCell<Vec<Option<NonNull<u8>>>>,
    next_port: Cell<u32>,
    pub(crate) calls: RefCell<Vec<Call>>,
    pub(crate) now: Cell<u64>,
    /// Ports raised when the guest blocks, one per block call.
    pub(crate) on_block: RefCell<VecDeque<Port>>,
    /// Fail the next bind with this error.
    pub(crate) fail_next_bind: Cell<Option<XenError>>,
    /// Return this port number from the next bind.
    pub(crate) next_bind_port: Cell<Option<u32>>,
    xenstore: RingPage,
}

impl MockXen {
    pub(crate) fn new() -> Rc<MockXen> {
        let mut pages = Vec::with_capacity(MOCK_PAGES);
        pages.resize(MOCK_PAGES, None);
        let xs = alloc_into(&mut pages).expect("a page for xenstore");
        Rc::new(MockXen {
            shared: Box::new(SharedInfo::default()),
            grants: (0..MOCK_GRANT_ENTRIES)
                .map(|_| GrantEntryV1::default())
                .collect(),
            pages: RefCell::new(pages),
            next_port: Cell::new(10),
            calls: RefCell::new(Vec::new()),
            now: Cell::new(0),
            on_block: RefCell::new(VecDeque::new()),
            fail_next_bind: Cell::new(None),
            next_bind_port: Cell::new(None),
            xenstore: RingPage {
                page: xs.ptr(),
                port: Port(1),
            },
        })
    }

    pub(crate) fn guest(self: &Rc<Self>) -> Guest {
        Guest::new(self.clone())
    }

    /// What Xen does to send an event to this guest (`evtchn_2l_set_pending`).
    pub(crate) fn raise(&self, port: Port) {
        let p = port.0 as usize;
        let (w, bit) = (p / BITS_PER_EVENT_WORD, 1u64 << (p % BITS_PER_EVENT_WORD));
        let was = self.shared.evtchn_pending[w].fetch_or(bit, Ordering::SeqCst);
        if was & bit != 0 {
            return;
        }
        if self.shared.evtchn_mask[w].load(Ordering::SeqCst) & bit != 0 {
            return;
        }
        let v = &self.shared.vcpu_info[0];
        v.evtchn_pending_sel.fetch_or(1 << w, Ordering::SeqCst);
        v.evtchn_upcall_pending.store(1, Ordering::SeqCst);
    }

    pub(crate) fn shared(&self) -> &SharedInfo {
        &self.shared
    }

    pub(crate) fn entry(&self, r: GrantRef) -> &GrantEntryV1 {
        &self.grants[r.0 as usize]
    }

    /// What a back end gets from `GNTTABOP_map_grant_ref`: checks the entry
    /// as Xen does and marks it in use.
    pub(crate) fn map_grant(&self, r: GrantRef, by: DomId, write: bool) -> Option<SharedMem<'_>> {
        let e = self.grants.get(r.0 as usize)?;
        let flags = e.flags.load(Ordering::SeqCst);
        if flags & GTF_PERMIT_ACCESS == 0 || e.domid.load(Ordering::SeqCst) != by.0 {
            return None;
        }
        if write && flags & GTF_READONLY != 0 {
            return None;
        }
        let set = if write {
            GTF_READING | GTF_WRITING
        } else {
            GTF_READING
        };
        e.flags
            .compare_exchange(flags, flags | set, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        let gfn = u64::from(e.frame.load(Ordering::SeqCst));
        self.page_mem(Gfn(gfn))
    }

    pub(crate) fn unmap_grant(&self, r: GrantRef) {
        self.grants[r.0 as usize]
            .flags
            .fetch_and(!(GTF_READING | GTF_WRITING), Ordering::SeqCst);
    }

    pub(crate) fn page_mem(&self, gfn: Gfn) -> Option<SharedMem<'_>> {
        let i = usize::try_from(gfn.0.checked_sub(GFN_BASE)?).ok()?;
        let ptr = (*self.pages.borrow().get(i)?)?;
        // SAFETY: the page stays allocated until `free_page` or drop of the
        // mock; tests only use the view while the page is allocated, through
        // volatile/atomic accesses.
        Some(unsafe { SharedMem::new(ptr, PAGE_SIZE) })
    }

    pub(crate) fn pages_in_use(&self) -> usize {
        self.pages.borrow().iter().filter(|p| p.is_some()).count()
    }

    fn bind(&self) -> Result<Port, XenError> {
        if let Some(e) = self.fail_next_bind.take() {
            return Err(e);
        }
        if let Some(p) = self.next_bind_port.take() {
            return Ok(Port(p));
        }
        let p = self.next_port.get();
        self.next_port.set(p + 1);
        Ok(Port(p))
    }

    fn layout() -> Layout {
        page_layout()
    }
}

fn page_layout() -> Layout {
    Layout::from_size_align(PAGE_SIZE, PAGE_SIZE).expect("page layout")
}

fn alloc_into(pages: &mut [Option<NonNull<u8>>]) -> Result<Page, OutOfPages> {
    let i = pages.iter().position(Option::is_none).ok_or(OutOfPages)?;
    // SAFETY: the layout has a non-zero size.
    let ptr = NonNull::new(unsafe { alloc_zeroed(page_layout()) }).ok_or(OutOfPages)?;
    pages[i] = Some(ptr);
    // SAFETY: a fresh zeroed page-aligned allocation, recorded in `pages`
    // until `free_page` takes it out: the only token for it.
    Ok(unsafe { Page::new_unchecked(ptr, Gfn(GFN_BASE + i as u64)) })
}

impl Drop for MockXen {
    fn drop(&mut self) {
        for p in self.pages.get_mut().iter_mut().filter_map(Option::take) {
            // SAFETY: allocated in `alloc_page` with this layout, not yet freed.
            unsafe { dealloc(p.as_ptr(), Self::layout()) };
        }
    }
}

impl Hypervisor for MockXen {
    fn evtchn_alloc_unbound(&self, remote: DomId) -> Result<Port, XenError> {
        let p = self.bind()?;
        self.calls.borrow_mut().push(Call::AllocUnbound(remote, p));
        Ok(p)
    }

    fn evtchn_bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, XenError> {
        let p = self.bind()?;
        self.calls
            .borrow_mut()
            .push(Call::BindInterdomain(remote, remote_port, p));
        Ok(p)
    }

    fn evtchn_bind_virq(&self, virq: Virq) -> Result<Port, XenError> {
        let p = self.bind()?;
        self.calls.borrow_mut().push(Call::BindVirq(virq, p));
        Ok(p)
    }

    fn evtchn_send(&self, port: Port) -> Result<(), XenError> {
        self.calls.borrow_mut().push(Call::Send(port));
        Ok(())
    }

    fn evtchn_close(&self, port: Port) -> Result<(), XenError> {
        self.calls.borrow_mut().push(Call::Close(port));
        Ok(())
    }

    fn evtchn_unmask(&self, port: Port) -> Result<(), XenError> {
        self.calls.borrow_mut().push(Call::Unmask(port));
        Ok(())
    }

    fn shared_info(&self) -> &SharedInfo {
        &self.shared
    }

    fn vcpu_info(&self) -> &VcpuInfo {
        &self.shared.vcpu_info[0]
    }

    fn grant_entries(&self) -> &[GrantEntryV1] {
        &self.grants
    }

    fn alloc_page(&self) -> Result<Page, OutOfPages> {
        alloc_into(&mut self.pages.borrow_mut())
    }

    fn free_page(&self, page: Page) {
        let i = (page.gfn().0 - GFN_BASE) as usize;
        let p = self.pages.borrow_mut()[i].take().expect("double free");
        assert_eq!(p, page.ptr());
        // SAFETY: allocated in `alloc_page` with this layout; removed from the
        // table above, so freed once.
        unsafe { dealloc(p.as_ptr(), Self::layout()) };
    }

    fn xenstore_ring(&self) -> Result<RingPage, XenError> {
        Ok(self.xenstore)
    }

    fn console_ring(&self) -> Result<RingPage, XenError> {
        Err(XenError::ENOENT)
    }

    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn block(&self, deadline_ns: Option<u64>) {
        self.calls.borrow_mut().push(Call::Block(deadline_ns));
        if let Some(p) = self.on_block.borrow_mut().pop_front() {
            self.raise(p);
        } else if let Some(d) = deadline_ns {
            self.now.set(self.now.get().max(d));
        }
    }

    fn early_console_write(&self, _bytes: &[u8]) {}

    fn cmdline(&self) -> &str {
        ""
    }

    fn shutdown(&self, _reason: ShutdownReason) {}
}

/// A waker that counts its wakes.
pub(crate) fn counting_waker() -> (core::task::Waker, alloc::sync::Arc<WakeCount>) {
    let c = alloc::sync::Arc::new(WakeCount(core::sync::atomic::AtomicUsize::new(0)));
    (core::task::Waker::from(c.clone()), c)
}

/// Wakes counted by [`counting_waker`].
#[derive(Debug)]
pub(crate) struct WakeCount(pub(crate) core::sync::atomic::AtomicUsize);

impl WakeCount {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl alloc::task::Wake for WakeCount {
    fn wake(self: alloc::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
