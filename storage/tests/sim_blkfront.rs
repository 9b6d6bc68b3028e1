//! blkfront against the sim's blkback: random read/write/flush workloads
//! checked against a model, many requests in flight, and injected faults.
//!
//! Replay one seed with `RINGLET_SEED=<seed> cargo test -p ringlet-storage
//! --features sim --test sim_blkfront`.
#![cfg(feature = "sim")]

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use ringlet_storage::blkfront::{BackendConfig, BackendNodes, Blkfront, BlkifRing};
use ringlet_storage::sim::{Backing, Blkback, BlkbackConfig, BlkbackFaults};
use ringlet_storage::{BlockDevice, FlushError, ReadError, WriteError};
use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::sim::{DomainConfig, FaultSite, Faults, Prng, Ratio, SimConfig, SimXen};

/// Loop iterations a single `run` may take before it is declared stuck.
const RUN_STEPS_MAX: usize = 1_000_000;

struct Flag(AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A frontend domain and dom0's blkback in one sim world.
/// Fields drop in order: the frontend (ending its grants) before the world.
struct Rig {
    front: Blkfront,
    back: RefCell<Blkback>,
    guest: Guest,
    sim: SimXen,
}

impl Rig {
    fn new(seed: u64, backing: Backing, config: BlkbackConfig) -> Rig {
        Self::with_faults(seed, Faults::none(), backing, config)
    }

    fn with_faults(seed: u64, faults: Faults, backing: Backing, config: BlkbackConfig) -> Rig {
        let sim = SimXen::new(SimConfig::new(seed).with_faults(faults).quiet());
        let domu = sim.create_domain(DomainConfig::new("front"));
        let guest = Guest::new(domu.as_hypervisor());
        let ring = BlkifRing::create(&guest, DomId::DOM0).unwrap();
        let chan = EventChannel::alloc_unbound(&guest, DomId::DOM0).unwrap();
        let back = Blkback::attach(
            sim.dom0(),
            &sim.guest(DomId::DOM0),
            domu.id(),
            ring.grant_ref(),
            chan.port(),
            backing,
            config,
        )
        .unwrap();
        let nodes = back.nodes();
        let get = |k: &str| nodes.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        let cfg = BackendConfig::parse(&BackendNodes {
            sectors: get("sectors"),
            sector_size: get("sector-size"),
            info: get("info"),
            feature_flush_cache: get("feature-flush-cache"),
            feature_barrier: get("feature-barrier"),
            feature_max_indirect_segments: get("feature-max-indirect-segments"),
        })
        .unwrap();
        let front = Blkfront::from_parts(guest.clone(), DomId::DOM0, ring, chan, cfg);
        Rig {
            front,
            back: RefCell::new(back),
            guest,
            sim,
        }
    }

    /// Runs `fut` to completion, interleaving the backend and event delivery;
    /// virtual time jumps when nothing else can happen.
    fn run<F: Future>(&self, fut: F) -> F::Output {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        for _ in 0..RUN_STEPS_MAX {
            if flag.0.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
            }
            let served = self.back.borrow_mut().service();
            if self.back.borrow().is_disconnected() && !self.front.is_failed() {
                // Stands in for the xenbus watch on the backend's state.
                self.front.disconnect();
            }
            self.sim.run_due();
            self.guest.demux();
            if served == 0 && !flag.0.load(Ordering::SeqCst) {
                match self.sim.next_event_ns() {
                    Some(t) => self.sim.advance_to(t),
                    None => panic!(
                        "stuck: no wake, no request, nothing scheduled (seed {}) {:?} {:?}",
                        self.sim.seed(),
                        self.front,
                        self.back.borrow()
                    ),
                }
            }
        }
        panic!(
            "run did not finish in {RUN_STEPS_MAX} steps (seed {})",
            self.sim.seed()
        );
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut p = Prng::new(seed);
    let mut v = vec![0u8; len];
    p.fill(&mut v);
    v
}

#[derive(Debug)]
enum Op {
    Read { sector: u64, count: u64 },
    Write { sector: u64, data: Vec<u8> },
    Flush,
}

#[derive(Debug, Default)]
struct Outcome {
    ok: u64,
    io: u64,
    protocol: u64,
    disconnected: u64,
    other: u64,
}

/// A random workload in batches of non-overlapping operations run
/// concurrently; every successful read is checked against the model.
fn workload(seed: u64, world: Faults, faults: BlkbackFaults, batches: usize) -> (Rig, Outcome) {
    const SECTORS: u64 = 16 * 1024; // 8 MiB of 512-byte sectors
    let image = pattern(SECTORS as usize * 512, seed ^ 0xD15C);
    let mut model = image.clone();
    // Sectors whose content is unknown after a failed write.
    let mut unknown = vec![false; SECTORS as usize];
    let config = BlkbackConfig {
        faults,
        seed,
        ..BlkbackConfig::default()
    };
    let rig = Rig::with_faults(seed, world, Backing::Mem(image), config);
    let mut prng = Prng::new(seed.wrapping_mul(31) ^ 7);
    let mut out = Outcome::default();
    for _ in 0..batches {
        let n = prng.range_inclusive(1, 48) as usize;
        let mut ops = Vec::new();
        let mut taken: Vec<(u64, u64)> = Vec::new();
        for _ in 0..n {
            let kind = prng.below(100);
            if kind < 5 {
                ops.push(Op::Flush);
                continue;
            }
            // Sizes: mostly small, some past 11 and 32 pages (split, indirect).
            let count = match prng.below(10) {
                0..=5 => prng.range_inclusive(1, 16),
                6..=8 => prng.range_inclusive(17, 200),
                _ => prng.range_inclusive(201, 700),
            };
            let sector = prng.below(SECTORS - count + 1);
            if taken
                .iter()
                .any(|&(s, c)| sector < s + c && s < sector + count)
            {
                continue;
            }
            taken.push((sector, count));
            if kind < 60 {
                ops.push(Op::Read { sector, count });
            } else {
                ops.push(Op::Write {
                    sector,
                    data: pattern(count as usize * 512, prng.next_u64()),
                });
            }
        }
        let front = &rig.front;
        let results = rig.run(futures::future::join_all(ops.iter().map(|op| async move {
            match op {
                Op::Read { sector, count } => {
                    let mut buf = vec![0u8; *count as usize * 512];
                    front
                        .read(*sector, &mut buf)
                        .await
                        .map(|()| Some(buf))
                        .map_err(|e| match e {
                            ReadError::Io => 'i',
                            ReadError::Protocol(_) => 'p',
                            ReadError::Disconnected => 'd',
                            _ => 'o',
                        })
                }
                Op::Write { sector, data } => front
                    .write(*sector, data)
                    .await
                    .map(|()| None)
                    .map_err(|e| match e {
                        WriteError::Io => 'i',
                        WriteError::Protocol(_) => 'p',
                        WriteError::Disconnected => 'd',
                        _ => 'o',
                    }),
                Op::Flush => front.flush().await.map(|()| None).map_err(|e| match e {
                    FlushError::Io => 'i',
                    FlushError::Protocol(_) => 'p',
                    FlushError::Disconnected => 'd',
                    _ => 'o',
                }),
            }
        })));
        for (op, r) in ops.iter().zip(results) {
            match (&r, op) {
                (Ok(Some(buf)), Op::Read { sector, count }) => {
                    for i in 0..*count as usize {
                        let s = *sector as usize + i;
                        if !unknown[s] {
                            assert_eq!(
                                &buf[i * 512..(i + 1) * 512],
                                &model[s * 512..(s + 1) * 512],
                                "seed {seed}: sector {s} read wrong"
                            );
                        }
                    }
                }
                (Ok(_), Op::Write { sector, data }) => {
                    let s = *sector as usize;
                    model[s * 512..s * 512 + data.len()].copy_from_slice(data);
                    unknown[s..s + data.len() / 512]
                        .iter_mut()
                        .for_each(|u| *u = false);
                }
                (Err(_), Op::Write { sector, data }) => {
                    let s = *sector as usize;
                    unknown[s..s + data.len() / 512]
                        .iter_mut()
                        .for_each(|u| *u = true);
                }
                _ => {}
            }
            match r {
                Ok(_) => out.ok += 1,
                Err('i') => out.io += 1,
                Err('p') => out.protocol += 1,
                Err('d') => out.disconnected += 1,
                Err(_) => out.other += 1,
            }
        }
    }
    // What the backend holds agrees with the model wherever it is known.
    let back = rig.back.borrow();
    let Backing::Mem(image) = back.backing() else {
        unreachable!()
    };
    for s in 0..SECTORS as usize {
        if !unknown[s] {
            assert_eq!(
                &image[s * 512..(s + 1) * 512],
                &model[s * 512..(s + 1) * 512],
                "seed {seed}: sector {s} on disk"
            );
        }
    }
    drop(back);
    (rig, out)
}

#[test]
fn fault_free_workload_with_a_full_ring() {
    let (rig, out) = workload(1, Faults::none(), BlkbackFaults::NONE, 60);
    let stats = rig.front.stats();
    eprintln!("{out:?} {stats:?} {:?}", rig.back.borrow().stats());
    assert_eq!(
        (out.io, out.protocol, out.disconnected, out.other),
        (0, 0, 0, 0)
    );
    assert!(out.ok > 500);
    assert_eq!(
        stats.max_in_flight,
        rig.front.ring_size(),
        "the ring was filled"
    );
    assert!(stats.indirect_requests > 0);
    assert_eq!(stats.error_responses, 0);
    assert_eq!(rig.front.in_flight(), 0);
}

fn seeds() -> Vec<u64> {
    match SimConfig::seed_from_env() {
        Some(s) => vec![s],
        None => (100..140).collect(),
    }
}

#[test]
fn seeded_faults_give_errors_never_wrong_data() {
    let mut totals = Outcome::default();
    let mut broken_runs = 0;
    for seed in seeds() {
        let faults = BlkbackFaults::from_prng(&mut Prng::new(seed));
        // The world's faults too: late, repeated and spurious events, and the
        // back ring's bad ids, duplicates, bad statuses, producer jumps.
        // Every other seed keeps only the benign ones (timing, spurious
        // wakes), so that long runs check data under them.
        let world = if seed % 2 == 0 {
            Faults::from_seed(seed).benign_only()
        } else {
            Faults::from_seed(seed)
        };
        let (rig, out) = workload(seed, world, faults, 25);
        let bs = rig.back.borrow().stats();
        let ring_faults = rig.back.borrow().ring_faults();
        let failed = rig.front.is_failed();
        if bs.protocol_faults + ring_faults > 0 || rig.back.borrow().is_disconnected() {
            broken_runs += 1;
            assert!(
                failed,
                "seed {seed}: an injected protocol fault or disconnect must fail the device"
            );
            assert!(out.protocol + out.disconnected > 0, "seed {seed}: {out:?}");
        } else {
            assert!(!failed, "seed {seed}: failed without a protocol fault");
            assert_eq!(out.protocol + out.disconnected, 0, "seed {seed}");
        }
        if bs.io_errors > 0 && !failed {
            assert!(out.io > 0, "seed {seed}: injected I/O errors must surface");
        }
        assert!(
            out.io <= bs.io_errors,
            "seed {seed}: more I/O errors than injected"
        );
        assert_eq!(out.other, 0, "seed {seed}");
        totals.ok += out.ok;
        totals.io += out.io;
        totals.protocol += out.protocol;
        totals.disconnected += out.disconnected;
    }
    eprintln!(
        "totals over {} seeds: {totals:?}, {broken_runs} runs with protocol faults",
        seeds().len()
    );
}

#[test]
fn each_protocol_fault_fails_the_device() {
    let always = Ratio::new(1, 1);
    let mut cases: Vec<(&str, Faults, BlkbackFaults)> = Vec::new();
    for site in [
        FaultSite::RingBadId,
        FaultSite::RingDuplicateId,
        FaultSite::RingBadStatus,
        FaultSite::RingProducerJump,
    ] {
        cases.push((
            "ring",
            Faults::none().with(site, always),
            BlkbackFaults::NONE,
        ));
    }
    cases.push((
        "bad_operation",
        Faults::none(),
        BlkbackFaults {
            bad_operation: always,
            ..BlkbackFaults::NONE
        },
    ));
    cases.push((
        "garbage",
        Faults::none(),
        BlkbackFaults {
            garbage: always,
            ..BlkbackFaults::NONE
        },
    ));
    cases.push((
        "disconnect",
        Faults::none(),
        BlkbackFaults {
            disconnect: always,
            ..BlkbackFaults::NONE
        },
    ));
    for (name, world, faults) in cases {
        let rig = Rig::with_faults(
            7,
            world.clone(),
            Backing::Mem(pattern(1 << 20, 3)),
            BlkbackConfig {
                faults,
                ..BlkbackConfig::default()
            },
        );
        // A duplicate needs two requests in service at once: send a batch.
        let mut bufs = vec![vec![0u8; 4096]; 8];
        let reads = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| rig.front.read(8 * i as u64, b));
        let results = rig.run(futures::future::join_all(reads));
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(ReadError::Protocol(_) | ReadError::Disconnected))),
            "{name} {world:?}: {results:?}"
        );
        assert!(rig.front.is_failed(), "{name}");
        // Later requests fail at once.
        let mut buf = vec![0u8; 4096];
        assert!(rig.run(rig.front.read(0, &mut buf)).is_err(), "{name}");
        assert!(rig.run(rig.front.write(0, &buf)).is_err(), "{name}");
    }
    // I/O errors fail the request only.
    let faults = BlkbackFaults {
        io_error: always,
        ..BlkbackFaults::NONE
    };
    let rig = Rig::new(
        7,
        Backing::Mem(pattern(1 << 20, 3)),
        BlkbackConfig {
            faults,
            ..BlkbackConfig::default()
        },
    );
    let mut buf = vec![0u8; 4096];
    assert_eq!(rig.run(rig.front.read(8, &mut buf)), Err(ReadError::Io));
    assert_eq!(rig.run(rig.front.write(8, &buf)), Err(WriteError::Io));
    assert_eq!(rig.run(rig.front.flush()), Err(FlushError::Io));
    assert!(!rig.front.is_failed());
}

