//! A block device backed by a host file (`std` only).
//!
//! [`FileDevice`] serves a file's bytes as sectors with positioned reads and
//! writes (`pread`/`pwrite`), so several requests may be outstanding. The
//! host I/O is synchronous: each request completes within the poll that
//! starts it, blocking the executor for that long. It is a host convenience
//! (hosted httpd, tests, tools), not a driver for the event loop.
//!
//! A trailing partial sector of the file is not part of the device.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::block::{check_request, BlockDevice, BlockInfo, FlushError, ReadError, WriteError};

/// Why [`FileDevice::open`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The sector size is not a power of two in 512..=4096.
    BadSectorSize(u32),
    /// The host could not open or stat the file.
    Io(io::Error),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::BadSectorSize(s) => write!(f, "sector size {s} is not supported"),
            OpenError::Io(e) => write!(f, "cannot open the backing file: {e}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io(e) => Some(e),
            OpenError::BadSectorSize(_) => None,
        }
    }
}

/// A block device over a host file.
///
/// # Examples
///
/// ```
/// use ringlet_storage::{BlockDevice, FileDevice};
/// let path = std::env::temp_dir().join(format!("ringlet-doc-{}.img", std::process::id()));
/// std::fs::write(&path, vec![0u8; 4096]).unwrap();
/// let dev = FileDevice::open(&path, 512, false).unwrap();
/// assert_eq!(dev.info().sectors, 8);
/// futures::executor::block_on(async {
///     dev.write(7, &[1u8; 512]).await.unwrap();
///     dev.flush().await.unwrap();
/// });
/// assert_eq!(std::fs::read(&path).unwrap()[3584..], [1u8; 512]);
/// std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    info: BlockInfo,
}

impl FileDevice {
    /// Opens `path` as a device of `sector_size`-byte sectors; `read_only`
    /// opens it without write access and refuses writes.
    ///
    /// # Errors
    ///
    /// [`OpenError::BadSectorSize`], or [`OpenError::Io`] from the host.
    pub fn open(
        path: impl AsRef<Path>,
        sector_size: u32,
        read_only: bool,
    ) -> Result<FileDevice, OpenError> {
        let info = BlockInfo {
            sector_size,
            sectors: 0,
            read_only,
            buf_align: 1,
        };
        if !info.is_valid() {
            return Err(OpenError::BadSectorSize(sector_size));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(OpenError::Io)?;
        let len = file.metadata().map_err(OpenError::Io)?.len();
        Ok(FileDevice {
            file,
            info: BlockInfo {
                sectors: len / u64::from(sector_size),
                ..info
            },
        })
    }

    fn offset(&self, sector: u64) -> u64 {
        // check_request bounded sector by the file's length.
        sector * u64::from(self.info.sector_size)
    }
}

impl BlockDevice for FileDevice {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_request(&self.info, sector, buf.len(), buf.as_ptr() as usize)?;
        // A file truncated behind our back reads short: an I/O error.
        self.file
            .read_exact_at(buf, self.offset(sector))
            .map_err(|_| ReadError::Io)
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), WriteError> {
        check_request(&self.info, sector, buf.len(), buf.as_ptr() as usize)?;
        if self.info.read_only {
            return Err(WriteError::ReadOnly);
        }
        self.file
            .write_all_at(buf, self.offset(sector))
            .map_err(|_| WriteError::Io)
    }

    async fn flush(&self) -> Result<(), FlushError> {
        if self.info.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(|_| FlushError::Io)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::block::RequestError;
    use futures::executor::block_on;

    struct TempFile(std::path::PathBuf);
    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> TempFile {
            let p =
                std::env::temp_dir().join(format!("ringlet-storage-{}-{name}", std::process::id()));
            std::fs::write(&p, bytes).unwrap();
            TempFile(p)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn reads_writes_and_ignores_partial_tail() {
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let f = TempFile::new("rw", &bytes);
        let dev = FileDevice::open(&f.0, 512, false).unwrap();
        assert_eq!(dev.info().sectors, 9);
        block_on(async {
            let mut buf = vec![0u8; 1024];
            dev.read(8, &mut buf[..512]).await.unwrap();
            assert_eq!(&buf[..512], &bytes[4096..4608]);
            assert!(matches!(
                dev.read(8, &mut buf).await,
                Err(ReadError::Request(RequestError::OutOfRange { .. }))
            ));
            dev.write(1, &[0xAB; 1024]).await.unwrap();
            dev.flush().await.unwrap();
        });
        let now = std::fs::read(&f.0).unwrap();
        assert_eq!(&now[..512], &bytes[..512]);
        assert!(now[512..1536].iter().all(|&b| b == 0xAB));
        assert_eq!(&now[1536..], &bytes[1536..]);
    }

    #[test]
    fn read_only_refuses_writes() {
        let f = TempFile::new("ro", &[0u8; 1024]);
        let dev = FileDevice::open(&f.0, 512, true).unwrap();
        assert_eq!(block_on(dev.write(0, &[1; 512])), Err(WriteError::ReadOnly));
        assert_eq!(block_on(dev.flush()), Ok(()));
    }

    #[test]
    fn open_errors() {
        assert!(matches!(
            FileDevice::open("/nonexistent/ringlet", 512, true),
            Err(OpenError::Io(_))
        ));
        let f = TempFile::new("ss", &[0u8; 1024]);
        assert!(matches!(
            FileDevice::open(&f.0, 1000, true),
            Err(OpenError::BadSectorSize(1000))
        ));
    }

    #[test]
    fn truncated_file_reads_as_io_error() {
        let f = TempFile::new("trunc", &[0u8; 2048]);
        let dev = FileDevice::open(&f.0, 512, true).unwrap();
        std::fs::write(&f.0, [0u8; 512]).unwrap();
        let mut buf = [0u8; 512];
        assert_eq!(block_on(dev.read(3, &mut buf)), Err(ReadError::Io));
    }
}
