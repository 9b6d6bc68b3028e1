//! A read-only tar file store over a block device.
//!
//! [`TarStore::open`] reads every header of a tar archive (ustar, with GNU
//! long names `'L'`/`'K'` and PAX extended headers `path`, `linkpath`,
//! `size`, `mtime`) once and builds an in-memory index of paths; file data
//! stays on the device and [`TarStore::read_at`] reads any byte range of a
//! file on demand. The index is bounded by [`TarLimits`].
//!
//! # Paths
//!
//! Paths are normalized the same way in the archive and in lookups: leading
//! `/` and `./`, empty and `.` components and a trailing `/` are dropped, so
//! `./a//b/` and `/a/b` both name `a/b`; the root directory is `""` (also
//! `/` or `.`). A `..` component is refused: an archive containing one fails
//! to open ([`TarOpenError::UnsafePath`]) and a lookup with one finds
//! nothing. Paths must be UTF-8.
//!
//! Every parent directory of an entry exists in the index, whether or not the
//! archive has a header for it (an implicit directory has mode `0o755` and
//! mtime 0).
//!
//! # Duplicates
//!
//! When a path appears twice, **the last header wins**, as when GNU tar
//! extracts. A header that would put an entry under a non-directory, or
//! replace a directory that has entries with a non-directory, is refused
//! ([`TarOpenError::PathConflict`]).
//!
//! # Links
//!
//! A hard link becomes a regular file sharing its target's data (the target
//! must come earlier in the archive and be a regular file). A symbolic link
//! is kept as such with its target; lookups do not follow it.
//!
//! # End of archive
//!
//! The archive ends at the first all-zero block, or at the end of the device
//! when that falls on a header boundary.

pub mod header;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

use crate::block::{BlockDevice, ReadError};
use crate::bytes::read_bytes;
use header::{Field, HeaderError, TypeFlag, BLOCK};

/// Default bound on index entries (files, directories, links).
pub const ENTRIES_MAX: usize = 65_536;
/// Default bound on a path's length in bytes, before normalization.
pub const PATH_BYTES_MAX: usize = 4096;
/// Default bound on the index's string bytes (paths and link targets).
pub const INDEX_BYTES_MAX: usize = 8 << 20;
/// Default bound on one PAX extended header's data.
pub const EXTENSION_BYTES_MAX: usize = 64 * 1024;
/// Bytes of archive read at once while scanning headers.
pub const HEADER_WINDOW_BYTES: usize = 32 * 1024;

/// The bounds on what [`TarStore::open`] accepts; they bound its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TarLimits {
    /// Most entries in the index, implicit directories included.
    pub entries_max: usize,
    /// Longest path or link target, in bytes, before normalization.
    pub path_bytes_max: usize,
    /// Most bytes of paths and link targets in the index altogether.
    pub index_bytes_max: usize,
    /// Largest PAX extended header data.
    pub extension_bytes_max: usize,
}

impl Default for TarLimits {
    fn default() -> Self {
        TarLimits {
            entries_max: ENTRIES_MAX,
            path_bytes_max: PATH_BYTES_MAX,
            index_bytes_max: INDEX_BYTES_MAX,
            extension_bytes_max: EXTENSION_BYTES_MAX,
        }
    }
}

