//! The blkcheck appliance: proves blkfront against a real block backend.
//! The real-Xen suite's `storage` scenario (xtask/src/e2e/scenarios/
//! storage.sh, docs/storage.md "On real Xen") checks it from dom0;
//! `cargo run -p ringlet-blkcheck` runs it on the software Xen, with the
//! sim's blkback serving a small tar built in memory and a scratch disk.
//!
//! 1. connects blkfront to vbd `xvda` (51712, a tar image, read-only) and
//!    `xvdb` (51728, a scratch disk) and logs what each backend offers;
//! 2. opens the tar store on xvda and, for every regular file, logs
//!    `blkcheck: sha256 <64 hex digits> <path>`, then
//!    `blkcheck: files <N> bytes <B> in <T> ms (<R> MiB/s)`;
//! 3. on xvdb writes the pattern of [`pattern`] over `bytes` bytes from
//!    byte `offset` with [`DEPTH`] requests in flight, flushes, reads it
//!    back with as many in flight and compares, then logs
//!    `blkcheck: scratch ...` with the figures; then reads the start of
//!    the range again one 4 KiB request at a time and logs
//!    `blkcheck: depth 1: ...` (a request's round trip);
//! 4. fails if the console dropped any line, else logs `blkcheck: done`
//!    and returns (the runtime powers off). Any error returns `Err` (the
//!    domain crashes with `main failed: <error>` on its console).
//!
//! The command line (xl's `extra`) may set `seed=<u64>`, `offset=<bytes>`
//! and `bytes=<bytes>` (decimal) for step 3; the defaults are
//! [`SEED_DEFAULT`], [`OFFSET_DEFAULT`] and [`BYTES_DEFAULT`].
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod check;
mod pattern;
#[cfg(not(target_os = "none"))]
mod sim_dom0;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use core::fmt;

use ringlet::executor::{sleep, spawn, Duration, Instant};
use ringlet::xen::xenstore::client::Xenstore;
use ringlet_storage::blkfront::{connect, Blkfront, ConnectError};
use ringlet_storage::tar::{TarOpenError, TarReadError, TarStore};
use ringlet_storage::{BlockDevice, FlushError, WriteError};

use check::{Plan, PlanError, VerifyError};

/// `xvda`'s device id (`202 << 8 | 0`): the tar image.
const XVDA: u32 = 51712;
/// `xvdb`'s device id (`202 << 8 | 16`): the scratch disk.
const XVDB: u32 = 51728;

/// The pattern's seed unless the command line says `seed=`.
const SEED_DEFAULT: u64 = 1;
/// Where the pattern starts on xvdb unless the command line says `offset=`.
const OFFSET_DEFAULT: u64 = 1 << 20;
/// How many bytes of pattern unless the command line says `bytes=`.
const BYTES_DEFAULT: u64 = 8 << 20;
/// Bytes per scratch request: 16 pages, one ring request with indirect
/// segments (at most 11 pages, so two, without).
const CHUNK_BYTES: usize = 64 * 1024;
/// Scratch requests kept in flight: a full blkif ring.
const DEPTH: usize = 32;
/// Bytes per read when hashing a file.
const HASH_READ_BYTES: usize = 128 * 1024;
/// Reads in flight when hashing a file (rounds of this many).
const HASH_DEPTH: usize = 8;
/// Depth-1 reads of [`PROBE_READ_BYTES`] that measure a request's round
/// trip through the backend.
const PROBE_READS: u64 = 64;
/// See [`PROBE_READS`].
const PROBE_READ_BYTES: usize = 4096;
/// Longest path printed on a sha256 line (the console cuts lines at 256
/// bytes; a cut line would be a silent mismatch).
const PATH_PRINT_BYTES_MAX: usize = 160;
/// After this many console bytes, pause [`CONSOLE_PAUSE`] so dom0's
/// xenconsoled drains the 2 KiB ring (a full ring drops lines).
const CONSOLE_PACE_BYTES: usize = 768;
/// See [`CONSOLE_PACE_BYTES`].
const CONSOLE_PAUSE: Duration = Duration::from_millis(25);

