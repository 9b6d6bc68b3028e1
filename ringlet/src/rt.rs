//! The runtime start: from the booted hypervisor to the appliance's `main`
//! and back to the toolstack.
//!
//! On Xen (`target_os = "none"`), [`pvh_main`] is what `#[ringlet::main]`
//! calls once the PVH boot path (reactor-xen's `pvh` module: page tables,
//! heap, hypercall page, shared info, grant table, event delivery) is done:
//! 1. the `log` backend (reactor-xen's `console`): port 0xe9 until the PV
//!    console is attached, then the PV console; the PV console also becomes
//!    the crash console (panics and exceptions);
//! 2. a [`Guest`] over the hypervisor and the executor over [`XenPlatform`]
//!    (pvclock clock, event demux, `block` as the idle step);
//! 3. the xenstore client, and a task watching `control/shutdown`;
//! 4. `main(env)` run to completion;
//! 5. a shutdown request, if any, acknowledged (the key emptied);
//! 6. `Ok` → `SCHEDOP_shutdown` with poweroff (reboot if that was
//!    requested); `Err` → the error on the console and port 0xe9, then crash.
//!    A panic anywhere goes through the same crash path.
//!
//! On Linux with the `sim` feature, [`sim_main`] runs the same `main` as one
//! guest of the software Xen (reactor-xen's `sim`), steps 2–6 being the same
//! code; log lines go to stdout.
//!
//! [`Guest`]: ringlet_xen::guest::Guest
//! [`XenPlatform`]: ringlet_xen::platform::XenPlatform

use alloc::string::{String, ToString};
use core::fmt::Display;

use ringlet_executor::Executor;
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::ShutdownReason;
use ringlet_xen::xenstore::client::Xenstore;

use crate::env::{self, Env, ShutdownKind, ShutdownSignal};

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

/// How `main` ended, and how the domain should go down.
#[derive(Debug)]
pub(crate) enum Exit {
    /// `main` returned `Ok`: this shutdown reason.
    Clean(ShutdownReason),
    /// `main` returned `Err` with this text.
    Failed(String),
}

/// Steps 2–5 of the module docs, shared by both runtimes: connects xenstore,
/// starts the shutdown watch, runs `main`, acknowledges a request.
pub(crate) fn run_main<F, Fut>(
    executor: &Executor,
    guest: &Guest,
    cmdline: &str,
    hypervisor: &str,
    env_extra: impl FnOnce(&mut Env),
    main: F,
) -> Exit
where
    F: FnOnce(Env) -> Fut,
    Fut: core::future::Future,
    Fut::Output: MainResult,
{
    let shutdown = ShutdownSignal::new();
    let xenstore = match Xenstore::new(guest) {
        Ok(xenstore) => Some(xenstore),
        Err(e) => {
            log::warn!("xenstore: {e}");
            None
        }
    };
    let mut env = Env::new(
        guest.clone(),
        cmdline,
        hypervisor,
        xenstore.clone(),
        shutdown.clone(),
    );
    env_extra(&mut env);
    // Dropping the handle cancels the watch: it lives until main returns.
    let _watch = xenstore
        .clone()
        .map(|xs| executor.spawn(env::watch_shutdown(xs, shutdown.clone())));
    let outcome = executor.run(main(env)).into_outcome();
    if let (Some(xs), Some(_)) = (&xenstore, shutdown.requested()) {
        executor.run(env::acknowledge_shutdown(xs));
    }
    match outcome {
        Ok(()) => Exit::Clean(match shutdown.requested() {
            Some(ShutdownKind::Reboot) => ShutdownReason::Reboot,
            _ => ShutdownReason::Poweroff,
        }),
        Err(message) => Exit::Failed(message),
    }
}

#[cfg(target_os = "none")]
pub use self::pvh::pvh_main;

#[cfg(target_os = "none")]
mod pvh {
    use alloc::rc::Rc;
    use core::future::Future;

    use ringlet_executor::Executor;
    use ringlet_xen::console::{self, Console};
    use ringlet_xen::guest::Guest;
    use ringlet_xen::hypervisor::Hypervisor;
    use ringlet_xen::platform::XenPlatform;
    use ringlet_xen::pvh::{self, Pvh};

    use super::{run_main, Exit, MainResult};
    use crate::env::Env;

