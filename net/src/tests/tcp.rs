//! TCP over the cable: bulk transfers, backlog, pool limits, close, abort,
//! timeouts.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use ringlet_executor::{sleep, spawn, timeout, Instant};

use super::{cfg, lone, pair, pattern, world, A, B};
use crate::cable::CableConfig;
use crate::{ConnectError, ReadError, Stack, TcpListener, TcpStream, WriteError};

const MIB: usize = 1024 * 1024;

/// Reads until EOF.
async fn read_to_end(s: &mut TcpStream) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let mut buf = vec![0; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads until EOF or an error; returns the bytes and how it ended.
async fn read_all(s: &mut TcpStream) -> (Vec<u8>, Result<(), ReadError>) {
    let mut out = Vec::new();
    let mut buf = vec![0; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Sends `up` from B to A and `down` from A to B on one connection at the
/// same time; returns what each side received.
fn both_ways(
    cable: CableConfig,
    seed: u64,
    up: Vec<u8>,
    down: Vec<u8>,
) -> (Vec<u8>, Vec<u8>, Duration) {
    let (sim, ex) = world(seed);
    let (a, b) = pair(&ex, cable, cfg(A), cfg(B));
    ex.block_on(async move {
        let t0 = Instant::now();
        let mut listener = TcpListener::bind(&a, 80, 2).unwrap();
        let server = spawn(async move {
            let (conn, peer) = listener.accept().await;
            assert_eq!(peer.addr, B.into());
            let (mut r, mut w) = conn.split();
            let writer = spawn(async move {
                w.write_all(&down).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            let mut buf = vec![0; 3000];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            writer.await.unwrap();
            got
        });
        let conn = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let (mut r, mut w) = conn.split();
        let writer = spawn(async move {
            // Odd-sized writes cross the buffer's wrap-around.
            for chunk in up.chunks(7919) {
                w.write_all(chunk).await.unwrap();
            }
            w.shutdown().await.unwrap();
        });
        let mut got_b = Vec::new();
        let mut buf = vec![0; 1500];
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got_b.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        let got_a = server.await.unwrap();
        let _ = &sim;
        (got_a, got_b, Instant::now() - t0)
    })
}

#[test]
fn one_mib_each_way_byte_for_byte() {
    let up = pattern(1, MIB);
    let down = pattern(2, MIB);
    let (got_a, got_b, took) = both_ways(CableConfig::default(), 1, up.clone(), down.clone());
    assert_eq!(got_a.len(), MIB);
    assert!(got_a == up, "A received corrupted data");
    assert_eq!(got_b.len(), MIB);
    assert!(got_b == down, "B received corrupted data");
    std::println!("1 MiB each way (clean cable): {took:?} virtual");
}

#[test]
fn one_mib_each_way_over_a_lossy_corrupting_cable() {
    let cable = CableConfig {
        loss: (1, 50),
        corrupt: (1, 50),
        seed: 9,
        ..CableConfig::default()
    };
    let up = pattern(3, MIB);
    let down = pattern(4, MIB);
    let (got_a, got_b, took) = both_ways(cable, 2, up.clone(), down.clone());
    assert!(got_a == up, "A received corrupted data");
    assert!(got_b == down, "B received corrupted data");
    std::println!("1 MiB each way (2% loss, 2% corruption): {took:?} virtual");
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let cable = CableConfig {
            loss: (1, 20),
            seed,
            ..CableConfig::default()
        };
        let (sim, ex) = world(seed);
        let (a, b) = pair(&ex, cable, cfg(A), cfg(B));
        let data = pattern(seed, 100_000);
        let got = ex.block_on(async {
            let mut l = TcpListener::bind(&a, 80, 1).unwrap();
            let server = spawn(async move {
                let (mut c, _) = l.accept().await;
                read_all(&mut c).await
            });
            let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
            c.write_all(&data).await.unwrap();
            c.close().await.unwrap();
            server.await.unwrap()
        });
        assert!(got.0 == data, "data lost or corrupted");
        // A reset is allowed only by the FIN-stall watchdog, after all data.
        assert_eq!(
            got.1.is_err(),
            b.stats().fin_stall_resets > 0,
            "{:?}",
            got.1
        );
        (sim.now_ns(), a.stats(), b.stats())
    };
    let first = run(5);
    assert_eq!(run(5), first, "same seed, same virtual time and counters");
    assert_ne!(run(6), first, "another seed loses other frames");
}

/// Connects `n` clients at once; returns their results in order.
async fn connect_many(stack: &Stack, n: usize) -> Vec<Result<TcpStream, ConnectError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = stack.clone();
            spawn(async move { TcpStream::connect(&s, (A, 80)).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[test]
fn many_connections_up_to_the_pool_then_refused() {
    const POOL: usize = 40;
    let (_sim, ex) = world(3);
    let (a, b) = pair(
        &ex,
        CableConfig::default(),
        cfg(A).sockets_max(POOL).tcp_buffer_bytes(4096, 4096),
        cfg(B).sockets_max(POOL + 10),
    );
    ex.block_on(async {
        let mut listener = TcpListener::bind(&a, 80, POOL).unwrap();
        assert_eq!(listener.backlog_len(), POOL);
        // Every accepted connection echoes one message and stays open.
        let server = spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..POOL {
                let (mut c, _) = listener.accept().await;
                let echo = spawn(async move {
                    let mut buf = [0; 64];
                    let n = c.read(&mut buf).await.unwrap();
                    c.write_all(&buf[..n]).await.unwrap();
                    c
                });
                conns.push(echo);
            }
            (listener, conns)
        });
        let clients = connect_many(&b, POOL).await;
        let mut clients: Vec<TcpStream> = clients.into_iter().map(Result::unwrap).collect();
        for (i, c) in clients.iter_mut().enumerate() {
            let msg = alloc::format!("hello {i}");
            c.write_all(msg.as_bytes()).await.unwrap();
            let mut buf = [0; 64];
            let n = c.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], msg.as_bytes());
        }
        let (listener, conns) = server.await.unwrap();
        assert_eq!(a.sockets_in_use(), POOL, "the pool is full");
        // Past the pool: refused with a reset, promptly, not a hang.
        let t0 = Instant::now();
        let extra = connect_many(&b, 5).await;
        for r in extra {
            assert_eq!(r.unwrap_err(), ConnectError::Refused);
        }
        assert!(Instant::now() - t0 < Duration::from_secs(1));
        drop((listener, conns, clients));
    });
}

#[test]
fn backlog_holds_handshakes_until_accept() {
    let (_sim, ex) = world(4);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    ex.block_on(async {
        let mut listener = TcpListener::bind(&a, 80, 2).unwrap();
        // Nobody accepts yet: two handshakes complete in the backlog ...
        let first = connect_many(&b, 2).await;
        let mut first: Vec<TcpStream> = first.into_iter().map(Result::unwrap).collect();
        // ... the third finds no listening socket.
        let third = TcpStream::connect(&b, (A, 80)).await;
        assert_eq!(third.unwrap_err(), ConnectError::Refused);
        // Data sent before accept waits in the socket.
        first[0].write_all(b"early").await.unwrap();
        let (mut s1, _) = listener.accept().await;
        let (mut s2, _) = listener.accept().await;
        let mut got = Vec::new();
        for s in [&mut s1, &mut s2] {
            let mut buf = [0; 16];
            if let Ok(Ok(n)) = timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(got, b"early");
        // Accept refilled the backlog: new connections succeed again.
        assert_eq!(listener.backlog_len(), 2);
        let again = connect_many(&b, 2).await;
        assert!(again.iter().all(Result::is_ok));
    });
}

#[test]
fn freed_sockets_refill_the_backlog() {
    const POOL: usize = 3;
    let (_sim, ex) = world(5);
    let (a, b) = pair(
        &ex,
        CableConfig::default(),
        cfg(A).sockets_max(POOL),
        cfg(B),
    );
    ex.block_on(async {
        let mut listener = TcpListener::bind(&a, 80, POOL).unwrap();
        let clients = connect_many(&b, POOL).await;
        let mut accepted = Vec::new();
        for _ in 0..POOL {
            accepted.push(listener.accept().await.0);
        }
        assert_eq!(listener.backlog_len(), 0, "the pool is empty");
        assert_eq!(
            TcpStream::connect(&b, (A, 80)).await.unwrap_err(),
            ConnectError::Refused
        );
        // An accept waits for a socket; closing one connection frees it.
        let waiter = spawn(async move {
            let (c, _) = listener.accept().await;
            (listener, c)
        });
        let mut closing = accepted.pop().unwrap();
        closing.shutdown().await.unwrap();
        drop(closing);
        drop(clients); // the clients close too; their FINs finish the close
                       // The server's socket is freed once out of TIME-WAIT's short delay.
        sleep(crate::stack::TIME_WAIT_REAP_DELAY * 2).await;
        let late = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let (_listener, c) = waiter.await.unwrap();
        assert_eq!(c.peer_addr(), late.local_addr());
    });
}

#[test]
fn close_delivers_everything_before_the_fin() {
    let (_sim, ex) = world(6);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    let data = pattern(7, 300_000); // ten transmit buffers' worth
    ex.block_on(async {
        let mut listener = TcpListener::bind(&a, 80, 2).unwrap();
        let d = data.clone();
        spawn(async move {
            // Explicit close: waits for the acknowledgement.
            let (mut c, _) = listener.accept().await;
            c.write_all(&d).await.unwrap();
            c.close().await.unwrap();
            // Dropped without close: the runner finishes in the background.
            let (mut c, _) = listener.accept().await;
            c.write_all(&d[..100_000]).await.unwrap();
            drop(c);
        })
        .detach();
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let got = read_to_end(&mut c).await.unwrap();
        assert!(got == data, "close lost or corrupted data");
        drop(c);
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let got = read_to_end(&mut c).await.unwrap();
        assert!(got == data[..100_000], "drop lost or corrupted data");
        drop(c);
        sleep(Duration::from_secs(1)).await;
        // The server task ended (its listener is gone) and every closed
        // connection was reaped on both sides.
        assert_eq!(a.sockets_in_use(), 0, "server sockets reaped");
        assert_eq!(b.sockets_in_use(), 0, "client sockets reaped");
        assert_eq!(a.stats().linger_resets, 0);
    });
}

#[test]
fn abort_resets_the_peer() {
    let (_sim, ex) = world(7);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    ex.block_on(async {
        let mut listener = TcpListener::bind(&a, 80, 2).unwrap();
        let server = spawn(async move {
            let (mut c, _) = listener.accept().await;
            let mut buf = [0; 4];
            c.read(&mut buf).await.unwrap();
            c.abort();
            listener
        });
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let _listener = server.await.unwrap();
        let mut buf = [0; 4];
        assert_eq!(c.read(&mut buf).await, Err(ReadError::Reset));
        assert_eq!(c.write(b"x").await, Err(WriteError::Reset));
        sleep(Duration::from_millis(10)).await;
        assert_eq!(a.sockets_in_use(), 2, "the aborted socket was freed");
    });
}

#[test]
fn connect_errors() {
    let (_sim, ex) = world(8);
    // Nothing listens on the port: refused.
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    ex.block_on(async {
        let _l = TcpListener::bind(&a, 80, 1).unwrap();
        assert_eq!(
            TcpStream::connect(&b, (A, 81)).await.unwrap_err(),
            ConnectError::Refused
        );
        assert_eq!(
            TcpStream::connect(&b, (A, 0)).await.unwrap_err(),
            ConnectError::Unaddressable
        );
    });
    // Nobody on the cable: the handshake times out on virtual time.
    let (_sim, ex) = world(9);
    let (s, _peer) = lone(
        &ex,
        CableConfig::default(),
        cfg(B).connect_timeout(Duration::from_secs(3)),
    );
    ex.block_on(async {
        let t0 = Instant::now();
        assert_eq!(
            TcpStream::connect(&s, (A, 80)).await.unwrap_err(),
            ConnectError::TimedOut
        );
        let took = Instant::now() - t0;
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(4),
            "{took:?}"
        );
        sleep(Duration::from_millis(10)).await;
        assert_eq!(s.sockets_in_use(), 0, "the half-open socket was freed");
    });
    // No address yet (DHCP, no server): not configured.
    let (_sim, ex) = world(10);
    let (s, _peer) = lone(
        &ex,
        CableConfig::default(),
        crate::StackConfig::new(crate::IpConfig::Dhcp),
    );
    ex.block_on(async {
        assert_eq!(
            TcpStream::connect(&s, (A, 80)).await.unwrap_err(),
            ConnectError::NotConfigured
        );
    });
    // A full client pool.
    let (_sim, ex) = world(11);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B).sockets_max(1));
    ex.block_on(async {
        let _l = TcpListener::bind(&a, 80, 4).unwrap();
        let _c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        assert_eq!(
            TcpStream::connect(&b, (A, 80)).await.unwrap_err(),
            ConnectError::NoSockets
        );
    });
}

