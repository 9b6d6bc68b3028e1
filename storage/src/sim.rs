//! A block backend for the software Xen (`sim` feature): dom0's blkback,
//! serving an in-memory image or a host file over a real blkif ring, with
//! injected faults.
//!
//! [`Blkback`] maps the frontend's ring page through the sim's grant table,
//! binds to its event channel, and serves requests the way Linux blkback
//! does: segments are copied with grant copies, every request is bounds- and
//! shape-checked (a bad one gets `BLKIF_RSP_ERROR`, never a panic), responses
//! are pushed with notify hold-off (`rsp_event`) and the request side does
//! `RING_FINAL_CHECK_FOR_REQUESTS`.
//!
//! [`Blkback::serve_xenbus`] is the whole dom0 driver as a task: it publishes
//! the disk's nodes, does the backend half of the xenbus handshake
//! (`sim::xenbus::XenbusBackend`), serves the ring and closes when the
//! frontend does (or, after an injected disconnect, goes to Closing itself).
//! [`Blkback::attach`] + [`Blkback::service`] drive it by hand instead.
//!
//! # Faults
//!
//! The ring itself is the sim's `BackRing`, which injects the world's ring
//! faults (`FaultSite::RingBadId`, `RingDuplicateId`, `RingBadStatus`,
//! `RingProducerJump`, chosen by the run's `SimConfig`). On top of those,
//! [`BlkbackFaults`] gives each blkif-level fault a probability per request,
//! drawn from the backend's own [`Prng`]:
//!
//! | fault | what the frontend must do |
//! | --- | --- |
//! | `io_error` | fail that request with an I/O error (nothing transferred) |
//! | `bad_operation` | protocol error (operation mismatch) |
//! | `garbage` | random id, operation and status (a torn or short write): protocol error |
//! | `disconnect` | the backend stops answering and goes to Closing |
#![allow(clippy::module_name_repetitions)]

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;

use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::{DomId, GrantRef, Port, PAGE_SIZE};
use ringlet_xen::sim::backring::{BackProtocol, BackRing};
use ringlet_xen::sim::xenbus::{DevicePaths, XenbusBackend, XenbusError};
use ringlet_xen::sim::{Prng, Ratio, SimDomain, SimXen};

use crate::blkfront::device::Blkif;

use crate::blkif::{
    self, IndirectRequest, Request, Response, Segment, BLKIF_SECTOR_SIZE,
    INDIRECT_PAGES_PER_REQUEST_MAX, OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE,
    OP_WRITE_BARRIER, RSP_EOPNOTSUPP, RSP_ERROR, RSP_OKAY, SEGMENTS_PER_INDIRECT_PAGE,
    SEGMENTS_PER_REQUEST_MAX, SLOT_SIZE, VDISK_READONLY,
};

/// Requests one [`Blkback::service`] call handles at most (a bound against
/// a frontend that keeps the ring full forever).
pub const SERVICE_REQUESTS_MAX: usize = 4096;

/// What the backend serves.
#[derive(Debug)]
pub enum Backing {
    /// An in-memory image (its length a multiple of 512).
    Mem(Vec<u8>),
    /// A host file.
    File(File),
}

#[allow(clippy::len_without_is_empty)]
impl Backing {
    /// Bytes served.
    pub fn len(&self) -> u64 {
        match self {
            Backing::Mem(v) => v.len() as u64,
            Backing::File(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
        }
    }

    fn read(&self, at: u64, buf: &mut [u8]) -> bool {
        match self {
            Backing::Mem(v) => {
                buf.copy_from_slice(&v[at as usize..at as usize + buf.len()]);
                true
            }
            Backing::File(f) => f.read_exact_at(buf, at).is_ok(),
        }
    }

    fn write(&mut self, at: u64, data: &[u8]) -> bool {
        match self {
            Backing::Mem(v) => {
                v[at as usize..at as usize + data.len()].copy_from_slice(data);
                true
            }
            Backing::File(f) => f.write_all_at(data, at).is_ok(),
        }
    }

    fn flush(&self) -> bool {
        match self {
            Backing::Mem(_) => true,
            Backing::File(f) => f.sync_data().is_ok(),
        }
    }
}

/// Per-request fault probabilities (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkbackFaults {
    /// `BLKIF_RSP_ERROR` instead of doing the request.
    pub io_error: Ratio,
    /// A response operation that is not the request's.
    pub bad_operation: Ratio,
    /// Random id, operation and status in the response.
    pub garbage: Ratio,
    /// Stop serving (state Closing) before answering.
    pub disconnect: Ratio,
}

