//! The server: the accept loop and one task per connection, over
//! ringlet-net sockets, serving a tar store.
//!
//! # Accept loop
//!
//! [`Server::bind`] listens with a backlog of [`ServerConfig::backlog`]
//! pre-created sockets (the net stack's pool bounds them too). At most
//! [`ServerConfig::connections_max`] connections are served at once; while
//! that many are open the loop stops accepting, the backlog fills, and the
//! stack refuses further SYNs with a reset — nothing is queued without a
//! bound. Each accepted connection runs as its own task, so a slow or
//! stalled client never holds up another.
//!
//! # One connection
//!
//! ```text
//!   wait for a request head ── deadlines:
//!     no byte yet:  request_timeout after accept (first request), or
//!                   keepalive_timeout after the last response (idle);
//!                   the idle wait also ends at shutdown
//!     bytes came:   request_timeout after the first of them (absolute:
//!                   trickling bytes do not extend it — slowloris)
//!   respond (sans-IO core), then write the head and body:
//!     each write (a head, a chunk) bounded by write_timeout
//!     files stream from the disk in chunks of chunk_bytes; the first chunk
//!     is read before the head is sent, so a disk error is a 500
//!   log one access line; close if the response said so
//! ```
//!
//! A timed-out head, a write timeout and a failed disk read reset the
//! connection (its socket is freed at once); an idle timeout, the end of a
//! `Connection: close` exchange and shutdown close it gracefully.
//!
//! # Shutdown
//!
//! When the `shutdown` future given to [`Server::run`] resolves: the
//! listener is dropped (no more connections; SYNs are refused), idle
//! connections close, busy ones finish the response in hand (with
//! `Connection: close`); `run` returns once all are gone or after
//! [`ServerConfig::shutdown_grace`], whichever is first.

mod conn;

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::{Poll, Waker};

use futures::future::{select, Either};
use ringlet_executor::{spawn, timeout, Duration, Instant};
use ringlet_net::{BindError, Stack, TcpListener};
use ringlet_storage::tar::TarStore;
use ringlet_storage::BlockDevice;

use crate::access_log::{AccessLine, Admit, RateLimiter, LOG_BURST, LOG_LINES_PER_SEC};

/// The port httpd listens on unless the command line says `port=`.
pub const PORT_DEFAULT: u16 = 80;
/// Default [`ServerConfig::backlog`].
pub const BACKLOG_DEFAULT: usize = 64;
/// Default [`ServerConfig::connections_max`].
pub const CONNECTIONS_MAX_DEFAULT: usize = 128;
/// The largest [`ServerConfig::connections_max`] accepted.
pub const CONNECTIONS_MAX_LIMIT: usize = 1024;
/// Default [`ServerConfig::request_timeout`].
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default [`ServerConfig::keepalive_timeout`].
pub const KEEPALIVE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(15);
/// Default [`ServerConfig::write_timeout`].
pub const WRITE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);
/// Default [`ServerConfig::shutdown_grace`].
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(5);
/// Default [`ServerConfig::chunk_bytes`]: bytes of a file read from the
/// disk and written to the socket at a time.
pub const CHUNK_BYTES_DEFAULT: usize = 16 * 1024;
/// The largest [`ServerConfig::chunk_bytes`] accepted.
pub const CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// The server's limits and timeouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// TCP port.
    pub port: u16,
    /// Listening sockets kept ready (the listener's backlog).
    pub backlog: usize,
    /// Connections served at once.
    pub connections_max: usize,
    /// How long a request head may take to arrive: from accept for the
    /// first request, from its first byte for later ones.
    pub request_timeout: Duration,
    /// How long a connection may sit idle between requests.
    pub keepalive_timeout: Duration,
    /// How long one write (a head, a chunk) may take.
    pub write_timeout: Duration,
    /// How long shutdown waits for responses in flight.
    pub shutdown_grace: Duration,
    /// Bytes of a file read and written at a time.
    pub chunk_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: PORT_DEFAULT,
            backlog: BACKLOG_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            keepalive_timeout: KEEPALIVE_TIMEOUT_DEFAULT,
            write_timeout: WRITE_TIMEOUT_DEFAULT,
            shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
            chunk_bytes: CHUNK_BYTES_DEFAULT,
        }
    }
}

