//! The netecho appliance: proves netfront and the network stack against a
//! real network backend. The real-Xen suite's `net` scenario
//! (xtask/src/e2e/scenarios/net.sh, docs/network.md "On real Xen") checks
//! it from dom0; `cargo run -p ringlet-netecho` runs it on the software
//! Xen, with the sim's netback and a second stack playing dom0's part.
//!
//! 1. connects netfront to `device/vif/0` and logs
//!    `netecho: vif0 <mac> connected in <T> ms`;
//! 2. configures IPv4 from the command line (`ip=A.B.C.D/N gw=A.B.C.D`) or
//!    by DHCP when there is no `ip=`, and logs
//!    `netecho: ip <A.B.C.D/N> gw <A.B.C.D|none> (static|dhcp) after <T> ms`;
//! 3. echoes TCP and UDP on port [`ECHO_PORT`] and logs
//!    `netecho: listening tcp <port> udp <port>`; every TCP connection, once
//!    closed, logs `netecho: tcp <peer> closed: <B> bytes in <T> ms
//!    (<R> MiB/s)` (or `... failed: <error> after <B> bytes ...`);
//! 4. on `xl shutdown` logs `netecho: shutdown requested (<kind>)`, the
//!    totals (`netecho: totals ...`), netfront's and the stack's counters,
//!    and `netecho: done`, then returns (the runtime powers off).
//!
//! Console lines are queued (at most [`JOURNAL_LINES_MAX`]) and written by
//! one task at a pace dom0's xenconsoled keeps up with: a full console ring
//! drops output, and 50 connections closing at once would fill it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod echo;
mod journal;
#[cfg(not(target_os = "none"))]
mod sim_dom0;

use alloc::format;
use alloc::rc::Rc;
use core::fmt;

use ringlet::executor::{sleep, spawn, timeout, Duration, Instant};
use ringlet_net::netfront::{connect, ConnectError, NetfrontConfig};
use ringlet_net::{
    BindError, ConfigError, IpConfig, IpConfigError, Stack, StackConfig, TcpListener, UdpSocket,
};

use echo::Totals;
use journal::Journal;

/// The port of both echo services (RFC 862).
pub const ECHO_PORT: u16 = 7;
/// Listening sockets kept ready: dom0 opens 50 connections at once, and
/// their SYNs may all arrive before the accepting task runs.
const BACKLOG: usize = 64;
/// TCP and UDP sockets in all: the backlog, 64 open connections, the UDP
/// socket and closing ones. Each TCP socket costs up to 64 KiB of buffers.
const SOCKETS_MAX: usize = 192;
/// How long DHCP may take before netecho gives up.
const DHCP_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines the journal queues before it drops (and counts) new ones.
pub const JOURNAL_LINES_MAX: usize = 256;
/// How long netecho waits at shutdown for the journal to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why netecho failed.
#[derive(Debug)]
enum NetechoError {
    /// The toolstack gave no xenstore ring.
    NoXenstore,
    /// netfront did not connect to the backend.
    Netfront(ConnectError),
    /// `ip=`/`gw=` on the command line are malformed.
    IpConfig(IpConfigError),
    /// The stack refused its configuration.
    Stack(ConfigError),
    /// DHCP gave no lease within [`DHCP_TIMEOUT`].
    DhcpTimeout,
    /// A service could not bind its port.
    Bind(&'static str, BindError),
    /// The console ring overflowed: this many bytes of output were lost.
    ConsoleDropped(u64),
}

impl fmt::Display for NetechoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetechoError::NoXenstore => f.write_str("no xenstore"),
            NetechoError::Netfront(e) => write!(f, "vif0: {e}"),
            NetechoError::IpConfig(e) => write!(f, "command line: {e}"),
            NetechoError::Stack(e) => write!(f, "stack: {e}"),
            NetechoError::DhcpTimeout => {
                write!(f, "no DHCP lease within {} s", DHCP_TIMEOUT.as_secs())
            }
            NetechoError::Bind(what, e) => write!(f, "{what} port {ECHO_PORT}: {e}"),
            NetechoError::ConsoleDropped(n) => {
                write!(f, "the console dropped {n} bytes of output")
            }
        }
    }
}

