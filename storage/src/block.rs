//! The async block-device contract: sector reads, writes and flushes.
//!
//! A [`BlockDevice`] is a fixed array of [`BlockInfo::sectors`] sectors of
//! [`BlockInfo::sector_size`] bytes. Every method takes `&self`, so a caller
//! may have many requests outstanding at once (blkfront keeps up to a ring's
//! worth in flight); each request is one future.
//!
//! Requests are checked before anything is sent: a request that reaches past
//! the end of the device (or whose end overflows `u64`) is
//! [`RequestError::OutOfRange`], never a wrap; a buffer whose length is not a
//! whole number of sectors is [`RequestError::BadLength`]; a buffer whose
//! address is not aligned to [`BlockInfo::buf_align`] is
//! [`RequestError::Misaligned`]. Implementations use [`check_request`] for
//! this, so every device gives the same answer for the same bad request.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use core::fmt;

/// The smallest sector size a device may have (blkif's unit).
pub const SECTOR_SIZE_MIN: u32 = 512;

/// The largest sector size this crate accepts from a device (a larger one
/// reported by a backend is refused at connect time).
pub const SECTOR_SIZE_MAX: u32 = 4096;

/// What a device is: its geometry and the rules for its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Bytes per sector: a power of two in
    /// [`SECTOR_SIZE_MIN`]`..=`[`SECTOR_SIZE_MAX`].
    pub sector_size: u32,
    /// Number of sectors; the device holds `sectors * sector_size` bytes.
    pub sectors: u64,
    /// Writes are refused with [`WriteError::ReadOnly`].
    pub read_only: bool,
    /// Every buffer handed to [`BlockDevice::read`] or
    /// [`BlockDevice::write`] must start at an address that is a multiple of
    /// this (a power of two; 1 means any address).
    pub buf_align: usize,
}

impl BlockInfo {
    /// The device's size in bytes (saturating: a device cannot claim more
    /// than `u64::MAX` bytes usefully).
    pub fn size_bytes(&self) -> u64 {
        self.sectors.saturating_mul(u64::from(self.sector_size))
    }

    /// Whether the geometry is one this crate can work with: the sector size
    /// is a power of two within bounds and `buf_align` is a power of two.
    pub fn is_valid(&self) -> bool {
        self.sector_size.is_power_of_two()
            && (SECTOR_SIZE_MIN..=SECTOR_SIZE_MAX).contains(&self.sector_size)
            && self.buf_align.is_power_of_two()
    }
}

/// A request that is wrong before it reaches the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The sectors `sector..sector + count` are not all on the device (or
    /// `sector + count` overflows).
    OutOfRange {
        /// First sector asked for.
        sector: u64,
        /// Number of sectors asked for.
        count: u64,
        /// Number of sectors on the device.
        sectors: u64,
    },
    /// The buffer's length is not a multiple of the sector size.
    BadLength {
        /// The buffer's length.
        len: usize,
        /// The device's sector size.
        sector_size: u32,
    },
    /// The buffer's address is not a multiple of [`BlockInfo::buf_align`].
    Misaligned {
        /// The alignment the device needs.
        align: usize,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RequestError::OutOfRange {
                sector,
                count,
                sectors,
            } => write!(
                f,
                "sectors {sector}+{count} are outside the device ({sectors} sectors)"
            ),
            RequestError::BadLength { len, sector_size } => write!(
                f,
                "buffer of {len} bytes is not a whole number of {sector_size}-byte sectors"
            ),
            RequestError::Misaligned { align } => {
                write!(f, "buffer is not aligned to {align} bytes")
            }
        }
    }
}

impl core::error::Error for RequestError {}

/// How a backend broke the block protocol. The device is unusable after it:
/// later requests fail with `Disconnected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A response carried an id that no request in flight has.
    UnknownId,
    /// A response's operation is not the one its request had.
    OperationMismatch,
    /// A response's status is not one the protocol defines.
    UnknownStatus,
    /// The backend's response producer ran ahead of the requests pushed.
    ProducerOverrun,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolError::UnknownId => "response id is not outstanding",
            ProtocolError::OperationMismatch => "response operation differs from the request's",
            ProtocolError::UnknownStatus => "response status is unknown",
            ProtocolError::ProducerOverrun => "response producer ran past the requests",
        })
    }
}

impl core::error::Error for ProtocolError {}

/// Why a [`BlockDevice::read`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The request itself was wrong; nothing was sent.
    Request(RequestError),
    /// The device reported an I/O error. The buffer's contents are unspecified.
    Io,
    /// No page or grant reference was free to carry the request.
    NoResources,
    /// The backend broke the protocol while serving this request.
    Protocol(ProtocolError),
    /// The device is gone (backend closed, or an earlier protocol error).
    Disconnected,
}

