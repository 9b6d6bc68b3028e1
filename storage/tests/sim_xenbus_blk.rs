//! blkfront's xenbus handshake against a dom0 backend in the sim: the
//! toolstack's nodes, `connect` to Connected, I/O, and the backend going
//! away while the device is in use (`monitor`).
#![cfg(feature = "sim")]

use ringlet_executor::time::{sleep, Duration};
use ringlet_executor::{spawn, Executor};
use ringlet_storage::blkfront::{connect, ConnectError};
use ringlet_storage::sim::{Backing, Blkback, BlkbackConfig};
use ringlet_storage::{BlockDevice, ReadError};
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::hypervisor::{DomId, GrantRef, Port};
use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
use ringlet_xen::xenstore::{Access, Permission, Xenstore};

/// xvda.
const DEVID: u32 = 51712;

struct Paths {
    front: DomId,
    fe: String,
    be: String,
}

/// What libxl writes when it adds a vbd: both directories, with the
/// frontend owning its own and reading the backend's.
fn toolstack(sim: &SimXen, front: DomId) -> Paths {
    let fe = format!("/local/domain/{}/device/vbd/{DEVID}", front.0);
    let be = format!("/local/domain/0/backend/vbd/{}/{DEVID}", front.0);
    sim.xenstore(|xs| {
        xs.mkdir_as(DomId::DOM0, &fe).unwrap();
        xs.set_perms_as(
            DomId::DOM0,
            &fe,
            &[
                Permission {
                    domid: front,
                    access: Access::None,
                },
                Permission {
                    domid: DomId::DOM0,
                    access: Access::Read,
                },
            ],
        )
        .unwrap();
        xs.mkdir_as(DomId::DOM0, &be).unwrap();
        xs.set_perms_as(
            DomId::DOM0,
            &be,
            &[
                Permission {
                    domid: DomId::DOM0,
                    access: Access::None,
                },
                Permission {
                    domid: front,
                    access: Access::Read,
                },
            ],
        )
        .unwrap();
        xs.write_as(DomId::DOM0, &format!("{fe}/backend"), be.as_bytes())
            .unwrap();
        xs.write_as(DomId::DOM0, &format!("{fe}/backend-id"), b"0")
            .unwrap();
        xs.write_as(DomId::DOM0, &format!("{fe}/state"), b"1")
            .unwrap();
        xs.write_as(DomId::DOM0, &format!("{be}/frontend"), fe.as_bytes())
            .unwrap();
        xs.write_as(
            DomId::DOM0,
            &format!("{be}/frontend-id"),
            format!("{}", front.0).as_bytes(),
        )
        .unwrap();
        xs.write_as(DomId::DOM0, &format!("{be}/state"), b"1")
            .unwrap();
    });
    Paths { front, fe, be }
}

fn read(sim: &SimXen, path: &str) -> Option<String> {
    sim.xenstore(|xs| xs.read_as(DomId::DOM0, path))
        .ok()
        .map(|v| String::from_utf8(v).unwrap())
}

fn write(sim: &SimXen, path: &str, v: &str) {
    sim.xenstore(|xs| xs.write_as(DomId::DOM0, path, v.as_bytes()))
        .unwrap();
}

/// dom0's side: publish, wait for the frontend (polling in virtual time),
/// attach, Connected, serve until `close_after_ms` (then Closing).
async fn backend(
    sim: SimXen,
    p: Paths,
    image: Vec<u8>,
    config: BlkbackConfig,
    close_after_ms: Option<u64>,
) -> Option<Blkback> {
    for (k, v) in Blkback::nodes_for(image.len() as u64, &config) {
        write(&sim, &format!("{}/{k}", p.be), &v);
    }
    write(&sim, &format!("{}/state", p.be), "2");
    loop {
        if read(&sim, &format!("{}/state", p.fe)).as_deref() == Some("3") {
            break;
        }
        sleep(Duration::from_millis(1)).await;
    }
    let gref: u32 = read(&sim, &format!("{}/ring-ref", p.fe))
        .unwrap()
        .parse()
        .unwrap();
    let port: u32 = read(&sim, &format!("{}/event-channel", p.fe))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        read(&sim, &format!("{}/protocol", p.fe)).as_deref(),
        Some("x86_64-abi")
    );
    let mut back = Blkback::attach(
        sim.dom0(),
        &sim.guest(DomId::DOM0),
        p.front,
        GrantRef(gref),
        Port(port),
        Backing::Mem(image),
        config,
    )
    .unwrap();
    write(&sim, &format!("{}/state", p.be), "4");
    match close_after_ms {
        None => {
            back.run().await;
            Some(back)
        }
        Some(ms) => {
            let _ = ringlet_executor::time::timeout(Duration::from_millis(ms), back.run()).await;
            write(&sim, &format!("{}/state", p.be), "5");
            Some(back)
        }
    }
}

