//! The hypervisor interface: the only code that differs between real Xen
//! (PVH, `target_os = "none"`) and the software Xen (`sim` feature).
//!
//! Everything above this trait — event-channel demux, grant bookkeeping,
//! rings, the xenstore client, the console, and every driver — is the same
//! code on both. An implementation is a thin layer of hypercalls (or their
//! simulation); it keeps no driver state.
//!
//! # Shared memory
//!
//! [`Hypervisor::shared_info`] and [`Hypervisor::grant_entries`] return
//! memory that the hypervisor reads and writes concurrently with the guest.
//! Its types are atomics, so shared references to it are sound. Pages from
//! [`Hypervisor::alloc_page`] may be granted to a backend; once granted, they
//! must be accessed only with volatile or atomic operations.

use core::fmt;
use core::ptr::NonNull;

use crate::abi::grant_table::GrantEntryV1;
use crate::abi::shared_info::{SharedInfo, VcpuInfo};

/// Size of a Xen page.
pub const PAGE_SIZE: usize = 4096;

/// An event-channel port, `evtchn_port_t` (xen/event_channel.h).
#[doc(alias = "evtchn_port_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u32);

/// A domain id, `domid_t` (xen/xen.h).
#[doc(alias = "domid_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u16);

impl DomId {
    /// The control domain.
    pub const DOM0: DomId = DomId(0);
    /// `DOMID_SELF`: the calling domain.
    #[doc(alias = "DOMID_SELF")]
    pub const SELF: DomId = DomId(0x7ff0);
}

/// A grant reference: an index into the grant table, `grant_ref_t`.
#[doc(alias = "grant_ref_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(pub u32);

/// A guest frame number: guest-physical address >> 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gfn(pub u64);

/// A virtual interrupt that can be bound to a port (`VIRQ_*`, xen/xen.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Virq {
    /// `VIRQ_TIMER`: the single-shot timer fired.
    #[doc(alias = "VIRQ_TIMER")]
    Timer = 0,
    /// `VIRQ_DEBUG`: dump debug state.
    #[doc(alias = "VIRQ_DEBUG")]
    Debug = 1,
}

/// Why the domain shuts down (`SHUTDOWN_*`, xen/sched.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff`: clean exit.
    #[doc(alias = "SHUTDOWN_poweroff")]
    Poweroff = 0,
    /// `SHUTDOWN_reboot`: restart.
    #[doc(alias = "SHUTDOWN_reboot")]
    Reboot = 1,
    /// `SHUTDOWN_crash`: the guest failed; the toolstack shows it crashed.
    #[doc(alias = "SHUTDOWN_crash")]
    Crash = 3,
}

/// An error a hypercall returned: Xen's negative errno (xen/errno.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenError(pub i32);

impl XenError {
    /// `-EPERM`: not permitted.
    pub const EPERM: XenError = XenError(-1);
    /// `-ENOENT`: no such entry.
    pub const ENOENT: XenError = XenError(-2);
    /// `-ENOMEM`: out of memory.
    pub const ENOMEM: XenError = XenError(-12);
    /// `-EINVAL`: invalid argument.
    pub const EINVAL: XenError = XenError(-22);
    /// `-ENOSPC`: no space (e.g. no free port).
    pub const ENOSPC: XenError = XenError(-28);
    /// `-ENOSYS`: not implemented.
    pub const ENOSYS: XenError = XenError(-38);
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hypercall failed with errno {}", -self.0)
    }
}

impl core::error::Error for XenError {}

/// The pages the toolstack sets up for a device that every guest has
/// (xenstore, PV console): its ring page and event-channel port.
#[derive(Clone, Copy, Debug)]
pub struct RingPage {
    /// The page, mapped in the guest's address space.
    pub page: NonNull<u8>,
    /// The event channel the backend notifies and listens on.
    pub port: Port,
}

pub use crate::page::Page;

/// The pages for granting are exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfPages;

impl fmt::Display for OutOfPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no free page to share with a backend")
    }
}

impl core::error::Error for OutOfPages {}

