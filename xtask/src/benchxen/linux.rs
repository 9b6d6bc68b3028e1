//! The Linux guests: Debian 12's kernel with a small initramfs holding
//! busybox and either nginx or epoll-httpd, built by `linux-guest.sh` from
//! the machine's apt sources and cached under target/bench-xen/linux/<key>/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::e2e::dom0::Fnv;
use crate::{root, Error};

/// Bump to rebuild the cached guests for a reason the key does not see.
const RECIPE_VERSION: u32 = 1;
const BUILD_SCRIPT: &str = include_str!("linux-guest.sh");
const INIT: &str = include_str!("linux-init.sh");
const NGINX_CONF: &str = include_str!("nginx.conf");
/// The epoll server's source, relative to the workspace root.
pub const EPOLL_SOURCE: &str = "bench/epoll-httpd/epoll-httpd.c";

/// Which server a Linux guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// nginx, one worker.
    Nginx,
    /// bench/epoll-httpd.
    Epoll,
}

/// The built guests.
#[derive(Debug, Clone)]
pub struct Kit {
    /// Debian's bzImage.
    pub vmlinuz: PathBuf,
    /// The nginx guest's initramfs (gzip'd newc cpio).
    pub initrd_nginx: PathBuf,
    /// The epoll-httpd guest's initramfs.
    pub initrd_epoll: PathBuf,
    /// Package versions, one `package version` per line.
    pub versions: String,
}

impl Kit {
    /// The initramfs of a server's guest.
    pub fn initrd(&self, server: Server) -> &Path {
        match server {
            Server::Nginx => &self.initrd_nginx,
            Server::Epoll => &self.initrd_epoll,
        }
    }
}

/// The kit, built once per process (both Linux scenarios use it).
pub fn kit() -> Result<&'static Kit, Error> {
    static KIT: OnceLock<Result<Kit, Error>> = OnceLock::new();
    KIT.get_or_init(|| ensure(&root().join("target")))
        .as_ref()
        .map_err(Clone::clone)
}

/// Returns the cached guests, building them first if needed (a minute or
/// two: about 80 MB of packages).
pub fn ensure(target: &Path) -> Result<Kit, Error> {
    let epoll_source =
        std::fs::read(root().join(EPOLL_SOURCE)).map_err(|e| format!("{EPOLL_SOURCE}: {e}"))?;
    let key = cache_key(&epoll_source);
    let base = target.join("bench-xen").join("linux");
    let dir = base.join(format!("{key:016x}"));
    if let Some(kit) = load(&dir) {
        return Ok(kit);
    }
    let work = base.join(format!("build-{key:016x}-{}", std::process::id()));
    let inputs = work.join("inputs");
    std::fs::create_dir_all(&inputs).map_err(|e| format!("{}: {e}", inputs.display()))?;
    let epoll = build_epoll(&inputs)?;
    let write = |name: &str, text: &str| {
        let p = inputs.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok::<PathBuf, Error>(p)
    };
    let init = write("init", INIT)?;
    let conf = write("nginx.conf", NGINX_CONF)?;
    let out = work.join("out");
    eprintln!(
        "xtask: building the Linux bench guests (once) in {}",
        work.display()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(BUILD_SCRIPT)
        .arg("linux-guest.sh")
        .arg(work.join("tree"))
        .arg(&out)
        .env("EPOLL", &epoll)
        .env("INIT", &init)
        .env("NGINX_CONF", &conf)
        .status()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the Linux guests failed ({status}); see {}",
            work.display()
        ));
    }
    if !dir.exists() {
        std::fs::rename(&out, &dir)
            .map_err(|e| format!("moving {} to {}: {e}", out.display(), dir.display()))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    remove_stale(&base, &dir);
    load(&dir).ok_or_else(|| format!("{} is incomplete after the build", dir.display()))
}

/// Compiles bench/epoll-httpd as a static binary into `dir`.
pub fn build_epoll(dir: &Path) -> Result<PathBuf, Error> {
    let out = dir.join("epoll-httpd");
    let output = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-s", "-o"])
        .arg(&out)
        .arg(root().join(EPOLL_SOURCE))
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "gcc {EPOLL_SOURCE} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(out)
}

fn load(dir: &Path) -> Option<Kit> {
    let kit = Kit {
        vmlinuz: dir.join("vmlinuz"),
        initrd_nginx: dir.join("initrd-nginx.gz"),
        initrd_epoll: dir.join("initrd-epoll.gz"),
        versions: std::fs::read_to_string(dir.join("versions.txt")).ok()?,
    };
    (kit.vmlinuz.is_file() && kit.initrd_nginx.is_file() && kit.initrd_epoll.is_file())
        .then_some(kit)
}

/// Removes cached guests of other keys; builds in progress stay.
fn remove_stale(base: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()) && path != keep {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Everything the build depends on, hashed.
fn cache_key(epoll_source: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(format!("recipe {RECIPE_VERSION}\n").as_bytes());
    for part in [BUILD_SCRIPT, INIT, NGINX_CONF] {
        h.write(part.as_bytes());
        h.write(b"\0");
    }
    h.write(epoll_source);
    h.finish()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_key_sees_every_input() {
        assert_ne!(cache_key(b"a"), cache_key(b"b"));
    }

    #[test]
    fn init_reads_what_the_configs_pass() {
        // linux.cfg passes `server=`, `ip=` and `gw=` through @EXTRA@.
        for word in ["server=*)", "ip=*)", "gw=*)"] {
            assert!(INIT.contains(word), "{word}");
        }
        assert!(NGINX_CONF.contains("worker_processes 1;"));
        assert!(NGINX_CONF.contains("sendfile on;"));
        assert!(NGINX_CONF.contains("access_log off;"));
    }
}
