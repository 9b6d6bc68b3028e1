//! Configuration: the stack's limits ([`StackConfig`]) and its IPv4 setting
//! ([`IpConfig`]), parsed strictly from the kernel command line.
//!
//! The command line carries `ip=A.B.C.D/N` (or `ip=dhcp`) and optionally
//! `gw=A.B.C.D`; every other word is left to its owner. Without `ip=` the
//! stack asks DHCPv4.
//!
//! ```
//! use ringlet_net::IpConfig;
//!
//! let ip = IpConfig::from_cmdline("console=hvc0 ip=10.0.0.2/24 gw=10.0.0.1 port=80").unwrap();
//! assert_eq!(ip.to_string(), "10.0.0.2/24 via 10.0.0.1");
//! assert_eq!(IpConfig::from_cmdline("console=hvc0").unwrap(), IpConfig::Dhcp);
//! assert!(IpConfig::from_cmdline("ip=10.0.0.2").is_err()); // no prefix length
//! ```

use core::fmt;
use core::str::FromStr;
use core::time::Duration;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// Default [`StackConfig::sockets_max`]: TCP and UDP sockets alive at once,
/// listening backlog sockets included.
pub const DEFAULT_SOCKETS_MAX: usize = 64;
/// Default [`StackConfig::tcp_rx_buffer_bytes`] (also the largest receive window).
pub const DEFAULT_TCP_RX_BUFFER_BYTES: usize = 32 * 1024;
/// Default [`StackConfig::tcp_tx_buffer_bytes`].
pub const DEFAULT_TCP_TX_BUFFER_BYTES: usize = 32 * 1024;
/// Default [`StackConfig::udp_rx_buffer_bytes`] and
/// [`StackConfig::udp_tx_buffer_bytes`].
pub const DEFAULT_UDP_BUFFER_BYTES: usize = 16 * 1024;
/// Default [`StackConfig::udp_packets_max`]: datagrams queued per direction.
pub const DEFAULT_UDP_PACKETS_MAX: usize = 16;
/// Default listening backlog, for [`TcpListener::bind`](crate::TcpListener::bind)
/// callers that have no better number.
pub const DEFAULT_BACKLOG: usize = 8;
/// Default [`StackConfig::frames_per_run_max`].
pub const DEFAULT_FRAMES_PER_RUN_MAX: usize = 32;
/// Default [`StackConfig::close_linger`].
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_secs(30);
/// Default [`StackConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest value accepted for any per-socket buffer size (bytes).
pub const SOCKET_BUFFER_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The largest value accepted for [`StackConfig::sockets_max`].
pub const SOCKETS_MAX_LIMIT: usize = 4096;

/// The stack's limits and knobs. Every bound on memory the network can
/// make the stack spend is here.
///
/// The worst-case socket memory is `sockets_max × max(tcp_rx + tcp_tx,
/// udp_rx + udp_tx)` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackConfig {
    /// How the interface gets its IPv4 address.
    pub ip: IpConfig,
    /// Seed for smoltcp's random numbers (initial sequence numbers, DHCP
    /// transaction ids) and for ephemeral port choice.
    pub random_seed: u64,
    /// TCP and UDP sockets alive at once (listening backlog sockets and
    /// closing sockets count). Past it: `NoSockets` errors, and incoming
    /// connections that find no listening socket are refused (RST).
    pub sockets_max: usize,
    /// Receive buffer of each TCP socket, in bytes.
    pub tcp_rx_buffer_bytes: usize,
    /// Transmit buffer of each TCP socket, in bytes.
    pub tcp_tx_buffer_bytes: usize,
    /// Receive payload buffer of each UDP socket, in bytes.
    pub udp_rx_buffer_bytes: usize,
    /// Transmit payload buffer of each UDP socket, in bytes.
    pub udp_tx_buffer_bytes: usize,
    /// Datagrams each UDP socket queues per direction.
    pub udp_packets_max: usize,
    /// Frames the runner takes from the device in one run before it yields
    /// to the other tasks (the same bound applies to frames sent).
    pub frames_per_run_max: usize,
    /// How long a dropped, not yet closed TCP stream may take to deliver its
    /// unsent data and FIN before it is reset.
    pub close_linger: Duration,
    /// How long [`TcpStream::connect`](crate::TcpStream::connect) waits for
    /// the handshake.
    pub connect_timeout: Duration,
}

