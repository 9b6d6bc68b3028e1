//! The xenstore client against the sim's xenstore daemon: every operation,
//! watches, transactions (conflict and retry), permissions, many requests in
//! flight, cancellation, and malformed replies from fault injection.
#![cfg(feature = "sim")]

use std::cell::Cell;
use std::rc::Rc;

use ringlet_executor::{spawn, Executor};
use ringlet_xen::abi::xenbus::XenbusState;
use ringlet_xen::guest::Guest;
use ringlet_xen::hypervisor::DomId;
use ringlet_xen::platform::XenPlatform;
use ringlet_xen::sim::{DomainConfig, FaultSite, Faults, Ratio, SimConfig, SimXen};
use ringlet_xen::xenstore::client::{REQUESTS_IN_FLIGHT_MAX, TRANSACTION_RETRIES_MAX};
use ringlet_xen::xenstore::{
    Access, Permission, ProtocolError, RequestError, TransactionError, Xenstore, XenstoreError,
};

struct World {
    sim: SimXen,
    dom: DomId,
    guest: Guest,
    ex: Executor,
}

fn world_with(config: SimConfig) -> World {
    let sim = SimXen::new(config.quiet());
    let d = sim.create_domain(DomainConfig::new("guest"));
    let guest = Guest::new(d.as_hypervisor());
    let ex = Executor::new(XenPlatform::new(guest.clone()));
    World {
        sim,
        dom: d.id(),
        guest,
        ex,
    }
}

fn world() -> World {
    world_with(SimConfig::new(1))
}

impl World {
    fn home(&self) -> String {
        format!("/local/domain/{}", self.dom.0)
    }

    /// dom0 (the toolstack) writes a node directly in the daemon.
    fn dom0_write(&self, path: &str, value: &[u8]) {
        self.sim
            .xenstore(|xs| xs.write_as(DomId::DOM0, path, value))
            .unwrap();
    }
}

#[test]
fn every_operation() {
    let w = world();
    let home = w.home();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        assert_eq!(xs.domid().await, Ok(w.dom));
        assert_eq!(xs.read_string("name").await.as_deref(), Ok("guest"));
        assert_eq!(xs.get_domain_path(w.dom).await, Ok(home.clone()));

        xs.write("data/a", "hello").await.unwrap();
        assert_eq!(xs.read("data/a").await.unwrap(), b"hello");
        assert_eq!(
            xs.read(&format!("{home}/data/a")).await.unwrap(),
            b"hello",
            "absolute and relative paths name the same node"
        );
        xs.write("data/n", "42").await.unwrap();
        assert_eq!(xs.read_int::<u32>("data/n").await, Ok(42));
        assert_eq!(
            xs.read_int::<u8>("data/a").await,
            Err(RequestError::BadValue)
        );
        xs.write("data/big", "300").await.unwrap();
        assert_eq!(
            xs.read_int::<u8>("data/big").await,
            Err(RequestError::BadValue)
        );
        xs.write("data/state", XenbusState::Connected.as_str())
            .await
            .unwrap();
        assert_eq!(
            xs.read_state("data/state").await,
            Ok(XenbusState::Connected)
        );
        xs.write("data/bin", [0xffu8, 0, 1]).await.unwrap();
        assert_eq!(xs.read("data/bin").await.unwrap(), [0xff, 0, 1]);
        assert_eq!(
            xs.read_string("data/bin").await,
            Err(RequestError::BadValue)
        );

        xs.mkdir("data/dir/sub").await.unwrap();
        assert_eq!(xs.read("data/dir/sub").await.unwrap(), b"");
        let mut names = xs.directory("data").await.unwrap();
        names.sort();
        assert_eq!(names, ["a", "big", "bin", "dir", "n", "state"]);

        let perms = xs.get_permissions("data/a").await.unwrap();
        assert_eq!(
            perms,
            [Permission {
                domid: w.dom,
                access: Access::None
            }]
        );
        let new = [
            Permission {
                domid: w.dom,
                access: Access::None,
            },
            Permission {
                domid: DomId(7),
                access: Access::Read,
            },
        ];
        xs.set_permissions("data/a", &new).await.unwrap();
        assert_eq!(xs.get_permissions("data/a").await.unwrap(), new);

        xs.rm("data/dir").await.unwrap();
        assert_eq!(
            xs.read("data/dir/sub").await,
            Err(RequestError::Xenstore(XenstoreError::NoEnt))
        );
        let s = xs.stats();
        assert_eq!(s.requests, s.replies);
        assert_eq!((s.unknown_replies, s.malformed_replies), (0, 0));
    });
    // The daemon really holds what the client wrote.
    assert_eq!(
        w.sim
            .xenstore(|xs| xs.read_as(DomId::DOM0, &format!("{home}/data/a"))),
        Ok(b"hello".to_vec())
    );
}

