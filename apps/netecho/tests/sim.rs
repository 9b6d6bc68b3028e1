//! The hosted netecho binary on the software Xen, end to end: netfront
//! against the sim's netback through the xenbus handshake, a second stack
//! on the same bridge playing dom0's checks (src/sim_dom0.rs): 1 MiB
//! echoed byte for byte, 50 connections open at once, UDP; then the
//! shutdown summary.
#![cfg(not(target_os = "none"))]

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringlet-netecho"))
        .args(args)
        .output()
        .expect("running the hosted netecho");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn echoes_for_the_sim_dom0_then_shuts_down_cleanly() {
    let (ok, text) = run(&["ip=10.0.0.2/24", "gw=10.0.0.1"]);
    assert!(ok, "{text}");
    assert!(text.contains("dom0: all checks passed"), "{text}");
    assert!(
        text.contains("netecho: ip 10.0.0.2/24 gw 10.0.0.1 (static) after "),
        "{text}"
    );
    // The probe, the 1 MiB echo and 50 connections: one line each.
    let closed = text.lines().filter(|l| l.contains(" closed: ")).count();
    assert_eq!(closed, 52, "{text}");
    assert!(text.contains(" closed: 1048576 bytes in "), "{text}");
    let totals = text
        .lines()
        .find(|l| l.starts_with("netecho: totals "))
        .expect("a totals line");
    assert!(
        totals.contains("tcp 52 connections (0 failed, ") && totals.contains("udp 10 datagrams"),
        "{totals}"
    );
    // The summary comes after every connection's line.
    let last_closed = text.rfind(" closed: ").unwrap();
    assert!(
        text.find("netecho: totals ").unwrap() > last_closed,
        "{text}"
    );
    assert!(text.contains("netecho: done"), "{text}");
}

#[test]
fn a_malformed_address_fails_main() {
    let (ok, text) = run(&["ip=10.0.0.2"]);
    assert!(!ok, "{text}");
    assert!(text.contains("main failed: command line: "), "{text}");
}
