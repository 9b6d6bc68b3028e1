//! The table of requests in flight, and the validation of each response
//! against it.
//!
//! # Ids
//!
//! A request's id is `generation << 16 | slot`: the slot indexes the table
//! (bounded by the ring size), the generation is bumped on every insert. A
//! response is accepted only if its id is exactly the id of a busy slot, so
//! a duplicate response (its slot freed, or reused by a later request under
//! a new generation), a stale one and a made-up one are all
//! [`ProtocolError::UnknownId`], never a completion of the wrong request.
//!
//! # Slot states
//!
//! ```text
//!          1. insert (id = gen << 16 | slot)        2. complete(response with that id,
//!   Free ─────────────────────────────────► Busy ──── matching op, known status) ──► Free
//!                                            │
//!                                            └── 3. drain (device failed) ──────────► Free
//! ```
//!
//! A response that fails validation changes nothing: the caller then treats
//! the device as broken and drains the table (3).
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::blkif::{Response, RSP_EOPNOTSUPP, RSP_ERROR, RSP_OKAY};
use crate::block::ProtocolError;

/// Bits of an id that hold the slot.
const SLOT_BITS: u32 = 16;

/// The most slots a table may have.
pub const SLOTS_MAX: usize = 1 << SLOT_BITS;

/// A response's status, once known to be one blkif defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `BLKIF_RSP_OKAY`.
    Okay,
    /// `BLKIF_RSP_ERROR`.
    Error,
    /// `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
}

