//! A Linux TAP device as a [`NetDevice`], for hosted runs (feature `std`).
//!
//! The fd is non-blocking: `receive` reads one frame or returns `None`,
//! `transmit` writes at once (a frame the kernel refuses is dropped and
//! counted). A helper thread waits for the fd to become readable and wakes
//! the runner; after each wake it waits until the runner registers again
//! (which it does on every run), so it never wakes a runner that has not
//! yet looked.
//!
//! Creating a TAP interface needs `CAP_NET_ADMIN` (or an interface made
//! beforehand with `ip tuntap add NAME mode tap user $USER`).

// The fd calls (open, ioctl, read, write, poll) are FFI.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::thread;
use std::vec;
use std::vec::Vec;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::device::NetDevice;

/// The TAP device's frame MTU (1500 bytes of payload + the Ethernet header).
pub const TAP_MTU: usize = 1514;
/// How often the wait thread checks whether the device was dropped.
const WAIT_POLL_MS: i32 = 100;

/// Counters of a [`TapDevice`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames read.
    pub rx: u64,
    /// Frames written.
    pub tx: u64,
    /// Frames the kernel refused (queue full or an error).
    pub tx_dropped: u64,
    /// Reads that failed with an error other than "no frame".
    pub rx_errors: u64,
}

#[derive(Default)]
struct WaitState {
    waker: Option<Waker>,
    /// The runner registered since the last wake: the thread may wake it.
    armed: bool,
    stop: bool,
}

struct Shared {
    fd: OwnedFd,
    state: Mutex<WaitState>,
    cv: Condvar,
}

/// A Linux TAP interface.
pub struct TapDevice {
    shared: Arc<Shared>,
    mac: [u8; 6],
    stats: TapStats,
    thread: Option<thread::JoinHandle<()>>,
}

impl TapDevice {
    /// Opens (or creates) the TAP interface `name`; the stack uses `mac`.
    ///
    /// # Errors
    ///
    /// The OS error of opening `/dev/net/tun` or of `TUNSETIFF` (e.g. no
    /// permission), or `InvalidInput` for a name that is empty, too long or
    /// contains a NUL.
    pub fn open(name: &str, mac: [u8; 6]) -> io::Result<TapDevice> {
        let fd = open_tap_fd(name)?;
        let shared = Arc::new(Shared {
            fd,
            state: Mutex::new(WaitState::default()),
            cv: Condvar::new(),
        });
        let waiter = shared.clone();
        let thread = thread::Builder::new()
            .name(std::format!("tap-{name}"))
            .spawn(move || wait_loop(&waiter))?;
        Ok(TapDevice {
            shared,
            mac,
            stats: TapStats::default(),
            thread: Some(thread),
        })
    }

    /// The counters.
    pub fn stats(&self) -> TapStats {
        self.stats
    }
}

/// Opens (or creates) the TAP interface `name`: a non-blocking,
/// close-on-exec fd of `/dev/net/tun` attached with `IFF_TAP | IFF_NO_PI`
/// (each read and write is one Ethernet frame, without a header).
///
/// # Errors
///
/// As [`TapDevice::open`].
pub(crate) fn open_tap_fd(name: &str) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    if name.is_empty() || cname.as_bytes_with_nul().len() > libc::IFNAMSIZ {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let path = c"/dev/net/tun";
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let raw = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data (integers, arrays, a union of plain
    // data); all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(cname.as_bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `ifr` is, and
    // `fd` is an open /dev/net/tun.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The wait thread: waits until armed, then until the fd is readable, then
/// wakes the runner and disarms.
fn wait_loop(shared: &Shared) {
    loop {
        {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !st.armed && !st.stop {
                st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.stop {
                return;
            }
        }
        let mut pfd = libc::pollfd {
            fd: shared.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, WAIT_POLL_MS) };
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.stop {
            return;
        }
        if n > 0 && st.armed {
            st.armed = false;
            if let Some(w) = &st.waker {
                w.wake_by_ref();
            }
        }
    }
}

impl Drop for TapDevice {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl core::fmt::Debug for TapDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TapDevice")
            .field("fd", &self.shared.fd.as_raw_fd())
            .field("stats", &self.stats)
            .finish()
    }
}

/// A frame read from the TAP device.
#[derive(Debug)]
pub struct TapRxToken(Vec<u8>);

impl phy::RxToken for TapRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for one frame to the TAP device.
#[derive(Debug)]
pub struct TapTxToken<'a> {
    dev: &'a Shared,
    stats: &'a mut TapStats,
}

impl phy::TxToken for TapTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        // SAFETY: `frame` is valid for `len` bytes for the call.
        let n = unsafe { libc::write(self.dev.fd.as_raw_fd(), frame.as_ptr().cast(), len) };
        if n == len as isize {
            self.stats.tx += 1;
        } else {
            self.stats.tx_dropped += 1;
        }
        r
    }
}

impl core::fmt::Debug for Shared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Shared").field("fd", &self.fd).finish()
    }
}