impl ServerConfig {
    /// The defaults, with what the command line sets: `port=N` (1..=65535),
    /// `conns=N` ([`connections_max`](Self::connections_max), 1..=
    /// [`CONNECTIONS_MAX_LIMIT`]) and `backlog=N` (1..=ringlet-net's
    /// `BACKLOG_MAX`). Other words are left to their owners.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a value out of range, not a number, or a key
    /// given twice.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringlet_httpd::server::{ConfigError, ServerConfig};
    /// let c = ServerConfig::from_cmdline("ip=10.0.0.2/24 port=8080 conns=32").unwrap();
    /// assert_eq!((c.port, c.connections_max), (8080, 32));
    /// assert_eq!(ServerConfig::from_cmdline("").unwrap().port, 80);
    /// assert_eq!(ServerConfig::from_cmdline("port=0"), Err(ConfigError::Port));
    /// ```
    pub fn from_cmdline(cmdline: &str) -> Result<ServerConfig, ConfigError> {
        let mut config = ServerConfig::default();
        let (mut port, mut conns, mut backlog) = (false, false, false);
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let (seen, error, max) = match key {
                "port" => (&mut port, ConfigError::Port, usize::from(u16::MAX)),
                "conns" => (
                    &mut conns,
                    ConfigError::ConnectionsMax,
                    CONNECTIONS_MAX_LIMIT,
                ),
                "backlog" => (
                    &mut backlog,
                    ConfigError::Backlog,
                    ringlet_net::tcp::BACKLOG_MAX,
                ),
                _ => continue,
            };
            if core::mem::replace(seen, true) {
                return Err(error);
            }
            let n = value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(error)?;
            match key {
                "port" => config.port = n as u16,
                "conns" => config.connections_max = n,
                _ => config.backlog = n,
            }
        }
        Ok(config)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] names the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Err(ConfigError::Port);
        }
        if self.backlog == 0 || self.backlog > ringlet_net::tcp::BACKLOG_MAX {
            return Err(ConfigError::Backlog);
        }
        if self.connections_max == 0 || self.connections_max > CONNECTIONS_MAX_LIMIT {
            return Err(ConfigError::ConnectionsMax);
        }
        if self.chunk_bytes == 0 || self.chunk_bytes > CHUNK_BYTES_MAX {
            return Err(ConfigError::ChunkBytes);
        }
        Ok(())
    }
}

/// A [`ServerConfig`] that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `port` is 0 (or `port=` on the command line is not 1..=65535, or
    /// appears twice).
    Port,
    /// `backlog` is 0 or above ringlet-net's `BACKLOG_MAX` (or `backlog=`
    /// is not such a number, or appears twice).
    Backlog,
    /// `connections_max` is 0 or above [`CONNECTIONS_MAX_LIMIT`] (or
    /// `conns=` is not such a number, or appears twice).
    ConnectionsMax,
    /// `chunk_bytes` is 0 or above [`CHUNK_BYTES_MAX`].
    ChunkBytes,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::Port => "port must be a number from 1 to 65535, given once",
            ConfigError::Backlog => "backlog must be from 1 to BACKLOG_MAX, given once",
            ConfigError::ConnectionsMax => {
                "connections_max (conns=) must be from 1 to CONNECTIONS_MAX_LIMIT, given once"
            }
            ConfigError::ChunkBytes => "chunk_bytes must be from 1 to CHUNK_BYTES_MAX",
        })
    }
}

impl core::error::Error for ConfigError {}

/// Why [`Server::bind`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is out of range.
    Config(ConfigError),
    /// The port could not be bound.
    Bind(BindError),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "httpd configuration: {e}"),
            ServeError::Bind(e) => write!(f, "httpd cannot listen: {e}"),
        }
    }
}