/// Why [`TarStore::open`] failed. `offset` is the byte offset of the header
/// block at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TarOpenError {
    /// The device failed to read.
    Read(ReadError),
    /// A header's checksum does not match its bytes.
    BadChecksum {
        /// Header offset.
        offset: u64,
    },
    /// A header, its data, or an extension's entry runs past the end of the device.
    Truncated {
        /// Header offset.
        offset: u64,
    },
    /// A numeric field is not an octal (or, in PAX, decimal) number.
    NonOctal {
        /// Header offset.
        offset: u64,
        /// Which field.
        field: Field,
    },
    /// A numeric field's value does not fit in 64 bits.
    Oversized {
        /// Header offset.
        offset: u64,
        /// Which field.
        field: Field,
    },
    /// A PAX extended header's records are malformed.
    BadPax {
        /// Header offset.
        offset: u64,
    },
    /// A PAX extended header is larger than [`TarLimits::extension_bytes_max`].
    ExtensionTooLarge {
        /// Header offset.
        offset: u64,
        /// Its size.
        len: u64,
    },
    /// A path or link target is longer than [`TarLimits::path_bytes_max`].
    PathTooLong {
        /// Header offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A path or link target is not UTF-8.
    NonUtf8 {
        /// Header offset.
        offset: u64,
    },
    /// A path has a `..` component.
    UnsafePath {
        /// Header offset.
        offset: u64,
    },
    /// A path lies under a non-directory, or replaces a non-empty directory
    /// with a non-directory.
    PathConflict {
        /// Header offset.
        offset: u64,
    },
    /// A hard link's target is not an earlier regular file.
    BadHardLink {
        /// Header offset.
        offset: u64,
    },
    /// More entries than [`TarLimits::entries_max`].
    TooManyEntries {
        /// The limit.
        max: usize,
    },
    /// More path bytes than [`TarLimits::index_bytes_max`].
    IndexTooLarge {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for TarOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TarOpenError::Read(e) => write!(f, "tar: {e}"),
            TarOpenError::BadChecksum { offset } => {
                write!(f, "tar: header at byte {offset}: checksum mismatch")
            }
            TarOpenError::Truncated { offset } => {
                write!(f, "tar: header at byte {offset}: archive is truncated")
            }
            TarOpenError::NonOctal { offset, field } => {
                write!(f, "tar: header at byte {offset}: {field} is not a number")
            }
            TarOpenError::Oversized { offset, field } => {
                write!(
                    f,
                    "tar: header at byte {offset}: {field} does not fit in 64 bits"
                )
            }
            TarOpenError::BadPax { offset } => {
                write!(f, "tar: header at byte {offset}: malformed PAX records")
            }
            TarOpenError::ExtensionTooLarge { offset, len } => {
                write!(
                    f,
                    "tar: header at byte {offset}: extended header of {len} bytes is too large"
                )
            }
            TarOpenError::PathTooLong { offset, len } => {
                write!(
                    f,
                    "tar: header at byte {offset}: path of {len} bytes is too long"
                )
            }
            TarOpenError::NonUtf8 { offset } => {
                write!(f, "tar: header at byte {offset}: path is not UTF-8")
            }
            TarOpenError::UnsafePath { offset } => {
                write!(f, "tar: header at byte {offset}: path contains '..'")
            }
            TarOpenError::PathConflict { offset } => {
                write!(
                    f,
                    "tar: header at byte {offset}: path conflicts with a non-directory"
                )
            }
            TarOpenError::BadHardLink { offset } => {
                write!(
                    f,
                    "tar: header at byte {offset}: hard link target is not an earlier file"
                )
            }
            TarOpenError::TooManyEntries { max } => {
                write!(f, "tar: more than {max} entries")
            }
            TarOpenError::IndexTooLarge { max } => {
                write!(f, "tar: paths take more than {max} bytes")
            }
        }
    }
}

impl core::error::Error for TarOpenError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TarOpenError::Read(e) => Some(e),
            _ => None,
        }
    }
}

impl TarOpenError {
    fn from_header(offset: u64, e: HeaderError) -> TarOpenError {
        match e {
            HeaderError::BadChecksum => TarOpenError::BadChecksum { offset },
            HeaderError::NonOctal(field) => TarOpenError::NonOctal { offset, field },
            HeaderError::Oversized(field) => TarOpenError::Oversized { offset, field },
        }
    }
}

/// Why [`TarStore::read_at`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TarReadError {
    /// The entry is not a regular file.
    NotAFile,
    /// The device failed to read.
    Read(ReadError),
}

impl fmt::Display for TarReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TarReadError::NotAFile => f.write_str("tar: not a regular file"),
            TarReadError::Read(e) => write!(f, "tar: {e}"),
        }
    }
}

impl core::error::Error for TarReadError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TarReadError::Read(e) => Some(e),
            TarReadError::NotAFile => None,
        }
    }
}

/// Why [`TarStore::list`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListError {
    /// No entry has that path (or the path has a `..`).
    NotFound,
    /// The entry is not a directory.
    NotADirectory,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListError::NotFound => "tar: no such directory",
            ListError::NotADirectory => "tar: not a directory",
        })
    }
}

