//! httpd's request path: arbitrary bytes as one connection's input, through
//! the sans-IO core (`Connection` → `respond` against an in-memory site).
//!
//! The first input byte seeds how the rest is cut into reads (1 to 64
//! bytes, or all at once), as TCP may deliver it. Checked for every input:
//! - nothing panics, and the loop ends (each turn takes input or an item);
//! - the buffer never holds more than `HEAD_BYTES_MAX` bytes and the queue
//!   never more than `PIPELINE_DEPTH_MAX` items;
//! - every response head parses as an HTTP/1.1 response with the status it
//!   claims, is at most `RESPONSE_HEAD_BYTES_MAX` bytes, has `Server`, no
//!   `Date`, `Content-Length` equal to the body a GET gets (none on 304),
//!   `Connection: close` exactly when the connection ends, and only the
//!   header fields httpd writes;
//! - a file body lies inside one file of the site, and a 206's
//!   `Content-Range` agrees with it;
//! - nothing is answered after a closing response, and no more responses
//!   than heads parsed;
//! - cutting the input differently gives exactly the same responses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlet_httpd::http::response::respond_rejection;
use ringlet_httpd::http::{
    respond, Body, Connection, Item, MemSite, Response, Status, HEAD_BYTES_MAX,
    PIPELINE_DEPTH_MAX, RESPONSE_HEAD_BYTES_MAX, SERVER_NAME,
};

/// The header fields httpd may write.
const FIELDS: &[&str] = &[
    "Server",
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "ETag",
    "Accept-Ranges",
    "Connection",
    "Location",
    "Allow",
];

fn site() -> MemSite {
    let mut s = MemSite::new();
    s.insert("index.html", b"<h1>home</h1>\n".to_vec(), 1_700_000_000);
    s.insert("a/index.html", b"a".to_vec(), 1);
    s.insert("a/b/c.txt", (0..=255u8).collect(), 2);
    s.insert("empty.bin", Vec::new(), 3);
    s.insert("x y/%.css", b"%".to_vec(), 4);
    s
}

/// A tiny PRNG for the read sizes (xorshift).
struct Cuts(u64);

impl Cuts {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 64) as usize + 1
    }
}

/// Runs `input` through one connection, cut by `seed` (`None`: all at
/// once); the responses, checked.
fn run(site: &MemSite, input: &[u8], seed: Option<u8>) -> Vec<Response> {
    let mut conn = Connection::new();
    let mut cuts = seed.map(|s| Cuts(u64::from(s).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1));
    let mut rest = input;
    let mut out: Vec<Response> = Vec::new();
    let mut turns = 0usize;
    loop {
        turns += 1;
        assert!(turns <= 4 * input.len() + 16, "no progress");
        let mut took = 0;
        if !rest.is_empty() {
            let want = match &mut cuts {
                Some(c) => c.next().min(rest.len()),
                None => rest.len(),
            };
            took = conn.receive(&rest[..want]);
            rest = &rest[took..];
        }
        if rest.is_empty() {
            conn.end_of_input();
        }
        assert!(conn.buffered() <= HEAD_BYTES_MAX);
        assert!(conn.queued() <= PIPELINE_DEPTH_MAX);
        match conn.next_item() {
            Some(item) => {
                let (r, head_only) = match item {
                    Item::Request(req) => {
                        let head_only = req.method.as_str() == "HEAD";
                        (respond(&req, site, false), head_only)
                    }
                    Item::Reject(rej) => {
                        let head_only = rej.method.as_ref().is_some_and(|m| m.as_str() == "HEAD");
                        (respond_rejection(&rej), head_only)
                    }
                };
                check(site, &r, head_only);
                let close = r.close;
                out.push(r);
                assert!(out.len() as u64 <= conn.parsed());
                if close {
                    conn.stop();
                    assert!(conn.next_item().is_none() && conn.is_done());
                    return out;
                }
            }
            None if conn.is_done() => return out,
            None => assert!(took > 0 || !rest.is_empty(), "stuck"),
        }
    }
}

fn check(site: &MemSite, r: &Response, head_only: bool) {
    assert!(r.head.len() <= RESPONSE_HEAD_BYTES_MAX);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let n = match parsed.parse(&r.head) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("bad head {other:?}: {:?}", String::from_utf8_lossy(&r.head)),
    };
    assert_eq!(n, r.head.len(), "head has trailing bytes");
    assert_eq!(parsed.version, Some(1));
    assert_eq!(parsed.code, Some(r.status.code()));
    assert_eq!(parsed.reason, Some(r.status.reason()));
    let get = |name: &str| {
        let mut values = parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| std::str::from_utf8(h.value).expect("ASCII header"));
        let first = values.next();
        assert!(values.next().is_none(), "{name} twice");
        first
    };
    for h in parsed.headers.iter() {
        assert!(FIELDS.contains(&h.name), "unexpected field {}", h.name);
        assert!(h.value.iter().all(|&b| (0x20..0x7f).contains(&b)));
    }
    assert_eq!(get("Server"), Some(SERVER_NAME));
    assert_eq!(get("Connection") == Some("close"), r.close);
    if r.status.closes_connection() {
        assert!(r.close);
    }
    if r.status == Status::NotModified {
        assert_eq!(get("Content-Length"), None);
        assert_eq!(r.body, Body::Empty);
        assert!(get("ETag").is_some());
        return;
    }
    let length: u64 = get("Content-Length").unwrap().parse().unwrap();
    if head_only {
        assert_eq!(r.body, Body::Empty);
    } else {
        assert_eq!(r.body.len(), length);
    }
    if let Body::File { data_offset, len } = r.body {
        assert!(len > 0);
        assert!(site.read(data_offset, len).is_some(), "body outside every file");
    }
    match r.status {
        Status::PartialContent => {
            let cr = get("Content-Range").unwrap();
            let spec = cr.strip_prefix("bytes ").unwrap();
            let (range, total) = spec.split_once('/').unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let (a, b, total): (u64, u64, u64) =
                (a.parse().unwrap(), b.parse().unwrap(), total.parse().unwrap());
            assert!(a <= b && b < total && b - a + 1 == length);
        }
        Status::RangeNotSatisfiable => {
            assert!(get("Content-Range").unwrap().starts_with("bytes */"));
        }
        Status::MovedPermanently => {
            let loc = get("Location").unwrap();
            assert!(loc.starts_with('/'));
        }
        Status::MethodNotAllowed => assert_eq!(get("Allow"), Some("GET, HEAD")),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let site = site();
    let whole = run(&site, input, None);
    let cut = run(&site, input, Some(seed));
    assert_eq!(whole, cut, "the same input cut differently answered differently");
});
