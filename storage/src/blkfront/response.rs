//! Judging a blkif response against the request it claims to answer.
//!
//! The shared front ring ([`ringlet_xen::ring::FrontRing`]) hands out ring
//! ids `0..size` and has already checked that a response's low 16 id bits
//! name an outstanding request. blkfront puts a generation above those bits
//! (`id = generation << 16 | ring id`, the generation bumped per request),
//! so a duplicate or stale response for a ring id that has since been reused
//! is caught here, never taken as the newer request's completion.
#![forbid(unsafe_code)]

use crate::blkif::{Response, RSP_EOPNOTSUPP, RSP_ERROR, RSP_OKAY};
use crate::block::ProtocolError;

/// Bits of a blkif id that hold the ring id.
pub const RING_ID_BITS: u32 = 16;

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

/// The blkif id of a request: `generation << 16 | ring_id`.
pub fn make_id(generation: u64, ring_id: u16) -> u64 {
    (generation << RING_ID_BITS) | u64::from(ring_id)
}

/// The ring id a response names (what the front ring checks).
pub fn ring_id(id: u64) -> u64 {
    id & ((1 << RING_ID_BITS) - 1)
}

/// Checks `rsp` against the request it was matched with: the whole id, an
/// operation among `ops`, a known status.
///
/// # Errors
///
/// [`ProtocolError::UnknownId`], [`ProtocolError::OperationMismatch`] or
/// [`ProtocolError::UnknownStatus`].
pub fn check(rsp: &Response, id: u64, ops: [u8; 2]) -> Result<Status, ProtocolError> {
    if rsp.id != id {
        return Err(ProtocolError::UnknownId);
    }
    if !ops.contains(&rsp.operation) {
        return Err(ProtocolError::OperationMismatch);
    }
    Status::from_raw(rsp.status).ok_or(ProtocolError::UnknownStatus)
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
    fn ids() {
        let id = make_id(0x1234, 7);
        assert_eq!(id, 0x1234_0007);
        assert_eq!(ring_id(id), 7);
    }

    #[test]
    fn good_responses() {
        let id = make_id(5, 3);
        assert_eq!(
            check(&rsp(id, OP_READ, RSP_OKAY), id, [OP_READ; 2]),
            Ok(Status::Okay)
        );
        assert_eq!(
            check(&rsp(id, OP_WRITE, RSP_ERROR), id, [OP_WRITE; 2]),
            Ok(Status::Error)
        );
        // An indirect request may be answered with either operation.
        let ops = [OP_INDIRECT, OP_READ];
        assert_eq!(
            check(&rsp(id, OP_INDIRECT, RSP_OKAY), id, ops),
            Ok(Status::Okay)
        );
        assert_eq!(
            check(&rsp(id, OP_READ, RSP_EOPNOTSUPP), id, ops),
            Ok(Status::NotSupported)
        );
    }

    #[test]
    fn bad_responses() {
        let id = make_id(5, 3);
        // Same ring id, older generation: a duplicate or stale response.
        assert_eq!(
            check(&rsp(make_id(4, 3), OP_READ, RSP_OKAY), id, [OP_READ; 2]),
            Err(ProtocolError::UnknownId)
        );
        assert_eq!(
            check(&rsp(id, OP_WRITE, RSP_OKAY), id, [OP_READ; 2]),
            Err(ProtocolError::OperationMismatch)
        );
        for bad in [1, -3, i16::MIN, i16::MAX] {
            assert_eq!(
                check(&rsp(id, OP_READ, bad), id, [OP_READ; 2]),
                Err(ProtocolError::UnknownStatus)
            );
        }
    }
}
