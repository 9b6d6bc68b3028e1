//! The httpd appliance: serves the tar image on the first vbd over HTTP/1.1.
//!
//! On Xen (`cargo xtask build httpd`, or `cargo build -p ringlet-httpd
//! --release --target x86_64-unknown-none`):
//! 1. the first vbd (lowest id under `device/vbd`) through blkfront, with a
//!    read cache in front of it, opened as a tar store;
//! 2. vif 0 through netfront (supervised: reconnected if the backend goes),
//!    under the ringlet-net stack; IP from the command line (`ip=A.B.C.D/N
//!    gw=A.B.C.D`) or DHCP;
//! 3. the server on `port=` (default 80) until `xl shutdown`, then a
//!    graceful stop and poweroff. Once it listens, the read cache gets its
//!    capacity: `cache=` MiB, or by default a share of the free heap (see
//!    [`ringlet_httpd::cache`]).
//!
//! It logs `httpd: serving http://A.B.C.D:PORT/` once it listens.
//!
//! Hosted (`cargo run -p ringlet-httpd -- ...`), see [`hosted`].
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::rc::Rc;
use core::fmt;

use ringlet::executor::{spawn, timeout, Duration};
use ringlet::xen::xenstore::client::{RequestError, Xenstore};
use ringlet_httpd::cache::{self, CacheChoice, CacheOption, CacheOptionError};
use ringlet_httpd::server::{self, ServeError, Server, ServerConfig};
use ringlet_net::netfront::{self, NetfrontConfig};
use ringlet_net::{IpConfig, IpConfigError, Stack, StackConfig};
use ringlet_storage::tar::{TarOpenError, TarStore};
use ringlet_storage::{blkfront, BlockDevice, CacheConfig, CacheConfigError, CachedDevice};

/// Sockets of the stack beyond connections and backlog: room for
/// connections that are closing (orphans of the stack).
const CLOSING_SOCKETS: usize = 64;
/// Each TCP socket's receive buffer: requests are small.
const TCP_RX_BUFFER_BYTES: usize = 8 * 1024;
/// Each TCP socket's transmit buffer.
const TCP_TX_BUFFER_BYTES: usize = 32 * 1024;
/// How long to wait for a DHCP lease.
const DHCP_TIMEOUT: Duration = Duration::from_secs(30);
/// The vif httpd uses.
const VIF_DEVID: u32 = 0;

/// Why the appliance stopped.
#[derive(Debug)]
#[non_exhaustive]
enum HttpdError {
    /// The domain has no xenstore.
    NoXenstore,
    /// `device/vbd` could not be listed.
    ListDisks(RequestError),
    /// There is no vbd.
    NoDisk,
    /// blkfront could not connect.
    Disk(blkfront::ConnectError),
    /// The disk is not a usable tar archive.
    Site(TarOpenError),
    /// netfront could not connect.
    Net(netfront::ConnectError),
    /// The command line's `ip=`/`gw=` are invalid.
    Ip(IpConfigError),
    /// The network stack refused its configuration.
    Stack(ringlet_net::ConfigError),
    /// The command line's `port=` is invalid.
    Config(server::ConfigError),
    /// The command line's `cache=` is invalid.
    CacheOption(CacheOptionError),
    /// The read cache does not fit the disk.
    Cache(CacheConfigError),
    /// DHCP gave no address in time.
    NoAddress,
    /// The server could not listen.
    Serve(ServeError),
    /// Hosted runs only.
    #[cfg(not(target_os = "none"))]
    Hosted(hosted::HostedError),
}