impl core::error::Error for ListError {}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file (also a resolved hard link).
    File,
    /// A directory, from a header or implied by a path under it.
    Directory,
    /// A symbolic link; see [`Entry::link_target`].
    Symlink,
    /// Anything else (device node, FIFO, GNU sparse file ...), with its typeflag.
    Other(u8),
}

#[derive(Clone, Debug)]
struct Meta {
    kind: EntryKind,
    size: u64,
    data_offset: u64,
    mode: u32,
    mtime: u64,
    link: Option<Box<str>>,
}

impl Meta {
    fn implicit_dir() -> Meta {
        Meta {
            kind: EntryKind::Directory,
            size: 0,
            data_offset: 0,
            mode: 0o755,
            mtime: 0,
            link: None,
        }
    }
}

/// An entry of a [`TarStore`]: a view into its index.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    path: &'a str,
    meta: &'a Meta,
}

impl<'a> Entry<'a> {
    /// The normalized path (`""` for the root).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The last path component (`""` for the root).
    pub fn name(&self) -> &'a str {
        self.path.rsplit('/').next().unwrap_or("")
    }

    /// What it is.
    pub fn kind(&self) -> EntryKind {
        self.meta.kind
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.meta.kind == EntryKind::File
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.meta.kind == EntryKind::Directory
    }

    /// Size of a file's data in bytes (0 for other kinds).
    pub fn size(&self) -> u64 {
        if self.is_file() {
            self.meta.size
        } else {
            0
        }
    }

    /// Permission bits (and set-id/sticky bits) from the header.
    pub fn mode(&self) -> u32 {
        self.meta.mode
    }

    /// Modification time, seconds since the Unix epoch.
    pub fn mtime(&self) -> u64 {
        self.meta.mtime
    }

    /// A symbolic link's target, as stored (not normalized).
    pub fn link_target(&self) -> Option<&'a str> {
        self.meta.link.as_deref()
    }

    /// Byte offset of a file's data on the device (stable for the archive;
    /// usable in an ETag together with size and mtime).
    pub fn data_offset(&self) -> u64 {
        self.meta.data_offset
    }
}

/// Why a path was refused.
enum PathError {
    DotDot,
}

/// Normalizes a path into `out` (see the module docs).
fn normalize(raw: &str, out: &mut String) -> Result<(), PathError> {
    out.clear();
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(PathError::DotDot),
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    Ok(())
}

/// Extensions seen for the next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
    pax_mtime: Option<u64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none()
            && self.long_link.is_none()
            && self.pax_path.is_none()
            && self.pax_link.is_none()
            && self.pax_size.is_none()
            && self.pax_mtime.is_none()
    }
}

/// The index under construction, with its bounds.
struct Index {
    map: BTreeMap<Box<str>, Meta>,
    bytes: usize,
    limits: TarLimits,
}

impl Index {
    fn new(limits: TarLimits) -> Index {
        let mut map = BTreeMap::new();
        map.insert(Box::from(""), Meta::implicit_dir());
        Index {
            map,
            bytes: 0,
            limits,
        }
    }

    fn charge(&mut self, path: &str, meta: &Meta) -> Result<(), TarOpenError> {
        let add = path.len() + meta.link.as_deref().map_or(0, str::len);
        self.bytes += add;
        if self.bytes > self.limits.index_bytes_max {
            return Err(TarOpenError::IndexTooLarge {
                max: self.limits.index_bytes_max,
            });
        }
        if self.map.len() >= self.limits.entries_max {
            return Err(TarOpenError::TooManyEntries {
                max: self.limits.entries_max,
            });
        }
        Ok(())
    }

    fn has_children(&self, path: &str) -> bool {
        let mut prefix = String::from(path);
        if !path.is_empty() {
            prefix.push('/');
        }
        self.map
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .find(|(k, _)| !k.is_empty())
            .is_some_and(|(k, _)| k.starts_with(prefix.as_str()))
    }

