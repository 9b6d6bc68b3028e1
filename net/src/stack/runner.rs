//! The runner: the one task that polls smoltcp (see the wake rules in the
//! [stack module](super)).

use alloc::rc::Rc;
use core::convert::Infallible;
use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use ringlet_executor::{sleep_until, Instant, Sleep};
use smoltcp::iface::PollIngressSingleResult;
use smoltcp::phy::{Device, DeviceCapabilities};

use super::Shared;
use crate::device::NetDevice;

/// How long the runner waits when smoltcp asks to be polled at once but a
/// run did no work (a guard against spinning; see `StackStats::idle_rechecks`).
pub const IDLE_RECHECK: Duration = Duration::from_millis(1);

/// Drives a [`Stack`](super::Stack): owns its device; spawn
/// [`run`](Runner::run) once.
pub struct Runner<D> {
    shared: Rc<Shared>,
    device: D,
    sleep: Option<Sleep>,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default)]
struct RunOutcome {
    rx: usize,
    tx: usize,
    tx_blocked: bool,
    /// A budget was spent with work left.
    more: bool,
}

impl<D: NetDevice> Runner<D> {
    pub(super) fn new(shared: Rc<Shared>, device: D) -> Self {
        Runner {
            shared,
            device,
            sleep: None,
        }
    }

    /// Runs the stack for as long as the task lives.
    ///
    /// # Cancellation
    ///
    /// Dropping the task stops the stack: sockets then wait forever (their
    /// own timeouts still fire).
    pub async fn run(mut self) -> Infallible {
        poll_fn(|cx| self.poll_run(cx)).await
    }

    /// The device (e.g. to read its counters).
    pub fn device(&self) -> &D {
        &self.device
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Infallible> {
        // Step 1 of a run.
        self.shared.wake_requested.set(false);
        {
            let mut slot = self.shared.runner_waker.borrow_mut();
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        self.device.register_waker(cx.waker());
        let now = Instant::now();
        let snow = to_smol(now);
        let (outcome, deadline) = {
            let mut core = self.shared.core();
            let core = &mut *core;
            let budget = core.config.frames_per_run_max;
            let mut dev = Counted {
                inner: &mut self.device,
                rx: 0,
                tx: 0,
                tx_blocked: false,
            };
            // Step 2: ingress, one frame at a time.
            core.iface.poll_maintenance(snow);
            let mut rx_more = false;
            while dev.rx < budget {
                let r = core
                    .iface
                    .poll_ingress_single(snow, &mut dev, &mut core.sockets);
                if r == PollIngressSingleResult::None {
                    break;
                }
                if dev.rx == budget {
                    rx_more = true;
                }
            }
            // Steps 3 and 4 (and the FIN-stall watchdog).
            core.poll_dhcp();
            let fin_deadline = core.poll_fin_watch(snow);
            core.poll_orphans(snow, false);
            // Step 5: egress.
            let mut tx_more = false;
            loop {
                let before = dev.tx;
                match core.iface.poll_egress(snow, &mut dev, &mut core.sockets) {
                    smoltcp::iface::PollResult::None => break,
                    smoltcp::iface::PollResult::SocketStateChanged => {}
                }
                if dev.tx_blocked || dev.tx == before {
                    break;
                }
                if dev.tx >= budget {
                    tx_more = true;
                    break;
                }
            }
            // Reap what the egress finished (an RST sent, a close done).
            let egress_done = !tx_more && !dev.tx_blocked;
            let orphan_deadline = core.poll_orphans(snow, egress_done);
            let outcome = RunOutcome {
                rx: dev.rx,
                tx: dev.tx,
                tx_blocked: dev.tx_blocked,
                more: rx_more || tx_more,
            };
            let stats = &mut core.stats;
            stats.runs += 1;
            stats.frames_rx += outcome.rx as u64;
            stats.frames_tx += outcome.tx as u64;
            stats.tx_blocked += u64::from(outcome.tx_blocked);
            stats.budget_yields += u64::from(outcome.more);
            let poll_at = core.iface.poll_at(snow, &core.sockets);
            let deadline = [poll_at, orphan_deadline, fin_deadline]
                .into_iter()
                .flatten()
                .min();
            (outcome, deadline)
        };

        // Step 6.
        if outcome.more {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut deadline = deadline.map(to_ringlet);
        if let Some(d) = deadline {
            if d <= now {
                if outcome.tx_blocked {
                    // The device wakes us when it has room.
                    deadline = None;
                } else if outcome.rx > 0 || outcome.tx > 0 {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                } else {
                    self.shared.core().stats.idle_rechecks += 1;
                    deadline = Some(now + IDLE_RECHECK);
                }
            }
        }
        match deadline {
            None => self.sleep = None,
            Some(d) => {
                let sleep = self.sleep.get_or_insert_with(|| sleep_until(d));
                if sleep.deadline() != Some(d) || sleep.is_elapsed() {
                    sleep.reset(d);
                }
                if Pin::new(sleep).poll(cx).is_ready() {
                    // Passed while we worked: run again after the others.
                    cx.waker().wake_by_ref();
                }
            }
        }
        Poll::Pending
    }
}

impl<D> fmt::Debug for Runner<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("sleep", &self.sleep)
            .finish_non_exhaustive()
    }
}

/// The executor's instant as smoltcp's (microseconds).
pub(crate) fn to_smol(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(t.as_nanos() / 1000).unwrap_or(i64::MAX))
}

/// smoltcp's instant as the executor's (negative: the origin).
pub(crate) fn to_ringlet(t: smoltcp::time::Instant) -> Instant {
    Instant::from_nanos(
        u64::try_from(t.total_micros())
            .unwrap_or(0)
            .saturating_mul(1000),
    )
}

/// The device as smoltcp sees it during one run: counts frames and notes a
/// full transmit queue.
struct Counted<'d, D> {
    inner: &'d mut D,
    rx: usize,
    tx: usize,
    tx_blocked: bool,
}

impl<D: Device> Device for Counted<'_, D> {
    type RxToken<'a>
        = D::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(
        &mut self,
        now: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let r = self.inner.receive(now);
        if r.is_some() {
            self.rx += 1;
        }
        r
    }

    fn transmit(&mut self, now: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        let t = self.inner.transmit(now);
        match t {
            Some(_) => self.tx += 1,
            None => self.tx_blocked = true,
        }
        t
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}
