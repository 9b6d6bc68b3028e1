//! httpd's read cache on the software Xen, as the appliance has it: the
//! site through `CachedDevice` over blkfront (dom0's sim blkback), the
//! network through netfront and the sim netback, a client on a second
//! guest. A hot file is served from memory: the second time, no request
//! reaches blkfront. And the hosted binary's `cache=` option.
//!
//! `RINGLET_SEED=N cargo test -p ringlet-httpd --test cache` replays one
//! seed.

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;

use ringlet_executor::{spawn, Executor};
use ringlet_httpd::client::{Client, ClientResponse};
use ringlet_httpd::pack::{demo_big_file, pack_files};
use ringlet_httpd::server::{Server, ServerConfig};
use ringlet_httpd::sim_dom0::{add_disk, add_nic, VBD_XVDA};
use ringlet_net::netfront::{connect, Mac, NetfrontConfig};
use ringlet_net::sim_netback::Bridge;
use ringlet_net::{IpConfig, Ipv4Address, Stack, StackConfig};
use ringlet_storage::blkfront::{self, Blkfront};
use ringlet_storage::tar::TarStore;
use ringlet_storage::{CacheConfig, CacheStats, CachedDevice};
use ringlet_xen::guest::Guest;
use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
use ringlet_xen::xenstore::Xenstore;

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const MTIME: u64 = 1_700_000_000;
const INDEX: &[u8] = b"<!doctype html><h1>ringlet</h1>\n";

type Store = TarStore<CachedDevice<Rc<Blkfront>>>;

/// httpd's disk, for the test to read its counters.
#[derive(Default)]
struct Disk {
    blkfront: Option<Rc<Blkfront>>,
    store: Option<Rc<Store>>,
}

/// What the disk had done at one point.
#[derive(Clone, Copy, Debug)]
struct Counters {
    ring_requests: u64,
    cache: CacheStats,
}

impl Disk {
    fn counters(&self) -> Counters {
        Counters {
            ring_requests: self.blkfront.as_ref().unwrap().stats().requests,
            cache: self.store.as_ref().unwrap().device().stats(),
        }
    }
}

fn stack_config(addr: &str, seed: u64) -> StackConfig {
    StackConfig::new(IpConfig::from_cmdline(addr).unwrap())
        .random_seed(seed)
        .sockets_max(64)
}

/// The httpd guest with a cache of `cache_bytes` (set once it listens, as
/// the appliance does), until `stop`.
async fn httpd(
    guest: Guest,
    cache_bytes: usize,
    disk: Rc<RefCell<Disk>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let xs = Xenstore::new(&guest).unwrap();
    let blk = Rc::new(blkfront::connect(&guest, &xs, VBD_XVDA).await.unwrap());
    let cached = CachedDevice::new(blk.clone(), CacheConfig::new(0)).unwrap();
    let store = Rc::new(TarStore::open(cached).await.unwrap());
    *disk.borrow_mut() = Disk {
        blkfront: Some(blk),
        store: Some(store.clone()),
    };
    let nic = connect(&guest, &xs, NetfrontConfig::new(0)).await.unwrap();
    let (stack, runner) = Stack::new(nic, stack_config("ip=10.0.0.2/24", 2)).unwrap();
    spawn(runner.run()).detach();
    let server = Server::bind(&stack, store.clone(), ServerConfig::default()).unwrap();
    store.device().set_capacity_bytes(cache_bytes);
    let stats = server.run(stop).await;
    assert_eq!(stats.disk_errors, 0);
}

