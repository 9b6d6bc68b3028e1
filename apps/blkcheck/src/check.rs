//! The checks blkcheck runs, over any [`BlockDevice`]: the SHA-256 of a
//! file in a tar store, and a pattern written, flushed and read back with
//! many requests in flight.
//!
//! Nothing here prints or reads a clock; `main` does (and the tests run
//! these over `MemDevice`).
#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use futures::future::try_join_all;
use ringlet_storage::tar::{Entry, TarReadError, TarStore};
use ringlet_storage::{BlockDevice, ReadError, WriteError};
use sha2::{Digest, Sha256};

use crate::pattern;

/// The SHA-256 of `entry`'s bytes, read in rounds of up to `bufs.len()`
/// concurrent reads of one buffer each (a buffer's length is its read
/// size), hashed in order.
///
/// # Errors
///
/// [`TarReadError`] from the store; a file that ends early (a round that
/// reads 0 bytes before its size) is [`TarReadError::Read`] with
/// [`ReadError::Io`].
///
/// # Panics
///
/// If `bufs` is empty or a buffer is empty.
pub async fn sha256_file<D: BlockDevice>(
    store: &TarStore<D>,
    entry: Entry<'_>,
    bufs: &mut [Vec<u8>],
) -> Result<[u8; 32], TarReadError> {
    assert!(!bufs.is_empty() && bufs.iter().all(|b| !b.is_empty()));
    if !entry.is_file() {
        return Err(TarReadError::NotAFile);
    }
    let size = entry.size();
    let mut hasher = Sha256::new();
    let mut offset = 0;
    while offset < size {
        let mut at = offset;
        let reads = bufs.iter_mut().map(|buf| {
            let start = at;
            at = at.saturating_add(buf.len() as u64);
            async move {
                if start >= size {
                    return Ok((buf, 0));
                }
                let n = store.read_at(entry, start, buf).await?;
                Ok::<_, TarReadError>((buf, n))
            }
        });
        let mut round = 0;
        for (buf, n) in try_join_all(reads).await? {
            hasher.update(&buf[..n]);
            round += n as u64;
            if n < buf.len() {
                // The file's end: later buffers of the round read nothing.
                break;
            }
        }
        if round == 0 {
            return Err(TarReadError::Read(ReadError::Io));
        }
        offset += round;
    }
    Ok(hasher.finalize().into())
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8; 32]) -> HexDigest<'_> {
    HexDigest(digest)
}

/// A digest that displays as 64 lower-case hex digits.
#[derive(Debug)]
pub struct HexDigest<'a>(&'a [u8; 32]);

impl fmt::Display for HexDigest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Where and how the pattern goes on the scratch disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// First byte of the range on the disk.
    pub offset: u64,
    /// Bytes in the range.
    pub bytes: u64,
    /// Bytes per request (the last one may be shorter).
    pub chunk_bytes: usize,
    /// Requests kept in flight (concurrent workers).
    pub depth: usize,
    /// The pattern's seed.
    pub seed: u64,
}

/// Why a [`Plan`] does not fit a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Offset, length or chunk size is not a whole number of sectors, or
    /// chunk, length or depth is zero.
    NotSectors,
    /// The range reaches past the end of the device.
    TooLarge {
        /// The device's size in bytes.
        device_bytes: u64,
    },
    /// The device refuses writes.
    ReadOnly,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NotSectors => f.write_str("pattern range is not whole non-empty sectors"),
            PlanError::TooLarge { device_bytes } => {
                write!(
                    f,
                    "pattern range reaches past the disk's {device_bytes} bytes"
                )
            }
            PlanError::ReadOnly => f.write_str("the scratch disk is read-only"),
        }
    }
}

impl core::error::Error for PlanError {}

impl Plan {
    /// Checks the plan against the device.
    ///
    /// # Errors
    ///
    /// [`PlanError`].
    pub fn check(&self, dev: &impl BlockDevice) -> Result<(), PlanError> {
        let info = dev.info();
        let ss = u64::from(info.sector_size);
        if self.bytes == 0
            || self.chunk_bytes == 0
            || self.depth == 0
            || !self.offset.is_multiple_of(ss)
            || !self.bytes.is_multiple_of(ss)
            || !(self.chunk_bytes as u64).is_multiple_of(ss)
        {
            return Err(PlanError::NotSectors);
        }
        let device_bytes = info.size_bytes();
        match self.offset.checked_add(self.bytes) {
            Some(end) if end <= device_bytes => {}
            _ => return Err(PlanError::TooLarge { device_bytes }),
        }
        if info.read_only {
            return Err(PlanError::ReadOnly);
        }
        Ok(())
    }