/// The hypervisor below the driver-facing API.
///
/// Implementations MUST ensure that:
/// - the memory behind `shared_info`, `vcpu_info` and `grant_entries` lives as
///   long as the implementation and has Xen's layout;
/// - a page from `alloc_page` is `PAGE_SIZE` bytes, aligned to `PAGE_SIZE`,
///   zeroed, and mapped at `ptr` until it is passed to `free_page`; the pages
///   of `xenstore_ring` and `console_ring` are mapped for as long as the
///   implementation lives, and `xenstore_ring`/`console_ring` return the same
///   page on every call. The implementation makes no Rust reference to these
///   bytes except to atomics: it too uses only volatile or atomic accesses
///   (see `crate::page::SharedMem`);
/// - the grant table does not change size after the first `grant_entries`
///   call (the guest sizes its allocator from it);
/// - `block` returns once an event is pending for this vCPU (upcall pending),
///   once `deadline_ns` has passed, or spuriously — never later than the
///   first of the two by more than the platform's timer slack;
/// - `now_ns` is monotonic.
pub trait Hypervisor {
    /// `EVTCHNOP_alloc_unbound`: a new port that `remote` may bind to.
    #[doc(alias = "EVTCHNOP_alloc_unbound")]
    fn evtchn_alloc_unbound(&self, remote: DomId) -> Result<Port, XenError>;

    /// `EVTCHNOP_bind_interdomain`: connect to `remote`'s unbound port.
    #[doc(alias = "EVTCHNOP_bind_interdomain")]
    fn evtchn_bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, XenError>;

    /// `EVTCHNOP_bind_virq`: a port that fires on `virq` for vCPU 0.
    #[doc(alias = "EVTCHNOP_bind_virq")]
    fn evtchn_bind_virq(&self, virq: Virq) -> Result<Port, XenError>;

    /// `EVTCHNOP_send`: notify the other end of `port`.
    #[doc(alias = "EVTCHNOP_send")]
    fn evtchn_send(&self, port: Port) -> Result<(), XenError>;

    /// `EVTCHNOP_close`.
    #[doc(alias = "EVTCHNOP_close")]
    fn evtchn_close(&self, port: Port) -> Result<(), XenError>;

    /// `EVTCHNOP_unmask`: clear the mask bit and, if the port is pending,
    /// re-raise the upcall (the mask/unmask race is resolved by Xen here).
    #[doc(alias = "EVTCHNOP_unmask")]
    fn evtchn_unmask(&self, port: Port) -> Result<(), XenError>;

    /// The shared-info page (event bitmaps).
    fn shared_info(&self) -> &SharedInfo;

    /// This vCPU's info (upcall flag, selector, pvclock).
    fn vcpu_info(&self) -> &VcpuInfo;

    /// The v1 grant table, as many entries as the frames mapped.
    fn grant_entries(&self) -> &[GrantEntryV1];

    /// A zeroed page that can be granted to a backend.
    fn alloc_page(&self) -> Result<Page, OutOfPages>;

    /// Returns a page to the allocator. The caller MUST have ended every
    /// grant of it (the grant module guarantees this).
    ///
    /// Safe because a [`Page`] cannot be forged or copied: only this
    /// implementation's `alloc_page` makes one. An implementation MAY panic
    /// on a page it did not hand out (one from another domain on the sim).
    fn free_page(&self, page: Page);

    /// The xenstore ring and port (`HVM_PARAM_STORE_PFN`/`_EVTCHN`).
    fn xenstore_ring(&self) -> Result<RingPage, XenError>;

    /// The PV console ring and port (`HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`).
    fn console_ring(&self) -> Result<RingPage, XenError>;

    /// Monotonic time in ns since boot (pvclock on Xen, virtual on the sim).
    fn now_ns(&self) -> u64;

    /// Waits until an event is pending for this vCPU or until `deadline_ns`
    /// (`None`: no deadline). Does not scan or clear anything.
    fn block(&self, deadline_ns: Option<u64>);

    /// Writes to the early console (port 0xe9 on Xen, stderr on the sim).
    /// Never blocks; used before the PV console is up and for panics.
    fn early_console_write(&self, bytes: &[u8]);

    /// The kernel command line (`start_info` on Xen; given by the test on the sim).
    fn cmdline(&self) -> &str;

    /// `SCHEDOP_shutdown`. On Xen it does not return; on the sim the domain
    /// is marked shut down and the call returns.
    #[doc(alias = "SCHEDOP_shutdown")]
    fn shutdown(&self, reason: ShutdownReason);
}
