//! The software Xen: a deterministic, single-threaded hypervisor in the same
//! process, for testing everything above the [`Hypervisor`] trait.
//!
//! A [`SimXen`] is a world of domains: dom0 and the guests made with
//! [`SimXen::create_domain`]. Each domain's [`SimDomain`] implements
//! [`Hypervisor`] with Xen's own data layouts (a shared-info page with the
//! 2-level event bitmaps, a v1 grant table, real heap pages with guest frame
//! numbers, xenstore and console ring pages), so the guest code above it —
//! event-channel demux, grant bookkeeping, rings, the xenstore client — is
//! the code that runs on Xen.
//!
//! The world is deterministic:
//!
//! - one thread; no real clock: time is virtual ([`SimXen::now_ns`]) and
//!   only moves when everything is idle, straight to the next deadline or
//!   scheduled event;
//! - one `u64` seed ([`SimConfig::seed`]) feeds the sim's own PRNG
//!   ([`prng`]), which hands a sub-seed to each part (fault sites, backends,
//!   workloads);
//! - every event delivery, hypercall outcome and ring message goes into a
//!   [`trace`], whose digest two runs of a seed share byte for byte.
//!
//! Faults ([`faults`]) are chosen per run: late, repeated and spurious
//! events, xenstore `EAGAIN` and malformed replies, backend state changes and
//! malformed ring responses — only what real Xen and real (possibly hostile)
//! backends can do.
//!
//! The world is the executor's [`Platform`]: `now_ns` is virtual time, `poll`
//! delivers due events and runs each domain's demux, and `park` jumps time
//! forward. A run where nothing can ever happen again is a deadlock, and the
//! world says so instead of hanging ([`StallPolicy`]).
//!
//! # Real time
//!
//! A world that talks to the outside (a hosted appliance bridged to a TAP
//! device) cannot skip idle time: the host's TCP does not wait. Such a world
//! follows the wall clock ([`SimClock::RealTime`], built with
//! [`SimConfig::real_time`] or switched with [`SimXen::follow_wall_clock`]):
//! virtual time is the monotonic clock (`std::time::Instant`) since the
//! switch, plus the virtual time at the switch; `park` with nothing to do
//! sleeps for real (a thread park) until the earlier of its deadline and the
//! next scheduled event, or until an [`Unpark`] from another thread (a
//! remote waker: a TAP reader, a signal thread). Virtual time never runs
//! ahead of the wall clock. Such a run is not reproducible, and a park with
//! nothing scheduled waits for an outside wake instead of declaring a stall.
//! Deterministic worlds ([`SimClock::Virtual`], the default) never read the
//! wall clock.
//!
//! See docs/sim-testing.md for how to write a sim test and replay a seed.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::thread::{self, Thread};
use std::time::Instant;

use ringlet_executor::platform::{Platform, Unpark};

use crate::guest::Guest;
use crate::hypervisor::{DomId, Hypervisor};

pub mod backring;
mod console;
pub mod domain;
pub mod echo;
pub mod evtchn;
pub mod faults;
#[allow(unsafe_code)]
mod frame;
pub mod grant;
pub mod prng;
pub mod trace;
mod world;
pub mod xenbus;
pub mod xenstored;

pub use domain::{DomainConfig, SimDomain};
pub use faults::{FaultSite, Faults};
pub use grant::{GrantError, GrantMapping};
pub use prng::{Prng, Ratio};
pub use trace::{TraceEntry, TraceEvent, TraceMode};

use evtchn::Service;
use trace::Trace;
use world::State;
use xenstored::{XenstoreRingServer, XenstoredState};

/// The environment variable that chooses the seed of a sim run
/// ([`SimConfig::seed_from_env`]).
pub const SEED_ENV: &str = "RINGLET_SEED";

/// Default of [`SimConfig::parks_at_same_time_max`]: consecutive parks
/// without virtual time moving before the world declares a livelock (tasks
/// that keep notifying each other forever at one instant). High enough for
/// any real workload at one instant; a backstop against a hung test.
pub const PARKS_AT_SAME_TIME_MAX: u64 = 10_000_000;

/// Rounds of service work (xenstored, console) per poll, a bound against two
/// daemons notifying each other forever.
pub const SERVICE_ROUNDS_MAX: usize = 64;

