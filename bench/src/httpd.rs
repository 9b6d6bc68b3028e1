//! The httpd suite: the Ringlet httpd appliance serving one large file over
//! and over, on the software Xen, as it runs on Xen.
//!
//! `cargo xtask bench httpd [--quick] [--requests N] [--file-kib N]
//! [--conns N] [--cache MIB]`.
//!
//! Two cases, the same in all but the read cache in front of blkfront
//! (`ringlet_storage::CachedDevice`, as the appliance has it): off, and
//! `--cache` MiB (default 64). Each case first serves the file once (the
//! cache's cold fill), then measures.
//!
//! One process, one thread: httpd's guest (its site through blkfront from
//! dom0's sim blkback, its network through netfront and the sim netback on
//! a bridge), and a client guest with its own netfront and stack on the same
//! bridge, fetching the file on `--conns` keep-alive connections. The sim
//! never sleeps for real, so wall time is CPU time, and it includes the
//! client's stack and dom0's backends (on Xen those run elsewhere): compare
//! the cases with each other, not with Xen. Each case prints the time per
//! response and, from httpd's side, blkfront's ring requests per response
//! and the cache's hits and misses.

use std::rc::Rc;
use std::time::Instant;

use ringlet_executor::{spawn, Executor};
use ringlet_httpd::client::Client;
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

const USAGE: &str = "\
usage: ringlet-bench httpd [--quick] [--requests N] [--file-kib N] [--conns N] [--cache MIB]

  --quick        a smoke run (20 requests)
  --requests N   responses per case (default 200)
  --file-kib N   size of the served file in KiB (default 1024)
  --conns N      keep-alive connections sharing the requests (default 1)
  --cache MIB    the read cache of the second case (default 64)
";

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
/// httpd's TCP buffers, as the appliance has them (apps/httpd/src/main.rs).
const TCP_RX_BUFFER_BYTES: usize = 8 * 1024;
const TCP_TX_BUFFER_BYTES: usize = 32 * 1024;

