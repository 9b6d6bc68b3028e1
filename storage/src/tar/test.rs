//! Tests of the tar store over generated archives: the `tar` crate and the
//! system `tar` write them, the `tar` crate reads them back as a cross-check.

use super::header::test::{block, fix_checksum};
use super::*;
use crate::block::{BlockInfo, FlushError, WriteError};
use crate::bytes::AlignedBuf;
use crate::mem::MemDevice;
use futures::executor::block_on;
use std::format;
use std::string::ToString;

/// Deterministic file contents.
fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7) ^ (i >> 8)) as u8)
        .collect()
}

fn gnu_header(size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o640);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(kind);
    h
}

/// A PAX 'x' header block plus its data, padded.
fn pax_block(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while format!("{len}").len() + body != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut out = block(b"PaxHeaders/x", data.len() as u64, b'x').to_vec();
    out.extend_from_slice(&data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn open(image: Vec<u8>) -> Result<TarStore<MemDevice>, TarOpenError> {
    block_on(TarStore::open(MemDevice::from_bytes(512, image)))
}

fn read_all<D: BlockDevice>(store: &TarStore<D>, path: &str) -> Vec<u8> {
    let e = store
        .lookup(path)
        .unwrap_or_else(|| panic!("{path} missing"));
    let mut buf = vec![0u8; e.size() as usize];
    let n = block_on(store.read_at(e, 0, &mut buf)).unwrap();
    assert_eq!(n, buf.len());
    buf
}

/// The odd names the store must handle.
fn odd_files() -> Vec<(String, Vec<u8>)> {
    let long: String = (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let deep = (1..=12)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    let long_dirs = format!("{}/{}/file.bin", "x".repeat(120), "y".repeat(140));
    let names = [
        "index.html".to_string(),
        "with space/and more spaces.txt".to_string(),
        "ünïcödé/日本語のファイル.txt".to_string(),
        long,
        format!("{deep}/leaf.txt"),
        long_dirs,
        "empty".to_string(),
        "dir/empty-too".to_string(),
        "dir/sub/sector.bin".to_string(),
        "-dash and 'quote' & \"dq\".txt".to_string(),
    ];
    let sizes = [1000usize, 1, 512, 513, 4095, 70_000, 0, 0, 512 * 9, 12];
    names
        .into_iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (n, s))| (n, content(i, s)))
        .collect()
}

fn build_gnu(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut d = gnu_header(0, tar::EntryType::Directory);
    b.append_data(&mut d, "dir/", std::io::empty()).unwrap();
    for (name, data) in files {
        let mut h = gnu_header(data.len() as u64, tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Checks the store against the `tar` crate's own reading of the image.
fn cross_check(image: &[u8], store: &TarStore<MemDevice>) -> usize {
    let mut ar = tar::Archive::new(image);
    let mut seen = 0;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if e.header().entry_type().is_file() {
            let ours = store
                .lookup(&path)
                .unwrap_or_else(|| panic!("{path} not in index"));
            let mut want = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut want).unwrap();
            assert_eq!(ours.size(), want.len() as u64, "{path}");
            assert_eq!(read_all(store, &path), want, "{path}");
            assert_eq!(ours.mode(), e.header().mode().unwrap(), "{path}");
            seen += 1;
        }
    }
    seen
}

#[test]
fn gnu_archive_with_odd_names() {
    let files = odd_files();
    let image = build_gnu(&files);
    let store = open(image.clone()).unwrap();
    for (name, data) in &files {
        assert_eq!(&read_all(&store, name), data, "{name}");
        let e = store.lookup(name).unwrap();
        assert_eq!(e.mode(), 0o640);
        assert_eq!(e.mtime(), 1_700_000_000);
        assert!(e.is_file());
    }
    assert_eq!(cross_check(&image, &store), files.len());
    // The 300-character name needed a GNU 'L' header.
    assert!(image.windows(13).any(|w| w == b"././@LongLink"));
}

#[test]
fn directories_explicit_and_implicit() {
    let store = open(build_gnu(&odd_files())).unwrap();
    let root: Vec<&str> = store.list("/").unwrap().map(|e| e.name()).collect();
    assert!(root.contains(&"index.html"));
    assert!(root.contains(&"dir"));
    assert!(root.contains(&"d1"));
    assert!(!root.iter().any(|n| n.contains('/')), "{root:?}");
    let dir: Vec<(&str, bool)> = store
        .list("dir")
        .unwrap()
        .map(|e| (e.name(), e.is_dir()))
        .collect();
    assert_eq!(dir, [("empty-too", false), ("sub", true)]);
    // dir has a header (mode 0o640 from gnu_header); dir/sub is implicit.
    assert_eq!(store.lookup("dir").unwrap().mode(), 0o640);
    assert_eq!(store.lookup("dir/sub").unwrap().mode(), 0o755);
    assert_eq!(
        store.lookup("d1/d2/d3").unwrap().kind(),
        EntryKind::Directory
    );
    let deep = store
        .list("d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12")
        .unwrap()
        .count();
    assert_eq!(deep, 1);
    assert_eq!(
        store.list("index.html").err(),
        Some(ListError::NotADirectory)
    );
    assert_eq!(store.list("nope").err(), Some(ListError::NotFound));
    assert!(store.lookup("").unwrap().is_dir());
    assert_eq!(
        block_on(store.read_at(store.lookup("dir").unwrap(), 0, &mut [0; 4])),
        Err(TarReadError::NotAFile)
    );
}

#[test]
fn lookup_normalizes_and_refuses_dotdot() {
    let store = open(build_gnu(&odd_files())).unwrap();
    for p in [
        "dir/sub/sector.bin",
        "/dir/sub/sector.bin",
        "./dir/sub/sector.bin",
        "dir//sub/./sector.bin",
        "//./dir/sub/sector.bin/",
    ] {
        assert_eq!(
            store.lookup(p).map(|e| e.path()),
            Some("dir/sub/sector.bin"),
            "{p}"
        );
    }
    assert!(store.lookup("dir/../index.html").is_none());
    assert!(store.lookup("../index.html").is_none());
    assert!(store.lookup("index.htm").is_none());
    assert_eq!(store.lookup("/").unwrap().path(), "");
    assert_eq!(store.lookup(".").unwrap().path(), "");
}

#[test]
fn read_any_byte_range() {
    let files = odd_files();
    let image = build_gnu(&files);
    // On a 4096-byte-sector device needing aligned buffers, files start at
    // 512-byte offsets inside sectors: every read goes through read_bytes' paths.
    let mut padded = image.clone();
    padded.resize(image.len().next_multiple_of(4096), 0);
    let dev = MemDevice::from_bytes(4096, padded).with_buf_align(4096);
    let store = block_on(TarStore::open(dev)).unwrap();
    let (name, data) = &files[5]; // 70 000 bytes
    let e = store.lookup(name).unwrap();
    for (off, len) in [
        (0, 1),
        (1, 4096),
        (4095, 2),
        (511, 8193),
        (69_999, 1),
        (69_999, 100),
        (70_000, 10),
        (80_000, 1),
        (0, 70_000),
        (12_345, 50_000),
    ] {
        let mut buf = vec![0u8; len];
        let n = block_on(store.read_at(e, off, &mut buf)).unwrap();
        let want = &data[(off as usize).min(data.len())..(off as usize + len).min(data.len())];
        assert_eq!(&buf[..n], want, "{off}+{len}");
        let mut a = AlignedBuf::new(len, 4096);
        let n = block_on(store.read_at(e, off, a.as_mut_slice())).unwrap();
        assert_eq!(&a.as_slice()[..n], want, "aligned {off}+{len}");
    }
}

#[test]
fn many_reads_in_flight() {
    let files = odd_files();
    let dev = MemDevice::from_bytes(512, build_gnu(&files)).with_latency(2);
    let store = block_on(TarStore::open(dev)).unwrap();
    let reads = files.iter().enumerate().map(|(i, (name, data))| {
        let store = &store;
        async move {
            let e = store.lookup(name).unwrap();
            let off = (i as u64 * 37) % (data.len() as u64 + 1);
            let mut buf = vec![0u8; 3000];
            let n = store.read_at(e, off, &mut buf).await.unwrap();
            assert_eq!(
                &buf[..n],
                &data[off as usize..(off as usize + 3000).min(data.len())],
                "{name}"
            );
        }
    });
    block_on(futures::future::join_all(reads));
    assert!(
        store.device().stats().max_in_flight > 4,
        "{:?}",
        store.device().stats()
    );
}

#[test]
fn pax_path_linkpath_size_mtime() {
    let long = format!("pax/{}/ünïcödé name.txt", "p".repeat(200));
    let data = content(9, 777);
    let mut image = pax_block(&[
        ("path", long.as_bytes()),
        ("mtime", b"1234567890.5"),
        ("size", b"777"),
    ]);
    // The ustar header's own size field says 0: PAX size must win.
    image.extend_from_slice(&block(b"truncated-name", 0, b'0'));
    image.extend_from_slice(&data);
    image.resize(image.len().next_multiple_of(512), 0);
    image.extend_from_slice(&pax_block(&[("linkpath", long.as_bytes())]));
    image.extend_from_slice(&block(b"link", 0, b'2'));
    // A global header is read past without applying it.
    let mut g = pax_block(&[("path", b"ignored")]);
    g[156] = b'g';
    fix_checksum((&mut g[..512]).try_into().unwrap());
    image.extend_from_slice(&g);
    image.extend_from_slice(&block(b"after-global", 3, b'0'));
    image.extend_from_slice(&[b'x'; 512]);
    image.extend_from_slice(&[0; 1024]);
    let store = open(image.clone()).unwrap();
    let e = store.lookup(&long).unwrap();
    assert_eq!(e.size(), 777);
    assert_eq!(e.mtime(), 1_234_567_890);
    assert_eq!(read_all(&store, &long), data);
    let l = store.lookup("link").unwrap();
    assert_eq!(l.kind(), EntryKind::Symlink);
    assert_eq!(l.link_target(), Some(long.as_str()));
    assert_eq!(read_all(&store, "after-global"), b"xxx");
    assert!(store.lookup("ignored").is_none());
    assert!(store.lookup("truncated-name").is_none());
    assert_eq!(cross_check(&image, &store), 2);
}

#[test]
fn links_and_duplicates_last_wins() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = gnu_header(5, tar::EntryType::Regular);
    b.append_data(&mut h, "a.txt", &b"first"[..]).unwrap();
    let mut h = gnu_header(0, tar::EntryType::Link);
    b.append_link(&mut h, "hard", "a.txt").unwrap();
    let mut h = gnu_header(0, tar::EntryType::Symlink);
    b.append_link(&mut h, "soft", "../outside/is/fine/as/a/target")
        .unwrap();
    let mut h = gnu_header(6, tar::EntryType::Regular);
    b.append_data(&mut h, "./a.txt", &b"second"[..]).unwrap();
    let store = open(b.into_inner().unwrap()).unwrap();
    // Last wins for a.txt; the hard link keeps the data it was made from.
    assert_eq!(read_all(&store, "a.txt"), b"second");
    assert_eq!(read_all(&store, "hard"), b"first");
    assert!(store.lookup("hard").unwrap().is_file());
    assert_eq!(
        store.lookup("soft").unwrap().link_target(),
        Some("../outside/is/fine/as/a/target")
    );
    assert_eq!(store.lookup("soft").unwrap().size(), 0);
    assert_eq!(store.len(), 4); // root, a.txt, hard, soft
}

#[test]
#[cfg(feature = "std")]
fn system_tar_formats() {
    let dir = std::env::temp_dir().join(format!("ringlet-tar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = odd_files();
    for (name, data) in files
        .iter()
        .filter(|(n, _)| n.split('/').all(|c| c.len() <= 255))
    {
        let p = dir.join("site").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    for format in ["gnu", "pax", "ustar"] {
        let out = dir.join(format!("{format}.tar"));
        let mut cmd = std::process::Command::new("tar");
        cmd.arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(dir.join("site"));
        // ustar cannot hold the 300-character name: leave it out there.
        let names: Vec<&str> = files
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| n.split('/').all(|c| c.len() <= 255))
            .filter(|n| {
                format != "ustar" || n.len() < 250 && n.rsplit('/').next().unwrap().len() <= 100
            })
            .collect();
        cmd.args(names.iter().map(|n| format!("./{n}")));
        let status = cmd.status().expect("the system tar");
        assert!(status.success(), "tar --format={format}");
        let dev = crate::file::FileDevice::open(&out, 512, true).unwrap();
        let store = block_on(TarStore::open(dev)).unwrap_or_else(|e| panic!("{format}: {e}"));
        for n in &names {
            let want = &files.iter().find(|(f, _)| f == n).unwrap().1;
            assert_eq!(&read_all(&store, n), want, "{format}: {n}");
        }
        let count = store.entries().filter(|e| e.is_file()).count();
        assert_eq!(count, names.len(), "{format}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A device holding a one-big-file archive whose data region is
/// synthesized, so no test writes 150 MiB: header, data (computed from the
/// offset), then a trailing small file and the end marker.
struct SynthDevice {
    head: Vec<u8>,
    data_len: u64,
    tail: Vec<u8>,
}

const BIG: u64 = 150 * 1024 * 1024 + 123;

fn synth_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

impl SynthDevice {
    fn new() -> SynthDevice {
        let mut h = gnu_header(BIG, tar::EntryType::Regular);
        h.set_path("big/huge.bin").unwrap();
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        let mut t = gnu_header(4, tar::EntryType::Regular);
        b.append_data(&mut t, "after.txt", &b"tail"[..]).unwrap();
        SynthDevice {
            head: h.as_bytes().to_vec(),
            data_len: BIG.next_multiple_of(512),
            tail: b.into_inner().unwrap(),
        }
    }
    fn byte(&self, at: u64) -> u8 {
        let h = self.head.len() as u64;
        if at < h {
            self.head[at as usize]
        } else if at < h + self.data_len {
            let off = at - h;
            if off < BIG {
                synth_byte(off)
            } else {
                0
            }
        } else {
            self.tail[(at - h - self.data_len) as usize]
        }
    }
}

impl BlockDevice for SynthDevice {
    fn info(&self) -> BlockInfo {
        let len = self.head.len() as u64 + self.data_len + self.tail.len() as u64;
        BlockInfo {
            sector_size: 512,
            sectors: len / 512,
            read_only: true,
            buf_align: 1,
        }
    }
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        crate::block::check_request(&self.info(), sector, buf.len(), 0)?;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.byte(sector * 512 + i as u64);
        }
        Ok(())
    }
    async fn write(&self, _: u64, _: &[u8]) -> Result<(), WriteError> {
        Err(WriteError::ReadOnly)
    }
    async fn flush(&self) -> Result<(), FlushError> {
        Ok(())
    }
}

#[test]
fn file_larger_than_100_mib_sparse() {
    let store = block_on(TarStore::open(SynthDevice::new())).unwrap();
    let e = store.lookup("big/huge.bin").unwrap();
    assert_eq!(e.size(), BIG);
    for off in [0, 1, 511, 100 << 20, BIG - 4096, BIG - 1] {
        let mut buf = vec![0u8; 8192];
        let n = block_on(store.read_at(e, off, &mut buf)).unwrap();
        assert_eq!(n as u64, (BIG - off).min(8192));
        for (i, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, synth_byte(off + i as u64), "at {}", off + i as u64);
        }
    }
    assert_eq!(read_all(&store, "after.txt"), b"tail");
}

// ---- malformed archives ----

fn one_file(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = block(name, data.len() as u64, b'0').to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(512) + 1024, 0);
    v
}

#[test]
fn malformed_bad_checksum() {
    let mut img = one_file(b"f", b"abc");
    img[0] = b'g';
    assert_eq!(
        open(img).err(),
        Some(TarOpenError::BadChecksum { offset: 0 })
    );
}

#[test]
fn malformed_truncated() {
    // The size claims more data than the device has.
    let mut img = block(b"f", 5000, b'0').to_vec();
    img.extend_from_slice(&[1; 1024]);
    assert_eq!(open(img).err(), Some(TarOpenError::Truncated { offset: 0 }));
    // An extension header with nothing after it.
    let img = pax_block(&[("path", b"x")]);
    assert_eq!(
        open(img).err(),
        Some(TarOpenError::Truncated { offset: 1024 })
    );
    let mut img = pax_block(&[("path", b"x")]);
    img.extend_from_slice(&[0; 1024]);
    assert_eq!(
        open(img).err(),
        Some(TarOpenError::Truncated { offset: 1024 })
    );
    // A size near u64::MAX does not wrap.
    let mut b = block(b"f", 0, b'0');
    b[124..128].copy_from_slice(&[0x80, 0, 0, 0]);
    b[128..136].copy_from_slice(&[0xff; 8]);
    fix_checksum(&mut b);
    let mut img = b.to_vec();
    img.extend_from_slice(&[0; 1024]);
    assert_eq!(open(img).err(), Some(TarOpenError::Truncated { offset: 0 }));
}

#[test]
fn malformed_numbers() {
    let mut b = block(b"f", 0, b'0');
    b[124..136].copy_from_slice(b"00000000009\0");
    fix_checksum(&mut b);
    assert_eq!(
        open(b.to_vec()).err(),
        Some(TarOpenError::NonOctal {
            offset: 0,
            field: Field::Size
        })
    );
    let mut b = block(b"f", 0, b'0');
    b[136..148].copy_from_slice(b"7777777777777"[..12].try_into().unwrap());
    b[124] = 0x80;
    b[125] = 0x01; // base-256 with a bit above 64
    fix_checksum(&mut b);
    assert_eq!(
        open(b.to_vec()).err(),
        Some(TarOpenError::Oversized {
            offset: 0,
            field: Field::Size
        })
    );
    let mut img = pax_block(&[("size", b"12x")]);
    img.extend_from_slice(&one_file(b"f", b""));
    assert_eq!(
        open(img).err(),
        Some(TarOpenError::NonOctal {
            offset: 0,
            field: Field::PaxSize
        })
    );
    let mut img = pax_block(&[("path", b"ok")]);
    img[512] = b'9'; // record length now wrong
    img.extend_from_slice(&one_file(b"f", b""));
    assert_eq!(open(img).err(), Some(TarOpenError::BadPax { offset: 0 }));
}

#[test]
fn malformed_paths() {
    assert_eq!(
        open(one_file(b"a/../../etc/passwd", b"x")).err(),
        Some(TarOpenError::UnsafePath { offset: 0 })
    );
    assert_eq!(
        open(one_file(b"bad\xff\xfe", b"x")).err(),
        Some(TarOpenError::NonUtf8 { offset: 0 })
    );
    // A file, then a file under it.
    let mut img = one_file(b"a", b"1");
    img.truncate(1024);
    img.extend_from_slice(&one_file(b"a/b", b"2"));
    assert_eq!(
        open(img).err(),
        Some(TarOpenError::PathConflict { offset: 1024 })
    );
    // A non-empty directory replaced by a file.
    let mut img = one_file(b"d/f", b"1");
    img.truncate(1024);
    img.extend_from_slice(&one_file(b"d", b"2"));
    assert_eq!(
        open(img).err(),
        Some(TarOpenError::PathConflict { offset: 1024 })
    );
    // An empty directory may be replaced by a file (last wins).
    let mut img = block(b"e/", 0, b'5').to_vec();
    img.extend_from_slice(&one_file(b"e", b"now a file"));
    assert_eq!(read_all(&open(img).unwrap(), "e"), b"now a file");
    // A hard link to nothing.
    let mut h = block(b"l", 0, b'1');
    h[157..163].copy_from_slice(b"absent");
    fix_checksum(&mut h);
    let mut img = h.to_vec();
    img.extend_from_slice(&[0; 1024]);
    assert_eq!(
        open(img).err(),
        Some(TarOpenError::BadHardLink { offset: 0 })
    );
}

#[test]
fn limits_are_enforced() {
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i}"), vec![i as u8; 10]))
        .collect();
    let image = build_gnu(&files);
    let dev = || MemDevice::from_bytes(512, image.clone());
    let limits = TarLimits {
        entries_max: 10,
        ..TarLimits::default()
    };
    assert_eq!(
        block_on(TarStore::open_with_limits(dev(), limits)).err(),
        Some(TarOpenError::TooManyEntries { max: 10 })
    );
    let limits = TarLimits {
        index_bytes_max: 30,
        ..TarLimits::default()
    };
    assert_eq!(
        block_on(TarStore::open_with_limits(dev(), limits)).err(),
        Some(TarOpenError::IndexTooLarge { max: 30 })
    );
    // 22 entries: root, dir, 20 files.
    let limits = TarLimits {
        entries_max: 22,
        ..TarLimits::default()
    };
    assert_eq!(
        block_on(TarStore::open_with_limits(dev(), limits))
            .unwrap()
            .len(),
        22
    );

    let long = build_gnu(&[("z".repeat(300), vec![1])]);
    let limits = TarLimits {
        path_bytes_max: 299,
        ..TarLimits::default()
    };
    assert_eq!(
        block_on(TarStore::open_with_limits(
            MemDevice::from_bytes(512, long.clone()),
            limits
        ))
        .err(),
        Some(TarOpenError::PathTooLong {
            offset: 512,
            len: 301
        })
    );
    let limits = TarLimits {
        path_bytes_max: 300,
        ..TarLimits::default()
    };
    assert!(block_on(TarStore::open_with_limits(
        MemDevice::from_bytes(512, long),
        limits
    ))
    .is_ok());

    let mut img = pax_block(&[("comment", &[b'c'; 2000])]);
    img.extend_from_slice(&one_file(b"f", b""));
    let limits = TarLimits {
        extension_bytes_max: 1024,
        ..TarLimits::default()
    };
    assert!(matches!(
        block_on(TarStore::open_with_limits(
            MemDevice::from_bytes(512, img),
            limits
        ))
        .err(),
        Some(TarOpenError::ExtensionTooLarge { offset: 0, .. })
    ));
}

#[test]
fn device_errors_surface() {
    let dev = MemDevice::from_bytes(512, build_gnu(&odd_files()));
    dev.inject(
        crate::mem::Fault::new(crate::mem::FaultOn::Read, 0..1, crate::mem::FaultKind::Io).times(1),
    );
    assert_eq!(
        block_on(TarStore::open(dev)).err(),
        Some(TarOpenError::Read(ReadError::Io))
    );
    let dev = MemDevice::from_bytes(512, build_gnu(&odd_files()));
    let store = block_on(TarStore::open(dev)).unwrap();
    store.device().inject(crate::mem::Fault::new(
        crate::mem::FaultOn::Read,
        0..u64::MAX,
        crate::mem::FaultKind::Io,
    ));
    let e = store.lookup("index.html").unwrap();
    assert_eq!(
        block_on(store.read_at(e, 0, &mut [0; 10])),
        Err(TarReadError::Read(ReadError::Io))
    );
}

#[test]
fn end_of_archive_forms() {
    // No end marker at all: the device ends on a header boundary.
    let mut img = block(b"f", 3, b'0').to_vec();
    img.extend_from_slice(&[b'z'; 512]);
    assert_eq!(read_all(&open(img).unwrap(), "f"), b"zzz");
    // One zero block, then junk: the junk is not read.
    let mut img = one_file(b"g", b"1");
    img.truncate(1536);
    img.extend_from_slice(&[0xAA; 512]);
    assert_eq!(open(img).unwrap().len(), 2);
    // Empty device: an empty archive.
    assert!(open(Vec::new()).unwrap().is_empty());
}

/// Small xorshift PRNG for the mutation test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_archives_never_panic() {
    let seed = 0x5EED_0001u64;
    std::eprintln!("seed {seed:#x}");
    let base = build_gnu(&odd_files());
    let mut rng = Rng(seed);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..1500 {
        let mut img = base.clone();
        for _ in 0..1 + rng.next() % 4 {
            // Mostly hit the headers, where parsing happens.
            let at = if rng.next().is_multiple_of(4) {
                (rng.next() % img.len() as u64) as usize
            } else {
                let hdrs: Vec<usize> = (0..img.len() / 512)
                    .filter(|i| {
                        header::parse((&img[i * 512..i * 512 + 512]).try_into().unwrap()).is_ok()
                    })
                    .collect();
                hdrs[(rng.next() % hdrs.len() as u64) as usize] * 512 + (rng.next() % 512) as usize
            };
            img[at] = rng.next() as u8;
            if rng.next().is_multiple_of(2) {
                // Re-checksum so the mutation reaches the field parsers.
                let h = at / 512 * 512;
                fix_checksum((&mut img[h..h + 512]).try_into().unwrap());
            }
        }
        match open(img) {
            Ok(store) => {
                ok += 1;
                for e in store.entries().filter(|e| e.is_file()) {
                    let mut buf = vec![0u8; (e.size() as usize).min(4096)];
                    block_on(store.read_at(e, 0, &mut buf)).unwrap();
                }
            }
            Err(_) => err += 1,
        }
    }
    std::eprintln!("mutations: {ok} opened, {err} refused");
    assert!(ok > 0 && err > 0);
}
