//! Two network stacks over two netfronts on the sim's bridge (each guest
//! with its own dom0 netback): TCP bulk transfers both ways checked byte
//! for byte, UDP, many connections, and the same under injected ring faults
//! and backend disconnects (TCP recovers what the rings lose).
#![cfg(feature = "sim")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ringlet_executor::time::{timeout, Duration, Instant};
use ringlet_executor::{spawn, Executor};
use ringlet_net::netfront::{connect, Netfront, NetfrontConfig, NetfrontHandle, NetfrontStats};
use ringlet_net::sim_netback::{
    add_vif, Bridge, BridgeStats, Netback, NetbackConfig, NetbackStatsHandle,
};
use ringlet_net::{
    IpConfig, Ipv4Address, ReadError, Stack, StackConfig, TcpListener, TcpReader, TcpStream,
    UdpSocket, WriteError,
};
use ringlet_xen::sim::{DomainConfig, FaultSite, Faults, Ratio, SimConfig, SimXen};
use ringlet_xen::xenstore::Xenstore;

const A: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const B: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const MIB: usize = 1024 * 1024;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn cfg(addr: Ipv4Address) -> StackConfig {
    let ip = IpConfig::from_cmdline(&format!("ip={addr}/24")).unwrap();
    StackConfig::new(ip).random_seed(u64::from(addr.to_bits()))
}

/// Fields drop in this order: the devices' handles and the stacks, then
/// the executor (its tasks hold the netfronts), and the world last (pages
/// go back to it as the devices drop).
struct Net {
    a: Stack,
    b: Stack,
    ha: NetfrontHandle,
    hb: NetfrontHandle,
    /// dom0's netbacks of A and B.
    va: NetbackStatsHandle,
    vb: NetbackStatsHandle,
    ex: Executor,
    bridge: Bridge,
    sim: SimXen,
}

/// Two guests with a vif each on one bridge, netfronts connected and
/// supervised, a stack on each (A = 10.0.0.1, B = 10.0.0.2).
fn net(config: SimConfig, nb: NetbackConfig, sa: StackConfig, sb: StackConfig) -> Net {
    net_with(config, nb, NetfrontConfig::default(), sa, sb)
}

/// [`net`] with both netfronts configured as `nf`.
fn net_with(
    config: SimConfig,
    nb: NetbackConfig,
    nf: NetfrontConfig,
    sa: StackConfig,
    sb: StackConfig,
) -> Net {
    let sim = SimXen::new(config);
    let ex = Executor::new(sim.clone());
    let bridge = Bridge::new(512);
    let mut guests = Vec::new();
    let mut backs = Vec::new();
    for n in 1..=2u8 {
        let dom = sim
            .create_domain(DomainConfig::new(&format!("guest{n}")))
            .id();
        let mac = ringlet_net::netfront::Mac([0, 0x16, 0x3e, 0, 0, n]);
        let paths = add_vif(&sim, dom, 0, mac);
        let back = Netback::new(&sim, &bridge, paths, nb).unwrap();
        backs.push(back.stats());
        ex.spawn(back.run()).detach();
        guests.push(sim.guest(dom));
    }
    let (ga, gb) = (guests[0].clone(), guests[1].clone());
    let (da, db): (Netfront, Netfront) = ex.block_on(async move {
        let xa = Xenstore::new(&ga).unwrap();
        let xb = Xenstore::new(&gb).unwrap();
        let a = connect(&ga, &xa, nf).await.unwrap();
        let b = connect(&gb, &xb, nf).await.unwrap();
        for (h, xs) in [(a.handle(), xa), (b.handle(), xb)] {
            spawn(async move {
                let e = h.supervise(&xs).await;
                panic!("supervisor stopped: {e:?}");
            })
            .detach();
        }
        (a, b)
    });
    let (ha, hb) = (da.handle(), db.handle());
    let (a, ra) = Stack::new(da, sa).unwrap();
    let (b, rb) = Stack::new(db, sb).unwrap();
    ex.spawn(ra.run()).detach();
    ex.spawn(rb.run()).detach();
    Net {
        sim,
        ex,
        bridge,
        a,
        b,
        ha,
        hb,
        vb: backs.pop().unwrap(),
        va: backs.pop().unwrap(),
    }
}

