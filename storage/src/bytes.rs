//! Byte-range reads over a block device, and aligned buffers.
//!
//! [`read_bytes`] reads any byte range of a [`BlockDevice`]: the whole
//! sectors in the middle go straight into the caller's buffer when it is
//! aligned as the device needs, and the partial sectors at either end (or
//! everything, for a misaligned buffer) go through a small bounce buffer of
//! at most [`BOUNCE_BYTES_MAX`] bytes. A caller streaming a large file calls
//! it once per chunk, so memory stays bounded by its chunk size.

use alloc::vec;
use alloc::vec::Vec;

use crate::block::{BlockDevice, ReadError, RequestError};

/// The largest bounce buffer [`read_bytes`] allocates.
pub const BOUNCE_BYTES_MAX: usize = 64 * 1024;

/// A heap buffer whose start is aligned to a power of two, without `unsafe`:
/// it over-allocates and slices.
#[derive(Debug)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes starting at a multiple of `align`.
    ///
    /// # Panics
    ///
    /// If `align` is not a power of two.
    pub fn new(len: usize, align: usize) -> AlignedBuf {
        assert!(align.is_power_of_two(), "alignment must be a power of two");
        let storage = vec![0u8; len + align - 1];
        let start = storage.as_ptr().align_offset(align);
        assert!(start < align, "align_offset on u8 is always exact");
        AlignedBuf {
            storage,
            start,
            len,
        }
    }

    /// Like [`new`](AlignedBuf::new), but `None` instead of an abort when
    /// the heap cannot give the memory.
    ///
    /// # Panics
    ///
    /// If `align` is not a power of two.
    pub fn try_new(len: usize, align: usize) -> Option<AlignedBuf> {
        assert!(align.is_power_of_two(), "alignment must be a power of two");
        let total = len.checked_add(align - 1)?;
        let mut storage = Vec::new();
        storage.try_reserve_exact(total).ok()?;
        storage.resize(total, 0);
        let start = storage.as_ptr().align_offset(align);
        assert!(start < align, "align_offset on u8 is always exact");
        Some(AlignedBuf {
            storage,
            start,
            len,
        })
    }

    /// The buffer.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The buffer, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reads `buf.len()` bytes of `dev` starting at byte `offset`.