#[test]
fn read_and_write_timeouts() {
    let (_sim, ex) = world(12);
    let (a, b) = pair(
        &ex,
        CableConfig::default(),
        cfg(A).tcp_buffer_bytes(2048, 2048),
        cfg(B).tcp_buffer_bytes(2048, 2048),
    );
    ex.block_on(async {
        let mut listener = TcpListener::bind(&a, 80, 1).unwrap();
        let server = spawn(async move { listener.accept().await.0 });
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let _s = server.await.unwrap(); // never reads, never writes
        c.set_read_timeout(Some(Duration::from_millis(500)));
        let t0 = Instant::now();
        let mut buf = [0; 8];
        assert_eq!(c.read(&mut buf).await, Err(ReadError::TimedOut));
        let took = Instant::now() - t0;
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(600),
            "{took:?}"
        );
        // The peer's window and our buffer fill up; then the write times out.
        c.set_write_timeout(Some(Duration::from_secs(2)));
        let big = vec![7; 64 * 1024];
        let mut sent = 0;
        let err = loop {
            match c.write(&big).await {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err, WriteError::TimedOut);
        assert!((4096..8192).contains(&sent), "{sent}");
        // The stream still works after a timeout.
        c.set_read_timeout(None);
        assert_eq!(c.recv_queue(), 0);
    });
}

