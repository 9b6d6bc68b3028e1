use super::*;
use crate::mem::{Fault, FaultKind, FaultOn, MemDevice};
use crate::RequestError;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::future::Future;
use core::pin::{pin, Pin};
use core::task::{Context, Poll};
use futures::executor::block_on;
use futures::future::join_all;
use futures::task::noop_waker_ref;

/// 8 sectors of 512 bytes: small chunks keep the tests small.
const CHUNK: usize = 4096;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ (i >> 16)) as u8)
        .collect()
}

/// A cache of `chunks` chunks of [`CHUNK`] over `dev`.
fn cached(dev: MemDevice, chunks: usize) -> CachedDevice<MemDevice> {
    CachedDevice::new(dev, CacheConfig::new(chunks * CHUNK).chunk_bytes(CHUNK)).unwrap()
}

fn read(dev: &impl BlockDevice, offset: usize, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    block_on(dev.read((offset / 512) as u64, &mut buf)).unwrap();
    buf
}

/// A small xorshift PRNG for the randomized tests (seeded, so they replay).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_miss_reads_the_whole_chunk_once_then_hits() {
    let data = pattern(CHUNK * 4);
    let dev = cached(MemDevice::from_bytes(512, data.clone()), 4);
    assert_eq!(read(&dev, 512, 512), &data[512..1024]);
    let s = dev.stats();
    assert_eq!(
        (s.misses, s.hits, s.fills, s.fill_bytes),
        (1, 0, 1, CHUNK as u64)
    );
    assert_eq!(dev.inner().stats().reads, 1);
    // Anywhere in the same chunk: no device read.
    assert_eq!(read(&dev, 0, CHUNK), &data[..CHUNK]);
    assert_eq!(read(&dev, 3584, 512), &data[3584..4096]);
    assert_eq!(dev.inner().stats().reads, 1);
    let s = dev.stats();
    assert_eq!((s.misses, s.hits, s.chunks), (1, 2, 1));
    assert_eq!(s.resident_bytes, CHUNK as u64);
}

#[test]
fn reads_spanning_chunks_and_the_device_end() {
    // Two and a half chunks: the last chunk is half a chunk long.
    let data = pattern(CHUNK * 5 / 2);
    let dev = cached(MemDevice::from_bytes(512, data.clone()), 8);
    // Across the first boundary: two fills.
    assert_eq!(
        read(&dev, CHUNK - 512, 1024),
        &data[CHUNK - 512..CHUNK + 512]
    );
    assert_eq!(dev.stats().fills, 2);
    // The last sector: the fill reads only what the device has.
    assert_eq!(read(&dev, data.len() - 512, 512), &data[data.len() - 512..]);
    let s = dev.stats();
    assert_eq!((s.fills, s.fill_bytes), (3, (CHUNK * 2 + CHUNK / 2) as u64));
    // Now every range is a hit: the whole device in one read, and every
    // sector-aligned range of up to 3 chunks.
    assert_eq!(read(&dev, 0, data.len()), data);
    for start in (0..data.len()).step_by(512) {
        for len in (512..=data.len() - start).step_by(1536) {
            assert_eq!(
                read(&dev, start, len),
                &data[start..start + len],
                "{start}+{len}"
            );
        }
    }
    assert_eq!(dev.inner().stats().reads, 3);
    // Past the end: the device's answer, nothing read.
    let mut buf = vec![0u8; 1024];
    let sectors = (data.len() / 512) as u64;
    assert!(matches!(
        block_on(dev.read(sectors - 1, &mut buf)),
        Err(ReadError::Request(RequestError::OutOfRange { .. }))
    ));
    assert_eq!(dev.inner().stats().reads, 3);
}

#[test]
fn the_least_recently_used_chunk_goes_first() {
    let data = pattern(CHUNK * 8);
    let dev = cached(MemDevice::from_bytes(512, data.clone()), 3);
    let chunk = |n: usize| read(&dev, n * CHUNK, 512);
    for n in [0, 1, 2] {
        chunk(n);
    }
    chunk(0); // 0 is now the most recent, 1 the least.
    chunk(3); // evicts 1
    assert_eq!(dev.stats().evictions, 1);
    let reads = dev.inner().stats().reads;
    for n in [0, 2, 3] {
        assert_eq!(chunk(n), &data[n * CHUNK..n * CHUNK + 512]);
    }
    assert_eq!(dev.inner().stats().reads, reads, "0, 2 and 3 are cached");
    // LRU order now 0, 2, 3: chunk 1 evicts 0, chunk 4 evicts 2.
    chunk(1);
    chunk(4);
    assert_eq!(dev.stats().evictions, 3);
    let reads = dev.inner().stats().reads;
    chunk(3);
    assert_eq!(dev.inner().stats().reads, reads, "3 is cached");
    chunk(0);
    chunk(2);
    assert_eq!(dev.inner().stats().reads, reads + 2, "0 and 2 were evicted");
    assert!(dev.stats().resident_bytes_max <= 3 * CHUNK as u64);
}

