//! A simulated domain: its memory (shared-info page, grant table, RAM pages,
//! store and console rings) and its handle, [`SimDomain`], which implements
//! [`Hypervisor`] for the code that runs inside it.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use super::evtchn::{ChanState, Channel, Service, PORTS_2L_MAX, VIRQS_MAX};
use super::frame::Frame;
use super::grant::{ActiveGrant, GrantError, GrantMapping};
use super::trace::TraceEvent;
use super::{SimXen, World};
use crate::abi::grant_table::{GrantEntryV1, GTF_PERMIT_ACCESS};
use crate::abi::shared_info::{SharedInfo, VcpuInfo};
use crate::hypervisor::{
    DomId, Gfn, GrantRef, Hypervisor, OutOfPages, Page, Port, RingPage, ShutdownReason, Virq,
    XenError, PAGE_SIZE,
};

/// v1 grant entries per grant-table frame (4096 / 8).
pub const GRANT_ENTRIES_PER_FRAME: usize = PAGE_SIZE / core::mem::size_of::<GrantEntryV1>();

/// Grant-table frames of a domain unless its [`DomainConfig`] says otherwise.
pub const GRANT_FRAMES_DEFAULT: usize = 4;

/// RAM pages a domain may allocate unless its [`DomainConfig`] says otherwise.
pub const PAGES_MAX_DEFAULT: usize = 4096;

/// Event-channel ports of a domain unless its [`DomainConfig`] says
/// otherwise (xl's `max_event_channels` default).
pub const PORTS_MAX_DEFAULT: u32 = 1023;

/// Console bytes kept per domain; later output is counted, not kept.
pub const CONSOLE_LOG_BYTES_MAX: usize = 1 << 20;

/// Early-console bytes kept per domain; later output is counted, not kept.
pub const EARLY_LOG_BYTES_MAX: usize = 64 << 10;

/// `GNTTAB_RESERVED_CONSOLE` (xen/grant_table.h): the toolstack grants the
/// console page to dom0 in this entry.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = GrantRef(0);

/// `GNTTAB_RESERVED_XENSTORE` (xen/grant_table.h): the toolstack grants the
/// xenstore page to dom0 in this entry.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = GrantRef(1);

/// The guest frame number of the console page (a special page, as on HVM).
pub const CONSOLE_GFN: Gfn = Gfn(0xfeffc);

/// The guest frame number of the xenstore page.
pub const STORE_GFN: Gfn = Gfn(0xfeffd);

/// The first guest frame number the page allocator hands out.
pub const RAM_GFN_FIRST: u64 = 0x1000;

/// How to build a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// A name for traces and console logs.
    pub name: String,
    /// The kernel command line.
    pub cmdline: String,
    /// Most RAM pages [`Hypervisor::alloc_page`] hands out at once.
    pub pages_max: usize,
    /// Grant-table frames (each holds [`GRANT_ENTRIES_PER_FRAME`] entries).
    pub grant_frames: usize,
    /// Event-channel ports (at most [`PORTS_2L_MAX`]).
    pub ports_max: u32,
}

impl DomainConfig {
    /// A domain named `name` with the default limits and an empty command line.
    pub fn new(name: &str) -> DomainConfig {
        DomainConfig {
            name: name.into(),
            cmdline: String::new(),
            pages_max: PAGES_MAX_DEFAULT,
            grant_frames: GRANT_FRAMES_DEFAULT,
            ports_max: PORTS_MAX_DEFAULT,
        }
    }

    /// This config with the command line `cmdline`.
    #[must_use]
    pub fn cmdline(mut self, cmdline: &str) -> DomainConfig {
        self.cmdline = cmdline.into();
        self
    }
}

/// A shared-info page with every field zero (no port pending or masked).
pub(crate) fn zeroed_shared_info() -> Box<SharedInfo> {
    super::frame::zeroed_shared_info()
}

/// A domain's memory that Xen and the guest share: fixed at creation, shared
/// through atomics and frames.
#[derive(Debug)]
pub(crate) struct DomainMem {
    pub(crate) shared_info: Box<SharedInfo>,
    pub(crate) grants: Box<[GrantEntryV1]>,
    pub(crate) store: Rc<Frame>,
    pub(crate) console: Rc<Frame>,
    pub(crate) cmdline: String,
    pub(crate) name: String,
}

