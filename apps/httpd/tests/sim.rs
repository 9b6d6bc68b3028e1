//! httpd served to a client stack, deterministically on the software Xen's
//! virtual time: two ringlet-net stacks joined by an in-memory cable, the
//! site a tar image on a `MemDevice`. Timeouts of seconds pass instantly;
//! a hang is the sim's stall panic, never a stuck test.
//!
//! `RINGLET_SEED=N cargo test -p ringlet-httpd --test sim` replays one seed
//! (the seed feeds the stacks' initial sequence numbers and ports).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use ringlet_executor::{sleep, spawn, Duration, Executor, Instant};
use ringlet_httpd::pack::{demo_big_file, pack_files};
use ringlet_httpd::server::{Server, ServerConfig, ServerStats, StatsHandle};
use ringlet_net::cable::{Cable, CableConfig};
use ringlet_net::{IpConfig, Ipv4Address, Stack, StackConfig, TcpStream};
use ringlet_storage::tar::TarStore;
use ringlet_storage::{Fault, FaultKind, FaultOn, MemDevice};
use ringlet_xen::sim::{SimConfig, SimXen};

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 0, 3);
const PORT: u16 = 80;
const MTIME: u64 = 1_700_000_000;
const INDEX: &[u8] =
    b"<!doctype html><title>ringlet</title><link rel=stylesheet href=style.css><h1>hello</h1>\n";
const STYLE: &[u8] = b"body { font-family: sans-serif; }\n";
const DOCS: &[u8] = b"<p>docs</p>\n";
const LOGO: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

fn seed() -> u64 {
    SimConfig::seed_from_env().unwrap_or(7)
}

fn big() -> Vec<u8> {
    demo_big_file()
}

fn image() -> Vec<u8> {
    let big = big();
    pack_files(&[
        ("index.html", INDEX, MTIME),
        ("style.css", STYLE, MTIME),
        ("big.bin", &big, MTIME),
        ("docs/index.html", DOCS, MTIME),
        ("img/logo.png", LOGO, MTIME),
        ("empty.txt", b"", MTIME),
    ])
    .unwrap()
}

/// Resolves once [`Trigger::fire`] was called.
#[derive(Clone, Default)]
struct Trigger(Rc<(Cell<bool>, RefCell<Option<Waker>>)>);

impl Trigger {
    fn fire(&self) {
        self.0 .0.set(true);
        if let Some(w) = self.0 .1.borrow_mut().take() {
            w.wake();
        }
    }

    async fn wait(self) {
        poll_fn(|cx| {
            if self.0 .0.get() {
                return Poll::Ready(());
            }
            *self.0 .1.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

struct World {
    _sim: SimXen,
    ex: Executor,
    client: Stack,
    store: Rc<TarStore<MemDevice>>,
    stats: StatsHandle,
    stop: Trigger,
    server: Option<ringlet_executor::JoinHandle<ServerStats>>,
}

fn stack_config(addr: Ipv4Address, seed: u64) -> StackConfig {
    let ip = IpConfig::from_cmdline(&format!("ip={addr}/24")).unwrap();
    StackConfig::new(ip)
        .random_seed(seed ^ u64::from(addr.to_bits()))
        .sockets_max(200)
}

/// A server on 10.0.0.2:80 and a client stack on 10.0.0.3.
fn world(config: ServerConfig) -> World {
    let seed = seed();
    eprintln!("seed {seed}, {config:?}");
    let sim = SimXen::new(SimConfig::new(seed).quiet());
    let ex = Executor::new(sim.clone());
    let (a, b) = Cable::pair(CableConfig {
        frames_max: 256,
        seed,
        ..CableConfig::default()
    });
    let (server_stack, ra) = Stack::new(a, stack_config(SERVER, seed)).unwrap();
    let (client, rb) = Stack::new(b, stack_config(CLIENT, seed)).unwrap();
    ex.spawn(ra.run()).detach();
    ex.spawn(rb.run()).detach();
    let store = Rc::new(
        ex.block_on(TarStore::open(MemDevice::from_bytes(512, image())))
            .unwrap(),
    );
    let stop = Trigger::default();
    let (stats, server) = ex.block_on(async {
        let server = Server::bind(&server_stack, store.clone(), config).unwrap();
        let stats = server.stats();
        (stats, spawn(server.run(stop.clone().wait())))
    });
    World {
        _sim: sim,
        ex,
        client,
        store,
        stats,
        stop,
        server: Some(server),
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        port: PORT,
        ..ServerConfig::default()
    }
}

impl World {
    /// Shuts the server down; its final counters.
    fn shutdown(&mut self) -> ServerStats {
        self.stop.fire();
        let server = self.server.take().unwrap();
        self.ex.block_on(server).unwrap()
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client over a ringlet-net stream.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(stack: &Stack) -> Client {
        let stream = TcpStream::connect(stack, (SERVER, PORT)).await.unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more into the buffer; false at the end of the stream (or a
    /// reset).
    async fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 8192];
        match self.stream.read(&mut tmp).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// The next response; `None` if the connection ended first.
    async fn response(&mut self, head_only: bool) -> Option<Resp> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf).unwrap() {
                httparse::Status::Complete(n) => {
                    let status = parsed.code.unwrap();
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8(h.value.to_vec()).unwrap(),
                            )
                        })
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let len = if head_only || status == 304 { 0 } else { len };
                    while self.buf.len() < n + len {
                        assert!(self.fill().await, "the body was cut short");
                    }
                    let body = self.buf[n..n + len].to_vec();
                    self.buf.drain(..n + len);
                    return Some(Resp {
                        status,
                        headers,
                        body,
                    });
                }
                httparse::Status::Partial => {
                    if !self.fill().await {
                        assert!(self.buf.is_empty(), "a partial response");
                        return None;
                    }
                }
            }
        }
    }