impl Device for TapDevice {
    type RxToken<'a> = TapRxToken;
    type TxToken<'a> = TapTxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(TapRxToken, TapTxToken<'_>)> {
        let mut buf = vec![0u8; TAP_MTU];
        // SAFETY: `buf` is valid for TAP_MTU bytes for the call.
        let n = unsafe { libc::read(self.shared.fd.as_raw_fd(), buf.as_mut_ptr().cast(), TAP_MTU) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                self.stats.rx_errors += 1;
            }
            return None;
        }
        // 0 < n <= TAP_MTU: the kernel never writes more than asked.
        buf.truncate(n as usize);
        self.stats.rx += 1;
        Some((
            TapRxToken(buf),
            TapTxToken {
                dev: &self.shared,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TapTxToken<'_>> {
        Some(TapTxToken {
            dev: &self.shared,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = TAP_MTU;
        caps
    }
}

impl NetDevice for TapDevice {
    fn register_waker(&mut self, waker: &Waker) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            st.waker = Some(waker.clone());
        }
        st.armed = true;
        drop(st);
        self.shared.cv.notify_one();
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(
            TapDevice::open("", [2, 0, 0, 0, 0, 1]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            TapDevice::open("a-very-long-interface-name", [2, 0, 0, 0, 0, 1])
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            TapDevice::open("a\0b", [2, 0, 0, 0, 0, 1])
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }

    /// The host kernel talks TCP and UDP to a stack over a real TAP device.
    /// Needs root and /dev/net/tun; skipped (with a note) without them.
    #[test]
    fn host_talks_to_the_stack_over_tap() {
        use crate::{IpConfig, Stack, StackConfig, TcpListener, UdpSocket};
        use ringlet_executor::{sleep, spawn, timeout, Duration, Executor, StdPlatform};
        use std::io::{Read, Write};
        use std::process::Command;
        use std::sync::atomic::{AtomicU8, Ordering};

        let name = std::format!("rgl{}", std::process::id() % 100_000);
        let dev = match TapDevice::open(&name, [2, 0, 0, 0x7a, 0, 2]) {
            Ok(d) => d,
            Err(e) => {
                std::eprintln!("skipped: cannot open a TAP device ({e})");
                return;
            }
        };
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["addr", "add", "10.213.0.1/24", "dev", &name])
            || !ip(&["link", "set", &name, "up"])
        {
            std::eprintln!("skipped: cannot configure {name} with ip(8)");
            return;
        }
        let ex = Executor::new(StdPlatform::new());
        // 0: running, 1: passed, 2: failed.
        let host = Arc::new(AtomicU8::new(0));
        let host2 = host.clone();
        let client = thread::spawn(move || {
            let run = || -> io::Result<()> {
                let addr = "10.213.0.2:7".parse().unwrap();
                let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
                c.write_all(&msg)?;
                c.shutdown(std::net::Shutdown::Write)?;
                let mut back = Vec::new();
                c.read_to_end(&mut back).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        std::format!("tcp read after {} bytes: {e}", back.len()),
                    )
                })?;
                assert!(back == msg, "echo differs");
                let u = std::net::UdpSocket::bind("10.213.0.1:0")?;
                u.set_read_timeout(Some(Duration::from_secs(5)))?;
                u.send_to(b"datagram", "10.213.0.2:9")?;
                let mut buf = [0; 64];
                let (n, _) = u
                    .recv_from(&mut buf)
                    .map_err(|e| io::Error::new(e.kind(), std::format!("udp: {e}")))?;
                assert_eq!(&buf[..n], b"DATAGRAM");
                Ok(())
            };
            let ok = match std::panic::catch_unwind(run) {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    std::eprintln!("host side: {e}");
                    false
                }
                Err(_) => false,
            };
            host2.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
        });
        let result = ex.block_on(async {
            let ipc = IpConfig::from_cmdline("ip=10.213.0.2/24").unwrap();
            let (stack, runner) = Stack::new(dev, StackConfig::new(ipc)).unwrap();
            spawn(runner.run()).detach();
            let mut l = TcpListener::bind(&stack, 7, 2).unwrap();
            let u = UdpSocket::bind(&stack, 9).unwrap();
            spawn(async move {
                let mut buf = [0; 64];
                let (n, from) = u.recv_from(&mut buf).await.unwrap();
                buf[..n].make_ascii_uppercase();
                u.send_to(&buf[..n], from).await.unwrap();
            })
            .detach();
            spawn(async move {
                let (mut c, _) = l.accept().await;
                let mut buf = vec![0; 4096];
                loop {
                    let n = c.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    c.write_all(&buf[..n]).await.unwrap();
                }
                c.close().await.unwrap();
            })
            .detach();
            timeout(Duration::from_secs(20), async {
                loop {
                    match host.load(Ordering::SeqCst) {
                        0 => sleep(Duration::from_millis(10)).await,
                        v => return v,
                    }
                }
            })
            .await
        });
        client.join().unwrap();
        let _ = ip(&["link", "del", &name]);
        assert_eq!(result, Ok(1), "the host's TCP echo and UDP exchange failed");
    }
}
