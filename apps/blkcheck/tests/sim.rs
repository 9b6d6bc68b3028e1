//! The hosted blkcheck binary on the software Xen, end to end: blkfront
//! against the sim's blkback through the xenbus handshake, the tar image's
//! files hashed, the scratch pattern written, flushed and read back.
#![cfg(not(target_os = "none"))]

use std::process::Command;

use sha2::{Digest, Sha256};

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringlet-blkcheck"))
        .args(args)
        .output()
        .expect("running the hosted blkcheck");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn every_file_hashed_and_the_pattern_read_back() {
    let (ok, text) = run(&["seed=77"]);
    assert!(ok, "{text}");
    let sha: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("blkcheck: sha256 "))
        .collect();
    assert_eq!(sha.len(), 6, "{text}");
    // Files of src/sim_dom0.rs: byte i is (i * 31 + seed) % 251.
    let data: Vec<u8> = (0..100_000u32)
        .map(|i| ((i * 31 + 1) % 251) as u8)
        .collect();
    for (path, digest) in [
        ("hello.txt", hex(b"hello\n")),
        ("empty", hex(b"")),
        ("dir/sub/deeper/data.bin", hex(&data)),
    ] {
        let want = format!("{digest} {path}");
        assert!(sha.contains(&want.as_str()), "no '{want}' in {sha:?}");
    }
    let scratch = text
        .lines()
        .find(|l| l.starts_with("blkcheck: scratch "))
        .expect("a scratch line");
    assert!(
        scratch.contains("offset 1048576 bytes 8388608 seed 77:"),
        "{scratch}"
    );
    assert!(scratch.contains("max in flight 32"), "{scratch}");
    assert!(text.contains("blkcheck: done"), "{text}");
}

#[test]
fn bad_arguments_fail_the_domain() {
    let (ok, text) = run(&["seed=x"]);
    assert!(!ok);
    assert!(
        text.contains("main failed: command line: seed= is not a number"),
        "{text}"
    );
    // Past the scratch disk's 10 MiB.
    let (ok, text) = run(&["offset=4194304", "bytes=8388608"]);
    assert!(!ok);
    assert!(
        text.contains("main failed: xvdb: pattern range reaches past the disk's 10485760 bytes"),
        "{text}"
    );
}