impl StackConfig {
    /// The defaults (the `DEFAULT_*` constants) with this IP setting.
    pub fn new(ip: IpConfig) -> StackConfig {
        StackConfig {
            ip,
            random_seed: 0,
            sockets_max: DEFAULT_SOCKETS_MAX,
            tcp_rx_buffer_bytes: DEFAULT_TCP_RX_BUFFER_BYTES,
            tcp_tx_buffer_bytes: DEFAULT_TCP_TX_BUFFER_BYTES,
            udp_rx_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            udp_tx_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            udp_packets_max: DEFAULT_UDP_PACKETS_MAX,
            frames_per_run_max: DEFAULT_FRAMES_PER_RUN_MAX,
            close_linger: DEFAULT_CLOSE_LINGER,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Sets [`random_seed`](StackConfig::random_seed).
    pub fn random_seed(mut self, seed: u64) -> StackConfig {
        self.random_seed = seed;
        self
    }

    /// Sets [`sockets_max`](StackConfig::sockets_max).
    pub fn sockets_max(mut self, n: usize) -> StackConfig {
        self.sockets_max = n;
        self
    }

    /// Sets both TCP buffer sizes.
    pub fn tcp_buffer_bytes(mut self, rx: usize, tx: usize) -> StackConfig {
        self.tcp_rx_buffer_bytes = rx;
        self.tcp_tx_buffer_bytes = tx;
        self
    }

    /// Sets [`frames_per_run_max`](StackConfig::frames_per_run_max).
    pub fn frames_per_run_max(mut self, n: usize) -> StackConfig {
        self.frames_per_run_max = n;
        self
    }

    /// Sets [`close_linger`](StackConfig::close_linger).
    pub fn close_linger(mut self, linger: Duration) -> StackConfig {
        self.close_linger = linger;
        self
    }

    /// Sets [`connect_timeout`](StackConfig::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> StackConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Checks every field against its range.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] names the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let buffer = |n: usize| (1..=SOCKET_BUFFER_BYTES_MAX).contains(&n);
        if !(1..=SOCKETS_MAX_LIMIT).contains(&self.sockets_max) {
            return Err(ConfigError::SocketsMax);
        }
        if !buffer(self.tcp_rx_buffer_bytes) || !buffer(self.tcp_tx_buffer_bytes) {
            return Err(ConfigError::TcpBuffer);
        }
        if !buffer(self.udp_rx_buffer_bytes)
            || !buffer(self.udp_tx_buffer_bytes)
            || self.udp_packets_max == 0
        {
            return Err(ConfigError::UdpBuffer);
        }
        if self.frames_per_run_max == 0 {
            return Err(ConfigError::FramesPerRun);
        }
        Ok(())
    }
}

/// A [`StackConfig`] field out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `sockets_max` is 0 or above [`SOCKETS_MAX_LIMIT`].
    SocketsMax,
    /// A TCP buffer size is 0 or above [`SOCKET_BUFFER_BYTES_MAX`].
    TcpBuffer,
    /// A UDP buffer size or packet count is 0, or a size is above
    /// [`SOCKET_BUFFER_BYTES_MAX`].
    UdpBuffer,
    /// `frames_per_run_max` is 0.
    FramesPerRun,
    /// The device's MAC address is not a unicast address.
    Mac,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::SocketsMax => "sockets_max must be between 1 and SOCKETS_MAX_LIMIT",
            ConfigError::TcpBuffer => "TCP buffer sizes must be between 1 and SOCKET_BUFFER_BYTES_MAX",
            ConfigError::UdpBuffer => {
                "UDP buffer sizes must be between 1 and SOCKET_BUFFER_BYTES_MAX, with at least one packet"
            }
            ConfigError::FramesPerRun => "frames_per_run_max must be at least 1",
            ConfigError::Mac => "the device's MAC address is not a unicast address",
        })
    }
}

impl core::error::Error for ConfigError {}

/// How the interface gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpConfig {
    /// A fixed address, from `ip=A.B.C.D/N` (and `gw=A.B.C.D`).
    Static(Ipv4Config),
    /// DHCPv4 (`ip=dhcp`, or no `ip=` at all).
    Dhcp,
}

/// An IPv4 address with its prefix and an optional default gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Config {
    /// The interface's address and prefix length.
    pub address: Ipv4Cidr,
    /// The default gateway, inside the address's subnet.
    pub gateway: Option<Ipv4Address>,
}

