//! A bounded read cache in front of a block device: an LRU of aligned chunks.
//!
//! [`CachedDevice`] wraps any [`BlockDevice`] and is one itself, with the
//! same geometry. The device is cut into chunks of
//! [`CacheConfig::chunk_bytes`] (a power of two, a whole number of sectors;
//! the last chunk ends with the device). A read takes each chunk it touches
//! from the cache, or, on a miss, reads the *whole* chunk from the device
//! with one request, copies its part out, and keeps the chunk. Hot data is
//! then served by a copy, without a request to the device.
//!
//! # Memory
//!
//! The cache holds at most [`capacity_bytes`](CachedDevice::capacity_bytes):
//! every chunk buffer (`chunk_bytes + buf_align - 1` bytes, to align it as
//! the device needs) counts, the ones held by misses in flight too. Buffers
//! are allocated on a miss, not up front, and *fallibly*: when the heap
//! cannot give one, the cache reuses its least recently used chunk or reads
//! past itself. It never fails a read for want of a chunk buffer and never
//! grows past its capacity; a capacity below one chunk turns it off (every
//! request goes straight to the device).
//! [`set_capacity_bytes`](CachedDevice::set_capacity_bytes) changes it at
//! any time; shrinking frees chunks at once (a fill in flight then drops
//! its chunk when it finishes). Bookkeeping adds a few dozen bytes per
//! chunk.
//!
//! # Writes and flushes
//!
//! A write drops the cached chunks it touches before it starts, and a fill
//! (a miss's chunk read) is kept only if no write ran at any time while it
//! was in flight: without that, a fill could read old data, and keep it,
//! while a write it raced landed. So after a write completes, no chunk of
//! its range is cached until a read that began after it. (Writes are
//! tracked as a whole, not per range: a write anywhere makes the fills
//! then in flight uncacheable. This cache is for read-mostly data.) A
//! flush changes no data and goes straight to the device.
//!
//! # Errors
//!
//! Requests are checked with [`check_request`] against the same geometry
//! as the device's, so they get the same answers. A failed fill returns
//! the device's error and keeps nothing. Chunks cached before a device
//! failed (an I/O error elsewhere, a disconnect) are still served.
//!
//! # Concurrency
//!
//! Single-threaded (`RefCell`), like everything on the Ringlet executor;
//! many requests may be in flight. No state is borrowed across an await.
//! Two misses of one chunk at once both read it; the second fill is
//! dropped.

use alloc::collections::BTreeMap;
use core::cell::RefCell;
use core::fmt;
use core::ops::RangeInclusive;

use crate::block::{check_request, BlockDevice, BlockInfo, FlushError, ReadError, WriteError};
use crate::bytes::AlignedBuf;

/// Default [`CacheConfig::chunk_bytes`]: 64 KiB, 16 pages, one blkfront
/// (indirect) request.
pub const CHUNK_BYTES_DEFAULT: usize = 64 * 1024;
/// The largest [`CacheConfig::chunk_bytes`] accepted.
pub const CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// How a [`CachedDevice`] is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most bytes the cache may hold (chunk buffers); below one chunk
    /// the cache is off.
    pub capacity_bytes: usize,
    /// Bytes per chunk: a power of two, at least the device's sector size,
    /// at most [`CHUNK_BYTES_MAX`].
    pub chunk_bytes: usize,
}

impl CacheConfig {
    /// `capacity_bytes` in chunks of [`CHUNK_BYTES_DEFAULT`].
    pub fn new(capacity_bytes: usize) -> CacheConfig {
        CacheConfig {
            capacity_bytes,
            chunk_bytes: CHUNK_BYTES_DEFAULT,
        }
    }

    /// The same with chunks of `chunk_bytes`.
    pub fn chunk_bytes(self, chunk_bytes: usize) -> CacheConfig {
        CacheConfig {
            chunk_bytes,
            ..self
        }
    }
}

/// A [`CacheConfig`] that does not fit the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheConfigError {
    /// `chunk_bytes` is not a power of two, is smaller than the device's
    /// sector size, or is larger than [`CHUNK_BYTES_MAX`].
    ChunkBytes {
        /// The chunk size asked for.
        chunk_bytes: usize,
        /// The device's sector size.
        sector_size: u32,
    },
}

impl fmt::Display for CacheConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CacheConfigError::ChunkBytes {
                chunk_bytes,
                sector_size,
            } => write!(
                f,
                "cache chunk of {chunk_bytes} bytes: not a power of two from the sector size \
                 ({sector_size}) to {CHUNK_BYTES_MAX}"
            ),
        }
    }
}

impl core::error::Error for CacheConfigError {}

