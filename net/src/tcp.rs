//! TCP sockets: [`TcpListener`] with a real backlog, and [`TcpStream`].
//!
//! # Backlog
//!
//! A listener keeps `backlog` smoltcp sockets listening on its port. A SYN
//! takes one of them (SYN-RECEIVED, then ESTABLISHED); [`TcpListener::accept`]
//! hands out an established one and creates a fresh listening socket in its
//! place. While every backlog socket is busy, or the stack's socket pool
//! ([`StackConfig::sockets_max`](crate::StackConfig::sockets_max)) is
//! empty, a new SYN finds no listening socket and smoltcp answers with a
//! reset: the connection is refused, cleanly, and nothing is queued. The
//! backlog refills (on the next `accept`) as sockets are freed.
//!
//! # Closing
//!
//! - [`TcpStream::close`] (or `AsyncWrite::poll_close`, or
//!   [`shutdown`](TcpStream::shutdown)) queues a FIN *after* the unsent data
//!   and waits until the peer has acknowledged both.
//! - Dropping a stream does the same in the background: the socket becomes
//!   an orphan of the runner, which discards what the peer still sends (a
//!   lingering close), frees it once closed, and resets it if it is not
//!   closed within [`StackConfig::close_linger`](crate::StackConfig::close_linger).
//! - [`TcpStream::abort`] sends a reset at once; unsent data is discarded.
//!
//! # Timeouts
//!
//! [`TcpStream::set_read_timeout`] and [`set_write_timeout`](TcpStream::set_write_timeout)
//! bound how long one read, or one write/close, may wait without progress
//! (the `TimedOut` errors); [`set_timeout`](TcpStream::set_timeout) is
//! smoltcp's user timeout (the connection is dropped when the peer stops
//! acknowledging). Any operation can also be bounded from outside with the
//! executor's `timeout`, which drops it on expiry; every operation here is
//! cancel-safe (a dropped read has read nothing; a dropped write has queued
//! either nothing or what it reported).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use ringlet_executor::{sleep, sleep_until, Instant, Sleep};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use crate::error::{BindError, ConnectError, ReadError, WriteError};
use crate::stack::{to_smol_duration, Stack};

/// The largest backlog a listener accepts (listening sockets held at once).
pub const BACKLOG_MAX: usize = 1024;

/// A TCP socket listening on a port, with a backlog of listening sockets.
pub struct TcpListener {
    stack: Stack,
    port: u16,
    backlog: Vec<SocketHandle>,
    backlog_max: usize,
}

impl TcpListener {
    /// Listens on `port` with `backlog` listening sockets (fewer if the pool
    /// has not that many free; the rest are created as sockets free up).
    ///
    /// # Errors
    ///
    /// [`BindError::InvalidArgument`] for port 0 or a backlog of 0 or over
    /// [`BACKLOG_MAX`]; [`BindError::PortInUse`] if another listener has the
    /// port; [`BindError::NoSockets`] if not even one socket is free.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringlet_executor::{spawn, Executor, StdPlatform};
    /// use ringlet_net::cable::{Cable, CableConfig};
    /// use ringlet_net::{BindError, IpConfig, Stack, StackConfig, TcpListener};
    ///
    /// Executor::new(StdPlatform::new()).block_on(async {
    ///     let (dev, _peer) = Cable::pair(CableConfig::default());
    ///     let ip = IpConfig::from_cmdline("ip=10.0.0.2/24").unwrap();
    ///     let (stack, runner) = Stack::new(dev, StackConfig::new(ip)).unwrap();
    ///     spawn(runner.run()).detach();
    ///     let listener = TcpListener::bind(&stack, 80, 4).unwrap();
    ///     assert_eq!(listener.backlog_len(), 4);
    ///     assert_eq!(TcpListener::bind(&stack, 80, 4).unwrap_err(), BindError::PortInUse);
    /// });
    /// ```
    pub fn bind(stack: &Stack, port: u16, backlog: usize) -> Result<TcpListener, BindError> {
        if port == 0 || backlog == 0 || backlog > BACKLOG_MAX {
            return Err(BindError::InvalidArgument);
        }
        let mut core = stack.shared.core();
        if core.listen_ports.contains(&port) {
            return Err(BindError::PortInUse);
        }
        core.listen_ports.push(port);
        drop(core);
        let mut listener = TcpListener {
            stack: stack.clone(),
            port,
            backlog: Vec::with_capacity(backlog),
            backlog_max: backlog,
        };
        listener.refill();
        if listener.backlog.is_empty() {
            // Drop removes the port again.
            return Err(BindError::NoSockets);
        }
        Ok(listener)
    }

