//! What an appliance's `main` receives: [`Env`], and the shutdown request
//! the toolstack can make while it runs.
//!
//! # Shutdown requests
//!
//! The toolstack asks a guest to stop by writing `poweroff` or `reboot` to
//! the guest's `control/shutdown` xenstore key (`xl shutdown`, `xl reboot`).
//! The runtime watches that key and records the first valid request in a
//! [`ShutdownSignal`]; [`Env::shutdown_requested`] resolves once there is
//! one, so the appliance can finish its work and return from `main`. The
//! runtime acknowledges the request (clears the key) when `main` returns, and
//! shuts down with the requested reason.
//!
//! State of a signal (transitions numbered for the tests):
//! ```text
//!   Idle --(1) request(kind)--> Requested(kind)
//!   Requested(kind) --(2) request(other)--> Requested(kind)   first one wins
//! ```
//! Waiters registered while Idle are woken by (1).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use ringlet_xen::guest::Guest;
use ringlet_xen::xenstore::client::{RequestError, Xenstore};
use ringlet_xen::xenstore::wire::XenstoreError;

/// The most tasks that may wait on [`Env::shutdown_requested`] at once; a
/// further waiter replaces the oldest (which is then polled again when the
/// request comes, since its waker is woken first).
pub const SHUTDOWN_WAITERS_MAX: usize = 16;

/// What the toolstack asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownKind {
    /// `poweroff` (`xl shutdown`, or `halt`).
    Poweroff,
    /// `reboot` (`xl reboot`).
    Reboot,
}

impl ShutdownKind {
    /// Parses the value of `control/shutdown`. Empty (acknowledged) and
    /// unknown values (e.g. `suspend`, which Ringlet does not support) are
    /// `None`.
    pub fn parse(value: &[u8]) -> Option<ShutdownKind> {
        match value {
            b"poweroff" | b"halt" => Some(ShutdownKind::Poweroff),
            b"reboot" => Some(ShutdownKind::Reboot),
            _ => None,
        }
    }

    /// The word the toolstack writes (`poweroff`, `reboot`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownKind::Poweroff => "poweroff",
            ShutdownKind::Reboot => "reboot",
        }
    }
}

impl fmt::Display for ShutdownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Default)]
struct SignalState {
    requested: Option<ShutdownKind>,
    waiters: Vec<Waker>,
}

/// The shutdown request, shared between the runtime's watch and the
/// appliance. Cheap to clone; executor context only (`!Send`).
#[derive(Clone, Debug, Default)]
pub struct ShutdownSignal {
    state: Rc<RefCell<SignalState>>,
}

impl ShutdownSignal {
    /// A signal with no request yet.
    pub fn new() -> ShutdownSignal {
        ShutdownSignal::default()
    }

    /// Records a request (transition 1); a later one is ignored (2).
    pub fn request(&self, kind: ShutdownKind) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            if state.requested.is_some() {
                return;
            }
            state.requested = Some(kind);
            core::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// The request, if one was made.
    pub fn requested(&self) -> Option<ShutdownKind> {
        self.state.borrow().requested
    }

    /// Resolves with the request once there is one.
    ///
    /// # Cancellation
    ///
    /// Cancel-safe: dropping the future loses nothing.
    pub fn wait(&self) -> ShutdownRequested {
        ShutdownRequested {
            signal: self.clone(),
        }
    }
}

/// Future of [`ShutdownSignal::wait`] and [`Env::shutdown_requested`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ShutdownRequested {
    signal: ShutdownSignal,
}