/// What the world does when nothing can ever happen again: no task is
/// runnable, no deadline is armed and no event is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallPolicy {
    /// Panic with the seed and the time (the default: a test that would
    /// hang fails at once and says why).
    Panic,
    /// Count the stall ([`SimXen::stalls`]) and return from `park`; the
    /// caller must notice (e.g. drive the executor with `step` and check).
    Count,
}

/// How the world's virtual time moves (module docs, "Real time").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimClock {
    /// Deterministic (the default): time moves only when everything is
    /// idle, straight to the next deadline or scheduled event; `park` never
    /// sleeps.
    #[default]
    Virtual,
    /// Time follows the monotonic wall clock; an idle `park` sleeps for real
    /// until the next deadline or event, or until an [`Unpark`]. Not
    /// reproducible; no stall detection.
    RealTime,
}

/// How a world is built. Its `Debug` is printed at the start of every run.
#[derive(Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The one seed everything random derives from.
    pub seed: u64,
    /// The faults to inject.
    pub faults: Faults,
    /// What a stall does.
    pub on_stall: StallPolicy,
    /// Virtual time after which the run is declared a livelock (a panic);
    /// `None`: no limit.
    pub time_ns_max: Option<u64>,
    /// Consecutive executor parks at one virtual instant after which the run
    /// is declared a livelock (a panic); `None`: no limit.
    pub parks_at_same_time_max: Option<u64>,
    /// How much trace to keep.
    pub trace: TraceMode,
    /// Echo each domain's early console to stderr.
    pub echo_console: bool,
    /// Print the seed and this config when the world is built.
    pub print_header: bool,
    /// How virtual time moves.
    pub clock: SimClock,
}

impl SimConfig {
    /// A fault-free world seeded with `seed`.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            faults: Faults::none(),
            on_stall: StallPolicy::Panic,
            time_ns_max: None,
            parks_at_same_time_max: Some(PARKS_AT_SAME_TIME_MAX),
            trace: TraceMode::Digest,
            echo_console: false,
            print_header: true,
            clock: SimClock::Virtual,
        }
    }

    /// A world seeded with `seed` whose faults the seed chooses too
    /// ([`Faults::from_seed`]).
    pub fn seeded(seed: u64) -> SimConfig {
        SimConfig {
            faults: Faults::from_seed(seed),
            ..SimConfig::new(seed)
        }
    }

    /// The seed in [`SEED_ENV`] (decimal or `0x` hex), if set and valid.
    pub fn seed_from_env() -> Option<u64> {
        let v = std::env::var(SEED_ENV).ok()?;
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }

    /// This config with `faults`.
    #[must_use]
    pub fn with_faults(mut self, faults: Faults) -> SimConfig {
        self.faults = faults;
        self
    }

    /// This config keeping the full trace.
    #[must_use]
    pub fn full_trace(mut self) -> SimConfig {
        self.trace = TraceMode::Full;
        self
    }

    /// This config without the start-of-run header.
    #[must_use]
    pub fn quiet(mut self) -> SimConfig {
        self.print_header = false;
        self
    }

    /// This config with virtual time following the wall clock
    /// ([`SimClock::RealTime`]), for worlds that talk to the outside.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringlet_executor::{sleep, Duration, Executor};
    /// use ringlet_xen::sim::{SimConfig, SimXen};
    ///
    /// let sim = SimXen::new(SimConfig::new(1).quiet().real_time());
    /// let wall = std::time::Instant::now();
    /// Executor::new(sim.clone()).block_on(sleep(Duration::from_millis(5)));
    /// assert!(wall.elapsed() >= Duration::from_millis(5), "slept for real");
    /// assert!(sim.now_ns() >= 5_000_000);
    /// ```
    #[must_use]
    pub fn real_time(mut self) -> SimConfig {
        self.clock = SimClock::RealTime;
        self
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &format_args!("{:#x}", self.seed))
            .field("faults", &self.faults)
            .field("on_stall", &self.on_stall)
            .field("time_ns_max", &self.time_ns_max)
            .field("parks_at_same_time_max", &self.parks_at_same_time_max)
            .field("trace", &self.trace)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// The flag an [`Unpark`] sets and the next park consumes; in real time