#[test]
fn capacity_is_never_exceeded_under_concurrent_random_reads_and_writes() {
    for seed in 1..=8u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let size = CHUNK * 16 + 1024; // a short last chunk
        let mut model = pattern(size);
        let mem = MemDevice::from_bytes(512, model.clone()).with_latency(2);
        // 3.5 chunks of capacity: 3 chunks.
        let dev =
            CachedDevice::new(mem, CacheConfig::new(CHUNK * 7 / 2).chunk_bytes(CHUNK)).unwrap();
        assert_eq!(dev.capacity_bytes(), 3 * CHUNK);
        let sectors = (size / 512) as u64;
        for _ in 0..60 {
            // A batch of up to 12 requests in flight together; reads and
            // writes of one batch never overlap each other, so each read's
            // answer is the model's.
            let mut ops: Vec<(bool, u64, u64)> = Vec::new();
            for _ in 0..1 + rng.below(12) {
                let start = rng.below(sectors);
                let count = 1 + rng.below((sectors - start).min(20));
                let write = rng.below(4) == 0;
                let clash = ops
                    .iter()
                    .any(|&(w, s, c)| (w || write) && start < s + c && s < start + count);
                if !clash {
                    ops.push((write, start, count));
                }
            }
            let mut bufs: Vec<Vec<u8>> = ops
                .iter()
                .map(|&(write, start, count)| {
                    let (a, b) = (start as usize * 512, (start + count) as usize * 512);
                    if write {
                        (a..b).map(|i| (i as u64 ^ seed ^ rng.0) as u8).collect()
                    } else {
                        vec![0u8; b - a]
                    }
                })
                .collect();
            let futures = ops
                .iter()
                .zip(bufs.iter_mut())
                .map(|(&(write, start, _), buf)| {
                    let dev = &dev;
                    async move {
                        if write {
                            dev.write(start, buf).await.map_err(|_| ())
                        } else {
                            dev.read(start, buf).await.map_err(|_| ())
                        }
                    }
                });
            for r in block_on(join_all(futures)) {
                r.unwrap();
            }
            for (&(write, start, _), buf) in ops.iter().zip(&bufs) {
                let a = start as usize * 512;
                if write {
                    model[a..a + buf.len()].copy_from_slice(buf);
                } else {
                    assert_eq!(buf[..], model[a..a + buf.len()], "seed {seed}");
                }
            }
            let s = dev.stats();
            assert!(
                s.resident_bytes_max <= 3 * CHUNK as u64,
                "seed {seed}: {s:?}"
            );
            assert!(s.chunks <= 3);
        }
        // Everything the cache holds now is the device's data.
        assert_eq!(read(&dev, 0, size), model, "seed {seed}");
        assert_eq!(dev.inner().to_vec(), model);
        let s = dev.stats();
        assert!(
            s.hits > 0 && s.evictions > 0 && s.invalidations > 0,
            "{s:?}"
        );
    }
}

#[test]
fn device_errors_are_not_cached() {
    let data = pattern(CHUNK * 4);
    let dev = cached(MemDevice::from_bytes(512, data.clone()), 4);
    dev.inner()
        .inject(Fault::new(FaultOn::Read, 9..10, FaultKind::Io).times(1));
    let mut buf = vec![0u8; 512];
    // Sector 8 is in chunk 1, whose fill touches the faulty sector 9.
    assert_eq!(block_on(dev.read(8, &mut buf)), Err(ReadError::Io));
    let s = dev.stats();
    assert_eq!((s.fills, s.chunks, s.resident_bytes), (0, 0, 0));
    // Nothing was kept: the next read goes to the device and succeeds.
    assert_eq!(read(&dev, 8 * 512, 512), &data[4096..4608]);
    assert_eq!(dev.inner().stats().reads, 2);
    assert_eq!(dev.stats().chunks, 1);
}