impl BlkbackFaults {
    /// No faults.
    pub const NONE: BlkbackFaults = BlkbackFaults {
        io_error: Ratio::NEVER,
        bad_operation: Ratio::NEVER,
        garbage: Ratio::NEVER,
        disconnect: Ratio::NEVER,
    };

    /// Faults chosen from `prng`: I/O errors on about half the runs; then
    /// at most one blkif-level protocol fault, with a small probability.
    pub fn from_prng(prng: &mut Prng) -> BlkbackFaults {
        let mut f = BlkbackFaults::NONE;
        if prng.below(2) == 0 {
            f.io_error = Ratio::new(prng.range_inclusive(1, 10) as u32, 100);
        }
        let r = Ratio::new(prng.range_inclusive(1, 5) as u32, 1000);
        match prng.below(5) {
            0 => f.bad_operation = r,
            1 => f.garbage = r,
            2 => f.disconnect = r,
            _ => {}
        }
        f
    }

    /// Whether any fault that breaks the protocol (or disconnects) is on.
    pub fn breaks_protocol(&self) -> bool {
        [self.bad_operation, self.garbage, self.disconnect]
            .iter()
            .any(|r| r.num() > 0)
    }
}

/// How a [`Blkback`] presents its disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkbackConfig {
    /// `sector-size`.
    pub sector_size: u32,
    /// `VDISK_READONLY`.
    pub read_only: bool,
    /// `feature-flush-cache`.
    pub flush_cache: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-max-indirect-segments` (0: not offered).
    pub max_indirect_segments: u32,
    /// Faults.
    pub faults: BlkbackFaults,
    /// Seed of the backend's PRNG.
    pub seed: u64,
}

impl Default for BlkbackConfig {
    fn default() -> Self {
        BlkbackConfig {
            sector_size: 512,
            read_only: false,
            flush_cache: true,
            barrier: false,
            max_indirect_segments: 32,
            faults: BlkbackFaults::NONE,
            seed: 0,
        }
    }
}

/// Why [`Blkback::attach`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AttachError {
    /// The ring grant could not be mapped.
    Map(ringlet_xen::sim::GrantError),
    /// The event channel could not be bound.
    Bind(ringlet_xen::evtchn::BindError),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Map(e) => write!(f, "blkback: mapping the ring: {e}"),
            AttachError::Bind(e) => write!(f, "blkback: binding the event channel: {e}"),
        }
    }
}

impl std::error::Error for AttachError {}

/// Counters of a [`Blkback`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkbackStats {
    /// Requests consumed.
    pub requests: u64,
    /// Bytes read from the image.
    pub bytes_read: u64,
    /// Bytes written to the image.
    pub bytes_written: u64,
    /// Flushes and barriers.
    pub flushes: u64,
    /// Requests answered with an error because they were malformed.
    pub bad_requests: u64,
    /// Injected I/O errors.
    pub io_errors: u64,
    /// Injected blkif-level protocol faults (operation, garbage); the ring's
    /// own are [`Blkback::ring_faults`].
    pub protocol_faults: u64,
    /// Notifications sent to the frontend.
    pub notifies: u64,
}

/// How [`Blkback::serve_xenbus`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkbackExit {
    /// The frontend went to Closing or Closed.
    FrontendClosed,
    /// An injected disconnect: the backend went to Closing.
    Disconnected,
    /// The frontend broke the ring: the backend went to Closing.
    RingBroken,
}

/// Why [`Blkback::serve_xenbus`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// dom0's xenstore client could not be made.
    Xenstore(ringlet_xen::xenstore::ConnectError),
    /// A handshake step failed.
    Xenbus(XenbusError),
    /// Mapping the ring or binding the port failed (the backend closed).
    Attach(AttachError),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Xenstore(e) => write!(f, "blkback: {e}"),
            ServeError::Xenbus(e) => write!(f, "blkback: {e}"),
            ServeError::Attach(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<XenbusError> for ServeError {
    fn from(e: XenbusError) -> Self {
        ServeError::Xenbus(e)
    }
}

/// The sim's blkback for one frontend.
pub struct Blkback {
    dom0: SimDomain,
    front: DomId,
    ring: BackRing<Blkif>,
    channel: EventChannel,
    backing: Backing,
    config: BlkbackConfig,
    prng: Prng,
    disconnected: bool,
    broken: bool,
    stats: BlkbackStats,
}

impl fmt::Debug for Blkback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blkback")
            .field("front", &self.front)
            .field("config", &self.config)
            .field("disconnected", &self.disconnected)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Blkback {
    /// Connects to `front`'s ring (`ring_ref`) and event channel (`port`,
    /// allocated unbound for dom0), serving `backing` as `config` says.
    /// `dom0` is dom0's domain, `dom0_guest` its guest handle (the one the
    /// world demuxes: `sim.guest(DomId::DOM0)`).
    ///
    /// # Errors
    ///
    /// [`AttachError`] if the grant cannot be mapped or the port bound.
    pub fn attach(
        dom0: SimDomain,
        dom0_guest: &Guest,
        front: DomId,
        ring_ref: GrantRef,
        port: Port,
        backing: Backing,
        config: BlkbackConfig,
    ) -> Result<Blkback, AttachError> {
        let ring = dom0
            .map_grant(front, ring_ref, false)
            .map_err(AttachError::Map)?;
        let channel =
            EventChannel::bind_interdomain(dom0_guest, front, port).map_err(AttachError::Bind)?;
        Ok(Blkback {
            dom0,
            front,
            ring: BackRing::attach(ring),
            channel,
            backing,
            config,
            prng: Prng::new(config.seed),
            disconnected: false,
            broken: false,
            stats: BlkbackStats::default(),
        })
    }

    /// The dom0 driver for the device at `paths` (made by
    /// `SimXen::add_device` with kind `"vbd"`): publishes the disk, waits for
    /// the frontend's Initialised, attaches to its ring and port, goes
    /// Connected and serves until the frontend closes — or until an
    /// injected disconnect or a broken ring, after which it goes Closing
    /// itself. Returns how it ended and the backend's counters.
    ///
    /// # Errors
    ///
    /// [`ServeError`]; the backend's state is then Closed when it could be
    /// written.
    pub async fn serve_xenbus(
        sim: SimXen,
        paths: DevicePaths,
        backing: Backing,
        config: BlkbackConfig,
    ) -> Result<(BlkbackExit, BlkbackStats), ServeError> {
        let xs = sim.dom0_xenstore().map_err(ServeError::Xenstore)?;
        let xb = XenbusBackend::new(xs, paths.clone());
        for (k, v) in Self::nodes_for(backing.len(), &config) {
            xb.write_backend(k, &v).await?;
        }
        xb.set_state(XenbusState::InitWait).await?;
        xb.wait_frontend(|s| matches!(s, XenbusState::Initialised | XenbusState::Connected))
            .await?;
        let ring_ref: u32 = xb.read_frontend_int("ring-ref").await?;
        let port: u32 = xb.read_frontend_int("event-channel").await?;
        let dom0 = sim.dom0();
        let d0 = sim.guest(DomId::DOM0);
        let mut back = match Blkback::attach(
            dom0,
            &d0,
            paths.front,
            GrantRef(ring_ref),
            Port(port),
            backing,
            config,
        ) {
            Ok(b) => b,
            Err(e) => {
                let _ = xb.close().await;
                return Err(ServeError::Attach(e));
            }
        };
        xb.set_state(XenbusState::Connected).await?;
        let exit = {
            let closed =
                xb.wait_frontend(|s| matches!(s, XenbusState::Closing | XenbusState::Closed));
            let run = back.run();
            match futures::future::select(core::pin::pin!(run), core::pin::pin!(closed)).await {
                futures::future::Either::Left(((), _)) => None,
                futures::future::Either::Right(_) => Some(BlkbackExit::FrontendClosed),
            }
        };
        let exit = match exit {
            Some(e) => e,
            None if back.disconnected => BlkbackExit::Disconnected,
            None => BlkbackExit::RingBroken,
        };
        let _ = xb.close().await;
        Ok((exit, back.stats))
    }

    /// The backend's xenstore nodes as `(name, value)`: what Linux blkback
    /// writes under `backend/vbd/<front>/<dev>`.
    pub fn nodes(&self) -> Vec<(&'static str, std::string::String)> {
        Self::nodes_for(self.backing.len(), &self.config)
    }

    /// The nodes a backend serving `len` bytes with `config` publishes
    /// (before it has attached).
    pub fn nodes_for(len: u64, c: &BlkbackConfig) -> Vec<(&'static str, std::string::String)> {
        let mut v = vec![
            (
                "sectors",
                std::format!("{}", len / BLKIF_SECTOR_SIZE as u64),
            ),
            ("sector-size", std::format!("{}", c.sector_size)),
            (
                "info",
                std::format!("{}", if c.read_only { VDISK_READONLY } else { 0 }),
            ),
            (
                "feature-flush-cache",
                std::format!("{}", u8::from(c.flush_cache)),
            ),
            ("feature-barrier", std::format!("{}", u8::from(c.barrier))),
        ];
        if c.max_indirect_segments > 0 {
            v.push((
                "feature-max-indirect-segments",
                std::format!("{}", c.max_indirect_segments),
            ));
        }
        v
    }

    /// The counters.
    pub fn stats(&self) -> BlkbackStats {
        self.stats
    }

    /// Whether an injected disconnect happened (the backend is Closing).
    pub fn is_disconnected(&self) -> bool {
        self.disconnected
    }

    /// The image (for checks after a run).
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// Consumes and answers every request on the ring (at most
    /// [`SERVICE_REQUESTS_MAX`]); returns how many.
    pub fn service(&mut self) -> usize {
        let mut done = 0;
        let mut batch = Vec::with_capacity(self.ring.size() as usize);
        while !self.disconnected && !self.broken && done < SERVICE_REQUESTS_MAX {
            // Take the whole batch first (as Linux blkback does), then answer.
            batch.clear();
            loop {
                match self.ring.take_request() {
                    Ok(Some(slot)) => batch.push(slot),
                    Ok(None) => break,
                    // The frontend broke the ring (or an injected producer
                    // jump did): stop serving it.
                    Err(_) => {
                        self.broken = true;
                        break;
                    }
                }
            }
            for slot in &batch {
                self.stats.requests += 1;
                done += 1;
                match self.handle(slot) {
                    Some(rsp) => self.ring.push_response(rsp),
                    None => break,
                }
            }
            self.push_responses();
            // RING_FINAL_CHECK_FOR_REQUESTS before going idle.
            if batch.is_empty() && !self.ring.final_check() {
                break;
            }
        }
        self.push_responses();
        done
    }

    /// Serves the ring until an injected disconnect or a broken ring:
    /// service, then wait for the frontend's next notification (the final
    /// check in [`service`](Self::service) set `req_event` first).
    pub async fn run(&mut self) {
        while !self.disconnected && !self.broken {
            self.service();
            if self.disconnected || self.broken {
                break;
            }
            self.channel.wait().await;
        }
    }

    /// Whether the frontend broke the ring (its producer ran ahead).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn chance(&mut self, r: Ratio) -> bool {
        r.num() > 0 && self.prng.chance(r)
    }

    fn handle(&mut self, slot: &[u8; SLOT_SIZE]) -> Option<Response> {
        let faults = self.config.faults;
        if self.chance(faults.disconnect) {
            self.disconnected = true;
            self.dom0.note(std::format!(
                "blkback: injected disconnect of dom{}",
                self.front.0
            ));
            return None;
        }
        let op = slot[0];
        let (id, status) = match op {
            OP_READ | OP_WRITE => {
                let req = Request::decode(slot);
                let n = usize::from(req.nr_segments);
                let st = if n == 0 || n > SEGMENTS_PER_REQUEST_MAX {
                    self.stats.bad_requests += 1;
                    RSP_ERROR
                } else {
                    self.transfer(op == OP_WRITE, req.sector_number, &req.seg[..n])
                };
                (req.id, st)
            }
            OP_INDIRECT => {
                let req = IndirectRequest::decode(slot);
                let st = match self.indirect_segments(&req) {
                    Some(segs) if req.indirect_op == OP_READ || req.indirect_op == OP_WRITE => {
                        self.transfer(req.indirect_op == OP_WRITE, req.sector_number, &segs)
                    }
                    _ => {
                        self.stats.bad_requests += 1;
                        RSP_ERROR
                    }
                };
                (req.id, st)
            }
            OP_FLUSH_DISKCACHE | OP_WRITE_BARRIER => {
                let req = Request::decode(slot);
                let offered = if op == OP_FLUSH_DISKCACHE {
                    self.config.flush_cache
                } else {
                    self.config.barrier
                };
                self.stats.flushes += 1;
                let st = if !offered {
                    RSP_EOPNOTSUPP
                } else if self.chance(faults.io_error) {
                    self.stats.io_errors += 1;
                    RSP_ERROR
                } else if self.backing.flush() {
                    RSP_OKAY
                } else {
                    RSP_ERROR
                };
                (req.id, st)
            }
            _ => (Request::decode(slot).id, RSP_EOPNOTSUPP),
        };
        let mut rsp = Response {
            id,
            operation: op,
            status,
            ..Response::default()
        };
        if self.chance(faults.bad_operation) {
            rsp.operation = rsp.operation.wrapping_add(1 + self.prng.below(200) as u8);
            self.stats.protocol_faults += 1;
        }
        if self.chance(faults.garbage) {
            let mut bytes = [0u8; blkif::RESPONSE_SIZE];
            self.prng.fill(&mut bytes);
            rsp = Response::decode(&bytes);
            self.stats.protocol_faults += 1;
        }
        Some(rsp)
    }

    /// The segments of an indirect request, read out of its indirect pages;
    /// `None` if the request is malformed.
    fn indirect_segments(&mut self, req: &IndirectRequest) -> Option<Vec<Segment>> {
        let n = usize::from(req.nr_segments);
        if n == 0 || n > self.config.max_indirect_segments as usize {
            return None;
        }
        let pages = n.div_ceil(SEGMENTS_PER_INDIRECT_PAGE);
        if pages > INDIRECT_PAGES_PER_REQUEST_MAX {
            return None;
        }
        let mut segs = Vec::with_capacity(n);
        for (p, &gref) in req.indirect_grefs[..pages].iter().enumerate() {
            let count = (n - p * SEGMENTS_PER_INDIRECT_PAGE).min(SEGMENTS_PER_INDIRECT_PAGE);
            let mut raw = vec![0u8; count * 8];
            self.dom0
                .copy_from_grant(self.front, GrantRef(gref), 0, &mut raw)
                .ok()?;
            segs.extend(
                raw.chunks_exact(8)
                    .map(|c| Segment::decode(c.try_into().expect("8 bytes"))),
            );
        }
        Some(segs)
    }

    /// Does a read or write of `segs` starting at 512-byte sector `sector`.
    fn transfer(&mut self, write: bool, sector: u64, segs: &[Segment]) -> i16 {
        let ss = BLKIF_SECTOR_SIZE as u64;
        let logical = u64::from(self.config.sector_size);
        let mut total = 0u64;
        for s in segs {
            if s.first_sect > s.last_sect
                || usize::from(s.last_sect) >= PAGE_SIZE / BLKIF_SECTOR_SIZE
            {
                self.stats.bad_requests += 1;
                return RSP_ERROR;
            }
            total += u64::from(s.last_sect - s.first_sect) + 1;
        }
        let end = sector.checked_add(total).and_then(|e| e.checked_mul(ss));
        if end.is_none_or(|e| e > self.backing.len())
            || !(sector * ss).is_multiple_of(logical)
            || !(total * ss).is_multiple_of(logical)
        {
            self.stats.bad_requests += 1;
            return RSP_ERROR;
        }
        if write && self.config.read_only {
            self.stats.bad_requests += 1;
            return RSP_ERROR;
        }
        if self.chance(self.config.faults.io_error) {
            self.stats.io_errors += 1;
            return RSP_ERROR;
        }
        let mut at = sector * ss;
        let mut buf = [0u8; PAGE_SIZE];
        for s in segs {
            let off = usize::from(s.first_sect) * BLKIF_SECTOR_SIZE;
            let len = (usize::from(s.last_sect - s.first_sect) + 1) * BLKIF_SECTOR_SIZE;
            let chunk = &mut buf[..len];
            let ok = if write {
                self.dom0
                    .copy_from_grant(self.front, GrantRef(s.gref), off, chunk)
                    .is_ok()
                    && self.backing.write(at, chunk)
            } else {
                self.backing.read(at, chunk)
                    && self
                        .dom0
                        .copy_to_grant(self.front, GrantRef(s.gref), off, chunk)
                        .is_ok()
            };
            if !ok {
                self.stats.bad_requests += 1;
                return RSP_ERROR;
            }
            if write {
                self.stats.bytes_written += len as u64;
            } else {
                self.stats.bytes_read += len as u64;
            }
            at += len as u64;
        }
        RSP_OKAY
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`, then the notification.
    fn push_responses(&mut self) {
        if self.ring.push_responses() {
            self.stats.notifies += 1;
            // A failed send means the frontend closed its port: nothing to do.
            let _ = self.channel.notify();
        }
    }

    /// Faults the back ring injected (the world's ring fault sites).
    pub fn ring_faults(&self) -> u64 {
        self.ring.stats().faults
    }
}

/// blkif from the backend's side, for the sim's back ring.
impl BackProtocol for Blkif {
    fn read_request(slot: &[u8]) -> [u8; SLOT_SIZE] {
        let mut b = [0u8; SLOT_SIZE];
        b.copy_from_slice(&slot[..SLOT_SIZE]);
        b
    }

    fn write_response(rsp: &Response, slot: &mut [u8]) {
        slot[..blkif::RESPONSE_SIZE].copy_from_slice(&rsp.encode());
    }

    fn set_response_id(rsp: &mut Response, id: u64) {
        rsp.id = id;
    }

    fn set_garbage_status(rsp: &mut Response, noise: u64) {
        // Any i16 but the three blkif defines.
        let v = (noise % 65533) as i32 - 32768;
        rsp.status = if v >= -2 { (v + 3) as i16 } else { v as i16 };
    }
}
