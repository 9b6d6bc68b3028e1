//! The scenarios of the real-Xen suite: one table entry each.
//!
//! A scenario is a guest image, an xl config template, and a dom0 check
//! script that creates the guest and checks it with ordinary dom0 tools
//! (xl, xenstore-*, ping, curl, ...). The check script runs under `sh -e`
//! with the functions of `dom0/lib.sh` (see docs/real-xen.md). Adding a
//! scenario (net, storage, httpd) means: a `scenarios/<name>.sh`, a
//! `scenarios/<name>.cfg`, and one entry in [`SCENARIOS`].

use std::path::Path;

#[path = "scenarios/httpd.rs"]
pub mod httpd;
#[path = "scenarios/net.rs"]
mod net;
#[path = "scenarios/storage.rs"]
mod storage;

/// How a scenario's guest image is made.
#[derive(Debug, Clone, Copy)]
pub enum Guest {
    /// An assembly fixture under xtask/fixtures/ (`<name>.S` + `<name>.ld`),
    /// assembled with the host's binutils.
    Fixture(&'static str),
    /// A workspace package built with `cargo build --release --target
    /// x86_64-unknown-none`.
    App(&'static str),
    /// Made by a function (a Linux guest for a benchmark, say): gets a
    /// scratch directory, returns the kernel's path. Staged as it is (not
    /// stripped). No table entry uses it yet; `cargo xtask bench xen`
    /// (issue 8) will.
    #[allow(dead_code)]
    Build(fn(scratch: &Path) -> Result<std::path::PathBuf, crate::Error>),
}

/// Extra files a scenario needs next to its guest (disk images, expected
/// outputs), written into the scenario's directory. Gets a scratch
/// directory on the host; returns (file name, permission bits, bytes).
pub type Prepare = fn(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, crate::Error>;

/// One scenario of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name, `[a-z0-9_-]`: the CLI argument, the result line, the
    /// directory in dom0, and the default domain name `ringlet-e2e-<name>`.
    pub name: &'static str,
    /// One line for `cargo xtask e2e --list`.
    pub about: &'static str,
    /// The guest image, staged as `app.elf` in the scenario's directory.
    pub guest: Guest,
    /// The xl config template, staged as `guest.cfg`.
    pub config: &'static str,
    /// The dom0 check script, staged as `check.sh`.
    pub check: &'static str,
    /// The bound on the check script, in seconds (dom0 kills it after).
    pub timeout_s: u32,
    /// Extra files, if any.
    pub prepare: Option<Prepare>,
    /// Part of the default suite (`cargo xtask e2e` with no names, `cargo
    /// xtask test`).
    pub default: bool,
}

/// Every scenario, in the order a run takes them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "smoke",
        about: "a 400-byte PVH guest in assembly: proves Xen, dom0, xl and the console path",
        guest: Guest::Fixture("smoke-guest"),
        config: include_str!("scenarios/smoke.cfg"),
        check: include_str!("scenarios/smoke.sh"),
        timeout_s: 60,
        prepare: None,
        default: true,
    },
    Scenario {
        name: "hello",
        about:
            "apps/hello: console, sleep lateness, xenstore key and watch, grant, shutdown, panic",
        guest: Guest::App("ringlet-hello"),
        config: include_str!("scenarios/hello.cfg"),
        check: include_str!("scenarios/hello.sh"),
        timeout_s: 120,
        prepare: None,
        default: true,
    },
    Scenario {
        name: "storage",
        about: "apps/blkcheck: SHA-256 of every file of a tar vbd, pattern written/flushed/read on a second vbd, checked by dom0",
        guest: Guest::App("ringlet-blkcheck"),
        config: include_str!("scenarios/storage.cfg"),
        check: include_str!("scenarios/storage.sh"),
        timeout_s: 150,
        prepare: Some(storage::prepare),
        default: true,
    },
    Scenario {
        name: "httpd",
        about: "apps/httpd: the demo site from a vbd; curl checksums, HEAD, 404, Range, 304, wrk and ab load, xl shutdown",
        guest: Guest::App("ringlet-httpd"),
        config: include_str!("scenarios/httpd.cfg"),
        check: include_str!("scenarios/httpd.sh"),
        timeout_s: 240,
        prepare: Some(httpd::prepare),
        default: true,
    },
    Scenario {
        name: "net",
        about: "apps/netecho on dom0's bridge: ping, 1 MiB through nc, 50 connections at once, UDP; then DHCP from udhcpd",
        guest: Guest::App("ringlet-netecho"),
        config: include_str!("scenarios/net.cfg"),
        check: include_str!("scenarios/net.sh"),
        timeout_s: 240,
        prepare: Some(net::prepare),
        default: true,
    },
];

/// Looks a scenario up by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_are_unique_and_valid() {
        for (i, s) in SCENARIOS.iter().enumerate() {
            assert!(
                !s.name.is_empty()
                    && s.name.len() <= 20
                    && s.name.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'-'
                        || b == b'_'),
                "{}",
                s.name
            );
            assert!(
                SCENARIOS[..i].iter().all(|o| o.name != s.name),
                "{}",
                s.name
            );
            assert!(s.timeout_s > 0);
        }
    }

    #[test]
    fn configs_are_pvh_with_native_tsc() {
        // Facts from running Xen in QEMU (docs/real-xen.md): without
        // tsc_mode = "native" the guest hangs; a crash must stay visible.
        for s in SCENARIOS {
            for needle in [
                "type = \"pvh\"",
                "tsc_mode = \"native\"",
                "name = \"@NAME@\"",
                "kernel = \"@KERNEL@\"",
                "on_crash = \"preserve\"",
            ] {
                assert!(s.config.contains(needle), "{}: no {needle}", s.name);
            }
        }
    }
}
