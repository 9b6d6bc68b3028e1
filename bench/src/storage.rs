//! The storage suite: blkfront reading 4 KiB blocks from the software Xen's
//! blkback, sequential and random, at queue depth 1 and 32.
//!
//! `cargo xtask bench storage [--quick] [--mib N]`.
//!
//! Everything runs in this process on one thread: the frontend domain's
//! blkfront, dom0's blkback (an in-memory image) and the sim's event
//! channels and grant copies, on the Ringlet executor with the sim as its
//! platform. The figures measure the driver stack's cost per request (ring,
//! grants, event channels, wakes), not a disk: there is no device latency.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use ringlet_executor::{spawn, Executor};
use ringlet_storage::blkfront::{BackendConfig, BackendNodes, Blkfront, BlkifRing};
use ringlet_storage::sim::{Backing, Blkback, BlkbackConfig};
use ringlet_storage::BlockDevice;
use ringlet_xen::evtchn::EventChannel;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::sim::{DomainConfig, Prng, SimConfig, SimXen};

const USAGE: &str = "\
usage: ringlet-bench storage [--quick] [--mib N]

  --quick   a smoke run (4 MiB read per case)
  --mib N   MiB read per case (default 256)
";

/// Bytes per request.
const BLOCK: usize = 4096;
/// Size of the served image.
const IMAGE_BYTES: usize = 64 << 20;

/// One measured case.
#[derive(Debug)]
struct Case {
    pattern: &'static str,
    depth: usize,
    requests: u64,
    secs: f64,
    ring_requests: u64,
    max_in_flight: u32,
}

fn device(sim: &SimXen) -> (Rc<Blkfront>, Blkback) {
    let domu = sim.create_domain(DomainConfig::new("bench"));
    let guest = sim.guest(domu.id());
    let ring = BlkifRing::create(&guest, DomId::DOM0).expect("ring");
    let chan = EventChannel::alloc_unbound(&guest, DomId::DOM0).expect("port");
    let image: Vec<u8> = (0..IMAGE_BYTES).map(|i| (i / BLOCK) as u8).collect();
    let back = Blkback::attach(
        sim.dom0(),
        &sim.guest(DomId::DOM0),
        domu.id(),
        ring.grant_ref(),
        chan.port(),
        Backing::Mem(image),
        BlkbackConfig::default(),
    )
    .expect("attach");
    let nodes = back.nodes();
    let get = |k: &str| nodes.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    let config = BackendConfig::parse(&BackendNodes {
        sectors: get("sectors"),
        sector_size: get("sector-size"),
        info: get("info"),
        feature_flush_cache: get("feature-flush-cache"),
        feature_barrier: get("feature-barrier"),
        feature_max_indirect_segments: get("feature-max-indirect-segments"),
    })
    .expect("config");
    (
        Rc::new(Blkfront::from_parts(guest, DomId::DOM0, ring, chan, config)),
        back,
    )
}

fn run_case(pattern: &'static str, depth: usize, requests: u64) -> Case {
    let sim = SimXen::new(SimConfig::new(42).quiet());
    let (dev, mut back) = device(&sim);
    let ex = Executor::new(sim.clone());
    let blocks = (IMAGE_BYTES / BLOCK) as u64;
    let next = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    ex.block_on(async {
        let _backend = spawn(async move { back.run().await });
        let mut workers = Vec::new();
        for w in 0..depth {
            let dev = dev.clone();
            let next = next.clone();
            let mut prng = Prng::new(7 + w as u64);
            workers.push(spawn(async move {
                let mut buf = vec![0u8; BLOCK];
                loop {
                    let n = next.get();
                    if n == requests {
                        break;
                    }
                    next.set(n + 1);
                    let block = if pattern == "seq" {
                        n % blocks
                    } else {
                        prng.below(blocks)
                    };
                    dev.read(block * (BLOCK as u64 / 512), &mut buf)
                        .await
                        .expect("read");
                    assert_eq!(buf[0], block as u8, "wrong data");
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let stats = dev.stats();
    Case {
        pattern,
        depth,
        requests,
        secs,
        ring_requests: stats.requests,
        max_in_flight: stats.max_in_flight,
    }
}

/// Runs the suite with `args` (after `storage`).
pub fn storage_suite(args: &[String]) -> Result<(), String> {
    let mut mib: u64 = 256;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => mib = 4,
            "--mib" => {
                let v = it.next().ok_or("--mib needs a value")?;
                mib = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--mib wants a positive number, not {v}"))?;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    let requests = mib * (1 << 20) / BLOCK as u64;
    println!("storage: blkfront <-> sim blkback, 4 KiB reads, {mib} MiB per case, 64 MiB in-memory image");
    println!(
        "{:<8} {:>5} {:>10} {:>10} {:>10} {:>12} {:>8}",
        "pattern", "depth", "requests", "MiB/s", "IOPS", "us/request", "max q"
    );
    for pattern in ["seq", "random"] {
        for depth in [1, 32] {
            let c = run_case(pattern, depth, requests);
            assert_eq!(
                c.ring_requests, c.requests,
                "one ring request per 4 KiB read"
            );
            let iops = c.requests as f64 / c.secs;
            println!(
                "{:<8} {:>5} {:>10} {:>10.1} {:>10.0} {:>12.2} {:>8}",
                c.pattern,
                c.depth,
                c.requests,
                iops * BLOCK as f64 / (1 << 20) as f64,
                iops,
                1e6 / iops,
                c.max_in_flight
            );
        }
    }
    println!("(one thread runs frontend, backend and the sim; wall-clock time; no device latency)");
    Ok(())
}
