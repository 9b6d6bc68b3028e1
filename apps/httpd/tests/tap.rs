//! `--tap`: the hosted appliance on the software Xen in real time, its vif's
//! bridge attached to a real TAP device. The host's TCP fetches files from
//! it (TAP → the sim's bridge → netback → httpd's netfront; the files come
//! through blkfront from the sim's blkback) and compares the bytes with the
//! site; then SIGINT (Ctrl-C) stops it gracefully.
//!
//! Everything happens in a network namespace of its own, so the host's
//! interfaces and routes are left as they were and runs in parallel do not
//! meet. Needs root and /dev/net/tun: skipped with a note without them.
#![cfg(all(target_os = "linux", feature = "appliance"))]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the appliance may take to listen, and to stop after SIGINT.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Each socket operation's timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `ip ARGS`; panics if it fails.
fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("running ip(8)");
    assert!(status.success(), "ip {args:?}: {status}");
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The appliance's process, killed on drop if it still runs.
struct Appliance(Child);

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A site with text, a binary file of a few hundred KiB (many segments
/// each way) and a path with a space.
fn make_site(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let files = vec![
        ("index.html".to_string(), b"<h1>over TAP</h1>\n".to_vec()),
        ("data.bin".to_string(), data),
        ("a b/note.txt".to_string(), b"through blkfront\n".to_vec()),
    ];
    for (path, bytes) in &files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    files
}

/// `GET path` on a new connection (`Connection: close`): status and body.
fn get(server: SocketAddr, target: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut c = TcpStream::connect_timeout(&server, IO_TIMEOUT)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        c,
        "GET {target} HTTP/1.1\r\nHost: 10.0.0.2\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("GET {target}: a bad response head ({other:?})"),
    };
    let body = raw[head..].to_vec();
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        });
    assert_eq!(length, Some(body.len()), "GET {target}: Content-Length");
    Ok((resp.code.unwrap(), body))
}

/// Moves the calling thread into the network namespace `name`.
fn enter_netns(name: &str) {
    let ns = File::open(format!("/run/netns/{name}")).expect("the namespace's file");
    // SAFETY: `ns` is an open nsfs file for the call; setns with
    // CLONE_NEWNET moves only this thread's network namespace.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

/// The first number after `label` in `text`.
fn number_after(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in\n{text}"));
    text[at + label.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in\n{text}"))
}

#[test]
fn the_host_fetches_the_site_over_tap_through_netback_and_blkfront() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: needs root and /dev/net/tun (a TAP device in a network namespace)");
        return;
    }
    let pid = std::process::id();
    let site: PathBuf = std::env::temp_dir().join(format!("httpd-tap-site-{pid}"));
    let files = make_site(&site);

    // The namespace: lo, and the TAP device with the host's address.
    let ns = Netns::new(format!("rgl-httpd-{pid}"));
    let tap = format!("rgltap{}", pid % 100_000);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&["-n", &ns.0, "tuntap", "add", &tap, "mode", "tap"]);
    ip(&["-n", &ns.0, "addr", "add", "10.0.0.1/24", "dev", &tap]);
    ip(&["-n", &ns.0, "link", "set", &tap, "up"]);

    // The appliance, in the namespace (`ip netns exec` execs it: the pid
    // is the appliance's).
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_ringlet-httpd"))
        .arg("--site")
        .arg(&site)
        .args(["--tap", &tap])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the appliance");
    let stdout = child.stdout.take().unwrap();
    let appliance = Appliance(child);
    let log = Arc::new(Mutex::new(String::new()));
    let (serving_tx, serving) = mpsc::channel();
    let log2 = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("httpd: serving http://10.0.0.2:80/") {
                let _ = serving_tx.send(());
            }
            let mut log = log2.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let listening = serving.recv_timeout(STEP_TIMEOUT);
    assert!(
        listening.is_ok(),
        "the appliance did not listen within {STEP_TIMEOUT:?}:\n{}",
        log.lock().unwrap()
    );

    // The host's side: a thread in the namespace.
    let ns_name = ns.0.clone();
    let wanted = files.clone();
    let client = std::thread::spawn(move || {
        enter_netns(&ns_name);
        let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let mut fetched = 0;
        for (path, bytes) in &wanted {
            let target = format!("/{}", path.replace(' ', "%20"));
            let (status, body) =
                get(server, &target).unwrap_or_else(|e| panic!("GET {target}: {e}"));
            assert_eq!(status, 200, "GET {target}");
            assert!(
                body == *bytes,
                "GET {target}: {} bytes differ from the site's {}",
                body.len(),
                bytes.len()
            );
            fetched += 1;
        }
        let (status, _) = get(server, "/no/such/file").expect("GET a missing file");
        assert_eq!(status, 404);
        fetched + 1
    });
    let requests = client.join();
    let requests = match requests {
        Ok(n) => n,
        Err(e) => {
            eprintln!("the appliance's log:\n{}", log.lock().unwrap());
            std::panic::resume_unwind(e);
        }
    };

    // Ctrl-C: a graceful stop with status 0.
    let mut appliance = appliance;
    let child_pid = i32::try_from(appliance.0.id()).unwrap();
    // SAFETY: kill takes no pointers; `child_pid` is our child, not yet
    // waited for, so the pid is still its own.
    assert_eq!(unsafe { libc::kill(child_pid, libc::SIGINT) }, 0);
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = appliance.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            t0.elapsed() < STEP_TIMEOUT,
            "no exit within {STEP_TIMEOUT:?} of SIGINT:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(status.success(), "exit {status}:\n{log}");
    for line in [
        "httpd: vif 0 bridged to the TAP device",
        "httpd: site on vbd 51712: ",
        "netfront: vif0 00:16:3e:00:00:02 connected",
        "httpd: interrupted: dom0 asks for a poweroff",
        "httpd: shutdown requested (poweroff)",
        "ringlet: main returned, Poweroff",
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }
    assert_eq!(
        number_after(&log, "httpd: stopped: "),
        requests as u64,
        "one connection per request:\n{log}"
    );
    // Every frame went TAP → bridge → netback → netfront and back.
    let (tap_in, tap_out) = (
        number_after(&log, &format!("httpd: TAP {tap}: ")),
        number_after(&log, " frames in, "),
    );
    let (from_httpd, to_httpd) = (
        number_after(&log, "netback: "),
        number_after(&log, " frames from httpd, "),
    );
    assert!(tap_in > 0 && tap_out > 300_000 / 1514, "{log}");
    // Only two ports: all of httpd's frames go to the TAP device, all of
    // the host's to httpd (less any still queued when the stats were read).
    assert!(
        tap_out <= from_httpd && 0 < to_httpd && to_httpd <= tap_in,
        "{log}"
    );
    assert_eq!(number_after(&log, "dropped "), 0, "{log}");

    drop(appliance);
    drop(ns);
    std::fs::remove_dir_all(&site).unwrap();
}