/// also a thread unpark of the world's thread (which may be asleep in
/// `park`). The thread unpark (a futex wake on Linux: no allocation, no
/// lock) is paid only by the unpark that sets the flag, so repeated unparks
/// coalesce; the flag, not the thread's park token, carries the wake.
#[derive(Debug)]
struct SimUnpark {
    notified: AtomicBool,
    /// The world is in real time: its thread may sleep in `park`.
    real_time: AtomicBool,
    /// The thread that built the world (a world is `!Send`: it parks there).
    thread: Thread,
}

impl Unpark for SimUnpark {
    fn unpark(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) && self.real_time.load(Ordering::Acquire) {
            self.thread.unpark();
        }
    }
}

/// The wall clock a real-time world follows: virtual `origin_ns` at the
/// instant `origin`.
#[derive(Clone, Copy, Debug)]
struct WallClock {
    origin: Instant,
    origin_ns: u64,
}

impl WallClock {
    /// Virtual time now by the wall clock.
    fn now_ns(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.origin_ns.saturating_add(elapsed)
    }
}

/// The shared core behind every handle.
pub(crate) struct World {
    pub(crate) config: SimConfig,
    pub(crate) state: RefCell<State>,
    /// The xenstore daemon and its ring connections.
    pub(crate) xenstored: RefCell<XenstoreRingServer>,
    /// Each domain's guest-side handle (event table, grant table), whose
    /// demux the world runs; made on first use by [`SimXen::guest`].
    guests: RefCell<BTreeMap<DomId, Guest>>,
    /// dom0's xenstore client, shared by the backends (made on first use).
    pub(crate) dom0_xenstore: RefCell<Option<crate::xenstore::Xenstore>>,
    unpark: Arc<SimUnpark>,
    /// Set once the world follows the wall clock ([`SimClock::RealTime`]).
    wall: Cell<Option<WallClock>>,
    /// Consecutive parks at the same virtual time.
    parks_without_progress: Cell<u64>,
    parked_at_ns: Cell<u64>,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The software Xen: a world of domains. Cloning gives another handle on the
/// same world.
///
/// # Examples
///
/// ```
/// use ringlet_xen::hypervisor::{DomId, Hypervisor};
/// use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
///
/// let sim = SimXen::new(SimConfig::new(1).quiet());
/// let guest = sim.create_domain(DomainConfig::new("guest"));
/// let dom0 = sim.dom0();
/// let port = guest.evtchn_alloc_unbound(DomId::DOM0).unwrap();
/// let back = dom0.evtchn_bind_interdomain(guest.id(), port).unwrap();
/// dom0.evtchn_send(back).unwrap();
/// assert!(guest.upcall_pending());
/// ```
#[derive(Clone)]
pub struct SimXen {
    pub(crate) world: Rc<World>,
}

impl fmt::Debug for SimXen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimXen")
            .field("seed", &self.world.config.seed)
            .field("now_ns", &self.now_ns())
            .finish_non_exhaustive()
    }
}

impl SimXen {
    /// A world with dom0 only, built from `config`. Prints the seed and the
    /// config to stderr first (unless [`SimConfig::print_header`] is off).
    pub fn new(config: SimConfig) -> SimXen {
        if config.print_header {
            std::eprintln!("ringlet sim: seed {} {:?}", config.seed, config);
        }
        let state = State::new(config.seed, config.faults.clone(), Trace::new(config.trace));
        let world = Rc::new(World {
            config,
            state: RefCell::new(state),
            xenstored: RefCell::new(XenstoreRingServer::new(XenstoredState::default())),
            guests: RefCell::new(BTreeMap::new()),
            dom0_xenstore: RefCell::new(None),
            unpark: Arc::new(SimUnpark {
                notified: AtomicBool::new(false),
                real_time: AtomicBool::new(false),
                thread: thread::current(),
            }),
            wall: Cell::new(None),
            parks_without_progress: Cell::new(0),
            parked_at_ns: Cell::new(0),
        });
        let dom0 = world.create_domain(&DomainConfig::new("Domain-0"));
        assert_eq!(dom0, DomId::DOM0);
        let sim = SimXen { world };
        if sim.world.config.clock == SimClock::RealTime {
            sim.follow_wall_clock();
        }
        sim
    }

