//! The stack: one smoltcp interface and socket set, shared by the socket
//! handles and driven by one runner task.
//!
//! [`Stack::new`] gives a [`Stack`] (a cheap, clonable handle the sockets
//! hold) and a [`Runner`] (the only owner of the device). Spawn
//! [`Runner::run`] once; every socket operation goes through the shared
//! state, which is borrowed only for the length of one smoltcp call and never
//! across an `.await`.
//!
//! # The runner's wake rules
//!
//! The runner task sleeps until one of these wakes it:
//!
//! 1. **device** — the device has a frame to receive, or room to transmit
//!    again after a full queue ([`NetDevice::register_waker`]);
//! 2. **socket activity** — a socket operation that gives the stack work
//!    (data written, data read so the window opens, connect, close, abort,
//!    bind) calls `Shared::touch`. Touches coalesce: the first sets a
//!    "wake requested" flag and wakes the runner; later ones see the flag
//!    and do nothing until the runner has run and cleared it, so a burst of
//!    socket operations costs one runner wake per executor tick;
//! 3. **deadline** — smoltcp's `poll_at` (retransmission, delayed ACK,
//!    keep-alive, DHCP renewal) or a closing socket's linger deadline,
//!    through one executor `Sleep` that is moved, not re-created;
//! 4. **more work** — a run that hit its budget wakes itself and yields.
//!
//! # One run
//!
//! 1. clear "wake requested"; register the waker with the device *before*
//!    polling it, so a frame that arrives in between wakes the next run;
//! 2. ingress: at most [`StackConfig::frames_per_run_max`] frames, one at a
//!    time (`poll_ingress_single`);
//! 3. DHCP events (address, route) when DHCP is on;
//! 4. the FIN-stall watchdog ([`FIN_STALL_TIMEOUT`]); closing sockets
//!    (orphans): what the peer still sends is discarded, those past their
//!    linger are reset;
//! 5. egress until smoltcp has nothing more to send, the device has no room,
//!    or the same frame budget is spent; then orphans that egress finished
//!    (FIN acknowledged, RST sent) are freed;
//! 6. if a budget was spent: wake itself (back of the run queue) and return,
//!    so an rx flood cannot starve the other tasks. Otherwise arm the
//!    earliest deadline (smoltcp's `poll_at`, linger, watchdog). When that
//!    deadline has already passed: rerun if this run did work; wait for the
//!    device's wake if the device was full (no spinning); else wait
//!    [`IDLE_RECHECK`](runner::IDLE_RECHECK).

pub mod runner;

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell, RefMut};
use core::fmt;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp, udp, Socket};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::config::{ConfigError, IpConfig, Ipv4Config, StackConfig};
use crate::device::NetDevice;

pub(crate) use runner::to_smol;
pub use runner::Runner;

/// The first port of the ephemeral range (IANA dynamic ports).
pub const EPHEMERAL_PORT_FIRST: u16 = 49152;
/// Random draws for a free ephemeral port before giving up.
pub const EPHEMERAL_PORT_TRIES_MAX: usize = 64;

/// Bytes of an Ethernet header (no VLAN tag).
const ETHERNET_HEADER_BYTES: usize = 14;

/// A handle to a network stack. Clones share the stack.
#[derive(Clone)]
pub struct Stack {
    pub(crate) shared: Rc<Shared>,
}

/// The state the runner and the socket handles share.
pub(crate) struct Shared {
    core: RefCell<Core>,
    /// Rule 2 of the module doc: set by the first touch after a run.
    wake_requested: Cell<bool>,
    runner_waker: RefCell<Option<Waker>>,
}

/// Counters of the stack's work (see [`Stack::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackStats {
    /// Runner runs.
    pub runs: u64,
    /// Runs that spent a budget and yielded with work left.
    pub budget_yields: u64,
    /// Frames taken from the device.
    pub frames_rx: u64,
    /// Transmit tokens taken from the device.
    pub frames_tx: u64,
    /// Runs that found the device without room to transmit.
    pub tx_blocked: u64,
    /// Socket touches that woke the runner (the rest coalesced).
    pub touch_wakes: u64,
    /// Closing sockets reset because their linger passed.
    pub linger_resets: u64,
    /// Connections reset because their FIN stalled ([`FIN_STALL_TIMEOUT`]).
    pub fin_stall_resets: u64,
    /// Runs where smoltcp asked to be polled again at once but did nothing;
    /// the runner then waits a millisecond instead of spinning.
    pub idle_rechecks: u64,
}