    /// Inserts an entry (last wins), creating implicit parents.
    fn insert(&mut self, path: &str, meta: Meta, offset: u64) -> Result<(), TarOpenError> {
        // Parents.
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            match self.map.get(parent) {
                Some(m) if m.kind == EntryKind::Directory => {}
                Some(_) => return Err(TarOpenError::PathConflict { offset }),
                None => {
                    let m = Meta::implicit_dir();
                    self.charge(parent, &m)?;
                    self.map.insert(Box::from(parent), m);
                }
            }
            end += i + 1;
        }
        match self.map.get_mut(path) {
            Some(old) => {
                if path.is_empty() && meta.kind != EntryKind::Directory {
                    return Err(TarOpenError::PathConflict { offset });
                }
                if old.kind == EntryKind::Directory
                    && meta.kind != EntryKind::Directory
                    && self.has_children(path)
                {
                    return Err(TarOpenError::PathConflict { offset });
                }
                // Re-borrow after the children check.
                let old = self.map.get_mut(path).expect("present above");
                self.bytes -= old.link.as_deref().map_or(0, str::len);
                self.bytes += meta.link.as_deref().map_or(0, str::len);
                if self.bytes > self.limits.index_bytes_max {
                    return Err(TarOpenError::IndexTooLarge {
                        max: self.limits.index_bytes_max,
                    });
                }
                *old = meta;
            }
            None => {
                self.charge(path, &meta)?;
                self.map.insert(Box::from(path), meta);
            }
        }
        Ok(())
    }
}

/// Reads header blocks through a window of [`HEADER_WINDOW_BYTES`].
struct Window {
    buf: Vec<u8>,
    start: u64,
    len: usize,
}

impl Window {
    async fn block<D: BlockDevice + ?Sized>(
        &mut self,
        dev: &D,
        size: u64,
        pos: u64,
    ) -> Result<[u8; BLOCK], ReadError> {
        let have = pos >= self.start && pos + BLOCK as u64 <= self.start + self.len as u64;
        if !have {
            let len = (size - pos).min(self.buf.len() as u64) as usize;
            read_bytes(dev, pos, &mut self.buf[..len]).await?;
            self.start = pos;
            self.len = len;
        }
        let at = (pos - self.start) as usize;
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(&self.buf[at..at + BLOCK]);
        Ok(block)
    }
}

/// A read-only tar archive on a block device, indexed at open.
///
/// # Examples
///
/// ```
/// use ringlet_storage::{tar::TarStore, MemDevice};
/// // A one-file archive, built by hand: header, data, end marker.
/// let mut image = vec![0u8; 512 * 4];
/// image[..5].copy_from_slice(b"hello");
/// image[100..107].copy_from_slice(b"0000644");
/// image[124..135].copy_from_slice(b"00000000003");
/// image[156] = b'0';
/// image[148..156].copy_from_slice(b"        ");
/// let sum: u32 = image[..512].iter().map(|&b| u32::from(b)).sum();
/// image[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
/// image[512..515].copy_from_slice(b"hi\n");
///
/// futures::executor::block_on(async {
///     let store = TarStore::open(MemDevice::from_bytes(512, image)).await.unwrap();
///     let file = store.lookup("/hello").unwrap();
///     assert_eq!(file.size(), 3);
///     let mut buf = [0u8; 8];
///     let n = store.read_at(file, 1, &mut buf).await.unwrap();
///     assert_eq!(&buf[..n], b"i\n");
/// });
/// ```
#[derive(Debug)]
pub struct TarStore<D> {
    dev: D,
    index: BTreeMap<Box<str>, Meta>,
}

impl<D: BlockDevice> TarStore<D> {
    /// Opens the archive on `dev` with the default [`TarLimits`].
    ///
    /// # Errors
    ///
    /// See [`TarOpenError`].
    pub async fn open(dev: D) -> Result<TarStore<D>, TarOpenError> {
        Self::open_with_limits(dev, TarLimits::default()).await
    }