/// Reads until EOF; a reset is accepted only once `want` bytes are in (the
/// stack keeps no TIME-WAIT: if the final ACK of a close is lost, the peer's
/// retransmitted FIN meets no socket and is answered with a reset).
async fn read_to_end(r: &mut TcpReader, want: usize, who: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 3000];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return got,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(ReadError::Reset) if got.len() == want => return got,
            Err(e) => panic!("{who}: read after {} of {want} bytes: {e:?}", got.len()),
        }
    }
}

/// B sends `up` to A while A sends `down` to B, on one connection; returns
/// what each received and the virtual time it took.
fn both_ways(n: &Net, up: Vec<u8>, down: Vec<u8>) -> (Vec<u8>, Vec<u8>, Duration) {
    let (a, b) = (n.a.clone(), n.b.clone());
    let (up_len, down_len) = (up.len(), down.len());
    n.ex.block_on(async move {
        let t0 = Instant::now();
        let mut listener = TcpListener::bind(&a, 80, 2).unwrap();
        let server = spawn(async move {
            let (conn, _) = listener.accept().await;
            let (mut r, mut w) = conn.split();
            let writer = spawn(async move {
                for chunk in down.chunks(6007) {
                    w.write_all(chunk).await?;
                }
                w.shutdown().await
            });
            let got = read_to_end(&mut r, up_len, "A").await;
            (got, writer.await.unwrap())
        });
        let conn = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let (mut r, mut w) = conn.split();
        let writer = spawn(async move {
            for chunk in up.chunks(7919) {
                w.write_all(chunk).await?;
            }
            w.shutdown().await
        });
        let got_b = read_to_end(&mut r, down_len, "B").await;
        let wb = writer.await.unwrap();
        let (got_a, wa) = server.await.unwrap();
        // A writer may see the reset too, but only after the peer had all.
        for (w, got, want) in [(wa, &got_b, down_len), (wb, &got_a, up_len)] {
            if let Err(e) = w {
                assert!(
                    e == WriteError::Reset && got.len() == want,
                    "write failed early: {e:?}"
                );
            }
        }
        (got_a, got_b, Instant::now() - t0)
    })
}

fn report(what: &str, n: &Net, took: Duration) {
    let (sa, sb): (NetfrontStats, NetfrontStats) = (n.ha.stats(), n.hb.stats());
    let br: BridgeStats = n.bridge.stats();
    eprintln!(
        "{what}: {took:?} virtual; netfront a rx {} tx {} (csum offloaded {}) malformed {} \
         downs {} reconnects {}; b rx {} tx {} (csum offloaded {}) malformed {} downs {} \
         reconnects {}; bridge in {} dropped {}",
        sa.rx_frames,
        sa.tx_frames,
        sa.tx_csum_offloaded,
        sa.malformed(),
        sa.link_downs,
        sa.reconnects,
        sb.rx_frames,
        sb.tx_frames,
        sb.tx_csum_offloaded,
        sb.malformed(),
        sb.link_downs,
        sb.reconnects,
        br.frames_in,
        br.dropped_full
    );
}

/// Every TCP/UDP frame a netfront sent went with `csum_blank` (offload
/// on) or none did (off), and its netback completed exactly those. The
/// frames not offloaded are the ARP exchange (a request or a reply each).
fn assert_offload(n: &Net, on: bool) {
    for (s, v) in [(n.ha.stats(), n.va.get()), (n.hb.stats(), n.vb.get())] {
        assert_eq!(s.tx_csum_computed, 0, "{s:?}");
        assert_eq!(s.tx_dropped, 0, "{s:?}");
        assert_eq!(v.tx_csum_completed, s.tx_csum_offloaded, "{v:?}");
        assert_eq!(v.tx_csum_dropped, 0, "{v:?}");
        if on {
            assert!(s.tx_frames - s.tx_csum_offloaded <= 2, "{s:?}");
            assert!(s.tx_csum_offloaded > 0, "{s:?}");
        } else {
            assert_eq!(s.tx_csum_offloaded, 0, "{s:?}");
        }
    }
}

#[test]
fn one_mib_each_way_over_netfronts_byte_for_byte() {
    let n = net(
        SimConfig::new(31).quiet(),
        NetbackConfig::default(),
        cfg(A),
        cfg(B),
    );
    let (up, down) = (pattern(1, MIB), pattern(2, MIB));
    let (got_a, got_b, took) = both_ways(&n, up.clone(), down.clone());
    assert!(got_a == up, "A received corrupted data");
    assert!(got_b == down, "B received corrupted data");
    report("1 MiB each way over netfronts", &n, took);
    for s in [n.ha.stats(), n.hb.stats()] {
        assert_eq!(s.malformed(), 0);
        assert_eq!(s.link_downs, 0);
        assert!(s.rx_bytes > MIB as u64);
    }
    // The receiving smoltcp verified every checksum the backend completed.
    assert_offload(&n, true);
}

