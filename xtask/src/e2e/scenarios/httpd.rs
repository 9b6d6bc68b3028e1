//! The httpd scenario's and the demo's site image (apps/httpd, issue 7):
//! `apps/httpd/site/` plus generated files, packed by the host's GNU tar,
//! and the list of files dom0 fetches and compares.
//!
//! - `site.tar`: the image on the appliance's first vbd (xvda, read-only).
//!   The tree is `apps/httpd/site/` (or the directory `cargo xtask demo
//!   --site` names) with [`BIG_FILE`] added: [`BIG_BYTES`] of xorshift
//!   output, the same bytes as `ringlet_httpd::pack::demo_big_file`, so the
//!   image matches the hosted appliance's demo site.
//! - `files.list`: one line per regular file, `<url path>\t<tar path>\t<size>`
//!   (the URL path percent-encoded), at most [`LISTED_FILES_MAX`] files,
//!   the largest first. dom0 extracts site.tar with its own tar and compares
//!   what curl fetches with the extracted bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, Error};

/// The generated large file's name in the image.
pub const BIG_FILE: &str = "big.bin";
/// Its size: 1 MiB.
pub const BIG_BYTES: usize = 1 << 20;
/// The mtime of every entry in the image (2024-01-01T00:00:00Z), so the
/// same tree packs to the same bytes.
const MTIME: u64 = 1_704_067_200;
/// Bound on the files `files.list` names (dom0 fetches each).
pub const LISTED_FILES_MAX: usize = 64;
/// Bound on the files and directories of a site tree.
const TREE_ENTRIES_MAX: usize = 4096;

/// The site directory of the repository.
pub fn default_site_dir() -> PathBuf {
    root().join("apps/httpd/site")
}

/// The generated large file: `BIG_BYTES` of xorshift64 output (13, 7, 17;
/// the seed of `ringlet_httpd::pack::demo_big_file`), little-endian words.
pub fn big_file() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(BIG_BYTES + 8);
    while out.len() < BIG_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(BIG_BYTES);
    out
}

/// A regular file of the site tree: its path relative to the tree, its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The site image and what it holds.
#[derive(Debug)]
pub struct Site {
    /// The tar image (a multiple of 512 bytes).
    pub tar: Vec<u8>,
    /// Its regular files, sorted by path.
    pub files: Vec<SiteFile>,
}

/// Copies `site_dir` into `scratch/site-tree` with [`BIG_FILE`] added and
/// packs it; fails when the tree has no `index.html` (the demo's `/`).
pub fn build(site_dir: &Path, scratch: &Path) -> Result<Site, Error> {
    let io = |e: std::io::Error, p: &Path| format!("{}: {e}", p.display());
    if !site_dir.join("index.html").is_file() {
        return Err(format!(
            "{}: no index.html (the page `/` serves)",
            site_dir.display()
        ));
    }
    let tree = scratch.join("site-tree");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(|e| io(e, &tree))?;
    }
    std::fs::create_dir_all(&tree).map_err(|e| io(e, &tree))?;
    let mut files = Vec::new();
    copy_tree(site_dir, &tree, "", &mut files)?;
    if files.iter().any(|f| f.path == BIG_FILE) {
        return Err(format!(
            "{}: {BIG_FILE} is generated; the site must not have one",
            site_dir.display()
        ));
    }
    let big = tree.join(BIG_FILE);
    std::fs::write(&big, big_file()).map_err(|e| io(e, &big))?;
    files.push(SiteFile {
        path: BIG_FILE.into(),
        bytes: BIG_BYTES as u64,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));

    // Top-level names, sorted, as tar members: no "./" prefix in the image.
    let mut top: Vec<String> = std::fs::read_dir(&tree)
        .map_err(|e| io(e, &tree))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| io(e, &tree))?;
    top.sort();
    let tar = scratch.join("site.tar");
    let out = Command::new("tar")
        .args([
            "--format=gnu",
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mode=go-w",
            &format!("--mtime=@{MTIME}"),
            "-C",
        ])
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg("--")
        .args(&top)
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut bytes = std::fs::read(&tar).map_err(|e| io(e, &tar))?;
    bytes.resize(bytes.len().next_multiple_of(512), 0);
    Ok(Site { tar: bytes, files })
}

