//! Event channels: the 2-level demux of Xen's pending/mask bitmaps into
//! wakers, and [`EventChannel`], a port awaited as a Future or a Stream.
//!
//! # How an event travels
//!
//! ```text
//! Xen: set pending[port]  -> set selector bit (port / 64) -> set upcall_pending
//!                                                              (interrupt: EOI only)
//! executor tick / park ->  demux():
//!   1. upcall_pending = 0
//!   2. sel = swap(selector, 0)                      full barrier
//!   3. for each set bit w of sel:                   cost: one word per bit
//!        bits = pending[w] & !mask[w]
//!        pending[w] &= !bits                        atomic, Xen may set more
//!        for each port in bits: generation += 1, wake its handles' wakers
//! ```
//!
//! # Per-port state and handles
//!
//! Each port has a delivery `generation` (incremented per delivered event)
//! and up to [`PORT_HANDLES_MAX`] handles, each with one waker slot. A handle
//! remembers the generation it has seen: [`EventChannel::poll_wait`] is Ready
//! when the port's generation moved past it, so
//!
//! 1. an event that arrives before anyone waits is not lost (the generation
//!    moved; the next wait returns at once), also for ports the toolstack set
//!    up before the guest attached to them (xenstore, console);
//! 2. every handle of a port sees every event (no handle steals another's);
//! 3. events that arrive while nobody polls are coalesced, as Xen's pending
//!    bit coalesces them.
//!
//! # Mask and unmask
//!
//! A masked port's pending bit stays set and Xen does not touch the
//! selector for it, so on unmask the guest re-checks: clear the mask bit,
//! full barrier, and if the pending bit is set, deliver it now (clearing it).
//! This closes the race where the event arrived while masked.
//!
//! The demux runs in the executor's context only (never in the interrupt
//! handler): it takes `RefCell` borrows and clones wakers.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{fence, Ordering};
use core::task::{Context, Poll, Waker};

use futures::Stream;

use crate::abi::shared_info::{SharedInfo, VcpuInfo, BITS_PER_EVENT_WORD, EVTCHN_2L_NR_CHANNELS};
use crate::guest::Guest;
use crate::hypervisor::{DomId, Port, Virq, XenError};

/// Ports the 2-level ABI can name (and the bound of the per-port table).
pub const PORTS_MAX: usize = EVTCHN_2L_NR_CHANNELS;

/// Handles (each with its own waker) that may be open on one port at once.
pub const PORT_HANDLES_MAX: usize = 4;

/// Why a port could not be bound or attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindError {
    /// The hypercall failed.
    Hypervisor(XenError),
    /// The port is beyond what the 2-level ABI can deliver (`>= 4096`).
    PortOutOfRange(Port),
    /// The hypervisor returned a port that the guest already has open.
    PortInUse(Port),
    /// The port already has [`PORT_HANDLES_MAX`] handles.
    TooManyHandles(Port),
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Hypervisor(e) => write!(f, "event channel bind failed: {e}"),
            BindError::PortOutOfRange(p) => write!(f, "port {} is beyond the 2-level ABI", p.0),
            BindError::PortInUse(p) => write!(f, "port {} is already open", p.0),
            BindError::TooManyHandles(p) => {
                write!(f, "port {} already has {PORT_HANDLES_MAX} handles", p.0)
            }
        }
    }
}

impl core::error::Error for BindError {}

/// Why a notification could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyError {
    /// `EVTCHNOP_send` failed (e.g. the port was closed by the remote).
    Hypervisor(XenError),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::Hypervisor(e) => write!(f, "event channel notify failed: {e}"),
        }
    }
}

impl core::error::Error for NotifyError {}

/// Why a port could not be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseError {
    /// `EVTCHNOP_close` failed; the guest forgot the port anyway.
    Hypervisor(XenError),
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::Hypervisor(e) => write!(f, "event channel close failed: {e}"),
        }
    }
}

impl core::error::Error for CloseError {}

/// What one [`demux`] pass did (also the test hook for its cost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Pending/mask word pairs read: the number of selector bits set.
    pub words_scanned: u32,
    /// Ports delivered (pending, unmasked, cleared).
    pub ports_delivered: u32,
}