    /// Runs the appliance on the booted PVH guest; never returns (the domain
    /// shuts down). Called by the code `#[ringlet::main]` generates.
    pub fn pvh_main<F, Fut>(xen: Pvh, main: F) -> !
    where
        F: FnOnce(Env) -> Fut,
        Fut: Future,
        Fut::Output: MainResult,
    {
        let level = console::level_from_cmdline(xen.cmdline());
        if console::install_logger(level, Some(pvh::console::write_bytes)).is_err() {
            pvh::console::write_bytes(b"ringlet: a logger was already installed\n");
        }
        let xen = Rc::new(xen);
        let hv: Rc<dyn Hypervisor> = xen.clone();
        let guest = Guest::new(hv);
        match Console::new(&guest) {
            Ok(pv_console) => {
                if console::attach_global(pv_console).is_ok() {
                    pvh::set_crash_console(console::write_global);
                }
            }
            Err(e) => log::warn!("no PV console ({e}): logging to port 0xe9 only"),
        }
        let version = alloc::format!("Xen {}", xen.xen_version());
        let executor = Executor::new(XenPlatform::new(guest.clone()));
        let exit = run_main(&executor, &guest, xen.cmdline(), &version, |_| {}, main);
        match exit {
            Exit::Clean(reason) => {
                log::info!("ringlet: main returned, {reason:?}");
                log::info!(
                    "ringlet: {} upcalls, {} of them at the idle hlt",
                    ringlet_xen::pvh::UPCALLS.load(core::sync::atomic::Ordering::Relaxed),
                    ringlet_xen::pvh::UPCALLS_AT_HLT.load(core::sync::atomic::Ordering::Relaxed)
                );
                xen.shutdown(reason);
                unreachable!("SCHEDOP_shutdown returned")
            }
            Exit::Failed(message) => pvh::crash(format_args!("main failed: {message}")),
        }
    }
}

#[cfg(all(feature = "sim", not(target_os = "none")))]
pub use self::sim::{sim_main, SIM_SEED_DEFAULT};

#[cfg(all(feature = "sim", not(target_os = "none")))]
mod sim {
    use core::future::Future;
    use std::io::Write as _;
    use std::process::ExitCode;

    use ringlet_executor::Executor;
    use ringlet_xen::console;
    use ringlet_xen::hypervisor::{Hypervisor, ShutdownReason};
    use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};

    use super::{run_main, Exit, MainResult};
    use crate::env::Env;

    /// The seed of a hosted run when `RINGLET_SEED` is not set.
    pub const SIM_SEED_DEFAULT: u64 = 1;

    fn stdout_line(bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// Runs the appliance as one guest (named `name`, command line = the
    /// program's arguments) of a fault-free software Xen seeded by
    /// `RINGLET_SEED` (default [`SIM_SEED_DEFAULT`]). Log lines go to
    /// stdout. Returns success when `main` returns `Ok`. Called by the code
    /// `#[ringlet::main]` generates for hosted targets.
    pub fn sim_main<F, Fut>(name: &str, main: F) -> ExitCode
    where
        F: FnOnce(Env) -> Fut,
        Fut: Future,
        Fut::Output: MainResult,
    {
        let args: std::vec::Vec<std::string::String> = std::env::args().skip(1).collect();
        let cmdline = args.join(" ");
        let level = console::level_from_cmdline(&cmdline);
        let _ = console::install_logger(level, Some(stdout_line));
        let seed = SimConfig::seed_from_env().unwrap_or(SIM_SEED_DEFAULT);
        let sim = SimXen::new(SimConfig::new(seed).quiet());
        let domain = sim.create_domain(DomainConfig::new(name).cmdline(&cmdline));
        let guest = sim.guest(domain.id());
        let executor = Executor::new(sim.clone());
        let hypervisor = std::format!("the software Xen (seed {seed})");
        let sim_for_env = sim.clone();
        let id = domain.id();
        let exit = run_main(
            &executor,
            &guest,
            &cmdline,
            &hypervisor,
            |env| env.set_sim(sim_for_env, id),
            main,
        );
        match exit {
            Exit::Clean(reason) => {
                log::info!("ringlet: main returned, {reason:?}");
                Hypervisor::shutdown(&domain, reason);
                ExitCode::SUCCESS
            }
            Exit::Failed(message) => {
                log::error!("ringlet: main failed: {message}");
                Hypervisor::shutdown(&domain, ShutdownReason::Crash);
                ExitCode::FAILURE
            }
        }
    }
}