impl Future for ShutdownRequested {
    type Output = ShutdownKind;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ShutdownKind> {
        let mut state = self.signal.state.borrow_mut();
        if let Some(kind) = state.requested {
            return Poll::Ready(kind);
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            if state.waiters.len() == SHUTDOWN_WAITERS_MAX {
                let oldest = state.waiters.remove(0);
                oldest.wake();
            }
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The xenstore key the toolstack writes a shutdown request to (relative to
/// the domain's home, `/local/domain/<domid>`).
pub const CONTROL_SHUTDOWN: &str = "control/shutdown";

/// Watches [`CONTROL_SHUTDOWN`] and records the first valid request in
/// `signal`, then returns. Empty and unknown values are ignored. Runs as a
/// task for the whole life of `main`.
pub(crate) async fn watch_shutdown(xenstore: Xenstore, signal: ShutdownSignal) {
    let mut watch = match xenstore.watch(CONTROL_SHUTDOWN).await {
        Ok(watch) => watch,
        Err(e) => {
            log::warn!("no shutdown watch ({e}): `xl shutdown` will not reach the appliance");
            return;
        }
    };
    // The daemon fires once at registration, so a request written before the
    // watch existed is seen too.
    while watch.next().await.is_some() {
        match xenstore.read(CONTROL_SHUTDOWN).await {
            Ok(value) => {
                if let Some(kind) = ShutdownKind::parse(&value) {
                    signal.request(kind);
                    return;
                }
                if !value.is_empty() {
                    log::warn!(
                        "ignoring {CONTROL_SHUTDOWN} = {:?}",
                        alloc::string::String::from_utf8_lossy(&value)
                    );
                }
            }
            Err(RequestError::Xenstore(XenstoreError::NoEnt)) => {}
            Err(e) => log::warn!("reading {CONTROL_SHUTDOWN}: {e}"),
        }
    }
    log::warn!("the shutdown watch ended (xenstore connection broken)");
}

/// Acknowledges a shutdown request the way guests do: the key is emptied.
pub(crate) async fn acknowledge_shutdown(xenstore: &Xenstore) {
    if let Err(e) = xenstore.write(CONTROL_SHUTDOWN, b"").await {
        log::warn!("acknowledging {CONTROL_SHUTDOWN}: {e}");
    }
}

/// What an appliance's `main` receives.
///
/// - [`guest`](Env::guest): the domain's handle for drivers (event channels,
///   grants, pages, the xenstore and console rings);
/// - [`cmdline`](Env::cmdline): the kernel command line (xl's `extra=`; on
///   the sim, the program's arguments joined by spaces);
/// - [`hypervisor`](Env::hypervisor): e.g. `Xen 4.17.7`;
/// - [`xenstore`](Env::xenstore): the xenstore client;
/// - [`shutdown_requested`](Env::shutdown_requested): resolves when the
///   toolstack asks the domain to stop.
#[derive(Debug, Clone)]
pub struct Env {
    guest: Guest,
    cmdline: Rc<str>,
    hypervisor: Rc<str>,
    xenstore: Option<Xenstore>,
    shutdown: ShutdownSignal,
    #[cfg(all(feature = "sim", not(target_os = "none")))]
    sim: Option<(ringlet_xen::sim::SimXen, ringlet_xen::hypervisor::DomId)>,
}

impl Env {
    /// Assembled by the runtime.
    pub(crate) fn new(
        guest: Guest,
        cmdline: &str,
        hypervisor: &str,
        xenstore: Option<Xenstore>,
        shutdown: ShutdownSignal,
    ) -> Env {
        Env {
            guest,
            cmdline: Rc::from(cmdline),
            hypervisor: Rc::from(hypervisor),
            xenstore,
            shutdown,
            #[cfg(all(feature = "sim", not(target_os = "none")))]
            sim: None,
        }
    }

    /// On the software Xen: the world this guest runs in (to play dom0's
    /// part in a demo or test) and the guest's domain id. Hosted builds with
    /// the `sim` feature only.
    #[cfg(all(feature = "sim", not(target_os = "none")))]
    pub fn sim(&self) -> Option<(&ringlet_xen::sim::SimXen, ringlet_xen::hypervisor::DomId)> {
        self.sim.as_ref().map(|(sim, id)| (sim, *id))
    }

    #[cfg(all(feature = "sim", not(target_os = "none")))]
    pub(crate) fn set_sim(
        &mut self,
        sim: ringlet_xen::sim::SimXen,
        id: ringlet_xen::hypervisor::DomId,
    ) {
        self.sim = Some((sim, id));
    }

    /// The domain's xenstore connection (shared with the runtime's shutdown
    /// watch and with drivers). `None` only if the toolstack gave the domain
    /// no xenstore ring (the runtime logged why).
    pub fn xenstore(&self) -> Option<&Xenstore> {
        self.xenstore.as_ref()
    }

    /// What runs the guest: `Xen 4.17.7` (from `XENVER_version` and
    /// `XENVER_extraversion`), or the software Xen's name on the sim.
    pub fn hypervisor(&self) -> &str {
        &self.hypervisor
    }

    /// The domain's handle, for drivers.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// Whether the command line has `word` as one of its space-separated
    /// words.
    pub fn cmdline_has(&self, word: &str) -> bool {
        self.cmdline.split_ascii_whitespace().any(|w| w == word)
    }

    /// The request so far, without waiting.
    pub fn shutdown_request(&self) -> Option<ShutdownKind> {
        self.shutdown.requested()
    }

    /// Resolves once the toolstack asked the domain to power off or reboot
    /// (`control/shutdown`). Return from `main` afterwards: the runtime then
    /// shuts down with the requested reason.
    ///
    /// # Cancellation
    ///
    /// Cancel-safe.
    pub fn shutdown_requested(&self) -> ShutdownRequested {
        self.shutdown.wait()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut ShutdownRequested, waker: &Waker) -> Poll<ShutdownKind> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn parses_the_toolstack_words() {
        assert_eq!(
            ShutdownKind::parse(b"poweroff"),
            Some(ShutdownKind::Poweroff)
        );
        assert_eq!(ShutdownKind::parse(b"halt"), Some(ShutdownKind::Poweroff));
        assert_eq!(ShutdownKind::parse(b"reboot"), Some(ShutdownKind::Reboot));
        assert_eq!(ShutdownKind::parse(b""), None);
        assert_eq!(ShutdownKind::parse(b"suspend"), None);
        assert_eq!(ShutdownKind::parse(b"poweroff\0"), None);
    }

    #[test]
    fn a_request_wakes_waiters_and_the_first_wins() {
        let signal = ShutdownSignal::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut f = signal.wait();
        assert_eq!(poll(&mut f, &waker), Poll::Pending);
        // Polling again with the same waker does not register it twice.
        assert_eq!(poll(&mut f, &waker), Poll::Pending);
        signal.request(ShutdownKind::Reboot); // (1)
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        signal.request(ShutdownKind::Poweroff); // (2)
        assert_eq!(poll(&mut f, &waker), Poll::Ready(ShutdownKind::Reboot));
        assert_eq!(
            poll(&mut signal.wait(), &waker),
            Poll::Ready(ShutdownKind::Reboot)
        );
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn waiters_are_bounded() {
        let signal = ShutdownSignal::new();
        let counts: Vec<_> = (0..=SHUTDOWN_WAITERS_MAX)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let mut futures: Vec<_> = counts.iter().map(|_| signal.wait()).collect();
        for (f, c) in futures.iter_mut().zip(&counts) {
            assert_eq!(poll(f, &Waker::from(c.clone())), Poll::Pending);
        }
        // The first waiter was pushed out (and woken so it re-registers).
        assert_eq!(counts[0].0.load(Ordering::SeqCst), 1);
        assert_eq!(signal.state.borrow().waiters.len(), SHUTDOWN_WAITERS_MAX);
    }
}