/// A domain's hypervisor-side state.
#[derive(Debug)]
pub(crate) struct DomainState {
    pub(crate) mem: Rc<DomainMem>,
    pub(crate) ports: Vec<Channel>,
    pub(crate) ports_max: u32,
    pub(crate) virqs: [Option<Port>; VIRQS_MAX],
    pub(crate) pages: BTreeMap<u64, Rc<Frame>>,
    pub(crate) free_gfns: BTreeSet<u64>,
    pub(crate) next_gfn: u64,
    pub(crate) pages_max: usize,
    /// The armed single-shot timer.
    pub(crate) timer: Option<super::world::ArmedTimer>,
    pub(crate) shutdown: Option<ShutdownReason>,
    /// This domain's grants that others map now, by grant ref.
    pub(crate) active: BTreeMap<u32, ActiveGrant>,
    /// Mappings this domain holds of other domains' grants.
    pub(crate) maps_held: usize,
    pub(crate) console_log: Vec<u8>,
    pub(crate) console_dropped: u64,
    pub(crate) early_log: Vec<u8>,
    pub(crate) early_dropped: u64,
    /// The guest's end of its store ring channel.
    pub(crate) store_port: Port,
    /// The guest's end of its console channel.
    pub(crate) console_port: Port,
    /// dom0's (the sim xenstored's) end of the store channel.
    pub(crate) store_backend_port: Port,
    /// dom0's (the sim console daemon's) end of the console channel.
    pub(crate) console_backend_port: Port,
}

impl DomainState {
    fn new(config: &DomainConfig) -> DomainState {
        assert!(
            config.ports_max >= 4 && config.ports_max <= PORTS_2L_MAX,
            "ports_max out of range"
        );
        assert!(
            config.grant_frames >= 1,
            "a grant table has at least one frame"
        );
        let entries = config.grant_frames * GRANT_ENTRIES_PER_FRAME;
        let grants: Box<[GrantEntryV1]> = (0..entries)
            .map(|_| GrantEntryV1 {
                flags: AtomicU16::new(0),
                domid: AtomicU16::new(0),
                frame: AtomicU32::new(0),
            })
            .collect();
        let mem = DomainMem {
            shared_info: zeroed_shared_info(),
            grants,
            store: Rc::new(Frame::new_zeroed()),
            console: Rc::new(Frame::new_zeroed()),
            cmdline: config.cmdline.clone(),
            name: config.name.clone(),
        };
        // The toolstack's grants of the console and store pages to dom0
        // (xc_dom_gnttab_init): frame and domid first, then the flags.
        for (gref, gfn) in [
            (GNTTAB_RESERVED_CONSOLE, CONSOLE_GFN),
            (GNTTAB_RESERVED_XENSTORE, STORE_GFN),
        ] {
            let e = &mem.grants[gref.0 as usize];
            e.domid.store(DomId::DOM0.0, Ordering::SeqCst);
            e.frame.store(gfn.0 as u32, Ordering::SeqCst);
            e.flags.store(GTF_PERMIT_ACCESS, Ordering::SeqCst);
        }
        let ports = alloc::vec![Channel {
            state: ChanState::Reserved,
            generation: 0,
        }];
        DomainState {
            mem: Rc::new(mem),
            ports,
            ports_max: config.ports_max,
            virqs: [None; VIRQS_MAX],
            pages: BTreeMap::new(),
            free_gfns: BTreeSet::new(),
            next_gfn: RAM_GFN_FIRST,
            pages_max: config.pages_max,
            timer: None,
            shutdown: None,
            active: BTreeMap::new(),
            maps_held: 0,
            console_log: Vec::new(),
            console_dropped: 0,
            early_log: Vec::new(),
            early_dropped: 0,
            store_port: Port(0),
            console_port: Port(0),
            store_backend_port: Port(0),
            console_backend_port: Port(0),
        }
    }

    /// The frame behind `gfn`, if this domain owns one there.
    pub(crate) fn frame(&self, gfn: u64) -> Option<Rc<Frame>> {
        if gfn == STORE_GFN.0 {
            return Some(self.mem.store.clone());
        }
        if gfn == CONSOLE_GFN.0 {
            return Some(self.mem.console.clone());
        }
        self.pages.get(&gfn).cloned()
    }
}

/// Appends `bytes` to `log`, keeping at most `max` bytes and counting the rest.
pub(crate) fn append_bounded(log: &mut Vec<u8>, dropped: &mut u64, max: usize, bytes: &[u8]) {
    let room = max.saturating_sub(log.len());
    let take = room.min(bytes.len());
    log.extend_from_slice(&bytes[..take]);
    *dropped += (bytes.len() - take) as u64;
}

