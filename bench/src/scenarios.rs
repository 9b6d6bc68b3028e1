//! The six executor scenarios, written once and run on every executor.
//!
//! Each scenario is an `async fn` over a [`Spawner`]; it times only its
//! measured part with `std::time::Instant` and counts the work that really
//! happened, so a run that does nothing cannot pass as fast.

use crate::primitives::{Mailbox, Signal, YieldOnce};
use crate::rng::SplitMix64;
use crate::runtime::{Runtime, Spawner};
use core::cell::Cell;
use core::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Spawn empty tasks and await them all; one op is one task.
    Spawn,
    /// Tasks that each yield through [`YieldOnce`] many times; one op is one yield.
    Yield,
    /// Two tasks waking each other through waker slots; one op is one round trip.
    PingPong,
    /// Tasks passing a token around a ring; one op is one pass.
    Ring,
    /// Tasks sleeping seeded random durations; one op is one timer, and the
    /// time counted is the wall time minus the longest sleep.
    Timers,
    /// Another thread wakes tasks blocked on mailboxes; one op is one wake.
    CrossThread,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 6] = [
        Scenario::Spawn,
        Scenario::Yield,
        Scenario::PingPong,
        Scenario::Ring,
        Scenario::Timers,
        Scenario::CrossThread,
    ];

    /// The name in the table and in the JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Spawn => "spawn",
            Scenario::Yield => "yield",
            Scenario::PingPong => "ping-pong",
            Scenario::Ring => "ring",
            Scenario::Timers => "timers",
            Scenario::CrossThread => "cross-thread",
        }
    }

    /// The scenario called `name`, if any.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The target: Ringlet's ns/op divided by tokio's must be at most this.
    pub const fn target_ratio(self) -> f64 {
        match self {
            Scenario::Spawn => 0.3,
            Scenario::Yield | Scenario::PingPong | Scenario::Ring => 0.9,
            Scenario::Timers => 0.8,
            Scenario::CrossThread => 1.0,
        }
    }

    /// How many operations one round performs at `sizes`.
    pub const fn ops(self, sizes: &Sizes) -> u64 {
        match self {
            Scenario::Spawn => sizes.spawn_tasks,
            Scenario::Yield => sizes.yield_tasks * sizes.yields_per_task,
            Scenario::PingPong => sizes.ping_pong_round_trips,
            Scenario::Ring => sizes.ring_tasks * sizes.ring_laps,
            Scenario::Timers => sizes.timer_tasks,
            Scenario::CrossThread => sizes.cross_thread_tasks,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How big each scenario is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    /// Tasks spawned by `spawn`.
    pub spawn_tasks: u64,
    /// Tasks in `yield`.
    pub yield_tasks: u64,
    /// Yields per task in `yield`.
    pub yields_per_task: u64,
    /// Round trips in `ping-pong`.
    pub ping_pong_round_trips: u64,
    /// Tasks in the `ring`.
    pub ring_tasks: u64,
    /// Times the token goes around the `ring`.
    pub ring_laps: u64,
    /// Sleeping tasks in `timers`.
    pub timer_tasks: u64,
    /// Longest sleep in `timers`, in microseconds (sleeps are `0..=` this).
    pub timer_max_us: u64,
    /// Tasks woken from the other thread in `cross-thread`.
    pub cross_thread_tasks: u64,
}

impl Sizes {
    /// The sizes the issue asks for.
    pub const FULL: Sizes = Sizes {
        spawn_tasks: 10_000,
        yield_tasks: 200,
        yields_per_task: 1_000,
        ping_pong_round_trips: 100_000,
        ring_tasks: 300,
        ring_laps: 300,
        timer_tasks: 10_000,
        timer_max_us: 10_000,
        cross_thread_tasks: 10_000,
    };

    /// Tiny sizes for the tests: every path runs, in milliseconds.
    pub const TINY: Sizes = Sizes {
        spawn_tasks: 50,
        yield_tasks: 5,
        yields_per_task: 7,
        ping_pong_round_trips: 20,
        ring_tasks: 6,
        ring_laps: 4,
        timer_tasks: 40,
        timer_max_us: 2_000,
        cross_thread_tasks: 60,
    };
}

/// The seed of the timer scenario's sleep lengths (the same for every executor).
pub const TIMER_SEED: u64 = 0x5249_4E47_4C45_5421;

/// Spins of the waker thread between `yield_now`s while it waits for the go
/// signal (it spins so that its start costs no wake-up latency).
const GO_SPINS_PER_YIELD: u32 = 1_024;

/// Where a scenario runs and how big it is.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Scenario sizes.
    pub sizes: Sizes,
    /// The CPU to pin the cross-thread waker thread to, if pinning is possible.
    pub helper_cpu: Option<usize>,
}