    /// Creates listening sockets until the backlog is full or the pool empty.
    fn refill(&mut self) {
        let mut core = self.stack.shared.core();
        while self.backlog.len() < self.backlog_max {
            let Ok(handle) = core.add_tcp() else { break };
            // A fresh socket on a non-zero port cannot fail to listen.
            let listened = core.tcp(handle).listen(self.port);
            debug_assert!(listened.is_ok());
            self.backlog.push(handle);
        }
    }

    /// The port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Listening (or handshaking, or established and not yet accepted)
    /// sockets held now.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Waits for an established connection; returns it and the peer's
    /// address.
    ///
    /// While the pool is empty it waits for a socket to be freed
    /// (connections meanwhile are refused with a reset).
    ///
    /// # Cancellation
    ///
    /// Cancel-safe: a connection not returned stays in the backlog.
    pub async fn accept(&mut self) -> (TcpStream, IpEndpoint) {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The poll form of [`accept`](TcpListener::accept).
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<(TcpStream, IpEndpoint)> {
        self.refill();
        let mut core = self.stack.shared.core();
        let mut found = None;
        for (i, &handle) in self.backlog.iter().enumerate() {
            let sock = core.tcp(handle);
            match sock.state() {
                State::Listen | State::SynReceived => {}
                State::Closed | State::TimeWait => {
                    // Reset during the handshake: listen again.
                    sock.abort();
                    let _ = sock.listen(self.port);
                }
                _ => {
                    if let Some(remote) = sock.remote_endpoint() {
                        found = Some((i, remote));
                        break;
                    }
                }
            }
        }
        if let Some((i, remote)) = found {
            let handle = self.backlog.remove(i);
            drop(core);
            self.refill();
            return Poll::Ready((TcpStream::from_handle(&self.stack, handle), remote));
        }
        if self.backlog.is_empty() {
            core.wait_free(cx.waker());
        }
        for &handle in &self.backlog {
            core.tcp(handle).register_recv_waker(cx.waker());
        }
        Poll::Pending
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut core = self.stack.shared.core();
        core.listen_ports.retain(|&p| p != self.port);
        let mut reset = false;
        for handle in self.backlog.drain(..) {
            let sock = core.tcp(handle);
            if sock.state() == State::Listen {
                core.remove(handle);
            } else {
                // Handshaking or established, never accepted: reset it.
                sock.abort();
                core.orphan(handle, true);
                reset = true;
            }
        }
        drop(core);
        if reset {
            self.stack.shared.touch();
        }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("port", &self.port)
            .field("backlog", &self.backlog.len())
            .field("backlog_max", &self.backlog_max)
            .finish()
    }
}

/// The socket a stream and its halves share; dropping the last handle
/// closes it in the background (see the module doc).
struct Conn {
    stack: Stack,
    handle: SocketHandle,
    /// The write half was shut down by us.
    write_shut: Cell<bool>,
}

impl Conn {
    fn with<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut core = self.stack.shared.core();
        f(core.tcp(self.handle))
    }

    fn poll_read(
        &self,
        timer: &mut OpTimer,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, ReadError>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let r = self.with(|s| match s.recv_slice(buf) {
            Ok(0) => {
                s.register_recv_waker(cx.waker());
                None
            }
            Ok(n) => Some(Ok(n)),
            Err(tcp::RecvError::Finished) => Some(Ok(0)),
            Err(tcp::RecvError::InvalidState) => Some(Err(ReadError::Reset)),
        });
        match r {
            Some(Ok(n)) => {
                timer.progress();
                if n > 0 {
                    // The window opened: the runner may owe the peer an update.
                    self.stack.shared.touch();
                }
                Poll::Ready(Ok(n))
            }
            Some(Err(e)) => Poll::Ready(Err(e)),
            None if timer.expired(cx) => Poll::Ready(Err(ReadError::TimedOut)),
            None => Poll::Pending,
        }
    }