impl Ipv4Config {
    /// Checks the address and gateway the way the command line parser does.
    ///
    /// # Errors
    ///
    /// See [`IpConfigError`]: a non-unicast address, a prefix of 0 or over
    /// 32, the subnet's network or broadcast address, a gateway outside the
    /// subnet or equal to the address.
    pub fn new(address: Ipv4Cidr, gateway: Option<Ipv4Address>) -> Result<Self, IpConfigError> {
        let prefix = address.prefix_len();
        if prefix == 0 || prefix > 32 {
            return Err(IpConfigError::BadPrefix);
        }
        let ip = address.address();
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err(IpConfigError::NotUnicast);
        }
        if prefix <= 30 {
            let net = address.network().address();
            let bcast = address.broadcast();
            if ip == net || Some(ip) == bcast {
                return Err(IpConfigError::NotUnicast);
            }
        }
        if let Some(gw) = gateway {
            if gw == ip || !address.contains_addr(&gw) {
                return Err(IpConfigError::GatewayOutsideSubnet);
            }
        }
        Ok(Ipv4Config { address, gateway })
    }
}

impl fmt::Display for Ipv4Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        Ok(())
    }
}

impl fmt::Display for IpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpConfig::Static(c) => c.fmt(f),
            IpConfig::Dhcp => f.write_str("dhcp"),
        }
    }
}

impl IpConfig {
    /// Reads `ip=` and `gw=` from a kernel command line (words separated by
    /// spaces); other words are ignored.
    ///
    /// # Errors
    ///
    /// [`IpConfigError`]: a key given twice, an unparsable address or prefix,
    /// `gw=` without a static `ip=`, and the checks of [`Ipv4Config::new`].
    pub fn from_cmdline(cmdline: &str) -> Result<IpConfig, IpConfigError> {
        let mut ip: Option<&str> = None;
        let mut gw: Option<&str> = None;
        for word in cmdline.split_ascii_whitespace() {
            let (slot, value, key) = if let Some(v) = word.strip_prefix("ip=") {
                (&mut ip, v, Key::Ip)
            } else if let Some(v) = word.strip_prefix("gw=") {
                (&mut gw, v, Key::Gw)
            } else {
                continue;
            };
            if slot.replace(value).is_some() {
                return Err(IpConfigError::Duplicate(key));
            }
        }
        let gateway = gw
            .map(|g| Ipv4Address::from_str(g).map_err(|_| IpConfigError::BadAddress(Key::Gw)))
            .transpose()?;
        match ip {
            None | Some("dhcp") => match gateway {
                Some(_) => Err(IpConfigError::GatewayWithoutAddress),
                None => Ok(IpConfig::Dhcp),
            },
            Some(value) => {
                let (addr, prefix) = value.split_once('/').ok_or(IpConfigError::MissingPrefix)?;
                let addr =
                    Ipv4Address::from_str(addr).map_err(|_| IpConfigError::BadAddress(Key::Ip))?;
                // Strict: decimal digits only, no sign, no leading zero.
                let digits_ok = !prefix.is_empty()
                    && prefix.len() <= 2
                    && prefix.bytes().all(|b| b.is_ascii_digit())
                    && !(prefix.len() > 1 && prefix.starts_with('0'));
                let prefix: u8 = match digits_ok.then(|| prefix.parse().ok()).flatten() {
                    Some(p) => p,
                    None => return Err(IpConfigError::BadPrefix),
                };
                if prefix == 0 || prefix > 32 {
                    return Err(IpConfigError::BadPrefix);
                }
                Ipv4Config::new(Ipv4Cidr::new(addr, prefix), gateway).map(IpConfig::Static)
            }
        }
    }
}

/// A command-line key this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `ip=`
    Ip,
    /// `gw=`
    Gw,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Key::Ip => "ip=",
            Key::Gw => "gw=",
        })
    }
}

/// Why an IP setting was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpConfigError {
    /// The key appears twice on the command line.
    Duplicate(Key),
    /// The value is not a dotted-quad IPv4 address.
    BadAddress(Key),
    /// `ip=` has no `/prefix`.
    MissingPrefix,
    /// The prefix length is not a decimal number from 1 to 32.
    BadPrefix,
    /// The address is unspecified, broadcast, multicast, loopback, or the
    /// network or broadcast address of its subnet.
    NotUnicast,
    /// `gw=` is given without a static `ip=`.
    GatewayWithoutAddress,
    /// The gateway is not inside the address's subnet, or is the address.
    GatewayOutsideSubnet,
}