#[test]
fn daemon_errors_and_bad_arguments() {
    let w = world();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        let e = xs.read("data/missing").await.unwrap_err();
        assert!(e.is(XenstoreError::NoEnt));
        assert_eq!(e.to_string(), "xenstore: no such node (ENOENT)");
        // Another domain's home and dom0's tree are not ours.
        assert_eq!(
            xs.read("/local/domain/0/name").await,
            Err(RequestError::Xenstore(XenstoreError::Acces))
        );
        assert_eq!(
            xs.write("/tool/x", "v").await,
            Err(RequestError::Xenstore(XenstoreError::Acces))
        );
        // Giving a node away is refused.
        let give = [Permission {
            domid: DomId(0),
            access: Access::None,
        }];
        assert_eq!(
            xs.set_permissions("data", &give).await,
            Err(RequestError::Xenstore(XenstoreError::Perm))
        );
        // Too big for the daemon's value quota.
        assert_eq!(
            xs.write("data/huge", vec![b'x'; 3000]).await,
            Err(RequestError::Xenstore(XenstoreError::TooBig))
        );
        // Refused before anything is sent.
        let before = xs.stats().requests;
        assert!(matches!(
            xs.read("a\0b").await,
            Err(RequestError::Encode(_))
        ));
        assert!(matches!(
            xs.write("data/x", vec![0u8; 5000]).await,
            Err(RequestError::Encode(_))
        ));
        assert!(matches!(
            xs.set_permissions("data", &[]).await,
            Err(RequestError::Encode(_))
        ));
        assert_eq!(xs.stats().requests, before);
        // The connection is still fine.
        assert!(xs.read("domid").await.is_ok());
        assert_eq!(xs.broken(), None);
    });
}

#[test]
fn many_requests_in_flight_from_many_tasks() {
    let w = world();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        let n = 3 * REQUESTS_IN_FLIGHT_MAX + 5;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let xs = xs.clone();
                spawn(async move {
                    let path = format!("data/k{i}");
                    xs.write(&path, format!("v{i}")).await.unwrap();
                    xs.read_string(&path).await.unwrap()
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), format!("v{i}"));
        }
        assert_eq!(xs.directory("data").await.unwrap().len(), n);
        let s = xs.stats();
        assert_eq!(s.requests, s.replies);
        assert_eq!(s.requests, 2 * n as u64 + 1);
    });
}

#[test]
fn dropped_request_reply_is_discarded() {
    let w = world();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        {
            // Poll the request once (it is sent), then drop it.
            let fut = xs.write("data/dropped", "v");
            let mut fut = Box::pin(fut);
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        // The next request works; the late reply was matched to the abandoned
        // slot, not to it.
        assert_eq!(xs.read("data/dropped").await.unwrap(), b"v");
        assert_eq!(xs.stats().unknown_replies, 0);
    });
}

use std::future::Future;

