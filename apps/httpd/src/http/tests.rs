//! Whole exchanges through the sans-IO core: byte-literal requests into a
//! [`Connection`], responses from [`respond`] against a [`MemSite`]; one
//! test (or more) per status and rule of the module docs.

use alloc::string::String;
use alloc::vec::Vec;

use super::response::respond_rejection;
use super::*;

/// mtime of every fixture file.
const MTIME: u64 = 0x6500_0000;

fn site() -> MemSite {
    let mut s = MemSite::new();
    s.insert("index.html", b"<h1>home</h1>\n".to_vec(), MTIME); // offset 0
    s.insert("style.css", b"body{}".to_vec(), MTIME); // 14 + 512 = 526
    s.insert("logo.png", b"\x89PNG".to_vec(), MTIME); // 526 + 6 + 512 = 1044
    s.insert("data.bin", (0..100u8).collect(), MTIME); // 1044 + 4 + 512 = 1560
    s.insert("docs/index.html", b"docs".to_vec(), MTIME); // 1560 + 100 + 512 = 2172
    s.insert("empty/none.txt", b"x".to_vec(), MTIME); // 2172 + 4 + 512 = 2688
    s.insert("my dir/index.html", b"sp".to_vec(), MTIME); // 2688 + 1 + 512 = 3201
    s.insert("zero.txt", Vec::new(), MTIME); // 3201 + 2 + 512 = 3715
    s
}

const DATA_TAG: &str = "\"64-65000000-618\"";

/// Runs `input` as one connection's whole input; the responses sent.
fn exchange_with(input: &[u8], closing: bool) -> Vec<Response> {
    let site = site();
    let mut conn = Connection::new();
    let mut rest = input;
    let mut out = Vec::new();
    loop {
        while !rest.is_empty() && !conn.spare().is_empty() {
            let n = conn.receive(rest);
            rest = &rest[n..];
        }
        if rest.is_empty() {
            conn.end_of_input();
        }
        let Some(item) = conn.next_item() else {
            assert!(conn.is_done() || !rest.is_empty());
            if conn.is_done() {
                return out;
            }
            continue;
        };
        let r = match item {
            Item::Request(req) => respond(&req, &site, closing),
            Item::Reject(rej) => respond_rejection(&rej),
        };
        let close = r.close;
        check_well_formed(&r);
        out.push(r);
        if close {
            conn.stop();
            return out;
        }
    }
}

fn exchange(input: &[u8]) -> Vec<Response> {
    exchange_with(input, false)
}

fn one(input: &[u8]) -> Response {
    let mut r = exchange(input);
    assert_eq!(r.len(), 1, "{:?}", String::from_utf8_lossy(input));
    r.pop().unwrap()
}

fn head(r: &Response) -> &str {
    core::str::from_utf8(&r.head).unwrap()
}

fn field<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    head(r).split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// What every response must be: a status line, `Server`, no `Date`,
/// `Content-Length` equal to the GET body (HEAD's is empty), no stray CR
/// or LF, `Connection: close` exactly when closing.
fn check_well_formed(r: &Response) {
    let h = head(r);
    assert!(h.len() <= RESPONSE_HEAD_BYTES_MAX);
    assert!(h.ends_with("\r\n\r\n"));
    let lines: Vec<&str> = h[..h.len() - 4].split("\r\n").collect();
    assert_eq!(
        lines[0],
        alloc::format!("HTTP/1.1 {} {}", r.status.code(), r.status.reason())
    );
    for l in &lines {
        assert!(!l.contains(['\r', '\n']));
    }
    assert_eq!(field(r, "Server"), Some(SERVER_NAME));
    assert_eq!(field(r, "Date"), None);
    assert_eq!(field(r, "Connection") == Some("close"), r.close);
    if r.status == Status::NotModified {
        assert_eq!(field(r, "Content-Length"), None);
        assert_eq!(r.body, Body::Empty);
    } else {
        let cl: u64 = field(r, "Content-Length").unwrap().parse().unwrap();
        assert!(r.body == Body::Empty || r.body.len() == cl);
    }
}