    fn chunks(&self) -> u64 {
        self.bytes.div_ceil(self.chunk_bytes as u64)
    }

    /// Byte offset and length of chunk `c`.
    fn chunk(&self, c: u64) -> (u64, usize) {
        let start = c * self.chunk_bytes as u64;
        let len = (self.bytes - start).min(self.chunk_bytes as u64) as usize;
        (self.offset + start, len)
    }
}

/// Why the read-back failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// A read failed.
    Read(ReadError),
    /// The byte at this disk offset is not the pattern's.
    Mismatch {
        /// Offset on the disk.
        offset: u64,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Read(e) => write!(f, "read back: {e}"),
            VerifyError::Mismatch { offset } => {
                write!(f, "read back: byte {offset} differs from what was written")
            }
        }
    }
}

impl core::error::Error for VerifyError {}

/// Writes the pattern over the plan's range, `depth` requests in flight
/// (worker `w` takes chunks `w`, `w + depth`, ...). Stops at the first
/// error (the other workers' requests are dropped).
///
/// # Errors
///
/// [`WriteError`] from the device.
///
/// # Panics
///
/// If the plan was not [`Plan::check`]ed against `dev`.
pub async fn write_pattern<D: BlockDevice>(dev: &D, plan: &Plan) -> Result<(), WriteError> {
    let ss = u64::from(dev.info().sector_size);
    let chunks = plan.chunks();
    try_join_all((0..plan.depth as u64).map(|w| async move {
        let mut buf = vec![0u8; plan.chunk_bytes];
        let mut c = w;
        while c < chunks {
            let (offset, len) = plan.chunk(c);
            pattern::fill(plan.seed, offset, &mut buf[..len]);
            dev.write(offset / ss, &buf[..len]).await?;
            c += plan.depth as u64;
        }
        Ok::<(), WriteError>(())
    }))
    .await?;
    Ok(())
}