    fn poll_write(
        &self,
        timer: &mut OpTimer,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        if self.write_shut.get() {
            return Poll::Ready(Err(WriteError::Closed));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let r = self.with(|s| match s.send_slice(buf) {
            Ok(0) => {
                s.register_send_waker(cx.waker());
                Ok(None)
            }
            Ok(n) => Ok(Some(n)),
            Err(tcp::SendError::InvalidState) => Err(WriteError::Reset),
        });
        match r {
            Ok(Some(n)) => {
                timer.progress();
                self.stack.shared.touch();
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(e)),
            Ok(None) if timer.expired(cx) => Poll::Ready(Err(WriteError::TimedOut)),
            Ok(None) => Poll::Pending,
        }
    }

    fn poll_flush(&self) -> Poll<Result<(), WriteError>> {
        let state = self.with(|s| s.state());
        Poll::Ready(match state {
            State::Closed if !self.write_shut.get() => Err(WriteError::Reset),
            _ => Ok(()),
        })
    }

    /// Queues the FIN (once) and waits until the peer acknowledged it and
    /// every byte before it.
    fn poll_shutdown(
        &self,
        timer: &mut OpTimer,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WriteError>> {
        if !self.write_shut.replace(true) {
            let was_closed = {
                let mut core = self.stack.shared.core();
                let s = core.tcp(self.handle);
                let closed = s.state() == State::Closed;
                s.close();
                if !closed {
                    core.watch_fin(self.handle);
                }
                closed
            };
            if was_closed {
                return Poll::Ready(Err(WriteError::Reset));
            }
            self.stack.shared.touch();
        }
        let r = self.with(|s| match s.state() {
            State::FinWait2 | State::TimeWait => Some(Ok(())),
            State::Closed if s.send_queue() == 0 => Some(Ok(())),
            State::Closed => Some(Err(WriteError::Reset)),
            _ => {
                s.register_send_waker(cx.waker());
                None
            }
        });
        match r {
            Some(r) => {
                timer.progress();
                Poll::Ready(r)
            }
            None if timer.expired(cx) => Poll::Ready(Err(WriteError::TimedOut)),
            None => Poll::Pending,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut core = self.stack.shared.core();
        let sock = core.tcp(self.handle);
        match sock.state() {
            // Nothing to tell the peer: no connection, or no answer yet to
            // our SYN.
            State::Closed if sock.remote_endpoint().is_none() => core.remove(self.handle),
            State::SynSent => core.remove(self.handle),
            State::Closed => core.orphan(self.handle, true),
            _ => {
                sock.close();
                core.watch_fin(self.handle);
                core.orphan(self.handle, false);
            }
        }
        drop(core);
        self.stack.shared.touch();
    }
}

/// Bounds how long one operation may wait without progress.
#[derive(Default)]
struct OpTimer {
    timeout: Option<Duration>,
    sleep: Option<Sleep>,
}

impl OpTimer {
    fn progress(&mut self) {
        self.sleep = None;
    }

    /// Arms the timer on the first pending poll; true once it has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        let sleep = self.sleep.get_or_insert_with(|| sleep(timeout));
        if Pin::new(sleep).poll(cx).is_ready() {
            self.sleep = None;
            true
        } else {
            false
        }
    }
}

impl fmt::Debug for OpTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpTimer")
            .field("timeout", &self.timeout)
            .field("armed", &self.sleep.is_some())
            .finish()
    }
}

/// A TCP connection.
///
/// Reads and writes go through the socket's smoltcp buffers
/// ([`StackConfig::tcp_rx_buffer_bytes`](crate::StackConfig::tcp_rx_buffer_bytes)
/// and `tcp_tx_buffer_bytes`); a write returns as soon as its bytes are in
/// the transmit buffer. See the [module doc](self) for closing and timeouts.
pub struct TcpStream {
    conn: Rc<Conn>,
    read: OpTimer,
    write: OpTimer,
}

impl TcpStream {
    fn from_handle(stack: &Stack, handle: SocketHandle) -> TcpStream {
        TcpStream {
            conn: Rc::new(Conn {
                stack: stack.clone(),
                handle,
                write_shut: Cell::new(false),
            }),
            read: OpTimer::default(),
            write: OpTimer::default(),
        }
    }