impl fmt::Display for HttpdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpdError::NoXenstore => f.write_str("httpd: no xenstore"),
            HttpdError::ListDisks(e) => write!(f, "httpd: listing device/vbd: {e}"),
            HttpdError::NoDisk => f.write_str("httpd: no vbd (the site image is the first disk)"),
            HttpdError::Disk(e) => write!(f, "httpd: {e}"),
            HttpdError::Site(e) => write!(f, "httpd: the site image: {e}"),
            HttpdError::Net(e) => write!(f, "httpd: {e}"),
            HttpdError::Ip(e) => write!(f, "httpd: command line: {e}"),
            HttpdError::Stack(e) => write!(f, "httpd: network stack: {e}"),
            HttpdError::Config(e) => write!(f, "httpd: command line: {e}"),
            HttpdError::CacheOption(e) => write!(f, "httpd: command line: {e}"),
            HttpdError::Cache(e) => write!(f, "httpd: read cache: {e}"),
            HttpdError::NoAddress => write!(
                f,
                "httpd: no DHCP lease within {} s",
                DHCP_TIMEOUT.as_secs()
            ),
            HttpdError::Serve(e) => write!(f, "{e}"),
            #[cfg(not(target_os = "none"))]
            HttpdError::Hosted(e) => write!(f, "httpd: {e}"),
        }
    }
}

#[ringlet::main]
async fn main(env: ringlet::Env) -> Result<(), HttpdError> {
    #[cfg(not(target_os = "none"))]
    if let Some((sim, id)) = env.sim() {
        return hosted::main(&env, sim.clone(), id).await;
    }
    appliance(&env, env.cmdline()).await
}

/// The first vbd's device id (the lowest under `device/vbd`).
async fn first_vbd(xs: &Xenstore) -> Result<u32, HttpdError> {
    let ids = match xs.directory("device/vbd").await {
        Ok(ids) => ids,
        Err(RequestError::Xenstore(ringlet::xen::xenstore::wire::XenstoreError::NoEnt)) => {
            return Err(HttpdError::NoDisk)
        }
        Err(e) => return Err(HttpdError::ListDisks(e)),
    };
    ids.iter()
        .filter_map(|id| id.parse::<u32>().ok())
        .min()
        .ok_or(HttpdError::NoDisk)
}

/// The network stack's configuration for httpd: sockets for every
/// connection, the listener's backlog, and closing connections.
fn stack_config(ip: IpConfig, seed: u64, server: &ServerConfig) -> StackConfig {
    StackConfig::new(ip)
        .random_seed(seed)
        .sockets_max(server.connections_max + server.backlog + CLOSING_SOCKETS)
        .tcp_buffer_bytes(TCP_RX_BUFFER_BYTES, TCP_TX_BUFFER_BYTES)
}

/// The appliance: disk, network, server (see the crate docs).
async fn appliance(env: &ringlet::Env, cmdline: &str) -> Result<(), HttpdError> {
    let config = ServerConfig::from_cmdline(cmdline).map_err(HttpdError::Config)?;
    let cache_option = CacheOption::from_cmdline(cmdline).map_err(HttpdError::CacheOption)?;
    let ip = IpConfig::from_cmdline(cmdline).map_err(HttpdError::Ip)?;
    let xs = env.xenstore().ok_or(HttpdError::NoXenstore)?;

    let devid = first_vbd(xs).await?;
    let disk = Rc::new(
        blkfront::connect(env.guest(), xs, devid)
            .await
            .map_err(HttpdError::Disk)?,
    );
    let (monitored, xs2) = (disk.clone(), xs.clone());
    spawn(async move { monitored.monitor(&xs2).await }).detach();
    // Off while the index is read (headers are read once); sized in `serve`.
    let disk = CachedDevice::new(disk, CacheConfig::new(0)).map_err(HttpdError::Cache)?;
    let store = TarStore::open(disk).await.map_err(HttpdError::Site)?;
    log::info!(
        "httpd: site on vbd {devid}: {} entries, {} bytes",
        store.len(),
        store.device().info().size_bytes()
    );

    let nic = netfront::connect(env.guest(), xs, NetfrontConfig::new(VIF_DEVID))
        .await
        .map_err(HttpdError::Net)?;
    let handle = nic.handle();
    let xs3 = xs.clone();
    spawn(async move {
        let Err(e) = handle.supervise(&xs3).await;
        log::error!("httpd: netfront supervisor stopped: {e}");
    })
    .detach();
    let mac = nic.mac().0;
    let seed = mac
        .iter()
        .fold(0u64, |s, &b| s.rotate_left(8) ^ u64::from(b));
    let (stack, runner) =
        Stack::new(nic, stack_config(ip, seed, &config)).map_err(HttpdError::Stack)?;
    spawn(runner.run()).detach();
    let addr = timeout(DHCP_TIMEOUT, stack.wait_configured())
        .await
        .map_err(|_| HttpdError::NoAddress)?;

    serve(
        env,
        &stack,
        store,
        config,
        cache_option,
        addr.address.address(),
    )
    .await
}