pub(crate) struct Core {
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) config: StackConfig,
    /// TCP and UDP sockets in `sockets` (the DHCP socket does not count).
    user_sockets: usize,
    /// Dropped streams still delivering their data and FIN.
    orphans: Vec<Orphan>,
    /// Dropped UDP sockets still sending their queued datagrams, with the
    /// time they are dropped regardless.
    udp_orphans: Vec<(SocketHandle, smoltcp::time::Instant)>,
    /// Tasks waiting for a socket to be freed (an empty backlog).
    free_waiters: Vec<Waker>,
    /// Tasks waiting for an IPv4 address.
    up_waiters: Vec<Waker>,
    /// Sockets whose FIN is queued: the FIN-stall watchdog (see
    /// [`FIN_STALL_TIMEOUT`]).
    fin_watch: Vec<FinWatch>,
    /// Ports with a live `TcpListener`.
    pub(crate) listen_ports: Vec<u16>,
    dhcp: Option<SocketHandle>,
    ipv4: Option<Ipv4Config>,
    /// The device's IP MTU (its frame MTU less the Ethernet header).
    pub(crate) ip_mtu: usize,
    port_rng: u64,
    pub(crate) stats: StackStats,
}

/// A dropped TCP socket that is still closing.
#[derive(Debug, Clone, Copy)]
struct Orphan {
    handle: SocketHandle,
    /// When it is reset if still not closed (and, once reset, removed).
    deadline: smoltcp::time::Instant,
    reset: bool,
    /// When it was first seen in TIME-WAIT.
    time_wait_since: Option<smoltcp::time::Instant>,
}

/// How long a closing socket stays after it reached TIME-WAIT before it is
/// freed: longer than smoltcp's delayed ACK (10 ms), so the ACK of the
/// peer's FIN goes out first. The stack keeps no real TIME-WAIT (which
/// would hold pool slots for seconds); a final ACK that is lost makes the
/// peer's retransmitted FIN meet a reset.
pub const TIME_WAIT_REAP_DELAY: core::time::Duration = core::time::Duration::from_millis(50);

/// A socket with our FIN queued, watched for a stalled FIN.
#[derive(Debug, Clone, Copy)]
struct FinWatch {
    handle: SocketHandle,
    /// Since when all data is acknowledged and only the FIN is outstanding
    /// (`None`: data still in flight).
    since: Option<smoltcp::time::Instant>,
}

/// How long the FIN alone may stay unacknowledged, after every data byte
/// was acknowledged, before the connection is reset.
///
/// A guard against a smoltcp 0.14 bug: three duplicate ACKs while only the
/// FIN is in flight start a fast retransmit that has nothing to send, and
/// leave the socket with no timer at all, so the FIN is never retransmitted
/// and the close never ends. The peer has every byte by then (all were
/// acknowledged); it sees a reset instead of the end of the stream.
pub const FIN_STALL_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(5);

/// The socket pool is full ([`StackConfig::sockets_max`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolFull;

impl Stack {
    /// A stack over `device`, configured by `config`; spawn the returned
    /// [`Runner`]'s [`run`](Runner::run) once to drive it.
    ///
    /// Call it inside an executor (it reads the executor's clock; outside,
    /// the clock starts at 0).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if a limit in `config` is out of range or the
    /// device's MAC is not unicast.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringlet_executor::{spawn, Executor, StdPlatform};
    /// use ringlet_net::cable::{Cable, CableConfig};
    /// use ringlet_net::{IpConfig, Stack, StackConfig};
    ///
    /// let ex = Executor::new(StdPlatform::new());
    /// ex.block_on(async {
    ///     let (a, _b) = Cable::pair(CableConfig::default());
    ///     let ip = IpConfig::from_cmdline("ip=10.0.0.2/24").unwrap();
    ///     let (stack, runner) = Stack::new(a, StackConfig::new(ip)).unwrap();
    ///     spawn(runner.run()).detach();
    ///     assert_eq!(stack.ipv4().unwrap().to_string(), "10.0.0.2/24");
    /// });
    /// ```
    pub fn new<D: NetDevice>(
        mut device: D,
        config: StackConfig,
    ) -> Result<(Stack, Runner<D>), ConfigError> {
        config.validate()?;
        let mac = EthernetAddress(device.mac());
        if !mac.is_unicast() {
            return Err(ConfigError::Mac);
        }
        let now = ringlet_executor::Instant::try_now()
            .map(to_smol)
            .unwrap_or(smoltcp::time::Instant::ZERO);
        let mut iface_config = Config::new(HardwareAddress::Ethernet(mac));
        iface_config.random_seed = config.random_seed;
        let ip_mtu = device
            .capabilities()
            .max_transmission_unit
            .saturating_sub(ETHERNET_HEADER_BYTES);
        let iface = Interface::new(iface_config, &mut device, now);
        let mut core = Core {
            iface,
            sockets: SocketSet::new(vec![]),
            user_sockets: 0,
            orphans: Vec::new(),
            udp_orphans: Vec::new(),
            fin_watch: Vec::new(),
            free_waiters: Vec::new(),
            up_waiters: Vec::new(),
            listen_ports: Vec::new(),
            dhcp: None,
            ipv4: None,
            ip_mtu,
            port_rng: config.random_seed ^ 0x5851_f42d_4c95_7f2d,
            stats: StackStats::default(),
            config,
        };
        match core.config.ip {
            IpConfig::Static(ip) => core.set_ipv4(Some(ip)),
            IpConfig::Dhcp => {
                let handle = core.sockets.add(dhcpv4::Socket::new());
                core.dhcp = Some(handle);
            }
        }
        let shared = Rc::new(Shared {
            core: RefCell::new(core),
            wake_requested: Cell::new(false),
            runner_waker: RefCell::new(None),
        });
        Ok((
            Stack {
                shared: shared.clone(),
            },
            Runner::new(shared, device),
        ))
    }