    /// Connects to `remote` from an ephemeral port.
    ///
    /// # Errors
    ///
    /// See [`ConnectError`]: no address yet, unaddressable, no free socket,
    /// refused (reset), or no answer within
    /// [`StackConfig::connect_timeout`](crate::StackConfig::connect_timeout).
    ///
    /// # Cancellation
    ///
    /// Dropping the future resets the half-open connection.
    pub async fn connect(
        stack: &Stack,
        remote: impl Into<IpEndpoint>,
    ) -> Result<TcpStream, ConnectError> {
        let remote = remote.into();
        if remote.port == 0 || remote.addr.is_unspecified() {
            return Err(ConnectError::Unaddressable);
        }
        let handle = {
            let mut core = stack.shared.core();
            if core.iface.ipv4_addr().is_none() {
                return Err(ConnectError::NotConfigured);
            }
            let port = core.ephemeral_port().ok_or(ConnectError::NoSockets)?;
            let handle = core.add_tcp().map_err(|_| ConnectError::NoSockets)?;
            let core = &mut *core;
            let sock = core.sockets.get_mut::<tcp::Socket>(handle);
            if sock
                .connect(core.iface.context(), remote, IpListenEndpoint::from(port))
                .is_err()
            {
                core.remove(handle);
                return Err(ConnectError::Unaddressable);
            }
            handle
        };
        stack.shared.touch();
        // From here the stream's drop cleans up (resets a half-open socket).
        let stream = TcpStream::from_handle(stack, handle);
        let timeout = stack.shared.core().config.connect_timeout;
        let mut deadline = sleep_until(Instant::now() + timeout);
        poll_fn(|cx| {
            let state = stream.conn.with(|s| {
                let state = s.state();
                if matches!(state, State::SynSent | State::SynReceived) {
                    s.register_send_waker(cx.waker());
                }
                state
            });
            match state {
                State::SynSent | State::SynReceived => {
                    if Pin::new(&mut deadline).poll(cx).is_ready() {
                        // Dropping the stream frees the socket (a SYN-SENT
                        // socket at once, a SYN-RECEIVED one with a reset).
                        stream.conn.with(|s| {
                            if s.state() == State::SynReceived {
                                s.abort();
                            }
                        });
                        Poll::Ready(Err(ConnectError::TimedOut))
                    } else {
                        Poll::Pending
                    }
                }
                State::Closed | State::TimeWait => Poll::Ready(Err(ConnectError::Refused)),
                _ => Poll::Ready(Ok(())),
            }
        })
        .await?;
        Ok(stream)
    }

    /// Reads into `buf`; `Ok(0)` at the end of the stream (the peer's FIN)
    /// or for an empty `buf`.
    ///
    /// # Errors
    ///
    /// [`ReadError::Reset`], or [`ReadError::TimedOut`] after the read
    /// timeout.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Writes some of `buf`; returns how many bytes were queued.
    ///
    /// # Errors
    ///
    /// [`WriteError`]: reset, write half closed, timed out.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    ///
    /// As [`write`](TcpStream::write); bytes before the error were queued.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), WriteError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Queues the FIN after the unsent data and waits until the peer has
    /// acknowledged everything. Reading stays possible.
    ///
    /// # Errors
    ///
    /// [`WriteError::Reset`] if the connection was reset before all data
    /// was acknowledged; [`WriteError::TimedOut`] after the write timeout.
    pub async fn shutdown(&mut self) -> Result<(), WriteError> {
        poll_fn(|cx| self.conn.poll_shutdown(&mut self.write, cx)).await
    }

    /// [`shutdown`](TcpStream::shutdown), then drops the stream.
    ///
    /// # Errors
    ///
    /// As [`shutdown`](TcpStream::shutdown).
    pub async fn close(mut self) -> Result<(), WriteError> {
        self.shutdown().await
    }

    /// Resets the connection at once (RST); unsent and unread data is
    /// discarded.
    pub fn abort(self) {
        self.conn.with(|s| s.abort());
        // Drop hands the socket to the runner, which sends the RST.
    }

    /// The poll form of [`read`](TcpStream::read).
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, ReadError>> {
        self.conn.poll_read(&mut self.read, cx, buf)
    }