/// Counters of a [`CachedDevice`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Chunk parts of reads found in the cache.
    pub hits: u64,
    /// Chunk parts of reads not found while the cache was on (each a fill
    /// or a read past the cache).
    pub misses: u64,
    /// Device reads of whole chunks (fills) that succeeded.
    pub fills: u64,
    /// Bytes those fills read.
    pub fill_bytes: u64,
    /// Device reads that went past the cache: whole requests while the
    /// cache was off, and misses that found every buffer it may have busy
    /// with a fill in flight.
    pub bypass_reads: u64,
    /// Chunks dropped to make room (least recently used first).
    pub evictions: u64,
    /// Chunks dropped because a write touched them.
    pub invalidations: u64,
    /// Fills not kept: a write ran while they were in flight, another fill
    /// of the same chunk came first, or the capacity shrank meanwhile.
    pub fills_discarded: u64,
    /// Chunk buffers the heap could not give (the cache made do without).
    pub alloc_failures: u64,
    /// Bytes of chunk buffers held now (cached or filling).
    pub resident_bytes: u64,
    /// The most bytes of chunk buffers ever held at once.
    pub resident_bytes_max: u64,
    /// Chunks cached now.
    pub chunks: u64,
}

/// A cached chunk.
struct Chunk {
    buf: AlignedBuf,
    /// Valid bytes (less than the chunk size only for the device's last chunk).
    len: usize,
    /// Its key in `State::lru`.
    stamp: u64,
}

/// Everything that changes, behind one `RefCell`.
struct State {
    chunks: BTreeMap<u64, Chunk>,
    /// Least recently used first: stamp → chunk number.
    lru: BTreeMap<u64, u64>,
    next_stamp: u64,
    /// Chunk buffers that may exist at once (capacity / buffer size).
    buffers_max: usize,
    /// Chunk buffers that exist: cached plus held by fills in flight.
    buffers: usize,
    /// Bumped when a write starts and when it ends.
    write_epoch: u64,
    writes_in_flight: u32,
    stats: CacheStats,
}

/// A [`BlockDevice`] with a bounded LRU read cache in front of it (see the
/// module docs).
///
/// # Examples
///
/// ```
/// use ringlet_storage::{BlockDevice, CacheConfig, CachedDevice, MemDevice};
/// let dev = CachedDevice::new(MemDevice::new(512, 1024), CacheConfig::new(256 * 1024)).unwrap();
/// futures::executor::block_on(async {
///     let mut buf = [0u8; 512];
///     dev.read(3, &mut buf).await.unwrap(); // a miss: one 64 KiB device read
///     dev.read(5, &mut buf).await.unwrap(); // same chunk: a hit
/// });
/// assert_eq!(dev.inner().stats().reads, 1);
/// assert_eq!((dev.stats().misses, dev.stats().hits), (1, 1));
/// ```
pub struct CachedDevice<D> {
    dev: D,
    info: BlockInfo,
    chunk_bytes: usize,
    /// A chunk buffer's allocation: `chunk_bytes + buf_align - 1`.
    buffer_bytes: usize,
    /// `info.size_bytes()`, or `None` when it overflows `u64` (the cache is
    /// then off: byte offsets could not be computed).
    size_bytes: Option<u64>,
    state: RefCell<State>,
}

impl<D> fmt::Debug for CachedDevice<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedDevice")
            .field("info", &self.info)
            .field("chunk_bytes", &self.chunk_bytes)
            .field("capacity_bytes", &self.capacity_bytes())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<D: BlockDevice> CachedDevice<D> {
    /// `dev` with a cache set up by `config`.
    ///
    /// # Errors
    ///
    /// [`CacheConfigError::ChunkBytes`] if the chunk size does not fit the
    /// device.
    pub fn new(dev: D, config: CacheConfig) -> Result<CachedDevice<D>, CacheConfigError> {
        let info = dev.info();
        let chunk_bytes = config.chunk_bytes;
        if !chunk_bytes.is_power_of_two()
            || chunk_bytes < info.sector_size as usize
            || chunk_bytes > CHUNK_BYTES_MAX
        {
            return Err(CacheConfigError::ChunkBytes {
                chunk_bytes,
                sector_size: info.sector_size,
            });
        }
        let size_bytes = info.sectors.checked_mul(u64::from(info.sector_size));
        let cache = CachedDevice {
            dev,
            info,
            chunk_bytes,
            buffer_bytes: chunk_bytes.saturating_add(info.buf_align - 1),
            size_bytes,
            state: RefCell::new(State {
                chunks: BTreeMap::new(),
                lru: BTreeMap::new(),
                next_stamp: 0,
                buffers_max: 0,
                buffers: 0,
                write_epoch: 0,
                writes_in_flight: 0,
                stats: CacheStats::default(),
            }),
        };
        cache.set_capacity_bytes(config.capacity_bytes);
        Ok(cache)
    }
}