/// Why a [`BlockDevice::write`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The request itself was wrong; nothing was sent.
    Request(RequestError),
    /// The device is read-only.
    ReadOnly,
    /// The device reported an I/O error. The sectors' contents are unspecified.
    Io,
    /// No page or grant reference was free to carry the request.
    NoResources,
    /// The backend broke the protocol while serving this request.
    Protocol(ProtocolError),
    /// The device is gone (backend closed, or an earlier protocol error).
    Disconnected,
}

/// Why a [`BlockDevice::flush`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// The device reported an I/O error: earlier writes may not be durable.
    Io,
    /// The device said it cannot flush after claiming it could.
    Unsupported,
    /// The backend broke the protocol while serving this request.
    Protocol(ProtocolError),
    /// The device is gone (backend closed, or an earlier protocol error).
    Disconnected,
}

impl From<RequestError> for ReadError {
    fn from(e: RequestError) -> Self {
        ReadError::Request(e)
    }
}

impl From<RequestError> for WriteError {
    fn from(e: RequestError) -> Self {
        WriteError::Request(e)
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Request(e) => write!(f, "bad read request: {e}"),
            ReadError::Io => f.write_str("read failed: I/O error"),
            ReadError::NoResources => f.write_str("read failed: no page or grant free"),
            ReadError::Protocol(e) => write!(f, "read failed: backend protocol error: {e}"),
            ReadError::Disconnected => f.write_str("read failed: device disconnected"),
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Request(e) => write!(f, "bad write request: {e}"),
            WriteError::ReadOnly => f.write_str("write refused: device is read-only"),
            WriteError::Io => f.write_str("write failed: I/O error"),
            WriteError::NoResources => f.write_str("write failed: no page or grant free"),
            WriteError::Protocol(e) => write!(f, "write failed: backend protocol error: {e}"),
            WriteError::Disconnected => f.write_str("write failed: device disconnected"),
        }
    }
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::Io => f.write_str("flush failed: I/O error"),
            FlushError::Unsupported => f.write_str("flush failed: backend does not support it"),
            FlushError::Protocol(e) => write!(f, "flush failed: backend protocol error: {e}"),
            FlushError::Disconnected => f.write_str("flush failed: device disconnected"),
        }
    }
}

impl core::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ReadError::Request(e) => Some(e),
            ReadError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl core::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            WriteError::Request(e) => Some(e),
            WriteError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl core::error::Error for FlushError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            FlushError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks a request against a device's geometry and returns its length in
/// sectors. Every [`BlockDevice`] implementation calls this first.
///
/// # Errors
///
/// [`RequestError::BadLength`] if `len` is not a multiple of the sector size,
/// [`RequestError::Misaligned`] if `addr` is not a multiple of
/// `info.buf_align`, [`RequestError::OutOfRange`] if the sectors are not all
/// on the device or their end overflows.
///
/// # Examples
///
/// ```
/// use ringlet_storage::{check_request, BlockInfo, RequestError};
/// let info = BlockInfo { sector_size: 512, sectors: 8, read_only: false, buf_align: 1 };
/// assert_eq!(check_request(&info, 6, 1024, 0), Ok(2));
/// assert!(matches!(check_request(&info, 7, 1024, 0), Err(RequestError::OutOfRange { .. })));
/// assert!(matches!(check_request(&info, u64::MAX, 512, 0), Err(RequestError::OutOfRange { .. })));
/// ```
pub fn check_request(
    info: &BlockInfo,
    sector: u64,
    len: usize,
    addr: usize,
) -> Result<u64, RequestError> {
    let sector_size = info.sector_size;
    if !len.is_multiple_of(sector_size as usize) {
        return Err(RequestError::BadLength { len, sector_size });
    }
    if !addr.is_multiple_of(info.buf_align) {
        return Err(RequestError::Misaligned {
            align: info.buf_align,
        });
    }
    let count = (len / sector_size as usize) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= info.sectors => Ok(count),
        _ => Err(RequestError::OutOfRange {
            sector,
            count,
            sectors: info.sectors,
        }),
    }
}

/// An async block device: sector reads, writes and flushes.
///
/// Implementations MUST:
/// - check every request with [`check_request`] before doing anything, and
///   fail it with [`ReadError::Request`] / [`WriteError::Request`];
/// - accept many requests in flight at once (every method takes `&self`);
/// - complete a successful `read` only with the whole buffer filled, and a
///   successful `write` only once the device holds the data (durable after
///   the next successful `flush`);
/// - stay memory-safe when a request's future is dropped before it completes
///   (the request may or may not have taken effect);
/// - never panic on anything the device or a backend reports.
///
/// A device without a volatile write cache completes `flush` at once.
#[allow(async_fn_in_trait)] // single-threaded executor: no `Send` bound wanted.
pub trait BlockDevice {
    /// The device's geometry and buffer rules. Constant while the device lives.
    fn info(&self) -> BlockInfo;