    /// The IPv4 address and gateway, once configured.
    pub fn ipv4(&self) -> Option<Ipv4Config> {
        self.shared.core().ipv4
    }

    /// Waits until the interface has an IPv4 address (at once when static;
    /// when DHCP has bound a lease otherwise).
    ///
    /// # Cancellation
    ///
    /// Safe to drop; bound it with the executor's `timeout` when DHCP may
    /// never answer.
    pub async fn wait_configured(&self) -> Ipv4Config {
        poll_fn(|cx| {
            let mut core = self.shared.core();
            match core.ipv4 {
                Some(ip) => Poll::Ready(ip),
                None => {
                    add_waiter(&mut core.up_waiters, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        match self.shared.core().iface.hardware_addr() {
            HardwareAddress::Ethernet(mac) => mac.0,
        }
    }

    /// The work counters.
    pub fn stats(&self) -> StackStats {
        self.shared.core().stats
    }

    /// TCP and UDP sockets alive (backlog and closing sockets included).
    pub fn sockets_in_use(&self) -> usize {
        self.shared.core().user_sockets
    }

    /// The configuration the stack was built with.
    pub fn config(&self) -> StackConfig {
        self.shared.core().config.clone()
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shared.core.try_borrow() {
            Ok(core) => f
                .debug_struct("Stack")
                .field("ipv4", &core.ipv4)
                .field("sockets", &core.user_sockets)
                .field("orphans", &core.orphans.len())
                .field("stats", &core.stats)
                .finish(),
            Err(_) => f.write_str("Stack { <in use> }"),
        }
    }
}

impl Shared {
    /// Borrows the core. Callers hold it only for a few smoltcp calls, never
    /// across an await.
    pub(crate) fn core(&self) -> RefMut<'_, Core> {
        self.core.borrow_mut()
    }

    /// A socket operation gave the stack work: wake the runner, once per
    /// run (rule 2 of the module doc).
    pub(crate) fn touch(&self) {
        if self.wake_requested.replace(true) {
            return;
        }
        if let Some(w) = self.runner_waker.borrow().as_ref() {
            w.wake_by_ref();
        }
        if let Ok(mut core) = self.core.try_borrow_mut() {
            core.stats.touch_wakes += 1;
        }
    }
}

/// Adds `waker` to `list` unless an equivalent one is there.
pub(crate) fn add_waiter(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

impl Core {
    /// A new TCP socket with the configured buffers.
    pub(crate) fn add_tcp(&mut self) -> Result<SocketHandle, PoolFull> {
        if self.user_sockets >= self.config.sockets_max {
            return Err(PoolFull);
        }
        let rx = tcp::SocketBuffer::new(vec![0; self.config.tcp_rx_buffer_bytes]);
        let tx = tcp::SocketBuffer::new(vec![0; self.config.tcp_tx_buffer_bytes]);
        self.user_sockets += 1;
        Ok(self.sockets.add(tcp::Socket::new(rx, tx)))
    }

    /// A new UDP socket with the configured buffers.
    pub(crate) fn add_udp(&mut self) -> Result<SocketHandle, PoolFull> {
        if self.user_sockets >= self.config.sockets_max {
            return Err(PoolFull);
        }
        let n = self.config.udp_packets_max;
        let rx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; n],
            vec![0; self.config.udp_rx_buffer_bytes],
        );
        let tx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; n],
            vec![0; self.config.udp_tx_buffer_bytes],
        );
        self.user_sockets += 1;
        Ok(self.sockets.add(udp::Socket::new(rx, tx)))
    }

    /// Frees a TCP or UDP socket and wakes the tasks waiting for one.
    pub(crate) fn remove(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
        self.fin_watch.retain(|w| w.handle != handle);
        self.user_sockets -= 1;
        for w in self.free_waiters.drain(..) {
            w.wake();
        }
    }

    /// Registers a task that waits for a socket to be freed.
    pub(crate) fn wait_free(&mut self, waker: &Waker) {
        add_waiter(&mut self.free_waiters, waker);
    }

    pub(crate) fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    pub(crate) fn udp(&mut self, handle: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut::<udp::Socket>(handle)
    }

    /// Hands a TCP socket whose owner is gone to the runner: it is removed
    /// once closed, and reset if still open after the linger time.
    /// `reset`: it was aborted already (removed once the RST is out).
    pub(crate) fn orphan(&mut self, handle: SocketHandle, reset: bool) {
        let deadline = self.iface_now() + to_smol_duration(self.config.close_linger);
        self.orphans.push(Orphan {
            handle,
            deadline,
            reset,
            time_wait_since: None,
        });
    }

    /// Hands a UDP socket whose owner is gone to the runner: it is removed
    /// once its queued datagrams are sent, or after the linger time.
    pub(crate) fn orphan_udp(&mut self, handle: SocketHandle) {
        let deadline = self.iface_now() + to_smol_duration(self.config.close_linger);
        self.udp_orphans.push((handle, deadline));
    }

    fn iface_now(&mut self) -> smoltcp::time::Instant {
        ringlet_executor::Instant::try_now()
            .map(to_smol)
            .unwrap_or(smoltcp::time::Instant::ZERO)
    }

    /// Starts the FIN-stall watchdog on a socket whose FIN was just queued.
    pub(crate) fn watch_fin(&mut self, handle: SocketHandle) {
        if !self.fin_watch.iter().any(|w| w.handle == handle) {
            self.fin_watch.push(FinWatch {
                handle,
                since: None,
            });
        }
    }

    /// The FIN-stall watchdog (see [`FIN_STALL_TIMEOUT`]); returns its next
    /// deadline.
    pub(crate) fn poll_fin_watch(
        &mut self,
        now: smoltcp::time::Instant,
    ) -> Option<smoltcp::time::Instant> {
        let stall = to_smol_duration(FIN_STALL_TIMEOUT);
        let mut next: Option<smoltcp::time::Instant> = None;
        let mut i = 0;
        while i < self.fin_watch.len() {
            let w = self.fin_watch[i];
            let sock = self.sockets.get_mut::<tcp::Socket>(w.handle);
            let fin_outstanding = matches!(
                sock.state(),
                tcp::State::FinWait1 | tcp::State::Closing | tcp::State::LastAck
            );
            if !fin_outstanding {
                self.fin_watch.swap_remove(i);
                continue;
            }
            if sock.send_queue() > 0 {
                self.fin_watch[i].since = None;
                i += 1;
                continue;
            }
            let since = *self.fin_watch[i].since.get_or_insert(now);
            if now >= since + stall {
                log::warn!(
                    "net: FIN unacknowledged for {FIN_STALL_TIMEOUT:?} after all data; resetting"
                );
                sock.abort();
                self.stats.fin_stall_resets += 1;
                self.fin_watch.swap_remove(i);
                continue;
            }
            let d = since + stall;
            next = Some(next.map_or(d, |n| n.min(d)));
            i += 1;
        }
        next
    }

    /// Whether a TCP or UDP socket has `port` as its local port.
    pub(crate) fn port_in_use(&self, port: u16) -> bool {
        self.sockets.iter().any(|(_, s)| match s {
            Socket::Tcp(t) => {
                t.listen_endpoint().port == port
                    || t.local_endpoint().is_some_and(|e| e.port == port)
            }
            Socket::Udp(u) => u.endpoint().port == port,
            _ => false,
        })
    }

    /// Whether a UDP socket is bound to `port`.
    pub(crate) fn udp_port_in_use(&self, port: u16) -> bool {
        self.sockets
            .iter()
            .any(|(_, s)| matches!(s, Socket::Udp(u) if u.endpoint().port == port))
    }

    /// A free port in the ephemeral range, or `None` after
    /// [`EPHEMERAL_PORT_TRIES_MAX`] draws.
    pub(crate) fn ephemeral_port(&mut self) -> Option<u16> {
        let span = u64::from(u16::MAX - EPHEMERAL_PORT_FIRST) + 1;
        for _ in 0..EPHEMERAL_PORT_TRIES_MAX {
            // xorshift64*
            self.port_rng ^= self.port_rng >> 12;
            self.port_rng ^= self.port_rng << 25;
            self.port_rng ^= self.port_rng >> 27;
            let r = self.port_rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let port = EPHEMERAL_PORT_FIRST + (r % span) as u16;
            if !self.port_in_use(port) {
                return Some(port);
            }
        }
        None
    }

    /// Installs (or, with `None`, removes) the IPv4 address and route.
    fn set_ipv4(&mut self, ip: Option<Ipv4Config>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(ip) = ip {
                // One address; IFACE_MAX_ADDR_COUNT is at least 1.
                let _ = addrs.push(IpCidr::Ipv4(ip.address));
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = ip.and_then(|ip| ip.gateway) {
            // The route table has room: it was just emptied of its default.
            let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
        }
        self.ipv4 = ip;
        if ip.is_some() {
            for w in self.up_waiters.drain(..) {
                w.wake();
            }
        }
    }

    /// Takes the DHCP socket's event, if any (step 3 of a run).
    pub(crate) fn poll_dhcp(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        let ip = event.and_then(|(address, router)| dhcp_config(address, router));
        match ip {
            Some(ip) => log::info!("net: DHCP lease {ip}"),
            None => log::info!("net: DHCP deconfigured"),
        }
        self.set_ipv4(ip);
    }

    /// Step 4 of a run: reap closed orphans, reset those past their linger;
    /// free dropped UDP sockets whose queue is sent (or past their linger).
    /// Returns the earliest orphan deadline still pending.
    pub(crate) fn poll_orphans(
        &mut self,
        now: smoltcp::time::Instant,
        egress_done: bool,
    ) -> Option<smoltcp::time::Instant> {
        let mut next: Option<smoltcp::time::Instant> = None;
        let mut i = 0;
        while i < self.udp_orphans.len() {
            let (handle, deadline) = self.udp_orphans[i];
            if self.udp(handle).send_queue() == 0 || now >= deadline {
                self.udp_orphans.swap_remove(i);
                self.remove(handle);
                continue;
            }
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
            i += 1;
        }
        let mut i = 0;
        while i < self.orphans.len() {
            let o = self.orphans[i];
            let sock = self.sockets.get_mut::<tcp::Socket>(o.handle);
            // Drain what the peer still sends: nobody will read it, and a
            // full window would stall the close (a lingering close).
            while let Ok(n) = sock.recv(|b| (b.len(), b.len())) {
                if n == 0 {
                    break;
                }
            }
            let rst_pending =
                sock.state() == tcp::State::Closed && sock.remote_endpoint().is_some();
            let done = match sock.state() {
                // The ACK of the peer's FIN may still be waiting (delayed
                // ACK, or an egress cut short by its budget): free the
                // socket only once that ACK had its time and an egress ran
                // to the end.
                tcp::State::TimeWait => {
                    let since = *self.orphans[i].time_wait_since.get_or_insert(now);
                    let ripe = since + to_smol_duration(TIME_WAIT_REAP_DELAY);
                    if now < ripe {
                        next = Some(next.map_or(ripe, |n| n.min(ripe)));
                    }
                    egress_done && now >= ripe
                }
                tcp::State::Closed => !rst_pending || (o.reset && now >= o.deadline),
                _ => false,
            };
            if done {
                self.orphans.swap_remove(i);
                self.remove(o.handle);
                continue;
            }
            if now >= o.deadline && !o.reset {
                sock.abort();
                self.stats.linger_resets += 1;
                let linger = to_smol_duration(self.config.close_linger);
                self.orphans[i].reset = true;
                self.orphans[i].deadline = now + linger;
            }
            let d = self.orphans[i].deadline;
            next = Some(next.map_or(d, |n| n.min(d)));
            i += 1;
        }
        next
    }
}

/// The IPv4 setting of a DHCP lease; `None` for a lease that fails the
/// checks of [`Ipv4Config::new`] (a hostile server); a bad router alone is
/// dropped.
fn dhcp_config(address: Ipv4Cidr, router: Option<Ipv4Address>) -> Option<Ipv4Config> {
    Ipv4Config::new(address, router)
        .or_else(|_| Ipv4Config::new(address, None))
        .map_err(|e| log::warn!("net: DHCP lease {address} rejected: {e}"))
        .ok()
}

pub(crate) fn to_smol_duration(d: core::time::Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
}