impl Status {
    /// The status for a raw `status` field, if blkif defines it.
    pub fn from_raw(raw: i16) -> Option<Status> {
        match raw {
            RSP_OKAY => Some(Status::Okay),
            RSP_ERROR => Some(Status::Error),
            RSP_EOPNOTSUPP => Some(Status::NotSupported),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Slot<T> {
    Free,
    Busy { id: u64, ops: [u8; 2], data: T },
}

/// Requests in flight, each with the caller's data `T` (its pages, its waker).
#[derive(Debug)]
pub struct InFlight<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u16>,
    generation: u64,
}

impl<T> InFlight<T> {
    /// A table of `capacity` slots (the ring size).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or more than [`SLOTS_MAX`].
    pub fn new(capacity: usize) -> InFlight<T> {
        assert!(
            capacity > 0 && capacity <= SLOTS_MAX,
            "bad in-flight capacity {capacity}"
        );
        InFlight {
            slots: (0..capacity).map(|_| Slot::Free).collect(),
            // Popped from the end: slot 0 first.
            free: (0..capacity as u16).rev().collect(),
            generation: 0,
        }
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether no request is in flight.
    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    /// Whether every slot is busy.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Records a request whose response must carry operation `ops[0]` or
    /// `ops[1]` (an indirect request may be answered with either
    /// `BLKIF_OP_INDIRECT` or its inner operation); returns its id, or the
    /// data back if every slot is busy.
    ///
    /// # Errors
    ///
    /// `Err(data)` when the table is full.
    pub fn insert(&mut self, ops: [u8; 2], data: T) -> Result<u64, T> {
        let Some(slot) = self.free.pop() else {
            return Err(data);
        };
        self.generation = (self.generation + 1) & (u64::MAX >> SLOT_BITS);
        let id = self.generation << SLOT_BITS | u64::from(slot);
        let entry = &mut self.slots[usize::from(slot)];
        assert!(matches!(entry, Slot::Free), "free list names a busy slot");
        *entry = Slot::Busy { id, ops, data };
        Ok(id)
    }

    /// Validates `rsp` and, if it completes a request in flight, frees its
    /// slot and returns its data and status.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnknownId`], [`ProtocolError::OperationMismatch`] or
    /// [`ProtocolError::UnknownStatus`]; the table is unchanged.
    pub fn complete(&mut self, rsp: &Response) -> Result<(T, Status), ProtocolError> {
        let slot = (rsp.id & ((1 << SLOT_BITS) - 1)) as usize;
        let Some(Slot::Busy { id, ops, .. }) = self.slots.get(slot) else {
            return Err(ProtocolError::UnknownId);
        };
        if *id != rsp.id {
            return Err(ProtocolError::UnknownId);
        }
        if !ops.contains(&rsp.operation) {
            return Err(ProtocolError::OperationMismatch);
        }
        let status = Status::from_raw(rsp.status).ok_or(ProtocolError::UnknownStatus)?;
        let Slot::Busy { data, .. } = core::mem::replace(&mut self.slots[slot], Slot::Free) else {
            unreachable!("checked busy above");
        };
        self.free.push(slot as u16);
        Ok((data, status))
    }

    /// Empties the table (the device failed), handing back every request's data.
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Busy { data, .. } = core::mem::replace(slot, Slot::Free) {
                out.push(data);
                self.free.push(i as u16);
            }
        }
        out
    }

    /// The data of the request with `id`, if it is in flight.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let slot = (id & ((1 << SLOT_BITS) - 1)) as usize;
        match self.slots.get_mut(slot) {
            Some(Slot::Busy { id: busy, data, .. }) if *busy == id => Some(data),
            _ => None,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::blkif::{OP_INDIRECT, OP_READ, OP_WRITE};

    fn rsp(id: u64, operation: u8, status: i16) -> Response {
        Response {
            id,
            operation,
            status,
            ..Response::default()
        }
    }

    #[test]
    fn fill_complete_reuse() {
        let mut t = InFlight::new(4);
        let ids: Vec<u64> = (0..4).map(|i| t.insert([OP_READ; 2], i).unwrap()).collect();
        assert!(t.is_full());
        assert_eq!(t.insert([OP_READ; 2], 99), Err(99));
        // Completion out of order.
        assert_eq!(
            t.complete(&rsp(ids[2], OP_READ, RSP_OKAY)),
            Ok((2, Status::Okay))
        );
        assert_eq!(
            t.complete(&rsp(ids[0], OP_READ, RSP_ERROR)),
            Ok((0, Status::Error))
        );
        assert_eq!(t.len(), 2);
        let again = t.insert([OP_WRITE; 2], 7).unwrap();
        assert_ne!(again, ids[0]);
        assert_ne!(again, ids[2]);
        assert_eq!(t.get_mut(again), Some(&mut 7));
    }

    #[test]
    fn duplicate_and_stale_ids_are_refused() {
        let mut t = InFlight::new(2);
        let a = t.insert([OP_READ; 2], 'a').unwrap();
        assert!(t.complete(&rsp(a, OP_READ, RSP_OKAY)).is_ok());
        // Duplicate while the slot is free.
        assert_eq!(
            t.complete(&rsp(a, OP_READ, RSP_OKAY)),
            Err(ProtocolError::UnknownId)
        );
        // Slot reused by a new request: the old id still does not match.
        let b = t.insert([OP_READ; 2], 'b').unwrap();
        assert_eq!(a & 0xffff, b & 0xffff);
        assert_eq!(
            t.complete(&rsp(a, OP_READ, RSP_OKAY)),
            Err(ProtocolError::UnknownId)
        );
        assert_eq!(
            t.complete(&rsp(b | 0xffff, OP_READ, RSP_OKAY)),
            Err(ProtocolError::UnknownId)
        );
        assert_eq!(
            t.complete(&rsp(u64::MAX, OP_READ, RSP_OKAY)),
            Err(ProtocolError::UnknownId)
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.complete(&rsp(b, OP_READ, RSP_OKAY)),
            Ok(('b', Status::Okay))
        );
    }

    #[test]
    fn operation_and_status_are_checked() {
        let mut t = InFlight::new(2);
        let r = t.insert([OP_READ; 2], ()).unwrap();
        assert_eq!(
            t.complete(&rsp(r, OP_WRITE, RSP_OKAY)),
            Err(ProtocolError::OperationMismatch)
        );
        assert_eq!(
            t.complete(&rsp(r, OP_READ, 1)),
            Err(ProtocolError::UnknownStatus)
        );
        assert_eq!(
            t.complete(&rsp(r, OP_READ, -3)),
            Err(ProtocolError::UnknownStatus)
        );
        assert_eq!(t.len(), 1, "a bad response changes nothing");
        let i = t.insert([OP_INDIRECT, OP_WRITE], ()).unwrap();
        assert_eq!(
            t.complete(&rsp(i, OP_WRITE, RSP_EOPNOTSUPP)),
            Ok(((), Status::NotSupported))
        );
        assert_eq!(
            t.complete(&rsp(r, OP_READ, RSP_OKAY)),
            Ok(((), Status::Okay))
        );
    }

    #[test]
    fn drain_frees_everything() {
        let mut t = InFlight::new(3);
        for i in 0..3 {
            t.insert([OP_READ; 2], i).unwrap();
        }
        let mut d = t.drain();
        d.sort();
        assert_eq!(d, [0, 1, 2]);
        assert!(t.is_empty());
        assert_eq!(t.insert([OP_READ; 2], 5).map(|_| ()), Ok(()));
    }
}