    /// The poll form of [`write`](TcpStream::write).
    pub fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        self.conn.poll_write(&mut self.write, cx, buf)
    }

    /// Succeeds unless the connection was reset: a write hands its bytes to
    /// the stack at once, so there is nothing to wait for (use
    /// [`shutdown`](TcpStream::shutdown) to wait for the peer's
    /// acknowledgement).
    ///
    /// # Errors
    ///
    /// [`WriteError::Reset`].
    pub fn flush(&mut self) -> Result<(), WriteError> {
        match self.conn.poll_flush() {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(()),
        }
    }

    /// The poll form of [`shutdown`](TcpStream::shutdown).
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteError>> {
        self.conn.poll_shutdown(&mut self.write, cx)
    }

    /// Splits into a read half and a write half that can be used from two
    /// tasks at once. The connection closes (as on drop) when both are gone.
    pub fn split(self) -> (TcpReader, TcpWriter) {
        (
            TcpReader {
                conn: self.conn.clone(),
                timer: self.read,
            },
            TcpWriter {
                conn: self.conn,
                timer: self.write,
            },
        )
    }

    /// Disables (`true`) or enables Nagle's algorithm (on by default).
    pub fn set_nodelay(&self, nodelay: bool) {
        self.conn.with(|s| s.set_nagle_enabled(!nodelay));
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self) -> bool {
        self.conn.with(|s| !s.nagle_enabled())
    }

    /// Sends keep-alive probes after `interval` of silence (`None`: off,
    /// the default). A peer that stops answering is then dropped by
    /// [`set_timeout`](TcpStream::set_timeout)'s timeout.
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.conn
            .with(|s| s.set_keep_alive(interval.map(to_smol_duration)));
        self.conn.stack.shared.touch();
    }

    /// smoltcp's user timeout: the connection is dropped (reads and writes
    /// then fail with `Reset`) when sent data or keep-alives go
    /// unacknowledged this long. `None` (the default): never.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.conn
            .with(|s| s.set_timeout(timeout.map(to_smol_duration)));
    }

    /// How long one read may wait for data (`None`, the default: forever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read.timeout = timeout;
        self.read.sleep = None;
    }

    /// How long one write, or a shutdown, may wait without progress.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write.timeout = timeout;
        self.write.sleep = None;
    }

    /// The peer's address (`None` once closed).
    pub fn peer_addr(&self) -> Option<IpEndpoint> {
        self.conn.with(|s| s.remote_endpoint())
    }

    /// Our address (`None` once closed).
    pub fn local_addr(&self) -> Option<IpEndpoint> {
        self.conn.with(|s| s.local_endpoint())
    }

    /// The smoltcp state (for diagnostics and tests).
    pub fn state(&self) -> State {
        self.conn.with(|s| s.state())
    }

    /// Bytes queued for sending and not yet acknowledged.
    pub fn send_queue(&self) -> usize {
        self.conn.with(|s| s.send_queue())
    }

    /// Bytes received and not yet read.
    pub fn recv_queue(&self) -> usize {
        self.conn.with(|s| s.recv_queue())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("handle", &self.conn.handle)
            .field("write_shut", &self.conn.write_shut.get())
            .finish_non_exhaustive()
    }
}

/// The read half of a [`TcpStream`] (from [`TcpStream::split`]).
pub struct TcpReader {
    conn: Rc<Conn>,
    timer: OpTimer,
}

impl TcpReader {
    /// As [`TcpStream::read`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::read`].
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// As [`TcpStream::poll_read`].
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, ReadError>> {
        self.conn.poll_read(&mut self.timer, cx, buf)
    }

    /// As [`TcpStream::set_read_timeout`].
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timer.timeout = timeout;
        self.timer.sleep = None;
    }
}

impl fmt::Debug for TcpReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpReader")
            .field("handle", &self.conn.handle)
            .finish_non_exhaustive()
    }
}

/// The write half of a [`TcpStream`] (from [`TcpStream::split`]).
pub struct TcpWriter {
    conn: Rc<Conn>,
    timer: OpTimer,
}

impl TcpWriter {
    /// As [`TcpStream::write`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::write`].
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    /// As [`TcpStream::write_all`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::write_all`].
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), WriteError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// As [`TcpStream::shutdown`].
    ///
    /// # Errors
    ///
    /// As [`TcpStream::shutdown`].
    pub async fn shutdown(&mut self) -> Result<(), WriteError> {
        poll_fn(|cx| self.conn.poll_shutdown(&mut self.timer, cx)).await
    }

    /// As [`TcpStream::poll_write`].
    pub fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        self.conn.poll_write(&mut self.timer, cx, buf)
    }

    /// As [`TcpStream::set_write_timeout`].
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timer.timeout = timeout;
        self.timer.sleep = None;
    }
}

impl fmt::Debug for TcpWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpWriter")
            .field("handle", &self.conn.handle)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "std")]
mod futures_io {
    use super::*;
    use futures::io::{AsyncRead, AsyncWrite};
    use std::io;

    impl AsyncRead for TcpStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            TcpStream::poll_read(self.get_mut(), cx, buf).map_err(io::Error::from)
        }
    }

    impl AsyncWrite for TcpStream {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            TcpStream::poll_write(self.get_mut(), cx, buf).map_err(io::Error::from)
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.conn.poll_flush().map_err(io::Error::from)
        }
        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            TcpStream::poll_shutdown(self.get_mut(), cx).map_err(io::Error::from)
        }
    }

    impl AsyncRead for TcpReader {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            TcpReader::poll_read(self.get_mut(), cx, buf).map_err(io::Error::from)
        }
    }

    impl AsyncWrite for TcpWriter {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            TcpWriter::poll_write(self.get_mut(), cx, buf).map_err(io::Error::from)
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.conn.poll_flush().map_err(io::Error::from)
        }
        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.conn
                .poll_shutdown(&mut this.timer, cx)
                .map_err(io::Error::from)
        }
    }
}
