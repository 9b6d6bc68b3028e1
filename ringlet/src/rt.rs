//! The runtime start: from the booted hypervisor to the appliance's `main`
//! and back to the toolstack.
//!
//! On Xen (`target_os = "none"`), [`pvh_main`] is what `#[ringlet::main]`
//! calls once the PVH boot path (reactor-xen's `pvh` module: page tables,
//! heap, hypercall page, shared info, grant table, event delivery) is done:
//! 1. wrap the hypervisor in a [`Guest`] and build the executor over
//!    [`XenPlatform`] (pvclock clock, event demux, `block` as the idle step);
//! 2. bring up the PV console as the `log` backend and the crash console;
//! 3. connect the xenstore client and start the watch on
//!    `control/shutdown` (acknowledged by emptying it after `main`);
//! 4. run `main(env)` to completion;
//! 5. `Ok` → `SCHEDOP_shutdown` with poweroff (or reboot, if that was
//!    requested); `Err` → the error on the console and port 0xe9, then
//!    crash. A panic anywhere goes through the same crash path.
//!
//! On Linux with the `sim` feature, [`sim_main`] runs the same `main` as one
//! guest of the software Xen.

use alloc::string::{String, ToString};
use core::fmt::Display;

/// What `main` may return: `()` or `Result<(), E>` with a displayable `E`.
pub trait MainResult {
    /// `Ok` for success, the error's text for failure.
    fn into_outcome(self) -> Result<(), String>;
}

impl MainResult for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> MainResult for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

#[cfg(target_os = "none")]
pub use self::pvh::pvh_main;

#[cfg(target_os = "none")]
mod pvh {
    use alloc::rc::Rc;
    use core::future::Future;

    use ringlet_executor::Executor;
    use ringlet_xen::guest::Guest;
    use ringlet_xen::hypervisor::{Hypervisor, ShutdownReason};
    use ringlet_xen::platform::XenPlatform;
    use ringlet_xen::pvh::{self, Pvh};
    use ringlet_xen::xenstore::client::Xenstore;

    use super::MainResult;
    use crate::env::{Env, ShutdownKind, ShutdownSignal};

    /// Runs the appliance on the booted PVH guest; never returns (the domain
    /// shuts down). Called by the code `#[ringlet::main]` generates.
    pub fn pvh_main<F, Fut>(xen: Pvh, main: F) -> !
    where
        F: FnOnce(Env) -> Fut,
        Fut: Future,
        Fut::Output: MainResult,
    {
        crate::logger::init(
            pvh::console::write_bytes,
            crate::logger::level_from_cmdline(xen.cmdline()),
        );
        let xen = Rc::new(xen);
        let hv: Rc<dyn Hypervisor> = xen.clone();
        let guest = Guest::new(hv);
        let shutdown = ShutdownSignal::new();
        let version = alloc::format!("Xen {}", xen.xen_version());
        let xenstore = match Xenstore::new(&guest) {
            Ok(xenstore) => Some(xenstore),
            Err(e) => {
                log::warn!("xenstore: {e}");
                None
            }
        };
        let env = Env::new(
            guest.clone(),
            xen.cmdline(),
            &version,
            xenstore.clone(),
            shutdown.clone(),
        );
        let executor = Executor::new(XenPlatform::new(guest.clone()));
        // Dropping the handle cancels the watch: it lives until main returns.
        let _watch = xenstore
            .clone()
            .map(|xs| executor.spawn(crate::env::watch_shutdown(xs, shutdown.clone())));
        let outcome = executor.run(main(env)).into_outcome();
        if let (Some(xs), Some(_)) = (&xenstore, shutdown.requested()) {
            executor.run(crate::env::acknowledge_shutdown(xs));
        }
        match outcome {
            Ok(()) => {
                let reason = match shutdown.requested() {
                    Some(ShutdownKind::Reboot) => ShutdownReason::Reboot,
                    _ => ShutdownReason::Poweroff,
                };
                log::info!("main returned; {reason:?}");
                xen.shutdown(reason);
                unreachable!("SCHEDOP_shutdown returned")
            }
            Err(message) => pvh::crash(format_args!("main failed: {message}")),
        }
    }
}

#[cfg(all(feature = "sim", not(target_os = "none")))]
pub use self::sim::sim_main;

#[cfg(all(feature = "sim", not(target_os = "none")))]
mod sim {
    use core::future::Future;
    use std::process::ExitCode;

    use super::MainResult;
    use crate::env::Env;

    /// Runs the appliance as one guest of the software Xen. Called by the
    /// code `#[ringlet::main]` generates for hosted targets.
    ///
    /// Not wired yet: the software Xen's world API is still landing, so this
    /// says so and fails rather than pretend.
    pub fn sim_main<F, Fut>(_main: F) -> ExitCode
    where
        F: FnOnce(Env) -> Fut,
        Fut: Future,
        Fut::Output: MainResult,
    {
        std::eprintln!(
            "ringlet: running on the software Xen is not wired yet (see ringlet/src/rt.rs)"
        );
        ExitCode::FAILURE
    }
}