#[test]
fn direct_segments_only_split_at_eleven_pages() {
    let image = pattern(4 << 20, 9);
    let config = BlkbackConfig {
        max_indirect_segments: 0,
        ..BlkbackConfig::default()
    };
    let rig = Rig::new(3, Backing::Mem(image.clone()), config);
    assert!(!rig.front.config().indirect);
    let mut buf = vec![0u8; 1 << 20];
    rig.run(rig.front.read(100, &mut buf)).unwrap();
    assert_eq!(buf, image[100 * 512..100 * 512 + (1 << 20)]);
    let s = rig.front.stats();
    assert_eq!(s.indirect_requests, 0);
    assert_eq!(s.requests, (256f64 / 11.0).ceil() as u64);
}

#[test]
fn large_sectors_and_read_only() {
    let image = pattern(1 << 20, 11);
    let config = BlkbackConfig {
        sector_size: 4096,
        read_only: true,
        ..BlkbackConfig::default()
    };
    let rig = Rig::new(5, Backing::Mem(image.clone()), config);
    let info = rig.front.info();
    assert_eq!(
        (info.sector_size, info.sectors, info.read_only),
        (4096, 256, true)
    );
    let mut buf = vec![0u8; 3 * 4096];
    rig.run(rig.front.read(10, &mut buf)).unwrap();
    assert_eq!(buf, image[10 * 4096..13 * 4096]);
    assert_eq!(rig.run(rig.front.write(0, &buf)), Err(WriteError::ReadOnly));
    assert!(matches!(
        rig.run(rig.front.read(255, &mut buf)),
        Err(ReadError::Request(_))
    ));
}