    async fn request(&mut self, raw: &[u8], head_only: bool) -> Resp {
        self.send(raw).await;
        self.response(head_only).await.expect("no response")
    }

    async fn get(&mut self, path: &str) -> Resp {
        self.request(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
            false,
        )
        .await
    }

    /// Whether the server closed the connection (nothing more comes).
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill().await
    }
}

#[test]
fn fetches_files_byte_exact_over_one_kept_alive_connection() {
    let mut w = world(config());
    let client = w.client.clone();
    w.ex.block_on(async move {
        let mut c = Client::connect(&client).await;
        let r = c.get("/").await;
        assert_eq!((r.status, r.body.as_slice()), (200, INDEX));
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("Server"), Some("ringlet-httpd"));
        assert_eq!(r.header("Date"), None);
        let r = c.get("/style.css").await;
        assert_eq!((r.status, r.body.as_slice()), (200, STYLE));
        assert_eq!(r.header("Content-Type"), Some("text/css; charset=utf-8"));
        let r = c.get("/img/logo.png").await;
        assert_eq!((r.status, r.body.as_slice()), (200, LOGO));
        assert_eq!(r.header("Content-Type"), Some("image/png"));
        let r = c.get("/big.bin").await;
        assert_eq!(r.status, 200);
        assert!(r.body == big(), "1 MiB differs");
        let r = c.get("/docs/").await;
        assert_eq!(r.body, DOCS);
        let r = c.get("/empty.txt").await;
        assert_eq!((r.status, r.body.len()), (200, 0));
        let r = c
            .request(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", true)
            .await;
        assert_eq!(r.header("Content-Length"), Some("1048576"));
        assert!(r.body.is_empty());
        // Still the same connection, and it is still open.
        assert_eq!(c.get("/").await.status, 200);
    });
    let stats = w.shutdown();
    assert_eq!((stats.accepted, stats.responses), (1, 8));
    assert_eq!(
        stats.body_bytes,
        (INDEX.len() * 2 + STYLE.len() + LOGO.len() + DOCS.len()) as u64 + (1 << 20)
    );
}