/// What one round of a scenario measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Time charged to the operations (for `timers`: wall time minus the
    /// longest sleep, saturating at zero).
    pub measured: Duration,
    /// Operations the round was meant to perform.
    pub ops: u64,
    /// Operations the round was seen to perform (counted by the tasks).
    pub done: u64,
}

impl Outcome {
    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.measured.as_nanos() as f64 / self.ops.max(1) as f64
    }
}

/// Runs one round of `scenario` on `runtime`.
pub fn run<R: Runtime>(runtime: &mut R, scenario: Scenario, setup: &Setup) -> Outcome {
    let sizes = &setup.sizes;
    let helper_cpu = setup.helper_cpu;
    match scenario {
        Scenario::Spawn => runtime.block_on(|s| spawn(s, sizes.spawn_tasks)),
        Scenario::Yield => {
            runtime.block_on(|s| yields(s, sizes.yield_tasks, sizes.yields_per_task))
        }
        Scenario::PingPong => runtime.block_on(|s| ping_pong(s, sizes.ping_pong_round_trips)),
        Scenario::Ring => runtime.block_on(|s| ring(s, sizes.ring_tasks, sizes.ring_laps)),
        Scenario::Timers => {
            let sleeps = timer_sleeps(sizes);
            runtime.block_on(|s| timers(s, sleeps))
        }
        Scenario::CrossThread => {
            runtime.block_on(|s| cross_thread(s, sizes.cross_thread_tasks, helper_cpu))
        }
    }
}

fn as_index(n: u64) -> usize {
    usize::try_from(n).expect("scenario size fits in usize")
}

/// spawn: `n` empty tasks spawned, then all awaited. Each returns its index,
/// and a task counts as done only if its handle gives that index back.
async fn spawn<S: Spawner>(s: S, n: u64) -> Outcome {
    let mut handles = Vec::with_capacity(as_index(n));
    let start = Instant::now();
    for i in 0..n {
        handles.push(s.spawn(async move { i }));
    }
    let mut done = 0;
    for (i, handle) in (0..n).zip(handles) {
        done += u64::from(handle.await == i);
    }
    let measured = start.elapsed();
    Outcome {
        measured,
        ops: n,
        done,
    }
}

/// yield: `tasks` tasks, each awaiting `per_task` fresh [`YieldOnce`]s.
async fn yields<S: Spawner>(s: S, tasks: u64, per_task: u64) -> Outcome {
    let mut handles = Vec::with_capacity(as_index(tasks));
    let start = Instant::now();
    for _ in 0..tasks {
        handles.push(s.spawn(async move {
            let mut yielded = 0u64;
            for _ in 0..per_task {
                yielded += u64::from(YieldOnce::new().await);
            }
            yielded
        }));
    }
    let mut done = 0;
    for handle in handles {
        done += handle.await;
    }
    let measured = start.elapsed();
    Outcome {
        measured,
        ops: tasks * per_task,
        done,
    }
}

/// ping-pong: two tasks hand the turn back and forth `round_trips` times,
/// each waking the other through the other's [`Signal`].
async fn ping_pong<S: Spawner>(s: S, round_trips: u64) -> Outcome {
    let ping_turn = Rc::new(Signal::new());
    let pong_turn = Rc::new(Signal::new());
    let start = Instant::now();
    let ping = {
        let (mine, theirs) = (ping_turn.clone(), pong_turn.clone());
        s.spawn(async move {
            let mut trips = 0u64;
            for _ in 0..round_trips {
                theirs.raise();
                mine.wait().await;
                trips += 1;
            }
            trips
        })
    };
    let pong = {
        let (mine, theirs) = (pong_turn, ping_turn);
        s.spawn(async move {
            let mut returns = 0u64;
            for _ in 0..round_trips {
                mine.wait().await;
                returns += 1;
                theirs.raise();
            }
            returns
        })
    };
    let (trips, returns) = (ping.await, pong.await);
    let measured = start.elapsed();
    Outcome {
        measured,
        ops: round_trips,
        done: trips.min(returns),
    }
}

/// ring: `tasks` tasks in a ring; task 0 starts with the token; every task
/// takes it `laps` times, passing it on to the next each time.
async fn ring<S: Spawner>(s: S, tasks: u64, laps: u64) -> Outcome {
    let seats: Rc<[Signal]> = (0..tasks).map(|_| Signal::new()).collect();
    seats[0].raise();
    let mut handles = Vec::with_capacity(as_index(tasks));
    let start = Instant::now();
    for i in 0..as_index(tasks) {
        let seats = seats.clone();
        handles.push(s.spawn(async move {
            let next = (i + 1) % seats.len();
            let mut passes = 0u64;
            for _ in 0..laps {
                seats[i].wait().await;
                passes += 1;
                seats[next].raise();
            }
            passes
        }));
    }
    let mut done = 0;
    for handle in handles {
        done += handle.await;
    }
    let measured = start.elapsed();
    Outcome {
        measured,
        ops: tasks * laps,
        done,
    }
}

