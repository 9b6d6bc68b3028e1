//! The PV console against the sim's console daemon: lines arrive in order,
//! a full ring drops whole writes with a count and reports them once space
//! returns, and log records are bounded lines.
#![cfg(feature = "sim")]

use ringlet_executor::{sleep, Duration, Executor};
use ringlet_xen::abi::console::XENCONS_OUT_SIZE;
use ringlet_xen::console::{Console, LOG_LINE_MAX};
use ringlet_xen::guest::Guest;
use ringlet_xen::platform::XenPlatform;
use ringlet_xen::sim::{DomainConfig, SimConfig, SimDomain, SimXen};

fn world() -> (SimXen, SimDomain, Guest, Executor) {
    let sim = SimXen::new(SimConfig::new(5).quiet());
    let d = sim.create_domain(DomainConfig::new("guest"));
    let guest = Guest::new(d.as_hypervisor());
    let ex = Executor::new(XenPlatform::new(guest.clone()));
    (sim, d, guest, ex)
}

#[test]
fn lines_reach_the_console_daemon_in_order() {
    let (_sim, d, guest, ex) = world();
    ex.block_on(async {
        let c = Console::new(&guest).unwrap();
        for i in 0..2000 {
            let line = format!("line {i}\n");
            assert_eq!(c.write(line.as_bytes()), line.len());
            // Let the daemon drain now and then (the executor parks).
            if i % 100 == 0 {
                sleep(Duration::from_millis(1)).await;
            }
        }
        assert_eq!(c.dropped(), 0);
    });
    let expect: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(String::from_utf8(d.console_output()).unwrap(), expect);
}

#[test]
fn full_ring_drops_and_reports() {
    let (_sim, d, guest, ex) = world();
    ex.block_on(async {
        let c = Console::new(&guest).unwrap();
        // Without yielding, the daemon does not run: the ring fills up.
        let line = [b'a'; 99];
        let mut line = line.to_vec();
        line.push(b'\n');
        let mut written = 0;
        for _ in 0..30 {
            written += c.write(&line);
        }
        assert_eq!(written, XENCONS_OUT_SIZE / 100 * 100);
        assert_eq!(c.dropped(), 3000 - written as u64);
        // The daemon drains; the next write reports the loss first.
        sleep(Duration::from_millis(1)).await;
        assert_eq!(c.write(b"after\n"), 6);
    });
    let out = String::from_utf8(d.console_output()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20 + 2, "{:?}", &lines[18..]);
    assert!(lines[..20].iter().all(|l| l.len() == 99), "no line was cut");
    assert_eq!(lines[20], "[1000 bytes dropped]");
    assert_eq!(lines[21], "after");
}

#[test]
fn log_records_become_bounded_lines() {
    let (_sim, d, guest, ex) = world();
    ex.block_on(async {
        let c = Console::new(&guest).unwrap();
        let long = "x".repeat(1000);
        c.log_record(
            &log::Record::builder()
                .args(format_args!("{long}"))
                .level(log::Level::Error)
                .build(),
        );
        c.log_record(
            &log::Record::builder()
                .args(format_args!("booted in {} ms", 12))
                .level(log::Level::Info)
                .build(),
        );
    });
    let out = String::from_utf8(d.console_output()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), LOG_LINE_MAX - 1);
    assert!(lines[0].starts_with("ERROR: xxx") && lines[0].ends_with("x..."));
    assert_eq!(lines[1], "booted in 12 ms");
}

#[test]
fn early_console_is_the_fallback() {
    let (_sim, d, guest, _ex) = world();
    let c = Console::new(&guest).unwrap();
    c.early_write(b"early\n");
    assert_eq!(d.early_console_output(), b"early\n");
}
