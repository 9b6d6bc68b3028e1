//! The net suite: TCP throughput, request/response latency and CPU time per
//! request between two Ringlet network stacks in one process.
//!
//! `cargo xtask bench net [--quick]`.
//!
//! Both stacks, their runner tasks and the client and server tasks run on
//! one thread, on the Ringlet executor with the software Xen as its platform
//! (virtual time: a delayed-ACK timer costs no real time). Two links: the
//! in-memory `ringlet_net::cable` (the cost of the stack itself: smoltcp,
//! the runner, the sockets, the wakes), and two guests' netfronts, each
//! served by a dom0 netback, on the sim's bridge (adds the rings, grants,
//! event channels and the backend's copies). The sim never sleeps for real, so the thread is busy for the
//! whole run: wall time is the CPU time of the work (the CPU seconds read
//! from /proc are printed next to it as a check).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use ringlet_executor::{spawn, Executor};
use ringlet_net::cable::{Cable, CableConfig};
use ringlet_net::netfront::{connect, Mac, NetfrontConfig, NetfrontHandle};
use ringlet_net::sim_netback::{add_vif, Bridge, Netback, NetbackConfig};
use ringlet_net::{IpConfig, Ipv4Address, Stack, StackConfig, TcpListener, TcpStream};
use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
use ringlet_xen::xenstore::Xenstore;

const USAGE: &str = "\
usage: ringlet-bench net [--quick]

  --quick   a smoke run (smaller transfer, fewer requests)
";

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
/// Request and response size of the request/response cases.
const MESSAGE: usize = 64;

struct Sizes {
    bulk_mib: usize,
    requests: usize,
    connections: usize,
    requests_per_connection: usize,
}

const FULL: Sizes = Sizes {
    bulk_mib: 256,
    requests: 50_000,
    connections: 50,
    requests_per_connection: 200,
};

const QUICK: Sizes = Sizes {
    bulk_mib: 8,
    requests: 2_000,
    connections: 50,
    requests_per_connection: 10,
};

fn stack_config(addr: Ipv4Address) -> StackConfig {
    let ip = IpConfig::from_cmdline(&format!("ip={addr}/24")).expect("valid address");
    StackConfig::new(ip)
        .random_seed(u64::from(addr.to_bits()))
        .sockets_max(128)
        .tcp_buffer_bytes(64 * 1024, 64 * 1024)
}

/// What joins the two stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `ringlet_net::cable`: in-memory frames, the stack's own cost.
    Cable,
    /// Two guests' netfronts, each served by its own dom0 netback, on the
    /// sim's bridge: rings, grants, event channels and copies included.
    Netfront,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Link::Cable => "cable",
            Link::Netfront => "netfront",
        }
    }
}

/// Two stacks and what keeps them running. Fields drop in order: the
/// stacks and device handles, then the executor (its tasks hold the
/// devices), the bridge, and the world last.
struct World {
    server: Stack,
    client: Stack,
    _handles: Option<(NetfrontHandle, NetfrontHandle)>,
    ex: Executor,
    _bridge: Option<Bridge>,
    sim: SimXen,
}