/// A seed for smoltcp (TCP initial sequence numbers, ephemeral ports,
/// DHCP transaction ids): the MAC and the boot clock, mixed (splitmix64).
fn seed(mac: [u8; 6]) -> u64 {
    let mut x = Instant::now().as_nanos();
    for b in mac {
        x = (x ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[ringlet::main]
async fn main(env: ringlet::Env) -> Result<(), NetechoError> {
    #[cfg(not(target_os = "none"))]
    if let Some((sim, id)) = env.sim() {
        sim_dom0::provide(sim, id);
    }
    let xs = env.xenstore().ok_or(NetechoError::NoXenstore)?;
    let ip = IpConfig::from_cmdline(env.cmdline()).map_err(NetechoError::IpConfig)?;

    // 1. The device.
    let start = Instant::now();
    let nic = connect(env.guest(), xs, NetfrontConfig::new(0))
        .await
        .map_err(NetechoError::Netfront)?;
    let nic_handle = nic.handle();
    log::info!(
        "netecho: vif0 {} connected in {} ms (backend {})",
        nic.mac(),
        start.elapsed().as_millis(),
        nic_handle.backend_path().unwrap_or_default()
    );
    let supervisor = nic.handle();
    let xs2 = xs.clone();
    spawn(async move {
        let Err(e) = supervisor.supervise(&xs2).await;
        log::error!("netecho: {e}");
    })
    .detach();

    // 2. The address.
    let mac = nic.mac().0;
    let config = StackConfig::new(ip)
        .random_seed(seed(mac))
        .sockets_max(SOCKETS_MAX);
    let (stack, runner) = Stack::new(nic, config).map_err(NetechoError::Stack)?;
    spawn(runner.run()).detach();
    let how = match ip {
        IpConfig::Static(_) => "static",
        IpConfig::Dhcp => "dhcp",
    };
    let start = Instant::now();
    let configured = timeout(DHCP_TIMEOUT, stack.wait_configured())
        .await
        .map_err(|_| NetechoError::DhcpTimeout)?;
    log::info!(
        "netecho: ip {} gw {} ({how}) after {} ms",
        configured.address,
        configured
            .gateway
            .map_or_else(|| "none".into(), |g| format!("{g}")),
        start.elapsed().as_millis()
    );

    // 3. The services.
    let journal = Rc::new(Journal::new(JOURNAL_LINES_MAX));
    spawn(journal.clone().run()).detach();
    let totals = Rc::new(Totals::default());
    let listener =
        TcpListener::bind(&stack, ECHO_PORT, BACKLOG).map_err(|e| NetechoError::Bind("tcp", e))?;
    let udp = UdpSocket::bind(&stack, ECHO_PORT).map_err(|e| NetechoError::Bind("udp", e))?;
    let tcp_task = spawn(echo::serve_tcp(listener, journal.clone(), totals.clone()));
    let udp_task = spawn(echo::serve_udp(udp, totals.clone()));
    log::info!("netecho: listening tcp {ECHO_PORT} udp {ECHO_PORT}");

    // 4. Until the toolstack asks us to stop.
    let kind = env.shutdown_requested().await;
    log::info!("netecho: shutdown requested ({kind})");
    // Connections still closing log their lines first (bounded).
    drop(tcp_task);
    let _ = timeout(DRAIN_TIMEOUT, async {
        totals.all_closed().await;
        journal.drained().await;
    })
    .await;
    drop(udp_task);
    log::info!("netecho: totals {}", totals.summary(journal.dropped()));
    let s = nic_handle.stats();
    log::info!(
        "netecho: netfront rx {} frames {} bytes ({} chained, {} csum filled, {} errors, \
         {} malformed), tx {} frames {} bytes ({} errors, {} full, {} csum offloaded, \
         {} csum computed), link downs {}, reconnects {}",
        s.rx_frames,
        s.rx_bytes,
        s.rx_chains,
        s.rx_csum_filled,
        s.rx_errors,
        s.rx_malformed,
        s.tx_frames,
        s.tx_bytes,
        s.tx_errors,
        s.tx_full,
        s.tx_csum_offloaded,
        s.tx_csum_computed,
        s.link_downs,
        s.reconnects
    );
    let st = stack.stats();
    log::info!(
        "netecho: stack runs {} ({} budget yields), frames rx {} tx {}, tx blocked {}, \
         linger resets {}, fin-stall resets {}",
        st.runs,
        st.budget_yields,
        st.frames_rx,
        st.frames_tx,
        st.tx_blocked,
        st.linger_resets,
        st.fin_stall_resets
    );
    sleep(journal::CONSOLE_PAUSE).await;
    let dropped = ringlet::xen::console::global_dropped();
    if dropped > 0 {
        return Err(NetechoError::ConsoleDropped(dropped));
    }
    log::info!("netecho: done");
    Ok(())
}