/// The same with tx checksum offload off: smoltcp computes every checksum,
/// netfront sends no flags.
#[test]
fn one_mib_each_way_without_tx_csum_offload() {
    let nf = NetfrontConfig {
        tx_csum_offload: false,
        ..NetfrontConfig::default()
    };
    let n = net_with(
        SimConfig::new(35).quiet(),
        NetbackConfig::default(),
        nf,
        cfg(A),
        cfg(B),
    );
    let (up, down) = (pattern(7, MIB), pattern(8, MIB));
    let (got_a, got_b, took) = both_ways(&n, up.clone(), down.clone());
    assert!(got_a == up && got_b == down, "corrupted data");
    report("1 MiB each way, tx checksum offload off", &n, took);
    assert_offload(&n, false);
}

#[test]
fn one_mib_each_way_with_chained_rx_buffers() {
    let nb = NetbackConfig {
        rx_chunk_max: 512,
        rx_offset_random: true,
        ..NetbackConfig::default()
    };
    let n = net(SimConfig::new(32).quiet(), nb, cfg(A), cfg(B));
    let (up, down) = (pattern(3, MIB), pattern(4, MIB));
    let (got_a, got_b, took) = both_ways(&n, up.clone(), down.clone());
    assert!(got_a == up && got_b == down, "corrupted data");
    report("1 MiB each way, rx chained over 512-byte slots", &n, took);
    assert!(n.ha.stats().rx_chains > 500);
}

/// The ring faults, one at a time: TCP gets every byte through, exact.
#[test]
fn tcp_survives_each_ring_fault() {
    let cases = [
        (FaultSite::RingBadStatus, Ratio::new(1, 50)),
        (FaultSite::RingBadId, Ratio::new(1, 50)),
        (FaultSite::RingDuplicateId, Ratio::new(1, 50)),
        (FaultSite::RingProducerJump, Ratio::new(1, 200)),
        (FaultSite::BackendStateChange, Ratio::new(1, 50)),
    ];
    let only: Option<usize> = std::env::var("FAULT_CASE")
        .ok()
        .and_then(|v| v.parse().ok());
    for (i, (site, ratio)) in cases.into_iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        eprintln!("case {i}: {site:?}");
        let faults = Faults::none().with(site, ratio);
        let config = SimConfig::new(40 + i as u64).with_faults(faults).quiet();
        let n = net(config, NetbackConfig::default(), cfg(A), cfg(B));
        let len = 256 * 1024;
        let (up, down) = (pattern(5 + i as u64, len), pattern(6 + i as u64, len));
        let (got_a, got_b, took) = both_ways(&n, up.clone(), down.clone());
        assert!(got_a == up, "{site:?}: A received corrupted data");
        assert!(got_b == down, "{site:?}: B received corrupted data");
        report(
            &format!("256 KiB each way under {site:?} {ratio:?}"),
            &n,
            took,
        );
        let (sa, sb) = (n.ha.stats(), n.hb.stats());
        match site {
            FaultSite::RingProducerJump | FaultSite::BackendStateChange => {
                assert!(sa.reconnects + sb.reconnects > 0, "{site:?}: no reconnect")
            }
            _ => assert!(
                sa.malformed() + sb.malformed() > 0,
                "{site:?}: nothing caught"
            ),
        }
        let _ = &n.sim;
    }
}

#[test]
fn udp_both_ways() {
    let n = net(
        SimConfig::new(33).quiet(),
        NetbackConfig::default(),
        cfg(A),
        cfg(B),
    );
    let (a, b) = (n.a.clone(), n.b.clone());
    n.ex.block_on(async move {
        let sa = UdpSocket::bind(&a, 5000).unwrap();
        let sb = UdpSocket::bind(&b, 6000).unwrap();
        for i in 0..200u32 {
            let msg = pattern(u64::from(i), 1 + (i as usize * 7) % 1400);
            sb.send_to(&msg, (A, 5000)).await.unwrap();
            let mut buf = [0u8; 1500];
            let (k, from) = sa.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..k], &msg[..], "datagram {i}");
            assert_eq!(from.addr, B.into());
            sa.send_to(&buf[..k], from).await.unwrap();
            let (k2, _) = sb.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..k2], &msg[..], "echo {i}");
        }
    });
    // 200 datagrams each way, each completed by a netback (odd lengths
    // included) and verified by the receiving smoltcp.
    assert_offload(&n, true);
    assert_eq!(n.ha.stats().tx_csum_offloaded, 200);
}

