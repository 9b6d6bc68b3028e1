//! A writer for "newc" cpio archives, the format Linux unpacks as initramfs.
//!
//! The per-run archive (guest images, xl configs, scripts) is small and made
//! here; Linux unpacks it after the cached dom0 archive, so its files are
//! added to (or replace) the dom0's. Parent directories are emitted before
//! their files, because the kernel does not create them.

use std::collections::BTreeSet;

/// `S_IFREG`: a regular file.
const MODE_FILE: u32 = 0o100_000;
/// `S_IFDIR`: a directory.
const MODE_DIR: u32 = 0o040_000;
/// The largest file one entry can hold (the size field has 8 hex digits).
pub const FILE_BYTES_MAX: usize = u32::MAX as usize;

/// Why an archive could not be written.
#[derive(Debug, PartialEq, Eq)]
pub enum CpioError {
    /// A path was empty, absolute, had an empty, `.` or `..` component, or
    /// held a NUL byte.
    BadPath(String),
    /// Two entries had the same path.
    Duplicate(String),
    /// A file was larger than [`FILE_BYTES_MAX`].
    TooLarge(String),
}

impl core::fmt::Display for CpioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadPath(p) => write!(f, "cpio: bad path {p:?}"),
            Self::Duplicate(p) => write!(f, "cpio: {p} added twice"),
            Self::TooLarge(p) => write!(f, "cpio: {p} is larger than 4 GiB"),
        }
    }
}

impl core::error::Error for CpioError {}

/// A newc archive being built in memory.
#[derive(Debug, Default)]
pub struct Archive {
    out: Vec<u8>,
    paths: BTreeSet<String>,
    next_ino: u32,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file (relative path, e.g. `e2e/run.env`) with its
    /// permission bits (e.g. `0o755`), and any missing parent directories.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        check_path(path)?;
        if data.len() > FILE_BYTES_MAX {
            return Err(CpioError::TooLarge(path.into()));
        }
        if self.paths.contains(path) {
            return Err(CpioError::Duplicate(path.into()));
        }
        let mut parent = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for dir in &components[..components.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(dir);
            if self.paths.insert(parent.clone()) {
                self.entry(&parent, MODE_DIR | 0o755, &[]);
            }
        }
        self.paths.insert(path.into());
        self.entry(path, MODE_FILE | (perm & 0o7777), data);
        Ok(())
    }

    /// Ends the archive with the trailer and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.header("TRAILER!!!", 0, 0, 1);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.next_ino += 1;
        let nlink = if mode & MODE_DIR != 0 { 2 } else { 1 };
        let size = u32::try_from(data.len()).expect("checked against FILE_BYTES_MAX");
        self.header(path, mode, size, nlink);
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, name: &str, mode: u32, size: u32, nlink: u32) {
        let name_bytes = u32::try_from(name.len() + 1).expect("path length fits u32");
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the same inputs give the same archive
            size,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            name_bytes,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

fn check_path(path: &str) -> Result<(), CpioError> {
    let bad = path.is_empty()
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(CpioError::BadPath(path.into()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Reads back (name, mode, data) of every entry, checking the format.
    fn entries(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            assert_eq!(&bytes[at..at + 6], b"070701", "magic at {at}");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap() as usize
            };
            let (mode, size, name_bytes) = (field(1), field(6), field(11));
            let name_at = at + 110;
            let name = std::str::from_utf8(&bytes[name_at..name_at + name_bytes - 1]).unwrap();
            assert_eq!(bytes[name_at + name_bytes - 1], 0);
            let data_at = (name_at + name_bytes).next_multiple_of(4);
            let data = bytes[data_at..data_at + size].to_vec();
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(at, bytes.len());
                return out;
            }
            out.push((name.to_string(), mode as u32, data));
        }
    }

    #[test]
    fn files_come_after_their_directories() {
        let mut a = Archive::new();
        a.file("e2e/bin/tool", 0o755, b"\x7fELF").unwrap();
        a.file("e2e/run.env", 0o644, b"A=1\n").unwrap();
        a.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        let got = entries(&a.finish());
        let names: Vec<(&str, u32)> = got.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
        assert_eq!(
            names,
            [
                ("e2e", 0o040_755),
                ("e2e/bin", 0o040_755),
                ("e2e/bin/tool", 0o100_755),
                ("e2e/run.env", 0o100_644),
                ("init", 0o100_755),
            ]
        );
        assert_eq!(got[2].2, b"\x7fELF");
        assert_eq!(got[4].2, b"#!/bin/sh\n");
    }

    #[test]
    fn header_layout_is_newc() {
        let mut a = Archive::new();
        a.file("a", 0o600, b"xyz").unwrap();
        let bytes = a.finish();
        // magic, ino 1, mode, uid, gid, nlink 1, mtime, size 3, ..., namesize 2
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        let want = [
            "070701", "00000001", "00008180", "00000000", "00000000", "00000001", "00000000",
            "00000003", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
        ]
        .concat();
        assert_eq!(header, want);
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..115], b"xyz");
        assert_eq!(bytes[115], 0, "data padded to 4 bytes");
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn bad_and_duplicate_paths_are_refused() {
        let mut a = Archive::new();
        for bad in ["", "/abs", "a//b", "a/../b", "./a", "a/", "nul\0"] {
            assert_eq!(a.file(bad, 0o644, b""), Err(CpioError::BadPath(bad.into())));
        }
        a.file("x/y", 0o644, b"").unwrap();
        assert_eq!(
            a.file("x/y", 0o644, b""),
            Err(CpioError::Duplicate("x/y".into()))
        );
        // A directory made for a parent is a path too.
        assert_eq!(
            a.file("x", 0o644, b""),
            Err(CpioError::Duplicate("x".into()))
        );
    }
}
