//! The kernel command line parsers: arbitrary bytes (cut at the PVH
//! start code's bound, non-UTF-8 refused as it does) through
//! `ringlet_net::IpConfig::from_cmdline` (`ip=`, `gw=`),
//! and `ringlet_xen::console::level_from_cmdline` (`loglevel=`). (httpd's
//! `port=` lives behind its `appliance` feature, which this crate's httpd
//! dependency leaves off; it is one `u16::parse`.)
//!
//! Checked for every input:
//! - nothing panics; every error has a message;
//! - each parser sees only its own words: the line with every other word
//!   removed (and the words re-joined by one space) parses the same;
//! - a static IP setting is a unicast host of its subnet (not its network
//!   or broadcast address), prefix 1..=32, with the gateway inside the
//!   subnet and not the address itself; it prints as `A.B.C.D/N [via G]`
//!   and that text, given back as `ip=`/`gw=`, parses to the same setting;
//! - `ip=dhcp` or no `ip=` is DHCP, and `gw=` is then refused;
//! - no `loglevel=` is `info`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlet_net::{IpConfig, IpConfigError};
use ringlet_xen::console::level_from_cmdline;

/// The PVH start code's bound on the command line it reads
/// (`reactor-xen/src/pvh/start.rs`, `CMDLINE_BYTES_MAX`).
const CMDLINE_BYTES_MAX: usize = 4096;

/// The words of `line` for which `keep` holds, joined by single spaces.
fn only(line: &str, keep: impl Fn(&str) -> bool) -> String {
    line.split_ascii_whitespace()
        .filter(|w| keep(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_ip(line: &str) {
    let got = IpConfig::from_cmdline(line);
    let own = only(line, |w| w.starts_with("ip=") || w.starts_with("gw="));
    assert_eq!(IpConfig::from_cmdline(&own), got, "other words changed ip=: {line:?}");
    let has_gw = own.split(' ').any(|w| w.starts_with("gw="));
    match got {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(IpConfig::Dhcp) => {
            assert!(!has_gw, "gw= accepted with DHCP: {line:?}");
            assert!(own.split(' ').all(|w| w == "ip=dhcp" || w.is_empty()));
        }
        Ok(IpConfig::Static(c)) => {
            let ip = c.address.address();
            let prefix = c.address.prefix_len();
            assert!((1..=32).contains(&prefix));
            assert!(
                !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback()),
                "{ip} is not unicast"
            );
            if prefix <= 30 {
                let host = u32::from(ip) & (u32::MAX >> prefix);
                assert!(host != 0 && host != u32::MAX >> prefix, "{ip}/{prefix} is not a host");
            }
            if let Some(gw) = c.gateway {
                assert_ne!(gw, ip);
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                assert_eq!(u32::from(gw) & mask, u32::from(ip) & mask, "{gw} outside {ip}/{prefix}");
            }
            assert_eq!(c.gateway.is_some(), has_gw);
            // Display, then back through the parser.
            let shown = c.to_string();
            let back = match shown.split_once(" via ") {
                Some((a, g)) => format!("ip={a} gw={g}"),
                None => format!("ip={shown}"),
            };
            assert_eq!(IpConfig::from_cmdline(&back), Ok(IpConfig::Static(c)), "{shown}");
        }
    }
    // `gw=` alone is never a setting.
    if !own.split(' ').any(|w| w.starts_with("ip=")) && has_gw {
        assert!(matches!(
            got,
            Err(IpConfigError::GatewayWithoutAddress
                | IpConfigError::BadAddress(_)
                | IpConfigError::Duplicate(_))
        ));
    }
}

fn check_loglevel(line: &str) {
    let got = level_from_cmdline(line);
    let own = only(line, |w| w.starts_with("loglevel="));
    assert_eq!(level_from_cmdline(&own), got);
    if own.is_empty() {
        assert_eq!(got, log::LevelFilter::Info);
    }
}

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(CMDLINE_BYTES_MAX)];
    // The start code cuts at the first NUL and ignores a non-UTF-8 line.
    let data = data.split(|&b| b == 0).next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    check_ip(line);
    check_loglevel(line);
});