struct Options {
    requests: usize,
    file_bytes: usize,
    conns: usize,
    cache_bytes: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        requests: 200,
        file_bytes: 1 << 20,
        conns: 1,
        cache_bytes: 64 << 20,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |min: usize, max: usize| -> Result<usize, String> {
            let v = it.next().ok_or(format!("{arg} needs a value\n{USAGE}"))?;
            v.parse::<usize>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or(format!("{arg} wants a number from {min} to {max}, not {v}"))
        };
        match arg.as_str() {
            "--quick" => o.requests = 20,
            "--requests" => o.requests = number(1, 1_000_000)?,
            "--file-kib" => o.file_bytes = number(1, 64 * 1024)? * 1024,
            "--conns" => o.conns = number(1, 64)?,
            "--cache" => o.cache_bytes = number(0, 4096)? << 20,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown option {arg}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The served file: xorshift bytes, so a shifted answer never matches.
fn file(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What one case measured.
struct Case {
    responses: usize,
    body_bytes: u64,
    secs: f64,
    cpu_secs: Option<f64>,
    ring_requests: u64,
    cache: CacheStats,
}

/// What the bench reads from httpd's guest.
#[derive(Default)]
struct Disk {
    blkfront: Option<Rc<Blkfront>>,
    store: Option<Rc<TarStore<CachedDevice<Rc<Blkfront>>>>>,
}

impl Disk {
    fn ring_requests(&self) -> u64 {
        self.blkfront.as_ref().expect("disk").stats().requests
    }

    fn cache(&self) -> CacheStats {
        self.store.as_ref().expect("store").device().stats()
    }
}

/// This process's CPU seconds (user + system), from /proc.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn stack_config(addr: &str, seed: u64) -> StackConfig {
    StackConfig::new(IpConfig::from_cmdline(addr).expect("static address"))
        .random_seed(seed)
        .sockets_max(256)
        .tcp_buffer_bytes(TCP_RX_BUFFER_BYTES, TCP_TX_BUFFER_BYTES)
}

/// httpd's guest: disk, network, server until `stop`.
async fn httpd(
    guest: Guest,
    cache_bytes: usize,
    disk_out: Rc<std::cell::RefCell<Disk>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let xs = Xenstore::new(&guest).expect("xenstore");
    let disk = Rc::new(
        blkfront::connect(&guest, &xs, VBD_XVDA)
            .await
            .expect("blkfront"),
    );
    let cached = CachedDevice::new(disk.clone(), CacheConfig::new(cache_bytes)).expect("cache");
    let store = Rc::new(TarStore::open(cached).await.expect("tar"));
    *disk_out.borrow_mut() = Disk {
        blkfront: Some(disk),
        store: Some(store.clone()),
    };
    let nic = connect(&guest, &xs, NetfrontConfig::new(0))
        .await
        .expect("netfront");
    let (stack, runner) = Stack::new(nic, stack_config("ip=10.0.0.2/24", 2)).expect("stack");
    spawn(runner.run()).detach();
    let server = Server::bind(&stack, store, ServerConfig::default()).expect("bind");
    let stats = server.run(stop).await;
    assert_eq!(stats.disk_errors, 0);
}

fn run_case(o: &Options, cache_bytes: usize) -> Case {
    let sim = SimXen::new(SimConfig::new(42).quiet());
    let ex = Executor::new(sim.clone());
    let bridge = Bridge::new(512);
    let server_dom = sim.create_domain(DomainConfig::new("httpd")).id();
    let client_dom = sim.create_domain(DomainConfig::new("client")).id();
    let data = Rc::new(file(o.file_bytes));
    let image =
        ringlet_httpd::pack::pack_files(&[("big.bin", &data[..], 1_700_000_000)]).expect("pack");
    // dom0's side: xvda from the image, a netback for each guest's vif.
    ex.block_on(async {
        add_disk(&sim, server_dom, image);
        for (dom, last) in [(server_dom, 2u8), (client_dom, 3)] {
            add_nic(&sim, &bridge, dom, Mac([0, 0x16, 0x3e, 0, 0, last])).expect("netback");
        }
    });
    let disk = Rc::new(std::cell::RefCell::new(Disk::default()));
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
    let (requests, conns) = (o.requests, o.conns);
    let (secs, cpu, ring_requests, cache, body_bytes) = ex.block_on(async move {
        let xs = Xenstore::new(&client_guest).expect("xenstore");
        let nic = connect(&client_guest, &xs, NetfrontConfig::new(0))
            .await
            .expect("netfront");
        let (stack, runner) = Stack::new(nic, stack_config("ip=10.0.0.3/24", 3)).expect("stack");
        spawn(runner.run()).detach();
        let mut clients = Vec::new();
        for _ in 0..conns {
            let c = loop {
                match Client::connect(&stack, (SERVER, 80)).await {
                    Ok(c) => break c,
                    Err(_) => {
                        ringlet_executor::sleep(ringlet_executor::Duration::from_millis(20)).await
                    }
                }
            };
            clients.push(c);
        }
        // Once, unmeasured: the cache's cold fill.
        let r = clients[0]
            .request(
                b"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n",
                false,
                128 << 20,
            )
            .await
            .expect("request");
        assert!(r.status == 200 && r.body == *data, "first response");
        let ring_before = disk.borrow().ring_requests();
        let cache_before = disk.borrow().cache();
        let (start, cpu0) = (Instant::now(), cpu_secs());
        let mut tasks = Vec::new();
        for (i, mut c) in clients.into_iter().enumerate() {
            let data = data.clone();
            let n = requests / conns + usize::from(i < requests % conns);
            tasks.push(spawn(async move {
                let mut bytes = 0u64;
                for _ in 0..n {
                    let r = c
                        .request(
                            b"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n",
                            false,
                            128 << 20,
                        )
                        .await
                        .expect("request");
                    assert_eq!(r.status, 200);
                    assert!(r.body == *data, "bytes differ");
                    bytes += r.body.len() as u64;
                }
                bytes
            }));
        }
        let mut body_bytes = 0;
        for t in tasks {
            body_bytes += t.await.expect("client task");
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_secs().zip(cpu0).map(|(b, a)| b - a);
        let ring = disk.borrow().ring_requests() - ring_before;
        let c = disk.borrow().cache();
        let mut cache = c;
        cache.hits -= cache_before.hits;
        cache.misses -= cache_before.misses;
        let _ = tx.send(());
        (secs, cpu, ring, cache, body_bytes)
    });
    ex.block_on(server).expect("server");
    Case {
        responses: o.requests,
        body_bytes,
        secs,
        cpu_secs: cpu,
        ring_requests,
        cache,
    }
}

/// Runs the suite (see the module docs).
///
/// # Errors
///
/// Bad arguments.
pub fn httpd_suite(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("load average (1, 5, 15 min): {}", load.join(" "));
    }
    println!(
        "httpd: {} responses of a {} KiB file on {} connection(s)",
        o.requests,
        o.file_bytes / 1024,
        o.conns
    );
    println!(
        "{:>12} {:>11} {:>13} {:>9} {:>18} {:>15} {:>8}",
        "cache",
        "responses/s",
        "µs/response",
        "MiB/s",
        "ring reqs/response",
        "hits/misses",
        "cpu s"
    );
    for cache_bytes in [0, o.cache_bytes] {
        let c = run_case(&o, cache_bytes);
        let per = c.secs / c.responses as f64;
        println!(
            "{:>12} {:>11.1} {:>13.1} {:>9.1} {:>18.2} {:>15} {:>8}",
            if cache_bytes == 0 {
                "off".to_string()
            } else {
                format!("{} MiB", cache_bytes >> 20)
            },
            c.responses as f64 / c.secs,
            per * 1e6,
            c.body_bytes as f64 / c.secs / (1 << 20) as f64,
            c.ring_requests as f64 / c.responses as f64,
            format!("{}/{}", c.cache.hits, c.cache.misses),
            c.cpu_secs.map_or("?".to_string(), |s| format!("{s:.2}")),
        );
    }
    Ok(())
}