fn body_bytes(r: &Response) -> Vec<u8> {
    match r.body {
        Body::Empty => Vec::new(),
        Body::Static(b) => b.to_vec(),
        Body::File { data_offset, len } => site().read(data_offset, len).unwrap().to_vec(),
    }
}

#[test]
fn get_200_exact_head() {
    let r = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        r.head,
        b"HTTP/1.1 200 OK\r\nServer: ringlet-httpd\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\nETag: \"64-65000000-618\"\r\nAccept-Ranges: bytes\r\n\r\n"
    );
    assert_eq!(
        r.body,
        Body::File {
            data_offset: 1560,
            len: 100
        }
    );
    assert_eq!(body_bytes(&r), (0..100u8).collect::<Vec<_>>());
    assert!(!r.close);
}

#[test]
fn head_is_get_without_a_body() {
    for target in ["/data.bin", "/", "/nope", "/docs"] {
        let get = one(alloc::format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        let hd = one(alloc::format!("HEAD {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        assert_eq!(get.head, hd.head, "{target}");
        assert_eq!(hd.body, Body::Empty);
    }
    // With a range too.
    let get = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\n\r\n");
    let hd = one(b"HEAD /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\n\r\n");
    assert_eq!((get.status, get.head.clone()), (hd.status, hd.head));
    assert_eq!(hd.body, Body::Empty);
}

#[test]
fn content_type_by_extension() {
    let ct = |t: &str| {
        let r = one(alloc::format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        String::from(field(&r, "Content-Type").unwrap())
    };
    assert_eq!(ct("/style.css"), "text/css; charset=utf-8");
    assert_eq!(ct("/logo.png"), "image/png");
    assert_eq!(ct("/index.html"), "text/html; charset=utf-8");
    assert_eq!(ct("/"), "text/html; charset=utf-8");
    assert_eq!(ct("/data.bin"), "application/octet-stream");
}

#[test]
fn index_html_for_directories_and_301_without_the_slash() {
    let r = one(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        (r.status, body_bytes(&r)),
        (Status::Ok, b"<h1>home</h1>\n".to_vec())
    );
    let r = one(b"GET /docs/ HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((r.status, body_bytes(&r)), (Status::Ok, b"docs".to_vec()));
    let r = one(b"GET /docs HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        r.head,
        b"HTTP/1.1 301 Moved Permanently\r\nServer: ringlet-httpd\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\nLocation: /docs/\r\n\r\n"
    );
    assert_eq!(body_bytes(&r), b"301 Moved Permanently\n");
    let r = one(b"GET /docs?a=1&b=%20 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(field(&r, "Location"), Some("/docs/?a=1&b=%20"));
    let r = one(b"GET /my%20dir HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(field(&r, "Location"), Some("/my%20dir/"));
    let r = one(b"GET /my%20dir/ HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(body_bytes(&r), b"sp");
    let r = one(b"GET http://h/docs HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(field(&r, "Location"), Some("/docs/"));
    // A directory without index.html, a file with a slash: 404.
    assert_eq!(
        one(b"GET /empty/ HTTP/1.1\r\nHost: h\r\n\r\n").status,
        Status::NotFound
    );
    assert_eq!(
        one(b"GET /style.css/ HTTP/1.1\r\nHost: h\r\n\r\n").status,
        Status::NotFound
    );
    // Encoded and doubled slashes find the same file.
    let r = one(b"GET /docs%2F/index.html HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((r.status, body_bytes(&r)), (Status::Ok, b"docs".to_vec()));
}

#[test]
fn not_found_404_keeps_the_connection() {
    let rs = exchange(
        b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\nGET /style.css HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(rs.len(), 2);
    assert_eq!(
        rs[0].head,
        b"HTTP/1.1 404 Not Found\r\nServer: ringlet-httpd\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\n"
    );
    assert_eq!(body_bytes(&rs[0]), b"404 Not Found\n");
    assert_eq!(rs[1].status, Status::Ok);
    // Not UTF-8 after decoding: cannot exist.
    assert_eq!(
        one(b"GET /%ff HTTP/1.1\r\nHost: h\r\n\r\n").status,
        Status::NotFound
    );
}

#[test]
fn method_not_allowed_405_with_allow() {
    for m in ["POST", "PUT", "DELETE", "PATCH", "BREW"] {
        let rs = exchange(
            alloc::format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(rs.len(), 2, "{m}: the connection goes on");
        assert_eq!(rs[0].status, Status::MethodNotAllowed);
        assert_eq!(field(&rs[0], "Allow"), Some("GET, HEAD"));
        assert_eq!(rs[1].status, Status::Ok);
    }
    let r = one(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, Status::MethodNotAllowed);
    // With a body we do not read: the connection ends.
    let rs = exchange(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(rs.len(), 1);
    assert_eq!(
        (rs[0].status, rs[0].close),
        (Status::MethodNotAllowed, true)
    );
}

/// Requests that must get `status` and end the connection (the pipelined
/// GET after them is never answered).
fn assert_closing(status: Status, requests: &[&[u8]]) {
    for req in requests {
        let input = [*req, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"].concat();
        let rs = exchange(&input);
        assert_eq!(rs.len(), 1, "{:?}", String::from_utf8_lossy(req));
        assert_eq!(rs[0].status, status, "{:?}", String::from_utf8_lossy(req));
        assert!(rs[0].close);
        let want = if req.starts_with(b"HEAD") {
            String::new()
        } else {
            alloc::format!("{status}\n")
        };
        assert_eq!(body_bytes(&rs[0]), want.as_bytes());
    }
}

#[test]
fn bad_request_400() {
    assert_closing(
        Status::BadRequest,
        &[
            // HTTP/1.1 without Host, with two.
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            // Transfer-Encoding with Content-Length; in HTTP/1.0.
            b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            // Invalid and conflicting Content-Length.
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,2\r\n\r\n",
            // Whitespace before a colon.
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nAccept\t: */*\r\n\r\n",
            // Folding, bad bytes, bad request lines.
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            // Targets.
            b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /docs/%2e%2e/index.html HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a%00 HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET index.html HTTP/1.1\r\nHost: h\r\n\r\n",
        ],
    );
}

#[test]
fn content_too_large_413_for_a_body() {
    assert_closing(
        Status::ContentTooLarge,
        &[
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            b"HEAD / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
        ],
    );
    // Content-Length: 0 is no body.
    assert_eq!(
        one(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").status,
        Status::Ok
    );
}

#[test]
fn uri_too_long_414_and_header_fields_too_large_431() {
    let mut long_line = Vec::from(&b"GET /"[..]);
    long_line.resize(REQUEST_LINE_BYTES_MAX + 10, b'a');
    long_line.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_closing(Status::UriTooLong, &[&long_line]);
    // Never completed: refused as soon as the line passes the limit.
    let rs = exchange(&long_line[..REQUEST_LINE_BYTES_MAX + 1]);
    assert_eq!(rs[0].status, Status::UriTooLong);

    let mut many = Vec::from(&b"GET / HTTP/1.1\r\nHost: h\r\n"[..]);
    for i in 0..HEADERS_MAX {
        many.extend_from_slice(alloc::format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let mut big = Vec::from(&b"GET / HTTP/1.1\r\nHost: h\r\nCookie: "[..]);
    big.resize(HEAD_BYTES_MAX + 100, b'c');
    big.extend_from_slice(b"\r\n\r\n");
    assert_closing(Status::HeaderFieldsTooLarge, &[&many, &big]);
}

#[test]
fn version_not_supported_505_and_http10_served() {
    assert_closing(
        Status::VersionNotSupported,
        &[
            b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
            b"GET / HTTP/3.0\r\n\r\n",
        ],
    );
    // HTTP/1.0: served, and closed unless it asks for keep-alive.
    let rs = exchange(b"GET /style.css HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(rs.len(), 1);
    assert_eq!((rs[0].status, rs[0].close), (Status::Ok, true));
    let rs = exchange(
        b"GET /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(rs.len(), 2);
    assert_eq!(field(&rs[0], "Connection"), Some("keep-alive"));
    assert!(!rs[0].close && rs[1].close);
}

#[test]
fn connection_close_and_server_closing() {
    let rs = exchange(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(rs.len(), 1);
    assert!(rs[0].close);
    let rs = exchange_with(
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        true,
    );
    assert_eq!(rs.len(), 1);
    assert_eq!(field(&rs[0], "Connection"), Some("close"));
}

#[test]
fn pipelined_responses_in_request_order() {
    let rs = exchange(
        b"GET /style.css HTTP/1.1\r\nHost: h\r\n\r\nHEAD /logo.png HTTP/1.1\r\nHost: h\r\n\r\nGET /nope HTTP/1.1\r\nHost: h\r\n\r\nGET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-1\r\n\r\n",
    );
    let got: Vec<(u16, Vec<u8>)> = rs
        .iter()
        .map(|r| (r.status.code(), body_bytes(r)))
        .collect();
    assert_eq!(
        got,
        [
            (200, b"body{}".to_vec()),
            (200, Vec::new()),
            (404, b"404 Not Found\n".to_vec()),
            (206, alloc::vec![99]),
        ]
    );
}

#[test]
fn partial_content_206() {
    let r = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=10-19\r\n\r\n");
    assert_eq!(
        r.head,
        b"HTTP/1.1 206 Partial Content\r\nServer: ringlet-httpd\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\nContent-Range: bytes 10-19/100\r\nETag: \"64-65000000-618\"\r\nAccept-Ranges: bytes\r\n\r\n"
    );
    assert_eq!(body_bytes(&r), (10..20u8).collect::<Vec<_>>());
    let r = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=90-\r\n\r\n");
    assert_eq!(field(&r, "Content-Range"), Some("bytes 90-99/100"));
    let r = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-5\r\n\r\n");
    assert_eq!(body_bytes(&r), [95, 96, 97, 98, 99]);
    let r = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1000\r\n\r\n");
    assert_eq!(
        (r.status, field(&r, "Content-Range")),
        (Status::PartialContent, Some("bytes 0-99/100"))
    );
}

#[test]
fn range_not_satisfiable_416() {
    let rs = exchange(b"GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=100-\r\n\r\nGET /style.css HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        rs[0].head,
        b"HTTP/1.1 416 Range Not Satisfiable\r\nServer: ringlet-httpd\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 26\r\nContent-Range: bytes */100\r\n\r\n"
    );
    assert_eq!(rs.len(), 2, "416 keeps the connection");
    let r = one(b"GET /zero.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-\r\n\r\n");
    assert_eq!(
        (r.status, field(&r, "Content-Range")),
        (Status::RangeNotSatisfiable, Some("bytes */0"))
    );
    let r = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-0\r\n\r\n");
    assert_eq!(r.status, Status::RangeNotSatisfiable);
}

#[test]
fn several_or_invalid_ranges_get_the_whole_file() {
    for range in [
        "bytes=0-1,5-6",
        "bytes=0-1\r\nRange: bytes=3-4",
        "bytes=5-1",
        "lines=1-2",
        "bytes=x",
    ] {
        let r = one(
            alloc::format!("GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: {range}\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!((r.status, r.body.len()), (Status::Ok, 100), "{range:?}");
        assert_eq!(field(&r, "Content-Range"), None);
    }
}

#[test]
fn if_range_gates_the_range() {
    let req = |if_range: &str| {
        one(alloc::format!(
            "GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=0-0\r\nIf-Range: {if_range}\r\n\r\n"
        )
        .as_bytes())
        .status
    };
    assert_eq!(req(DATA_TAG), Status::PartialContent);
    assert_eq!(req("\"other\""), Status::Ok);
    assert_eq!(req(&alloc::format!("W/{DATA_TAG}")), Status::Ok);
    assert_eq!(req("Wed, 21 Oct 2015 07:28:00 GMT"), Status::Ok);
}

#[test]
fn not_modified_304() {
    let r = one(alloc::format!(
        "GET /data.bin HTTP/1.1\r\nHost: h\r\nIf-None-Match: {DATA_TAG}\r\n\r\n"
    )
    .as_bytes());
    assert_eq!(
        r.head,
        b"HTTP/1.1 304 Not Modified\r\nServer: ringlet-httpd\r\nETag: \"64-65000000-618\"\r\n\r\n"
    );
    assert_eq!(r.body, Body::Empty);
    let status = |inm: &str, extra: &str| {
        one(alloc::format!(
            "GET /data.bin HTTP/1.1\r\nHost: h\r\nIf-None-Match: {inm}\r\n{extra}\r\n"
        )
        .as_bytes())
        .status
    };
    assert_eq!(
        status(&alloc::format!("\"a\", W/{DATA_TAG}"), ""),
        Status::NotModified
    );
    assert_eq!(status("*", ""), Status::NotModified);
    assert_eq!(status("\"a\"", ""), Status::Ok);
    assert_eq!(status("garbage", ""), Status::Ok);
    // If-None-Match is evaluated before Range.
    assert_eq!(
        status(DATA_TAG, "Range: bytes=0-1\r\n"),
        Status::NotModified
    );
    assert_eq!(
        status("\"a\"", "Range: bytes=0-1\r\n"),
        Status::PartialContent
    );
    // On a missing file If-None-Match changes nothing.
    let r = one(b"GET /nope HTTP/1.1\r\nHost: h\r\nIf-None-Match: *\r\n\r\n");
    assert_eq!(r.status, Status::NotFound);
    // The ETag of 200 is the one 304 answers to.
    let full = one(b"GET /data.bin HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(field(&full, "ETag"), Some(DATA_TAG));
}

#[test]
fn empty_file_has_no_body() {
    let r = one(b"GET /zero.txt HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((r.status, r.body), (Status::Ok, Body::Empty));
    assert_eq!(field(&r, "Content-Length"), Some("0"));
}

#[test]
fn rejections_for_head_send_no_body() {
    let rs = exchange(b"HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(
        (rs[0].status, rs[0].body),
        (Status::BadRequest, Body::Empty)
    );
    assert_eq!(field(&rs[0], "Content-Length"), Some("16"));
}

#[test]
fn internal_error_500_closes() {
    let r = response::respond_error(Status::InternalServerError, false);
    check_well_formed(&r);
    assert!(r.close);
    assert_eq!(r.body, Body::Static(b"500 Internal Server Error\n"));
    let r = response::respond_error(Status::NotFound, true);
    assert!(!r.close && r.body == Body::Empty);
}

#[test]
fn redirect_locations_cannot_inject_headers() {
    let mut s = MemSite::new();
    s.insert("a\r\nSet-Cookie: x/index.html", b"!".to_vec(), 0);
    let mut conn = Connection::new();
    conn.receive(b"GET /a%0d%0aSet-Cookie:%20x HTTP/1.1\r\nHost: h\r\n\r\n");
    let Some(Item::Request(req)) = conn.next_item() else {
        panic!()
    };
    let r = respond(&req, &s, false);
    assert_eq!(r.status, Status::MovedPermanently);
    check_well_formed(&r);
    assert_eq!(field(&r, "Location"), Some("/a%0D%0ASet-Cookie:%20x/"));
    assert_eq!(field(&r, "Set-Cookie"), None);
}

#[test]
fn longest_redirect_fits_the_response_bound() {
    // A directory whose name is the longest path a request line allows,
    // every byte needing an escape.
    let name: String = core::iter::repeat_n('\u{7f}', (REQUEST_LINE_BYTES_MAX - 20) / 3).collect();
    let mut s = MemSite::new();
    s.insert(&alloc::format!("{name}/index.html"), b"x".to_vec(), 0);
    let mut target = String::from("/");
    target::encode_path(&name, &mut target);
    let raw = alloc::format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut conn = Connection::new();
    conn.receive(raw.as_bytes());
    let Some(Item::Request(req)) = conn.next_item() else {
        panic!("{:?}", conn.next_item())
    };
    let r = respond(&req, &s, false);
    assert_eq!(r.status, Status::MovedPermanently);
    assert!(r.head.len() <= RESPONSE_HEAD_BYTES_MAX);
}
