//! dom0's side on the software Xen (hosted builds only): what the real
//! scenario's xl config and check script (xtask/src/e2e/scenarios/net.sh)
//! do, played inside the sim.
//!
//! The appliance's vif0 and a second domain's vif (the "client", standing
//! in for dom0's own address on xenbr0, 10.0.0.1) are served by the sim's
//! netback on one bridge. The client's stack then checks the appliance as
//! net.sh does: 1 MiB echoed byte for byte, [`CONNECTIONS`] connections
//! open at once each echoing its own payload, and UDP datagrams; it logs
//! `dom0: all checks passed` (or `dom0: FAILED: ...`) and asks the
//! appliance to power off. `tests/sim.rs` runs the hosted binary and
//! reads those lines.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use ringlet::executor::{spawn, timeout, Duration, Instant};
use ringlet::xen::hypervisor::DomId;
use ringlet::xen::sim::{DomainConfig, SimXen};
use ringlet::xen::xenstore::client::Xenstore;
use ringlet_net::netfront::{connect, Mac, NetfrontConfig};
use ringlet_net::sim_netback::{add_vif, Bridge, Netback, NetbackConfig};
use ringlet_net::{IpConfig, Ipv4Address, ReadError, Stack, StackConfig, TcpStream, UdpSocket};

use crate::ECHO_PORT;

/// The appliance's address in the hosted run (net.sh uses the same).
const GUEST: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
/// Connections the client holds open at once.
const CONNECTIONS: usize = 50;
/// Bytes of the bulk echo.
const BULK_BYTES: usize = 1 << 20;
/// UDP datagrams echoed.
const DATAGRAMS: usize = 10;
/// The bound on the whole check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// Bridge queue per port, in frames.
const BRIDGE_FRAMES: usize = 512;

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

/// Adds vif0 to domain `front` as libxl would, a client domain on the same
/// bridge, and spawns the client's checks.
pub(crate) fn provide(sim: &SimXen, front: DomId) {
    let bridge = Bridge::new(BRIDGE_FRAMES);
    let client = sim.create_domain(DomainConfig::new("dom0-client")).id();
    for (dom, last) in [(front, 2u8), (client, 1)] {
        let paths = add_vif(sim, dom, 0, Mac([0, 0x16, 0x3e, 0, 0, last]));
        let back = Netback::new(sim, &bridge, paths, NetbackConfig::default())
            .expect("a netback for a fresh vif");
        spawn(async move {
            if let Err(e) = back.run().await {
                log::error!("dom0: netback: {e}");
            }
        })
        .detach();
    }
    let sim = sim.clone();
    spawn(async move {
        match timeout(CHECK_TIMEOUT, checks(&sim, client)).await {
            Ok(Ok(())) => log::info!("dom0: all checks passed"),
            Ok(Err(e)) => log::error!("dom0: FAILED: {e}"),
            Err(_) => log::error!("dom0: FAILED: checks took over {CHECK_TIMEOUT:?}"),
        }
        if let Err(e) = shutdown(&sim, front).await {
            log::error!("dom0: {e}");
        }
        // Keep the bridge (and the netbacks' ports) until the end.
        drop(bridge);
    })
    .detach();
}

async fn shutdown(sim: &SimXen, front: DomId) -> Result<(), String> {
    let xs = Xenstore::new(&sim.guest(DomId::DOM0)).map_err(|e| format!("xenstore: {e}"))?;
    let home = xs
        .get_domain_path(front)
        .await
        .map_err(|e| format!("domain path: {e}"))?;
    xs.write(&format!("{home}/control/shutdown"), "poweroff")
        .await
        .map_err(|e| format!("write control/shutdown: {e}"))
}

/// Reads until the peer closes; returns what came.
async fn read_all(conn: &mut TcpStream, want: usize) -> Result<Vec<u8>, String> {
    let mut got = Vec::with_capacity(want);
    let mut buf = vec![0u8; 8192];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // No TIME-WAIT on the appliance: a lost last ACK turns into a
            // reset once everything arrived (docs/network.md "Closing").
            Err(ReadError::Reset) if got.len() == want => return Ok(got),
            Err(e) => return Err(format!("read after {} bytes: {e}", got.len())),
        }
    }
}

