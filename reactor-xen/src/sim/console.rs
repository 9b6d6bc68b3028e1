//! The sim's console daemon (what xenconsoled does in dom0): drains each
//! domain's PV console `out` ring into a bounded log and feeds its `in` ring.

use core::sync::atomic::Ordering;

use super::domain::{append_bounded, CONSOLE_LOG_BYTES_MAX};
use super::World;
use crate::abi::console::{
    mask_xencons_in_idx, mask_xencons_out_idx, XENCONS_IN_SIZE, XENCONS_OUT_SIZE,
};
use crate::hypervisor::DomId;

impl World {
    /// Copies what the guest produced on its console ring into its log and
    /// notifies the guest that the space is free.
    pub(crate) fn drain_console(&self, guest: DomId) {
        let mut st = self.state.borrow_mut();
        let Some(d) = st.domains.get_mut(&guest) else {
            return;
        };
        let mem = d.mem.clone();
        let ring = mem.console.console_iface();
        let cons = ring.out_cons.load(Ordering::Acquire);
        let prod = ring.out_prod.load(Ordering::Acquire);
        let len = prod.wrapping_sub(cons) as usize;
        if len == 0 {
            return;
        }
        if len > XENCONS_OUT_SIZE {
            // A corrupt index (xenconsoled logs "overflow" and discards):
            // take what the ring holds, counted as dropped.
            d.console_dropped += len as u64;
        } else {
            let mut buf = [0u8; XENCONS_OUT_SIZE];
            for (i, b) in buf[..len].iter_mut().enumerate() {
                *b = ring.out[mask_xencons_out_idx(cons.wrapping_add(i as u32))]
                    .load(Ordering::Relaxed);
            }
            let (log, dropped) = (&mut d.console_log, &mut d.console_dropped);
            append_bounded(log, dropped, CONSOLE_LOG_BYTES_MAX, &buf[..len]);
        }
        ring.out_cons.store(prod, Ordering::Release);
        let port = d.console_backend_port;
        let _ = st.evtchn_send(DomId::DOM0, port);
    }

    /// Writes as much of `bytes` as fits into `guest`'s console `in` ring
    /// and notifies it. Returns how many bytes were written.
    pub(crate) fn console_input(&self, guest: DomId, bytes: &[u8]) -> usize {
        let mut st = self.state.borrow_mut();
        let Some(d) = st.domains.get(&guest) else {
            return 0;
        };
        let mem = d.mem.clone();
        let port = d.console_backend_port;
        let ring = mem.console.console_iface();
        let cons = ring.in_cons.load(Ordering::Acquire);
        let prod = ring.in_prod.load(Ordering::Acquire);
        let used = prod.wrapping_sub(cons) as usize;
        let room = XENCONS_IN_SIZE.saturating_sub(used);
        let n = room.min(bytes.len());
        for (i, &b) in bytes[..n].iter().enumerate() {
            ring.in_[mask_xencons_in_idx(prod.wrapping_add(i as u32))].store(b, Ordering::Relaxed);
        }
        ring.in_prod
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        if n > 0 {
            let _ = st.evtchn_send(DomId::DOM0, port);
        }
        n
    }
}

#[cfg(test)]
mod test {
    use core::sync::atomic::Ordering;

    use crate::evtchn::EventChannel;
    use crate::sim::{DomainConfig, SimConfig, SimXen};

    const OUT: usize = 1024;
    const IN_CONS: usize = 3072;
    const IN_PROD: usize = 3076;
    const OUT_CONS: usize = 3080;
    const OUT_PROD: usize = 3084;

    #[test]
    fn daemon_drains_the_out_ring_into_the_log_and_frees_the_space() {
        let sim = SimXen::new(SimConfig::new(1).quiet());
        let d = sim.create_domain(DomainConfig::new("guest"));
        let g = sim.guest(d.id());
        let ch = g.console_channel().unwrap();
        let mem = g.console_mem().unwrap();
        // The guest writes "hello" across the ring's wrap point.
        let start = 2046u32;
        mem.atomic_u32(OUT_CONS).store(start, Ordering::SeqCst);
        for (i, b) in b"hello".iter().enumerate() {
            let at = (start as usize + i) % 2048;
            mem.write(OUT + at, &[*b]);
        }
        mem.atomic_u32(OUT_PROD).store(start + 5, Ordering::SeqCst);
        ch.notify().unwrap();
        sim.run_due();
        assert_eq!(d.console_output(), b"hello");
        assert_eq!(mem.atomic_u32(OUT_CONS).load(Ordering::SeqCst), start + 5);
        // The daemon notified the guest that the space is free.
        g.demux();
        assert!(ch.has_event());
    }

    #[test]
    fn corrupt_out_indices_are_counted_not_trusted() {
        let sim = SimXen::new(SimConfig::new(2).quiet());
        let d = sim.create_domain(DomainConfig::new("guest"));
        let g = sim.guest(d.id());
        let mem = g.console_mem().unwrap();
        mem.atomic_u32(OUT_PROD).store(5000, Ordering::SeqCst);
        let ch: EventChannel = g.console_channel().unwrap();
        ch.notify().unwrap();
        sim.run_due();
        assert!(d.console_output().is_empty());
        assert_eq!(d.console_dropped(), 5000);
        assert_eq!(mem.atomic_u32(OUT_CONS).load(Ordering::SeqCst), 5000);
    }

    #[test]
    fn input_fills_the_in_ring_up_to_its_space() {
        let sim = SimXen::new(SimConfig::new(3).quiet());
        let d = sim.create_domain(DomainConfig::new("guest"));
        let g = sim.guest(d.id());
        let mem = g.console_mem().unwrap();
        assert_eq!(d.console_input(b"ls\n"), 3);
        assert_eq!(mem.atomic_u32(IN_PROD).load(Ordering::SeqCst), 3);
        let mut buf = [0u8; 3];
        mem.read(0, &mut buf);
        assert_eq!(&buf, b"ls\n");
        // 1021 bytes of room are left; the guest has consumed nothing.
        assert_eq!(d.console_input(&[b'x'; 2000]), 1021);
        mem.atomic_u32(IN_CONS).store(1024, Ordering::SeqCst);
        assert_eq!(d.console_input(b"more"), 4);
    }
}
