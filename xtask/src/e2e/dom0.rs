//! The cached dom0: Xen, the dom0 kernel and a trimmed Debian root file
//! system as one cpio archive, built once by `dom0/build.sh` and kept under
//! target/xen-dom0/<key>/, where the key hashes everything the build
//! depends on (the script, the package and module lists, the suite).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The Debian release dom0 comes from.
pub const SUITE: &str = "bookworm";
/// The Xen release: `xen-utils-<XEN>` and `xen-hypervisor-<XEN>-amd64`.
pub const XEN: &str = "4.17";
/// Bump to rebuild every cached dom0 for a reason the key does not see.
const RECIPE_VERSION: u32 = 1;
/// Packages installed into dom0 (with their dependencies, no recommends).
/// The tools check scripts use: xl and xenstore-*, ip, ping, wget, curl,
/// nc, ab and wrk (load from dom0), busybox (udhcpd for DHCP), sha256sum.
pub const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "xen-utils-4.17",
    "iproute2",
    "busybox-static",
    "iputils-ping",
    "kmod",
    "procps",
    "wget",
    "curl",
    "netcat-openbsd",
    "coreutils",
    "apache2-utils",
    "wrk",
];
/// Kernel modules kept (with what they depend on); dom0's /init loads them,
/// except `e1000`: the NIC of QEMU's user network, which only `cargo xtask
/// demo` gives dom0 (its dom0 script loads it).
pub const MODULES: &[&str] = &[
    "xenfs",
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xen-netback",
    "xen-blkback",
    "bridge",
    "loop",
    "e1000",
];
/// Host packages the build and the QEMU run need.
pub const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "debootstrap",
    "debian-archive-keyring",
    "cpio",
    "kmod",
    "gcc",
    "libc6-dev",
    "libxen-dev",
    "binutils",
    "xz-utils",
];
/// The mirror used when the machine's apt configuration names none.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

const BUILD_SCRIPT: &str = include_str!("dom0/build.sh");

/// A built dom0.
#[derive(Debug, Clone)]
pub struct Dom0 {
    /// The Xen hypervisor, uncompressed (multiboot ELF).
    pub xen: PathBuf,
    /// The dom0 kernel: the ELF inside the bzImage (Xen would otherwise
    /// decompress it under emulation, 15-20 s).
    pub kernel: PathBuf,
    /// The root file system as a newc cpio archive (no /init).
    pub cpio: PathBuf,
    /// Versions, one `name value` per line.
    pub versions: String,
}

/// Returns the cached dom0, building it first if needed (a few minutes).
pub fn ensure(target: &Path) -> Result<Dom0, Error> {
    let sources = AptSources::from_machine();
    let key = cache_key(&sources);
    let dir = target.join("xen-dom0").join(format!("{key:016x}"));
    if let Some(dom0) = load(&dir) {
        return Ok(dom0);
    }
    if !is_root() {
        return Err(format!(
            "building the dom0 for the real-Xen suite needs root (debootstrap, chroot); \
             run as root once, it is then cached in {}",
            dir.display()
        ));
    }
    let work = target
        .join("xen-dom0")
        .join(format!("build-{key:016x}-{}", std::process::id()));
    let out = work.join("out");
    eprintln!(
        "xtask: building the dom0 for the real-Xen suite (once, a few minutes) in {}",
        work.display()
    );
    let started = std::time::Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(BUILD_SCRIPT)
        .arg("build.sh")
        .arg(&work)
        .arg(&out)
        .env("SUITE", SUITE)
        .env("MIRROR", &sources.mirror)
        .env("SECURITY", sources.security.as_deref().unwrap_or(""))
        .env("XEN", XEN)
        .env("PACKAGES", PACKAGES.join(" "))
        .env("MODULES", MODULES.join(" "))
        .status()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the dom0 failed ({status}); logs in {}",
            work.display()
        ));
    }
    if dir.exists() {
        // Another run finished first; keep its copy.
        let _ = std::fs::remove_dir_all(&work);
    } else {
        std::fs::rename(&out, &dir)
            .map_err(|e| format!("moving {} to {}: {e}", out.display(), dir.display()))?;
        std::fs::remove_dir_all(&work).map_err(|e| format!("removing {}: {e}", work.display()))?;
    }
    eprintln!(
        "xtask: dom0 built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    remove_stale(&dir);
    load(&dir).ok_or_else(|| format!("{} is incomplete after the build", dir.display()))
}