#[test]
fn lingering_close_resets_a_stuck_orphan() {
    let (_sim, ex) = world(13);
    let linger = Duration::from_secs(5);
    let (a, b) = pair(
        &ex,
        CableConfig::default(),
        cfg(A).tcp_buffer_bytes(4096, 4096).close_linger(linger),
        cfg(B).tcp_buffer_bytes(4096, 4096),
    );
    ex.block_on(async {
        let mut listener = TcpListener::bind(&a, 80, 1).unwrap();
        let server = spawn(async move {
            let (mut c, _) = listener.accept().await;
            // More than the peer will ever take: it never reads.
            let _ = timeout(Duration::from_millis(100), c.write_all(&[1; 20_000])).await;
            drop(c);
            listener
        });
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let _listener = server.await.unwrap();
        assert_eq!(a.sockets_in_use(), 2, "orphan + refilled backlog");
        sleep(linger + Duration::from_secs(1)).await;
        assert_eq!(a.sockets_in_use(), 1, "the orphan was reset and freed");
        assert_eq!(a.stats().linger_resets, 1);
        // The peer sees the data that made it, then the reset.
        let mut buf = [0; 8192];
        let mut total = 0;
        let end = loop {
            match c.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => total += n,
                Err(e) => break Err(e),
            }
        };
        assert_eq!(end, Err(ReadError::Reset));
        assert!(total <= 4096, "{total}");
    });
}