    /// Switches the world to [`SimClock::RealTime`] from now on: virtual
    /// time goes on from its current value at the pace of the monotonic
    /// wall clock, and an idle `park` sleeps for real (module docs, "Real
    /// time"). Does nothing if the world already follows the wall clock.
    /// There is no way back.
    ///
    /// For a world built deterministic by someone else (the hosted runtime
    /// builds its world before the appliance reads its arguments) that is
    /// about to talk to the outside. Must be called on the world's thread.
    pub fn follow_wall_clock(&self) {
        if self.world.wall.get().is_some() {
            return;
        }
        let origin_ns = self.world.state.borrow().now_ns;
        self.world.wall.set(Some(WallClock {
            origin: Instant::now(),
            origin_ns,
        }));
        self.world.unpark.real_time.store(true, Ordering::Release);
    }

    /// How the world's time moves now.
    pub fn clock(&self) -> SimClock {
        match self.world.wall.get() {
            Some(_) => SimClock::RealTime,
            None => SimClock::Virtual,
        }
    }

    /// The config the world was built with.
    pub fn config(&self) -> &SimConfig {
        &self.world.config
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.world.config.seed
    }

    /// A new guest domain.
    pub fn create_domain(&self, config: DomainConfig) -> SimDomain {
        let id = self.world.create_domain(&config);
        self.domain(id).expect("just created")
    }

    /// dom0: the domain the sim's daemons and backends run in.
    pub fn dom0(&self) -> SimDomain {
        self.domain(DomId::DOM0).expect("dom0 always exists")
    }

    /// The domain `id`, if it exists.
    pub fn domain(&self, id: DomId) -> Option<SimDomain> {
        let mem = self.world.state.borrow().mem(id)?;
        Some(SimDomain {
            world: Rc::downgrade(&self.world),
            id,
            mem,
        })
    }

    /// The domain `id` as its drivers see it: the one [`Guest`] handle of
    /// that domain (made on first call; later calls return the same one).
    /// The world runs its event demux in [`Platform::poll`] and `park`, as
    /// the domain's own upcall handler and idle loop would.
    ///
    /// # Panics
    ///
    /// If the domain does not exist.
    pub fn guest(&self, id: DomId) -> Guest {
        if let Some(g) = self.world.guests.borrow().get(&id) {
            return g.clone();
        }
        let dom = self.domain(id).expect("no such sim domain");
        let g = Guest::new(dom.as_hypervisor());
        self.world.guests.borrow_mut().insert(id, g.clone());
        g
    }

    /// Virtual time in ns (in real time: at least the wall clock's reading).
    pub fn now_ns(&self) -> u64 {
        self.world.now_ns()
    }

    /// A generator for the part `label` of this run (a backend, a workload):
    /// seeded from the run's seed and the label only.
    pub fn prng(&self, label: &str) -> Prng {
        Prng::for_part(self.seed(), label)
    }

    /// A new generator for a part made at run time (a ring, a connection):
    /// the n-th call of a run always gives the same generator.
    pub fn fork_prng(&self) -> Prng {
        self.world.state.borrow_mut().fork_prng.fork()
    }

    /// Whether the fault `site` fires now against `dom` (recorded in the
    /// trace when it does). Backends call this at their fault sites.
    pub fn fault(&self, site: FaultSite, dom: DomId) -> bool {
        self.world.state.borrow_mut().fault(site, dom)
    }

    /// The faults this run injects.
    pub fn faults(&self) -> Faults {
        self.world.config.faults.clone()
    }

    /// Records a free-form note in the trace.
    pub fn note(&self, dom: DomId, text: impl Into<String>) {
        self.world.state.borrow_mut().note(dom, text.into());
    }

    /// The digest of the trace so far.
    pub fn trace_digest(&self) -> u64 {
        self.world.state.borrow().trace.digest()
    }

    /// How many trace entries were recorded.
    pub fn trace_count(&self) -> u64 {
        self.world.state.borrow().trace.count()
    }

    /// The kept trace entries ([`TraceMode::Full`] only).
    pub fn trace_entries(&self) -> Vec<TraceEntry> {
        self.world.state.borrow().trace.entries().to_vec()
    }

    /// How many times the world found that nothing could happen any more.
    pub fn stalls(&self) -> u64 {
        self.world.state.borrow().stalls
    }