/// Sends `data` on a fresh connection, half-closes, reads the echo.
async fn echo_once(stack: &Stack, data: Vec<u8>) -> Result<Vec<u8>, String> {
    let conn = TcpStream::connect(stack, (GUEST, ECHO_PORT))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut r, mut w) = conn.split();
    let want = data.len();
    let writer = spawn(async move {
        for chunk in data.chunks(4096) {
            w.write_all(chunk).await?;
        }
        w.shutdown().await
    });
    let mut got = Vec::with_capacity(want);
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(ReadError::Reset) if got.len() == want => break,
            Err(e) => return Err(format!("read after {} bytes: {e}", got.len())),
        }
    }
    match writer.await {
        Ok(Ok(())) => Ok(got),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(e) => Err(format!("writer: {e:?}")),
    }
}

async fn checks(sim: &SimXen, client: DomId) -> Result<(), String> {
    let guest = sim.guest(client);
    let xs = Xenstore::new(&guest).map_err(|e| format!("client xenstore: {e}"))?;
    let nic = connect(&guest, &xs, NetfrontConfig::new(0))
        .await
        .map_err(|e| format!("client netfront: {e}"))?;
    let ip = IpConfig::from_cmdline("ip=10.0.0.1/24").map_err(|e| format!("{e}"))?;
    let (stack, runner) =
        Stack::new(nic, StackConfig::new(ip).random_seed(1)).map_err(|e| format!("{e}"))?;
    spawn(runner.run()).detach();

    // The appliance listens once its own netfront is up: retry until then.
    let start = Instant::now();
    let mut probe = loop {
        match TcpStream::connect(&stack, (GUEST, ECHO_PORT)).await {
            Ok(conn) => break conn,
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                return Err(format!("the appliance never listened: {e}"));
            }
            Err(_) => ringlet::executor::sleep(Duration::from_millis(100)).await,
        }
    };
    probe
        .write_all(b"probe")
        .await
        .map_err(|e| format!("{e}"))?;
    probe.shutdown().await.map_err(|e| format!("{e}"))?;
    let got = read_all(&mut probe, 5).await?;
    if got != b"probe" {
        return Err(format!("probe echoed {got:?}"));
    }
    drop(probe);

    // 1 MiB byte for byte.
    let data = pattern(7, BULK_BYTES);
    let t = Instant::now();
    let got = echo_once(&stack, data.clone()).await?;
    if got != data {
        return Err(format!(
            "1 MiB echo: {} bytes back, content differs",
            got.len()
        ));
    }
    log::info!("dom0: 1 MiB echoed in {} ms", t.elapsed().as_millis());

    // CONNECTIONS open at once, then each echoes its payload.
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        conns.push(
            TcpStream::connect(&stack, (GUEST, ECHO_PORT))
                .await
                .map_err(|e| format!("connection {} of {CONNECTIONS}: {e}", conns.len() + 1))?,
        );
    }
    let mut tasks = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        tasks.push(spawn(async move {
            let payload = format!("connection {i} says hello\n").into_bytes();
            conn.write_all(&payload).await.map_err(|e| format!("{e}"))?;
            conn.shutdown().await.map_err(|e| format!("{e}"))?;
            let got = read_all(&mut conn, payload.len()).await?;
            if got == payload {
                Ok(())
            } else {
                Err(format!("connection {i}: echoed {got:?}"))
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("{e:?}"))??;
    }
    log::info!("dom0: {CONNECTIONS} connections echoed");

    // UDP.
    let udp = UdpSocket::bind(&stack, 0).map_err(|e| format!("{e}"))?;
    let mut buf = [0u8; 2048];
    for i in 0..DATAGRAMS {
        let d = pattern(i as u64 + 100, 100 + i * 130);
        udp.send_to(&d, (GUEST, ECHO_PORT))
            .await
            .map_err(|e| format!("udp send: {e}"))?;
        let (n, from) = timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
            .await
            .map_err(|_| format!("udp datagram {i}: no echo"))?
            .map_err(|e| format!("udp recv: {e}"))?;
        if buf[..n] != d[..] || from.port != ECHO_PORT {
            return Err(format!("udp datagram {i}: echo differs"));
        }
    }
    log::info!("dom0: {DATAGRAMS} udp datagrams echoed");
    Ok(())
}