#[test]
fn icmp_echo_is_answered() {
    use smoltcp::socket::icmp;
    use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr};
    let (_sim, ex) = world(14);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    let _keep = a;
    ex.block_on(async {
        let handle = {
            let mut core = b.shared.core();
            let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
            let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
            let mut sock = icmp::Socket::new(rx, tx);
            sock.bind(icmp::Endpoint::Ident(0x1234)).unwrap();
            let h = core.sockets.add(sock);
            let repr = Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"ringlet",
            };
            let sock = core.sockets.get_mut::<icmp::Socket>(h);
            let buf = sock.send(repr.buffer_len(), A.into()).unwrap();
            repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &Default::default());
            h
        };
        b.shared.touch();
        let reply = core::future::poll_fn(|cx| {
            let mut core = b.shared.core();
            let sock = core.sockets.get_mut::<icmp::Socket>(handle);
            match sock.recv() {
                Ok((data, from)) => core::task::Poll::Ready((data.to_vec(), from)),
                Err(_) => {
                    sock.register_recv_waker(cx.waker());
                    core::task::Poll::Pending
                }
            }
        });
        let (data, from) = timeout(Duration::from_secs(1), reply).await.unwrap();
        assert_eq!(from, crate::IpAddress::from(A));
        let pkt = Icmpv4Packet::new_checked(&data[..]).unwrap();
        let repr = Icmpv4Repr::parse(&pkt, &Default::default()).unwrap();
        assert_eq!(
            repr,
            Icmpv4Repr::EchoReply {
                ident: 0x1234,
                seq_no: 1,
                data: b"ringlet"
            }
        );
    });
}

