//! A property test of the sim's event channels against a model of Xen's
//! rules: random sequences of port operations across three domains give the
//! same results (ports and errors) and the same pending bits as the model,
//! and no event is ever lost: a pending, unmasked port always has its
//! selector bit and the upcall raised until a demux delivers it.
#![cfg(feature = "sim")]

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use ringlet_xen::evtchn::demux;
use ringlet_xen::hypervisor::{DomId, Hypervisor, Port, XenError};
use ringlet_xen::sim::evtchn::ChanState;
use ringlet_xen::sim::{DomainConfig, SimConfig, SimDomain, SimXen};

const GUEST_PORTS_MAX: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum M {
    Free,
    Reserved,
    Unbound(usize),
    Inter {
        remote: usize,
        port: u32,
        service: bool,
    },
}

#[derive(Debug)]
struct Model {
    ports: Vec<Vec<M>>,
    max: Vec<u32>,
    pending: Vec<BTreeSet<u32>>,
    masked: Vec<BTreeSet<u32>>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    AllocUnbound(usize, usize),
    Bind(usize, usize, usize),
    Close(usize, usize),
    Send(usize, usize),
    Mask(usize, usize),
    Unmask(usize, usize),
    Demux(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0usize..3;
    let p = 0usize..16;
    prop_oneof![
        (d.clone(), d.clone()).prop_map(|(a, b)| Op::AllocUnbound(a, b)),
        (d.clone(), d.clone(), p.clone()).prop_map(|(a, b, c)| Op::Bind(a, b, c)),
        (d.clone(), p.clone()).prop_map(|(a, b)| Op::Close(a, b)),
        (d.clone(), p.clone()).prop_map(|(a, b)| Op::Send(a, b)),
        (d.clone(), p.clone()).prop_map(|(a, b)| Op::Mask(a, b)),
        (d.clone(), p.clone()).prop_map(|(a, b)| Op::Unmask(a, b)),
        d.prop_map(Op::Demux),
    ]
}

impl Model {
    fn from_sim(doms: &[SimDomain]) -> Model {
        let ids: Vec<DomId> = doms.iter().map(|d| d.id()).collect();
        let idx = |id: DomId| ids.iter().position(|&x| x == id).expect("known domain");
        let ports = doms
            .iter()
            .map(|d| {
                (0..)
                    .map_while(|p| d.port_state(Port(p)))
                    .map(|s| match s {
                        ChanState::Free => M::Free,
                        ChanState::Reserved => M::Reserved,
                        ChanState::Unbound { remote } => M::Unbound(idx(remote)),
                        ChanState::Interdomain {
                            remote,
                            remote_port,
                            service,
                        } => M::Inter {
                            remote: idx(remote),
                            port: remote_port.0,
                            service: service.is_some(),
                        },
                        ChanState::Virq(_) => unreachable!("no VIRQ bound at start"),
                    })
                    .collect()
            })
            .collect();
        let pending = doms
            .iter()
            .map(|d| {
                (0..64u32)
                    .filter(|&p| {
                        d.shared_info().evtchn_pending[0].load(Ordering::SeqCst) & (1 << p) != 0
                    })
                    .collect()
            })
            .collect();
        Model {
            ports,
            max: vec![1023, GUEST_PORTS_MAX, GUEST_PORTS_MAX],
            pending,
            masked: vec![BTreeSet::new(); 3],
        }
    }

    fn alloc(&mut self, d: usize) -> Result<u32, XenError> {
        if let Some(i) = self.ports[d].iter().position(|&s| s == M::Free) {
            return Ok(i as u32);
        }
        if self.ports[d].len() as u32 >= self.max[d] {
            return Err(XenError::ENOSPC);
        }
        self.ports[d].push(M::Free);
        Ok(self.ports[d].len() as u32 - 1)
    }

    fn raise(&mut self, d: usize, p: u32) {
        if let M::Inter { service: true, .. } = self.ports[d][p as usize] {
            return;
        }
        self.pending[d].insert(p);
    }