impl World {
    /// Creates a domain with its store and console channels to dom0 (the
    /// domain being built is dom0 itself when none exists yet).
    pub(crate) fn create_domain(&self, config: &DomainConfig) -> DomId {
        let mut st = self.state.borrow_mut();
        let id = DomId(st.next_domid);
        assert!(id.0 < DomId::SELF.0, "out of domain ids");
        st.next_domid += 1;
        st.domains.insert(id, DomainState::new(config));
        st.record(TraceEvent::DomainCreated { dom: id });
        // What the toolstack does: an unbound port in the guest for dom0,
        // which the backend daemon then binds.
        let mut connect = |service| {
            let guest_port = st
                .evtchn_alloc_unbound(id, DomId::DOM0)
                .expect("a new domain has free ports");
            let backend_port = st
                .evtchn_bind_interdomain(DomId::DOM0, id, guest_port, Some(service))
                .expect("dom0 has free ports");
            (guest_port, backend_port)
        };
        let (store_port, store_backend_port) = connect(Service::Xenstore);
        let (console_port, console_backend_port) = connect(Service::Console);
        let d = st.domains.get_mut(&id).expect("just inserted");
        d.store_port = store_port;
        d.store_backend_port = store_backend_port;
        d.console_port = console_port;
        d.console_backend_port = console_backend_port;
        let mem = d.mem.clone();
        drop(st);
        // The toolstack introduces the domain to xenstored.
        self.xenstored
            .borrow_mut()
            .connect(id, &config.name, mem.store.xenstore_iface())
            .expect("a fresh store ring has consistent indices");
        id
    }
}

/// A handle on one simulated domain: the [`Hypervisor`] its code runs on,
/// plus what a dom0 (or any domain) may do to other domains' grants.
///
/// Cloning gives another handle on the same domain.
#[derive(Clone)]
pub struct SimDomain {
    /// Weak, so that the world may hold its guests' handles (which hold
    /// their `SimDomain`) without a cycle.
    pub(crate) world: Weak<World>,
    pub(crate) id: DomId,
    pub(crate) mem: Rc<DomainMem>,
}

impl fmt::Debug for SimDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDomain")
            .field("id", &self.id)
            .field("name", &self.mem.name)
            .finish_non_exhaustive()
    }
}

impl SimDomain {
    /// The world; it outlives every use of its domains' handles.
    pub(crate) fn w(&self) -> Rc<World> {
        self.world
            .upgrade()
            .expect("a sim domain's handle used after its world (every SimXen) was dropped")
    }

    /// This domain's id.
    pub fn id(&self) -> DomId {
        self.id
    }

    /// The world this domain lives in.
    pub fn sim(&self) -> SimXen {
        SimXen { world: self.w() }
    }

    /// The name given in its [`DomainConfig`].
    pub fn name(&self) -> &str {
        &self.mem.name
    }

