//! The hello appliance: the smallest Ringlet guest that exercises the
//! platform end to end. The real-Xen suite's `hello` scenario
//! (xtask/src/e2e/scenarios/hello.sh, docs/real-xen.md) checks each step
//! from dom0; `cargo run -p ringlet-hello` runs it on the software Xen.
//!
//! 1. logs `hello from ringlet on Xen x.y.z`;
//! 2. with `panic` on its command line, panics (a crashed domain with the
//!    message on the console);
//! 3. sleeps [`SLEEP`] and logs how late it woke (never early);
//! 4. reads its domid and name from xenstore;
//! 5. writes `data/ringlet-hello/greeting` = `hello from <name>`;
//! 6. grants dom0 read access to a page filled with [`PAGE_PATTERN`] and
//!    writes the grant reference to `data/ringlet-hello/gref`;
//! 7. watches `data/ringlet-hello/poke`; when dom0 writes a token there,
//!    logs it and writes it back to `data/ringlet-hello/poke-ack`;
//! 8. waits for `xl shutdown` and returns (the runtime powers off).
//!
//! On the software Xen there is no dom0 shell, so hello plays dom0's part
//! itself in a second task ([`dom0`], hosted builds only): it does what the
//! scenario's check script does, with the sim's dom0 xenstore and grant
//! mapping, and asks for the shutdown at the end.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::fmt;

use ringlet::executor::{sleep, Duration, Instant};
use ringlet::xen::grant::{Access, GrantedPage};
use ringlet::xen::hypervisor::{DomId, PAGE_SIZE};
use ringlet::xen::xenstore::client::{RequestError, WatchError};
use ringlet::xen::xenstore::wire::XenstoreError;

/// How long hello sleeps to measure timer lateness.
const SLEEP: Duration = Duration::from_millis(100);

/// The keys hello writes, relative to its xenstore home.
const DATA: &str = "data/ringlet-hello";

/// The text the granted page is filled with (repeated, cut at 4096 bytes).
const PAGE_PATTERN: &[u8] = b"ringlet-hello grant page\n";

/// The longest poke token hello echoes back.
const POKE_BYTES_MAX: usize = 256;

/// Why hello failed.
#[derive(Debug)]
enum HelloError {
    /// The toolstack gave no xenstore ring.
    NoXenstore,
    /// A xenstore request failed.
    Xenstore(&'static str, RequestError),
    /// The watch could not be set.
    Watch(WatchError),
    /// The page could not be allocated or granted.
    Grant(String),
    /// The watch stream ended (xenstore connection broken).
    WatchEnded,
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelloError::NoXenstore => f.write_str("no xenstore"),
            HelloError::Xenstore(what, e) => write!(f, "{what}: {e}"),
            HelloError::Watch(e) => write!(f, "watch: {e}"),
            HelloError::Grant(e) => write!(f, "grant: {e}"),
            HelloError::WatchEnded => f.write_str("the poke watch ended"),
        }
    }
}

#[ringlet::main]
async fn main(env: ringlet::Env) -> Result<(), HelloError> {
    log::info!("hello from ringlet on {}", env.hypervisor());
    if env.cmdline_has("panic") {
        panic!("ringlet-hello: panic requested on the command line");
    }

    #[cfg(not(target_os = "none"))]
    let _dom0 = env
        .sim()
        .map(|(sim, id)| ringlet::executor::spawn(dom0::play(sim.clone(), id)));

    let start = Instant::now();
    sleep(SLEEP).await;
    let took = start.elapsed();
    if took >= SLEEP {
        log::info!(
            "hello: slept {} ms, late by {} us",
            SLEEP.as_millis(),
            (took - SLEEP).as_micros()
        );
    } else {
        log::info!(
            "hello: slept {} ms, early by {} us",
            SLEEP.as_millis(),
            (SLEEP - took).as_micros()
        );
    }

    let xs = env.xenstore().ok_or(HelloError::NoXenstore)?;
    let domid = xs
        .domid()
        .await
        .map_err(|e| HelloError::Xenstore("read domid", e))?;
    let name = xs
        .read_string("name")
        .await
        .map_err(|e| HelloError::Xenstore("read name", e))?;
    log::info!("hello: domid={} name={}", domid.0, name);

    xs.write(&format!("{DATA}/greeting"), format!("hello from {name}"))
        .await
        .map_err(|e| HelloError::Xenstore("write greeting", e))?;

    let page = env
        .guest()
        .alloc_page()
        .map_err(|e| HelloError::Grant(format!("{e}")))?;
    let mem = page.mem();
    for offset in (0..PAGE_SIZE).step_by(PAGE_PATTERN.len()) {
        let len = PAGE_PATTERN.len().min(PAGE_SIZE - offset);
        mem.write(offset, &PAGE_PATTERN[..len]);
    }
    let granted = GrantedPage::new(page, DomId::DOM0, Access::ReadOnly)
        .map_err(|(_, e)| HelloError::Grant(format!("{e}")))?;
    xs.write(
        &format!("{DATA}/gref"),
        format!("{}", granted.grant_ref().0),
    )
    .await
    .map_err(|e| HelloError::Xenstore("write gref", e))?;
    log::info!("hello: granted page gref={} to dom0", granted.grant_ref().0);

    let poke_path = format!("{DATA}/poke");
    let mut watch = xs.watch(&poke_path).await.map_err(HelloError::Watch)?;
    loop {
        watch.next().await.ok_or(HelloError::WatchEnded)?;
        let token = match xs.read(&poke_path).await {
            Ok(token) => token,
            // The watch fires once when it is set, before dom0 wrote anything.
            Err(RequestError::Xenstore(XenstoreError::NoEnt)) => continue,
            Err(e) => return Err(HelloError::Xenstore("read poke", e)),
        };
        if token.is_empty() || token.len() > POKE_BYTES_MAX {
            log::warn!("hello: ignoring a poke of {} bytes", token.len());
            continue;
        }
        let token = String::from_utf8_lossy(&token);
        log::info!("hello: watch fired poke={token}");
        xs.write(&format!("{DATA}/poke-ack"), token.as_bytes())
            .await
            .map_err(|e| HelloError::Xenstore("write poke-ack", e))?;
        break;
    }
    drop(watch);

    let kind = env.shutdown_requested().await;
    log::info!("hello: shutdown requested ({kind})");
    // The grant ends when `granted` drops (dom0 unmapped it long ago).
    drop(granted);
    Ok(())
}