/// A world, its executor and two stacks joined by `link`.
fn setup(link: Link) -> World {
    let sim = SimXen::new(SimConfig::new(1).quiet());
    let ex = Executor::new(sim.clone());
    match link {
        Link::Cable => {
            let (a, b) = Cable::pair(CableConfig {
                frames_max: 256,
                ..CableConfig::default()
            });
            let (server, ra) = Stack::new(a, stack_config(SERVER)).expect("config");
            let (client, rb) = Stack::new(b, stack_config(CLIENT)).expect("config");
            ex.spawn(ra.run()).detach();
            ex.spawn(rb.run()).detach();
            World {
                server,
                client,
                _handles: None,
                ex,
                _bridge: None,
                sim,
            }
        }
        Link::Netfront => {
            let bridge = Bridge::new(512);
            let mut guests = Vec::new();
            for n in 1..=2u8 {
                let dom = sim
                    .create_domain(DomainConfig::new(&format!("guest{n}")))
                    .id();
                let mac = Mac([0, 0x16, 0x3e, 0, 0, n]);
                let paths = add_vif(&sim, dom, 0, mac);
                let back =
                    Netback::new(&sim, &bridge, paths, NetbackConfig::default()).expect("netback");
                ex.spawn(back.run()).detach();
                guests.push(sim.guest(dom));
            }
            let (ga, gb) = (guests[0].clone(), guests[1].clone());
            let (da, db) = ex.block_on(async move {
                let xa = Xenstore::new(&ga).expect("xenstore");
                let xb = Xenstore::new(&gb).expect("xenstore");
                let a = connect(&ga, &xa, NetfrontConfig::default())
                    .await
                    .expect("netfront");
                let b = connect(&gb, &xb, NetfrontConfig::default())
                    .await
                    .expect("netfront");
                (a, b)
            });
            let handles = (da.handle(), db.handle());
            let (server, ra) = Stack::new(da, stack_config(SERVER)).expect("config");
            let (client, rb) = Stack::new(db, stack_config(CLIENT)).expect("config");
            ex.spawn(ra.run()).detach();
            ex.spawn(rb.run()).detach();
            World {
                server,
                client,
                _handles: Some(handles),
                ex,
                _bridge: Some(bridge),
                sim,
            }
        }
    }
}

/// CPU seconds (user + system) of this process so far, from /proc.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those (fields 14 and 15 of the line).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct Measured {
    wall: f64,
    cpu: Option<f64>,
    virtual_s: f64,
}

fn measure(sim: &SimXen, f: impl FnOnce()) -> Measured {
    let cpu0 = cpu_seconds();
    let v0 = sim.now_ns();
    let t0 = Instant::now();
    f();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| b - a);
    Measured {
        wall,
        cpu,
        virtual_s: (sim.now_ns() - v0) as f64 / 1e9,
    }
}

fn cpu_text(m: &Measured) -> String {
    match m.cpu {
        Some(c) => format!("{c:.2} s CPU"),
        None => "CPU n/a".into(),
    }
}

/// One connection, `mib` MiB from client to server, checked by count and
/// by a running sum.
fn bulk(link: Link, mib: usize) -> Result<(), String> {
    let w = setup(link);
    let (sim, ex, server, client) = (&w.sim, &w.ex, w.server.clone(), w.client.clone());
    let total = mib << 20;
    let chunk: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    let chunk_sum: u64 = chunk.iter().map(|&b| u64::from(b)).sum();
    let received = Rc::new(Cell::new((0usize, 0u64)));
    let got = received.clone();
    let m = measure(sim, || {
        ex.block_on(async {
            let mut l = TcpListener::bind(&server, 5001, 1).expect("bind");
            let sink = spawn(async move {
                let (mut c, _) = l.accept().await;
                let mut buf = vec![0; 65536];
                loop {
                    let n = c.read(&mut buf).await.expect("read");
                    if n == 0 {
                        break;
                    }
                    let (len, sum) = got.get();
                    let s: u64 = buf[..n].iter().map(|&b| u64::from(b)).sum();
                    got.set((len + n, sum + s));
                }
            });
            let mut c = TcpStream::connect(&client, (SERVER, 5001))
                .await
                .expect("connect");
            for _ in 0..total / chunk.len() {
                c.write_all(&chunk).await.expect("write");
            }
            c.close().await.expect("close");
            sink.await.expect("sink");
        });
    });
    let (len, sum) = received.get();
    let want_sum = chunk_sum * (total / chunk.len()) as u64;
    if len != total || sum != want_sum {
        return Err(format!(
            "bulk: received {len} of {total} bytes (sum {sum}, want {want_sum})"
        ));
    }
    println!(
        "{:<8} tcp bulk        {mib:>6} MiB   {:>8.1} MiB/s   {:.2} s wall, {}, {:.3} s virtual",
        link.name(),
        mib as f64 / m.wall,
        m.wall,
        cpu_text(&m),
        m.virtual_s
    );
    Ok(())
}