    /// `GNTTABOP_map_grant_ref`: maps `granter`'s grant `gref` into this
    /// domain, read-only or writable. While the mapping lives, the grant
    /// entry shows `GTF_reading` (and `GTF_writing` if writable), so the
    /// granting guest cannot end the grant; dropping the mapping unmaps it.
    ///
    /// # Errors
    ///
    /// [`GrantError`] when the grant does not allow it: no such domain or
    /// ref, not (or no longer) granted, granted to another domain, writable
    /// mapping of a read-only grant, a frame the granter does not own, or
    /// too many mappings held.
    #[doc(alias = "GNTTABOP_map_grant_ref")]
    pub fn map_grant(
        &self,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<GrantMapping, GrantError> {
        let frame = self
            .w()
            .state
            .borrow_mut()
            .map_grant(self.id, granter, gref, readonly)?;
        Ok(GrantMapping::new(
            self.w(),
            self.id,
            granter,
            gref,
            readonly,
            frame,
        ))
    }

    /// `GNTTABOP_copy` from a grant: copies `buf.len()` bytes at `offset` of
    /// `granter`'s granted page into `buf`.
    ///
    /// # Errors
    ///
    /// As [`map_grant`](Self::map_grant) (read-only), and
    /// [`GrantError::BadCopyRange`] if the range leaves the page.
    #[doc(alias = "GNTTABOP_copy")]
    pub fn copy_from_grant(
        &self,
        granter: DomId,
        gref: GrantRef,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), GrantError> {
        let frame = self.w().state.borrow_mut().copy_access(
            self.id,
            granter,
            gref,
            true,
            offset,
            buf.len(),
        )?;
        frame.mem().read(offset, buf);
        Ok(())
    }

    /// `GNTTABOP_copy` into a grant: copies `data` to `offset` of `granter`'s
    /// granted page.
    ///
    /// # Errors
    ///
    /// As [`map_grant`](Self::map_grant) (writable), and
    /// [`GrantError::BadCopyRange`] if the range leaves the page.
    #[doc(alias = "GNTTABOP_copy")]
    pub fn copy_to_grant(
        &self,
        granter: DomId,
        gref: GrantRef,
        offset: usize,
        data: &[u8],
    ) -> Result<(), GrantError> {
        let frame = self.w().state.borrow_mut().copy_access(
            self.id,
            granter,
            gref,
            false,
            offset,
            data.len(),
        )?;
        frame.mem().write(offset, data);
        Ok(())
    }

    /// `VCPUOP_set_singleshot_timer`: raises VIRQ_TIMER (if bound) at
    /// `deadline_ns`, replacing any timer armed before.
    #[doc(alias = "VCPUOP_set_singleshot_timer")]
    pub fn set_timer(&self, deadline_ns: u64) {
        self.w().state.borrow_mut().set_timer(self.id, deadline_ns);
    }

    /// Whether `evtchn_upcall_pending` is set on vCPU 0.
    pub fn upcall_pending(&self) -> bool {
        self.mem.shared_info.vcpu_info[0]
            .evtchn_upcall_pending
            .load(Ordering::SeqCst)
            != 0
    }

    /// Why the domain shut down, if it did.
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        self.w().state.borrow().domains[&self.id].shutdown
    }

    /// Everything the domain wrote to its PV console so far (what
    /// xenconsoled would log), up to [`CONSOLE_LOG_BYTES_MAX`] bytes.
    pub fn console_output(&self) -> Vec<u8> {
        self.w().drain_console(self.id);
        self.w().state.borrow().domains[&self.id]
            .console_log
            .clone()
    }

    /// Console bytes dropped because the log was full.
    pub fn console_dropped(&self) -> u64 {
        self.w().state.borrow().domains[&self.id].console_dropped
    }

    /// Everything the domain wrote to its early console, up to
    /// [`EARLY_LOG_BYTES_MAX`] bytes.
    pub fn early_console_output(&self) -> Vec<u8> {
        self.w().state.borrow().domains[&self.id].early_log.clone()
    }

    /// Types `bytes` into the domain's console (its `in` ring), as much as
    /// fits; returns how many bytes were written.
    pub fn console_input(&self, bytes: &[u8]) -> usize {
        self.w().console_input(self.id, bytes)
    }

    /// How many RAM pages the domain has allocated now.
    pub fn pages_allocated(&self) -> usize {
        self.w().state.borrow().domains[&self.id].pages.len()
    }

    /// The domain's port `port`'s state, for tests.
    pub fn port_state(&self, port: Port) -> Option<ChanState> {
        self.w().state.borrow().domains[&self.id]
            .ports
            .get(port.0 as usize)
            .map(|c| c.state)
    }

    /// dom0's end of this domain's store channel (the port xenstored
    /// listens on).
    pub fn store_backend_port(&self) -> Port {
        self.w().state.borrow().domains[&self.id].store_backend_port
    }

    /// Records a free-form note in the trace (ring messages, states).
    pub fn note(&self, text: impl Into<String>) {
        self.w().state.borrow_mut().note(self.id, text.into());
    }
}

impl Hypervisor for SimDomain {
    fn evtchn_alloc_unbound(&self, remote: DomId) -> Result<Port, XenError> {
        self.w()
            .state
            .borrow_mut()
            .evtchn_alloc_unbound(self.id, remote)
    }

    fn evtchn_bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, XenError> {
        self.w()
            .state
            .borrow_mut()
            .evtchn_bind_interdomain(self.id, remote, remote_port, None)
    }

    fn evtchn_bind_virq(&self, virq: Virq) -> Result<Port, XenError> {
        self.w().state.borrow_mut().evtchn_bind_virq(self.id, virq)
    }

    fn evtchn_send(&self, port: Port) -> Result<(), XenError> {
        self.w().state.borrow_mut().evtchn_send(self.id, port)
    }

