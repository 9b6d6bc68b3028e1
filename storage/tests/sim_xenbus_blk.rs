//! blkfront's xenbus handshake against a dom0 backend in the sim: the
//! toolstack's nodes, `connect` to Connected, I/O, and the backend going
//! away while the device is in use (`monitor`).
#![cfg(feature = "sim")]

use ringlet_executor::{spawn, Executor};
use ringlet_storage::blkfront::{connect, ConnectError};
use ringlet_storage::sim::{Backing, Blkback, BlkbackConfig, BlkbackExit, BlkbackFaults};
use ringlet_storage::{BlockDevice, ReadError};
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::sim::xenbus::{DevicePaths, DeviceSpec};
use ringlet_xen::sim::{DomainConfig, Ratio, SimConfig, SimXen};
use ringlet_xen::xenstore::Xenstore;

/// xvda.
const DEVID: u32 = 51712;

fn vbd(sim: &SimXen, front: DomId) -> DevicePaths {
    sim.add_device(&DeviceSpec::new("vbd", front, DEVID))
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

#[test]
fn handshake_connects_and_serves() {
    let sim = SimXen::new(SimConfig::new(11).quiet());
    let front = sim.create_domain(DomainConfig::new("front")).id();
    let g = sim.guest(front);
    let p = vbd(&sim, front);
    let (fe, be) = (p.frontend.clone(), p.backend.clone());
    let image: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    let ex = Executor::new(sim.clone());
    let s2 = sim.clone();
    let img2 = image.clone();
    let (s3, be_in) = (sim.clone(), be.clone());
    let exit = ex.block_on(async move {
        let back = spawn(Blkback::serve_xenbus(
            s2,
            p,
            Backing::Mem(img2),
            BlkbackConfig::default(),
        ));
        let xs = Xenstore::new(&g).unwrap();
        let dev = connect(&g, &xs, DEVID).await.unwrap();
        assert_eq!(dev.backend_path().as_deref(), Some(be_in.as_str()));
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
        let mut again = vec![0u8; 4096];
        dev.read(1000, &mut again).await.unwrap();
        assert_eq!(again, [0xEE; 4096]);
        assert_eq!(read(&s3, &format!("{fe}/state")).as_deref(), Some("4"));
        assert_eq!(read(&s3, &format!("{be_in}/state")).as_deref(), Some("4"));
        // The frontend closes: the backend stops and says Closed.
        xs.write(&format!("{fe}/state"), "5").await.unwrap();
        back.await.unwrap().unwrap()
    });
    assert_eq!(exit.0, BlkbackExit::FrontendClosed);
    assert_eq!(exit.1.bytes_written, 4096);
    assert_eq!(read(&sim, &format!("{be}/state")).as_deref(), Some("6"));
}

#[test]
fn injected_disconnect_reaches_the_frontend_through_xenbus() {
    let sim = SimXen::new(SimConfig::new(12).quiet());
    let front = sim.create_domain(DomainConfig::new("front")).id();
    let g = sim.guest(front);
    let p = vbd(&sim, front);
    let ex = Executor::new(sim.clone());
    let s2 = sim.clone();
    ex.block_on(async move {
        // The backend serves, then on the 6th request goes away (state Closing).
        let faults = BlkbackFaults {
            disconnect: Ratio::new(1, 6),
            ..BlkbackFaults::NONE
        };
        let back = spawn(Blkback::serve_xenbus(
            s2,
            p,
            Backing::Mem(vec![0u8; 1 << 20]),
            BlkbackConfig {
                faults,
                seed: 3,
                ..BlkbackConfig::default()
            },
        ));
        let xs = Xenstore::new(&g).unwrap();
        let dev = std::rc::Rc::new(connect(&g, &xs, DEVID).await.unwrap());
        let d2 = dev.clone();
        let xs2 = xs.clone();
        let mon = spawn(async move { d2.monitor(&xs2).await });
        let mut buf = vec![0u8; 4096];
        let mut ok = 0;
        let err = loop {
            match dev.read(ok * 8, &mut buf).await {
                Ok(()) => ok += 1,
                Err(e) => break e,
            }
            assert!(ok < 1000, "the disconnect never came");
        };
        assert_eq!(err, ReadError::Disconnected, "after {ok} reads");
        // Closing, or already Closed when the monitor reads it.
        let seen = mon.await.unwrap().unwrap();
        assert!(
            matches!(seen, XenbusState::Closing | XenbusState::Closed),
            "{seen:?}"
        );
        assert_eq!(back.await.unwrap().unwrap().0, BlkbackExit::Disconnected);
        assert_eq!(dev.read(0, &mut buf).await, Err(ReadError::Disconnected));
    });
}

#[test]
fn backend_that_closes_during_the_handshake_is_an_error() {
    let sim = SimXen::new(SimConfig::new(13).quiet());
    let front = sim.create_domain(DomainConfig::new("front")).id();
    let g = sim.guest(front);
    let p = vbd(&sim, front);
    write(&sim, &format!("{}/state", p.backend), "6");
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
    let _p = vbd(&sim, front);
    ex.block_on(async move {
        let xs = Xenstore::new(&g).unwrap();
        let r = connect(&g, &xs, DEVID).await;
        assert!(matches!(r, Err(ConnectError::Timeout)), "{r:?}");
    });
}