impl fmt::Display for IpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpConfigError::Duplicate(k) => write!(f, "{k} given twice"),
            IpConfigError::BadAddress(k) => write!(f, "{k} is not an IPv4 address"),
            IpConfigError::MissingPrefix => f.write_str("ip= needs a prefix length (A.B.C.D/N)"),
            IpConfigError::BadPrefix => f.write_str("the prefix length must be 1 to 32"),
            IpConfigError::NotUnicast => {
                f.write_str("ip= is not a unicast host address of its subnet")
            }
            IpConfigError::GatewayWithoutAddress => f.write_str("gw= needs a static ip="),
            IpConfigError::GatewayOutsideSubnet => {
                f.write_str("gw= is not another address inside ip='s subnet")
            }
        }
    }
}

impl core::error::Error for IpConfigError {}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::string::ToString;

    fn st(a: [u8; 4], p: u8, gw: Option<[u8; 4]>) -> IpConfig {
        IpConfig::Static(Ipv4Config {
            address: Ipv4Cidr::new(Ipv4Address::from(a), p),
            gateway: gw.map(Ipv4Address::from),
        })
    }

    #[test]
    fn parses_static_and_dhcp() {
        assert_eq!(
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1").unwrap(),
            st([10, 0, 0, 2], 24, Some([10, 0, 0, 1]))
        );
        assert_eq!(
            IpConfig::from_cmdline("  a=b ip=192.168.1.7/16   x ").unwrap(),
            st([192, 168, 1, 7], 16, None)
        );
        assert_eq!(IpConfig::from_cmdline("").unwrap(), IpConfig::Dhcp);
        assert_eq!(IpConfig::from_cmdline("ip=dhcp").unwrap(), IpConfig::Dhcp);
        assert_eq!(
            IpConfig::from_cmdline("ip=10.0.0.9/32").unwrap(),
            st([10, 0, 0, 9], 32, None)
        );
        assert_eq!(
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1")
                .unwrap()
                .to_string(),
            "10.0.0.2/24 via 10.0.0.1"
        );
    }

    #[test]
    fn rejects_malformed() {
        use IpConfigError::*;
        let cases: &[(&str, IpConfigError)] = &[
            ("ip=10.0.0.2", MissingPrefix),
            ("ip=10.0.0.2/", BadPrefix),
            ("ip=10.0.0.2/33", BadPrefix),
            ("ip=10.0.0.2/0", BadPrefix),
            ("ip=10.0.0.2/024", BadPrefix),
            ("ip=10.0.0.2/+4", BadPrefix),
            ("ip=10.0.0.2/2x", BadPrefix),
            ("ip=10.0.0/24", BadAddress(Key::Ip)),
            ("ip=10.0.0.256/24", BadAddress(Key::Ip)),
            ("ip=010.0.0.2/24", BadAddress(Key::Ip)),
            ("ip=10.0.0.2/24 gw=10.0.0", BadAddress(Key::Gw)),
            ("ip=10.0.0.2/24 ip=10.0.0.3/24", Duplicate(Key::Ip)),
            ("ip=10.0.0.2/24 gw=10.0.0.1 gw=10.0.0.1", Duplicate(Key::Gw)),
            ("gw=10.0.0.1", GatewayWithoutAddress),
            ("ip=dhcp gw=10.0.0.1", GatewayWithoutAddress),
            ("ip=10.0.0.2/24 gw=10.0.1.1", GatewayOutsideSubnet),
            ("ip=10.0.0.2/24 gw=10.0.0.2", GatewayOutsideSubnet),
            ("ip=10.0.0.0/24", NotUnicast),
            ("ip=10.0.0.255/24", NotUnicast),
            ("ip=0.0.0.0/8", NotUnicast),
            ("ip=224.0.0.1/8", NotUnicast),
            ("ip=127.0.0.1/8", NotUnicast),
        ];
        for (line, want) in cases {
            assert_eq!(IpConfig::from_cmdline(line), Err(*want), "{line}");
            // Every error has a message.
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn validates_limits() {
        let ok = StackConfig::new(IpConfig::Dhcp);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            ok.clone().sockets_max(0).validate(),
            Err(ConfigError::SocketsMax)
        );
        assert_eq!(
            ok.clone().tcp_buffer_bytes(0, 10).validate(),
            Err(ConfigError::TcpBuffer)
        );
        assert_eq!(
            ok.clone()
                .tcp_buffer_bytes(10, SOCKET_BUFFER_BYTES_MAX + 1)
                .validate(),
            Err(ConfigError::TcpBuffer)
        );
        assert_eq!(
            ok.clone().frames_per_run_max(0).validate(),
            Err(ConfigError::FramesPerRun)
        );
    }
}
