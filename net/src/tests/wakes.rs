//! The runner's wake rules: coalesced socket wakes, the per-run budget under
//! an rx flood, no spinning on a full device.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::task::Waker;
use core::time::Duration;

use ringlet_executor::{sleep, spawn, yield_now};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};

use super::{cfg, pair, world, A, B};
use crate::cable::CableConfig;
use crate::{NetDevice, Stack, TcpListener, TcpStream};

#[test]
fn socket_wakes_coalesce_to_one_per_tick() {
    let (_sim, ex) = world(30);
    let (a, b) = pair(&ex, CableConfig::default(), cfg(A), cfg(B));
    ex.block_on(async {
        let mut l = TcpListener::bind(&a, 80, 1).unwrap();
        let server = spawn(async move { l.accept().await.0 });
        let mut c = TcpStream::connect(&b, (A, 80)).await.unwrap();
        let _s = server.await.unwrap();
        sleep(Duration::from_millis(100)).await; // quiet
        let before = b.stats();
        // 100 writes in one poll of this task: each queues data and touches.
        for _ in 0..100 {
            let n = c.write(b"x").await.unwrap();
            assert_eq!(n, 1);
        }
        let after = b.stats();
        assert_eq!(
            after.touch_wakes - before.touch_wakes,
            1,
            "one wake for the burst"
        );
        assert_eq!(after.runs, before.runs, "the runner has not run yet");
        yield_now().await;
        let later = b.stats();
        assert!(later.runs > after.runs, "the runner ran after the burst");
        // The next burst wakes it again.
        c.write(b"y").await.unwrap();
        assert_eq!(b.stats().touch_wakes - later.touch_wakes, 1);
    });
}

/// A device that always has a frame (addressed to another host) until it
/// has delivered `cap` of them.
struct Flood {
    delivered: Rc<Cell<usize>>,
    cap: usize,
    frame: Vec<u8>,
}

struct FloodRx(Vec<u8>);
impl phy::RxToken for FloodRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}
struct NullTx;
impl phy::TxToken for NullTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        f(&mut vec![0; len])
    }
}

impl Device for Flood {
    type RxToken<'a> = FloodRx;
    type TxToken<'a> = NullTx;
    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(FloodRx, NullTx)> {
        if self.delivered.get() >= self.cap {
            return None;
        }
        self.delivered.set(self.delivered.get() + 1);
        Some((FloodRx(self.frame.clone()), NullTx))
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<NullTx> {
        Some(NullTx)
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

impl NetDevice for Flood {
    fn register_waker(&mut self, _waker: &Waker) {
        // Always ready until the cap: the runner reruns on its own budget.
    }
    fn mac(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 9]
    }
}

#[test]
fn rx_flood_does_not_starve_other_tasks() {
    const TICKS: usize = 100;
    let (_sim, ex) = world(31);
    let delivered = Rc::new(Cell::new(0));
    // An Ethernet frame for another MAC: smoltcp drops it after the header.
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x78]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let flood = Flood {
        delivered: delivered.clone(),
        cap: 1_000_000,
        frame,
    };
    let config = cfg(A);
    let budget = config.frames_per_run_max;
    let (stack, runner) = Stack::new(flood, config).unwrap();
    ex.spawn(runner.run()).detach();
    let seen = delivered.clone();
    let seen_at_end = ex.block_on(async {
        let ticker = spawn(async move {
            for _ in 0..TICKS {
                yield_now().await;
            }
            seen.get()
        });
        ticker.await.unwrap()
    });
    let stats = stack.stats();
    // The ticker ran its 100 rounds while the runner took at most one
    // budget per round (plus the rounds around start and end).
    assert!(
        seen_at_end <= (TICKS + 3) * budget,
        "runner took {seen_at_end} frames while another task ran {TICKS} rounds (budget {budget})"
    );
    assert!(
        seen_at_end >= TICKS * budget / 2,
        "the flood was being processed: {seen_at_end}"
    );
    assert!(stats.budget_yields as usize >= TICKS, "{stats:?}");
}

#[test]
fn a_full_device_does_not_make_the_runner_spin() {
    // The far end never takes frames: the queue fills, transmit gives no
    // token; the runner must wait for the device's wake, not rerun.
    let (_sim, ex) = world(32);
    let cable = CableConfig {
        frames_max: 4,
        ..CableConfig::default()
    };
    let (s, _far) = super::lone(&ex, cable, cfg(B));
    ex.block_on(async {
        let u = crate::UdpSocket::bind(&s, 1000).unwrap();
        // The first send needs ARP; the far end never answers, so frames
        // (ARP requests) pile up in the cable.
        for _ in 0..4 {
            let _ = u.send_to(b"x", (A, 9)).await;
        }
        sleep(Duration::from_secs(5)).await;
        let runs = s.stats().runs;
        assert!(runs < 200, "the runner spun: {runs} runs in 5 s of silence");
    });
}
