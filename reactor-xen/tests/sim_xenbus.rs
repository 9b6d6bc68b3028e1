//! Xenbus on the software Xen: the toolstack's device nodes, and the echo
//! device's whole handshake between a guest and its backend in dom0.
#![cfg(feature = "sim")]

use ringlet_executor::{spawn, Executor};
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::sim::echo::{EchoBackend, EchoBackendConfig, EchoBackendExit, EchoClient};
use ringlet_xen::sim::xenbus::{DevicePaths, DeviceSpec};
use ringlet_xen::sim::{DomainConfig, SimConfig, SimXen};
use ringlet_xen::xenstore::{Access, Permission, Xenstore, XenstoreError};

fn state(sim: &SimXen, path: &str) -> String {
    let v = sim
        .xenstore(|xs| xs.read_as(DomId::DOM0, &format!("{path}/state")))
        .unwrap();
    String::from_utf8(v).unwrap()
}

#[test]
fn add_device_writes_both_directories_with_libxl_permissions() {
    let sim = SimXen::new(SimConfig::new(1).quiet());
    let a = sim.create_domain(DomainConfig::new("a")).id();
    let b = sim.create_domain(DomainConfig::new("b")).id();
    let p = sim.add_device(&DeviceSpec::new("vif", a, 0).front_node("mac", "00:16:3e:00:00:01"));
    assert_eq!(p, DevicePaths::new("vif", a, DomId::DOM0, 0));
    assert_eq!(p.frontend, format!("/local/domain/{}/device/vif/0", a.0));
    assert_eq!(p.backend, format!("/local/domain/0/backend/vif/{}/0", a.0));
    let read = |as_dom: DomId, path: &str| sim.xenstore(|xs| xs.read_as(as_dom, path));
    // The front end reads its directory (relative path) and its backend's.
    assert_eq!(
        read(a, "device/vif/0/backend").unwrap(),
        p.backend.as_bytes()
    );
    assert_eq!(read(a, "device/vif/0/backend-id").unwrap(), b"0");
    assert_eq!(read(a, "device/vif/0/mac").unwrap(), b"00:16:3e:00:00:01");
    assert_eq!(
        read(a, &format!("{}/frontend-id", p.backend)).unwrap(),
        format!("{}", a.0).as_bytes()
    );
    assert_eq!(state(&sim, &p.frontend), "1");
    assert_eq!(state(&sim, &p.backend), "1");
    // Another guest may not.
    assert_eq!(
        read(b, &format!("{}/state", p.frontend)),
        Err(XenstoreError::Acces)
    );
    assert_eq!(
        read(b, &format!("{}/state", p.backend)),
        Err(XenstoreError::Acces)
    );
    // The front end owns its directory, dom0 may read it.
    let perms = sim
        .xenstore(|xs| xs.perms(&format!("{}/state", p.frontend)))
        .unwrap();
    assert_eq!(
        perms,
        [
            Permission {
                domid: a,
                access: Access::None
            },
            Permission {
                domid: DomId::DOM0,
                access: Access::Read
            },
        ]
    );
    sim.remove_device(&p);
    assert_eq!(read(a, "device/vif/0/state"), Err(XenstoreError::NoEnt));
}

#[test]
fn echo_device_handshake_serves_and_closes() {
    let sim = SimXen::new(SimConfig::new(2).quiet().full_trace());
    let guest = sim.create_domain(DomainConfig::new("guest")).id();
    let g = sim.guest(guest);
    let paths = sim.add_device(&DeviceSpec::new("echo", guest, 0));
    let ex = Executor::new(sim.clone());
    let exit = ex.block_on(async {
        let backend = spawn(EchoBackend::serve_xenbus(
            sim.clone(),
            paths.clone(),
            EchoBackendConfig::default(),
        ));
        let xs = Xenstore::new(&g).unwrap();
        let mut client = EchoClient::connect_xenbus(&g, &xs, 0).await.unwrap();
        assert_eq!(state(&sim, &paths.frontend), "4");
        assert_eq!(state(&sim, &paths.backend), "4");
        // What the front end published is what the backend mapped.
        let rr = xs.read_int::<u32>("device/echo/0/ring-ref").await.unwrap();
        assert_eq!(rr, client.ring_ref().0);
        for i in 0..20u8 {
            client.submit(&[i; 5]).unwrap();
            client.push().unwrap();
            assert_eq!(client.next().await.unwrap().data, [i; 5]);
        }
        // The front end closes: the backend unmaps and says Closed.
        xs.write("device/echo/0/state", XenbusState::Closing.as_str())
            .await
            .unwrap();
        let exit = backend.await.unwrap();
        drop(client);
        exit
    });
    assert_eq!(exit.unwrap(), EchoBackendExit::FrontendClosed);
    assert_eq!(state(&sim, &paths.backend), "6");
    // The ring page's grant ended: nothing deferred, nothing leaked.
    ringlet_executor::platform::Platform::poll(&sim);
    assert_eq!(g.grant_stats().deferred, 0);
    assert_eq!(sim.domain(guest).unwrap().pages_allocated(), 0);
}

#[test]
fn backend_refuses_a_ring_ref_the_guest_never_granted() {
    let sim = SimXen::new(SimConfig::new(3).quiet());
    let guest = sim.create_domain(DomainConfig::new("guest")).id();
    let g = sim.guest(guest);
    let paths = sim.add_device(&DeviceSpec::new("echo", guest, 0));
    let ex = Executor::new(sim.clone());
    ex.block_on(async {
        let backend = spawn(EchoBackend::serve_xenbus(
            sim.clone(),
            paths.clone(),
            EchoBackendConfig::default(),
        ));
        let xs = Xenstore::new(&g).unwrap();
        // A hostile front end: a ring ref it never granted.
        xs.write("device/echo/0/ring-ref", "1000").await.unwrap();
        xs.write("device/echo/0/event-channel", "5").await.unwrap();
        xs.write("device/echo/0/state", "3").await.unwrap();
        let r = backend.await.unwrap();
        assert!(
            matches!(
                r,
                Err(ringlet_xen::sim::echo::EchoXenbusError::Backend(
                    ringlet_xen::sim::echo::EchoBackendError::Map(
                        ringlet_xen::sim::GrantError::NotGranted
                    )
                ))
            ),
            "{r:?}"
        );
    });
    assert_eq!(state(&sim, &paths.backend), "6");
}