#[test]
fn pipelined_responses_come_in_request_order() {
    let mut w = world(config());
    let client = w.client.clone();
    w.ex.block_on(async move {
        let mut c = Client::connect(&client).await;
        let paths = [
            "/style.css",
            "/",
            "/nope",
            "/docs/",
            "/img/logo.png",
            "/docs",
            "/style.css",
            "/empty.txt",
            "/",
            "/img/logo.png",
            "/",
            "/style.css",
            "/docs/",
            "/",
            "/nope",
            "/style.css",
            "/",
            "/",
            "/img/logo.png",
            "/",
        ];
        // 20 requests (more than the queue holds) in one write.
        let mut all = Vec::new();
        for p in paths {
            all.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        c.send(&all).await;
        for p in paths {
            let r = c.response(false).await.unwrap();
            let want: (u16, &[u8]) = match p {
                "/style.css" => (200, STYLE),
                "/" => (200, INDEX),
                "/docs/" => (200, DOCS),
                "/img/logo.png" => (200, LOGO),
                "/empty.txt" => (200, b""),
                "/docs" => (301, b"301 Moved Permanently\n"),
                _ => (404, b"404 Not Found\n"),
            };
            assert_eq!((r.status, r.body.as_slice()), want, "{p}");
        }
        // The last request closes; the earlier ones did not.
        let r = c
            .request(
                b"GET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
                false,
            )
            .await;
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(c.closed().await, "the request after `close` was answered");

        // 20 pipelined requests and then the FIN (half-close): every one is
        // answered, then the server closes too.
        let mut c = Client::connect(&client).await;
        let mut all = Vec::new();
        for i in 0..20 {
            let p = if i % 2 == 0 { "/style.css" } else { "/" };
            all.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        c.send(&all).await;
        c.stream.shutdown().await.unwrap();
        for i in 0..20 {
            let r = c.response(false).await.unwrap();
            assert_eq!(r.body, if i % 2 == 0 { STYLE } else { INDEX }, "response {i}");
        }
        assert!(c.closed().await);
    });
    let stats = w.shutdown();
    assert_eq!(stats.responses, 41);
}

#[test]
fn ranges_and_conditional_requests() {
    let mut w = world(config());
    let client = w.client.clone();
    w.ex.block_on(async move {
        let big = big();
        let mut c = Client::connect(&client).await;
        let full = c.get("/big.bin").await;
        let tag = full.header("ETag").unwrap().to_string();
        assert_eq!(full.header("Accept-Ranges"), Some("bytes"));
        for (range, start, end) in [
            ("0-0", 0usize, 1usize),
            ("1000-70999", 1000, 71000),
            ("1048000-", 1048000, 1 << 20),
            ("-100", (1 << 20) - 100, 1 << 20),
            ("0-99999999", 0, 1 << 20),
        ] {
            let r = c
                .request(
                    format!("GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes={range}\r\n\r\n")
                        .as_bytes(),
                    false,
                )
                .await;
            assert_eq!(r.status, 206, "{range}");
            assert_eq!(
                r.header("Content-Range").unwrap(),
                format!("bytes {start}-{}/1048576", end - 1)
            );
            assert!(r.body == big[start..end], "{range}: bytes differ");
        }
        let r = c
            .request(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1048576-\r\n\r\n", false)
            .await;
        assert_eq!(r.status, 416);
        assert_eq!(r.header("Content-Range"), Some("bytes */1048576"));
        let r = c
            .request(b"GET /style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,4-5\r\n\r\n", false)
            .await;
        assert_eq!((r.status, r.body.as_slice()), (200, STYLE));
        // Conditional GET.
        let r = c
            .request(
                format!("GET /big.bin HTTP/1.1\r\nHost: t\r\nIf-None-Match: {tag}\r\n\r\n").as_bytes(),
                false,
            )
            .await;
        assert_eq!((r.status, r.header("ETag")), (304, Some(tag.as_str())));
        assert!(r.body.is_empty());
        let r = c
            .request(
                b"GET /big.bin HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"stale\"\r\nRange: bytes=0-9\r\n\r\n",
                false,
            )
            .await;
        assert_eq!(r.status, 206);
        let r = c
            .request(
                format!("GET /big.bin HTTP/1.1\r\nHost: t\r\nIf-Range: {tag}\r\nRange: bytes=5-9\r\n\r\n")
                    .as_bytes(),
                false,
            )
            .await;
        assert_eq!((r.status, r.body.as_slice()), (206, &big[5..10]));
        let r = c
            .request(b"GET /style.css HTTP/1.1\r\nHost: t\r\nIf-Range: \"old\"\r\nRange: bytes=5-9\r\n\r\n", false)
            .await;
        assert_eq!((r.status, r.body.as_slice()), (200, STYLE));
        // A different file has a different tag.
        let css = c.get("/style.css").await;
        assert_ne!(css.header("ETag"), Some(tag.as_str()));
    });
    w.shutdown();
}

#[test]
fn every_error_status() {
    let mut w = world(config());
    let client = w.client.clone();
    w.ex.block_on(async move {
        let mut long_line = b"GET /".to_vec();
        long_line.resize(5000, b'a');
        long_line.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut big_head = b"GET / HTTP/1.1\r\nHost: t\r\nCookie: ".to_vec();
        big_head.resize(9000, b'c');
        big_head.extend_from_slice(b"\r\n\r\n");
        let closing: Vec<(u16, Vec<u8>)> = vec![
            (400, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            (400, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec()),
            (400, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()),
            (400, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec()),
            (400, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n".to_vec()),
            (400, b"GET / HTTP/1.1\r\nHost : t\r\n\r\n".to_vec()),
            (400, b"GET /../secret HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
            (400, b"GET /%2e%2e/secret HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
            (413, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody".to_vec()),
            (414, long_line),
            (431, big_head),
            (505, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec()),
        ];
        for (status, raw) in closing {
            let mut c = Client::connect(&client).await;
            // A valid request after the bad one is never answered.
            c.send(&raw).await;
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
            let r = c.response(false).await.expect("no response");
            assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&raw[..40.min(raw.len())]));
            assert_eq!(r.header("Connection"), Some("close"));
            assert!(c.closed().await, "{status}: connection left open");
        }
        // These keep the connection.
        let mut c = Client::connect(&client).await;
        let r = c.get("/missing.html").await;
        assert_eq!((r.status, r.body.as_slice()), (404, &b"404 Not Found\n"[..]));
        let r = c.request(b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n", false).await;
        assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
        let r = c.get("/docs").await;
        assert_eq!((r.status, r.header("Location")), (301, Some("/docs/")));
        let r = c.request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false).await;
        assert_eq!((r.status, r.header("Connection")), (200, Some("keep-alive")));
        let r = c.get("/").await;
        assert_eq!(r.status, 200);
        // HTTP/1.0 without keep-alive: served, then closed.
        let r = c.request(b"GET /style.css HTTP/1.0\r\n\r\n", false).await;
        assert_eq!((r.status, r.body.as_slice()), (200, STYLE));
        assert!(c.closed().await);
    });
    let stats = w.shutdown();
    assert_eq!(stats.by_class, [3, 1, 13, 1]);
}

#[test]
fn disk_errors_are_500_before_the_response_and_a_reset_after() {
    let mut w = world(ServerConfig {
        chunk_bytes: 4096,
        ..config()
    });
    let client = w.client.clone();
    let store = w.store.clone();
    w.ex.block_on(async move {
        use ringlet_httpd::http::{Resource, Site};
        let Resource::File(f) = Site::lookup(&*store, "big.bin") else {
            panic!()
        };
        let first = f.data_offset / 512;
        // The first chunk fails once: 500, connection closed.
        store
            .device()
            .inject(Fault::new(FaultOn::Read, first..first + 1, FaultKind::Io).times(1));
        let mut c = Client::connect(&client).await;
        let r = c.get("/big.bin").await;
        assert_eq!((r.status, r.header("Connection")), (500, Some("close")));
        assert!(c.closed().await);
        // A later chunk fails: the head went out, the body is cut, reset.
        let later = first + 64;
        store
            .device()
            .inject(Fault::new(FaultOn::Read, later..later + 1, FaultKind::Io).times(1));
        let mut c = Client::connect(&client).await;
        c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let mut got = 0;
        while c.fill().await {
            got = c.buf.len();
        }
        assert!(got > 0 && got < 1 << 20, "{got} bytes");
        // The server still serves.
        let mut c = Client::connect(&client).await;
        assert_eq!(c.get("/big.bin").await.body.len(), 1 << 20);
    });
    let stats = w.shutdown();
    assert_eq!(stats.disk_errors, 2);
}

#[test]
fn slowloris_clients_are_cut_off_and_an_ordinary_client_is_served() {
    const TRICKLERS: usize = 60;
    const SILENT: usize = 10;
    let mut w = world(config());
    let client = w.client.clone();
    let request_timeout = config().request_timeout;
    w.ex.block_on(async move {
        let mut trickle = Vec::new();
        for i in 0..TRICKLERS {
            let client = client.clone();
            trickle.push(spawn(async move {
                // Connections arrive over 420 ms, then send one byte every
                // 500 ms, forever.
                sleep(Duration::from_millis(7 * i as u64)).await;
                let mut c = Client::connect(&client).await;
                let start = Instant::now();
                let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ";
                for &b in head.iter().chain(std::iter::repeat(&b'z')) {
                    // Bounded, so a server that never cuts it off fails the
                    // test instead of hanging it.
                    if start.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                    if c.stream.write_all(&[b]).await.is_err() {
                        break;
                    }
                    // A reset shows as a failed read.
                    match ringlet_executor::timeout(Duration::from_millis(500), c.fill()).await {
                        Ok(false) => break,
                        Ok(true) => panic!("a trickler got a response"),
                        Err(_) => {}
                    }
                }
                start.elapsed()
            }));
        }
        let mut silent = Vec::new();
        for _ in 0..SILENT {
            let client = client.clone();
            silent.push(spawn(async move {
                let mut c = Client::connect(&client).await;
                let start = Instant::now();
                assert!(c.closed().await);
                start.elapsed()
            }));
        }
        // Meanwhile, an ordinary client, once a second.
        sleep(Duration::from_millis(300)).await;
        for _ in 0..9 {
            let start = Instant::now();
            let mut c = Client::connect(&client).await;
            let r = c.get("/").await;
            assert_eq!((r.status, r.body.as_slice()), (200, INDEX));
            let r = c.get("/big.bin").await;
            assert_eq!(r.body.len(), 1 << 20);
            let took = start.elapsed();
            assert!(
                took < Duration::from_millis(500),
                "ordinary client took {took:?}"
            );
            sleep(Duration::from_secs(1)).await;
        }
        for t in trickle {
            let lived = t.await.unwrap();
            assert!(
                lived >= request_timeout && lived < request_timeout + Duration::from_secs(2),
                "a trickler lived {lived:?}"
            );
        }
        for s in silent {
            let lived = s.await.unwrap();
            assert!(lived >= request_timeout && lived < request_timeout + Duration::from_secs(1));
        }
    });
    let stats = w.shutdown();
    assert_eq!(stats.request_timeouts, (TRICKLERS + SILENT) as u64);
    assert_eq!(stats.responses, 18);
}

#[test]
fn thousand_requests_over_fifty_connections() {
    const CONNECTIONS: usize = 50;
    const PER_CONNECTION: usize = 20;
    let mut w = world(config());
    let client = w.client.clone();
    let checked = w.ex.block_on(async move {
        let big = Rc::new(big());
        let mut tasks = Vec::new();
        for i in 0..CONNECTIONS {
            let client = client.clone();
            let big = big.clone();
            tasks.push(spawn(async move {
                let mut c = Client::connect(&client).await;
                let mut ok = 0;
                let mut j = 0;
                while j < PER_CONNECTION {
                    // Every fifth turn sends three pipelined requests.
                    let batch = if j % 5 == 4 { 3.min(PER_CONNECTION - j) } else { 1 };
                    let mut raw = Vec::new();
                    let mut want: Vec<(u16, Vec<u8>)> = Vec::new();
                    for k in 0..batch {
                        let n = i * PER_CONNECTION + j + k;
                        match n % 5 {
                            0 => {
                                raw.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                                want.push((200, INDEX.to_vec()));
                            }
                            1 => {
                                raw.extend_from_slice(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
                                want.push((200, STYLE.to_vec()));
                            }
                            2 => {
                                let start = (n * 7919) % ((1 << 20) - 20_000);
                                raw.extend_from_slice(
                                    format!(
                                        "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes={start}-{}\r\n\r\n",
                                        start + 19_999
                                    )
                                    .as_bytes(),
                                );
                                want.push((206, big[start..start + 20_000].to_vec()));
                            }
                            3 => {
                                raw.extend_from_slice(b"GET /docs/ HTTP/1.1\r\nHost: t\r\n\r\n");
                                want.push((200, DOCS.to_vec()));
                            }
                            _ => {
                                raw.extend_from_slice(b"GET /img/logo.png HTTP/1.1\r\nHost: t\r\n\r\n");
                                want.push((200, LOGO.to_vec()));
                            }
                        }
                    }
                    c.send(&raw).await;
                    for (status, body) in want {
                        let r = c.response(false).await.expect("connection closed");
                        assert_eq!(r.status, status);
                        assert!(r.body == body, "connection {i}: body differs");
                        ok += 1;
                    }
                    j += batch;
                }
                ok
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(checked, CONNECTIONS * PER_CONNECTION);
    let stats = w.shutdown();
    assert_eq!(stats.accepted, CONNECTIONS as u64);
    assert_eq!(stats.responses, (CONNECTIONS * PER_CONNECTION) as u64);
    assert_eq!(stats.by_class, [1000, 0, 0, 0]);
    assert_eq!(
        (
            stats.socket_errors,
            stats.request_timeouts,
            stats.write_timeouts,
            stats.disk_errors
        ),
        (0, 0, 0, 0)
    );
    assert!(stats.open_max > 1, "connections were not served at once");
    // 1,000 lines in a few virtual seconds: the log was rate-limited.
    assert!(stats.log_suppressed > 0);
}

#[test]
fn idle_keep_alive_times_out_and_a_stalled_reader_is_cut_off() {
    let cfg = config();
    let mut w = world(cfg.clone());
    let client = w.client.clone();
    w.ex.block_on(async move {
        // Idle after one response: closed after the keep-alive timeout.
        let mut c = Client::connect(&client).await;
        assert_eq!(c.get("/").await.status, 200);
        let start = Instant::now();
        assert!(c.closed().await);
        let idle = start.elapsed();
        assert!(
            idle >= cfg.keepalive_timeout
                && idle < cfg.keepalive_timeout + Duration::from_millis(100)
        );

        // A client that asks for 1 MiB and never reads: the server's writes
        // stall, time out, and the connection is reset; others are served.
        let mut stalled = Client::connect(&client).await;
        stalled
            .send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        let start = Instant::now();
        sleep(Duration::from_secs(1)).await;
        let mut other = Client::connect(&client).await;
        assert_eq!(other.get("/big.bin").await.body.len(), 1 << 20);
        sleep(cfg.write_timeout + Duration::from_secs(1)).await;
        // Now read: some data, then the reset.
        let mut got = 0;
        while stalled.fill().await {
            got = stalled.buf.len();
        }
        assert!(got < 1 << 20, "the stalled client got everything");
        assert!(start.elapsed() >= cfg.write_timeout);
    });
    let stats = w.shutdown();
    // Two idle timeouts: the first client's, and `other`'s while we waited.
    assert_eq!((stats.idle_timeouts, stats.write_timeouts), (2, 1));
}

#[test]
fn connections_beyond_the_limit_wait_for_a_slot() {
    let mut w = world(ServerConfig {
        connections_max: 3,
        backlog: 4,
        ..config()
    });
    let client = w.client.clone();
    let stats = w.stats.clone();
    w.ex.block_on(async move {
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut c = Client::connect(&client).await;
            assert_eq!(c.get("/").await.status, 200);
            held.push(c);
        }
        // The fourth connects (backlog) but is not served while three are open.
        let mut fourth = Client::connect(&client).await;
        fourth.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let waited =
            ringlet_executor::timeout(Duration::from_secs(2), fourth.response(false)).await;
        assert!(waited.is_err(), "served beyond connections_max");
        assert_eq!(stats.get().open, 3);
        drop(held.pop());
        let r = fourth.response(false).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(stats.get().open_max, 3);
    });
    w.shutdown();
}

#[test]
fn graceful_shutdown_finishes_responses_in_flight() {
    let mut w = world(ServerConfig {
        chunk_bytes: 2048,
        ..config()
    });
    let client = w.client.clone();
    let stop = w.stop.clone();
    let server = w.server.take().unwrap();
    let stats = w.ex.block_on(async move {
        let mut idle = Client::connect(&client).await;
        assert_eq!(idle.get("/").await.status, 200);
        let mut busy = Client::connect(&client).await;
        busy.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n").await;
        // Part of the body has arrived: shut down now.
        while busy.buf.len() < 100_000 {
            assert!(busy.fill().await);
        }
        stop.fire();
        let r = busy.response(false).await.unwrap();
        assert!(
            r.status == 200 && r.body == big(),
            "the response in flight was cut"
        );
        assert!(busy.closed().await);
        assert!(idle.closed().await, "the idle connection stayed open");
        let stats = server.await.unwrap();
        // No new connections.
        assert!(TcpStream::connect(&client, (SERVER, PORT)).await.is_err());
        stats
    });
    assert_eq!(stats.open, 0);
    assert_eq!(stats.abandoned_at_shutdown, 0);
    assert_eq!(stats.responses, 2);
}

#[test]
fn shutdown_gives_up_on_a_stuck_connection_after_the_grace() {
    let cfg = ServerConfig {
        shutdown_grace: Duration::from_secs(2),
        ..config()
    };
    let mut w = world(cfg);
    let client = w.client.clone();
    let stop = w.stop.clone();
    let server = w.server.take().unwrap();
    let (stats, took) = w.ex.block_on(async move {
        // Never reads its 1 MiB: the write is stuck (its timeout is 20 s).
        let mut c = Client::connect(&client).await;
        c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n").await;
        sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        stop.fire();
        let stats = server.await.unwrap();
        (stats, start.elapsed())
    });
    assert!(took >= Duration::from_secs(2) && took < Duration::from_millis(2100));
    assert_eq!(stats.abandoned_at_shutdown, 1);
}