    /// Whether the world has stalled at least once.
    pub fn stalled(&self) -> bool {
        self.stalls() > 0
    }

    /// The time of the next scheduled event (delayed notification, timer).
    pub fn next_event_ns(&self) -> Option<u64> {
        self.world.state.borrow().next_event_ns()
    }

    /// Delivers what is due now and runs the daemons, without running any
    /// domain's code. Returns whether anything happened.
    pub fn run_due(&self) -> bool {
        self.world.run_due()
    }

    /// Moves virtual time to `to_ns` (if later) delivering everything
    /// scheduled up to then, without running any domain's code.
    ///
    /// # Panics
    ///
    /// In real time ([`SimClock::RealTime`]): time there follows the wall
    /// clock and is never moved ahead of it.
    pub fn advance_to(&self, to_ns: u64) {
        assert!(
            self.world.wall.get().is_none(),
            "SimXen::advance_to on a real-time world (its time follows the wall clock)"
        );
        loop {
            self.world.run_due();
            let next = self.world.state.borrow().next_event_ns();
            match next {
                Some(t) if t <= to_ns => self.world.state.borrow_mut().advance_to(t),
                _ => break,
            }
        }
        self.world.state.borrow_mut().advance_to(to_ns);
        self.world.run_due();
    }
}

impl World {
    /// Virtual time: the state's, or in real time the wall clock's reading
    /// if that is later (the state catches up in [`World::run_due`]).
    pub(crate) fn now_ns(&self) -> u64 {
        let now = self.state.borrow().now_ns;
        match self.wall.get() {
            Some(wall) => now.max(wall.now_ns()),
            None => now,
        }
    }

    /// In real time, moves the state's time up to the wall clock (no trace
    /// entry: time there moves all the time, it does not jump).
    fn follow_wall_clock(&self) {
        let Some(wall) = self.wall.get() else {
            return;
        };
        let now = wall.now_ns();
        self.state.borrow_mut().follow_to(now);
        self.check_time_limit(now);
    }

    /// Panics once virtual time passed [`SimConfig::time_ns_max`].
    fn check_time_limit(&self, now_ns: u64) {
        if let Some(max) = self.config.time_ns_max {
            assert!(
                now_ns <= max,
                "sim livelock: virtual time passed {max} ns (seed {}; docs/sim-testing.md says how to replay it)",
                self.config.seed
            );
        }
    }

    /// Delivers due scheduled events and runs the daemons until quiet.
    /// Returns whether anything happened. In real time, first brings
    /// virtual time up to the wall clock.
    pub(crate) fn run_due(&self) -> bool {
        self.follow_wall_clock();
        let mut any = false;
        for _ in 0..SERVICE_ROUNDS_MAX {
            let delivered = self.state.borrow_mut().deliver_due();
            let served = self.run_services();
            if delivered == 0 && !served {
                break;
            }
            any = true;
        }
        any
    }

    /// Runs every notified daemon once. Returns whether any ran.
    fn run_services(&self) -> bool {
        let pending = core::mem::take(&mut self.state.borrow_mut().service_pending);
        let ran = !pending.is_empty();
        for (service, guest) in pending {
            match service {
                Service::Console => self.drain_console(guest),
                Service::Xenstore => self.serve_xenstore(guest),
            }
        }
        // Watch events that one domain's request (or a direct call) caused
        // for others.
        let waiting = self.xenstored.borrow().domains_with_output();
        for dom in waiting {
            let Some(mem) = self.state.borrow().mem(dom) else {
                continue;
            };
            if self
                .xenstored
                .borrow_mut()
                .flush(dom, mem.store.xenstore_iface())
            {
                self.notify_store(dom);
            }
        }
        ran
    }

    /// xenstored's turn on `guest`'s ring: requests in, replies out.
    fn serve_xenstore(&self, guest: DomId) {
        let Some(mem) = self.state.borrow().mem(guest) else {
            return;
        };
        let notify = {
            let mut xs = self.xenstored.borrow_mut();
            let mut fault = |site| self.state.borrow_mut().fault(site, guest);
            xs.serve(guest, mem.store.xenstore_iface(), &mut fault)
        };
        if notify {
            self.notify_store(guest);
        }
    }

