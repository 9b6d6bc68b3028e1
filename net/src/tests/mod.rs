//! Tests of the stack over the in-memory cable, on the sim's virtual time.
//!
//! Every test runs on a `SimXen` world used as the executor's platform: time
//! is virtual (retransmission and linger timers pass instantly) and a hang
//! is a panic (the sim's stall detector), never a stuck test.

mod dhcp;
mod tcp;
mod udp;
mod wakes;

use alloc::vec::Vec;

use ringlet_executor::Executor;
use ringlet_xen::sim::{SimConfig, SimXen};

use crate::cable::{Cable, CableConfig, CableEnd};
use crate::{IpConfig, Ipv4Address, Stack, StackConfig};

pub(crate) const A: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
pub(crate) const B: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

/// A world whose virtual time drives the executor.
pub(crate) fn world(seed: u64) -> (SimXen, Executor) {
    let sim = SimXen::new(SimConfig::new(seed).quiet());
    let ex = Executor::new(sim.clone());
    (sim, ex)
}

/// The config of a stack at `addr`/24.
pub(crate) fn cfg(addr: Ipv4Address) -> StackConfig {
    let ip = IpConfig::from_cmdline(&alloc::format!("ip={addr}/24")).unwrap();
    StackConfig::new(ip).random_seed(u64::from(addr.to_bits()))
}

/// Two stacks joined by a cable, their runners spawned on `ex`.
pub(crate) fn pair(
    ex: &Executor,
    cable: CableConfig,
    a: StackConfig,
    b: StackConfig,
) -> (Stack, Stack) {
    let (da, db) = Cable::pair(cable);
    let (sa, ra) = Stack::new(da, a).unwrap();
    let (sb, rb) = Stack::new(db, b).unwrap();
    ex.spawn(ra.run()).detach();
    ex.spawn(rb.run()).detach();
    (sa, sb)
}

/// A stack whose cable's other end is returned raw (no stack behind it).
pub(crate) fn lone(ex: &Executor, cable: CableConfig, a: StackConfig) -> (Stack, CableEnd) {
    let (da, db) = Cable::pair(cable);
    let (sa, ra) = Stack::new(da, a).unwrap();
    ex.spawn(ra.run()).detach();
    (sa, db)
}

/// `len` bytes from a seeded generator.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
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

#[test]
fn static_config_is_up_at_once() {
    let (_sim, ex) = world(1);
    let (a, _b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    let ip = ex.block_on(async { a.wait_configured().await });
    assert_eq!(ip.address.address(), A);
    assert_eq!(a.mac(), [2, 0, 0, 0, 0, 1]);
}