impl<D> CachedDevice<D> {
    /// The device below.
    pub fn inner(&self) -> &D {
        &self.dev
    }

    /// The device below, the cache dropped.
    pub fn into_inner(self) -> D {
        self.dev
    }

    /// Bytes per chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// The most bytes the cache may hold: whole chunk buffers, so the
    /// configured capacity rounded down.
    pub fn capacity_bytes(&self) -> usize {
        self.state.borrow().buffers_max * self.buffer_bytes
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        self.state.borrow().stats
    }

    /// Sets the capacity (see the module docs); 0, or less than one chunk,
    /// turns the cache off. Chunks beyond the new capacity are freed at
    /// once, least recently used first.
    pub fn set_capacity_bytes(&self, capacity_bytes: usize) {
        let mut st = self.state.borrow_mut();
        st.buffers_max = if self.size_bytes.is_some() {
            capacity_bytes / self.buffer_bytes
        } else {
            0
        };
        while st.buffers > st.buffers_max {
            if evict_lru(&mut st).is_none() {
                break; // The rest are held by fills; they drop them.
            }
            st.buffers -= 1;
        }
        self.sync_resident(&mut st);
    }

    /// Drops every cached chunk (and frees its memory).
    pub fn clear(&self) {
        let mut st = self.state.borrow_mut();
        while evict_lru(&mut st).is_some() {
            st.buffers -= 1;
        }
        self.sync_resident(&mut st);
    }

    fn sync_resident(&self, st: &mut State) {
        st.stats.resident_bytes = (st.buffers * self.buffer_bytes) as u64;
        st.stats.resident_bytes_max = st.stats.resident_bytes_max.max(st.stats.resident_bytes);
        st.stats.chunks = st.chunks.len() as u64;
    }

    /// Copies `dst.len()` bytes from `within` of `chunk` if it is cached,
    /// and marks it most recently used.
    fn copy_hit(&self, chunk: u64, within: usize, dst: &mut [u8]) -> bool {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let Some(c) = st.chunks.get_mut(&chunk) else {
            return false;
        };
        // A checked request ends within the device, so within its last chunk.
        assert!(within + dst.len() <= c.len, "read past a cached chunk");
        dst.copy_from_slice(&c.buf.as_slice()[within..within + dst.len()]);
        st.lru.remove(&c.stamp);
        c.stamp = st.next_stamp;
        st.next_stamp += 1;
        st.lru.insert(c.stamp, chunk);
        st.stats.hits += 1;
        true
    }

    /// A buffer for a fill: a new one while there is room (and the heap
    /// gives it), else the least recently used chunk's; `None` if the
    /// cache is off or every buffer is busy.
    fn take_buffer(&self, st: &mut State) -> Option<AlignedBuf> {
        if st.buffers < st.buffers_max {
            match AlignedBuf::try_new(self.chunk_bytes, self.info.buf_align) {
                Some(buf) => {
                    st.buffers += 1;
                    self.sync_resident(st);
                    return Some(buf);
                }
                None => st.stats.alloc_failures += 1,
            }
        }
        let buf = evict_lru(st)?;
        st.stats.evictions += 1;
        self.sync_resident(st);
        Some(buf)
    }

    /// Keeps a filled chunk, unless a write ran during the fill (`epoch`,
    /// `clean`: the state when it began), it is cached already, or the
    /// capacity shrank meanwhile.
    fn keep(&self, chunk: u64, len: usize, buf: AlignedBuf, epoch: u64, clean: bool) {
        let mut st = self.state.borrow_mut();
        let raced = !clean || st.write_epoch != epoch;
        if raced || st.chunks.contains_key(&chunk) || st.buffers > st.buffers_max {
            st.stats.fills_discarded += 1;
            st.buffers -= 1;
            drop(buf);
        } else {
            let stamp = st.next_stamp;
            st.next_stamp += 1;
            st.lru.insert(stamp, chunk);
            st.chunks.insert(chunk, Chunk { buf, len, stamp });
        }
        self.sync_resident(&mut st);
    }

    /// Drops the cached chunks holding any of `bytes`.
    fn invalidate(&self, st: &mut State, bytes: RangeInclusive<u64>) {
        let cb = self.chunk_bytes as u64;
        let chunks = bytes.start() / cb..=bytes.end() / cb;
        while let Some((&n, _)) = st.chunks.range(chunks.clone()).next() {
            let c = st.chunks.remove(&n).expect("found above");
            st.lru.remove(&c.stamp);
            st.buffers -= 1;
            st.stats.invalidations += 1;
        }
        self.sync_resident(st);
    }
}

/// Removes the least recently used chunk; its buffer.
fn evict_lru(st: &mut State) -> Option<AlignedBuf> {
    let (_, n) = st.lru.pop_first()?;
    let c = st
        .chunks
        .remove(&n)
        .expect("every stamp names a cached chunk");
    Some(c.buf)
}