/// dom0's side of the hello scenario on the software Xen: what
/// xtask/src/e2e/scenarios/hello.sh does with xenstore-* and a grant mapping.
#[cfg(not(target_os = "none"))]
mod dom0 {
    use alloc::format;
    use alloc::string::String;

    use ringlet::xen::hypervisor::{DomId, GrantRef, PAGE_SIZE};
    use ringlet::xen::sim::SimXen;
    use ringlet::xen::xenstore::client::{RequestError, Xenstore};
    use ringlet::xen::xenstore::wire::XenstoreError;

    use super::{DATA, PAGE_PATTERN};

    /// Waits until `path` exists and returns its value.
    async fn wait_for(xs: &Xenstore, path: &str) -> Result<String, String> {
        let mut watch = xs
            .watch(path)
            .await
            .map_err(|e| format!("watch {path}: {e}"))?;
        loop {
            match xs.read_string(path).await {
                Ok(value) => return Ok(value),
                Err(RequestError::Xenstore(XenstoreError::NoEnt)) => {}
                Err(e) => return Err(format!("read {path}: {e}")),
            }
            watch
                .next()
                .await
                .ok_or_else(|| format!("watch {path} ended"))?;
        }
    }

    async fn run(sim: SimXen, id: DomId) -> Result<(), String> {
        let xs =
            Xenstore::new(&sim.guest(DomId::DOM0)).map_err(|e| format!("dom0 xenstore: {e}"))?;
        let home = xs
            .get_domain_path(id)
            .await
            .map_err(|e| format!("domain path: {e}"))?;
        let data = format!("{home}/{DATA}");

        let greeting = wait_for(&xs, &format!("{data}/greeting")).await?;
        log::info!("dom0: read greeting '{greeting}'");

        let token = "poke-1";
        xs.write(&format!("{data}/poke"), token)
            .await
            .map_err(|e| format!("write poke: {e}"))?;
        let ack = wait_for(&xs, &format!("{data}/poke-ack")).await?;
        if ack != token {
            return Err(format!("poke-ack is '{ack}', want '{token}'"));
        }

        let gref: u32 = wait_for(&xs, &format!("{data}/gref"))
            .await?
            .parse()
            .map_err(|_| "gref is not a number".to_string())?;
        let mut page = [0u8; PAGE_SIZE];
        let dom0 = sim.dom0();
        dom0.copy_from_grant(id, GrantRef(gref), 0, &mut page)
            .map_err(|e| format!("mapping grant {gref}: {e}"))?;
        let want = PAGE_PATTERN.iter().copied().cycle().take(PAGE_SIZE);
        if !page.iter().copied().eq(want) {
            return Err(format!("granted page {gref} differs"));
        }
        log::info!("dom0: grant {gref} mapped, page checked");

        xs.write(&format!("{home}/control/shutdown"), "poweroff")
            .await
            .map_err(|e| format!("write control/shutdown: {e}"))?;
        Ok(())
    }

    /// Plays dom0; a failure is logged (hello then waits for a shutdown that
    /// never comes, and the sim reports the stall).
    pub(crate) async fn play(sim: SimXen, id: DomId) {
        if let Err(e) = run(sim, id).await {
            log::error!("dom0: {e}");
        }
    }

    use alloc::string::ToString;
}