#[test]
fn writes_then_reads_see_new_data() {
    let data = pattern(CHUNK * 4);
    let mut model = data.clone();
    let dev = cached(MemDevice::from_bytes(512, data), 4);
    assert_eq!(read(&dev, 0, CHUNK * 4), model); // all four cached
    assert_eq!(dev.stats().chunks, 4);
    // A sector in the middle of chunk 1.
    block_on(dev.write(10, &[0xaa; 512])).unwrap();
    model[5120..5632].fill(0xaa);
    assert_eq!(dev.stats().invalidations, 1);
    assert_eq!(read(&dev, 0, CHUNK * 4), model);
    // Across chunks 2 and 3.
    block_on(dev.write(15, &[0x55; 1024])).unwrap();
    model[7680..8704].fill(0x55);
    assert_eq!(dev.stats().invalidations, 3);
    assert_eq!(read(&dev, 7168, 2048), &model[7168..9216]);
    assert_eq!(read(&dev, 0, CHUNK * 4), model);
    assert_eq!(dev.inner().to_vec(), model);
    // Chunks a write does not touch stay cached.
    let reads = dev.inner().stats().reads;
    block_on(dev.write(0, &[1; 512])).unwrap();
    read(&dev, CHUNK * 3, CHUNK);
    assert_eq!(dev.inner().stats().reads, reads);
}

#[test]
fn a_failed_or_refused_write_leaves_the_cache_right() {
    let data = pattern(CHUNK * 2);
    let dev = cached(MemDevice::from_bytes(512, data.clone()), 2);
    read(&dev, 0, CHUNK * 2);
    dev.inner()
        .inject(Fault::new(FaultOn::Write, 0..1, FaultKind::Io).times(1));
    assert_eq!(block_on(dev.write(0, &[7; 512])), Err(WriteError::Io));
    // The chunk was dropped; what the device holds is read again.
    assert_eq!(read(&dev, 0, 512), dev.inner().to_vec()[..512]);
    // A read-only device refuses and the cache keeps everything.
    let ro = cached(MemDevice::from_bytes(512, data.clone()).read_only(), 2);
    read(&ro, 0, CHUNK * 2);
    assert_eq!(block_on(ro.write(0, &[7; 512])), Err(WriteError::ReadOnly));
    assert_eq!((ro.stats().invalidations, ro.stats().chunks), (0, 2));
    assert_eq!(read(&ro, 0, CHUNK * 2), data);
}

/// Returns `Pending` once (waking itself), then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A device whose reads take their data when they start and complete a
/// poll later, and whose writes take effect when they complete, a poll
/// after they start: as a real backend may answer, a read can return data
/// older than a write that completed first.
struct Laggy {
    data: RefCell<Vec<u8>>,
    reads: Cell<u64>,
}

impl Laggy {
    fn new(data: Vec<u8>) -> Laggy {
        Laggy {
            data: RefCell::new(data),
            reads: Cell::new(0),
        }
    }
}