#[test]
fn watches_fire_initially_on_change_and_unregister_on_drop() {
    let w = world();
    let home = w.home();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        let mut watch = xs.watch("data/w").await.unwrap();
        // Real xenstored fires once at registration.
        assert_eq!(watch.next().await.unwrap().path, "data/w");
        // The guest's own write below it creates the watched node too.
        xs.write("data/w/x", "1").await.unwrap();
        assert_eq!(watch.next().await.unwrap().path, "data/w");
        assert_eq!(watch.next().await.unwrap().path, "data/w/x");
        // dom0 writes; the event crosses domains.
        w.dom0_write(&format!("{home}/data/w"), b"2");
        assert_eq!(watch.next().await.unwrap().path, "data/w");
        // Removal of an ancestor fires with the watched path.
        xs.rm("data").await.unwrap();
        assert_eq!(watch.next().await.unwrap().path, "data/w");
        assert_eq!(w.sim.xenstore(|s| s.watch_count(w.dom)), 1);
        drop(watch);
        // Let the unwatch go out and come back.
        xs.read("domid").await.unwrap();
        assert_eq!(w.sim.xenstore(|s| s.watch_count(w.dom)), 0);
        xs.write("data/w", "3").await.unwrap();
        let s = xs.stats();
        assert_eq!(s.watch_events, 5);
        assert_eq!(s.unknown_replies, 0, "the unwatch reply was expected");

        // An absolute watch sees absolute paths; unwatch() reports.
        let mut abs = xs.watch(&format!("{home}/device")).await.unwrap();
        assert_eq!(abs.next().await.unwrap().path, format!("{home}/device"));
        w.dom0_write(&format!("{home}/device/vif/0/state"), b"1");
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(abs.next().await.unwrap().path);
        }
        assert_eq!(
            seen,
            [
                format!("{home}/device/vif"),
                format!("{home}/device/vif/0"),
                format!("{home}/device/vif/0/state")
            ]
        );
        abs.unwatch().await.unwrap();
        assert_eq!(w.sim.xenstore(|s| s.watch_count(w.dom)), 0);
    });
}

#[test]
fn watch_waiter_and_requests_share_the_port() {
    // A task blocked on a watch and tasks doing requests must all make
    // progress, whichever of them holds the port's waker.
    let w = world();
    let home = w.home();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        let mut watch = xs.watch("data/flag").await.unwrap();
        assert!(watch.next().await.is_some());
        let seen = Rc::new(Cell::new(0));
        let watcher = {
            let seen = seen.clone();
            spawn(async move {
                while let Some(ev) = watch.next().await {
                    if ev.path == "data/flag" {
                        seen.set(seen.get() + 1);
                        if seen.get() == 3 {
                            return;
                        }
                    }
                }
            })
        };
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let xs = xs.clone();
                spawn(async move {
                    for j in 0..10 {
                        xs.write(&format!("data/w{i}"), format!("{j}"))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in workers {
            t.await.unwrap();
        }
        for v in ["1", "2", "3"] {
            xs.write("data/flag", v).await.unwrap();
        }
        watcher.await.unwrap();
        assert_eq!(seen.get(), 3);
        let _ = home;
    });
}

#[test]
fn transaction_commits_atomically() {
    let w = world();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        let tx = xs.transaction_start().await.unwrap();
        tx.write("data/a", "1").await.unwrap();
        tx.write("data/b", "2").await.unwrap();
        assert_eq!(tx.read("data/a").await.unwrap(), b"1");
        assert_eq!(
            xs.read("data/a").await,
            Err(RequestError::Xenstore(XenstoreError::NoEnt)),
            "not visible before commit"
        );
        tx.commit().await.unwrap();
        assert_eq!(xs.read("data/b").await.unwrap(), b"2");

        let tx = xs.transaction_start().await.unwrap();
        tx.write("data/a", "x").await.unwrap();
        tx.abort().await.unwrap();
        assert_eq!(xs.read("data/a").await.unwrap(), b"1");

        // Dropping an unfinished transaction aborts it in the daemon.
        let tx = xs.transaction_start().await.unwrap();
        tx.write("data/a", "y").await.unwrap();
        drop(tx);
        xs.read("domid").await.unwrap();
        assert_eq!(w.sim.xenstore(|s| s.transaction_count(w.dom)), 0);
        assert_eq!(xs.read("data/a").await.unwrap(), b"1");
    });
}

