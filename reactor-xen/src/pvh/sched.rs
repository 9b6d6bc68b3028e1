//! Scheduler and version hypercalls: `SCHEDOP_shutdown`, `XENVER_*`.

use super::hypercall::{self, hypercall};
use crate::hypervisor::ShutdownReason;

use crate::abi::hypercall::{XENVER_EXTRAVERSION, XENVER_VERSION, XEN_EXTRAVERSION_LEN};
use crate::abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN};

/// Shuts the domain down. Returns only if the hypercall page is not set up
/// yet or Xen refused (the caller then halts).
pub(crate) fn shutdown(reason: ShutdownReason) {
    if !hypercall::ready() {
        return;
    }
    let arg = SchedShutdown {
        reason: reason as u32,
    };
    // SAFETY: the page is ready; `arg` is a valid `sched_shutdown` that
    // lives across the call.
    unsafe {
        hypercall(
            hypercall::SCHED_OP,
            [SCHEDOP_SHUTDOWN.into(), &arg as *const _ as u64, 0, 0, 0],
        );
    }
}

/// Xen's version: major, minor, and the extra version (e.g. ".7").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenVersion {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// `XENVER_extraversion`, NUL-padded.
    pub extra: [u8; XEN_EXTRAVERSION_LEN],
}

impl XenVersion {
    /// The extra version as text, up to the first NUL (empty if not UTF-8).
    pub fn extra_str(&self) -> &str {
        let end = self
            .extra
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.extra.len());
        core::str::from_utf8(&self.extra[..end]).unwrap_or("")
    }
}

impl core::fmt::Display for XenVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}{}", self.major, self.minor, self.extra_str())
    }
}

/// Asks Xen for its version. The hypercall page must be ready.
pub(crate) fn xen_version() -> XenVersion {
    assert!(hypercall::ready(), "xen_version before the hypercall page");
    let mut extra = [0u8; XEN_EXTRAVERSION_LEN];
    // SAFETY: the page is ready; XENVER_version takes no argument;
    // XENVER_extraversion writes 16 bytes to `extra`, which is 16 bytes and
    // lives across the call.
    let (version, _) = unsafe {
        (
            hypercall(hypercall::XEN_VERSION, [XENVER_VERSION.into(), 0, 0, 0, 0]),
            hypercall(
                hypercall::XEN_VERSION,
                [
                    XENVER_EXTRAVERSION.into(),
                    extra.as_mut_ptr() as u64,
                    0,
                    0,
                    0,
                ],
            ),
        )
    };
    XenVersion {
        major: (version >> 16) as u16,
        minor: version as u16,
        extra,
    }
}