/// Counters of a guest's event channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Demux passes.
    pub demux_runs: u64,
    /// Words read by all passes.
    pub words_scanned: u64,
    /// Events delivered to ports.
    pub delivered: u64,
    /// Of those, events on ports with no open handle (recorded, not lost).
    pub unclaimed: u64,
    /// Events found pending on unmask and delivered then.
    pub delivered_on_unmask: u64,
}

/// Scans the 2-level bitmaps once, as Xen's guests do, and calls `deliver`
/// for every pending, unmasked port after clearing its pending bit.
///
/// Cost: one selector swap plus one pending and one mask word per set
/// selector bit: proportional to the words with events, never all 4096 ports.
/// Masked pending ports are left pending (see [`EventChannel::unmask`]).
///
/// This is the reusable core: [`Guest::demux`] runs it over the guest's own
/// shared info, and a multi-domain software Xen can run it per domain.
#[doc(alias = "evtchn_do_upcall")]
pub fn demux(shared: &SharedInfo, vcpu: &VcpuInfo, mut deliver: impl FnMut(Port)) -> DemuxStats {
    let mut stats = DemuxStats::default();
    // 1. Acknowledge the upcall before reading the selector, so an event
    //    that Xen raises from here on sets the flag again.
    vcpu.evtchn_upcall_pending.store(0, Ordering::SeqCst);
    // 2. Take the selector: a locked exchange, a full barrier on x86, orders
    //    the store above before the bitmap reads below.
    let mut sel = vcpu.evtchn_pending_sel.swap(0, Ordering::SeqCst);
    // 3. One pending/mask pair per selector bit.
    while sel != 0 {
        let w = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        stats.words_scanned += 1;
        let pending = shared.evtchn_pending[w].load(Ordering::Acquire);
        let mask = shared.evtchn_mask[w].load(Ordering::Relaxed);
        let mut bits = pending & !mask;
        if bits == 0 {
            continue;
        }
        // Clear exactly the bits we deliver; bits Xen sets meanwhile stay.
        shared.evtchn_pending[w].fetch_and(!bits, Ordering::AcqRel);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            stats.ports_delivered += 1;
            deliver(Port((w * BITS_PER_EVENT_WORD + b) as u32));
        }
    }
    stats
}

fn word_bit(port: Port) -> (usize, u64) {
    let p = port.0 as usize;
    assert!(p < PORTS_MAX, "port {} beyond the 2-level ABI", port.0);
    (p / BITS_PER_EVENT_WORD, 1u64 << (p % BITS_PER_EVENT_WORD))
}

/// Sets `port`'s mask bit: Xen keeps recording events but does not raise
/// the upcall for it.
pub(crate) fn mask_port(shared: &SharedInfo, port: Port) {
    let (w, bit) = word_bit(port);
    shared.evtchn_mask[w].fetch_or(bit, Ordering::SeqCst);
}