    /// Opens the archive on `dev`, bounded by `limits`.
    ///
    /// # Errors
    ///
    /// See [`TarOpenError`].
    pub async fn open_with_limits(dev: D, limits: TarLimits) -> Result<TarStore<D>, TarOpenError> {
        let size = dev.info().size_bytes();
        let mut index = Index::new(limits);
        let mut window = Window {
            buf: vec![0; HEADER_WINDOW_BYTES],
            start: 0,
            len: 0,
        };
        let mut pending = Pending::default();
        let mut norm = String::new();
        let mut pos = 0u64;
        loop {
            let offset = pos;
            if size - pos < BLOCK as u64 {
                // End of the device at a header boundary.
                if !pending.is_empty() {
                    return Err(TarOpenError::Truncated { offset });
                }
                break;
            }
            let block = window
                .block(&dev, size, pos)
                .await
                .map_err(TarOpenError::Read)?;
            if header::is_zero_block(&block) {
                if !pending.is_empty() {
                    return Err(TarOpenError::Truncated { offset });
                }
                break;
            }
            let h = header::parse(&block).map_err(|e| TarOpenError::from_header(offset, e))?;
            let data_offset = offset + BLOCK as u64;
            let data_size = match h.typeflag {
                TypeFlag::PaxLocal
                | TypeFlag::PaxGlobal
                | TypeFlag::GnuLongName
                | TypeFlag::GnuLongLink => h.size,
                _ => pending.pax_size.unwrap_or(h.size),
            };
            let next = data_size
                .checked_next_multiple_of(BLOCK as u64)
                .and_then(|padded| data_offset.checked_add(padded))
                .filter(|&next| next <= size)
                .ok_or(TarOpenError::Truncated { offset })?;
            match h.typeflag {
                TypeFlag::GnuLongName | TypeFlag::GnuLongLink => {
                    // The data is the name plus a NUL.
                    if h.size > limits.path_bytes_max as u64 + 1 {
                        return Err(TarOpenError::PathTooLong {
                            offset,
                            len: h.size,
                        });
                    }
                    let mut name = vec![0u8; h.size as usize];
                    read_bytes(&dev, data_offset, &mut name)
                        .await
                        .map_err(TarOpenError::Read)?;
                    let len = header::trim_nul(&name).len();
                    name.truncate(len);
                    if h.typeflag == TypeFlag::GnuLongName {
                        pending.long_name = Some(name);
                    } else {
                        pending.long_link = Some(name);
                    }
                }
                TypeFlag::PaxLocal | TypeFlag::PaxGlobal => {
                    if h.size > limits.extension_bytes_max as u64 {
                        return Err(TarOpenError::ExtensionTooLarge {
                            offset,
                            len: h.size,
                        });
                    }
                    let mut data = vec![0u8; h.size as usize];
                    read_bytes(&dev, data_offset, &mut data)
                        .await
                        .map_err(TarOpenError::Read)?;
                    let pax = header::parse_pax(&data).map_err(|e| match e {
                        header::PaxError::BadNumber(field) => {
                            TarOpenError::NonOctal { offset, field }
                        }
                        _ => TarOpenError::BadPax { offset },
                    })?;
                    // Global headers are validated but not applied.
                    if h.typeflag == TypeFlag::PaxLocal {
                        if let Some(p) = pax.path {
                            pending.pax_path = Some(p.to_vec());
                        }
                        if let Some(p) = pax.linkpath {
                            pending.pax_link = Some(p.to_vec());
                        }
                        pending.pax_size = pax.size.or(pending.pax_size);
                        pending.pax_mtime = pax.mtime.or(pending.pax_mtime);
                    }
                }
                _ => {
                    let p = core::mem::take(&mut pending);
                    let raw_path: Vec<u8>;
                    let path_bytes: &[u8] = match (&p.pax_path, &p.long_name) {
                        (Some(path), _) | (None, Some(path)) => path,
                        (None, None) if !h.prefix.is_empty() => {
                            raw_path = [h.prefix, b"/", h.name].concat();
                            &raw_path
                        }
                        (None, None) => h.name,
                    };
                    let link_bytes: &[u8] = match (&p.pax_link, &p.long_link) {
                        (Some(l), _) | (None, Some(l)) => l,
                        (None, None) => h.linkname,
                    };
                    for bytes in [path_bytes, link_bytes] {
                        if bytes.len() > limits.path_bytes_max {
                            return Err(TarOpenError::PathTooLong {
                                offset,
                                len: bytes.len() as u64,
                            });
                        }
                    }
                    let path = core::str::from_utf8(path_bytes)
                        .map_err(|_| TarOpenError::NonUtf8 { offset })?;
                    let link = core::str::from_utf8(link_bytes)
                        .map_err(|_| TarOpenError::NonUtf8 { offset })?;
                    normalize(path, &mut norm)
                        .map_err(|PathError::DotDot| TarOpenError::UnsafePath { offset })?;
                    let mut meta = Meta {
                        kind: EntryKind::File,
                        size: data_size,
                        data_offset,
                        mode: h.mode,
                        mtime: p.pax_mtime.unwrap_or(h.mtime),
                        link: None,
                    };
                    match h.typeflag {
                        TypeFlag::File => {}
                        TypeFlag::Directory => {
                            meta.kind = EntryKind::Directory;
                            meta.size = 0;
                        }
                        TypeFlag::Symlink => {
                            meta.kind = EntryKind::Symlink;
                            meta.size = 0;
                            meta.link = Some(Box::from(link));
                        }
                        TypeFlag::HardLink => {
                            let mut target = String::new();
                            normalize(link, &mut target)
                                .map_err(|PathError::DotDot| TarOpenError::UnsafePath { offset })?;
                            let t = index
                                .map
                                .get(target.as_str())
                                .filter(|t| t.kind == EntryKind::File)
                                .ok_or(TarOpenError::BadHardLink { offset })?;
                            meta.size = t.size;
                            meta.data_offset = t.data_offset;
                        }
                        TypeFlag::Other(b) => {
                            meta.kind = EntryKind::Other(b);
                            meta.size = 0;
                        }
                        TypeFlag::PaxLocal
                        | TypeFlag::PaxGlobal
                        | TypeFlag::GnuLongName
                        | TypeFlag::GnuLongLink => {
                            unreachable!("extension headers are handled above")
                        }
                    }
                    index.insert(&norm, meta, offset)?;
                }
            }
            pos = next;
        }
        Ok(TarStore {
            dev,
            index: index.map,
        })
    }
}