    fn get(&self, d: usize, p: u32) -> Result<M, XenError> {
        self.ports[d]
            .get(p as usize)
            .copied()
            .ok_or(XenError::EINVAL)
    }
}

fn check_no_lost_event(d: &SimDomain, m: &Model, i: usize) -> Result<(), TestCaseError> {
    let si = d.shared_info();
    let v = &si.vcpu_info[0];
    for w in 0..64usize {
        let pending = si.evtchn_pending[w].load(Ordering::SeqCst);
        let mask = si.evtchn_mask[w].load(Ordering::SeqCst);
        let model: u64 = m.pending[i]
            .iter()
            .filter(|&&p| p as usize / 64 == w)
            .fold(0, |acc, &p| acc | 1 << (p % 64));
        prop_assert_eq!(pending, model, "d{} word {}: pending bits differ", i, w);
        if pending & !mask != 0 {
            prop_assert!(
                v.evtchn_pending_sel.load(Ordering::SeqCst) & (1 << w) != 0,
                "lost: no selector"
            );
            prop_assert!(
                v.evtchn_upcall_pending.load(Ordering::SeqCst) != 0,
                "lost: no upcall"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ports_behave_as_xen_and_no_event_is_lost(ops in proptest::collection::vec(op(), 1..120)) {
        let sim = SimXen::new(SimConfig::new(1).quiet());
        let mut cfg = DomainConfig::new("a");
        cfg.ports_max = GUEST_PORTS_MAX;
        let a = sim.create_domain(cfg.clone());
        let b = sim.create_domain(cfg);
        let doms = [sim.dom0(), a, b];
        let ids: Vec<DomId> = doms.iter().map(|d| d.id()).collect();
        let mut m = Model::from_sim(&doms);
        for op in ops {
            match op {
                Op::AllocUnbound(d, r) => {
                    let got = doms[d].evtchn_alloc_unbound(ids[r]);
                    let want = m.alloc(d).inspect(|&p| {
                        m.ports[d][p as usize] = M::Unbound(r);
                    });
                    prop_assert_eq!(got, want.map(Port));
                }
                Op::Bind(d, r, pick) => {
                    let rp = pick as u32;
                    let got = doms[d].evtchn_bind_interdomain(ids[r], Port(rp));
                    let want = match m.get(r, rp) {
                        Ok(M::Unbound(x)) if x == d => m.alloc(d).inspect(|&p| {
                            m.ports[d][p as usize] = M::Inter { remote: r, port: rp, service: false };
                            m.ports[r][rp as usize] = M::Inter { remote: d, port: p, service: false };
                            m.raise(d, p);
                        }),
                        Ok(_) => Err(XenError::EINVAL),
                        Err(e) => Err(e),
                    };
                    prop_assert_eq!(got, want.map(Port));
                }
                Op::Close(d, pick) => {
                    let p = pick as u32;
                    let got = doms[d].evtchn_close(Port(p));
                    let want = match m.get(d, p) {
                        Ok(M::Free | M::Reserved) | Err(_) => Err(XenError::EINVAL),
                        Ok(s) => {
                            if let M::Inter { remote, port, .. } = s {
                                if let M::Inter { remote: back, port: bp, .. } = m.ports[remote][port as usize] {
                                    if back == d && bp == p {
                                        m.ports[remote][port as usize] = M::Unbound(d);
                                    }
                                }
                            }
                            m.ports[d][p as usize] = M::Free;
                            m.pending[d].remove(&p);
                            Ok(())
                        }
                    };
                    prop_assert_eq!(got, want);
                }
                Op::Send(d, pick) => {
                    let p = pick as u32;
                    let got = doms[d].evtchn_send(Port(p));
                    let want = match m.get(d, p) {
                        Ok(M::Inter { remote, port, .. }) => {
                            m.raise(remote, port);
                            Ok(())
                        }
                        Ok(M::Unbound(_)) => Ok(()),
                        _ => Err(XenError::EINVAL),
                    };
                    prop_assert_eq!(got, want);
                }
                Op::Mask(d, pick) => {
                    let p = pick as u32;
                    doms[d].shared_info().evtchn_mask[0].fetch_or(1 << p, Ordering::SeqCst);
                    m.masked[d].insert(p);
                }
                Op::Unmask(d, pick) => {
                    let p = pick as u32;
                    let got = doms[d].evtchn_unmask(Port(p));
                    let want = m.get(d, p).map(|_| {
                        m.masked[d].remove(&p);
                    });
                    prop_assert_eq!(got, want);
                }
                Op::Demux(d) => {
                    let si = doms[d].shared_info();
                    let mut got = BTreeSet::new();
                    demux(si, doms[d].vcpu_info(), |p| {
                        got.insert(p.0);
                    });
                    let want: BTreeSet<u32> = m.pending[d].difference(&m.masked[d]).copied().collect();
                    prop_assert_eq!(&got, &want, "d{} delivered", d);
                    for p in want {
                        m.pending[d].remove(&p);
                    }
                }
            }
            for (i, d) in doms.iter().enumerate() {
                check_no_lost_event(d, &m, i)?;
            }
        }
    }
}