#[test]
fn a_stalled_fin_is_reset_after_all_data() {
    // Seed 5 with 5% loss makes smoltcp 0.14 lose its FIN timer (three
    // duplicate ACKs while only the FIN is in flight). Without the
    // watchdog the close never ends and the sim stalls.
    let cable = CableConfig {
        loss: (1, 20),
        seed: 5,
        ..CableConfig::default()
    };
    let (_sim, ex) = world(5);
    let (a, b) = pair(&ex, cable, cfg(A), cfg(B));
    let data = pattern(5, 100_000);
    let (got, end, close) = ex.block_on(async {
        let mut l = TcpListener::bind(&a, 80, 1).unwrap();
        let server = spawn(async move {
            let (mut c, _) = l.accept().await;
            read_all(&mut c).await
        });
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        c.write_all(&data).await.unwrap();
        let t0 = Instant::now();
        let close = c.close().await;
        let took = Instant::now() - t0;
        assert!(
            took <= crate::stack::FIN_STALL_TIMEOUT + Duration::from_secs(2),
            "{took:?}"
        );
        let (got, end) = server.await.unwrap();
        (got, end, close)
    });
    assert!(got == data, "every byte arrived before the reset");
    assert_eq!(close, Ok(()), "all data was acknowledged");
    assert_eq!(end, Err(ReadError::Reset));
    assert_eq!(b.stats().fin_stall_resets, 1);
}