impl core::error::Error for ServeError {}

/// Counters of a server's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// The most connections open at once.
    pub open_max: u64,
    /// Responses sent in full.
    pub responses: u64,
    /// Responses by class: 2xx, 3xx, 4xx, 5xx.
    pub by_class: [u64; 4],
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Connections closed because a request head did not arrive in time.
    pub request_timeouts: u64,
    /// Connections closed after an idle keep-alive wait.
    pub idle_timeouts: u64,
    /// Connections reset because a write did not finish in time.
    pub write_timeouts: u64,
    /// Connections that ended with a socket error (reset by the peer).
    pub socket_errors: u64,
    /// Disk reads that failed (500 before a response started, else a reset).
    pub disk_errors: u64,
    /// Access-log lines dropped by the rate limit.
    pub log_suppressed: u64,
    /// Connections still open when shutdown's grace ran out.
    pub abandoned_at_shutdown: u64,
}

/// State shared by the accept loop and the connection tasks.
struct Shared {
    config: ServerConfig,
    stats: Cell<ServerStats>,
    closing: Cell<bool>,
    /// Idle connections waiting for bytes, to be woken at shutdown; keyed by
    /// connection id (at most `connections_max` entries).
    idle_wakers: RefCell<BTreeMap<u64, Waker>>,
    /// The accept loop, waiting for a free connection slot or for the last
    /// connection to end.
    loop_waker: RefCell<Option<Waker>>,
    log: RefCell<RateLimiter>,
    started: Instant,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut ServerStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Whether shutdown began; if not and `waker` is given, it is woken
    /// when it does.
    fn closing(&self, id: u64, waker: Option<&Waker>) -> bool {
        if self.closing.get() {
            return true;
        }
        if let Some(w) = waker {
            let mut map = self.idle_wakers.borrow_mut();
            match map.get_mut(&id) {
                Some(old) if old.will_wake(w) => {}
                _ => {
                    map.insert(id, w.clone());
                }
            }
        }
        false
    }

    fn begin_close(&self) {
        self.closing.set(true);
        let wakers = core::mem::take(&mut *self.idle_wakers.borrow_mut());
        for (_, w) in wakers {
            w.wake();
        }
    }

    fn connection_ended(&self, id: u64) {
        self.idle_wakers.borrow_mut().remove(&id);
        self.update(|s| s.open -= 1);
        if let Some(w) = self.loop_waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// One access-log line, through the rate limit.
    fn access(&self, line: AccessLine<'_>) {
        let now_us = Instant::now().duration_since(self.started).as_micros() as u64;
        match self.log.borrow_mut().admit(now_us) {
            Admit::Log { suppressed } => {
                if suppressed > 0 {
                    log::info!("httpd: {suppressed} access-log lines suppressed");
                }
                log::info!("{line}");
            }
            Admit::Suppress => self.update(|s| s.log_suppressed += 1),
        }
    }
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server<D> {
    listener: TcpListener,
    store: Rc<TarStore<D>>,
    shared: Rc<Shared>,
}

impl<D> fmt::Debug for Server<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.shared.config)
            .field("stats", &self.shared.stats.get())
            .finish_non_exhaustive()
    }
}

/// A handle to read a server's counters while it runs.
#[derive(Clone)]
pub struct StatsHandle(Rc<Shared>);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> ServerStats {
        self.0.stats.get()
    }
}

