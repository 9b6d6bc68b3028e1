//! An in-memory block device, with injectable faults and latency for tests.
//!
//! [`MemDevice`] keeps its sectors in a `Vec<u8>`. It is single-threaded
//! (interior mutability through `RefCell`), like everything on the Ringlet
//! executor. Two test aids:
//!
//! - **latency**: [`MemDevice::with_latency`] makes every request return
//!   `Pending` a fixed number of times (waking itself each time) before it
//!   takes effect, so that many requests really are in flight together;
//!   [`MemDevice::stats`] records how many were at most.
//! - **faults**: [`MemDevice::inject`] adds a [`Fault`]: requests of one kind
//!   touching a range of sectors fail with an I/O error (data untouched), or
//!   the device disconnects (that request and every later one fail with
//!   `Disconnected`).

use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::ops::Range;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::block::{check_request, BlockDevice, BlockInfo, FlushError, ReadError, WriteError};

/// Which requests a [`Fault`] applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOn {
    /// Reads only.
    Read,
    /// Writes only.
    Write,
    /// Flushes only (the sector range is ignored).
    Flush,
    /// Every request (flushes regardless of the sector range).
    Any,
}

/// What a [`Fault`] does to a request it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The request fails with an I/O error; no data is read or written.
    Io,
    /// The device disconnects: this request and all later ones fail with
    /// `Disconnected`.
    Disconnect,
}

/// A fault injected into a [`MemDevice`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The requests it applies to.
    pub on: FaultOn,
    /// The sectors: a read or write touching any of them is hit.
    pub sectors: Range<u64>,
    /// What happens to a request that is hit.
    pub kind: FaultKind,
    /// How many more requests it hits (`None`: forever).
    pub remaining: Option<u32>,
}

impl Fault {
    /// A fault hitting every request of kind `on` that touches `sectors`, forever.
    pub fn new(on: FaultOn, sectors: Range<u64>, kind: FaultKind) -> Fault {
        Fault {
            on,
            sectors,
            kind,
            remaining: None,
        }
    }

    /// The same fault, hitting only the next `n` matching requests.
    pub fn times(self, n: u32) -> Fault {
        Fault {
            remaining: Some(n),
            ..self
        }
    }

    fn matches(&self, op: FaultOn, sectors: &Range<u64>) -> bool {
        let kind_ok = self.on == FaultOn::Any || self.on == op;
        let range_ok = op == FaultOn::Flush
            || (sectors.start < self.sectors.end && self.sectors.start < sectors.end);
        kind_ok && range_ok && self.remaining != Some(0)
    }
}

/// Counters kept by a [`MemDevice`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Reads that passed the request check.
    pub reads: u64,
    /// Writes that passed the request check.
    pub writes: u64,
    /// Flushes.
    pub flushes: u64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// The most requests that were in flight at once.
    pub max_in_flight: u32,
}

/// An in-memory block device.
///
/// # Examples
///
/// ```
/// use ringlet_storage::{BlockDevice, MemDevice};
/// let dev = MemDevice::new(512, 4);
/// futures::executor::block_on(async {
///     dev.write(1, &[7u8; 512]).await.unwrap();
///     let mut buf = [0u8; 1024];
///     dev.read(0, &mut buf).await.unwrap();
///     assert_eq!(&buf[..512], &[0u8; 512][..]);
///     assert_eq!(&buf[512..], &[7u8; 512][..]);
/// });
/// ```
#[derive(Debug)]
pub struct MemDevice {
    info: BlockInfo,
    data: RefCell<Vec<u8>>,
    faults: RefCell<Vec<Fault>>,
    disconnected: Cell<bool>,
    latency_polls: u32,
    stats: Cell<MemStats>,
}

impl MemDevice {
    /// A zeroed device of `sectors` sectors of `sector_size` bytes.
    ///
    /// # Panics
    ///
    /// If `sector_size` is not a power of two in 512..=4096, or the size
    /// does not fit in memory.
    pub fn new(sector_size: u32, sectors: u64) -> MemDevice {
        let len = usize::try_from(sectors * u64::from(sector_size)).expect("device too large");
        Self::build(sector_size, vec![0; len])
    }

    /// A device holding `bytes`, zero-padded to a whole number of sectors.
    ///
    /// # Panics
    ///
    /// If `sector_size` is not a power of two in 512..=4096.
    pub fn from_bytes(sector_size: u32, mut bytes: Vec<u8>) -> MemDevice {
        let rem = bytes.len() % sector_size as usize;
        if rem != 0 {
            bytes.resize(bytes.len() + sector_size as usize - rem, 0);
        }
        Self::build(sector_size, bytes)
    }