/// Reads the plan's range back, `depth` requests in flight, and compares
/// it with the pattern.
///
/// # Errors
///
/// [`VerifyError`]: a failed read, or the first differing byte found.
///
/// # Panics
///
/// If the plan was not [`Plan::check`]ed against `dev`.
pub async fn verify_pattern<D: BlockDevice>(dev: &D, plan: &Plan) -> Result<(), VerifyError> {
    let ss = u64::from(dev.info().sector_size);
    let chunks = plan.chunks();
    try_join_all((0..plan.depth as u64).map(|w| async move {
        let mut buf = vec![0u8; plan.chunk_bytes];
        let mut c = w;
        while c < chunks {
            let (offset, len) = plan.chunk(c);
            dev.read(offset / ss, &mut buf[..len])
                .await
                .map_err(VerifyError::Read)?;
            if let Some(at) = pattern::first_mismatch(plan.seed, offset, &buf[..len]) {
                return Err(VerifyError::Mismatch { offset: at });
            }
            c += plan.depth as u64;
        }
        Ok(())
    }))
    .await?;
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::string::String;
    use futures::executor::block_on;
    use ringlet_storage::{Fault, FaultKind, FaultOn, MemDevice};

    fn archive(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn hashes_match_the_source_files() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let long = format!("deep/{}/name with spaces 'q' é.bin", "d".repeat(120));
        let files = [
            ("empty", Vec::new()),
            ("a/b/c/small.txt", b"hello\n".to_vec()),
            (long.as_str(), big.clone()),
        ];
        let dev = MemDevice::from_bytes(512, archive(&files)).with_latency(1);
        block_on(async {
            let store = TarStore::open(&dev).await.unwrap();
            let mut seen = 0;
            for (path, data) in &files {
                let e = store.lookup(path).unwrap();
                // Read sizes that are not a multiple of the sector size,
                // one at a time and three at once.
                for bufs in [1, 3] {
                    let mut bufs = vec![vec![0u8; 10_000]; bufs];
                    let got = sha256_file(&store, e, &mut bufs).await.unwrap();
                    assert_eq!(got, sha(data), "{path}");
                }
                seen += 1;
            }
            assert_eq!(seen, 3);
            let dir = store.lookup("a/b").unwrap();
            assert_eq!(
                sha256_file(&store, dir, &mut [vec![0u8; 512]]).await,
                Err(TarReadError::NotAFile)
            );
        });
    }

    #[test]
    fn hex_is_lower_case_and_64_digits() {
        let h = sha(b"abc");
        let s: String = format!("{}", hex(&h));
        assert_eq!(
            s,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn plan(seed: u64) -> Plan {
        Plan {
            offset: 4096,
            bytes: 100 * 512,
            chunk_bytes: 8 * 512,
            depth: 5,
            seed,
        }
    }

    #[test]
    fn pattern_round_trip_in_place() {
        let dev = MemDevice::new(512, 256).with_latency(2);
        let p = plan(42);
        p.check(&dev).unwrap();
        block_on(async {
            write_pattern(&dev, &p).await.unwrap();
            dev.flush().await.unwrap();
            verify_pattern(&dev, &p).await.unwrap();
        });
        let bytes = dev.to_vec();
        assert!(bytes[..4096].iter().all(|&b| b == 0));
        let end = 4096 + 100 * 512;
        assert!(bytes[end..].iter().all(|&b| b == 0));
        assert_eq!(pattern::first_mismatch(42, 4096, &bytes[4096..end]), None);
        // Every chunk written once, read once, `depth` of them at a time.
        let stats = dev.stats();
        assert_eq!((stats.writes, stats.reads), (13, 13));
        assert_eq!(stats.max_in_flight, 5);
    }

    #[test]
    fn a_wrong_byte_is_found() {
        let dev = MemDevice::new(512, 256);
        let p = plan(1);
        block_on(async {
            write_pattern(&dev, &p).await.unwrap();
            let mut sector = vec![0u8; 512];
            dev.read(60, &mut sector).await.unwrap();
            sector[3] ^= 0x80;
            dev.write(60, &sector).await.unwrap();
            assert_eq!(
                verify_pattern(&dev, &p).await,
                Err(VerifyError::Mismatch {
                    offset: 60 * 512 + 3
                })
            );
            // Another seed differs from the first byte.
            assert_eq!(
                verify_pattern(&dev, &plan(2)).await,
                Err(VerifyError::Mismatch { offset: 4096 })
            );
        });
    }

    #[test]
    fn device_errors_surface() {
        let dev = MemDevice::new(512, 256);
        let p = plan(1);
        dev.inject(Fault::new(FaultOn::Write, 50..51, FaultKind::Io));
        block_on(async {
            assert_eq!(write_pattern(&dev, &p).await, Err(WriteError::Io));
            dev.clear_faults();
            write_pattern(&dev, &p).await.unwrap();
            dev.inject(Fault::new(FaultOn::Read, 70..71, FaultKind::Io));
            assert_eq!(
                verify_pattern(&dev, &p).await,
                Err(VerifyError::Read(ReadError::Io))
            );
        });
    }

    #[test]
    fn plans_are_checked() {
        let dev = MemDevice::new(512, 256);
        assert_eq!(plan(0).check(&dev), Ok(()));
        let bad = |p: Plan| p.check(&dev).unwrap_err();
        assert_eq!(
            bad(Plan {
                offset: 100,
                ..plan(0)
            }),
            PlanError::NotSectors
        );
        assert_eq!(
            bad(Plan {
                depth: 0,
                ..plan(0)
            }),
            PlanError::NotSectors
        );
        assert_eq!(
            bad(Plan {
                bytes: 256 * 512,
                ..plan(0)
            }),
            PlanError::TooLarge {
                device_bytes: 256 * 512
            }
        );
        assert_eq!(
            bad(Plan {
                offset: u64::MAX - 511,
                ..plan(0)
            }),
            PlanError::TooLarge {
                device_bytes: 256 * 512
            }
        );
        let ro = MemDevice::new(512, 256).read_only();
        assert_eq!(plan(0).check(&ro), Err(PlanError::ReadOnly));
    }
}
