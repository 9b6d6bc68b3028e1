//! Shared I/O rings (io/ring.h): the one generic front ring every driver
//! uses (netfront tx/rx, blkfront), over any request/response pair.
//!
//! A driver describes its protocol with [`RingProtocol`] (slot size, how to
//! write a request into a slot, how to read a response out of one, where a
//! response's id is) and gets a [`FrontRing`] that
//!
//! - pushes requests with notify hold-off (`req_event`), never more in
//!   flight than the ring has slots;
//! - hands out request ids itself and keeps a driver context per
//!   outstanding id (e.g. the granted buffer), returned with the response;
//! - copies each response out of shared memory once and validates it before
//!   anyone acts on it: the producer index no further ahead than the
//!   requests in flight, the id in range and outstanding;
//! - is a Future by construction: [`FrontRing::poll_response`] registers the
//!   waker, then does `RING_FINAL_CHECK_FOR_RESPONSES`, and only then
//!   returns Pending.
#![deny(unsafe_code)]

mod front;
#[cfg(test)]
mod test;

use core::fmt;

pub use front::{FrontRing, NextResponse, Response};

use crate::abi::ring::RingIdx;
use crate::grant::GrantError;
use crate::hypervisor::OutOfPages;

/// Largest ring slot (`sizeof(union NAME_sring_entry)`) supported; a
/// response is copied into a stack buffer of this size.
pub const SLOT_SIZE_MAX: usize = 512;

/// A request/response protocol over an io/ring.h ring (one
/// `DEFINE_RING_TYPES`).
///
/// Responses are decoded from bytes the back end wrote: `read_response` must
/// accept any bytes (it parses, it does not trust), and the ring validates
/// the id it returns before the response reaches the driver. Every request
/// gets exactly one response with the request's id (so protocols with
/// id-less extra slots, like netif's extra-info, need a driver-side shim).
pub trait RingProtocol {
    /// A request as the driver builds it.
    type Request;
    /// A response as decoded from a slot.
    type Response;
    /// `sizeof(union NAME_sring_entry)`: the larger of request and response,
    /// padded to their alignment. At most [`SLOT_SIZE_MAX`].
    const SLOT_SIZE: usize;
    /// Encodes `req` into `slot` (`SLOT_SIZE` bytes, zeroed).
    fn write_request(req: &Self::Request, slot: &mut [u8]);
    /// Decodes a response from a copy of its slot (`SLOT_SIZE` bytes).
    fn read_response(slot: &[u8]) -> Self::Response;
    /// The id the back end put in the response.
    fn response_id(rsp: &Self::Response) -> u64;
}

/// A request id handed out by the ring: `0..ring size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u16);

/// A response that cannot be trusted, or a ring the back end broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// `rsp_prod` is behind `rsp_cons` or further ahead than the requests in
    /// flight: nothing is consumed; the ring is unusable until the back end
    /// fixes it (or the driver reconnects).
    ProducerOutOfRange {
        /// The back end's `rsp_prod`.
        rsp_prod: RingIdx,
        /// Our `rsp_cons`.
        rsp_cons: RingIdx,
        /// Requests we had published (`req_prod`).
        req_prod: RingIdx,
    },
    /// A response whose id is out of range or not outstanding (e.g. a
    /// duplicate). The slot was consumed and the response dropped.
    UnknownId(u64),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::ProducerOutOfRange {
                rsp_prod,
                rsp_cons,
                req_prod,
            } => write!(
                f,
                "ring response producer {rsp_prod} out of range (consumer {rsp_cons}, requests {req_prod})"
            ),
            RingError::UnknownId(id) => write!(f, "ring response with unknown id {id}"),
        }
    }
}

impl core::error::Error for RingError {}

/// The ring has no free slot (or no free id): the request's context comes
/// back.
#[derive(Debug, PartialEq, Eq)]
pub struct RingFull<C>(pub C);

impl<C> fmt::Display for RingFull<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring full")
    }
}

impl<C: fmt::Debug> core::error::Error for RingFull<C> {}

/// Why a front ring could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingSetupError {
    /// No page for the ring.
    OutOfPages,
    /// The ring page could not be granted.
    Grant(GrantError),
}

impl From<OutOfPages> for RingSetupError {
    fn from(_: OutOfPages) -> Self {
        RingSetupError::OutOfPages
    }
}

impl fmt::Display for RingSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingSetupError::OutOfPages => f.write_str("no page for the ring"),
            RingSetupError::Grant(e) => write!(f, "granting the ring: {e}"),
        }
    }
}

impl core::error::Error for RingSetupError {}

/// Counters of a front ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Requests written.
    pub requests: u64,
    /// Pushes that published requests.
    pub pushes: u64,
    /// Pushes that needed a notification (the back end asked for one).
    pub notifies: u64,
    /// Pushes whose notification was held off (the back end was still busy).
    pub notifies_held_off: u64,
    /// Valid responses delivered.
    pub responses: u64,
    /// Responses dropped for an unknown id.
    pub unknown_ids: u64,
    /// Times the producer index was found out of range.
    pub bad_producer: u64,
}