/// The free heap now (PVH: the heap's size less what is allocated), or
/// `None` on a host, where that means nothing.
fn free_heap_bytes() -> Option<u64> {
    #[cfg(target_os = "none")]
    return Some(ringlet::xen::pvh::heap_free_bytes());
    #[cfg(not(target_os = "none"))]
    None
}

/// Binds and runs the server until shutdown; sizes the read cache once
/// the server's own allocations are made.
async fn serve<D: BlockDevice + 'static>(
    env: &ringlet::Env,
    stack: &Stack,
    store: TarStore<CachedDevice<D>>,
    config: ServerConfig,
    cache_option: CacheOption,
    addr: ringlet_net::Ipv4Address,
) -> Result<(), HttpdError> {
    let port = config.port;
    let reserve = cache::connections_reserve_bytes(
        config.connections_max,
        TCP_RX_BUFFER_BYTES + TCP_TX_BUFFER_BYTES,
        config.chunk_bytes,
        ringlet_httpd::http::HEAD_BYTES_MAX,
    );
    let store = Rc::new(store);
    let server = Server::bind(stack, store.clone(), config).map_err(HttpdError::Serve)?;
    let choice = CacheChoice::choose(cache_option, free_heap_bytes(), reserve);
    let cached = store.device();
    cached.set_capacity_bytes(usize::try_from(choice.bytes).unwrap_or(usize::MAX));
    log::info!("httpd: read cache {choice}");
    log::info!("httpd: serving http://{addr}:{port}/");
    let shutdown = env.shutdown_requested();
    let stats = server
        .run(async move {
            let kind = shutdown.await;
            log::info!("httpd: shutdown requested ({kind})");
        })
        .await;
    log::info!(
        "httpd: stopped: {} connections, {} responses (2xx {} 3xx {} 4xx {} 5xx {}), {} body bytes",
        stats.accepted,
        stats.responses,
        stats.by_class[0],
        stats.by_class[1],
        stats.by_class[2],
        stats.by_class[3],
        stats.body_bytes
    );
    let c = cached.stats();
    log::info!(
        "httpd: read cache: {} hits, {} misses ({} chunk reads, {} bytes; {} past the cache), \
         {} evictions, {} chunks ({} bytes) held, at most {} bytes",
        c.hits,
        c.misses,
        c.fills,
        c.fill_bytes,
        c.bypass_reads,
        c.evictions,
        c.chunks,
        c.resident_bytes,
        c.resident_bytes_max
    );
    Ok(())
}