#[test]
fn transaction_conflict_is_retried() {
    let w = world();
    let home = w.home();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        xs.write("data/counter", "10").await.unwrap();
        let attempts = Cell::new(0);
        let r = xs
            .transaction(async |tx| {
                attempts.set(attempts.get() + 1);
                let n: u32 = tx.read_int("data/counter").await?;
                if attempts.get() == 1 {
                    // Someone else changes what we read: the commit conflicts.
                    w.dom0_write(&format!("{home}/data/counter"), b"20");
                }
                tx.write("data/counter", format!("{}", n + 1)).await?;
                Ok::<u32, RequestError>(n + 1)
            })
            .await;
        assert_eq!(r, Ok(21));
        assert_eq!(attempts.get(), 2);
        assert_eq!(xs.read_int::<u32>("data/counter").await, Ok(21));

        // A body that always conflicts gives up after the bound.
        let attempts = Cell::new(0u32);
        let r = xs
            .transaction(async |tx| {
                attempts.set(attempts.get() + 1);
                tx.read("data/counter").await?;
                w.dom0_write(&format!("{home}/data/counter"), b"0");
                Ok::<(), RequestError>(())
            })
            .await;
        assert_eq!(r, Err(TransactionError::TooManyConflicts));
        assert_eq!(attempts.get(), TRANSACTION_RETRIES_MAX);

        // A body error aborts and is returned as is.
        let r = xs
            .transaction(async |tx| {
                tx.write("data/counter", "99").await?;
                tx.read("data/nope").await?;
                Ok::<(), RequestError>(())
            })
            .await;
        assert_eq!(
            r,
            Err(TransactionError::Body(RequestError::Xenstore(
                XenstoreError::NoEnt
            )))
        );
        assert_eq!(xs.read_int::<u32>("data/counter").await, Ok(0));
        assert_eq!(w.sim.xenstore(|s| s.transaction_count(w.dom)), 0);
    });
}

#[test]
fn injected_eagain_is_retried() {
    let faults = Faults::none().with(FaultSite::XenstoreEagain, Ratio::new(1, 2));
    let w = world_with(SimConfig::new(7).with_faults(faults));
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        for i in 0..20u32 {
            let r = xs
                .transaction(async |tx| tx.write("data/t", format!("{i}")).await)
                .await;
            match r {
                Ok(()) => assert_eq!(xs.read_int::<u32>("data/t").await, Ok(i)),
                Err(e) => assert_eq!(e, TransactionError::TooManyConflicts),
            }
        }
    });
    let faults = Faults::none().with(FaultSite::XenstoreEagain, Ratio::ALWAYS);
    let w = world_with(SimConfig::new(7).with_faults(faults));
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        let r = xs
            .transaction(async |tx| tx.write("data/t", "1").await)
            .await;
        assert_eq!(r, Err(TransactionError::TooManyConflicts));
        assert!(xs
            .read("data/t")
            .await
            .unwrap_err()
            .is(XenstoreError::NoEnt));
    });
}

#[test]
fn malformed_replies_fail_their_request_or_break_the_connection() {
    // Every reply is malformed, in the daemon's fixed rotation: a stray copy
    // with a wrong id first, a wrong type, a missing NUL, a garbage errno
    // name, then a length over XENSTORE_PAYLOAD_MAX.
    let faults = Faults::none().with(FaultSite::XenstoreMalformedReply, Ratio::ALWAYS);
    let w = world_with(SimConfig::new(3).with_faults(faults));
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        // 1. A stray copy with an unknown id, then the real reply: success.
        assert_eq!(xs.mkdir("data/m").await, Ok(()));
        assert_eq!(xs.stats().unknown_replies, 1);
        // 2. Wrong type.
        assert!(matches!(
            xs.mkdir("data/m").await,
            Err(RequestError::Protocol(ProtocolError::TypeMismatch { .. }))
        ));
        // 3. "OK" without its NUL.
        assert_eq!(
            xs.mkdir("data/m").await,
            Err(RequestError::Protocol(ProtocolError::NotOk))
        );
        // 4. An errno the protocol does not define.
        assert!(matches!(
            xs.mkdir("data/m").await,
            Err(RequestError::Protocol(ProtocolError::UnknownErrno(_)))
        ));
        // 5. An oversized length: the stream cannot be trusted any more.
        let e = xs.mkdir("data/m").await.unwrap_err();
        assert_eq!(
            e,
            RequestError::Disconnected(ProtocolError::PayloadTooLong(4097))
        );
        assert_eq!(xs.broken(), Some(ProtocolError::PayloadTooLong(4097)));
        assert!(matches!(
            xs.read("domid").await,
            Err(RequestError::Disconnected(_))
        ));
        assert_eq!(xs.stats().malformed_replies, 3);
    });
}

#[test]
fn broken_connection_ends_watches_and_fails_waiters() {
    let faults = Faults::none().with(FaultSite::XenstoreMalformedReply, Ratio::ALWAYS);
    let w = world_with(SimConfig::new(3).with_faults(faults));
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        // Use up the first four kinds (the watch's own reply is the first).
        let mut watch = xs.watch("data").await.unwrap();
        for _ in 0..3 {
            let _ = xs.mkdir("data/m").await;
        }
        let waiter = {
            let xs = xs.clone();
            spawn(async move { xs.read("domid").await })
        };
        // The initial event, then the end of the stream once it breaks.
        let mut events = 0;
        while watch.next().await.is_some() {
            events += 1;
            assert!(events < 10);
        }
        assert!(matches!(
            waiter.await.unwrap(),
            Err(RequestError::Disconnected(_))
        ));
        assert!(xs.broken().is_some());
    });
}

