//! Time: instants on the platform clock, and the timer futures built on them.
//!
//! [`Instant`] is a point on the current executor's platform clock
//! ([`Platform::now_ns`](crate::platform::Platform::now_ns)), in nanoseconds;
//! [`Duration`] is `core::time::Duration`. The futures ([`Sleep`],
//! [`Timeout`], [`Interval`]) register with the timer heap of the executor
//! that first polls them and keep that registration until they are dropped,
//! which cancels it. They are `!Send`: a timer belongs to one executor.
//!
//! A timer never fires early: it completes only once the platform clock has
//! reached its deadline. It may fire late by however long the executor takes
//! to come back to its tick (a busy batch, the platform's park accuracy).

use alloc::rc::Rc;
use core::fmt;
use core::future::{Future, IntoFuture};
use core::ops::{Add, AddAssign, Sub, SubAssign};
use core::pin::Pin;
use core::task::{Context, Poll};

pub use core::time::Duration;

use pin_project_lite::pin_project;

use crate::context;
use crate::timer::{TimerKey, Timers};

/// A point on the platform's monotonic clock, in nanoseconds since the
/// platform's arbitrary origin.
///
/// Arithmetic saturates: adding a huge [`Duration`] gives [`Instant::MAX`],
/// a deadline that never comes; subtracting a later instant gives
/// [`Duration::ZERO`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    ns: u64,
}

impl Instant {
    /// The end of time: a deadline that is never reached.
    pub const MAX: Instant = Instant { ns: u64::MAX };

    /// The current time on the current executor's platform clock.
    ///
    /// # Panics
    ///
    /// Outside an executor's context (a `block_on`, a `step` or a task);
    /// use [`Instant::try_now`] or [`Executor::now`](crate::Executor::now)
    /// there.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "std")] {
    /// use ringlet_executor::{Executor, Instant};
    ///
    /// Executor::default().block_on(async {
    ///     let t0 = Instant::now();
    ///     assert!(Instant::now() >= t0);
    /// });
    /// # }
    /// ```
    #[track_caller]
    pub fn now() -> Instant {
        Self::try_now().expect("Instant::now() called outside a ringlet executor")
    }

    /// The current time, or `None` outside an executor's context.
    pub fn try_now() -> Option<Instant> {
        context::with_current(|core| core.map(|core| core.now()))
    }

    /// The instant `ns` nanoseconds after the platform clock's origin.
    pub const fn from_nanos(ns: u64) -> Instant {
        Instant { ns }
    }

    /// Nanoseconds since the platform clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.ns
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.ns.saturating_sub(earlier.ns))
    }

    /// Time from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        self.ns.checked_sub(earlier.ns).map(Duration::from_nanos)
    }

    /// Time since `self` on the current executor's clock.
    ///
    /// # Panics
    ///
    /// Outside an executor's context, as [`Instant::now`].
    #[track_caller]
    pub fn elapsed(self) -> Duration {
        Instant::now().duration_since(self)
    }

    /// `self + duration`, or `None` if that is past [`Instant::MAX`].
    pub fn checked_add(self, duration: Duration) -> Option<Instant> {
        let d = u64::try_from(duration.as_nanos()).ok()?;
        self.ns.checked_add(d).map(Instant::from_nanos)
    }

    /// `self - duration`, or `None` if that is before the clock's origin.
    pub fn checked_sub(self, duration: Duration) -> Option<Instant> {
        let d = u64::try_from(duration.as_nanos()).ok()?;
        self.ns.checked_sub(d).map(Instant::from_nanos)
    }

    /// `self + duration`, saturating at [`Instant::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Instant {
        self.checked_add(duration).unwrap_or(Instant::MAX)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:?})", Duration::from_nanos(self.ns))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        self.checked_sub(rhs).unwrap_or(Instant::from_nanos(0))
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        *self = *self - rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.duration_since(rhs)
    }
}

