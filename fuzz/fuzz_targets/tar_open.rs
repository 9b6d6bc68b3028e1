//! storage's tar store over an arbitrary archive: `TarStore::open` on a
//! `MemDevice` holding the input, then lookups, listings and reads of every
//! entry.
//!
//! Input: `[flags, fault, archive...]`. `flags` bit 0 rewrites the
//! checksum of every non-zero 512-byte block so that headers get past the
//! checksum (bit clear: checksums as given); bit 1 picks 4096-byte sectors
//! instead of 512; bit 2 opens with small `TarLimits` (8 entries, 64-byte
//! paths, 256 index bytes, 512-byte extensions). `fault` non-zero makes
//! reads touching sector `fault - 1` fail with an I/O error.
//!
//! Checked for every input:
//! - nothing panics; an open error is a `TarOpenError` with a message, and
//!   `Read(_)` only when a fault was injected (every read the store makes
//!   lies inside the device, or `MemDevice` would refuse it);
//! - the index stays within its limits; every path is normalized (no
//!   leading or trailing `/`, no empty, `.` or `..` component), found by
//!   `lookup` (also as `/path` and `./path`), and has every parent as a
//!   directory; `list` of a directory gives exactly its direct children;
//!   `len`/`is_empty` agree with `entries`;
//! - a file's data lies inside the device, after its header, block-aligned;
//!   `read_at` gives exactly the device's bytes at any offset (fewer at the
//!   end, none past it), or the injected fault as `TarReadError::Read`; a
//!   non-file is `NotAFile`.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use ringlet_storage::block::ReadError;
use ringlet_storage::tar::{EntryKind, TarLimits, TarOpenError, TarReadError, TarStore};
use ringlet_storage::{Fault, FaultKind, FaultOn, MemDevice};

/// Tar's block size.
const BLOCK: usize = 512;
/// Polls a `MemDevice` future may need (it has no latency: one suffices).
const POLLS_MAX: usize = 4;

/// Runs a future that completes without waiting (a `MemDevice` without
/// latency never waits).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..POLLS_MAX {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("a MemDevice future did not complete");
}

/// Writes a valid checksum into every block that is not all zeros.
fn fix_checksums(image: &mut [u8]) {
    for block in image.chunks_exact_mut(BLOCK) {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    }
}

fn normalized(path: &str) -> bool {
    path.is_empty()
        || path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, fault], archive)) = data.split_first_chunk::<2>() else {
        return;
    };
    let sector_size: u32 = if flags & 2 != 0 { 4096 } else { 512 };
    let limits = if flags & 4 != 0 {
        TarLimits {
            entries_max: 8,
            path_bytes_max: 64,
            index_bytes_max: 256,
            extension_bytes_max: 512,
        }
    } else {
        TarLimits::default()
    };
    let mut image = archive.to_vec();
    image.resize(image.len().next_multiple_of(BLOCK), 0);
    if flags & 1 != 0 {
        fix_checksums(&mut image);
    }
    let dev = MemDevice::from_bytes(sector_size, image.clone());
    // The device's bytes (zero-padded to a whole sector).
    let bytes = dev.to_vec();
    let faulted = fault != 0;
    if faulted {
        let s = u64::from(fault - 1);
        dev.inject(Fault::new(FaultOn::Read, s..s + 1, FaultKind::Io));
    }

    let store = match ready(TarStore::open_with_limits(dev, limits)) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let TarOpenError::Read(r) = e {
                assert!(faulted, "open read outside the device: {r:?}");
                assert_eq!(r, ReadError::Io);
            }
            return;
        }
    };

    let entries: Vec<_> = store.entries().collect();
    assert_eq!(store.len(), entries.len());
    assert!(entries.len() <= limits.entries_max.max(1));
    assert_eq!(store.is_empty(), entries.len() == 1);
    assert_eq!(entries[0].path(), "", "the root comes first");
    assert!(entries[0].is_dir());
    let path_bytes: usize = entries
        .iter()
        .map(|e| e.path().len() + e.link_target().map_or(0, str::len))
        .sum();
    assert!(path_bytes <= limits.index_bytes_max);

    for e in &entries {
        let path = e.path();
        assert!(normalized(path), "unnormalized path {path:?}");
        let found = store.lookup(path).expect("an entry's own path");
        assert_eq!((found.path(), found.kind()), (path, e.kind()));
        for alias in [format!("/{path}"), format!("./{path}/"), format!("{path}//")] {
            assert_eq!(store.lookup(&alias).map(|f| f.path()), Some(path), "{alias:?}");
        }
        assert!(store.lookup(&format!("{path}/../x")).is_none());
        // Parents are directories.
        let mut parent = path;
        while let Some((p, _)) = parent.rsplit_once('/') {
            assert!(store.lookup(p).is_some_and(|d| d.is_dir()), "{p:?} of {path:?}");
            parent = p;
        }
        if !path.is_empty() {
            assert!(store.lookup("").unwrap().is_dir());
        }
        assert_eq!(e.name(), path.rsplit('/').next().unwrap());

        match e.kind() {
            EntryKind::Directory => {
                assert_eq!(e.size(), 0);
                let children: Vec<_> = store.list(path).expect("a directory lists").collect();
                let want = entries
                    .iter()
                    .filter(|c| {
                        !c.path().is_empty()
                            && match c.path().rsplit_once('/') {
                                Some((p, _)) => p == path,
                                None => path.is_empty(),
                            }
                    })
                    .count();
                assert_eq!(children.len(), want, "list of {path:?}");
                for c in children {
                    let (p, n) = c.path().rsplit_once('/').unwrap_or(("", c.path()));
                    assert_eq!(p, path);
                    assert_eq!(n, c.name());
                }
            }
            EntryKind::Symlink => {
                assert!(e.link_target().is_some());
                assert_eq!(e.size(), 0);
            }
            EntryKind::File => {}
            _ => assert_eq!(e.size(), 0, "only files have a size"),
        }
        if !e.is_dir() {
            assert!(store.list(path).is_err());
        }

        let mut buf = [0u8; 700];
        if !e.is_file() {
            assert_eq!(ready(store.read_at(*e, 0, &mut buf)), Err(TarReadError::NotAFile));
            continue;
        }
        let (off, size) = (e.data_offset(), e.size());
        let end = off.checked_add(size).expect("data end fits");
        assert!(end <= bytes.len() as u64, "{path:?}: data {off}+{size} past the device");
        assert!(off >= BLOCK as u64 && off % BLOCK as u64 == 0, "{path:?}: data at {off}");
        for at in [0, 1, size / 2, size.saturating_sub(700), size.saturating_sub(1), size, size + 5] {
            match ready(store.read_at(*e, at, &mut buf)) {
                Ok(n) => {
                    let want = size.saturating_sub(at).min(buf.len() as u64) as usize;
                    assert_eq!(n, want, "{path:?}: read at {at}");
                    if n > 0 {
                        let from = (off + at) as usize;
                        assert_eq!(&buf[..n], &bytes[from..from + n], "{path:?}: bytes at {at}");
                    }
                }
                Err(TarReadError::Read(r)) => {
                    assert!(faulted, "{path:?}: read at {at} failed: {r:?}");
                    assert_eq!(r, ReadError::Io);
                }
                Err(other) => panic!("{path:?}: read at {at}: {other:?}"),
            }
        }
    }
});