/// Clears `port`'s mask bit, then re-checks its pending bit (the race: the
/// event arrived while masked, so no selector bit or upcall will come for
/// it). Returns `true` if it was pending; the pending bit is then cleared and
/// the caller must deliver it.
pub(crate) fn unmask_port(shared: &SharedInfo, port: Port) -> bool {
    let (w, bit) = word_bit(port);
    shared.evtchn_mask[w].fetch_and(!bit, Ordering::SeqCst);
    // Orders: the mask clear above before the pending read below (Xen sets
    // pending and then checks the mask; one of us sees the other).
    fence(Ordering::SeqCst);
    shared.evtchn_pending[w].fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

/// Clears `port`'s pending bit (on close).
pub(crate) fn clear_pending(shared: &SharedInfo, port: Port) {
    let (w, bit) = word_bit(port);
    shared.evtchn_pending[w].fetch_and(!bit, Ordering::AcqRel);
}

#[derive(Debug, Default)]
struct PortSlot {
    generation: u64,
    handles: u8,
    wakers: [Option<Waker>; PORT_HANDLES_MAX],
    /// Bound by us: closed when the last handle goes.
    owned: bool,
}

const _: () = assert!(PORT_HANDLES_MAX <= 8, "handles are a u8 bitmask");

/// The per-port table of one guest: delivery generations and wakers.
/// Bounded by [`PORTS_MAX`] slots.
#[derive(Debug, Default)]
pub(crate) struct EventTable {
    slots: Vec<PortSlot>,
    stats: EventStats,
}

impl EventTable {
    fn slot_mut(&mut self, port: Port) -> &mut PortSlot {
        let p = port.0 as usize;
        assert!(p < PORTS_MAX, "port {} beyond the 2-level ABI", port.0);
        if self.slots.len() <= p {
            self.slots.resize_with(p + 1, PortSlot::default);
        }
        &mut self.slots[p]
    }

    fn generation(&self, port: Port) -> u64 {
        self.slots.get(port.0 as usize).map_or(0, |s| s.generation)
    }

    /// Records one event on `port` and takes the wakers to wake (outside the
    /// table's borrow).
    fn fire(&mut self, port: Port) -> [Option<Waker>; PORT_HANDLES_MAX] {
        self.stats.delivered += 1;
        let slot = self.slot_mut(port);
        slot.generation = slot.generation.wrapping_add(1);
        let claimed = slot.handles != 0;
        let wakers = core::mem::take(&mut slot.wakers);
        if !claimed {
            self.stats.unclaimed += 1;
        }
        wakers
    }

    pub(crate) fn stats(&self) -> EventStats {
        self.stats
    }

    pub(crate) fn record_demux(&mut self, d: DemuxStats) {
        self.stats.demux_runs += 1;
        self.stats.words_scanned += u64::from(d.words_scanned);
    }
}

/// Delivers one event on `port` of `guest`: bumps the generation and wakes
/// the port's waiters, without holding the table's borrow while waking.
pub(crate) fn deliver(guest: &Guest, port: Port) {
    let wakers = guest.events().borrow_mut().fire(port);
    for w in wakers.into_iter().flatten() {
        w.wake();
    }
}

/// An open event-channel port: notify the other end, and await its
/// notifications (as a Future with [`wait`](Self::wait), or as a
/// [`Stream`] of `()`).
///
/// A port may have up to [`PORT_HANDLES_MAX`] handles
/// ([`try_clone`](Self::try_clone)); each sees every event. The port is
/// closed when the last handle of a port the guest bound is dropped (or with
/// [`close`](Self::close)); ports attached with [`attach`](Self::attach)
/// (the toolstack's) are never closed.
pub struct EventChannel {
    guest: Guest,
    port: Port,
    handle: u8,
    seen: Cell<u64>,
    released: bool,
}

impl fmt::Debug for EventChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventChannel")
            .field("port", &self.port)
            .field("handle", &self.handle)
            .field("seen", &self.seen.get())
            .finish()
    }
}

impl EventChannel {
    /// `EVTCHNOP_alloc_unbound`: a new port that `remote` may bind to (the
    /// front end of a split driver publishes it in xenstore).
    ///
    /// # Errors
    /// [`BindError`] if the hypercall fails or returns an unusable port.
    #[doc(alias = "EVTCHNOP_alloc_unbound")]
    pub fn alloc_unbound(guest: &Guest, remote: DomId) -> Result<EventChannel, BindError> {
        let port = guest
            .hypervisor()
            .evtchn_alloc_unbound(remote)
            .map_err(BindError::Hypervisor)?;
        Self::open_bound(guest, port)
    }

    /// `EVTCHNOP_bind_interdomain`: connect to `remote`'s unbound port.
    ///
    /// # Errors
    /// [`BindError`] if the hypercall fails or returns an unusable port.
    #[doc(alias = "EVTCHNOP_bind_interdomain")]
    pub fn bind_interdomain(
        guest: &Guest,
        remote: DomId,
        remote_port: Port,
    ) -> Result<EventChannel, BindError> {
        let port = guest
            .hypervisor()
            .evtchn_bind_interdomain(remote, remote_port)
            .map_err(BindError::Hypervisor)?;
        Self::open_bound(guest, port)
    }

