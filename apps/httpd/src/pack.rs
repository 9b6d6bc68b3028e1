//! Site images (hosted builds only): a directory or a list of files packed
//! into a tar archive in memory, and the demo site.
//!
//! Archives are GNU tar (long names as `'L'` entries), entries in byte
//! order of their paths with a directory header before its contents, so
//! the same tree always packs to the same bytes. Regular files and
//! directories are packed; symlinks and other kinds are skipped (httpd
//! would not serve them). The result's length is a multiple of 512, as a
//! block device needs.
//!
//! The demo site is `apps/httpd/site/` plus [`DEMO_BIG_FILE`], 1 MiB of
//! pseudo-random bytes made here rather than kept in the repository.

use std::fs;
use std::io;
use std::path::Path;
use std::string::String;
use std::vec::Vec;

/// The name of the demo site's large file.
pub const DEMO_BIG_FILE: &str = "big.bin";
/// Its size.
pub const DEMO_BIG_BYTES: usize = 1 << 20;
/// The mtime given to generated files (2024-01-01T00:00:00Z), so images
/// are reproducible.
pub const GENERATED_MTIME: u64 = 1_704_067_200;
/// The most files and directories [`pack_dir`] packs.
pub const PACK_ENTRIES_MAX: usize = 65_536;

/// The demo's large file: [`DEMO_BIG_BYTES`] bytes of xorshift output.
pub fn demo_big_file() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(DEMO_BIG_BYTES);
    while out.len() < DEMO_BIG_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(DEMO_BIG_BYTES);
    out
}

fn file_header(size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h
}

fn dir_header(mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(mtime);
    h
}

fn finish(builder: tar::Builder<Vec<u8>>) -> io::Result<Vec<u8>> {
    let mut tar = builder.into_inner()?;
    let padded = tar.len().next_multiple_of(512);
    tar.resize(padded, 0);
    Ok(tar)
}

/// Packs `(path, bytes, mtime)` files (directories implied).
///
/// # Errors
///
/// A path the tar format cannot hold.
pub fn pack_files(files: &[(&str, &[u8], u64)]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mtime) in files {
        let mut h = file_header(data.len() as u64, *mtime);
        b.append_data(&mut h, path, *data)?;
    }
    finish(b)
}

/// Packs the tree under `dir` (its contents, not `dir` itself), plus the
/// `extra` generated files.
///
/// # Errors
///
/// An unreadable directory or file, more than [`PACK_ENTRIES_MAX`]
/// entries, a non-UTF-8 name, or a path the tar format cannot hold.
pub fn pack_dir(dir: &Path, extra: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut entries: Vec<(String, Option<fs::Metadata>)> = Vec::new();
    walk(dir, "", &mut entries)?;
    for (name, _) in extra {
        entries.retain(|(p, _)| p != name);
        entries.push((String::from(*name), None));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut b = tar::Builder::new(Vec::new());
    for (path, meta) in &entries {
        let mtime = |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        };
        match meta {
            Some(m) if m.is_dir() => {
                let mut h = dir_header(mtime(m));
                b.append_data(&mut h, std::format!("{path}/"), io::empty())?;
            }
            Some(m) => {
                let data = fs::read(dir.join(path))?;
                let mut h = file_header(data.len() as u64, mtime(m));
                b.append_data(&mut h, path, &data[..])?;
            }
            None => {
                let data = extra
                    .iter()
                    .find(|(n, _)| n == path)
                    .map_or(&[][..], |e| e.1);
                let mut h = file_header(data.len() as u64, GENERATED_MTIME);
                b.append_data(&mut h, path, data)?;
            }
        }
    }
    finish(b)
}

fn walk(
    root: &Path,
    prefix: &str,
    out: &mut Vec<(String, Option<fs::Metadata>)>,
) -> io::Result<()> {
    let dir = if prefix.is_empty() {
        root.to_path_buf()
    } else {
        root.join(prefix)
    };
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|n| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                std::format!("{n:?} is not UTF-8"),
            )
        })?;
        let path = if prefix.is_empty() {
            name
        } else {
            std::format!("{prefix}/{name}")
        };
        let meta = entry.metadata()?;
        if out.len() >= PACK_ENTRIES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many files to pack",
            ));
        }
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            out.push((path.clone(), Some(meta)));
            walk(root, &path, out)?;
        } else if file_type.is_file() {
            out.push((path, Some(meta)));
        }
    }
    Ok(())
}

/// The demo site's image: `site_dir` (normally `apps/httpd/site`) and the
/// generated [`DEMO_BIG_FILE`].
///
/// # Errors
///
/// As [`pack_dir`].
pub fn demo_site(site_dir: &Path) -> io::Result<Vec<u8>> {
    let big = demo_big_file();
    pack_dir(site_dir, &[(DEMO_BIG_FILE, &big)])
}

/// The site image for `path`: a tar file as it is (padded to 512 bytes),
/// or a directory packed.
///
/// # Errors
///
/// An unreadable path, or [`pack_dir`]'s errors.
pub fn site_image(path: &Path) -> io::Result<Vec<u8>> {
    if fs::metadata(path)?.is_dir() {
        pack_dir(path, &[])
    } else {
        let mut tar = fs::read(path)?;
        let padded = tar.len().next_multiple_of(512);
        tar.resize(padded, 0);
        Ok(tar)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn big_file_is_deterministic_and_not_trivial() {
        let a = demo_big_file();
        assert_eq!(a.len(), DEMO_BIG_BYTES);
        assert_eq!(a, demo_big_file());
        let zeros = a.iter().filter(|&&b| b == 0).count();
        assert!(zeros < DEMO_BIG_BYTES / 100, "{zeros} zero bytes");
    }

    #[test]
    fn packs_a_tree_reproducibly() {
        let dir = std::env::temp_dir().join(std::format!("httpd-pack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        fs::write(dir.join("index.html"), b"<p>x</p>").unwrap();
        fs::write(dir.join("sub/deeper/a.txt"), b"a").unwrap();
        let long = "n".repeat(150);
        fs::write(dir.join(&long), b"long").unwrap();
        let one = pack_dir(&dir, &[("gen.bin", b"gg")]).unwrap();
        assert_eq!(one, pack_dir(&dir, &[("gen.bin", b"gg")]).unwrap());
        assert_eq!(one.len() % 512, 0);
        let mut ar = tar::Archive::new(&one[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "gen.bin",
                "index.html",
                long.as_str(),
                "sub/",
                "sub/deeper/",
                "sub/deeper/a.txt"
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