#[test]
fn stalled_readers_do_not_block_a_normal_one() {
    // Ten clients connect and never read; the server's writes to them time
    // out while an eleventh client is served in full, promptly.
    const STALLED: usize = 10;
    let (_sim, ex) = world(16);
    let (a, b) = pair(
        &ex,
        CableConfig::default(),
        cfg(A)
            .tcp_buffer_bytes(8192, 8192)
            .close_linger(Duration::from_secs(2)),
        cfg(B).tcp_buffer_bytes(8192, 8192),
    );
    let body = pattern(16, 256 * 1024);
    ex.block_on(async {
        let timeouts = alloc::rc::Rc::new(core::cell::Cell::new(0));
        let mut l = TcpListener::bind(&a, 80, STALLED + 2).unwrap();
        let t = timeouts.clone();
        let body2 = body.clone();
        spawn(async move {
            loop {
                let (mut c, _) = l.accept().await;
                let (body, t) = (body2.clone(), t.clone());
                spawn(async move {
                    c.set_write_timeout(Some(Duration::from_secs(1)));
                    match c.write_all(&body).await {
                        Ok(()) => {
                            let _ = c.close().await;
                        }
                        Err(WriteError::TimedOut) => {
                            t.set(t.get() + 1);
                            c.abort();
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
                .detach();
            }
        })
        .detach();
        let stalled: Vec<TcpStream> = connect_many(&b, STALLED)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let t0 = Instant::now();
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let got = read_to_end(&mut c).await.unwrap();
        let took = Instant::now() - t0;
        assert!(got == body);
        assert!(
            took < Duration::from_millis(500),
            "the normal client waited {took:?}"
        );
        sleep(Duration::from_secs(2)).await;
        assert_eq!(timeouts.get(), STALLED, "every stalled write timed out");
        drop(stalled);
    });
}

#[test]
fn clients_dropped_in_time_wait_still_ack_the_servers_fin() {
    // Each client reads the echo to EOF and drops its stream at once: its
    // socket is an orphan in TIME-WAIT that must still ACK the server's
    // data and FIN before it is freed, or the server's close sees a reset.
    const CONNS: usize = 50;
    let (_sim, ex) = world(17);
    let (a, b) = pair(
        &ex,
        CableConfig::default(),
        // A small budget: egress is often cut short (fails without the
        // TIME-WAIT reap delay: 26 of 50 closes reset).
        cfg(A)
            .sockets_max(CONNS + 4)
            .tcp_buffer_bytes(8192, 8192)
            .frames_per_run_max(4),
        cfg(B)
            .sockets_max(CONNS + 4)
            .tcp_buffer_bytes(8192, 8192)
            .frames_per_run_max(4),
    );
    ex.block_on(async {
        let mut l = TcpListener::bind(&a, 7, CONNS).unwrap();
        let server = spawn(async move {
            let mut echoes = Vec::new();
            for _ in 0..CONNS {
                let (mut c, _) = l.accept().await;
                echoes.push(spawn(async move {
                    let mut buf = vec![0; 4096];
                    loop {
                        let n = c.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        c.write_all(&buf[..n]).await.map_err(|_| ReadError::Reset)?;
                    }
                    c.close().await.map_err(|_| ReadError::Reset)
                }));
            }
            let mut results = Vec::new();
            for e in echoes {
                results.push(e.await.unwrap());
            }
            results
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|i| {
                let b = b.clone();
                spawn(async move {
                    let c = TcpStream::connect(&b, (A, 7)).await.unwrap();
                    let msg = pattern(100 + i as u64, 20_000);
                    let (mut r, mut w) = c.split();
                    let writer = spawn(async move {
                        w.write_all(&msg).await.unwrap();
                        w.shutdown().await.unwrap();
                        msg
                    });
                    let mut got = Vec::new();
                    let mut buf = vec![0; 2048];
                    loop {
                        match r.read(&mut buf).await.unwrap() {
                            0 => break,
                            n => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let msg = writer.await.unwrap();
                    assert!(got == msg, "connection {i}: echo differs");
                    // r and the writer's half are dropped here, in TIME-WAIT.
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        let results = server.await.unwrap();
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 0, "server closes that saw a reset");
        sleep(Duration::from_secs(1)).await;
        assert_eq!(b.sockets_in_use(), 0, "client orphans freed");
    });
}