/// Why blkcheck failed.
#[derive(Debug)]
enum BlkcheckError {
    /// The toolstack gave no xenstore ring.
    NoXenstore,
    /// A vbd did not connect.
    Connect(&'static str, ConnectError),
    /// The image is not a tar archive the store accepts.
    TarOpen(TarOpenError),
    /// A file of the archive could not be read.
    TarRead(String, TarReadError),
    /// A path too long to print on one console line.
    PathTooLong(usize),
    /// The archive holds no regular file.
    NoFiles,
    /// A command-line value is not a decimal number.
    BadArgument(&'static str),
    /// The pattern range does not fit the scratch disk.
    Plan(PlanError),
    /// Writing the pattern failed.
    Write(WriteError),
    /// The flush failed.
    Flush(FlushError),
    /// Reading back failed or found other bytes.
    Verify(VerifyError),
    /// The console ring overflowed: this many bytes of output were lost.
    ConsoleDropped(u64),
}

impl fmt::Display for BlkcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkcheckError::NoXenstore => f.write_str("no xenstore"),
            BlkcheckError::Connect(dev, e) => write!(f, "{dev}: {e}"),
            BlkcheckError::TarOpen(e) => write!(f, "xvda: {e}"),
            BlkcheckError::TarRead(path, e) => write!(f, "xvda: {path}: {e}"),
            BlkcheckError::PathTooLong(n) => {
                write!(
                    f,
                    "a path of {n} bytes (at most {PATH_PRINT_BYTES_MAX} print)"
                )
            }
            BlkcheckError::NoFiles => f.write_str("xvda: the archive holds no file"),
            BlkcheckError::BadArgument(k) => write!(f, "command line: {k}= is not a number"),
            BlkcheckError::Plan(e) => write!(f, "xvdb: {e}"),
            BlkcheckError::Write(e) => write!(f, "xvdb: write: {e}"),
            BlkcheckError::Flush(e) => write!(f, "xvdb: flush: {e}"),
            BlkcheckError::Verify(e) => write!(f, "xvdb: {e}"),
            BlkcheckError::ConsoleDropped(n) => {
                write!(f, "the console dropped {n} bytes of output")
            }
        }
    }
}

/// `key=<decimal>` from the command line, or `default`.
fn argument(env: &ringlet::Env, key: &'static str, default: u64) -> Result<u64, BlkcheckError> {
    let value = env
        .cmdline()
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .next_back();
    match value {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| BlkcheckError::BadArgument(key)),
    }
}

/// Bytes per second as MiB/s with one decimal, e.g. `12.3`.
struct MibPerSec {
    bytes: u64,
    took: Duration,
}

impl fmt::Display for MibPerSec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.took.as_micros().max(1);
        let tenths = u128::from(self.bytes) * 10 * 1_000_000 / us / (1 << 20);
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

/// Console output paced so xenconsoled keeps up.
struct Pacer {
    since_pause: usize,
}

impl Pacer {
    async fn wrote(&mut self, bytes: usize) {
        self.since_pause += bytes;
        if self.since_pause >= CONSOLE_PACE_BYTES {
            sleep(CONSOLE_PAUSE).await;
            self.since_pause = 0;
        }
    }
}

async fn connect_logged(
    env: &ringlet::Env,
    xs: &Xenstore,
    name: &'static str,
    devid: u32,
) -> Result<Rc<Blkfront>, BlkcheckError> {
    let start = Instant::now();
    let dev = connect(env.guest(), xs, devid)
        .await
        .map_err(|e| BlkcheckError::Connect(name, e))?;
    let c = dev.config();
    log::info!(
        "blkcheck: {name} connected in {} ms: {} sectors of {} bytes{}, flush {:?}, \
         {} segments per request{}, ring of {}",
        start.elapsed().as_millis(),
        c.sectors,
        c.sector_size,
        if c.read_only { ", read-only" } else { "" },
        c.flush,
        c.segments_max,
        if c.indirect { " (indirect)" } else { "" },
        dev.ring_size()
    );
    let dev = Rc::new(dev);
    // A backend that leaves Connected fails the requests waiting on it.
    let (d, xs) = (dev.clone(), xs.clone());
    spawn(async move {
        if let Ok(state) = d.monitor(&xs).await {
            log::warn!("blkcheck: {name}: backend went to {state:?}");
        }
    })
    .detach();
    Ok(dev)
}