/// A small workload under the faults each seed chooses: every result is
/// either right or an error, never a panic, a hang or a wrong value.
#[test]
fn seeded_faults_never_give_wrong_results() {
    let seeds = 300u64;
    let mut ok_runs = 0;
    for seed in 0..seeds {
        let w = world_with(SimConfig::seeded(seed));
        let ok = w.ex.block_on(async {
            let xs = Xenstore::new(&w.guest).unwrap();
            let mut all_ok = true;
            for i in 0..6u32 {
                let path = format!("data/k{i}");
                match xs.write(&path, format!("{seed}-{i}")).await {
                    Ok(()) => {}
                    Err(RequestError::Disconnected(_)) => return false,
                    Err(_) => all_ok = false,
                }
                match xs.read_string(&path).await {
                    Ok(v) => assert_eq!(v, format!("{seed}-{i}"), "seed {seed}"),
                    Err(RequestError::Disconnected(_)) => return false,
                    Err(_) => all_ok = false,
                }
            }
            let r = xs
                .transaction(async |tx| {
                    let n: u32 = tx.read_int("data/count").await.unwrap_or(0);
                    tx.write("data/count", format!("{}", n + 1)).await
                })
                .await;
            if let Ok(()) = r {
                if let Ok(n) = xs.read_int::<u32>("data/count").await {
                    assert_eq!(n, 1, "seed {seed}");
                }
            }
            all_ok && r.is_ok()
        });
        ok_runs += u32::from(ok);
    }
    // Seeds with the xenstore faults off pass cleanly; the others must have
    // met errors (or the test would not exercise the faults at all).
    let xs_faulty = (0..seeds)
        .filter(|&s| {
            let f = Faults::from_seed(s);
            f.is_enabled(FaultSite::XenstoreMalformedReply)
                || f.is_enabled(FaultSite::XenstoreEagain)
        })
        .count() as u32;
    eprintln!("{ok_runs} of {seeds} seeds ran clean; {xs_faulty} had xenstore faults on");
    assert!(ok_runs >= seeds as u32 - xs_faulty);
    assert!(ok_runs < seeds as u32, "no seed met a xenstore fault");
}

#[test]
fn wait_until_and_wait_for_state() {
    let w = world();
    let home = w.home();
    w.ex.block_on(async {
        let xs = Xenstore::new(&w.guest).unwrap();
        assert_eq!(xs.read_optional("data/none").await, Ok(None));
        xs.write("data/some", "x").await.unwrap();
        assert_eq!(xs.read_optional("data/some").await, Ok(Some(b"x".to_vec())));

        // Already true: returns at once.
        let v = xs.wait_until("data/some", |v| v.map(<[u8]>::to_vec)).await;
        assert_eq!(v, Ok(b"x".to_vec()));

        // dom0 moves a backend state along; the waiter sees only the one it wants.
        let state = format!("{home}/device/vif/0/state");
        let waiter = {
            let xs = xs.clone();
            spawn(async move {
                xs.wait_for_state("device/vif/0/state", |s| s == XenbusState::Connected)
                    .await
            })
        };
        ringlet_executor::yield_now().await;
        for s in [XenbusState::Initialising, XenbusState::InitWait, XenbusState::Connected] {
            w.dom0_write(&state, s.as_str().as_bytes());
            ringlet_executor::sleep(ringlet_executor::Duration::from_millis(1)).await;
        }
        assert_eq!(waiter.await.unwrap(), Ok(XenbusState::Connected));
        // The waiter's watch is gone once the unwatch reply is in.
        xs.read("domid").await.unwrap();
        assert_eq!(w.sim.xenstore(|s| s.watch_count(w.dom)), 0);
        let r = xs.wait_until("/local/domain/0/name", |_| Some(())).await;
        assert!(matches!(r, Err(ringlet_xen::xenstore::WaitError::Request(e)) if e.is(XenstoreError::Acces)));
    });
}