    /// `EVTCHNOP_bind_virq`: a port that fires on `virq` (vCPU 0).
    ///
    /// # Errors
    /// [`BindError`] if the hypercall fails or returns an unusable port.
    #[doc(alias = "EVTCHNOP_bind_virq")]
    pub fn bind_virq(guest: &Guest, virq: Virq) -> Result<EventChannel, BindError> {
        let port = guest
            .hypervisor()
            .evtchn_bind_virq(virq)
            .map_err(BindError::Hypervisor)?;
        Self::open_bound(guest, port)
    }

    /// A handle on a port the guest did not bind (the xenstore and console
    /// ports from HVM params). Events delivered before this call are kept:
    /// the first wait returns at once if any arrived. The port is unmasked
    /// and never closed by the guest.
    ///
    /// # Errors
    /// [`BindError::PortOutOfRange`], or [`BindError::TooManyHandles`].
    pub fn attach(guest: &Guest, port: Port) -> Result<EventChannel, BindError> {
        if port.0 as usize >= PORTS_MAX {
            return Err(BindError::PortOutOfRange(port));
        }
        let handle = {
            let mut t = guest.events().borrow_mut();
            let slot = t.slot_mut(port);
            take_handle(slot).ok_or(BindError::TooManyHandles(port))?
        };
        let ch = EventChannel {
            guest: guest.clone(),
            port,
            handle,
            seen: Cell::new(0),
            released: false,
        };
        ch.unmask();
        Ok(ch)
    }

    fn open_bound(guest: &Guest, port: Port) -> Result<EventChannel, BindError> {
        let hv = guest.hypervisor();
        if port.0 as usize >= PORTS_MAX {
            // Not deliverable through the 2-level bitmaps: give it back.
            let _ = hv.evtchn_close(port);
            return Err(BindError::PortOutOfRange(port));
        }
        let handle = {
            let mut t = guest.events().borrow_mut();
            let slot = t.slot_mut(port);
            if slot.handles != 0 {
                return Err(BindError::PortInUse(port));
            }
            // A fresh binding: forget events recorded on an earlier use of
            // this port number.
            *slot = PortSlot {
                owned: true,
                ..PortSlot::default()
            };
            take_handle(slot).expect("a fresh slot has free handles")
        };
        let ch = EventChannel {
            guest: guest.clone(),
            port,
            handle,
            seen: Cell::new(0),
            released: false,
        };
        ch.unmask();
        Ok(ch)
    }

    /// Another handle on the same port, with its own waker slot. It has seen
    /// what `self` has seen.
    ///
    /// # Errors
    /// [`BindError::TooManyHandles`] beyond [`PORT_HANDLES_MAX`].
    pub fn try_clone(&self) -> Result<EventChannel, BindError> {
        let handle = {
            let mut t = self.guest.events().borrow_mut();
            take_handle(t.slot_mut(self.port)).ok_or(BindError::TooManyHandles(self.port))?
        };
        Ok(EventChannel {
            guest: self.guest.clone(),
            port: self.port,
            handle,
            seen: Cell::new(self.seen.get()),
            released: false,
        })
    }

    /// The local port number (to publish in xenstore).
    pub fn port(&self) -> Port {
        self.port
    }

    /// The guest the port belongs to.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// `EVTCHNOP_send`: notify the other end.
    ///
    /// # Errors
    /// [`NotifyError::Hypervisor`] if the hypercall fails.
    #[doc(alias = "EVTCHNOP_send")]
    #[doc(alias = "notify_remote_via_evtchn")]
    pub fn notify(&self) -> Result<(), NotifyError> {
        self.guest
            .hypervisor()
            .evtchn_send(self.port)
            .map_err(NotifyError::Hypervisor)
    }

    /// Masks the port: events are recorded (pending) but not delivered
    /// until [`unmask`](Self::unmask).
    #[doc(alias = "mask_evtchn")]
    pub fn mask(&self) {
        mask_port(self.guest.hypervisor().shared_info(), self.port);
    }

    /// Unmasks the port, delivering at once an event that arrived while it
    /// was masked (see the module docs).
    #[doc(alias = "unmask_evtchn")]
    pub fn unmask(&self) {
        if unmask_port(self.guest.hypervisor().shared_info(), self.port) {
            self.guest.events().borrow_mut().stats.delivered_on_unmask += 1;
            deliver(&self.guest, self.port);
        }
    }