#[test]
fn handshake_connects_and_serves() {
    let sim = SimXen::new(SimConfig::new(11).quiet());
    let front = sim.create_domain(DomainConfig::new("front")).id();
    let g = sim.guest(front);
    let p = toolstack(&sim, front);
    let (fe, be) = (p.fe.clone(), p.be.clone());
    let image: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    let ex = Executor::new(sim.clone());
    let s2 = sim.clone();
    let img2 = image.clone();
    ex.block_on(async move {
        let _back = spawn(backend(s2, p, img2, BlkbackConfig::default(), None));
        let xs = Xenstore::new(&g).unwrap();
        let dev = connect(&g, &xs, DEVID).await.unwrap();
        assert_eq!(dev.backend_path().as_deref(), Some(be.as_str()));
        let info = dev.info();
        assert_eq!(
            (info.sector_size, info.sectors, info.read_only),
            (512, 4096, false)
        );
        assert!(dev.config().indirect);
        let mut buf = vec![0u8; 300 * 512];
        dev.read(7, &mut buf).await.unwrap();
        assert_eq!(buf, image[7 * 512..307 * 512]);
        dev.write(1000, &[0xEE; 4096]).await.unwrap();
        dev.flush().await.unwrap();
        let mut back = vec![0u8; 4096];
        dev.read(1000, &mut back).await.unwrap();
        assert_eq!(back, [0xEE; 4096]);
    });
    assert_eq!(read(&sim, &format!("{fe}/state")).as_deref(), Some("4"));
}

#[test]
fn backend_closing_fails_requests_through_monitor() {
    let sim = SimXen::new(SimConfig::new(12).quiet());
    let front = sim.create_domain(DomainConfig::new("front")).id();
    let g = sim.guest(front);
    let p = toolstack(&sim, front);
    let ex = Executor::new(sim.clone());
    let s2 = sim.clone();
    ex.block_on(async move {
        let _back = spawn(backend(
            s2,
            p,
            vec![0u8; 1 << 20],
            BlkbackConfig::default(),
            Some(50),
        ));
        let xs = Xenstore::new(&g).unwrap();
        let dev = std::rc::Rc::new(connect(&g, &xs, DEVID).await.unwrap());
        let d2 = dev.clone();
        let xs2 = xs.clone();
        let mon = spawn(async move { d2.monitor(&xs2).await });
        let mut buf = vec![0u8; 4096];
        dev.read(0, &mut buf).await.unwrap();
        assert_eq!(mon.await.unwrap().unwrap(), XenbusState::Closing);
        assert_eq!(dev.read(0, &mut buf).await, Err(ReadError::Disconnected));
    });
}

#[test]
fn backend_that_closes_during_the_handshake_is_an_error() {
    let sim = SimXen::new(SimConfig::new(13).quiet());
    let front = sim.create_domain(DomainConfig::new("front")).id();
    let g = sim.guest(front);
    let p = toolstack(&sim, front);
    write(&sim, &format!("{}/state", p.be), "6");
    let ex = Executor::new(sim.clone());
    ex.block_on(async move {
        let xs = Xenstore::new(&g).unwrap();
        let r = connect(&g, &xs, DEVID).await;
        assert!(
            matches!(r, Err(ConnectError::BackendState(XenbusState::Closed))),
            "{r:?}"
        );
    });
}

#[test]
fn missing_device_and_silent_backend() {
    let sim = SimXen::new(SimConfig::new(14).quiet());
    let front = sim.create_domain(DomainConfig::new("front")).id();
    let g = sim.guest(front);
    let ex = Executor::new(sim.clone());
    let g2 = g.clone();
    ex.block_on(async move {
        let xs = Xenstore::new(&g2).unwrap();
        assert!(matches!(
            connect(&g2, &xs, DEVID).await,
            Err(ConnectError::Xenstore(_))
        ));
    });
    // A backend that never leaves Initialising: the handshake times out.
    let _p = toolstack(&sim, front);
    ex.block_on(async move {
        let xs = Xenstore::new(&g).unwrap();
        let r = connect(&g, &xs, DEVID).await;
        assert!(matches!(r, Err(ConnectError::Timeout)), "{r:?}");
    });
}
