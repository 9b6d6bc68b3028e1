//! The shared-ring layout of io/ring.h: a 64-byte header of producer and
//! event indices, then a power-of-two array of request/response slots.
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU8};

/// `RING_IDX`: free-running ring indices, compared with wrapping arithmetic.
#[doc(alias = "RING_IDX")]
pub type RingIdx = u32;

/// Bytes of the shared-ring header before the first slot.
pub const SRING_HEADER_SIZE: usize = 64;

/// The header of every `struct NAME_sring` made by `DEFINE_RING_TYPES`
/// (xen/io/ring.h); the slots (`union NAME_sring_entry ring[]`) follow at
/// offset [`SRING_HEADER_SIZE`].
///
/// The front end writes `req_prod` and `rsp_event`; the back end writes
/// `rsp_prod` and `req_event`.
#[doc(alias = "sring")]
#[repr(C)]
#[derive(Debug)]
pub struct SringHeader {
    /// Requests produced by the front end.
    pub req_prod: AtomicU32,
    /// The back end wants a notification when `req_prod` passes this.
    pub req_event: AtomicU32,
    /// Responses produced by the back end.
    pub rsp_prod: AtomicU32,
    /// The front end wants a notification when `rsp_prod` passes this.
    pub rsp_event: AtomicU32,
    /// Protocol-private bytes (`pvt`, e.g. netif's `smartpoll_active`).
    pub pvt: [AtomicU8; 4],
    /// Padding up to the first slot.
    pub pad: [AtomicU8; 44],
}

const _: () = {
    assert!(size_of::<SringHeader>() == SRING_HEADER_SIZE);
    assert!(offset_of!(SringHeader, req_prod) == 0);
    assert!(offset_of!(SringHeader, req_event) == 4);
    assert!(offset_of!(SringHeader, rsp_prod) == 8);
    assert!(offset_of!(SringHeader, rsp_event) == 12);
    assert!(offset_of!(SringHeader, pvt) == 16);
    assert!(offset_of!(SringHeader, pad) == 20);
};

/// Byte offset of `req_prod` in the shared ring.
pub const SRING_REQ_PROD: usize = offset_of!(SringHeader, req_prod);
/// Byte offset of `req_event`.
pub const SRING_REQ_EVENT: usize = offset_of!(SringHeader, req_event);
/// Byte offset of `rsp_prod`.
pub const SRING_RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
/// Byte offset of `rsp_event`.
pub const SRING_RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);

/// `__RD32`: `x` rounded down to a power of two (0 stays 0).
pub const fn round_down_pow2(x: u32) -> u32 {
    if x == 0 {
        0
    } else {
        1 << (31 - x.leading_zeros())
    }
}

/// `__CONST_RING_SIZE`: slots of `slot_size` bytes that fit in a shared ring
/// of `area_size` bytes (header included), rounded down to a power of two.
/// 0 when not even one slot fits or `slot_size` is 0.
#[doc(alias = "__CONST_RING_SIZE")]
#[doc(alias = "__RING_SIZE")]
pub const fn ring_size(slot_size: usize, area_size: usize) -> u32 {
    if slot_size == 0 || area_size <= SRING_HEADER_SIZE {
        return 0;
    }
    let n = (area_size - SRING_HEADER_SIZE) / slot_size;
    let n = if n > u32::MAX as usize {
        u32::MAX
    } else {
        n as u32
    };
    round_down_pow2(n)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn ring_sizes_match_io_ring_h() {
        // (4096 - 64) / 8 = 504 -> 256 (netif rx); / 12 = 336 -> 256 (netif tx);
        // / 112 = 36 -> 32 (blkif).
        assert_eq!(ring_size(8, 4096), 256);
        assert_eq!(ring_size(12, 4096), 256);
        assert_eq!(ring_size(112, 4096), 32);
        assert_eq!(ring_size(4, 4096), 1008_u32.next_power_of_two() / 2);
        assert_eq!(ring_size(4032, 4096), 1);
        assert_eq!(ring_size(4033, 4096), 0);
        assert_eq!(ring_size(0, 4096), 0);
        assert_eq!(ring_size(8, 64), 0);
    }

    #[test]
    fn round_down() {
        assert_eq!(round_down_pow2(0), 0);
        assert_eq!(round_down_pow2(1), 1);
        assert_eq!(round_down_pow2(3), 2);
        assert_eq!(round_down_pow2(u32::MAX), 1 << 31);
    }
}