/// Hosted runs (`cargo run -p ringlet-httpd -- ARGS`), on the software Xen.
///
/// - `--site DIR_OR_TAR` (default: the demo site, `apps/httpd/site` plus
///   the generated `big.bin`): what to serve; a directory is packed into a
///   tar in memory.
/// - no `--tap`: a **self-check** in one process. The appliance gets a vbd
///   (the sim's blkback serving the image) and a vif (the sim's netback on
///   a bridge); a second guest, `client`, with its own netfront and stack on
///   the same bridge, fetches every file of the image (up to
///   [`CHECK_FILES_MAX`]) and compares it byte for byte, then a range, a
///   HEAD, a conditional GET and a 404; then dom0 asks for a poweroff and
///   httpd stops gracefully. Exit status 0 when everything matched.
/// - `--tap NAME`: the same appliance **on the sim, in real time**, for
///   the host to reach. The world follows the wall clock
///   ([`SimXen::follow_wall_clock`]); dom0 gives httpd the same vbd
///   (blkback serving the image) and vif (netback on a bridge) as in the
///   self-check, and attaches the bridge to the TAP device `NAME`
///   ([`TapPort`]), so the host's frames go TAP → bridge → netback →
///   httpd's netfront, and every file comes through blkfront. `ip=`
///   (default 10.0.0.2/24) and `port=` (default 80) as on Xen. Needs root
///   (or a TAP made with `ip tuntap add NAME mode tap user $USER`); give
///   the host side an address: `ip addr add 10.0.0.1/24 dev NAME; ip link
///   set NAME up`, then `curl http://10.0.0.2/`. Ctrl-C (or SIGTERM) is
///   `xl shutdown`: dom0 writes `poweroff` to httpd's `control/shutdown`,
///   httpd stops gracefully and the exit status is 0; a second Ctrl-C
///   quits at once.
/// - `--pack OUT`: write the site image (the demo site by default) to OUT
///   and exit (the e2e harness's disk image).
#[cfg(not(target_os = "none"))]
mod hosted {
    use std::format;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use ringlet::executor::spawn;
    use ringlet::xen::hypervisor::DomId;
    use ringlet::xen::sim::{DomainConfig, SimXen};
    use ringlet::xen::xenstore::client::Xenstore;
    use ringlet_httpd::client::{Client, ClientError};
    use ringlet_httpd::pack;
    use ringlet_httpd::server::ServerConfig;
    use ringlet_httpd::sim_dom0::{add_disk, add_nic};
    use ringlet_net::netfront::{self, Mac, NetfrontConfig};
    use ringlet_net::sim_netback::{Bridge, NetbackError, TapPort};
    use ringlet_net::{IpConfig, Stack, StackConfig};

    use super::HttpdError;

    /// Files the self-check fetches at most.
    pub const CHECK_FILES_MAX: usize = 64;
    /// The largest file the self-check fetches.
    pub const CHECK_FILE_BYTES_MAX: usize = 64 << 20;
    /// The appliance's address in the self-check (unless `ip=` is given).
    const SERVER_IP: &str = "ip=10.0.0.2/24";
    /// The client guest's address.
    const CLIENT_IP: &str = "ip=10.0.0.3/24";
    /// Frames the sim bridge queues per port.
    const BRIDGE_FRAMES: usize = 512;
    /// httpd's vif MAC (Xen's OUI, as `xl` makes them).
    const SERVER_MAC: Mac = Mac([0, 0x16, 0x3e, 0, 0, 2]);
    /// The client guest's vif MAC.
    const CLIENT_MAC: Mac = Mac([0, 0x16, 0x3e, 0, 0, 3]);