/// 50 connections at once, each echoing 20 000 bytes back; the client
/// shuts down its side, reads the echo to EOF, and the server closes.
/// With `keep_clients`, the clients hold their streams until every server
/// has closed (no client socket is orphaned in TIME-WAIT meanwhile).
fn many_connections(keep_clients: bool) {
    const CONNS: usize = 50;
    let n = net(
        SimConfig::new(34).quiet(),
        NetbackConfig::default(),
        cfg(A).sockets_max(CONNS + 4).tcp_buffer_bytes(8192, 8192),
        cfg(B).sockets_max(CONNS + 4).tcp_buffer_bytes(8192, 8192),
    );
    let (a, b) = (n.a.clone(), n.b.clone());
    let done = Rc::new(Cell::new(0));
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let (done2, errors2) = (done.clone(), errors.clone());
    n.ex.block_on(async move {
        let mut listener = TcpListener::bind(&a, 7, CONNS).unwrap();
        let errs = errors2.clone();
        let server = spawn(async move {
            let mut echoes = Vec::new();
            for i in 0..CONNS {
                let (mut c, _) = listener.accept().await;
                let errs = errs.clone();
                echoes.push(spawn(async move {
                    let mut buf = vec![0; 4096];
                    loop {
                        let k = match c.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(k) => k,
                            Err(e) => {
                                return errs.borrow_mut().push(format!("server {i} read: {e:?}"))
                            }
                        };
                        if let Err(e) = c.write_all(&buf[..k]).await {
                            return errs.borrow_mut().push(format!("server {i} write: {e:?}"));
                        }
                    }
                    if let Err(e) = c.close().await {
                        errs.borrow_mut().push(format!("server {i} close: {e:?}"));
                    }
                }));
            }
            for e in echoes {
                e.await.unwrap();
            }
        });
        let mut clients = Vec::new();
        for i in 0..CONNS {
            let b = b.clone();
            let (done, errs) = (done2.clone(), errors2.clone());
            clients.push(spawn(async move {
                let c = TcpStream::connect(&b, (A, 7)).await.unwrap();
                let msg = pattern(100 + i as u64, 20_000);
                let (mut r, mut w) = c.split();
                let send = async {
                    w.write_all(&msg).await?;
                    w.shutdown().await
                };
                let recv = async {
                    let mut got = Vec::new();
                    let mut buf = vec![0; 2048];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) => return Ok(got),
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                            Err(e) => return Err(e),
                        }
                    }
                };
                match futures::join!(send, recv) {
                    (Ok(()), Ok(got)) => {
                        assert!(got == msg, "connection {i}: echo differs");
                        done.set(done.get() + 1);
                    }
                    (s, r) => errs.borrow_mut().push(format!(
                        "client {i}: send {s:?} recv {:?}",
                        r.map(|g| g.len())
                    )),
                }
                keep_clients.then_some((r, w))
            }));
        }
        let all = async {
            let mut kept = Vec::new();
            for c in clients {
                kept.push(c.await.unwrap());
            }
            server.await.unwrap();
            drop(kept);
        };
        timeout(Duration::from_secs(60), all)
            .await
            .expect("50 echo connections within 60 s (virtual)");
    });
    report("50 concurrent echo connections", &n, Duration::ZERO);
    eprintln!("stacks: a {:?}\nb {:?}", n.a.stats(), n.b.stats());
    eprintln!("netfronts: a {:?}\nb {:?}", n.ha.stats(), n.hb.stats());
    assert!(errors.borrow().is_empty(), "{:#?}", errors.borrow());
    assert_eq!(done.get(), CONNS);
}

#[test]
fn many_connections_at_once() {
    many_connections(true);
}

/// The same, but each client drops its stream as soon as it has the echo:
/// its socket becomes an orphan in TIME-WAIT. The stack must keep it until
/// the ACK of the server's FIN has gone out, or the server's retransmitted
/// FIN meets no socket and the server's `close` ends in a reset.
#[test]
fn many_connections_dropping_clients_early() {
    many_connections(false);
}
