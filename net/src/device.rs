//! The network device contract: a smoltcp [`Device`] that can wake the runner.
//!
//! smoltcp's [`Device`] is poll-only: `receive` and `transmit` return `None`
//! when there is nothing to take or no room. [`NetDevice`] adds what an
//! event loop needs: a waker to call when that changes, so the stack's
//! runner sleeps instead of polling. Implementations: netfront (Xen),
//! [`Cable`](crate::cable::Cable) (two stacks in one process) and, with
//! `std`, a Linux TAP device.

use core::task::Waker;

use smoltcp::phy::Device;

/// A smoltcp [`Device`] that wakes the stack's runner when it has work.
///
/// Implementations MUST:
/// - keep the waker of the latest [`register_waker`](NetDevice::register_waker)
///   call (one waker; a new call replaces the old one);
/// - wake it when a frame becomes receivable, and when room to transmit
///   appears after [`Device::transmit`] returned `None`;
/// - wake it if the condition already holds when the waker is registered,
///   or else make sure the runner's next `receive`/`transmit` sees it (the
///   runner registers before it polls, so a frame that arrives between the
///   two is never lost);
/// - treat everything received as untrusted bytes (smoltcp parses and
///   checks them), and never hand smoltcp a frame longer than the MTU in
///   [`Device::capabilities`];
/// - not block in `receive`, `transmit` or a token's `consume`. A tx token
///   from `receive` may drop its frame when there is no room (a reply that
///   TCP will repeat), and should count it.
pub trait NetDevice: Device {
    /// Registers the runner's waker (see the trait doc for when to wake it).
    fn register_waker(&mut self, waker: &Waker);

    /// The device's Ethernet (MAC) address.
    fn mac(&self) -> [u8; 6];
}