/// Copies regular files and directories under `from` (symlinks and other
/// kinds are skipped: the appliance serves neither), noting each file.
fn copy_tree(from: &Path, to: &Path, prefix: &str, files: &mut Vec<SiteFile>) -> Result<(), Error> {
    let io = |e: std::io::Error, p: &Path| format!("{}: {e}", p.display());
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .map_err(|e| io(e, from))?
        .collect::<Result<_, _>>()
        .map_err(|e| io(e, from))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| format!("{}: {n:?} is not UTF-8", from.display()))?;
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if files.len() >= TREE_ENTRIES_MAX {
            return Err(format!("more than {TREE_ENTRIES_MAX} files in the site"));
        }
        let kind = entry.file_type().map_err(|e| io(e, &entry.path()))?;
        let dest = to.join(&name);
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| io(e, &dest))?;
            copy_tree(&entry.path(), &dest, &path, files)?;
        } else if kind.is_file() {
            let bytes = std::fs::copy(entry.path(), &dest).map_err(|e| io(e, &dest))?;
            files.push(SiteFile { path, bytes });
        }
    }
    Ok(())
}

/// Percent-encodes a relative path for a URL (everything but unreserved
/// characters and `/`).
pub fn url_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `files.list`: `<url path>\t<tar path>\t<size>` for the largest
/// [`LISTED_FILES_MAX`] files. Paths with a tab or newline are left out.
pub fn files_list(files: &[SiteFile]) -> String {
    let mut chosen: Vec<&SiteFile> = files
        .iter()
        .filter(|f| !f.path.contains(['\t', '\n', '\r']))
        .collect();
    chosen.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    chosen.truncate(LISTED_FILES_MAX);
    chosen
        .iter()
        .map(|f| format!("{}\t{}\t{}\n", url_path(&f.path), f.path, f.bytes))
        .collect()
}

/// The scenario's `prepare`: site.tar and files.list.
pub fn prepare(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    let site = build(&default_site_dir(), scratch)?;
    Ok(vec![
        ("site.tar".into(), 0o644, site.tar),
        (
            "files.list".into(),
            0o644,
            files_list(&site.files).into_bytes(),
        ),
    ])
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn big_file_is_the_appliances() {
        let big = big_file();
        assert_eq!(big.len(), BIG_BYTES);
        // The first word of xorshift64 (13, 7, 17) from the seed.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        assert_eq!(big[..8], x.to_le_bytes());
        assert!(big.iter().filter(|&&b| b == 0).count() < BIG_BYTES / 100);
    }

    #[test]
    fn url_paths_are_encoded() {
        assert_eq!(url_path("index.html"), "/index.html");
        assert_eq!(url_path("a b/ü?.txt"), "/a%20b/%C3%BC%3F.txt");
    }

    #[test]
    fn files_list_takes_the_largest_and_skips_tabs() {
        let files: Vec<SiteFile> = (0..LISTED_FILES_MAX as u64 + 5)
            .map(|i| SiteFile {
                path: format!("f{i:03}"),
                bytes: i,
            })
            .chain([SiteFile {
                path: "tab\there".into(),
                bytes: 1 << 30,
            }])
            .collect();
        let list = files_list(&files);
        assert_eq!(list.lines().count(), LISTED_FILES_MAX);
        assert!(list.starts_with("/f068\tf068\t68\n"), "{list}");
        assert!(!list.contains("tab"));
    }

    #[test]
    fn a_tree_packs_without_dot_prefix_and_reproducibly() {
        let base = std::env::temp_dir().join(format!("ringlet-httpd-site-{}", std::process::id()));
        let site = base.join("site");
        std::fs::create_dir_all(site.join("css")).unwrap();
        std::fs::write(site.join("index.html"), b"<h1>hi</h1>\n").unwrap();
        std::fs::write(site.join("css/site.css"), b"body{}\n").unwrap();
        std::os::unix::fs::symlink("index.html", site.join("link")).unwrap();
        let one = build(&site, &base.join("s1")).unwrap();
        let two = build(&site, &base.join("s2")).unwrap();
        assert_eq!(one.tar, two.tar);
        assert_eq!(one.tar.len() % 512, 0);
        let paths: Vec<&str> = one.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [BIG_FILE, "css/site.css", "index.html"]);
        // Member names as the appliance looks them up: no "./".
        let listing = Command::new("tar")
            .arg("-tf")
            .arg(base.join("s1/site.tar"))
            .output()
            .unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        assert_eq!(
            listing.lines().collect::<Vec<_>>(),
            [BIG_FILE, "css/", "css/site.css", "index.html"]
        );
        // No index.html: refused.
        std::fs::remove_file(site.join("index.html")).unwrap();
        assert!(build(&site, &base.join("s3"))
            .unwrap_err()
            .contains("no index.html"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
