//! The early console: Xen's debug port 0xe9.
//!
//! With `guest_loglvl=all` on Xen's command line, every line a PVH guest
//! writes to port 0xe9 shows in Xen's log (serial, `xl dmesg`) as `(dN) ...`.
//! It needs no setup and never blocks, so it serves the boot, exceptions and
//! panics. Writes from a guest without that option are dropped by Xen.

use core::fmt;

use super::cpu;

/// Xen's (and QEMU's `-debugcon`) debug output port.
pub const DEBUG_PORT: u16 = 0xe9;

/// Writes `bytes` to port 0xe9.
pub fn write_bytes(bytes: &[u8]) {
    for &byte in bytes {
        // SAFETY: the 0xe9 debug port only logs the byte; it has no access to
        // guest memory.
        unsafe { cpu::outb(DEBUG_PORT, byte) }
    }
}

/// A [`fmt::Write`] over port 0xe9, for `write!` in the boot and panic paths.
#[derive(Debug, Clone, Copy, Default)]
pub struct DebugPort;

impl fmt::Write for DebugPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Writes a formatted line to port 0xe9, prefixed with `ringlet: `.
#[macro_export]
#[doc(hidden)]
macro_rules! __pvh_early_println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut port = $crate::pvh::console::DebugPort;
        let _ = port.write_str("ringlet: ");
        let _ = port.write_fmt(format_args!($($arg)*));
        let _ = port.write_str("\n");
    }};
}
pub(crate) use __pvh_early_println as early_println;