impl fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl<D: BlockDevice + 'static> Server<D> {
    /// Listens on `config.port` of `stack`, serving `store`. Call it in the
    /// executor (it reads the clock).
    ///
    /// # Errors
    ///
    /// [`ServeError`]: a bad configuration, or the port cannot be bound.
    pub fn bind(
        stack: &Stack,
        store: Rc<TarStore<D>>,
        config: ServerConfig,
    ) -> Result<Server<D>, ServeError> {
        config.validate().map_err(ServeError::Config)?;
        let listener =
            TcpListener::bind(stack, config.port, config.backlog).map_err(ServeError::Bind)?;
        let now = Instant::now();
        Ok(Server {
            listener,
            store,
            shared: Rc::new(Shared {
                config,
                stats: Cell::new(ServerStats::default()),
                closing: Cell::new(false),
                idle_wakers: RefCell::new(BTreeMap::new()),
                loop_waker: RefCell::new(None),
                log: RefCell::new(RateLimiter::new(LOG_BURST, LOG_LINES_PER_SEC, 0)),
                started: now,
            }),
        })
    }

    /// A handle to the counters.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully (see
    /// the module docs); returns the final counters.
    ///
    /// # Cancellation
    ///
    /// Dropping the future drops the listener; connection tasks already
    /// spawned run on.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ServerStats {
        let Server {
            mut listener,
            store,
            shared,
        } = self;
        let mut shutdown = pin!(shutdown);
        let mut next_id = 0u64;
        loop {
            // A free connection slot (or shutdown).
            let slot = poll_fn(|cx| {
                if shared.stats.get().open < shared.config.connections_max as u64 {
                    return Poll::Ready(true);
                }
                *shared.loop_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            });
            let accepted = match select(pin!(slot), shutdown.as_mut()).await {
                Either::Left(_) => match select(pin!(listener.accept()), shutdown.as_mut()).await {
                    Either::Left((accepted, _)) => Some(accepted),
                    Either::Right(_) => None,
                },
                Either::Right(_) => None,
            };
            let Some((stream, _peer)) = accepted else {
                break;
            };
            let id = next_id;
            next_id += 1;
            shared.update(|s| {
                s.accepted += 1;
                s.open += 1;
                s.open_max = s.open_max.max(s.open);
            });
            spawn(conn::serve(stream, id, store.clone(), shared.clone())).detach();
        }
        drop(listener);
        let open = shared.stats.get().open;
        log::info!("httpd: shutting down, {open} connections open");
        shared.begin_close();
        let drained = poll_fn(|cx| {
            if shared.stats.get().open == 0 {
                return Poll::Ready(());
            }
            *shared.loop_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        });
        if timeout(shared.config.shutdown_grace, drained)
            .await
            .is_err()
        {
            let left = shared.stats.get().open;
            shared.update(|s| s.abandoned_at_shutdown = left);
            log::warn!("httpd: {left} connections still open after the shutdown grace");
        }
        let suppressed = shared.log.borrow().suppressed();
        if suppressed > 0 {
            log::info!("httpd: {suppressed} access-log lines suppressed");
        }
        shared.stats.get()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn config_from_cmdline() {
        let c = ServerConfig::from_cmdline("ip=dhcp port=8080 loglevel=debug").unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(
            c,
            ServerConfig {
                port: 8080,
                ..ServerConfig::default()
            }
        );
        for bad in [
            "port=",
            "port=x",
            "port=65536",
            "port=-1",
            "port=0",
            "port=80 port=81",
        ] {
            assert_eq!(
                ServerConfig::from_cmdline(bad),
                Err(ConfigError::Port),
                "{bad}"
            );
        }
        // `port` without `=` or another key is someone else's word.
        assert_eq!(
            ServerConfig::from_cmdline("port sport=1 ports=2")
                .unwrap()
                .port,
            80
        );
    }

    #[test]
    fn config_validation() {
        let ok = ServerConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = |f: fn(&mut ServerConfig)| {
            let mut c = ServerConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.port = 0), ConfigError::Port);
        assert_eq!(bad(|c| c.backlog = 0), ConfigError::Backlog);
        assert_eq!(bad(|c| c.backlog = 100_000), ConfigError::Backlog);
        assert_eq!(bad(|c| c.connections_max = 0), ConfigError::ConnectionsMax);
        assert_eq!(bad(|c| c.chunk_bytes = 0), ConfigError::ChunkBytes);
        assert_eq!(
            bad(|c| c.chunk_bytes = CHUNK_BYTES_MAX + 1),
            ConfigError::ChunkBytes
        );
    }
}
