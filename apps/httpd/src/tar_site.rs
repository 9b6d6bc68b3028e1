//! The tar store as the HTTP core's [`Site`].
//!
//! A regular file is a [`Resource::File`] with its size, mtime and data
//! offset (the ETag's parts, and where the server reads); a directory,
//! explicit or implied by a path under it, is a [`Resource::Directory`];
//! symlinks, hard-link-less oddities (devices, FIFOs) and missing paths are
//! [`Resource::Missing`]: httpd serves regular files only and never follows
//! a link.

use ringlet_storage::tar::TarStore;

use crate::http::{FileInfo, Resource, Site};

impl<D> Site for TarStore<D> {
    fn lookup(&self, path: &str) -> Resource {
        match TarStore::lookup(self, path) {
            Some(entry) if entry.is_file() => Resource::File(FileInfo {
                size: entry.size(),
                mtime: entry.mtime(),
                data_offset: entry.data_offset(),
            }),
            Some(entry) if entry.is_dir() => Resource::Directory,
            _ => Resource::Missing,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::pack::pack_files;
    use ringlet_storage::MemDevice;

    #[test]
    fn tar_entries_become_resources() {
        let tar = pack_files(&[
            ("index.html", &b"<p>hi</p>"[..], 100),
            ("sub/a.txt", &b"aaa"[..], 200),
        ])
        .unwrap();
        let dev = MemDevice::from_bytes(512, tar.clone());
        let store = ringlet_executor::Executor::new_std()
            .block_on(TarStore::open(dev))
            .unwrap();
        let Resource::File(f) = Site::lookup(&store, "sub/a.txt") else {
            panic!()
        };
        assert_eq!((f.size, f.mtime), (3, 200));
        let at = f.data_offset as usize;
        assert_eq!(&tar[at..at + 3], b"aaa");
        assert_eq!(Site::lookup(&store, "sub"), Resource::Directory);
        assert_eq!(Site::lookup(&store, ""), Resource::Directory);
        assert_eq!(Site::lookup(&store, "nope"), Resource::Missing);
        assert_eq!(Site::lookup(&store, "sub/../index.html"), Resource::Missing);
    }
}
