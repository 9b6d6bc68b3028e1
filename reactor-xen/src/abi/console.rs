//! The PV console ring page (xen/io/console.h).

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU8};

/// Bytes in the console's input ring (backend to guest).
pub const XENCONS_IN_SIZE: usize = 1024;
/// Bytes in the console's output ring (guest to backend).
pub const XENCONS_OUT_SIZE: usize = 2048;

/// The console ring page, `struct xencons_interface` (xen/io/console.h).
///
/// The guest writes `out`, `out_prod` and `in_cons`; the console backend
/// (xenconsoled) writes `in`, `in_prod` and `out_cons`; hence atomics. The
/// indices are free-running and masked with the ring's size.
#[doc(alias = "xencons_interface")]
#[repr(C)]
#[derive(Debug)]
pub struct XenconsInterface {
    /// Input from the backend (keyboard).
    pub in_: [AtomicU8; XENCONS_IN_SIZE],
    /// Output to the backend (the log).
    pub out: [AtomicU8; XENCONS_OUT_SIZE],
    /// Written by the guest: input consumed.
    pub in_cons: AtomicU32,
    /// Written by the backend: input produced.
    pub in_prod: AtomicU32,
    /// Written by the backend: output consumed.
    pub out_cons: AtomicU32,
    /// Written by the guest: output produced.
    pub out_prod: AtomicU32,
}

const _: () = {
    assert!(size_of::<XenconsInterface>() == 3088);
    assert!(offset_of!(XenconsInterface, in_) == 0);
    assert!(offset_of!(XenconsInterface, out) == 1024);
    assert!(offset_of!(XenconsInterface, in_cons) == 3072);
    assert!(offset_of!(XenconsInterface, in_prod) == 3076);
    assert!(offset_of!(XenconsInterface, out_cons) == 3080);
    assert!(offset_of!(XenconsInterface, out_prod) == 3084);
    assert!(XENCONS_IN_SIZE.is_power_of_two());
    assert!(XENCONS_OUT_SIZE.is_power_of_two());
};

/// `MASK_XENCONS_IDX(idx, out)`: the offset of a free-running index in `out`.
#[doc(alias = "MASK_XENCONS_IDX")]
pub const fn mask_xencons_out_idx(idx: u32) -> usize {
    (idx as usize) & (XENCONS_OUT_SIZE - 1)
}

/// `MASK_XENCONS_IDX(idx, in)`: the offset of a free-running index in `in`.
pub const fn mask_xencons_in_idx(idx: u32) -> usize {
    (idx as usize) & (XENCONS_IN_SIZE - 1)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn masks_wrap() {
        assert_eq!(mask_xencons_out_idx(2047), 2047);
        assert_eq!(mask_xencons_out_idx(2048), 0);
        assert_eq!(mask_xencons_in_idx(1025), 1);
        assert_eq!(mask_xencons_out_idx(u32::MAX), 2047);
    }
}