///
/// # Errors
///
/// [`ReadError::Request`] with [`RequestError::OutOfRange`] if any byte of
/// the range is past the end of the device (or the end overflows); the
/// device's own errors otherwise. `buf` is unspecified after an error.
///
/// # Cancellation
///
/// Dropping the future abandons the read; `buf` is then unspecified.
///
/// # Examples
///
/// ```
/// use ringlet_storage::{read_bytes, MemDevice};
/// let dev = MemDevice::from_bytes(512, (0..2048u32).map(|i| i as u8).collect());
/// let mut buf = [0u8; 5];
/// futures::executor::block_on(read_bytes(&dev, 510, &mut buf)).unwrap();
/// assert_eq!(buf, [254, 255, 0, 1, 2]);
/// ```
pub async fn read_bytes<D: BlockDevice + ?Sized>(
    dev: &D,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), ReadError> {
    let info = dev.info();
    let ss = u64::from(info.sector_size);
    let out_of_range = || {
        ReadError::Request(RequestError::OutOfRange {
            sector: offset / ss,
            count: (buf.len() as u64).div_ceil(ss),
            sectors: info.sectors,
        })
    };
    let end = offset
        .checked_add(buf.len() as u64)
        .ok_or_else(out_of_range)?;
    if end > info.size_bytes() {
        return Err(out_of_range());
    }
    let mut bounce: Option<AlignedBuf> = None;
    let mut pos = offset; // device byte offset of buf[done]
    let mut done = 0usize;
    while done < buf.len() {
        let sector = pos / ss;
        let within = (pos % ss) as usize;
        let remaining = buf.len() - done;
        let dst = &mut buf[done..];
        if within == 0
            && remaining as u64 >= ss
            && (dst.as_ptr() as usize).is_multiple_of(info.buf_align)
        {
            // Whole sectors straight into the caller's buffer.
            let n = remaining - remaining % ss as usize;
            dev.read(sector, &mut dst[..n]).await?;
            done += n;
            pos += n as u64;
            continue;
        }
        // Through the bounce buffer: the partial head or tail sector, or a
        // chunk of whole sectors when the caller's buffer is misaligned.
        let want = (within + remaining).div_ceil(ss as usize) * ss as usize;
        let cap = BOUNCE_BYTES_MAX.max(ss as usize);
        let chunk = want.min(cap - cap % ss as usize);
        let b = bounce.get_or_insert_with(|| AlignedBuf::new(chunk, info.buf_align));
        if b.len() < chunk {
            *b = AlignedBuf::new(chunk, info.buf_align);
        }
        let slice = &mut b.as_mut_slice()[..chunk];
        dev.read(sector, slice).await?;
        let n = (chunk - within).min(remaining);
        dst[..n].copy_from_slice(&slice[within..within + n]);
        done += n;
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::mem::{Fault, FaultKind, FaultOn, MemDevice};
    use futures::executor::block_on;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(7) ^ (i >> 9)) as u8)
            .collect()
    }

    #[test]
    fn aligned_buf_is_aligned() {
        for align in [1, 2, 512, 4096] {
            let mut b = AlignedBuf::new(1000, align);
            assert_eq!(b.len(), 1000);
            assert_eq!(b.as_slice().as_ptr() as usize % align, 0);
            b.as_mut_slice()[999] = 1;
        }
        assert!(AlignedBuf::new(0, 8).is_empty());
        let b = AlignedBuf::try_new(1000, 4096).unwrap();
        assert_eq!((b.len(), b.as_slice().as_ptr() as usize % 4096), (1000, 0));
        // More than any heap can give: refused, not an abort.
        assert!(AlignedBuf::try_new(usize::MAX / 2, 1).is_none());
        assert!(AlignedBuf::try_new(usize::MAX, 2).is_none());
    }

    #[test]
    fn every_small_range_matches() {
        for (ss, align) in [(512u32, 1usize), (512, 512), (4096, 8)] {
            let data = pattern(ss as usize * 6);
            let dev = MemDevice::from_bytes(ss, data.clone()).with_buf_align(align);
            let step = (ss / 64) as usize;
            for start in (0..data.len()).step_by(step) {
                for len in [
                    0,
                    1,
                    2,
                    511,
                    512,
                    513,
                    ss as usize,
                    ss as usize + 3,
                    2 * ss as usize + 1,
                ] {
                    if start + len > data.len() {
                        continue;
                    }
                    // An offset of 1 in the destination makes it misaligned.
                    let mut v = vec![0u8; len + 1];
                    block_on(read_bytes(&dev, start as u64, &mut v[1..])).unwrap();
                    assert_eq!(
                        &v[1..],
                        &data[start..start + len],
                        "ss {ss} at {start}+{len}"
                    );
                    let mut a = AlignedBuf::new(len, align);
                    block_on(read_bytes(&dev, start as u64, a.as_mut_slice())).unwrap();
                    assert_eq!(a.as_slice(), &data[start..start + len]);
                }
            }
        }
    }

    #[test]
    fn large_misaligned_read_is_chunked() {
        let data = pattern(BOUNCE_BYTES_MAX * 3 + 1024);
        let dev = MemDevice::from_bytes(512, data.clone()).with_buf_align(512);
        let mut v = vec![0u8; data.len() - 100];
        block_on(read_bytes(&dev, 37, &mut v[..data.len() - 200])).unwrap();
        assert_eq!(&v[..data.len() - 200], &data[37..data.len() - 163]);
        // More than one device read, none larger than the bounce bound.
        assert!(dev.stats().reads >= 4);
    }

    #[test]
    fn aligned_middle_is_one_direct_read() {
        let data = pattern(512 * 100);
        let dev = MemDevice::from_bytes(512, data.clone());
        let mut a = AlignedBuf::new(512 * 90, 1);
        block_on(read_bytes(&dev, 512 * 5, a.as_mut_slice())).unwrap();
        assert_eq!(a.as_slice(), &data[512 * 5..512 * 95]);
        assert_eq!(dev.stats().reads, 1);
        // Unaligned in the device: one bounce read covers the 11 sectors.
        let mut v = vec![0u8; 512 * 10];
        block_on(read_bytes(&dev, 100, &mut v)).unwrap();
        assert_eq!(v, &data[100..100 + 512 * 10]);
        assert_eq!(dev.stats().reads, 2);
    }

    #[test]
    fn out_of_range_is_an_error_not_a_wrap() {
        let dev = MemDevice::new(512, 4);
        let mut b = [0u8; 2];
        assert!(block_on(read_bytes(&dev, 2047, &mut b[..1])).is_ok());
        assert!(matches!(
            block_on(read_bytes(&dev, 2047, &mut b)),
            Err(ReadError::Request(RequestError::OutOfRange {
                sector: 3,
                ..
            }))
        ));
        assert!(matches!(
            block_on(read_bytes(&dev, u64::MAX, &mut b)),
            Err(ReadError::Request(RequestError::OutOfRange { .. }))
        ));
        assert_eq!(dev.stats().reads, 1);
    }

    #[test]
    fn device_errors_pass_through() {
        let dev = MemDevice::new(512, 8);
        dev.inject(Fault::new(FaultOn::Read, 7..8, FaultKind::Io));
        let mut b = vec![0u8; 1000];
        assert_eq!(block_on(read_bytes(&dev, 3000, &mut b)), Err(ReadError::Io));
        assert!(block_on(read_bytes(&dev, 100, &mut b)).is_ok());
    }
}