    /// Whether an event arrived since this handle last returned Ready; does
    /// not consume it.
    pub fn has_event(&self) -> bool {
        self.guest.events().borrow().generation(self.port) != self.seen.get()
    }

    /// Ready (consuming the events) if any arrived since this handle last
    /// returned Ready; otherwise registers `cx`'s waker and returns Pending.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut t = self.guest.events().borrow_mut();
        let slot = t.slot_mut(self.port);
        if slot.generation != self.seen.get() {
            self.seen.set(slot.generation);
            return Poll::Ready(());
        }
        let w = &mut slot.wakers[usize::from(self.handle)];
        match w {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next notification (or returns at once if one arrived
    /// since the last wait). Notifications that arrive while nobody waits
    /// are coalesced into one.
    ///
    /// # Cancellation
    /// Cancel-safe: dropping the future loses no event.
    pub fn wait(&self) -> Wait<'_> {
        Wait { ch: self }
    }

    /// Closes the port (when this is its last handle and the guest bound it).
    ///
    /// # Errors
    /// [`CloseError::Hypervisor`] if `EVTCHNOP_close` failed; the guest has
    /// forgotten the port either way.
    #[doc(alias = "EVTCHNOP_close")]
    pub fn close(mut self) -> Result<(), CloseError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), CloseError> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let close = {
            let mut t = self.guest.events().borrow_mut();
            let slot = t.slot_mut(self.port);
            let bit = 1u8 << self.handle;
            assert!(slot.handles & bit != 0, "handle released twice");
            slot.handles &= !bit;
            slot.wakers[usize::from(self.handle)] = None;
            let last_owned = slot.handles == 0 && slot.owned;
            if last_owned {
                *slot = PortSlot::default();
            }
            last_owned
        };
        if !close {
            return Ok(());
        }
        let hv = self.guest.hypervisor();
        mask_port(hv.shared_info(), self.port);
        let r = hv.evtchn_close(self.port).map_err(CloseError::Hypervisor);
        clear_pending(hv.shared_info(), self.port);
        r
    }
}

fn take_handle(slot: &mut PortSlot) -> Option<u8> {
    let free = !slot.handles & ((1u16 << PORT_HANDLES_MAX) - 1) as u8;
    if free == 0 {
        return None;
    }
    let h = free.trailing_zeros() as u8;
    slot.handles |= 1 << h;
    Some(h)
}

impl Drop for EventChannel {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            log::warn!("closing event channel {}: {e}", self.port.0);
        }
    }
}

impl Stream for EventChannel {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.poll_wait(cx).map(Some)
    }
}