/// `connections` connections at once, each sending `per` requests of
/// MESSAGE bytes one after another and reading each echo.
fn request_response(link: Link, connections: usize, per: usize) -> Result<(), String> {
    let w = setup(link);
    let (sim, ex, server, client) = (&w.sim, &w.ex, w.server.clone(), w.client.clone());
    let done = Rc::new(Cell::new(0usize));
    let d = done.clone();
    let m = measure(sim, || {
        ex.block_on(async {
            let mut l = TcpListener::bind(&server, 7, connections.min(64)).expect("bind");
            spawn(async move {
                loop {
                    let (mut c, _) = l.accept().await;
                    c.set_nodelay(true);
                    spawn(async move {
                        let mut buf = [0u8; MESSAGE];
                        loop {
                            let mut got = 0;
                            while got < MESSAGE {
                                match c.read(&mut buf[got..]).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => got += n,
                                }
                            }
                            if c.write_all(&buf).await.is_err() {
                                return;
                            }
                        }
                    })
                    .detach();
                }
            })
            .detach();
            let clients: Vec<_> = (0..connections)
                .map(|i| {
                    let client = client.clone();
                    let d = d.clone();
                    spawn(async move {
                        let mut c = TcpStream::connect(&client, (SERVER, 7))
                            .await
                            .expect("connect");
                        c.set_nodelay(true);
                        let mut msg = [0u8; MESSAGE];
                        let mut back = [0u8; MESSAGE];
                        for r in 0..per {
                            msg[..8].copy_from_slice(&((i * per + r) as u64).to_le_bytes());
                            c.write_all(&msg).await.expect("write");
                            let mut got = 0;
                            while got < MESSAGE {
                                let n = c.read(&mut back[got..]).await.expect("read");
                                assert!(n > 0, "server closed early");
                                got += n;
                            }
                            assert_eq!(back, msg, "echo differs");
                            d.set(d.get() + 1);
                        }
                        c.close().await.expect("close");
                    })
                })
                .collect();
            for c in clients {
                c.await.expect("client");
            }
        });
    });
    let n = done.get();
    if n != connections * per {
        return Err(format!(
            "request/response: {n} of {} done",
            connections * per
        ));
    }
    let per_req_us = m.wall / n as f64 * 1e6;
    let cpu_us = m.cpu.map(|c| c / n as f64 * 1e6);
    println!(
        "{:<8} tcp req/resp  {connections:>3} conn × {per:<6} {:>8.1} µs/request wall{}   {:>9.0} requests/s   ({} B each way, {:.3} s virtual)",
        link.name(),
        per_req_us,
        cpu_us.map_or(String::new(), |c| format!(", {c:.1} µs CPU")),
        n as f64 / m.wall,
        MESSAGE,
        m.virtual_s
    );
    Ok(())
}

/// `cargo xtask bench net`.
pub fn net_suite(args: &[String]) -> Result<(), String> {
    let mut sizes = &FULL;
    for arg in args {
        match arg.as_str() {
            "--quick" => sizes = &QUICK,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    println!("net: two ringlet-net stacks in one process, one thread, sim virtual time");
    println!("  cable:    in-memory frames (queue 256 frames): the stack's own cost");
    println!("  netfront: two guests' netfronts, each with a dom0 netback, on the sim's bridge");
    println!("(64 KiB socket buffers, frames_per_run_max 32, MTU 1514)");
    for link in [Link::Cable, Link::Netfront] {
        bulk(link, sizes.bulk_mib)?;
        request_response(link, 1, sizes.requests)?;
        request_response(link, sizes.connections, sizes.requests_per_connection)?;
    }
    Ok(())
}

#[cfg(test)]
mod test {
    #[test]
    fn quick_suite_runs_and_checks_its_work() {
        for link in [super::Link::Cable, super::Link::Netfront] {
            super::bulk(link, 1).unwrap();
            super::request_response(link, 1, 50).unwrap();
            super::request_response(link, 5, 10).unwrap();
        }
    }
}
