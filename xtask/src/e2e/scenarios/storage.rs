//! The storage scenario's extra files (apps/blkcheck, issue 6): the tar
//! image for xvda, the scratch image for xvdb, and dom0's pattern checker.
//!
//! - `image.tar`: a tree made here ([`tree`]: odd names, nested
//!   directories, an empty file, sizes around a sector, a file of about
//!   4 MiB, a symlink, a path over 100 bytes), packed by the host's GNU
//!   tar in PAX format. dom0 extracts it with its own tar and compares
//!   `sha256sum` of every file with the guest's lines.
//! - `scratch.img`: [`SCRATCH_BYTES`] of [`SCRATCH_FILL`]; the guest
//!   writes its pattern over part of it (the range is on its command line,
//!   set by storage.sh), and dom0 checks every byte after the guest is gone.
//! - `storage-pattern`: storage-pattern.c, built static and self-tested
//!   here; it regenerates the guest's pattern (apps/blkcheck/src/pattern.rs).

use std::path::Path;
use std::process::Command;

use crate::Error;

/// The scratch image's size. storage.sh's range (1 MiB + 8 MiB) must fit.
pub const SCRATCH_BYTES: usize = 10 << 20;
/// What the scratch image holds before the guest writes.
pub const SCRATCH_FILL: u8 = 0x5a;

/// Files of the image: (path, size). Contents come from [`contents`].
/// Paths stay under 160 bytes (blkcheck prints at most that) and avoid
/// backslashes and newlines (sha256sum escapes those).
fn tree() -> Vec<(String, usize)> {
    let mut files: Vec<(String, usize)> = [
        ("hello.txt", 31),
        ("empty", 0),
        ("big/four-mib.bin", (4 << 20) + 1234),
        ("nested/a/b/c/d/e/f/g/deep.txt", 700),
        ("odd names/with spaces & 'single' \"double\".txt", 100),
        ("odd names/-leading-dash", 10),
        ("odd names/ünïcödé-日本語.txt", 2000),
        ("odd names/semi;colon $dollar *star ?question [x].txt", 300),
        ("odd names/.hidden", 5),
        ("sectors/511.bin", 511),
        ("sectors/512.bin", 512),
        ("sectors/513.bin", 513),
        ("sectors/4095.bin", 4095),
        ("sectors/65537.bin", 65537),
    ]
    .into_iter()
    .map(|(p, n)| (p.to_string(), n))
    .collect();
    files.push((
        format!(
            "long/{}/{}/name-past-the-ustar-100-byte-field.txt",
            "x".repeat(50),
            "y".repeat(50)
        ),
        1500,
    ));
    for i in 0..20 {
        files.push((format!("many/file-{i:02}"), i * 97));
    }
    files
}

/// Deterministic bytes for a file: an xorshift stream seeded by its path.
fn contents(path: &str, len: usize) -> Vec<u8> {
    let mut x = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Writes the tree under `dir` (emptied first) and packs it as `tar`.
fn image(dir: &Path, tar: &Path) -> Result<(), Error> {
    let io = |e: std::io::Error, p: &Path| format!("{}: {e}", p.display());
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io(e, dir))?;
    }
    for (path, len) in tree() {
        let p = dir.join(&path);
        let parent = p.parent().expect("tree paths have a parent");
        std::fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
        std::fs::write(&p, contents(&path, len)).map_err(|e| io(e, &p))?;
    }
    let link = dir.join("link-to-hello");
    std::os::unix::fs::symlink("hello.txt", &link).map_err(|e| io(e, &link))?;
    run(Command::new("tar")
        .args([
            "--format=pax",
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@1700000000",
            "-C",
        ])
        .arg(dir)
        .arg("-cf")
        .arg(tar)
        .arg("."))
}

/// The scenario's `prepare`: image.tar, scratch.img, storage-pattern.
pub fn prepare(scratch: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
    let tar = scratch.join("image.tar");
    image(&scratch.join("storage-tree"), &tar)?;
    let tar_bytes = std::fs::read(&tar).map_err(|e| format!("{}: {e}", tar.display()))?;

    let checker = scratch.join("storage-pattern");
    let source = scratch.join("storage-pattern.c");
    std::fs::write(&source, include_str!("storage-pattern.c"))
        .map_err(|e| format!("{}: {e}", source.display()))?;
    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&checker)
        .arg(&source))?;
    run(Command::new(&checker).arg("selftest"))?;
    let checker_bytes =
        std::fs::read(&checker).map_err(|e| format!("{}: {e}", checker.display()))?;

    Ok(vec![
        ("image.tar".into(), 0o644, tar_bytes),
        (
            "scratch.img".into(),
            0o644,
            vec![SCRATCH_FILL; SCRATCH_BYTES],
        ),
        ("storage-pattern".into(), 0o755, checker_bytes),
    ])
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn tree_paths_fit_the_guest_and_sha256sum() {
        let files = tree();
        for (path, _) in &files {
            assert!(path.len() <= 160, "{path}");
            assert!(!path.contains('\\') && !path.contains('\n'), "{path}");
        }
        assert!(files.iter().any(|(p, _)| p.len() > 100));
        assert!(files.iter().any(|(_, n)| *n == 0));
        assert!(files.iter().any(|(_, n)| *n > 4 << 20));
        let mut paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), files.len());
    }

    #[test]
    fn contents_are_deterministic_and_differ_by_path() {
        assert_eq!(contents("a", 64), contents("a", 64));
        assert_ne!(contents("a", 64), contents("b", 64));
        assert_eq!(contents("a", 10), contents("a", 64)[..10]);
    }

    #[test]
    fn prepare_makes_the_three_files() {
        let dir = std::env::temp_dir().join(format!("ringlet-storage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = prepare(&dir).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["image.tar", "scratch.img", "storage-pattern"]);
        let tar = &files[0].2;
        assert_eq!(tar.len() % 512, 0);
        // The big file's data is in the archive, and a PAX header for the
        // non-ASCII name.
        assert!(tar.len() > 4 << 20);
        assert!(tar.windows(5).any(|w| w == b"path="));
        assert_eq!(files[1].2.len(), SCRATCH_BYTES);

        // The checker agrees with the guest's formula on a small file.
        let img = dir.join("small.img");
        let mut bytes = vec![SCRATCH_FILL; 4096];
        for (i, chunk) in bytes[1024..3072].chunks_mut(8).enumerate() {
            let w = splitmix64((9u64 << 32) + 128 + i as u64);
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        std::fs::write(&img, &bytes).unwrap();
        let checker = dir.join("storage-pattern");
        let check = |seed: &str, offset: &str| {
            Command::new(&checker)
                .args(["check"])
                .arg(&img)
                .args([seed, offset, "2048", "4096", "90"])
                .output()
                .unwrap()
        };
        let ok = check("9", "1024");
        assert!(ok.status.success(), "{ok:?}");
        let bad = check("8", "1024");
        assert_eq!(bad.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&bad.stdout).starts_with("byte 1024 (in the pattern)"));
        let bad = check("9", "1032");
        assert_eq!(bad.status.code(), Some(1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The guest's formula (apps/blkcheck/src/pattern.rs), to cross-check
    /// the C checker.
    fn splitmix64(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