    fn build(sector_size: u32, data: Vec<u8>) -> MemDevice {
        let info = BlockInfo {
            sector_size,
            sectors: (data.len() / sector_size as usize) as u64,
            read_only: false,
            buf_align: 1,
        };
        assert!(info.is_valid(), "invalid sector size {sector_size}");
        MemDevice {
            info,
            data: RefCell::new(data),
            faults: RefCell::new(Vec::new()),
            disconnected: Cell::new(false),
            latency_polls: 0,
            stats: Cell::new(MemStats::default()),
        }
    }

    /// The same device, refusing writes.
    pub fn read_only(mut self) -> MemDevice {
        self.info.read_only = true;
        self
    }

    /// The same device, requiring buffers aligned to `align` bytes.
    ///
    /// # Panics
    ///
    /// If `align` is not a power of two.
    pub fn with_buf_align(mut self, align: usize) -> MemDevice {
        assert!(align.is_power_of_two());
        self.info.buf_align = align;
        self
    }

    /// The same device, each request returning `Pending` `polls` times
    /// before it takes effect.
    pub fn with_latency(mut self, polls: u32) -> MemDevice {
        self.latency_polls = polls;
        self
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.faults.borrow_mut().push(fault);
    }

    /// Removes every fault and reconnects the device.
    pub fn clear_faults(&self) {
        self.faults.borrow_mut().clear();
        self.disconnected.set(false);
    }

    /// The counters.
    pub fn stats(&self) -> MemStats {
        self.stats.get()
    }

    /// A copy of the device's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data.borrow().clone()
    }

    /// The device's bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.data.into_inner()
    }

    /// The fault (if any) that hits a request; consumes one of its uses.
    fn fault_for(&self, op: FaultOn, sectors: Range<u64>) -> Option<FaultKind> {
        if self.disconnected.get() {
            return Some(FaultKind::Disconnect);
        }
        let mut faults = self.faults.borrow_mut();
        let fault = faults.iter_mut().find(|f| f.matches(op, &sectors))?;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        if fault.kind == FaultKind::Disconnect {
            self.disconnected.set(true);
        }
        Some(fault.kind)
    }

    fn update(&self, f: impl FnOnce(&mut MemStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Counts a request in flight until the guard drops, and waits out the
    /// configured latency.
    async fn in_flight(&self) -> InFlight<'_> {
        self.update(|s| {
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        });
        let guard = InFlight(self);
        YieldN(self.latency_polls).await;
        guard
    }

    fn range(&self, offset_sector: u64, count: u64) -> Range<usize> {
        let ss = self.info.sector_size as usize;
        // check_request has bounded both by the device's length, a usize.
        let start = offset_sector as usize * ss;
        start..start + count as usize * ss
    }
}

struct InFlight<'a>(&'a MemDevice);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.in_flight -= 1);
    }
}

/// Returns `Pending` (waking itself at once) `n` times, then `Ready`.
struct YieldN(u32);