#[test]
fn flush_methods() {
    for (flush_cache, barrier) in [(true, false), (false, true), (false, false)] {
        let config = BlkbackConfig {
            flush_cache,
            barrier,
            ..BlkbackConfig::default()
        };
        let rig = Rig::new(5, Backing::Mem(vec![0; 1 << 16]), config);
        rig.run(rig.front.write(0, &[1u8; 512])).unwrap();
        rig.run(rig.front.flush()).unwrap();
        let sent = rig.back.borrow().stats().flushes;
        assert_eq!(
            sent,
            u64::from(flush_cache || barrier),
            "{flush_cache} {barrier}"
        );
    }
}

#[test]
fn dropped_request_is_released_when_answered() {
    let rig = Rig::new(
        5,
        Backing::Mem(pattern(1 << 20, 1)),
        BlkbackConfig::default(),
    );
    {
        let mut buf = vec![0u8; 8192];
        let fut = rig.front.read(0, &mut buf);
        let mut fut = Box::pin(fut);
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(rig.front.in_flight(), 1);
    } // dropped in flight
    let mut buf = vec![0u8; 512];
    rig.run(rig.front.read(3, &mut buf)).unwrap();
    assert_eq!(rig.front.stats().abandoned, 1);
    assert_eq!(rig.front.in_flight(), 0);
}

#[test]
fn file_backing() {
    let path = std::env::temp_dir().join(format!("ringlet-blkback-{}.img", std::process::id()));
    std::fs::write(&path, pattern(1 << 20, 2)).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let rig = Rig::new(5, Backing::File(file), BlkbackConfig::default());
    let data = pattern(64 * 1024, 77);
    rig.run(rig.front.write(40, &data)).unwrap();
    rig.run(rig.front.flush()).unwrap();
    drop(rig);
    let disk = std::fs::read(&path).unwrap();
    assert_eq!(&disk[40 * 512..40 * 512 + data.len()], &data[..]);
    std::fs::remove_file(&path).unwrap();
}
