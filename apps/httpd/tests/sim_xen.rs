//! httpd on the software Xen the way it runs on Xen: its site through
//! blkfront from dom0's sim blkback, its network through netfront and the
//! sim netback on a bridge, and a client on a second guest with its own
//! netfront and stack. Fault-free, and under each seed's world faults
//! (late, repeated and spurious events — benign ones only: a broken ring
//! is netfront's and blkfront's own tests' business).
//!
//! `RINGLET_SEED=N cargo test -p ringlet-httpd --test sim_xen` replays one
//! seed.

use std::rc::Rc;

use ringlet_executor::{spawn, Executor};
use ringlet_httpd::client::Client;
use ringlet_httpd::pack::{demo_big_file, pack_files};
use ringlet_httpd::server::{Server, ServerConfig, ServerStats};
use ringlet_httpd::sim_dom0::{add_disk, add_nic, VBD_XVDA};
use ringlet_net::netfront::{connect, Mac, NetfrontConfig};
use ringlet_net::sim_netback::Bridge;
use ringlet_net::{IpConfig, Ipv4Address, Stack, StackConfig};
use ringlet_storage::blkfront;
use ringlet_storage::tar::TarStore;
use ringlet_xen::guest::Guest;
use ringlet_xen::sim::{DomainConfig, Faults, SimConfig, SimXen};
use ringlet_xen::xenstore::Xenstore;

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const MTIME: u64 = 1_700_000_000;
const INDEX: &[u8] = b"<!doctype html><h1>ringlet</h1>\n";
const CSS: &[u8] = b"h1 { color: teal; }\n";

fn stack_config(addr: &str, seed: u64) -> StackConfig {
    StackConfig::new(IpConfig::from_cmdline(addr).unwrap())
        .random_seed(seed)
        .sockets_max(128)
}

/// The httpd guest: disk, network, server; returns the final counters
/// once `stop` resolves.
async fn httpd(guest: Guest, stop: impl std::future::Future<Output = ()>) -> ServerStats {
    let xs = Xenstore::new(&guest).unwrap();
    let disk = blkfront::connect(&guest, &xs, VBD_XVDA).await.unwrap();
    let store = TarStore::open(disk).await.unwrap();
    let nic = connect(&guest, &xs, NetfrontConfig::new(0)).await.unwrap();
    let handle = nic.handle();
    let xs2 = xs.clone();
    spawn(async move {
        let e = handle.supervise(&xs2).await;
        panic!("httpd's netfront supervisor stopped: {e:?}");
    })
    .detach();
    let (stack, runner) = Stack::new(nic, stack_config("ip=10.0.0.2/24", 2)).unwrap();
    spawn(runner.run()).detach();
    let server = Server::bind(&stack, Rc::new(store), ServerConfig::default()).unwrap();
    server.run(stop).await
}

/// One world: httpd on guest 1, the client on guest 2; the client's
/// checks run, then httpd is stopped. Returns (checks passed, httpd's
/// counters).
fn run(seed: u64, faults: Faults) -> (usize, ServerStats) {
    eprintln!("seed {seed}, faults {faults:?}");
    let sim = SimXen::new(SimConfig::new(seed).quiet().with_faults(faults));
    let ex = Executor::new(sim.clone());
    let bridge = Bridge::new(512);
    let server_dom = sim.create_domain(DomainConfig::new("httpd")).id();
    let client_dom = sim.create_domain(DomainConfig::new("client")).id();
    let big = demo_big_file();
    let image = pack_files(&[
        ("index.html", INDEX, MTIME),
        ("css/site.css", CSS, MTIME),
        ("big.bin", &big, MTIME),
    ])
    .unwrap();
    // dom0's side: xvda from the image, a netback for each guest's vif.
    ex.block_on(async {
        add_disk(&sim, server_dom, image);
        for (dom, last) in [(server_dom, 2u8), (client_dom, 3)] {
            add_nic(&sim, &bridge, dom, Mac([0, 0x16, 0x3e, 0, 0, last])).unwrap();
        }
    });
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let server = ex.spawn(httpd(sim.guest(server_dom), async move {
        let _ = rx.await;
    }));
    let client_guest = sim.guest(client_dom);
    let passed = ex.block_on(async move {
        let xs = Xenstore::new(&client_guest).unwrap();
        let nic = connect(&client_guest, &xs, NetfrontConfig::new(0))
            .await
            .unwrap();
        let (stack, runner) = Stack::new(nic, stack_config("ip=10.0.0.3/24", 3)).unwrap();
        spawn(runner.run()).detach();
        // The server connects its disk first: retry until it listens.
        let mut c = loop {
            match Client::connect(&stack, (SERVER, 80)).await {
                Ok(c) => break c,
                Err(_) => {
                    ringlet_executor::sleep(ringlet_executor::Duration::from_millis(20)).await
                }
            }
        };
        let max = 2 << 20;
        let mut passed = 0;
        for (path, want) in [("/", INDEX), ("/css/site.css", CSS), ("/big.bin", &big[..])] {
            let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
            let r = c.request(raw.as_bytes(), false, max).await.unwrap();
            assert_eq!(r.status, 200, "{path}");
            assert!(r.body == want, "{path}: bytes differ");
            passed += 1;
        }
        let r = c
            .request(
                b"GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-4096\r\n\r\n",
                false,
                max,
            )
            .await
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (206, &big[big.len() - 4096..]));
        let r = c
            .request(b"GET /css HTTP/1.1\r\nHost: h\r\n\r\n", false, max)
            .await
            .unwrap();
        assert_eq!((r.status, r.header("Location")), (301, Some("/css/")));
        passed += 2;
        // 20 connections at once, 10 keep-alive requests each.
        let mut tasks = Vec::new();
        for i in 0..20usize {
            let stack = stack.clone();
            let big = big.clone();
            tasks.push(spawn(async move {
                let mut c = Client::connect(&stack, (SERVER, 80)).await.unwrap();
                for j in 0..10usize {
                    let start = (i * 10 + j) * 4099 % (big.len() - 8192);
                    let raw = format!(
                        "GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes={start}-{}\r\n\r\n",
                        start + 8191
                    );
                    let r = c.request(raw.as_bytes(), false, 1 << 20).await.unwrap();
                    assert_eq!(r.status, 206);
                    assert!(
                        r.body == big[start..start + 8192],
                        "connection {i}: bytes differ"
                    );
                }
                10
            }));
        }
        for t in tasks {
            passed += t.await.unwrap();
        }
        let _ = tx.send(());
        passed
    });
    let stats = ex.block_on(server).unwrap();
    (passed, stats)
}

#[test]
fn served_through_netfront_and_blkfront() {
    let seed = SimConfig::seed_from_env().unwrap_or(11);
    let (passed, stats) = run(seed, Faults::none());
    assert_eq!(passed, 205);
    assert_eq!(stats.responses, 205);
    assert_eq!(stats.by_class, [204, 1, 0, 0]);
    assert_eq!((stats.socket_errors, stats.disk_errors), (0, 0));
}

#[test]
fn served_under_benign_event_faults() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(s) => vec![s],
        None => (100..104).collect(),
    };
    for seed in seeds {
        let faults = Faults::from_seed(seed).benign_only();
        let (passed, stats) = run(seed, faults);
        assert_eq!(passed, 205, "seed {seed}");
        assert_eq!(stats.responses, 205, "seed {seed}");
    }
}