/// The future of [`EventChannel::wait`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    ch: &'a EventChannel,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.ch.poll_wait(cx)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::testing::{counting_waker, Call, MockXen};
    use alloc::boxed::Box;
    use alloc::collections::BTreeSet;
    use alloc::vec;
    use futures::StreamExt;

    fn set_pending(si: &SharedInfo, port: u32) {
        let (w, bit) = word_bit(Port(port));
        si.evtchn_pending[w].fetch_or(bit, Ordering::SeqCst);
        si.vcpu_info[0]
            .evtchn_pending_sel
            .fetch_or(1 << w, Ordering::SeqCst);
        si.vcpu_info[0]
            .evtchn_upcall_pending
            .store(1, Ordering::SeqCst);
    }

    fn run(si: &SharedInfo) -> (Vec<u32>, DemuxStats) {
        let mut got = Vec::new();
        let s = demux(si, &si.vcpu_info[0], |p| got.push(p.0));
        (got, s)
    }

    /// Steps 1-3 of the module docs.
    #[test]
    fn demux_delivers_and_clears_as_xen_set_them() {
        let si = Box::new(SharedInfo::default());
        for p in [3, 69, 64 + 63, 4095] {
            set_pending(&si, p);
        }
        let (got, s) = run(&si);
        assert_eq!(got, vec![3, 69, 127, 4095]);
        assert_eq!(s.words_scanned, 3);
        assert_eq!(s.ports_delivered, 4);
        assert!(si
            .evtchn_pending
            .iter()
            .all(|w| w.load(Ordering::SeqCst) == 0));
        let v = &si.vcpu_info[0];
        assert_eq!(v.evtchn_pending_sel.load(Ordering::SeqCst), 0);
        assert_eq!(v.evtchn_upcall_pending.load(Ordering::SeqCst), 0);
        // Nothing left: a second pass reads nothing.
        assert_eq!(run(&si), (vec![], DemuxStats::default()));
    }

    #[test]
    fn masked_ports_stay_pending_and_are_not_delivered() {
        let si = Box::new(SharedInfo::default());
        mask_port(&si, Port(5));
        set_pending(&si, 5);
        set_pending(&si, 6);
        let (got, s) = run(&si);
        assert_eq!(got, vec![6]);
        assert_eq!(s.words_scanned, 1);
        assert_eq!(si.evtchn_pending[0].load(Ordering::SeqCst), 1 << 5);
        // Unmask re-checks and reports it (and clears it).
        assert!(unmask_port(&si, Port(5)));
        assert_eq!(si.evtchn_pending[0].load(Ordering::SeqCst), 0);
        assert!(!unmask_port(&si, Port(5)));
    }

    /// The cost bound of step 3.
    #[test]
    fn cost_is_the_selected_words_only() {
        let si = Box::new(SharedInfo::default());
        // Pending bits in every word, but Xen selected only words 7 and 40.
        for w in 0..64 {
            si.evtchn_pending[w].store(u64::MAX, Ordering::SeqCst);
        }
        si.vcpu_info[0]
            .evtchn_pending_sel
            .store((1 << 7) | (1 << 40), Ordering::SeqCst);
        let (got, s) = run(&si);
        assert_eq!(s.words_scanned, 2);
        assert_eq!(got.len(), 128);
        assert!(got.iter().all(|p| p / 64 == 7 || p / 64 == 40));
        // An empty selector costs no word at all.
        let (got, s) = run(&si);
        assert!(got.is_empty());
        assert_eq!(s.words_scanned, 0);
    }

    /// Property 1 of the module docs.
    #[test]
    fn event_before_the_first_wait_is_not_lost() {
        let xen = MockXen::new();
        let g = xen.guest();
        let ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        xen.raise(ch.port());
        g.demux();
        let (w, count) = counting_waker();
        let mut cx = Context::from_waker(&w);
        assert_eq!(ch.poll_wait(&mut cx), Poll::Ready(()));
        assert_eq!(ch.poll_wait(&mut cx), Poll::Pending);
        assert_eq!(count.get(), 0);
    }

    /// Property 3 (coalescing) of the module docs.
    #[test]
    fn waiter_is_woken_once_per_delivery() {
        let xen = MockXen::new();
        let g = xen.guest();
        let ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        let (w, count) = counting_waker();
        let mut cx = Context::from_waker(&w);
        assert_eq!(ch.poll_wait(&mut cx), Poll::Pending);
        assert_eq!(g.demux().ports_delivered, 0);
        assert_eq!(count.get(), 0);
        // Two raises before a demux coalesce (one pending bit).
        xen.raise(ch.port());
        xen.raise(ch.port());
        g.demux();
        assert_eq!(count.get(), 1);
        assert!(ch.has_event());
        assert_eq!(ch.poll_wait(&mut cx), Poll::Ready(()));
        assert!(!ch.has_event());
        // The waker was consumed by the wake: a new event without a new
        // registration wakes nobody but is still seen.
        xen.raise(ch.port());
        g.demux();
        assert_eq!(count.get(), 1);
        assert_eq!(ch.poll_wait(&mut cx), Poll::Ready(()));
        assert_eq!(g.event_stats().delivered, 2);
    }

    /// The mask/unmask race of the module docs.
    #[test]
    fn mask_unmask_race_delivers_on_unmask() {
        let xen = MockXen::new();
        let g = xen.guest();
        let ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        let (w, count) = counting_waker();
        let mut cx = Context::from_waker(&w);
        assert_eq!(ch.poll_wait(&mut cx), Poll::Pending);
        ch.mask();
        xen.raise(ch.port()); // pending, but masked: no selector, no upcall
        assert!(!g.upcall_pending());
        assert_eq!(g.demux().ports_delivered, 0);
        assert_eq!(count.get(), 0);
        ch.unmask();
        assert_eq!(count.get(), 1);
        assert_eq!(g.event_stats().delivered_on_unmask, 1);
        assert_eq!(ch.poll_wait(&mut cx), Poll::Ready(()));
        // The pending bit was consumed: the next demux delivers nothing.
        assert_eq!(g.demux().ports_delivered, 0);
        // Unmask with nothing pending delivers nothing.
        ch.unmask();
        assert_eq!(count.get(), 1);
    }

    /// Property 1, for toolstack ports.
    #[test]
    fn attach_keeps_events_that_came_first() {
        let xen = MockXen::new();
        let g = xen.guest();
        xen.raise(Port(1));
        g.demux();
        assert_eq!(g.event_stats().unclaimed, 1);
        let ch = g.xenstore_channel().unwrap();
        assert_eq!(ch.port(), Port(1));
        let (w, _) = counting_waker();
        assert_eq!(ch.poll_wait(&mut Context::from_waker(&w)), Poll::Ready(()));
        drop(ch);
        assert!(
            !xen.calls.borrow().contains(&Call::Close(Port(1))),
            "toolstack ports are never closed"
        );
    }

    #[test]
    fn fresh_binding_forgets_an_earlier_use_of_the_port() {
        let xen = MockXen::new();
        let g = xen.guest();
        xen.raise(Port(10));
        g.demux();
        let ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        assert_eq!(ch.port(), Port(10));
        let (w, _) = counting_waker();
        assert_eq!(ch.poll_wait(&mut Context::from_waker(&w)), Poll::Pending);
    }

    /// Property 2 of the module docs.
    #[test]
    fn every_handle_sees_every_event() {
        let xen = MockXen::new();
        let g = xen.guest();
        let a = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        let b = a.try_clone().unwrap();
        let (wa, ca) = counting_waker();
        let (wb, cb) = counting_waker();
        assert!(a.poll_wait(&mut Context::from_waker(&wa)).is_pending());
        assert!(b.poll_wait(&mut Context::from_waker(&wb)).is_pending());
        xen.raise(a.port());
        g.demux();
        assert_eq!((ca.get(), cb.get()), (1, 1));
        assert!(a.poll_wait(&mut Context::from_waker(&wa)).is_ready());
        assert!(b.poll_wait(&mut Context::from_waker(&wb)).is_ready());
        let c = a.try_clone().unwrap();
        let d = a.try_clone().unwrap();
        assert_eq!(
            a.try_clone().unwrap_err(),
            BindError::TooManyHandles(a.port())
        );
        drop(c);
        let _e = d.try_clone().unwrap();
        // Dropping some handles does not close the port.
        drop(b);
        drop(d);
        assert!(!xen
            .calls
            .borrow()
            .iter()
            .any(|c| matches!(c, Call::Close(_))));
    }

    #[test]
    fn last_handle_closes_masks_and_clears() {
        let xen = MockXen::new();
        let g = xen.guest();
        let ch = EventChannel::alloc_unbound(&g, DomId(2)).unwrap();
        let p = ch.port();
        let ch2 = ch.try_clone().unwrap();
        ch.mask();
        xen.raise(p);
        assert!(ch.close().is_ok());
        assert!(!xen.calls.borrow().contains(&Call::Close(p)));
        drop(ch2);
        assert_eq!(xen.calls.borrow().last(), Some(&Call::Close(p)));
        let (w, bit) = word_bit(p);
        assert_eq!(
            xen.shared().evtchn_pending[w].load(Ordering::SeqCst) & bit,
            0
        );
        assert_ne!(xen.shared().evtchn_mask[w].load(Ordering::SeqCst) & bit, 0);
    }

    #[test]
    fn bind_errors() {
        let xen = MockXen::new();
        let g = xen.guest();
        xen.fail_next_bind.set(Some(XenError::ENOSPC));
        assert_eq!(
            EventChannel::bind_virq(&g, Virq::Timer).unwrap_err(),
            BindError::Hypervisor(XenError::ENOSPC)
        );
        xen.next_bind_port.set(Some(5000));
        assert_eq!(
            EventChannel::bind_interdomain(&g, DomId(0), Port(3)).unwrap_err(),
            BindError::PortOutOfRange(Port(5000))
        );
        assert_eq!(xen.calls.borrow().last(), Some(&Call::Close(Port(5000))));
        let a = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        xen.next_bind_port.set(Some(a.port().0));
        assert_eq!(
            EventChannel::alloc_unbound(&g, DomId(0)).unwrap_err(),
            BindError::PortInUse(a.port())
        );
        assert_eq!(
            EventChannel::attach(&g, Port(4096)).unwrap_err(),
            BindError::PortOutOfRange(Port(4096))
        );
    }

    #[test]
    fn notify_sends_and_virq_binds() {
        let xen = MockXen::new();
        let g = xen.guest();
        let ch = EventChannel::bind_virq(&g, Virq::Timer).unwrap();
        ch.notify().unwrap();
        assert_eq!(
            &xen.calls.borrow()[..],
            &[
                Call::BindVirq(Virq::Timer, ch.port()),
                Call::Send(ch.port())
            ]
        );
    }

    #[test]
    fn stream_yields_per_coalesced_batch() {
        let xen = MockXen::new();
        let g = xen.guest();
        let mut ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        let (w, count) = counting_waker();
        let mut cx = Context::from_waker(&w);
        assert_eq!(ch.poll_next_unpin(&mut cx), Poll::Pending);
        xen.raise(ch.port());
        g.demux();
        assert_eq!(count.get(), 1);
        assert_eq!(ch.poll_next_unpin(&mut cx), Poll::Ready(Some(())));
        assert_eq!(ch.poll_next_unpin(&mut cx), Poll::Pending);
        let mut wait = core::pin::pin!(ch.wait());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        xen.raise(ch.port());
        g.demux();
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    proptest::proptest! {
        /// The event bitmap against a model: every raised, unmasked port is
        /// delivered exactly once by the demux, masked ones exactly once on
        /// unmask; the demux reads exactly the words holding unmasked events.
        #[test]
        fn bitmap_matches_model(
            raised in proptest::collection::vec(0u32..4096, 0..200),
            masked in proptest::collection::btree_set(0u32..4096, 0..64),
        ) {
            let si = Box::new(SharedInfo::default());
            for &m in &masked {
                mask_port(&si, Port(m));
            }
            // Xen's side (evtchn_2l_set_pending).
            for &p in &raised {
                let (w, bit) = word_bit(Port(p));
                let was = si.evtchn_pending[w].fetch_or(bit, Ordering::SeqCst);
                if was & bit == 0 && si.evtchn_mask[w].load(Ordering::SeqCst) & bit == 0 {
                    si.vcpu_info[0].evtchn_pending_sel.fetch_or(1 << w, Ordering::SeqCst);
                    si.vcpu_info[0].evtchn_upcall_pending.store(1, Ordering::SeqCst);
                }
            }
            let raised: BTreeSet<u32> = raised.into_iter().collect();
            let expect: BTreeSet<u32> = raised.difference(&masked).copied().collect();
            let words: BTreeSet<u32> = expect.iter().map(|p| p / 64).collect();
            let (got, s) = run(&si);
            proptest::prop_assert_eq!(got.len(), expect.len(), "no duplicates");
            proptest::prop_assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), expect);
            proptest::prop_assert_eq!(s.words_scanned as usize, words.len());
            let mut late = BTreeSet::new();
            for &m in &masked {
                if unmask_port(&si, Port(m)) {
                    late.insert(m);
                }
            }
            let expect_late: BTreeSet<u32> = raised.intersection(&masked).copied().collect();
            proptest::prop_assert_eq!(late, expect_late);
            proptest::prop_assert!(si.evtchn_pending.iter().all(|w| w.load(Ordering::SeqCst) == 0));
            proptest::prop_assert_eq!(run(&si).0.len(), 0);
        }
    }
}