    /// xenstored notifies `guest` through its end of the store channel.
    fn notify_store(&self, guest: DomId) {
        let mut st = self.state.borrow_mut();
        if let Some(port) = st.domains.get(&guest).map(|d| d.store_backend_port) {
            let _ = st.evtchn_send(DomId::DOM0, port);
        }
    }

    /// Jumps time to the next scheduled event (or `deadline_ns`, whichever
    /// is first). Returns false if there is neither (a stall).
    fn jump(&self, deadline_ns: Option<u64>) -> bool {
        let mut st = self.state.borrow_mut();
        let next = match (st.next_event_ns(), deadline_ns) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        st.advance_to(next);
        let now = st.now_ns;
        drop(st);
        self.check_time_limit(now);
        true
    }

    /// Real time: sleeps until the wall clock reaches the earlier of
    /// `deadline_ns` and the next scheduled event (no end: until woken), or
    /// until the world's thread is unparked. May return early; callers
    /// re-check.
    fn sleep(&self, deadline_ns: Option<u64>) {
        debug_assert_eq!(
            thread::current().id(),
            self.unpark.thread.id(),
            "a sim world parked on a thread other than the one that built it"
        );
        let next = self.state.borrow().next_event_ns();
        let until = match (next, deadline_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match until {
            None => thread::park(),
            Some(t) => {
                let left = t.saturating_sub(self.now_ns());
                if left > 0 {
                    thread::park_timeout(Duration::from_nanos(left));
                }
            }
        }
    }

    /// Records a stall; panics under [`StallPolicy::Panic`].
    fn stall(&self) {
        let (now, seed) = {
            let mut st = self.state.borrow_mut();
            st.stalls += 1;
            (st.now_ns, st.seed)
        };
        if self.config.on_stall == StallPolicy::Panic {
            panic!(
                "sim stalled at {now} ns: no runnable task, no deadline and no scheduled event, \
                 so nothing can ever happen again (a deadlock). Seed {seed}; docs/sim-testing.md says how to replay it"
            );
        }
    }

    /// [`Hypervisor::block`] for one domain: runs scheduled events and the
    /// daemons until `dom` has an upcall pending or `deadline_ns` passed.
    pub(crate) fn block_domain(&self, dom: DomId, deadline_ns: Option<u64>) {
        let mem = self
            .state
            .borrow()
            .mem(dom)
            .expect("a blocking domain exists");
        let upcall = || {
            mem.shared_info.vcpu_info[0]
                .evtchn_upcall_pending
                .load(Ordering::SeqCst)
                != 0
        };
        loop {
            self.run_due();
            let now = self.state.borrow().now_ns;
            if upcall() || deadline_ns.is_some_and(|d| now >= d) {
                return;
            }
            if self.wall.get().is_some() {
                self.sleep(deadline_ns);
                continue;
            }
            if !self.jump(deadline_ns) {
                self.stall();
                return;
            }
        }
    }

    /// One park of the executor (see the [`Platform`] impl).
    fn park(&self, deadline_ns: Option<u64>) {
        let now = self.state.borrow().now_ns;
        if now == self.parked_at_ns.get() {
            let n = self.parks_without_progress.get() + 1;
            self.parks_without_progress.set(n);
            assert!(
                self.config.parks_at_same_time_max.is_none_or(|max| n < max),
                "sim livelock: {n} parks at {now} ns without time moving (seed {}; docs/sim-testing.md says how to replay it)",
                self.config.seed
            );
        } else {
            self.parked_at_ns.set(now);
            self.parks_without_progress.set(0);
        }
        if self.wall.get().is_some() {
            self.park_real_time(deadline_ns);
        } else {
            let unparked = self.unpark.notified.swap(false, Ordering::AcqRel);
            let expired = deadline_ns.is_some_and(|d| now >= d);
            let work = self.run_due() || self.any_upcall();
            if !unparked && !expired && !work {
                if self.jump(deadline_ns) {
                    self.run_due();
                } else {
                    self.stall();
                }
            }
        }
        self.demux_all();
    }

    /// A park in real time: delivers what is due by the wall clock; with
    /// nothing to do, sleeps until the deadline, the next scheduled event
    /// or an unpark, and delivers then. Nothing scheduled is not a stall
    /// here: a wake may come from another thread.
    fn park_real_time(&self, deadline_ns: Option<u64>) {
        loop {
            let work = self.run_due() || self.any_upcall();
            // Consumed before sleeping: an unpark after this swap finds the
            // flag clear and unparks the thread, so the sleep ends at once.
            let unparked = self.unpark.notified.swap(false, Ordering::AcqRel);
            let now = self.state.borrow().now_ns;
            if work || unparked || deadline_ns.is_some_and(|d| now >= d) {
                return;
            }
            self.sleep(deadline_ns);
        }
    }

    /// Whether any domain with guest code has an upcall pending.
    fn any_upcall(&self) -> bool {
        self.guests.borrow().values().any(Guest::upcall_pending)
    }

    /// Runs each domain's demux (the guest code's event delivery), in domain
    /// order, and retries grants whose pages were dropped while mapped.
    fn demux_all(&self) {
        let guests: Vec<Guest> = self.guests.borrow().values().cloned().collect();
        for g in guests {
            if g.upcall_pending() {
                g.demux();
            }
            if g.grant_stats().deferred > 0 {
                g.reclaim_grants();
            }
        }
    }
}

impl Platform for SimXen {
    fn now_ns(&self) -> u64 {
        SimXen::now_ns(self)
    }