/// The timer scenario's sleep lengths: uniform in `0..=timer_max_us` µs,
/// from [`TIMER_SEED`].
pub fn timer_sleeps(sizes: &Sizes) -> Vec<Duration> {
    let mut rng = SplitMix64::new(TIMER_SEED);
    (0..sizes.timer_tasks)
        .map(|_| Duration::from_micros(rng.below_or_eq(sizes.timer_max_us)))
        .collect()
}

/// timers: one task per sleep length; each sleeps on the executor's timer
/// and counts as done only if it did not wake early.
async fn timers<S: Spawner>(s: S, sleeps: Vec<Duration>) -> Outcome {
    let longest = sleeps.iter().copied().max().unwrap_or_default();
    let ops = sleeps.len() as u64;
    let mut handles = Vec::with_capacity(sleeps.len());
    let start = Instant::now();
    for duration in sleeps {
        let s2 = s.clone();
        handles.push(s.spawn(async move {
            let began = Instant::now();
            s2.sleep(duration).await;
            began.elapsed() >= duration
        }));
    }
    let mut done = 0;
    for handle in handles {
        done += u64::from(handle.await);
    }
    let wall = start.elapsed();
    Outcome {
        measured: wall.saturating_sub(longest),
        ops,
        done,
    }
}

/// cross-thread: `tasks` tasks each wait on a [`Mailbox`]; once all have
/// registered, a second thread (pinned to `helper_cpu`) fires every mailbox.
/// Timed from the go signal until every task has completed.
async fn cross_thread<S: Spawner>(s: S, tasks: u64, helper_cpu: Option<usize>) -> Outcome {
    let mailboxes: Arc<[Mailbox]> = (0..tasks).map(|_| Mailbox::new()).collect();
    let go = Arc::new(AtomicBool::new(false));
    let waker_thread = {
        let (mailboxes, go) = (mailboxes.clone(), go.clone());
        std::thread::spawn(move || {
            if let Some(cpu) = helper_cpu {
                // Best effort: an unpinned waker thread still measures the same thing.
                let _ = crate::affinity::pin_current_thread(cpu);
            }
            let mut spins = 0u32;
            while !go.load(Ordering::Acquire) {
                core::hint::spin_loop();
                spins += 1;
                if spins.is_multiple_of(GO_SPINS_PER_YIELD) {
                    std::thread::yield_now();
                }
            }
            for mailbox in mailboxes.iter() {
                mailbox.fire();
            }
        })
    };
    let registered = Rc::new(Cell::new(0u64));
    let mut handles = Vec::with_capacity(as_index(tasks));
    for i in 0..as_index(tasks) {
        let (mailboxes, registered) = (mailboxes.clone(), registered.clone());
        handles.push(s.spawn(async move {
            let mailbox = &mailboxes[i];
            let first = WaitFirstPoll::new(mailbox.wait(), &registered);
            first.await
        }));
    }
    // Let every task run once and park on its mailbox. Each executor runs
    // the spawned tasks in order after the spawner yields; a few extra yields
    // cover batch limits.
    let mut yields = 0u64;
    while registered.get() < tasks {
        assert!(yields <= tasks + 16, "cross-thread tasks never all polled");
        YieldOnce::new().await;
        yields += 1;
    }
    let start = Instant::now();
    go.store(true, Ordering::Release);
    let mut done = 0;
    for handle in handles {
        done += u64::from(handle.await);
    }
    let measured = start.elapsed();
    waker_thread.join().expect("waker thread panicked");
    Outcome {
        measured,
        ops: tasks,
        done,
    }
}

/// Wraps a mailbox wait: counts the task as registered after its first
/// poll, and yields `true` only if the task really waited for the other thread.
struct WaitFirstPoll<'a, F> {
    inner: F,
    registered: &'a Cell<u64>,
    polled: bool,
}

impl<'a, F> WaitFirstPoll<'a, F> {
    fn new(inner: F, registered: &'a Cell<u64>) -> Self {
        Self {
            inner,
            registered,
            polled: false,
        }
    }
}

impl<F: core::future::Future<Output = bool> + Unpin> core::future::Future for WaitFirstPoll<'_, F> {
    type Output = bool;

    fn poll(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<bool> {
        let this = &mut *self;
        let poll = core::pin::Pin::new(&mut this.inner).poll(cx);
        if !this.polled {
            this.polled = true;
            this.registered.set(this.registered.get() + 1);
        }
        poll
    }
}
