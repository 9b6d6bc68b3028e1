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