    /// Reads `buf.len() / sector_size` sectors starting at `sector` into `buf`.
    ///
    /// # Errors
    ///
    /// See [`ReadError`].
    ///
    /// # Cancellation
    ///
    /// Dropping the future abandons the read; `buf` is then unspecified.
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// Writes `buf` to the sectors starting at `sector`.
    ///
    /// # Errors
    ///
    /// See [`WriteError`].
    ///
    /// # Cancellation
    ///
    /// Dropping the future abandons the write; the sectors then hold either
    /// the old or the new data (per sector, not necessarily all or nothing).
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), WriteError>;

    /// Makes every write completed before this call durable.
    ///
    /// # Errors
    ///
    /// See [`FlushError`].
    async fn flush(&self) -> Result<(), FlushError>;
}

macro_rules! forward_block_device {
    ($($ty:ty),*) => {$(
        impl<D: BlockDevice + ?Sized> BlockDevice for $ty {
            fn info(&self) -> BlockInfo {
                (**self).info()
            }
            async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError> {
                (**self).read(sector, buf).await
            }
            async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), WriteError> {
                (**self).write(sector, buf).await
            }
            async fn flush(&self) -> Result<(), FlushError> {
                (**self).flush().await
            }
        }
    )*};
}

forward_block_device!(&D, Box<D>, Rc<D>, Arc<D>);

#[cfg(test)]
mod test {
    use super::*;

    fn info() -> BlockInfo {
        BlockInfo {
            sector_size: 512,
            sectors: 100,
            read_only: false,
            buf_align: 8,
        }
    }

    #[test]
    fn check_accepts_in_range() {
        assert_eq!(check_request(&info(), 0, 0, 0), Ok(0));
        assert_eq!(check_request(&info(), 100, 0, 0), Ok(0));
        assert_eq!(check_request(&info(), 99, 512, 8), Ok(1));
        assert_eq!(check_request(&info(), 0, 512 * 100, 16), Ok(100));
    }

    #[test]
    fn check_refuses_out_of_range_without_wrapping() {
        let i = info();
        assert_eq!(
            check_request(&i, 100, 512, 0),
            Err(RequestError::OutOfRange {
                sector: 100,
                count: 1,
                sectors: 100
            })
        );
        assert_eq!(
            check_request(&i, 101, 0, 0),
            Err(RequestError::OutOfRange {
                sector: 101,
                count: 0,
                sectors: 100
            })
        );
        assert!(matches!(
            check_request(&i, u64::MAX, 1024, 0),
            Err(RequestError::OutOfRange {
                sector: u64::MAX,
                count: 2,
                ..
            })
        ));
        assert!(matches!(
            check_request(&i, 1, 512 * 100, 0),
            Err(RequestError::OutOfRange { .. })
        ));
    }

    #[test]
    fn check_refuses_bad_length_and_alignment() {
        let i = info();
        assert_eq!(
            check_request(&i, 0, 511, 0),
            Err(RequestError::BadLength {
                len: 511,
                sector_size: 512
            })
        );
        assert_eq!(
            check_request(&i, 0, 512, 4),
            Err(RequestError::Misaligned { align: 8 })
        );
    }

    #[test]
    fn info_validity_and_size() {
        assert!(info().is_valid());
        assert_eq!(info().size_bytes(), 51_200);
        let bad = BlockInfo {
            sector_size: 768,
            ..info()
        };
        assert!(!bad.is_valid());
        let big = BlockInfo {
            sector_size: 8192,
            ..info()
        };
        assert!(!big.is_valid());
        let huge = BlockInfo {
            sectors: u64::MAX,
            ..info()
        };
        assert_eq!(huge.size_bytes(), u64::MAX);
    }

    #[test]
    fn errors_display() {
        let e = ReadError::from(RequestError::Misaligned { align: 512 });
        assert_eq!(
            e.to_string(),
            "bad read request: buffer is not aligned to 512 bytes"
        );
        assert!(core::error::Error::source(&e).is_some());
        assert_eq!(
            WriteError::ReadOnly.to_string(),
            "write refused: device is read-only"
        );
        assert_eq!(
            FlushError::Protocol(ProtocolError::UnknownId).to_string(),
            "flush failed: backend protocol error: response id is not outstanding"
        );
    }
}