/// Waits until `duration` has passed on the executor's clock.
///
/// Inside an executor's context the deadline is taken when `sleep` is
/// called, so the time before the first poll counts; elsewhere (e.g. the
/// argument of [`Executor::block_on`](crate::Executor::block_on)) it is
/// taken at the first poll.
///
/// # Cancellation
///
/// Dropping the [`Sleep`] removes its timer from the executor at once.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "std")] {
/// use ringlet_executor::{sleep, Duration, Executor, Instant};
///
/// let ex = Executor::default();
/// ex.block_on(async {
///     let start = Instant::now();
///     sleep(Duration::from_millis(5)).await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// let start = ex.now();
/// ex.block_on(sleep(Duration::from_millis(1)));
/// assert!(ex.now() - start >= Duration::from_millis(1));
/// # }
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    match Instant::try_now() {
        Some(now) => sleep_until(now + duration),
        None => {
            let mut sleep = sleep_until(Instant::MAX);
            sleep.delay = Some(duration);
            sleep
        }
    }
}

/// Waits until `deadline` on the executor's clock that polls it.
///
/// Unlike [`sleep`] it needs no executor until it is polled.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "std")] {
/// use ringlet_executor::{sleep_until, Duration, Executor};
///
/// let ex = Executor::default();
/// let deadline = ex.now() + Duration::from_millis(2);
/// ex.block_on(sleep_until(deadline));
/// assert!(ex.now() >= deadline);
/// # }
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        delay: None,
        timers: None,
        key: None,
        elapsed: false,
    }
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// # Panics
///
/// Polling it outside an executor's context panics on the first poll (it has
/// no timer heap to register with).
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    /// Made outside an executor: the deadline is this long after the first
    /// poll (`deadline` is not yet meaningful).
    delay: Option<Duration>,
    /// The timer heap of the executor that first polled it.
    timers: Option<Rc<Timers>>,
    /// The armed (or fired, not yet observed) timer.
    key: Option<TimerKey>,
    /// Completed; further polls return `Ready`.
    elapsed: bool,
}

impl Sleep {
    /// The deadline; `None` for a [`sleep`] made outside an executor that
    /// has not been polled yet (its deadline starts at the first poll).
    pub fn deadline(&self) -> Option<Instant> {
        match self.delay {
            Some(_) => None,
            None => Some(self.deadline),
        }
    }

    /// Whether it has completed.
    pub fn is_elapsed(&self) -> bool {
        self.elapsed
    }

    /// Moves the deadline (also after completion: it waits again).
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
        self.delay = None;
        self.elapsed = false;
    }

    /// Removes the timer, if armed.
    fn cancel(&mut self) {
        if let (Some(key), Some(timers)) = (self.key.take(), &self.timers) {
            let waker = timers.heap.borrow_mut().remove(key);
            drop(waker);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.elapsed {
            return Poll::Ready(());
        }
        let timers = match &this.timers {
            Some(timers) => timers,
            None => {
                let timers = context::with_current(|core| core.map(|core| core.timers.clone()))
                    .expect("a ringlet Sleep was polled outside a ringlet executor");
                this.timers.insert(timers)
            }
        };
        if let Some(delay) = this.delay.take() {
            let now = context::with_current(|core| core.map(|core| core.now()))
                .expect("a ringlet Sleep was polled outside a ringlet executor");
            this.deadline = now + delay;
        }
        if let Some(key) = this.key {
            let mut heap = timers.heap.borrow_mut();
            if heap.is_fired(key) {
                let waker = heap.remove(key);
                drop(heap);
                drop(waker);
                this.key = None;
                this.elapsed = true;
                return Poll::Ready(());
            }
            let old = heap.update_waker(key, cx.waker());
            drop(heap);
            drop(old);
            return Poll::Pending;
        }
        // A deadline at or before a clock reading already taken has passed.
        if this.deadline.ns <= timers.now_ns.get() {
            this.elapsed = true;
            return Poll::Ready(());
        }
        let key = timers
            .heap
            .borrow_mut()
            .insert(this.deadline.ns, cx.waker().clone());
        this.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline())
            .field("armed", &self.key.is_some())
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

/// The error of [`timeout`]: the deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl core::error::Error for Elapsed {}

/// Runs `future` for at most `duration`.
///
/// The future is polled before the deadline is checked, so a future that is
/// ready at once wins even with a zero duration. Like [`sleep`], the
/// duration counts from the call inside an executor's context, from the
/// first poll elsewhere.
///
/// # Errors
///
/// [`Elapsed`] if `duration` passes first; the future is then dropped when
/// the [`Timeout`] is.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "std")] {
/// use core::future::pending;
/// use ringlet_executor::{timeout, Duration, Executor};
///
/// Executor::default().block_on(async {
///     assert_eq!(timeout(Duration::from_millis(1), async { 7 }).await, Ok(7));
///     assert!(timeout(Duration::from_millis(1), pending::<()>()).await.is_err());
/// });
/// # }
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep(duration),
    }
}