impl BlockDevice for Laggy {
    fn info(&self) -> BlockInfo {
        BlockInfo {
            sector_size: 512,
            sectors: (self.data.borrow().len() / 512) as u64,
            read_only: false,
            buf_align: 1,
        }
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_request(&self.info(), sector, buf.len(), 0)?;
        let at = sector as usize * 512;
        buf.copy_from_slice(&self.data.borrow()[at..at + buf.len()]);
        self.reads.set(self.reads.get() + 1);
        YieldOnce(false).await;
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), WriteError> {
        check_request(&self.info(), sector, buf.len(), 0)?;
        YieldOnce(false).await;
        let at = sector as usize * 512;
        self.data.borrow_mut()[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    async fn flush(&self) -> Result<(), FlushError> {
        Ok(())
    }
}

fn laggy_cached() -> CachedDevice<Laggy> {
    CachedDevice::new(
        Laggy::new(vec![1u8; CHUNK * 2]),
        CacheConfig::new(CHUNK * 2).chunk_bytes(CHUNK),
    )
    .unwrap()
}

#[test]
fn a_fill_that_a_write_overtook_is_not_kept() {
    let dev = laggy_cached();
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut old = vec![0u8; 512];
    {
        // The fill takes the old data and waits...
        let mut fill = pin!(dev.read(0, &mut old));
        assert!(fill.as_mut().poll(&mut cx).is_pending());
        // ... a write of the same chunk starts and completes ...
        block_on(dev.write(1, &[2u8; 512])).unwrap();
        // ... then the fill completes with the old data.
        assert!(matches!(fill.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    }
    assert_eq!(old, [1u8; 512]);
    assert_eq!(dev.stats().fills_discarded, 1);
    assert_eq!(dev.stats().chunks, 0);
    // A read after the write sees it.
    assert_eq!(read(&dev, 512, 512), [2u8; 512]);
    assert_eq!(dev.stats().chunks, 1);
}

#[test]
fn a_fill_during_a_write_is_not_kept() {
    let dev = laggy_cached();
    let mut cx = Context::from_waker(noop_waker_ref());
    {
        // The write is in flight (not yet on the device) ...
        let data = [3u8; 512];
        let mut write = pin!(dev.write(8, &data));
        assert!(write.as_mut().poll(&mut cx).is_pending());
        // ... a read of its chunk fills from the old data and completes ...
        assert_eq!(read(&dev, 4096, 512), [1u8; 512]);
        // ... then the write lands.
        assert!(matches!(write.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    }
    assert_eq!(dev.stats().fills_discarded, 1);
    assert_eq!(read(&dev, 4096, 512), [3u8; 512]);
    // A fill of another chunk while a write ran is not kept either (writes
    // are tracked as a whole); once no write runs, fills are kept again.
    assert_eq!(dev.stats().chunks, 1);
    assert_eq!(read(&dev, 0, 512), [1u8; 512]);
    assert_eq!(dev.stats().chunks, 2);
}

#[test]
fn a_dropped_fill_gives_its_buffer_back() {
    let dev = laggy_cached();
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut buf = vec![0u8; 512];
    {
        let mut fill = pin!(dev.read(0, &mut buf));
        assert!(fill.as_mut().poll(&mut cx).is_pending());
        assert_eq!(dev.stats().resident_bytes, CHUNK as u64);
    }
    let s = dev.stats();
    assert_eq!((s.resident_bytes, s.chunks, s.fills), (0, 0, 0));
    assert_eq!(read(&dev, 0, 512), [1u8; 512]);
    assert_eq!(dev.stats().chunks, 1);
}

#[test]
fn below_one_chunk_the_cache_is_off() {
    let data = pattern(CHUNK * 2);
    for capacity in [0, CHUNK - 1] {
        let dev = CachedDevice::new(
            MemDevice::from_bytes(512, data.clone()),
            CacheConfig::new(capacity).chunk_bytes(CHUNK),
        )
        .unwrap();
        assert_eq!(dev.capacity_bytes(), 0);
        for _ in 0..3 {
            assert_eq!(read(&dev, 512, 1024), &data[512..1536]);
        }
        // Each read is one device read of exactly what was asked.
        assert_eq!(dev.inner().stats().reads, 3);
        let s = dev.stats();
        assert_eq!((s.bypass_reads, s.fills, s.resident_bytes_max), (3, 0, 0));
    }
}

#[test]
fn shrinking_and_clearing_free_chunks_at_once() {
    let data = pattern(CHUNK * 8);
    let dev = cached(MemDevice::from_bytes(512, data.clone()), 8);
    read(&dev, 0, CHUNK * 8);
    assert_eq!(dev.stats().resident_bytes, 8 * CHUNK as u64);
    read(&dev, 0, 512); // chunk 0 is now the most recent
    dev.set_capacity_bytes(2 * CHUNK);
    let s = dev.stats();
    assert_eq!((s.chunks, s.resident_bytes), (2, 2 * CHUNK as u64));
    let reads = dev.inner().stats().reads;
    read(&dev, 0, 512);
    read(&dev, CHUNK * 7, 512);
    assert_eq!(dev.inner().stats().reads, reads, "the two most recent stay");
    dev.clear();
    assert_eq!(dev.stats().resident_bytes, 0);
    dev.set_capacity_bytes(0);
    assert_eq!(read(&dev, 0, CHUNK * 8), data);
    assert_eq!(dev.stats().chunks, 0);
    dev.set_capacity_bytes(CHUNK * 8);
    assert_eq!(read(&dev, 0, CHUNK * 8), data);
    assert_eq!(dev.stats().chunks, 8);
}

#[test]
fn bad_requests_and_configs() {
    let dev = cached(MemDevice::new(512, 16).with_buf_align(512), 2);
    let mut buf = AlignedBuf::new(1024, 512);
    assert!(matches!(
        block_on(dev.read(0, &mut buf.as_mut_slice()[..100])),
        Err(ReadError::Request(RequestError::BadLength { .. }))
    ));
    assert!(matches!(
        block_on(dev.read(15, buf.as_mut_slice())),
        Err(ReadError::Request(RequestError::OutOfRange { .. }))
    ));
    assert!(matches!(
        block_on(dev.read(u64::MAX, &mut buf.as_mut_slice()[..512])),
        Err(ReadError::Request(RequestError::OutOfRange { .. }))
    ));
    let mut v = vec![0u8; 1024 + 1];
    let misaligned = if (v.as_ptr() as usize).is_multiple_of(2) {
        &mut v[1..513]
    } else {
        &mut v[..512]
    };
    assert!(matches!(
        block_on(dev.read(0, misaligned)),
        Err(ReadError::Request(RequestError::Misaligned { align: 512 }))
    ));
    assert!(matches!(
        block_on(dev.write(16, &buf.as_slice()[..512])),
        Err(WriteError::Request(RequestError::OutOfRange { .. }))
    ));
    assert_eq!(dev.inner().stats().reads, 0);
    assert_eq!(block_on(dev.read(3, &mut buf.as_mut_slice()[..0])), Ok(()));
    for chunk_bytes in [0, 256, 3000, CHUNK_BYTES_MAX * 2] {
        assert!(matches!(
            CachedDevice::new(
                MemDevice::new(512, 16),
                CacheConfig::new(CHUNK).chunk_bytes(chunk_bytes)
            ),
            Err(CacheConfigError::ChunkBytes { .. })
        ));
    }
    assert!(CachedDevice::new(
        MemDevice::new(4096, 4),
        CacheConfig::new(0).chunk_bytes(2048)
    )
    .is_err());
}

#[test]
fn fills_are_aligned_and_a_busy_cache_reads_past_itself() {
    // 512-byte sectors but 4096-byte alignment: a part of a request that
    // starts inside a sector run may be misaligned for the device.
    let data = pattern(CHUNK * 4);
    let mem = MemDevice::from_bytes(512, data.clone())
        .with_buf_align(4096)
        .with_latency(3);
    // Room for one chunk buffer (a chunk plus its alignment slack).
    let dev = CachedDevice::new(mem, CacheConfig::new(CHUNK + 4095).chunk_bytes(CHUNK)).unwrap();
    assert_eq!(dev.capacity_bytes(), CHUNK + 4095);
    let mut a = AlignedBuf::new(512, 4096);
    let mut b = AlignedBuf::new(1024, 4096);
    let mut cx = Context::from_waker(noop_waker_ref());
    {
        // `a` holds the only buffer while `b` (the last sector of chunk 1
        // and the first of chunk 2) reads past the cache, its second part
        // through an aligned bounce buffer.
        let mut fill = pin!(dev.read(24, a.as_mut_slice()));
        assert!(fill.as_mut().poll(&mut cx).is_pending());
        block_on(dev.read(15, b.as_mut_slice())).unwrap();
        while fill.as_mut().poll(&mut cx).is_pending() {}
    }
    assert_eq!(a.as_slice(), &data[24 * 512..25 * 512]);
    assert_eq!(b.as_slice(), &data[15 * 512..17 * 512]);
    let s = dev.stats();
    assert_eq!((s.fills, s.bypass_reads, s.chunks), (1, 2, 1), "{s:?}");
    assert!(s.resident_bytes_max <= dev.capacity_bytes() as u64);
    // 4096-byte sectors.
    let data = pattern(CHUNK * 3);
    let dev = CachedDevice::new(
        MemDevice::from_bytes(4096, data.clone()).with_buf_align(4096),
        CacheConfig::new(2 * (CHUNK * 2 + 4095)).chunk_bytes(CHUNK * 2),
    )
    .unwrap();
    let mut buf = AlignedBuf::new(CHUNK * 3, 4096);
    block_on(dev.read(0, buf.as_mut_slice())).unwrap();
    assert_eq!(buf.as_slice(), data);
    assert_eq!(dev.stats().fill_bytes, (CHUNK * 3) as u64);
    block_on(dev.read(0, buf.as_mut_slice())).unwrap();
    assert_eq!(buf.as_slice(), data);
    assert_eq!(dev.inner().stats().reads, 2);
}

#[test]
fn cached_chunks_outlive_a_disconnect_and_flush_passes_through() {
    let data = pattern(CHUNK * 2);
    let dev = cached(MemDevice::from_bytes(512, data.clone()), 2);
    read(&dev, 0, CHUNK);
    block_on(dev.flush()).unwrap();
    assert_eq!(dev.inner().stats().flushes, 1);
    dev.inner()
        .inject(Fault::new(FaultOn::Any, 0..1, FaultKind::Disconnect));
    block_on(dev.flush()).unwrap_err();
    let mut buf = vec![0u8; 512];
    assert_eq!(
        block_on(dev.read(8, &mut buf)),
        Err(ReadError::Disconnected)
    );
    assert_eq!(read(&dev, 512, 512), &data[512..1024]);
}
