//! What netfront reads from xenstore, validated, and how it is configured:
//! the MAC address, the backend's offered features, and netfront's limits.
//!
//! Every xenstore value is untrusted text. A malformed value is a
//! [`ConfigError`], never a guess.
#![forbid(unsafe_code)]

use core::fmt;

use super::netif::{RX_RING_SIZE, TX_RING_SIZE};

/// Default number of rx buffers (pages) kept posted to the backend.
pub const RX_BUFFERS_DEFAULT: u32 = 128;
/// Default bound of the tx page pool (frames in flight to the backend).
pub const TX_PAGES_DEFAULT: u32 = 128;
/// Default bound of the whole xenbus handshake.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// Longest xenstore value parsed as a feature flag (`"0"`, `"1"`).
const FEATURE_DIGITS_MAX: usize = 10;

/// How a netfront is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetfrontConfig {
    /// The device number: `device/vif/<devid>`.
    pub devid: u32,
    /// Rx buffers (one page each) kept posted; at most [`RX_RING_SIZE`].
    pub rx_buffers: u32,
    /// Most tx pages (frames in flight); at most [`TX_RING_SIZE`].
    pub tx_pages_max: u32,
    /// Bound of one xenbus handshake, in (virtual on the sim) ms.
    pub connect_timeout_ms: u64,
    /// Transmit checksum offload (default on): smoltcp leaves TCP and UDP
    /// checksums to the device, netfront writes the pseudo-header sum and
    /// sends `NETTXF_csum_blank | NETTXF_data_validated`, and the backend
    /// completes the checksum (see [`csum`](super::csum)). Off: smoltcp
    /// computes every checksum and netfront sends no flags.
    pub tx_csum_offload: bool,
}

impl Default for NetfrontConfig {
    fn default() -> Self {
        NetfrontConfig {
            devid: 0,
            rx_buffers: RX_BUFFERS_DEFAULT,
            tx_pages_max: TX_PAGES_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            tx_csum_offload: true,
        }
    }
}

impl NetfrontConfig {
    /// The config for device `devid`, other fields default.
    pub fn new(devid: u32) -> NetfrontConfig {
        NetfrontConfig {
            devid,
            ..NetfrontConfig::default()
        }
    }

    /// This config with its bounds clamped to what the rings hold (and at
    /// least one buffer each way).
    #[must_use]
    pub fn clamped(mut self) -> NetfrontConfig {
        self.rx_buffers = self.rx_buffers.clamp(1, RX_RING_SIZE);
        self.tx_pages_max = self.tx_pages_max.clamp(1, TX_RING_SIZE);
        self
    }
}

/// An Ethernet (MAC) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses xenstore's `mac` node: six two-digit hex octets separated by
    /// `:` (either case), a unicast address that is not all zeros.
    ///
    /// # Errors
    /// [`ConfigError::BadMac`] otherwise.
    ///
    /// # Examples
    /// ```
    /// use ringlet_net::netfront::Mac;
    /// assert_eq!(Mac::parse(b"00:16:3e:00:00:02").unwrap().0, [0, 0x16, 0x3e, 0, 0, 2]);
    /// assert!(Mac::parse(b"01:00:5e:00:00:01").is_err()); // multicast
    /// ```
    pub fn parse(value: &[u8]) -> Result<Mac, ConfigError> {
        if value.len() != 17 {
            return Err(ConfigError::BadMac);
        }
        let mut mac = [0u8; 6];
        for (i, octet) in mac.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && value[at - 1] != b':' {
                return Err(ConfigError::BadMac);
            }
            let hi = hex(value[at]).ok_or(ConfigError::BadMac)?;
            let lo = hex(value[at + 1]).ok_or(ConfigError::BadMac)?;
            *octet = hi << 4 | lo;
        }
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(ConfigError::BadMac);
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A backend feature node netfront reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Feature {
    /// `feature-rx-copy`: the backend copies rx packets into granted pages.
    RxCopy,
    /// `feature-sg`: the backend accepts multi-slot packets.
    Sg,
}

impl Feature {
    /// The node's name.
    pub fn node(self) -> &'static str {
        match self {
            Feature::RxCopy => "feature-rx-copy",
            Feature::Sg => "feature-sg",
        }
    }
}