    /// Delivers due events, runs the daemons, then each domain's demux.
    fn poll(&self) {
        self.world.run_due();
        self.world.demux_all();
    }

    /// If an unpark was issued, the deadline passed or there is work now,
    /// delivers it; otherwise jumps virtual time to the earlier of
    /// `deadline_ns` and the next scheduled event and delivers that. Never
    /// sleeps for real. With neither a deadline nor a scheduled event,
    /// nothing can ever happen: a stall ([`StallPolicy`]).
    ///
    /// In real time ([`SimClock::RealTime`]) it sleeps instead of jumping,
    /// until the wall clock reaches that time or an unpark comes, and never
    /// stalls.
    fn park(&self, deadline_ns: Option<u64>) {
        self.world.park(deadline_ns);
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.world.unpark.clone()
    }
}

/// A [`Hypervisor`] handle is what guest code is given.
impl SimDomain {
    /// This domain as a shared [`Hypervisor`].
    pub fn as_hypervisor(&self) -> Rc<dyn Hypervisor> {
        Rc::new(self.clone())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::sim::world::SCHEDULED_MAX;
    use ringlet_executor::{sleep, Executor};

    #[test]
    fn rearming_the_timer_keeps_one_schedule_entry() {
        let sim = SimXen::new(SimConfig::new(1).quiet());
        let d = sim.create_domain(DomainConfig::new("d"));
        for i in 0..1000 {
            d.set_timer(1_000_000 + i);
        }
        assert_eq!(sim.world.state.borrow().scheduled_len(), 1);
        assert_eq!(sim.next_event_ns(), Some(1_000_999));
    }

    #[test]
    fn a_full_schedule_delivers_late_notifications_at_once() {
        let faults = Faults::none().with(FaultSite::NotifyDelay, Ratio::ALWAYS);
        let sim = SimXen::new(SimConfig::new(2).quiet().with_faults(faults));
        let guest = sim.create_domain(DomainConfig::new("guest"));
        let dom0 = sim.dom0();
        let p = guest.evtchn_alloc_unbound(DomId::DOM0).unwrap();
        let b = dom0.evtchn_bind_interdomain(guest.id(), p).unwrap();
        for _ in 0..SCHEDULED_MAX {
            dom0.evtchn_send(b).unwrap();
        }
        assert_eq!(sim.world.state.borrow().scheduled_len(), SCHEDULED_MAX);
        assert!(!guest.upcall_pending(), "delayed, not yet delivered");
        dom0.evtchn_send(b).unwrap();
        assert_eq!(sim.world.state.borrow().scheduled_len(), SCHEDULED_MAX);
        assert!(
            guest.upcall_pending(),
            "beyond the bound the event is delivered at once"
        );
    }
    /// A remote waker: a flag and the waker of the task that waits on it.
    #[derive(Default)]
    struct Flag(std::sync::Mutex<(bool, Option<core::task::Waker>)>);

    impl Flag {
        fn set(&self) {
            let mut f = self.0.lock().unwrap();
            f.0 = true;
            if let Some(w) = f.1.take() {
                w.wake();
            }
        }

        async fn wait(&self) {
            core::future::poll_fn(|cx| {
                let mut f = self.0.lock().unwrap();
                if f.0 {
                    return core::task::Poll::Ready(());
                }
                f.1 = Some(cx.waker().clone());
                core::task::Poll::Pending
            })
            .await
        }
    }

    #[test]
    fn a_real_time_sleep_takes_wall_time_and_the_virtual_clock_agrees() {
        let before = Instant::now();
        let sim = SimXen::new(SimConfig::new(7).quiet().real_time());
        assert_eq!(sim.clock(), SimClock::RealTime);
        let ex = Executor::new(sim.clone());
        let (wall, virt) = ex.block_on(async {
            let (wall0, virt0) = (Instant::now(), sim.now_ns());
            sleep(Duration::from_millis(20)).await;
            (wall0.elapsed(), sim.now_ns() - virt0)
        });
        assert!(wall >= Duration::from_millis(20), "woke after {wall:?}");
        assert!(virt >= 20_000_000, "virtual clock moved {virt} ns");
        // Never ahead of the wall clock: the world started after `before`.
        let now = sim.now_ns();
        assert!(now <= before.elapsed().as_nanos() as u64, "{now} ns ahead");
    }

    #[test]
    fn an_idle_real_time_park_waits_for_a_wake_from_another_thread() {
        let sim = SimXen::new(SimConfig::new(8).quiet().real_time());
        let ex = Executor::new(sim.clone());
        let flag = Arc::new(Flag::default());
        let setter = flag.clone();
        let t0 = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            setter.set();
        });
        // No deadline and nothing scheduled: a deterministic world would
        // declare a stall here; this one sleeps until the remote wake.
        ex.block_on(flag.wait());
        thread.join().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(sim.now_ns() >= 30_000_000, "at {} ns", sim.now_ns());
        assert_eq!(sim.stalls(), 0);
    }