    /// What went wrong in a hosted run.
    #[derive(Debug)]
    pub enum HostedError {
        /// Bad arguments.
        Usage(&'static str),
        /// The site could not be read or packed, or the image written.
        Site(std::io::Error),
        /// The TAP device could not be opened or put on the bridge.
        Tap(ringlet_net::sim_netback::TapOpenError),
        /// Ctrl-C could not be taken over.
        Signals(std::io::Error),
        /// The self-check client failed.
        Client(&'static str, ClientError),
        /// A response was not what the image says.
        Mismatch(String),
        /// dom0's devices or the client guest could not be set up.
        Setup(String),
    }

    impl core::fmt::Display for HostedError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                HostedError::Usage(u) => write!(f, "usage: {u}"),
                HostedError::Site(e) => write!(f, "site: {e}"),
                HostedError::Tap(e) => write!(f, "{e}"),
                HostedError::Signals(e) => write!(f, "taking over Ctrl-C: {e}"),
                HostedError::Client(what, e) => write!(f, "self-check {what}: {e}"),
                HostedError::Mismatch(what) => write!(f, "self-check: {what}"),
                HostedError::Setup(what) => write!(f, "setup: {what}"),
            }
        }
    }

    const USAGE: &str =
        "ringlet-httpd [--site DIR_OR_TAR] [--tap NAME | --pack OUT] [ip=A.B.C.D/N] [port=N] [cache=MIB]";

    struct Args {
        site: Option<PathBuf>,
        tap: Option<String>,
        pack: Option<PathBuf>,
        /// `key=value` words for the appliance's command line.
        cmdline: String,
    }

    fn args() -> Result<Args, HostedError> {
        let mut out = Args {
            site: None,
            tap: None,
            pack: None,
            cmdline: String::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            match a.as_str() {
                "--site" => out.site = Some(it.next().ok_or(HostedError::Usage(USAGE))?.into()),
                "--tap" => out.tap = Some(it.next().ok_or(HostedError::Usage(USAGE))?),
                "--pack" => out.pack = Some(it.next().ok_or(HostedError::Usage(USAGE))?.into()),
                "-h" | "--help" => return Err(HostedError::Usage(USAGE)),
                w if w.contains('=') && !w.starts_with('-') => {
                    out.cmdline.push_str(w);
                    out.cmdline.push(' ');
                }
                _ => return Err(HostedError::Usage(USAGE)),
            }
        }
        if out.tap.is_some() && out.pack.is_some() {
            return Err(HostedError::Usage(USAGE));
        }
        Ok(out)
    }

    fn image(site: Option<&Path>) -> Result<Vec<u8>, HostedError> {
        match site {
            Some(p) => pack::site_image(p),
            None => pack::demo_site(&Path::new(env!("CARGO_MANIFEST_DIR")).join("site")),
        }
        .map_err(HostedError::Site)
    }

    pub(super) async fn main(env: &ringlet::Env, sim: SimXen, id: DomId) -> Result<(), HttpdError> {
        let args = args().map_err(HttpdError::Hosted)?;
        let image = image(args.site.as_deref()).map_err(HttpdError::Hosted)?;
        if let Some(out) = &args.pack {
            std::fs::write(out, &image).map_err(|e| HttpdError::Hosted(HostedError::Site(e)))?;
            log::info!("httpd: wrote {} ({} bytes)", out.display(), image.len());
            return Ok(());
        }
        if let Some(tap) = &args.tap {
            return tap_mode(env, sim, id, tap, &args.cmdline, image).await;
        }
        self_check(env, sim, id, &args.cmdline, image).await
    }

    /// The appliance's command line: `cmdline` with the default `ip=`
    /// unless it has one.
    fn server_cmdline(cmdline: &str) -> String {
        let mut out = cmdline.to_string();
        if !out.contains("ip=") {
            out.push_str(SERVER_IP);
        }
        out
    }

    /// What a failed [`add_nic`] means here.
    fn no_bridge_port(_: NetbackError) -> HostedError {
        HostedError::Setup("no bridge port".into())
    }

    /// dom0's `xl shutdown`: `poweroff` in `id`'s `control/shutdown`.
    async fn request_poweroff(sim: &SimXen, id: DomId) {
        if let Ok(xs) = sim.dom0_xenstore() {
            if let Ok(home) = xs.get_domain_path(id).await {
                let _ = xs
                    .write(&format!("{home}/control/shutdown"), "poweroff")
                    .await;
            }
        }
    }

    /// `--tap`: the appliance on a real-time world, its vif's bridge on the
    /// TAP device `tap` (see the module docs).
    async fn tap_mode(
        env: &ringlet::Env,
        sim: SimXen,
        id: DomId,
        tap: &str,
        cmdline: &str,
        image: Vec<u8>,
    ) -> Result<(), HttpdError> {
        let hosted = HttpdError::Hosted;
        // First, before any thread exists: threads inherit the blocked
        // signals, and only the signal thread may take them.
        let interrupts =
            signals::Interrupts::take_over().map_err(|e| hosted(HostedError::Signals(e)))?;
        sim.follow_wall_clock();

        add_disk(&sim, id, image);
        let bridge = Bridge::new(BRIDGE_FRAMES);
        let vif = add_nic(&sim, &bridge, id, SERVER_MAC).map_err(|e| hosted(no_bridge_port(e)))?;
        let port = Rc::new(TapPort::open(tap, &bridge).map_err(|e| hosted(HostedError::Tap(e)))?);
        log::info!("httpd: vif 0 bridged to the TAP device {tap} (the sim in real time)");

        let (port2, sim2) = (port.clone(), sim.clone());
        let tap_name = tap.to_string();
        spawn(async move {
            let Err(e) = port2.run().await;
            log::error!("httpd: TAP device {tap_name}: {e}; stopping");
            request_poweroff(&sim2, id).await;
        })
        .detach();
        let sim3 = sim.clone();
        spawn(async move {
            interrupts.next().await;
            log::info!("httpd: interrupted: dom0 asks for a poweroff (again to quit at once)");
            request_poweroff(&sim3, id).await;
        })
        .detach();

        super::appliance(env, &server_cmdline(cmdline)).await?;
        let (t, v, b) = (port.stats(), vif.get(), bridge.stats());
        log::info!(
            "httpd: TAP {tap}: {} frames in, {} out, dropped {} (queue full) {} (bad size) {} (refused by the host); \
             netback: {} frames from httpd, {} to httpd; bridge: {} frames, {} dropped (queue full)",
            t.rx_frames,
            t.tx_frames,
            t.rx_dropped_full,
            t.rx_dropped_bad,
            t.tx_dropped,
            v.tx_packets,
            v.rx_packets,
            b.frames_in,
            b.dropped_full
        );
        Ok(())
    }

    /// The regular files of a tar image: (path, bytes), in archive order.
    fn files_of(image: &[u8]) -> Result<Vec<(String, Vec<u8>)>, HostedError> {
        let mut out = Vec::new();
        let mut archive = tar::Archive::new(image);
        for entry in archive.entries().map_err(HostedError::Site)? {
            let mut entry = entry.map_err(HostedError::Site)?;
            if entry.header().entry_type() != tar::EntryType::Regular
                || entry.size() > CHECK_FILE_BYTES_MAX as u64
            {
                continue;
            }
            let path = entry
                .path()
                .map_err(HostedError::Site)?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).map_err(HostedError::Site)?;
            out.retain(|(p, _)| *p != path);
            out.push((path, data));
        }
        Ok(out)
    }

    /// The self-check (see the module docs).
    async fn self_check(
        env: &ringlet::Env,
        sim: SimXen,
        id: DomId,
        cmdline: &str,
        image: Vec<u8>,
    ) -> Result<(), HttpdError> {
        let files = files_of(&image).map_err(HttpdError::Hosted)?;
        let setup = |what: &str| HttpdError::Hosted(HostedError::Setup(what.to_string()));

        // dom0's side: the disk and the network.
        add_disk(&sim, id, image);
        let bridge = Bridge::new(BRIDGE_FRAMES);
        let client_dom = sim.create_domain(DomainConfig::new("client")).id();
        for (dom, mac) in [(id, SERVER_MAC), (client_dom, CLIENT_MAC)] {
            add_nic(&sim, &bridge, dom, mac).map_err(|e| HttpdError::Hosted(no_bridge_port(e)))?;
        }

        // The client guest.
        let client_guest = sim.guest(client_dom);
        let server_cmdline = server_cmdline(cmdline);
        let port = ServerConfig::from_cmdline(&server_cmdline)
            .map(|c| c.port)
            .unwrap_or(80);
        let server_ip = IpConfig::from_cmdline(&server_cmdline);
        let sim2 = sim.clone();
        let check = spawn(async move {
            let result = client(&client_guest, server_ip, port, &files).await;
            match &result {
                Ok(n) => log::info!("client: all {n} checks passed"),
                Err(e) => log::error!("client: {e}"),
            }
            // dom0: `xl shutdown httpd`.
            request_poweroff(&sim2, id).await;
            result
        });

        super::appliance(env, &server_cmdline).await?;
        match check.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(HttpdError::Hosted(e)),
            Err(_) => Err(setup("the client task was cancelled")),
        }
    }

    /// The client guest: netfront, stack, then the checks; how many passed.
    async fn client(
        guest: &ringlet::xen::guest::Guest,
        server_ip: Result<IpConfig, ringlet_net::IpConfigError>,
        port: u16,
        files: &[(String, Vec<u8>)],
    ) -> Result<usize, HostedError> {
        let setup = |what: String| HostedError::Setup(what);
        let server = match server_ip {
            Ok(IpConfig::Static(c)) => c.address.address(),
            _ => return Err(setup("the self-check needs a static ip=".into())),
        };
        let xs = Xenstore::new(guest).map_err(|e| setup(format!("client xenstore: {e}")))?;
        let nic = netfront::connect(guest, &xs, NetfrontConfig::new(0))
            .await
            .map_err(|e| setup(format!("client netfront: {e}")))?;
        let ip = IpConfig::from_cmdline(CLIENT_IP).map_err(|e| setup(format!("{e}")))?;
        let (stack, runner) = Stack::new(nic, StackConfig::new(ip).random_seed(3))
            .map_err(|e| setup(format!("client stack: {e}")))?;
        spawn(runner.run()).detach();
        // Wait until the server listens (it connects its disk first).
        let mut c = loop {
            match Client::connect(&stack, (server, port)).await {
                Ok(c) => break c,
                Err(_) => {
                    ringlet::executor::sleep(ringlet::executor::Duration::from_millis(50)).await
                }
            }
        };
        let max = CHECK_FILE_BYTES_MAX;
        let mut passed = 0;
        let mismatch = |what: String| HostedError::Mismatch(what);
        for (path, data) in files.iter().take(CHECK_FILES_MAX) {
            let raw = format!("GET /{} HTTP/1.1\r\nHost: httpd\r\n\r\n", encode(path));
            let r = c
                .request(raw.as_bytes(), false, max)
                .await
                .map_err(|e| HostedError::Client("GET", e))?;
            if r.status != 200 || r.body != *data {
                return Err(mismatch(format!(
                    "GET /{path}: {} with {} bytes, want 200 with {}",
                    r.status,
                    r.body.len(),
                    data.len()
                )));
            }
            log::info!("client: GET /{path} 200, {} bytes match", data.len());
            passed += 1;
        }
        if let Some((path, data)) = files
            .iter()
            .max_by_key(|(_, d)| d.len())
            .filter(|(_, d)| d.len() > 10)
        {
            let (a, b) = (data.len() / 3, data.len() / 3 + 9);
            let raw = format!(
                "GET /{} HTTP/1.1\r\nHost: httpd\r\nRange: bytes={a}-{b}\r\n\r\n",
                encode(path)
            );
            let r = c
                .request(raw.as_bytes(), false, max)
                .await
                .map_err(|e| HostedError::Client("Range", e))?;
            if r.status != 206 || r.body != data[a..=b] {
                return Err(mismatch(format!("Range on /{path}: {}", r.status)));
            }
            log::info!("client: GET /{path} bytes={a}-{b} 206, 10 bytes match");
            let raw = format!("HEAD /{} HTTP/1.1\r\nHost: httpd\r\n\r\n", encode(path));
            let r = c
                .request(raw.as_bytes(), true, max)
                .await
                .map_err(|e| HostedError::Client("HEAD", e))?;
            let tag = r.header("ETag").unwrap_or_default().to_string();
            if r.status != 200 || r.header("Content-Length") != Some(&data.len().to_string()) {
                return Err(mismatch(format!("HEAD /{path}: {}", r.status)));
            }
            let raw = format!(
                "GET /{} HTTP/1.1\r\nHost: httpd\r\nIf-None-Match: {tag}\r\n\r\n",
                encode(path)
            );
            let r = c
                .request(raw.as_bytes(), false, max)
                .await
                .map_err(|e| HostedError::Client("conditional GET", e))?;
            if r.status != 304 {
                return Err(mismatch(format!("If-None-Match on /{path}: {}", r.status)));
            }
            log::info!("client: HEAD and If-None-Match {tag} on /{path}: 200, 304");
            passed += 3;
        }
        let r = c
            .request(
                b"GET /no/such/file HTTP/1.1\r\nHost: httpd\r\nConnection: close\r\n\r\n",
                false,
                max,
            )
            .await
            .map_err(|e| HostedError::Client("404", e))?;
        if r.status != 404 {
            return Err(mismatch(format!("a missing file: {}", r.status)));
        }
        log::info!("client: GET /no/such/file 404");
        Ok(passed + 1)
    }

    /// Percent-encodes a path for a request line.
    fn encode(path: &str) -> String {
        let mut out = String::new();
        ringlet_httpd::http::target::encode_path(path, &mut out);
        out
    }

    /// Ctrl-C (SIGINT) and SIGTERM for `--tap`, taken by `sigwait(3)` in a
    /// thread of their own rather than by a handler: the wake then goes
    /// through an ordinary [`Waker`] (the executor's remote wake, which
    /// unparks the real-time world) from an ordinary thread, and nothing
    /// runs in signal context.
    ///
    /// [`Waker`]: core::task::Waker
    // pthread_sigmask, sigwait and the sigset calls are FFI.
    #[allow(unsafe_code)]
    mod signals {
        use core::future::poll_fn;
        use core::task::{Poll, Waker};
        use std::io;
        use std::sync::{Arc, Mutex, MutexGuard};

        /// The exit status after a second interrupt: 128 + SIGINT, as a
        /// shell reports a process that SIGINT ended.
        const EXIT_INTERRUPTED_AGAIN: i32 = 128 + libc::SIGINT;

        #[derive(Debug, Default)]
        struct State {
            interrupted: bool,
            /// The waiting task's waker.
            waker: Option<Waker>,
        }

        fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
            state.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// SIGINT and SIGTERM, taken over from their default (which kills
        /// the process).
        #[derive(Debug)]
        pub(super) struct Interrupts {
            state: Arc<Mutex<State>>,
        }

        impl Interrupts {
            /// Blocks SIGINT and SIGTERM in the calling thread, and so in
            /// every thread it spawns from now on (call it before any other
            /// thread exists), and starts the thread that takes them: the
            /// first one resolves [`next`](Interrupts::next), a second one
            /// exits the process at once.
            pub(super) fn take_over() -> io::Result<Interrupts> {
                let set = signal_set();
                // SAFETY: `set` is an initialised sigset_t valid for the
                // call; the old mask is not asked for (null).
                let r =
                    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut()) };
                if r != 0 {
                    return Err(io::Error::from_raw_os_error(r));
                }
                let state = Arc::new(Mutex::new(State::default()));
                let taker = state.clone();
                std::thread::Builder::new()
                    .name("signals".into())
                    .spawn(move || loop {
                        let mut signal = 0;
                        // SAFETY: `set` and `signal` are valid for the call;
                        // the signals in `set` are blocked in this thread
                        // (inherited), as sigwait requires.
                        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                            // Only EINVAL (a bad set): nothing to wait for.
                            return;
                        }
                        let waker = {
                            let mut st = lock(&taker);
                            if st.interrupted {
                                log::warn!("httpd: interrupted again: quitting at once");
                                std::process::exit(EXIT_INTERRUPTED_AGAIN);
                            }
                            st.interrupted = true;
                            st.waker.take()
                        };
                        if let Some(w) = waker {
                            w.wake();
                        }
                    })?;
                Ok(Interrupts { state })
            }

            /// Resolves once the first interrupt came.
            ///
            /// # Cancellation
            ///
            /// Cancel-safe.
            pub(super) async fn next(&self) {
                poll_fn(|cx| {
                    let mut st = lock(&self.state);
                    if st.interrupted {
                        return Poll::Ready(());
                    }
                    st.waker = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await
            }
        }

        /// {SIGINT, SIGTERM}.
        fn signal_set() -> libc::sigset_t {
            // SAFETY: sigset_t is plain data (an array of integers): all
            // zeroes is a valid value, which sigemptyset then initialises.
            let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
            // SAFETY: `set` is valid for each call; SIGINT and SIGTERM are
            // valid signal numbers, so none of these can fail.
            unsafe {
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
            }
            set
        }
    }
}