impl<D> TarStore<D> {
    /// The entry at `path` (normalized first; a path with `..` finds nothing).
    pub fn lookup(&self, path: &str) -> Option<Entry<'_>> {
        let mut norm = String::new();
        normalize(path, &mut norm).ok()?;
        let (path, meta) = self.index.get_key_value(norm.as_str())?;
        Some(Entry { path, meta })
    }

    /// The entries directly inside the directory at `path`, in byte order of
    /// their paths.
    ///
    /// # Errors
    ///
    /// [`ListError::NotFound`] or [`ListError::NotADirectory`].
    pub fn list(&self, path: &str) -> Result<impl Iterator<Item = Entry<'_>> + '_, ListError> {
        let dir = self.lookup(path).ok_or(ListError::NotFound)?;
        if !dir.is_dir() {
            return Err(ListError::NotADirectory);
        }
        let mut prefix = String::from(dir.path());
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let start = prefix.clone();
        let plen = prefix.len();
        Ok(self
            .index
            .range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix.as_str()))
            .filter(move |(k, _)| !k.is_empty() && !k[plen..].contains('/'))
            .map(|(path, meta)| Entry { path, meta }))
    }

    /// Every entry, root included, in byte order of their paths.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.index.iter().map(|(path, meta)| Entry { path, meta })
    }

    /// Number of entries, root and implicit directories included.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the index holds only the root.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 1
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }
}

impl<D: BlockDevice> TarStore<D> {
    /// Reads the file's bytes from `offset` into `buf`, as many as there are
    /// (fewer at the end of the file); returns how many. The store caches
    /// nothing itself: each call reads from the device (open the store over
    /// a [`CachedDevice`](crate::CachedDevice) to keep hot data in memory).
    ///
    /// # Errors
    ///
    /// [`TarReadError::NotAFile`], or [`TarReadError::Read`] from the device.
    pub async fn read_at(
        &self,
        entry: Entry<'_>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TarReadError> {
        if !entry.is_file() {
            return Err(TarReadError::NotAFile);
        }
        let size = entry.meta.size;
        if offset >= size {
            return Ok(0);
        }
        let n = (size - offset).min(buf.len() as u64) as usize;
        // In bounds: open checked data_offset + size <= device size.
        read_bytes(&self.dev, entry.meta.data_offset + offset, &mut buf[..n])
            .await
            .map_err(TarReadError::Read)?;
        Ok(n)
    }
}

#[cfg(test)]
mod test;
