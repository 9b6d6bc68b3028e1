//! What the HTTP core needs to know of the files it serves: the [`Site`]
//! contract, and [`MemSite`], an in-memory site for tests and the fuzz
//! target.
//!
//! The appliance's site is the tar store (`crate::tar_site`); a file is
//! identified by the byte offset of its data on the disk, which the server
//! reads in chunks.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// A file's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// Byte offset of the file's data in the site's storage (the disk).
    pub data_offset: u64,
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A regular file.
    File(FileInfo),
    /// A directory.
    Directory,
    /// Nothing servable (no entry, a symlink, a device node ...).
    Missing,
}

/// The files a server serves.
///
/// `lookup` gets a decoded path without its leading `/` (`""` is the root,
/// `a/b.html` a file); it MUST NOT follow `..` (the core never passes one)
/// and may normalize `//` and `.` as the tar store does.
pub trait Site {
    /// What `path` names.
    fn lookup(&self, path: &str) -> Resource;
}

impl<S: Site + ?Sized> Site for &S {
    fn lookup(&self, path: &str) -> Resource {
        (**self).lookup(path)
    }
}

/// An in-memory site: files with their bytes, directories implied by their
/// paths. Data offsets are those the files would have laid end to end.
#[derive(Clone, Debug, Default)]
pub struct MemSite {
    files: BTreeMap<String, (FileInfo, Vec<u8>)>,
    next_offset: u64,
}

impl MemSite {
    /// An empty site (only the root directory).
    pub fn new() -> MemSite {
        MemSite::default()
    }

    /// Adds (or replaces) the file at `path` (no leading `/`).
    pub fn insert(&mut self, path: &str, data: Vec<u8>, mtime: u64) {
        let info = FileInfo {
            size: data.len() as u64,
            mtime,
            data_offset: self.next_offset,
        };
        self.next_offset += data.len() as u64 + 512;
        self.files
            .insert(String::from(path.trim_matches('/')), (info, data));
    }

    /// The bytes at `data_offset .. data_offset + len` of the file whose data
    /// starts at or before `data_offset`; `None` outside every file.
    pub fn read(&self, data_offset: u64, len: u64) -> Option<&[u8]> {
        self.files.values().find_map(|(info, data)| {
            let start = data_offset.checked_sub(info.data_offset)?;
            let end = start.checked_add(len)?;
            if end > info.size {
                return None;
            }
            Some(&data[start as usize..end as usize])
        })
    }
}

/// Normalizes as the tar store does: no empty or `.` segments.
fn normalize(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(seg);
    }
    out
}

impl Site for MemSite {
    fn lookup(&self, path: &str) -> Resource {
        let path = normalize(path);
        if let Some((info, _)) = self.files.get(&path) {
            return Resource::File(*info);
        }
        if path.is_empty() {
            return Resource::Directory;
        }
        let mut prefix = path;
        prefix.push('/');
        match self.files.range(prefix.clone()..).next() {
            Some((k, _)) if k.starts_with(&prefix) => Resource::Directory,
            _ => Resource::Missing,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn mem_site_lookups() {
        let mut s = MemSite::new();
        s.insert("a/b.txt", b"hello".to_vec(), 7);
        s.insert("c", b"xy".to_vec(), 8);
        assert_eq!(s.lookup(""), Resource::Directory);
        assert_eq!(s.lookup("a"), Resource::Directory);
        assert_eq!(s.lookup("a/"), Resource::Directory);
        assert_eq!(s.lookup("./a//b.txt"), s.lookup("a/b.txt"));
        let Resource::File(b) = s.lookup("a/b.txt") else {
            panic!()
        };
        assert_eq!((b.size, b.mtime, b.data_offset), (5, 7, 0));
        let Resource::File(c) = s.lookup("c") else {
            panic!()
        };
        assert_eq!(c.data_offset, 5 + 512);
        assert_eq!(s.lookup("a/b"), Resource::Missing);
        assert_eq!(s.lookup("b"), Resource::Missing);
        assert_eq!(s.read(1, 3), Some(&b"ell"[..]));
        assert_eq!(s.read(517, 2), Some(&b"xy"[..]));
        assert_eq!(s.read(3, 3), None);
    }
}
