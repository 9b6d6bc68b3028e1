//! The echo services (RFC 862): TCP (every byte read is written back until
//! the peer's FIN, then the connection is closed) and UDP (every datagram
//! is sent back to its sender), with counters and a journal line per TCP
//! connection.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use ringlet::executor::{spawn, Duration, Instant};
use ringlet_net::{
    IpEndpoint, ReadError, TcpListener, TcpStream, UdpRecvError, UdpSocket, WriteError,
};

use crate::journal::Journal;

/// Bytes read (and written back) at a time per TCP connection.
const TCP_CHUNK_BYTES: usize = 16 * 1024;
/// A TCP connection whose reads or writes make no progress for this long
/// is closed (its socket goes back to the pool).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest UDP datagram echoed (one Ethernet frame without IP
/// fragmentation carries at most 1472 bytes of UDP payload).
const UDP_DATAGRAM_BYTES_MAX: usize = 1472;

/// What the services did, for the shutdown summary.
#[derive(Debug, Default)]
pub struct Totals {
    tcp_connections: Cell<u64>,
    tcp_failed: Cell<u64>,
    tcp_open_max: Cell<u64>,
    tcp_open: Cell<u64>,
    tcp_bytes: Cell<u64>,
    udp_datagrams: Cell<u64>,
    udp_bytes: Cell<u64>,
    udp_errors: Cell<u64>,
    /// The task waiting in [`Totals::all_closed`].
    closed_waiter: RefCell<Option<Waker>>,
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().saturating_add(n));
}

impl Totals {
    /// One line: `tcp <N> connections (<F> failed, <M> open at most) <B>
    /// bytes, udp <D> datagrams <B> bytes (<E> errors), journal dropped <J>`.
    pub fn summary(&self, journal_dropped: u64) -> String {
        format!(
            "tcp {} connections ({} failed, {} open at most) {} bytes, \
             udp {} datagrams {} bytes ({} errors), journal dropped {}",
            self.tcp_connections.get(),
            self.tcp_failed.get(),
            self.tcp_open_max.get(),
            self.tcp_bytes.get(),
            self.udp_datagrams.get(),
            self.udp_bytes.get(),
            self.udp_errors.get(),
            journal_dropped
        )
    }

    fn opened(&self) {
        add(&self.tcp_connections, 1);
        add(&self.tcp_open, 1);
        if self.tcp_open.get() > self.tcp_open_max.get() {
            self.tcp_open_max.set(self.tcp_open.get());
        }
    }

    fn closed(&self, bytes: u64, failed: bool) {
        self.tcp_open.set(self.tcp_open.get().saturating_sub(1));
        add(&self.tcp_bytes, bytes);
        if failed {
            add(&self.tcp_failed, 1);
        }
        if self.tcp_open.get() == 0 {
            if let Some(w) = self.closed_waiter.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Resolves when no TCP connection is open (each has logged its line).
    ///
    /// # Cancellation
    ///
    /// Cancel-safe.
    pub async fn all_closed(&self) {
        poll_fn(|cx| {
            if self.tcp_open.get() == 0 {
                Poll::Ready(())
            } else {
                *self.closed_waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Why one TCP echo connection ended early.
#[derive(Debug)]
pub enum EchoError {
    /// Reading failed (reset, or no data for [`TCP_IDLE_TIMEOUT`]).
    Read(ReadError),
    /// Writing back (or the final close) failed.
    Write(WriteError),
}

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoError::Read(e) => write!(f, "read: {e}"),
            EchoError::Write(e) => write!(f, "write: {e}"),
        }
    }
}

/// Bytes per second as MiB/s with one decimal, e.g. `12.3`.
pub struct MibPerSec {
    /// Bytes moved.
    pub bytes: u64,
    /// In this long.
    pub took: Duration,
}

impl fmt::Display for MibPerSec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.took.as_micros().max(1);
        let tenths = u128::from(self.bytes) * 10 * 1_000_000 / us / (1 << 20);
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

/// Echoes one connection until the peer's FIN, then closes it. Returns
/// the bytes echoed, and the error if it ended early.
async fn echo(conn: &mut TcpStream, bytes: &mut u64) -> Result<(), EchoError> {
    let mut buf = vec![0u8; TCP_CHUNK_BYTES];
    loop {
        let n = conn.read(&mut buf).await.map_err(EchoError::Read)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await.map_err(EchoError::Write)?;
        *bytes += n as u64;
    }
}

async fn serve_connection(
    mut conn: TcpStream,
    peer: IpEndpoint,
    journal: Rc<Journal>,
    totals: Rc<Totals>,
) {
    let start = Instant::now();
    totals.opened();
    conn.set_nodelay(true);
    conn.set_read_timeout(Some(TCP_IDLE_TIMEOUT));
    conn.set_write_timeout(Some(TCP_IDLE_TIMEOUT));
    let mut bytes = 0;
    let result = match echo(&mut conn, &mut bytes).await {
        Ok(()) => conn.close().await.map_err(EchoError::Write),
        Err(e) => {
            conn.abort();
            Err(e)
        }
    };
    let took = start.elapsed();
    totals.closed(bytes, result.is_err());
    let rate = MibPerSec { bytes, took };
    journal.push(match result {
        Ok(()) => format!(
            "netecho: tcp {peer} closed: {bytes} bytes in {} ms ({rate} MiB/s)",
            took.as_millis()
        ),
        Err(e) => format!(
            "netecho: tcp {peer} failed: {e} after {bytes} bytes in {} ms",
            took.as_millis()
        ),
    });
}

/// Accepts connections for ever, each echoed by its own task.
pub async fn serve_tcp(mut listener: TcpListener, journal: Rc<Journal>, totals: Rc<Totals>) {
    loop {
        let (conn, peer) = listener.accept().await;
        spawn(serve_connection(
            conn,
            peer,
            journal.clone(),
            totals.clone(),
        ))
        .detach();
    }
}

/// Sends every datagram back to its sender, for ever.
pub async fn serve_udp(socket: UdpSocket, totals: Rc<Totals>) {
    let mut buf = vec![0u8; UDP_DATAGRAM_BYTES_MAX];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // Too large for the buffer: dropped by the stack.
            Err(UdpRecvError::Truncated) => {
                add(&totals.udp_errors, 1);
                continue;
            }
            Err(e) => {
                add(&totals.udp_errors, 1);
                log::warn!("netecho: udp: {e}");
                continue;
            }
        };
        match socket.send_to(&buf[..n], peer).await {
            Ok(()) => {
                add(&totals.udp_datagrams, 1);
                add(&totals.udp_bytes, n as u64);
            }
            Err(e) => {
                add(&totals.udp_errors, 1);
                log::warn!("netecho: udp to {peer}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rates_and_totals() {
        let r = MibPerSec {
            bytes: 3 << 20,
            took: Duration::from_millis(2000),
        };
        assert_eq!(format!("{r}"), "1.5");
        let zero = MibPerSec {
            bytes: 0,
            took: Duration::ZERO,
        };
        assert_eq!(format!("{zero}"), "0.0");

        let t = Totals::default();
        t.opened();
        t.opened();
        t.closed(10, false);
        t.opened();
        t.closed(5, true);
        t.closed(1, false);
        assert_eq!(
            t.summary(4),
            "tcp 3 connections (1 failed, 2 open at most) 16 bytes, \
             udp 0 datagrams 0 bytes (0 errors), journal dropped 4"
        );
    }
}
