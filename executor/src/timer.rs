//! The timer heap: pending deadlines and the wakers waiting for them.
//!
//! An indexed binary min-heap ordered by `(deadline, sequence)`: insert,
//! cancel and pop are O(log n), and entries with equal deadlines fire in the
//! order they were registered. Each entry lives in a slot (a slab with a free
//! list) that knows its heap position, so cancelling a timer (a dropped
//! [`Sleep`](crate::time::Sleep)) removes it from the heap at once: there are
//! no tombstones, and memory is bounded by the number of live timers (slots
//! are reused; the slab keeps its peak size).
//!
//! Wakers are never dropped or woken while the heap is borrowed: every
//! operation that gives one up returns it to the caller.

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::task::Waker;

/// A slot's heap position when its timer has fired (or was never armed).
const NOT_ARMED: u32 = u32::MAX;
/// The most slots the slab may hold (positions must stay below `NOT_ARMED`).
pub(crate) const TIMER_SLOTS_MAX: usize = (u32::MAX - 1) as usize;

/// Names one registered timer: its slot and that slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    generation: u32,
}

#[derive(Debug)]
struct Slot {
    /// Position in `heap`, or `NOT_ARMED`.
    pos: u32,
    /// Bumped each time the slot is freed, so stale keys are detected.
    generation: u32,
    /// Whether the slot is in use.
    used: bool,
    waker: Option<Waker>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    deadline_ns: u64,
    seq: u64,
    slot: u32,
}

impl Entry {
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.deadline_ns, self.seq)
    }
}

/// The heap itself (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: Vec<Entry>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    seq: u64,
}

impl TimerHeap {
    /// Arms a new timer.
    pub(crate) fn insert(&mut self, deadline_ns: u64, waker: Waker) -> TimerKey {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                assert!(self.slots.len() < TIMER_SLOTS_MAX, "too many timers");
                self.slots.push(Slot {
                    pos: NOT_ARMED,
                    generation: 0,
                    used: false,
                    waker: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        debug_assert!(!s.used);
        s.used = true;
        s.waker = Some(waker);
        let key = TimerKey {
            slot,
            generation: s.generation,
        };
        self.seq += 1;
        let pos = self.heap.len();
        self.heap.push(Entry {
            deadline_ns,
            seq: self.seq,
            slot,
        });
        self.slots[slot as usize].pos = pos as u32;
        self.sift_up(pos);
        key
    }

    fn slot(&self, key: TimerKey) -> &Slot {
        let s = &self.slots[key.slot as usize];
        assert!(s.used && s.generation == key.generation, "stale timer key");
        s
    }

    /// Whether the timer has fired (it is no longer in the heap).
    pub(crate) fn is_fired(&self, key: TimerKey) -> bool {
        self.slot(key).pos == NOT_ARMED
    }

    /// Replaces the waker if `waker` would not wake the same task; returns
    /// the old one for the caller to drop.
    pub(crate) fn update_waker(&mut self, key: TimerKey, waker: &Waker) -> Option<Waker> {
        self.slot(key);
        let s = &mut self.slots[key.slot as usize];
        match &s.waker {
            Some(w) if w.will_wake(waker) => None,
            _ => s.waker.replace(waker.clone()),
        }
    }

    /// Cancels (if still armed) and frees the timer; returns its waker.
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<Waker> {
        let pos = self.slot(key).pos;
        if pos != NOT_ARMED {
            self.remove_at(pos as usize);
        }
        let s = &mut self.slots[key.slot as usize];
        s.used = false;
        s.pos = NOT_ARMED;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(key.slot);
        s.waker.take()
    }

    /// Removes the heap entry at `pos` (the slot keeps `NOT_ARMED`).
    fn remove_at(&mut self, pos: usize) {
        let removed = self.heap.swap_remove(pos);
        self.slots[removed.slot as usize].pos = NOT_ARMED;
        if pos < self.heap.len() {
            self.slots[self.heap[pos].slot as usize].pos = pos as u32;
            // The moved entry may belong above or below `pos`.
            if pos > 0 && self.heap[pos].key() < self.heap[(pos - 1) / 2].key() {
                self.sift_up(pos);
            } else {
                self.sift_down(pos);
            }
        }
    }

    /// Fires the earliest timer if its deadline is at or before `now_ns`:
    /// takes it off the heap and returns its waker.
    pub(crate) fn pop_expired(&mut self, now_ns: u64) -> Option<Option<Waker>> {
        let first = self.heap.first()?;
        if first.deadline_ns > now_ns {
            return None;
        }
        let slot = first.slot as usize;
        self.remove_at(0);
        Some(self.slots[slot].waker.take())
    }

    /// The earliest armed deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.first().map(|e| e.deadline_ns)
    }

    /// How many timers are armed.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Takes the wakers of every armed timer (the timers stay armed, without
    /// wakers). Used when the executor is dropped.
    pub(crate) fn take_wakers(&mut self) -> Vec<Waker> {
        let slots = &mut self.slots;
        self.heap
            .iter()
            .filter_map(|e| slots[e.slot as usize].waker.take())
            .collect()
    }

    fn sift_up(&mut self, mut pos: usize) {
        let entry = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if entry.key() >= self.heap[parent].key() {
                break;
            }
            self.heap[pos] = self.heap[parent];
            self.slots[self.heap[pos].slot as usize].pos = pos as u32;
            pos = parent;
        }
        self.heap[pos] = entry;
        self.slots[entry.slot as usize].pos = pos as u32;
    }