/// Why a xenstore value was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `mac` is not six hex octets, or is multicast or all zeros.
    BadMac,
    /// A feature node is not a decimal number.
    BadFeature(Feature),
    /// The backend does not offer `feature-rx-copy` (netfront only supports
    /// rx copy mode, not page flipping).
    NoRxCopy,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadMac => f.write_str("mac is not a unicast address aa:bb:cc:dd:ee:ff"),
            ConfigError::BadFeature(n) => write!(f, "{} is not a number", n.node()),
            ConfigError::NoRxCopy => f.write_str("the backend does not offer feature-rx-copy"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// Parses a feature flag the way Xen's drivers read it (an unsigned
/// decimal, non-zero is on); absent is off.
///
/// # Errors
/// [`ConfigError::BadFeature`] if present but not a decimal.
pub fn parse_feature(feature: Feature, value: Option<&[u8]>) -> Result<bool, ConfigError> {
    let Some(v) = value else {
        return Ok(false);
    };
    if v.is_empty() || v.len() > FEATURE_DIGITS_MAX || !v.iter().all(u8::is_ascii_digit) {
        return Err(ConfigError::BadFeature(feature));
    }
    Ok(v.iter().any(|&b| b != b'0'))
}

/// What the backend offers, read from its directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendFeatures {
    /// `feature-rx-copy`.
    pub rx_copy: bool,
    /// `feature-sg`.
    pub sg: bool,
}

impl BackendFeatures {
    /// Parses the feature nodes (`None`: absent).
    ///
    /// # Errors
    /// [`ConfigError::BadFeature`] for a malformed node,
    /// [`ConfigError::NoRxCopy`] if rx copy is not offered.
    pub fn parse(rx_copy: Option<&[u8]>, sg: Option<&[u8]>) -> Result<Self, ConfigError> {
        let f = BackendFeatures {
            rx_copy: parse_feature(Feature::RxCopy, rx_copy)?,
            sg: parse_feature(Feature::Sg, sg)?,
        };
        if !f.rx_copy {
            return Err(ConfigError::NoRxCopy);
        }
        Ok(f)
    }
}

/// What netfront asked for in the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// `feature-sg` written as 1: the backend may send multi-slot rx packets
    /// (`NETRXF_more_data`). Written only when the backend offers sg.
    pub sg: bool,
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn mac_parse_and_display() {
        let m = Mac::parse(b"00:16:3E:0a:Bc:ff").unwrap();
        assert_eq!(m.0, [0, 0x16, 0x3e, 0x0a, 0xbc, 0xff]);
        assert_eq!(m.to_string(), "00:16:3e:0a:bc:ff");
        assert_eq!(Mac::parse(m.to_string().as_bytes()), Ok(m));
    }

    #[test]
    fn mac_malformed() {
        for bad in [
            &b""[..],
            b"00:16:3e:00:00",
            b"00:16:3e:00:00:02:",
            b"00-16-3e-00-00-02",
            b"0g:16:3e:00:00:02",
            b" 0:16:3e:00:00:02",
            b"00:16:3e:00:00:0\0",
            b"01:16:3e:00:00:02",
            b"ff:ff:ff:ff:ff:ff",
            b"00:00:00:00:00:00",
        ] {
            assert_eq!(Mac::parse(bad), Err(ConfigError::BadMac), "{bad:?}");
        }
    }

    #[test]
    fn features() {
        assert_eq!(parse_feature(Feature::Sg, None), Ok(false));
        assert_eq!(parse_feature(Feature::Sg, Some(b"0")), Ok(false));
        assert_eq!(parse_feature(Feature::Sg, Some(b"1")), Ok(true));
        assert_eq!(parse_feature(Feature::Sg, Some(b"0002")), Ok(true));
        for bad in [&b""[..], b"-1", b"1 ", b"yes", b"12345678901"] {
            assert_eq!(
                parse_feature(Feature::Sg, Some(bad)),
                Err(ConfigError::BadFeature(Feature::Sg))
            );
        }
        assert_eq!(
            BackendFeatures::parse(Some(b"1"), Some(b"1")),
            Ok(BackendFeatures {
                rx_copy: true,
                sg: true
            })
        );
        assert_eq!(
            BackendFeatures::parse(None, Some(b"1")),
            Err(ConfigError::NoRxCopy)
        );
        assert_eq!(
            BackendFeatures::parse(Some(b"x"), None),
            Err(ConfigError::BadFeature(Feature::RxCopy))
        );
    }

    #[test]
    fn config_clamps_to_rings() {
        let c = NetfrontConfig {
            rx_buffers: 10_000,
            tx_pages_max: 0,
            ..NetfrontConfig::default()
        }
        .clamped();
        assert_eq!((c.rx_buffers, c.tx_pages_max), (RX_RING_SIZE, 1));
        assert_eq!(NetfrontConfig::new(3).devid, 3);
    }
}