/// Removes the cached dom0s of other keys (about 170 MB each); builds in
/// progress (`build-*`) are left alone.
fn remove_stale(keep: &Path) {
    let Some(parent) = keep.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_key = name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_key && path != keep {
            eprintln!("xtask: removing the stale dom0 {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn load(dir: &Path) -> Option<Dom0> {
    let dom0 = Dom0 {
        xen: dir.join("xen"),
        kernel: dir.join("vmlinux"),
        cpio: dir.join("dom0.cpio"),
        versions: std::fs::read_to_string(dir.join("versions.txt")).ok()?,
    };
    (dom0.xen.is_file() && dom0.kernel.is_file() && dom0.cpio.is_file()).then_some(dom0)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Everything the build depends on, hashed (FNV-1a, 64 bits). The mirror
/// is left out: any mirror serves the same packages.
fn cache_key(sources: &AptSources) -> u64 {
    let mut h = Fnv::new();
    h.write(format!("recipe {RECIPE_VERSION}\n").as_bytes());
    h.write(BUILD_SCRIPT.as_bytes());
    h.write(format!("suite {SUITE} xen {XEN}\n").as_bytes());
    h.write(PACKAGES.join(" ").as_bytes());
    h.write(b"\n");
    h.write(MODULES.join(" ").as_bytes());
    h.write(format!("\nsecurity {}\n", sources.security.is_some()).as_bytes());
    h.finish()
}

/// 64-bit FNV-1a.
#[derive(Debug)]
pub struct Fnv(u64);

impl Fnv {
    /// A fresh hash.
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The Debian mirrors the machine's own apt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSources {
    /// The mirror serving `<SUITE>` (and `<SUITE>-updates`).
    pub mirror: String,
    /// The mirror serving `<SUITE>-security`, if configured.
    pub security: Option<String>,
}

impl AptSources {
    /// Reads /etc/apt/sources.list, sources.list.d/*.list and *.sources.
    pub fn from_machine() -> Self {
        let mut entries = Vec::new();
        let mut read = |path: &Path| {
            let Ok(text) = std::fs::read_to_string(path) else {
                return;
            };
            if path.extension().is_some_and(|e| e == "sources") {
                entries.extend(parse_deb822(&text));
            } else {
                entries.extend(parse_one_line(&text));
            }
        };
        read(Path::new("/etc/apt/sources.list"));
        if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
            let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            {
                read(p);
            }
        }
        Self::choose(&entries)
    }

    /// Picks the mirrors for [`SUITE`] among apt entries (uri, suite).
    fn choose(entries: &[(String, String)]) -> Self {
        let find = |suite: &str| {
            entries
                .iter()
                .find(|(_, s)| s == suite)
                .map(|(u, _)| u.trim_end_matches('/').to_string())
        };
        Self {
            mirror: find(SUITE).unwrap_or_else(|| DEFAULT_MIRROR.to_string()),
            security: find(&format!("{SUITE}-security")),
        }
    }
}

/// `deb [options] URI SUITE COMPONENTS...` lines: (URI, SUITE) pairs.
fn parse_one_line(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').map_or("", |(_, after)| after),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            if uri.starts_with("http://") || uri.starts_with("https://") {
                out.push((uri.to_string(), suite.to_string()));
            }
        }
    }
    out
}

/// deb822 stanzas (`Types: deb`, `URIs:`, `Suites:`, `Enabled:`): (URI,
/// SUITE) pairs.
fn parse_deb822(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
                })
                .unwrap_or("")
        };
        let types = field("Types");
        let enabled = !field("Enabled").eq_ignore_ascii_case("no");
        if !enabled || !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        for uri in field("URIs").split_whitespace() {
            if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                continue;
            }
            for suite in field("Suites").split_whitespace() {
                out.push((uri.to_string(), suite.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn deb822_sources() {
        let text = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://deb.debian.org/debian-security/
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
";
        let entries = parse_deb822(text);
        assert_eq!(
            AptSources::choose(&entries),
            AptSources {
                mirror: "http://deb.debian.org/debian".into(),
                security: Some("http://deb.debian.org/debian-security".into()),
            }
        );
    }

    #[test]
    fn one_line_sources() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main
deb-src http://mirror.example/debian bookworm main
deb cdrom:[Debian]/ bookworm main
deb http://security.example/debian-security bookworm-security main
";
        assert_eq!(
            AptSources::choose(&parse_one_line(text)),
            AptSources {
                mirror: "http://mirror.example/debian".into(),
                security: Some("http://security.example/debian-security".into()),
            }
        );
    }

    #[test]
    fn no_sources_fall_back() {
        assert_eq!(
            AptSources::choose(&[]),
            AptSources {
                mirror: DEFAULT_MIRROR.into(),
                security: None,
            }
        );
    }

    #[test]
    fn fnv_matches_reference_values() {
        let hash = |s: &str| {
            let mut h = Fnv::new();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