impl Future for YieldN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl BlockDevice for MemDevice {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let count = check_request(&self.info, sector, buf.len(), buf.as_ptr() as usize)?;
        self.update(|s| s.reads += 1);
        let _guard = self.in_flight().await;
        match self.fault_for(FaultOn::Read, sector..sector + count) {
            Some(FaultKind::Io) => return Err(ReadError::Io),
            Some(FaultKind::Disconnect) => return Err(ReadError::Disconnected),
            None => {}
        }
        buf.copy_from_slice(&self.data.borrow()[self.range(sector, count)]);
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), WriteError> {
        let count = check_request(&self.info, sector, buf.len(), buf.as_ptr() as usize)?;
        if self.info.read_only {
            return Err(WriteError::ReadOnly);
        }
        self.update(|s| s.writes += 1);
        let _guard = self.in_flight().await;
        match self.fault_for(FaultOn::Write, sector..sector + count) {
            Some(FaultKind::Io) => return Err(WriteError::Io),
            Some(FaultKind::Disconnect) => return Err(WriteError::Disconnected),
            None => {}
        }
        let range = self.range(sector, count);
        self.data.borrow_mut()[range].copy_from_slice(buf);
        Ok(())
    }

    async fn flush(&self) -> Result<(), FlushError> {
        self.update(|s| s.flushes += 1);
        let _guard = self.in_flight().await;
        match self.fault_for(FaultOn::Flush, 0..0) {
            Some(FaultKind::Io) => Err(FlushError::Io),
            Some(FaultKind::Disconnect) => Err(FlushError::Disconnected),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::block::RequestError;
    use futures::executor::block_on;
    use futures::future::join_all;

    #[test]
    fn read_back_what_was_written() {
        let dev = MemDevice::new(512, 16);
        block_on(async {
            let data: Vec<u8> = (0..2048).map(|i| (i % 251) as u8).collect();
            dev.write(3, &data).await.unwrap();
            let mut buf = vec![0u8; 2048];
            dev.read(3, &mut buf).await.unwrap();
            assert_eq!(buf, data);
            let mut one = [1u8; 512];
            dev.read(2, &mut one).await.unwrap();
            assert_eq!(one, [0u8; 512]);
            dev.flush().await.unwrap();
        });
        assert_eq!(dev.stats().writes, 1);
        assert_eq!(dev.stats().reads, 2);
        assert_eq!(dev.stats().flushes, 1);
    }

    #[test]
    fn from_bytes_pads_to_sectors() {
        let dev = MemDevice::from_bytes(512, vec![9; 700]);
        assert_eq!(dev.info().sectors, 2);
        let v = dev.into_vec();
        assert_eq!(v.len(), 1024);
        assert!(v[..700].iter().all(|&b| b == 9));
        assert!(v[700..].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_requests_are_refused() {
        let dev = MemDevice::new(4096, 2).with_buf_align(4096).read_only();
        block_on(async {
            let mut buf = vec![0u8; 4096 * 2];
            // A Vec<u8> is not necessarily 4096-aligned: find one that is not.
            let off = if (buf.as_ptr() as usize).is_multiple_of(4096) {
                8
            } else {
                0
            };
            let misaligned = &mut buf[off..off + 4096];
            assert_eq!(
                dev.read(0, misaligned).await,
                Err(ReadError::Request(RequestError::Misaligned { align: 4096 }))
            );
            let mut v = vec![0u8; 4096 * 3];
            let off = (v.as_ptr() as usize).wrapping_neg() % 4096;
            let aligned = &mut v[off..off + 4096];
            dev.read(1, aligned).await.unwrap();
            assert!(matches!(
                dev.read(2, aligned).await,
                Err(ReadError::Request(RequestError::OutOfRange { .. }))
            ));
            assert_eq!(dev.write(0, aligned).await, Err(WriteError::ReadOnly));
        });
        assert_eq!(dev.stats().reads, 1);
        assert_eq!(dev.stats().writes, 0);
    }

    #[test]
    fn io_fault_hits_only_its_range_and_count() {
        let dev = MemDevice::new(512, 16);
        dev.inject(Fault::new(FaultOn::Read, 4..6, FaultKind::Io).times(2));
        block_on(async {
            let mut buf = [0u8; 1024];
            dev.read(0, &mut buf).await.unwrap();
            dev.read(6, &mut buf).await.unwrap();
            assert_eq!(dev.read(3, &mut buf).await, Err(ReadError::Io));
            assert_eq!(dev.read(5, &mut buf).await, Err(ReadError::Io));
            dev.read(5, &mut buf).await.unwrap();
            // Writes are not hit by a read fault.
            dev.write(4, &buf).await.unwrap();
        });
    }

    #[test]
    fn write_fault_leaves_data_untouched() {
        let dev = MemDevice::new(512, 4);
        dev.inject(Fault::new(FaultOn::Write, 0..4, FaultKind::Io).times(1));
        block_on(async {
            assert_eq!(dev.write(1, &[5u8; 512]).await, Err(WriteError::Io));
        });
        assert!(dev.to_vec().iter().all(|&b| b == 0));
    }

    #[test]
    fn disconnect_is_sticky() {
        let dev = MemDevice::new(512, 4);
        dev.inject(Fault::new(FaultOn::Flush, 0..0, FaultKind::Disconnect).times(1));
        block_on(async {
            let mut buf = [0u8; 512];
            dev.read(0, &mut buf).await.unwrap();
            assert_eq!(dev.flush().await, Err(FlushError::Disconnected));
            assert_eq!(dev.read(0, &mut buf).await, Err(ReadError::Disconnected));
            assert_eq!(dev.write(0, &buf).await, Err(WriteError::Disconnected));
            dev.clear_faults();
            dev.read(0, &mut buf).await.unwrap();
        });
    }

    #[test]
    fn many_requests_in_flight() {
        let dev = MemDevice::new(512, 64).with_latency(3);
        block_on(async {
            let writes = (0..32u64).map(|i| {
                let dev = &dev;
                async move { dev.write(i * 2, &[i as u8; 1024]).await }
            });
            assert!(join_all(writes).await.iter().all(|r| r.is_ok()));
        });
        assert_eq!(dev.stats().max_in_flight, 32);
        assert_eq!(dev.stats().in_flight, 0);
        let v = dev.into_vec();
        for i in 0..32usize {
            assert!(v[i * 1024..(i + 1) * 1024].iter().all(|&b| b == i as u8));
        }
    }

    #[test]
    fn dropped_request_leaves_in_flight_count_right() {
        let dev = MemDevice::new(512, 4).with_latency(5);
        let mut buf = [0u8; 512];
        {
            let mut fut = core::pin::pin!(dev.read(0, &mut buf));
            let waker = futures::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            assert_eq!(dev.stats().in_flight, 1);
        }
        assert_eq!(dev.stats().in_flight, 0);
    }
}