/// Runs `future` until `deadline` at most; see [`timeout`].
///
/// # Errors
///
/// [`Elapsed`] if `deadline` passes first.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep_until(deadline),
    }
}

pin_project! {
    /// The future of [`timeout`] and [`timeout_at`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// Unwraps the future (dropping the timer).
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What an [`Interval`] does when ticks were missed (the executor came back
/// later than one or more whole periods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up, keeping the
    /// original schedule (`start + k·period`).
    Burst,
    /// Fire one tick now and restart the schedule from now: the next tick is
    /// `period` after the late one.
    Delay,
    /// Fire one tick now and drop the missed ones, keeping the original
    /// schedule: the next tick is the first `start + k·period` after now.
    #[default]
    Skip,
}

/// Ticks every `period`; the first tick completes at once (made outside an
/// executor: at its first poll).
///
/// Missed ticks are skipped by default ([`MissedTickBehavior::Skip`]).
///
/// # Panics
///
/// If `period` is zero.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "std")] {
/// use ringlet_executor::{interval, Duration, Executor};
///
/// Executor::default().block_on(async {
///     let mut every = interval(Duration::from_millis(1));
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert!(second - first >= Duration::from_millis(1));
/// });
/// # }
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        period,
        sleep: sleep(Duration::ZERO),
        missed: MissedTickBehavior::default(),
    }
}

/// Ticks every `period`, the first time at `start`.
///
/// # Panics
///
/// If `period` is zero.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        period,
        sleep: sleep_until(start),
        missed: MissedTickBehavior::default(),
    }
}

/// The stream of ticks of [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    /// Sleeps until the scheduled instant of the next tick.
    sleep: Sleep,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick; returns its scheduled instant (never later
    /// than the time it completes).
    ///
    /// # Cancellation
    ///
    /// Cancel-safe: dropping the future before it completes loses no tick.
    pub async fn tick(&mut self) -> Instant {
        core::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (the poll form of [`Interval::tick`]).
    ///
    /// # Panics
    ///
    /// Outside an executor's context.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(()) => {}
        }
        let tick = self
            .sleep
            .deadline()
            .expect("a completed Sleep has a deadline");
        let now = Instant::now();
        let next = match self.missed {
            MissedTickBehavior::Burst => tick + self.period,
            MissedTickBehavior::Delay => now + self.period,
            MissedTickBehavior::Skip => {
                let period = u64::try_from(self.period.as_nanos()).unwrap_or(u64::MAX);
                let behind = now.duration_since(tick);
                let behind = u64::try_from(behind.as_nanos()).unwrap_or(u64::MAX);
                // The first tick + k·period strictly after now.
                tick.saturating_add(Duration::from_nanos(
                    (behind / period).saturating_add(1).saturating_mul(period),
                ))
            }
        };
        self.sleep.reset(next);
        Poll::Ready(tick)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What happens to missed ticks.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// Restarts the schedule: the next tick is one period from now.
    ///
    /// # Panics
    ///
    /// Outside an executor's context.
    pub fn reset(&mut self) {
        self.sleep.reset(Instant::now() + self.period);
    }
}