#[ringlet::main]
async fn main(env: ringlet::Env) -> Result<(), BlkcheckError> {
    #[cfg(not(target_os = "none"))]
    if let Some((sim, id)) = env.sim() {
        sim_dom0::provide(sim, id);
    }
    let plan = Plan {
        offset: argument(&env, "offset", OFFSET_DEFAULT)?,
        bytes: argument(&env, "bytes", BYTES_DEFAULT)?,
        chunk_bytes: CHUNK_BYTES,
        depth: DEPTH,
        seed: argument(&env, "seed", SEED_DEFAULT)?,
    };
    let xs = env.xenstore().ok_or(BlkcheckError::NoXenstore)?;
    let image = connect_logged(&env, xs, "xvda", XVDA).await?;
    let scratch = connect_logged(&env, xs, "xvdb", XVDB).await?;

    // 2. Every file of the tar image, hashed.
    let start = Instant::now();
    let store = TarStore::open(&*image)
        .await
        .map_err(BlkcheckError::TarOpen)?;
    let opened = start.elapsed();
    let mut bufs = vec![vec![0u8; HASH_READ_BYTES]; HASH_DEPTH];
    let mut pacer = Pacer { since_pause: 0 };
    let (mut files, mut bytes) = (0u64, 0u64);
    for entry in store.entries().filter(|e| e.is_file()) {
        let path = entry.path();
        if path.len() > PATH_PRINT_BYTES_MAX {
            return Err(BlkcheckError::PathTooLong(path.len()));
        }
        let digest = check::sha256_file(&store, entry, &mut bufs)
            .await
            .map_err(|e| BlkcheckError::TarRead(path.into(), e))?;
        log::info!("blkcheck: sha256 {} {path}", check::hex(&digest));
        pacer.wrote(82 + path.len()).await;
        files += 1;
        bytes += entry.size();
    }
    if files == 0 {
        return Err(BlkcheckError::NoFiles);
    }
    let took = start.elapsed();
    log::info!(
        "blkcheck: files {files} bytes {bytes} in {} ms (index {} ms, {} entries; {} MiB/s hashed)",
        took.as_millis(),
        opened.as_millis(),
        store.len(),
        MibPerSec { bytes, took }
    );

    // 3. The scratch disk: pattern written, flushed, read back.
    plan.check(&*scratch).map_err(BlkcheckError::Plan)?;
    let before = scratch.stats();
    let start = Instant::now();
    check::write_pattern(&*scratch, &plan)
        .await
        .map_err(BlkcheckError::Write)?;
    let wrote = start.elapsed();
    let start = Instant::now();
    scratch.flush().await.map_err(BlkcheckError::Flush)?;
    let flushed = start.elapsed();
    let start = Instant::now();
    check::verify_pattern(&*scratch, &plan)
        .await
        .map_err(BlkcheckError::Verify)?;
    let read = start.elapsed();
    let after = scratch.stats();
    // One request at a time: the round trip through the backend.
    let probe = Plan {
        bytes: (PROBE_READS * PROBE_READ_BYTES as u64).min(plan.bytes),
        chunk_bytes: PROBE_READ_BYTES,
        depth: 1,
        ..plan
    };
    let start = Instant::now();
    check::verify_pattern(&*scratch, &probe)
        .await
        .map_err(BlkcheckError::Verify)?;
    let probed = start.elapsed();
    log::info!(
        "blkcheck: scratch offset {} bytes {} seed {}: write {} ms ({} MiB/s), flush {} ms, \
         read {} ms ({} MiB/s), depth {}, max in flight {}, requests {} ({} indirect)",
        plan.offset,
        plan.bytes,
        plan.seed,
        wrote.as_millis(),
        MibPerSec {
            bytes: plan.bytes,
            took: wrote
        },
        flushed.as_millis(),
        read.as_millis(),
        MibPerSec {
            bytes: plan.bytes,
            took: read
        },
        plan.depth,
        after.max_in_flight,
        after.requests - before.requests,
        after.indirect_requests - before.indirect_requests
    );
    let reads = probe.bytes.div_ceil(PROBE_READ_BYTES as u64);
    log::info!(
        "blkcheck: depth 1: {reads} reads of {} bytes in {} ms, {} us each",
        PROBE_READ_BYTES,
        probed.as_millis(),
        probed.as_micros() / u128::from(reads.max(1))
    );

    // 4. Nothing lost on the way to dom0.
    sleep(CONSOLE_PAUSE).await;
    let dropped = ringlet::xen::console::global_dropped();
    if dropped > 0 {
        return Err(BlkcheckError::ConsoleDropped(dropped));
    }
    log::info!("blkcheck: done");
    Ok(())
}
