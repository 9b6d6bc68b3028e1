//! The executor's platform for one Xen domain: the hypervisor's clock,
//! event-channel demux as the poll step, and `Hypervisor::block` as the idle
//! step.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use ringlet_executor::platform::{Platform, Unpark};

use crate::guest::Guest;

/// The flag an [`Unpark`] sets and the next park consumes.
#[derive(Debug, Default)]
struct UnparkFlag(AtomicBool);

impl Unpark for UnparkFlag {
    fn unpark(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// [`Platform`] over one domain's [`Guest`].
///
/// - `now_ns`: the hypervisor's monotonic clock (pvclock; virtual on the sim).
/// - `poll`: [`Guest::demux`], then a retry of deferred grant ends.
/// - `park(deadline)`: unless an unpark was issued, an upcall is pending, or
///   the deadline has passed, `Hypervisor::block(deadline)`; then `poll`.
///
/// `unpark` only sets a flag that the next park checks: on Xen the only
/// context besides the executor is the upcall handler, and the interrupt
/// itself ends the halt. An `unpark` from another thread while the vCPU is
/// blocked is seen when `block` returns (next event or deadline).
///
/// The software Xen's multi-domain platform runs [`Guest::demux`] per
/// domain itself; this type is for a single domain.
#[derive(Debug)]
pub struct XenPlatform {
    guest: Guest,
    unpark: Arc<UnparkFlag>,
}

impl XenPlatform {
    /// The platform for `guest`.
    pub fn new(guest: Guest) -> XenPlatform {
        XenPlatform {
            guest,
            unpark: Arc::new(UnparkFlag::default()),
        }
    }

    /// The guest whose events this platform delivers.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }
}

impl Platform for XenPlatform {
    fn now_ns(&self) -> u64 {
        self.guest.now_ns()
    }

    fn poll(&self) {
        self.guest.demux();
        if self.guest.grant_stats().deferred > 0 {
            self.guest.reclaim_grants();
        }
    }

    fn park(&self, deadline_ns: Option<u64>) {
        let unparked = self.unpark.0.swap(false, Ordering::AcqRel);
        let expired = deadline_ns.is_some_and(|d| self.guest.now_ns() >= d);
        if !unparked && !expired && !self.guest.upcall_pending() {
            self.guest.hypervisor().block(deadline_ns);
        }
        self.poll();
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::evtchn::EventChannel;
    use crate::hypervisor::DomId;
    use crate::testing::{counting_waker, Call, MockXen};
    use core::task::Context;

    fn blocks(xen: &MockXen) -> usize {
        xen.calls
            .borrow()
            .iter()
            .filter(|c| matches!(c, Call::Block(_)))
            .count()
    }

    #[test]
    fn idle_park_blocks_until_the_deadline() {
        let xen = MockXen::new();
        let p = XenPlatform::new(xen.guest());
        xen.now.set(100);
        assert_eq!(p.now_ns(), 100);
        p.park(Some(1_000));
        assert_eq!(xen.calls.borrow().last(), Some(&Call::Block(Some(1_000))));
        assert_eq!(p.now_ns(), 1_000);
    }

    #[test]
    fn expired_deadline_or_pending_upcall_does_not_block() {
        let xen = MockXen::new();
        let g = xen.guest();
        let p = XenPlatform::new(g.clone());
        xen.now.set(500);
        p.park(Some(500));
        assert_eq!(blocks(&xen), 0);
        let ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        let (w, count) = counting_waker();
        assert!(ch.poll_wait(&mut Context::from_waker(&w)).is_pending());
        xen.raise(ch.port());
        p.park(None);
        assert_eq!(blocks(&xen), 0, "an upcall was pending");
        assert_eq!(count.get(), 1, "park delivered it");
    }

    #[test]
    fn event_during_block_is_delivered() {
        let xen = MockXen::new();
        let g = xen.guest();
        let p = XenPlatform::new(g.clone());
        let ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        let (w, count) = counting_waker();
        assert!(ch.poll_wait(&mut Context::from_waker(&w)).is_pending());
        xen.on_block.borrow_mut().push_back(ch.port());
        p.park(None);
        assert_eq!(blocks(&xen), 1);
        assert_eq!(count.get(), 1);
    }

    #[test]
    fn unpark_before_park_ends_it_once() {
        let xen = MockXen::new();
        let p = XenPlatform::new(xen.guest());
        let u = p.unparker();
        u.unpark();
        p.park(None);
        assert_eq!(blocks(&xen), 0);
        p.park(Some(10));
        assert_eq!(blocks(&xen), 1, "the unpark was consumed");
    }

    #[test]
    fn poll_demuxes_without_blocking() {
        let xen = MockXen::new();
        let g = xen.guest();
        let p = XenPlatform::new(g.clone());
        let ch = EventChannel::alloc_unbound(&g, DomId(0)).unwrap();
        xen.raise(ch.port());
        p.poll();
        assert!(ch.has_event());
        assert_eq!(blocks(&xen), 0);
    }
}