/// One world: httpd with a cache of `cache_bytes`, and a client that sends
/// `requests` on one connection; the responses and the disk's counters
/// before each request and at the end.
fn run(cache_bytes: usize, requests: &[&str]) -> (Vec<ClientResponse>, Vec<Counters>) {
    let seed = SimConfig::seed_from_env().unwrap_or(5);
    eprintln!("seed {seed}, cache {cache_bytes} bytes");
    let sim = SimXen::new(SimConfig::new(seed).quiet());
    let ex = Executor::new(sim.clone());
    let bridge = Bridge::new(512);
    let server_dom = sim.create_domain(DomainConfig::new("httpd")).id();
    let client_dom = sim.create_domain(DomainConfig::new("client")).id();
    let big = demo_big_file();
    let image = pack_files(&[("index.html", INDEX, MTIME), ("big.bin", &big, MTIME)]).unwrap();
    // dom0's side: xvda from the image, a netback for each guest's vif.
    ex.block_on(async {
        add_disk(&sim, server_dom, image);
        for (dom, last) in [(server_dom, 2u8), (client_dom, 3)] {
            add_nic(&sim, &bridge, dom, Mac([0, 0x16, 0x3e, 0, 0, last])).unwrap();
        }
    });
    let disk = Rc::new(RefCell::new(Disk::default()));
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let server = ex.spawn(httpd(
        sim.guest(server_dom),
        cache_bytes,
        disk.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    let client_guest = sim.guest(client_dom);
    let requests: Vec<String> = requests.iter().map(|s| s.to_string()).collect();
    let out = ex.block_on(async move {
        let xs = Xenstore::new(&client_guest).unwrap();
        let nic = connect(&client_guest, &xs, NetfrontConfig::new(0))
            .await
            .unwrap();
        let (stack, runner) = Stack::new(nic, stack_config("ip=10.0.0.3/24", 3)).unwrap();
        spawn(runner.run()).detach();
        let mut c = loop {
            match Client::connect(&stack, (SERVER, 80)).await {
                Ok(c) => break c,
                Err(_) => {
                    ringlet_executor::sleep(ringlet_executor::Duration::from_millis(20)).await
                }
            }
        };
        let (mut responses, mut counters) = (Vec::new(), Vec::new());
        for raw in &requests {
            counters.push(disk.borrow().counters());
            responses.push(c.request(raw.as_bytes(), false, 2 << 20).await.unwrap());
        }
        counters.push(disk.borrow().counters());
        let _ = tx.send(());
        (responses, counters)
    });
    ex.block_on(server).unwrap();
    out
}

const GET_BIG: &str = "GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n";

#[test]
fn a_hot_file_is_served_from_memory() {
    let big = demo_big_file();
    let (responses, counters) = run(4 << 20, &[GET_BIG, GET_BIG]);
    for r in &responses {
        assert_eq!(r.status, 200);
        assert!(r.body == big, "bytes differ");
    }
    let ring = |i: usize| counters[i + 1].ring_requests - counters[i].ring_requests;
    let cache = |i: usize| (counters[i + 1].cache, counters[i].cache);
    // The first serve fills the cache: 1 MiB plus the tar header's offset
    // spans 17 chunks of 64 KiB, each one ring request.
    let (after, before) = cache(0);
    assert_eq!(after.fills - before.fills, 17);
    assert_eq!(ring(0), 17);
    // The second reads nothing from the disk.
    let (after, before) = cache(1);
    assert_eq!(ring(1), 0);
    assert_eq!(after.misses - before.misses, 0);
    assert!(after.hits - before.hits >= 64);
    assert_eq!(after.resident_bytes, 17 * 64 * 1024);
    assert!(after.resident_bytes_max <= 4 << 20);
}

#[test]
fn without_the_cache_every_serve_reads_the_disk() {
    let big = demo_big_file();
    let (responses, counters) = run(0, &[GET_BIG, GET_BIG]);
    assert!(responses.iter().all(|r| r.status == 200 && r.body == big));
    // 16 KiB at a time, one ring request each.
    for i in 0..2 {
        assert_eq!(
            counters[i + 1].ring_requests - counters[i].ring_requests,
            64
        );
    }
    let c = counters[2].cache;
    assert_eq!((c.hits, c.misses, c.resident_bytes_max), (0, 0, 0));
}

#[test]
fn a_cache_smaller_than_the_file_stays_within_its_capacity() {
    let big = demo_big_file();
    let index = "GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n";
    let (responses, counters) = run(256 * 1024, &[GET_BIG, index, GET_BIG, index]);
    assert!(responses[0].body == big && responses[2].body == big);
    assert_eq!(responses[1].body, INDEX);
    assert_eq!(responses[3].body, INDEX);
    let end = counters[4].cache;
    // Four chunks at most, ever; reading 17 chunks through 4 evicts.
    assert!(end.resident_bytes_max <= 256 * 1024, "{end:?}");
    assert!(end.evictions >= 13, "{end:?}");
    // The big file evicted index.html's chunk both times.
    assert!(counters[2].ring_requests > counters[1].ring_requests);
    assert!(counters[4].ring_requests > counters[3].ring_requests);
}

fn httpd_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringlet-httpd"))
}

#[test]
fn the_hosted_appliance_takes_cache_from_its_command_line() {
    for (arg, line) in [
        ("cache=0", "httpd: read cache off (cache=0)"),
        ("cache=8", "httpd: read cache 8.0 MiB (cache=8)"),
        ("port=80", "httpd: read cache 256.0 MiB (the default's cap"),
    ] {
        let out = httpd_bin().arg(arg).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{arg}: {stdout}");
        assert!(stdout.contains(line), "{arg}: no {line:?} in\n{stdout}");
        assert!(stdout.contains("client: all "), "{stdout}");
        // The self-check fetches every file once, then big.bin's range,
        // HEAD and conditional GET: with the cache on, hits.
        let stats = stdout
            .lines()
            .find(|l| l.starts_with("httpd: read cache: "))
            .unwrap_or_else(|| panic!("no cache counters in\n{stdout}"));
        if arg == "cache=0" {
            assert!(
                stats.starts_with("httpd: read cache: 0 hits, 0 misses"),
                "{stats}"
            );
        } else {
            assert!(!stats.starts_with("httpd: read cache: 0 hits"), "{stats}");
        }
    }
    for bad in ["cache=x", "cache=1 cache=2", "cache=65537"] {
        let out = httpd_bin().arg(bad).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{bad}: {all}");
        assert!(
            all.contains("cache= must be a number of MiB"),
            "{bad}: {all}"
        );
    }
}