    fn evtchn_close(&self, port: Port) -> Result<(), XenError> {
        self.w().state.borrow_mut().evtchn_close(self.id, port)
    }

    fn evtchn_unmask(&self, port: Port) -> Result<(), XenError> {
        self.w().state.borrow_mut().evtchn_unmask(self.id, port)
    }

    fn shared_info(&self) -> &SharedInfo {
        &self.mem.shared_info
    }

    fn vcpu_info(&self) -> &VcpuInfo {
        &self.mem.shared_info.vcpu_info[0]
    }

    fn grant_entries(&self) -> &[GrantEntryV1] {
        &self.mem.grants
    }

    fn alloc_page(&self) -> Result<Page, OutOfPages> {
        let w = self.w();
        let mut st = w.state.borrow_mut();
        let d = st
            .domains
            .get_mut(&self.id)
            .expect("a handle's domain exists");
        if d.pages.len() >= d.pages_max {
            return Err(OutOfPages);
        }
        let gfn = match d.free_gfns.pop_first() {
            Some(g) => g,
            None => {
                let g = d.next_gfn;
                d.next_gfn += 1;
                g
            }
        };
        let (frame, page) = Frame::new_guest_page(Gfn(gfn));
        d.pages.insert(gfn, frame);
        Ok(page)
    }

    fn free_page(&self, page: Page) {
        let w = self.w();
        let mut st = w.state.borrow_mut();
        let d = st
            .domains
            .get_mut(&self.id)
            .expect("a handle's domain exists");
        let gfn = page.gfn().0;
        let owned = d.pages.get(&gfn).is_some_and(|f| f.ptr() == page.ptr());
        assert!(
            owned,
            "free_page: d{} does not own gfn {gfn:#x} at {:p}",
            self.id.0,
            page.ptr()
        );
        for (i, e) in d.mem.grants.iter().enumerate() {
            let granted = e.flags.load(Ordering::SeqCst) & GTF_PERMIT_ACCESS != 0;
            assert!(
                !(granted && u64::from(e.frame.load(Ordering::SeqCst)) == gfn),
                "free_page: d{} frees gfn {gfn:#x} while grant {i} still permits access to it",
                self.id.0
            );
        }
        assert!(
            !d.active.values().any(|a| a.gfn == gfn),
            "free_page: d{} frees gfn {gfn:#x} while another domain maps it",
            self.id.0
        );
        d.pages.remove(&gfn);
        d.free_gfns.insert(gfn);
    }

    fn xenstore_ring(&self) -> Result<RingPage, XenError> {
        let port = self.w().state.borrow().domains[&self.id].store_port;
        Ok(RingPage {
            page: self.mem.store.ptr(),
            port,
        })
    }

    fn console_ring(&self) -> Result<RingPage, XenError> {
        let port = self.w().state.borrow().domains[&self.id].console_port;
        Ok(RingPage {
            page: self.mem.console.ptr(),
            port,
        })
    }

    fn now_ns(&self) -> u64 {
        self.w().now_ns()
    }

    /// Runs the world (scheduled events and the sim's daemons, not other
    /// domains' code) until this domain has an upcall pending or
    /// `deadline_ns` has passed. The deadline arms the domain's single-shot
    /// timer, which raises VIRQ_TIMER if it is bound, as on Xen.
    fn block(&self, deadline_ns: Option<u64>) {
        if let Some(d) = deadline_ns {
            self.set_timer(d);
        }
        self.w().block_domain(self.id, deadline_ns);
    }

    fn early_console_write(&self, bytes: &[u8]) {
        let w = self.w();
        let mut st = w.state.borrow_mut();
        let d = st
            .domains
            .get_mut(&self.id)
            .expect("a handle's domain exists");
        let (log, dropped) = (&mut d.early_log, &mut d.early_dropped);
        append_bounded(log, dropped, EARLY_LOG_BYTES_MAX, bytes);
        if self.w().config.echo_console {
            std::eprint!("(d{}) {}", self.id.0, String::from_utf8_lossy(bytes));
        }
    }

    fn cmdline(&self) -> &str {
        &self.mem.cmdline
    }

    fn shutdown(&self, reason: ShutdownReason) {
        let w = self.w();
        let mut st = w.state.borrow_mut();
        st.domains
            .get_mut(&self.id)
            .expect("a handle's domain exists")
            .shutdown = Some(reason);
        st.record(TraceEvent::Shutdown {
            dom: self.id,
            reason: reason as u32,
        });
    }
}