    #[test]
    fn an_unpark_before_the_park_ends_it_at_once() {
        let sim = SimXen::new(SimConfig::new(9).quiet().real_time());
        let unpark = Platform::unparker(&sim);
        std::thread::spawn(move || unpark.unpark()).join().unwrap();
        // Returns (it would sleep forever otherwise: no deadline, nothing
        // scheduled).
        Platform::park(&sim, None);
    }

    #[test]
    fn a_switched_world_goes_on_from_its_virtual_time() {
        let sim = SimXen::new(SimConfig::new(10).quiet());
        assert_eq!(sim.clock(), SimClock::Virtual);
        let ex = Executor::new(sim.clone());
        ex.block_on(sleep(Duration::from_secs(10)));
        assert_eq!(sim.now_ns(), 10_000_000_000, "jumped, exactly");
        let switched = Instant::now();
        sim.follow_wall_clock();
        sim.follow_wall_clock(); // once is enough; again does nothing
        let wall0 = Instant::now();
        ex.block_on(sleep(Duration::from_millis(20)));
        assert!(wall0.elapsed() >= Duration::from_millis(20));
        let now = sim.now_ns();
        assert!(now >= 10_020_000_000, "at {now} ns");
        // Never ahead of the wall clock since the switch.
        assert!(now <= 10_000_000_000 + switched.elapsed().as_nanos() as u64);
    }

    #[test]
    fn a_single_domain_block_sleeps_for_real_until_its_timer() {
        use crate::platform::XenPlatform;
        let sim = SimXen::new(SimConfig::new(11).quiet().real_time());
        let guest = sim.create_domain(DomainConfig::new("guest"));
        let g = sim.guest(guest.id());
        let ex = Executor::new(XenPlatform::new(g.clone()));
        let wall0 = Instant::now();
        ex.block_on(sleep(Duration::from_millis(20)));
        assert!(wall0.elapsed() >= Duration::from_millis(20));
        assert!(g.now_ns() >= 20_000_000);
    }

    #[test]
    #[should_panic(expected = "real-time world")]
    fn advance_to_refuses_to_run_ahead_of_the_wall_clock() {
        let sim = SimXen::new(SimConfig::new(12).quiet().real_time());
        sim.advance_to(1_000_000_000);
    }
}