    fn sift_down(&mut self, mut pos: usize) {
        let entry = self.heap[pos];
        let len = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].key() < self.heap[left].key() {
                right
            } else {
                left
            };
            if self.heap[child].key() >= entry.key() {
                break;
            }
            self.heap[pos] = self.heap[child];
            self.slots[self.heap[pos].slot as usize].pos = pos as u32;
            pos = child;
        }
        self.heap[pos] = entry;
        self.slots[entry.slot as usize].pos = pos as u32;
    }

    /// Checks the heap property and the slot back-pointers (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        for (i, e) in self.heap.iter().enumerate() {
            assert_eq!(self.slots[e.slot as usize].pos as usize, i);
            assert!(self.slots[e.slot as usize].used);
            if i > 0 {
                assert!(self.heap[(i - 1) / 2].key() <= e.key());
            }
        }
    }

    /// How many slots exist (tests: memory stays bounded).
    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }
}

/// An executor's timers, shared with its `Sleep`s (through an `Rc`).
pub(crate) struct Timers {
    pub(crate) heap: RefCell<TimerHeap>,
    /// The latest clock reading the executor took (never ahead of the
    /// platform clock): a deadline at or before it has certainly passed.
    pub(crate) now_ns: Cell<u64>,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Self {
            heap: RefCell::new(TimerHeap::default()),
            now_ns: Cell::new(0),
        }
    }

    /// Records a clock reading (kept monotonic).
    #[inline]
    pub(crate) fn observe_now(&self, now_ns: u64) {
        if now_ns > self.now_ns.get() {
            self.now_ns.set(now_ns);
        }
    }

    /// Whether no timer is armed.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.borrow().len() == 0
    }

    /// Wakes every timer whose deadline is at or before `now_ns`, earliest
    /// first; returns how many fired.
    pub(crate) fn fire(&self, now_ns: u64) -> usize {
        self.observe_now(now_ns);
        let mut fired = 0;
        loop {
            // The borrow ends before the wake: a waker may do anything.
            let next = self.heap.borrow_mut().pop_expired(now_ns);
            match next {
                Some(waker) => {
                    fired += 1;
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                None => return fired,
            }
        }
    }

    /// The earliest armed deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.borrow().next_deadline()
    }
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let heap = self.heap.try_borrow();
        f.debug_struct("Timers")
            .field("armed", &heap.map(|h| h.len()).ok())
            .field("now_ns", &self.now_ns.get())
            .finish()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// A deterministic xorshift for shuffles.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let mut h = TimerHeap::default();
        let w = Waker::noop();
        let deadlines = [50u64, 10, 30, 10, 20, 50, 0];
        let keys: Vec<_> = deadlines.iter().map(|&d| h.insert(d, w.clone())).collect();
        h.check();
        let mut order = Vec::new();
        while h.pop_expired(u64::MAX).is_some() {
            let fired = keys
                .iter()
                .position(|&k| h.is_fired(k) && !order.contains(&k));
            order.push(keys[fired.unwrap()]);
            h.check();
        }
        let idx: Vec<usize> = order
            .iter()
            .map(|k| keys.iter().position(|x| x == k).unwrap())
            .collect();
        assert_eq!(idx, [6, 1, 3, 4, 2, 0, 5]);
    }

    #[test]
    fn never_pops_before_deadline() {
        let mut h = TimerHeap::default();
        h.insert(100, Waker::noop().clone());
        assert!(h.pop_expired(99).is_none());
        assert!(h.pop_expired(100).is_some());
        assert!(h.pop_expired(u64::MAX).is_none());
    }

    #[test]
    fn cancel_removes_from_the_middle_and_reuses_slots() {
        let mut h = TimerHeap::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut live = Vec::new();
        for round in 0..2_000u64 {
            let d = rng(&mut seed) % 1_000;
            live.push((d, h.insert(d, Waker::noop().clone())));
            if round % 3 == 2 {
                let i = (rng(&mut seed) as usize) % live.len();
                let (_, k) = live.swap_remove(i);
                h.remove(k);
            }
            h.check();
        }
        assert_eq!(h.len(), live.len());
        // Slots are reused: the slab never grew past the peak live count.
        assert!(h.slot_count() <= 2_000 - 600);
        let mut prev = 0;
        let mut n = 0;
        while let Some(d) = h.next_deadline() {
            assert!(d >= prev);
            prev = d;
            assert!(h.pop_expired(u64::MAX).is_some());
            h.check();
            n += 1;
        }
        assert_eq!(n, live.len());
    }

    #[test]
    fn stale_key_is_detected() {
        let mut h = TimerHeap::default();
        let k = h.insert(5, Waker::noop().clone());
        h.remove(k);
        let k2 = h.insert(6, Waker::noop().clone());
        assert_eq!(k.slot, k2.slot);
        assert_ne!(k, k2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.is_fired(k)));
        assert!(r.is_err());
    }
}