/// A fill's buffer: counted in `State::buffers` until it is kept or
/// dropped (also when the fill's future is dropped mid-read).
struct Held<'a, D> {
    cache: &'a CachedDevice<D>,
    buf: Option<AlignedBuf>,
}

impl<D> Drop for Held<'_, D> {
    fn drop(&mut self) {
        if self.buf.take().is_some() {
            let mut st = self.cache.state.borrow_mut();
            st.buffers -= 1;
            self.cache.sync_resident(&mut st);
        }
    }
}

/// A write in flight: fills that overlap it in time are not kept.
struct Writing<'a, D>(&'a CachedDevice<D>);

impl<D> Drop for Writing<'_, D> {
    fn drop(&mut self) {
        let mut st = self.0.state.borrow_mut();
        st.writes_in_flight -= 1;
        st.write_epoch += 1;
    }
}

impl<D: BlockDevice> CachedDevice<D> {
    /// Fills `dst` (the part of `chunk` from byte `within`) on a miss.
    async fn miss(&self, chunk: u64, within: usize, dst: &mut [u8]) -> Result<(), ReadError> {
        let ss = u64::from(self.info.sector_size);
        let cb = self.chunk_bytes as u64;
        let (buf, epoch, clean) = {
            let mut st = self.state.borrow_mut();
            st.stats.misses += 1;
            let buf = self.take_buffer(&mut st);
            if buf.is_none() {
                st.stats.bypass_reads += 1;
            }
            (buf, st.write_epoch, st.writes_in_flight == 0)
        };
        let start = chunk * cb;
        let Some(buf) = buf else {
            return self.read_direct((start + within as u64) / ss, dst).await;
        };
        let mut held = Held {
            cache: self,
            buf: Some(buf),
        };
        let size = self
            .size_bytes
            .expect("cache is off when the size overflows");
        let len = (size - start).min(cb) as usize;
        let b = held.buf.as_mut().expect("held until kept");
        self.dev
            .read(start / ss, &mut b.as_mut_slice()[..len])
            .await?;
        dst.copy_from_slice(&b.as_slice()[within..within + dst.len()]);
        {
            let mut st = self.state.borrow_mut();
            st.stats.fills += 1;
            st.stats.fill_bytes += len as u64;
        }
        let buf = held.buf.take().expect("held until kept");
        self.keep(chunk, len, buf, epoch, clean);
        Ok(())
    }

    /// Reads past the cache into `dst`, through an aligned buffer if `dst`
    /// is not aligned as the device needs.
    async fn read_direct(&self, sector: u64, dst: &mut [u8]) -> Result<(), ReadError> {
        if (dst.as_ptr() as usize).is_multiple_of(self.info.buf_align) {
            return self.dev.read(sector, dst).await;
        }
        let mut bounce =
            AlignedBuf::try_new(dst.len(), self.info.buf_align).ok_or(ReadError::NoResources)?;
        self.dev.read(sector, bounce.as_mut_slice()).await?;
        dst.copy_from_slice(bounce.as_slice());
        Ok(())
    }
}

impl<D: BlockDevice> BlockDevice for CachedDevice<D> {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_request(&self.info, sector, buf.len(), buf.as_ptr() as usize)?;
        if buf.is_empty() {
            return Ok(());
        }
        let ss = u64::from(self.info.sector_size);
        if self.state.borrow().buffers_max == 0 {
            self.state.borrow_mut().stats.bypass_reads += 1;
            return self.dev.read(sector, buf).await;
        }
        // In range (checked above) and the size fits u64 (else the cache is off).
        let mut pos = sector * ss;
        let mut done = 0;
        while done < buf.len() {
            let chunk = pos / self.chunk_bytes as u64;
            let within = (pos % self.chunk_bytes as u64) as usize;
            let n = (self.chunk_bytes - within).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            if !self.copy_hit(chunk, within, dst) {
                self.miss(chunk, within, dst).await?;
            }
            done += n;
            pos += n as u64;
        }
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), WriteError> {
        check_request(&self.info, sector, buf.len(), buf.as_ptr() as usize)?;
        if self.info.read_only || buf.is_empty() || self.size_bytes.is_none() {
            // Nothing changes, or nothing is cached.
            return self.dev.write(sector, buf).await;
        }
        let ss = u64::from(self.info.sector_size);
        let first = sector * ss;
        let _writing = {
            let mut st = self.state.borrow_mut();
            st.writes_in_flight += 1;
            st.write_epoch += 1;
            self.invalidate(&mut st, first..=first + buf.len() as u64 - 1);
            Writing(self)
        };
        self.dev.write(sector, buf).await
    }

    async fn flush(&self) -> Result<(), FlushError> {
        self.dev.flush().await
    }
}

#[cfg(test)]
mod test;
