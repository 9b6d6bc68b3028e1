//! Tests of bench/epoll-httpd on the host's loopback: built as the Linux
//! guest gets it (gcc -static), started on a free port, spoken to with raw
//! HTTP/1.x over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::linux::build_epoll;
use super::site::{content, FILES};

/// A running server, killed (by its own pid) when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(tag: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("ringlet-epoll-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let docroot = dir.join("site");
    std::fs::create_dir_all(&docroot).unwrap();
    for f in &FILES {
        std::fs::write(docroot.join(f.name), content(f)).unwrap();
    }
    let binary = build_epoll(&dir).expect("gcc builds epoll-httpd");
    let mut child = Command::new(binary)
        .args(["-q", "-p", "0"])
        .arg(&docroot)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "epoll-httpd: listening on port N, M files"
    let port: u16 = line
        .split("port ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert!(line.contains(&format!("{} files", FILES.len())), "{line}");
    Server { child, port, dir }
}

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// A response: status, headers (names lowercased), body.
type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// Reads one response.
fn response(r: &mut impl BufRead) -> Option<Response> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((status, headers, body))
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn serves_every_file_on_one_keep_alive_connection() {
    let s = start("keepalive");
    let mut c = connect(&s);
    let mut r = BufReader::new(c.try_clone().unwrap());
    for f in &FILES {
        write!(c, "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", f.name).unwrap();
        let (status, headers, body) = response(&mut r).expect("an answer");
        assert_eq!(status, 200, "{}", f.name);
        assert_eq!(header(&headers, "connection"), None);
        assert_eq!(body, content(f), "{}", f.name);
    }
    // HEAD: the head only.
    write!(
        c,
        "HEAD /4k.bin HTTP/1.1\r\n\r\nGET /hello.txt HTTP/1.1\r\n\r\n"
    )
    .unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let (status, _, body) = response(&mut r).unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"Hello, world\n"[..]));
}

#[test]
fn answers_pipelined_requests_in_order_then_closes() {
    let s = start("pipeline");
    let mut c = connect(&s);
    let mut batch = String::new();
    for i in 0..100 {
        let f = &FILES[i % 3];
        batch.push_str(&format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", f.name));
    }
    batch.push_str("GET /missing HTTP/1.1\r\n\r\n");
    batch.push_str("GET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n");
    batch.push_str("GET /hello.txt HTTP/1.1\r\n\r\n"); // after close: unanswered
    c.write_all(batch.as_bytes()).unwrap();
    let mut r = BufReader::new(c);
    for i in 0..100 {
        let (status, _, body) = response(&mut r).expect("an answer");
        assert_eq!(status, 200);
        assert_eq!(body, content(&FILES[i % 3]), "answer {i}");
    }
    assert_eq!(response(&mut r).unwrap().0, 404);
    let (status, headers, body) = response(&mut r).unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"Hello, world\n"[..]));
    assert_eq!(header(&headers, "connection"), Some("close"));
    assert!(
        response(&mut r).is_none(),
        "nothing after Connection: close"
    );
}

#[test]
fn http10_closes_unless_keep_alive() {
    let s = start("http10");
    let mut c = connect(&s);
    c.write_all(b"GET /hello.txt HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let (status, headers, _) = response(&mut r).unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "connection"), Some("keep-alive"));
    c.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
    let (_, headers, _) = response(&mut r).unwrap();
    assert_eq!(header(&headers, "connection"), Some("close"));
    assert!(response(&mut r).is_none());
}

#[test]
fn refuses_what_it_does_not_serve() {
    let s = start("refuse");
    for (request, want) in [
        (&b"POST /hello.txt HTTP/1.1\r\n\r\n"[..], 405),
        (b"GET /hello.txt HTTP/2.0\r\n\r\n", 505),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /4k.bin HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"GET 4k.bin HTTP/1.1\r\n\r\n", 400),
        (b"GET /4k.bin HTTP/1.1\r\nno colon\r\n\r\n", 400),
    ] {
        let mut c = connect(&s);
        c.write_all(request).unwrap();
        let mut r = BufReader::new(c);
        let (status, headers, _) = response(&mut r).expect("an answer");
        assert_eq!(status, want, "{}", String::from_utf8_lossy(request));
        assert_eq!(header(&headers, "connection"), Some("close"));
        assert!(response(&mut r).is_none());
    }
    // A head beyond the bound: 431, then the connection ends.
    let mut c = connect(&s);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    let _ = c.write_all(long.as_bytes());
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(
        got.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The server still serves others.
    let mut c = connect(&s);
    c.write_all(b"GET /hello.txt HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(response(&mut BufReader::new(c)).unwrap().0, 200);
}
