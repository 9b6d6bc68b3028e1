//! Request heads: parsed with `httparse` from the front of a buffer,
//! bounded, and checked field by field.
//!
//! [`parse`] looks at the start of a connection's input and says one of:
//! - [`Parse::Partial`]: no complete head yet, and nothing wrong so far;
//! - [`Parse::Complete`]: a [`Request`] and the bytes its head took;
//! - [`Parse::Rejected`]: a [`Rejection`] whose [`HeadError`] gives the
//!   status (400, 414, 431, 505). The connection ends after answering it.
//!
//! Limits (see the [parent module](super)): the request line is measured
//! first, so a request line longer than
//! [`REQUEST_LINE_BYTES_MAX`] is 414 even
//! while the head is incomplete — unless its first `REQUEST_LINE_BYTES_MAX
//! + 1` bytes already hold a syntax error (400): the verdict depends on
//! that fixed prefix only, so it is the same however the bytes arrive. A
//! head that does not end within [`HEAD_BYTES_MAX`]
//! with a short enough request line is 431. More than
//! [`HEADERS_MAX`] header fields is 431 too.
//!
//! What `httparse` refuses by itself (each checked by a test here): a space
//! or tab before a header's colon, obsolete line folding, control bytes in
//! names or values, a bare CR, a malformed request line, a version other
//! than `HTTP/1.0` and `HTTP/1.1`. It skips empty lines before the request
//! line, as RFC 9112 asks. Checked here: `Host` (one in HTTP/1.1, at most
//! one in HTTP/1.0, and made of URI host characters), `Content-Length`
//! (digits only, one value even when repeated or listed), and
//! `Transfer-Encoding` (never with `Content-Length`, never in HTTP/1.0).

use alloc::string::{String, ToString};
use core::fmt;

use super::status::Status;
use super::target::{parse_target, Target, TargetError};
use super::{HEADERS_MAX, HEAD_BYTES_MAX, REQUEST_LINE_BYTES_MAX};

/// The request method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// Any other token (405), as sent.
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method's name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Other(name) => name,
        }
    }
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: persistent only with `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
}

/// Whether and how a request announces a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (no `Content-Length`, or `Content-Length: 0`).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// A `Transfer-Encoding` (its length is unknown).
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The version.
    pub version: Version,
    /// The request target as sent (for the access log).
    pub raw_target: String,
    /// The decoded target, or why it is unusable.
    pub target: Result<Target, TargetError>,
    /// Whether the client wants the connection kept open after this
    /// request (by version and `Connection`).
    pub keep_alive: bool,
    /// The announced body.
    pub body: RequestBody,
    /// `If-None-Match` (several fields joined with `, `).
    pub if_none_match: Option<String>,
    /// `Range` (several fields joined with `,`, which makes them several
    /// ranges).
    pub range: Option<String>,
    /// `If-Range` (a second field makes it empty, which matches nothing).
    pub if_range: Option<String>,
    /// Bytes the head took in the input.
    pub head_bytes: usize,
}

/// Why a request head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// httparse refused the syntax (400).
    Malformed(httparse::Error),
    /// `HTTP/x.y` with a version other than 1.0 and 1.1 (505).
    UnsupportedVersion,
    /// The request line is longer than
    /// [`REQUEST_LINE_BYTES_MAX`] (414).
    RequestLineTooLong,
    /// The head does not end within
    /// [`HEAD_BYTES_MAX`] (431).
    HeadTooLarge,
    /// More than [`HEADERS_MAX`] header fields (431).
    TooManyHeaders,
    /// HTTP/1.1 without `Host` (400).
    MissingHost,
    /// More than one `Host` (400).
    DuplicateHost,
    /// A `Host` with characters no URI host has (400).
    InvalidHost,
    /// `Transfer-Encoding` together with `Content-Length` (400).
    TransferEncodingWithContentLength,
    /// `Transfer-Encoding` in an HTTP/1.0 request (400).
    TransferEncodingInHttp10,
    /// A `Content-Length` that is not a number, or several different ones
    /// (400).
    InvalidContentLength,
}

impl HeadError {
    /// The response status for this error.
    pub fn status(self) -> Status {
        match self {
            HeadError::UnsupportedVersion => Status::VersionNotSupported,
            HeadError::RequestLineTooLong => Status::UriTooLong,
            HeadError::HeadTooLarge | HeadError::TooManyHeaders => Status::HeaderFieldsTooLarge,
            HeadError::Malformed(_)
            | HeadError::MissingHost
            | HeadError::DuplicateHost
            | HeadError::InvalidHost
            | HeadError::TransferEncodingWithContentLength
            | HeadError::TransferEncodingInHttp10
            | HeadError::InvalidContentLength => Status::BadRequest,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Malformed(e) => write!(f, "malformed request: {e}"),
            HeadError::UnsupportedVersion => f.write_str("unsupported HTTP version"),
            HeadError::RequestLineTooLong => f.write_str("request line too long"),
            HeadError::HeadTooLarge => f.write_str("request head too large"),
            HeadError::TooManyHeaders => f.write_str("too many header fields"),
            HeadError::MissingHost => f.write_str("HTTP/1.1 request without Host"),
            HeadError::DuplicateHost => f.write_str("more than one Host"),
            HeadError::InvalidHost => f.write_str("invalid Host"),
            HeadError::TransferEncodingWithContentLength => {
                f.write_str("Transfer-Encoding together with Content-Length")
            }
            HeadError::TransferEncodingInHttp10 => f.write_str("Transfer-Encoding in HTTP/1.0"),
            HeadError::InvalidContentLength => f.write_str("invalid Content-Length"),
        }
    }
}

impl core::error::Error for HeadError {}

/// A refused request head, with what was understood of it (for the
/// response and the access log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub error: HeadError,
    /// The method, if it was parsed.
    pub method: Option<Method>,
    /// The target as sent, if it was parsed (else empty).
    pub raw_target: String,
}

impl Rejection {
    /// The response status.
    pub fn status(&self) -> Status {
        self.error.status()
    }
}

/// What [`parse`] found at the start of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    /// No complete head yet; nothing wrong so far.
    Partial,
    /// A request; its head took `.1` bytes.
    Complete(Request, usize),
    /// A refused head.
    Rejected(Rejection),
}

/// The request line's length (without its line end), and whether its end
/// was seen. Without an end the length is a lower bound.
fn request_line_len(buf: &[u8]) -> (usize, bool) {
    match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => (
            if nl > 0 && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            },
            true,
        ),
        None => (buf.len() - usize::from(buf.last() == Some(&b'\r')), false),
    }
}

/// Whether `line` (a complete request line) ends in a well-formed
/// `HTTP/d.d` version as its third space-separated word.
fn has_http_version(line: &[u8]) -> bool {
    let mut words = line.split(|&b| b == b' ');
    let (Some(_), Some(_), Some(v), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    matches!(v, [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit())
}

/// Characters a `Host` value may have: those of a URI host and port
/// (reg-name, IP literal, IPv4, `:` port); empty is allowed.
fn valid_host(value: &[u8]) -> bool {
    value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            )
    })
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Folds one `Content-Length` field value into `current`.
fn content_length(value: &[u8], current: &mut Option<u64>) -> Result<(), HeadError> {
    for element in value.split(|&b| b == b',') {
        let digits = trim_ows(element);
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::InvalidContentLength);
        }
        let n = digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        match current {
            Some(previous) if *previous != n => return Err(HeadError::InvalidContentLength),
            _ => *current = Some(n),
        }
    }
    Ok(())
}

/// The tokens of a `Connection` value: (close, keep-alive).
fn connection_tokens(value: &[u8]) -> (bool, bool) {
    let mut close = false;
    let mut keep_alive = false;
    for token in value.split(|&b| b == b',') {
        let token = trim_ows(token);
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    (close, keep_alive)
}

fn append(field: &mut Option<String>, value: &[u8], separator: &str) {
    let value = String::from_utf8_lossy(value);
    match field {
        Some(s) => {
            s.push_str(separator);
            s.push_str(&value);
        }
        None => *field = Some(value.into_owned()),
    }
}

/// Parses the request head at the start of `buf` (see the module docs).
///
/// # Examples
///
/// ```
/// use ringlet_httpd::http::request::{parse, HeadError, Parse};
///
/// let Parse::Complete(req, n) = parse(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nrest") else {
///     panic!()
/// };
/// assert_eq!((req.raw_target.as_str(), n), ("/a", 28));
/// assert_eq!(parse(b"GET /a HTTP/1.1\r\nHo"), Parse::Partial);
/// let Parse::Rejected(r) = parse(b"GET /a HTTP/1.1\r\n\r\n") else { panic!() };
/// assert_eq!(r.error, HeadError::MissingHost);
/// ```
pub fn parse(buf: &[u8]) -> Parse {
    // The request line starts after any empty lines (which httparse skips).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let (line_len, line_complete) = request_line_len(line);
    if line_len > REQUEST_LINE_BYTES_MAX {
        return too_long_line(&buf[..start + REQUEST_LINE_BYTES_MAX + 1]);
    }
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let result = req.parse(buf);
    let method = req.method.map(Method::from_token);
    let raw_target = req.path.unwrap_or("");
    let head_bytes = match result {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= HEAD_BYTES_MAX {
                return reject(HeadError::HeadTooLarge, method, raw_target);
            }
            return Parse::Partial;
        }
        Err(httparse::Error::TooManyHeaders) => {
            return reject(HeadError::TooManyHeaders, method, raw_target);
        }
        Err(httparse::Error::Version) => {
            if !line_complete {
                // "HTTP/2.0" fails at its first digit: wait for the whole
                // line to tell a version we do not speak from garbage.
                if buf.len() >= HEAD_BYTES_MAX {
                    return reject(HeadError::HeadTooLarge, method, raw_target);
                }
                return Parse::Partial;
            }
            let error = if has_http_version(&line[..line_len]) {
                HeadError::UnsupportedVersion
            } else {
                HeadError::Malformed(httparse::Error::Version)
            };
            return reject(error, method, raw_target);
        }
        Err(e) => return reject(HeadError::Malformed(e), method, raw_target),
    };
    if head_bytes > HEAD_BYTES_MAX {
        return reject(HeadError::HeadTooLarge, method, raw_target);
    }
    let method = method.unwrap_or(Method::Get);
    let version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    match check_fields(req.headers, version) {
        Ok(fields) => Parse::Complete(
            Request {
                method,
                version,
                raw_target: raw_target.to_string(),
                target: parse_target(raw_target),
                keep_alive: match version {
                    Version::Http11 => !fields.close,
                    Version::Http10 => fields.keep_alive && !fields.close,
                },
                body: fields.body,
                if_none_match: fields.if_none_match,
                range: fields.range,
                if_range: fields.if_range,
                head_bytes,
            },
            head_bytes,
        ),
        Err(error) => reject(error, Some(method), raw_target),
    }
}

/// The verdict on a request line longer than the limit, from its first
/// `REQUEST_LINE_BYTES_MAX + 1` bytes only (`prefix`, leading empty lines
/// included): a syntax error httparse finds in them is that error (400),
/// otherwise 414. Judging a fixed prefix makes the answer the same however
/// the bytes arrive (httparse reports an error in a prefix as soon as it
/// has the prefix, and never takes one back).
fn too_long_line(prefix: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; 1];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(prefix) {
        Err(e) => reject(
            HeadError::Malformed(e),
            req.method.map(Method::from_token),
            "",
        ),
        Ok(_) => reject(
            HeadError::RequestLineTooLong,
            req.method.map(Method::from_token),
            "",
        ),
    }
}

fn reject(error: HeadError, method: Option<Method>, raw_target: &str) -> Parse {
    Parse::Rejected(Rejection {
        error,
        method,
        raw_target: raw_target.to_string(),
    })
}

/// What the header fields say, once checked.
struct Fields {
    close: bool,
    keep_alive: bool,
    body: RequestBody,
    if_none_match: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
}

fn check_fields(headers: &[httparse::Header<'_>], version: Version) -> Result<Fields, HeadError> {
    let mut hosts = 0usize;
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut fields = Fields {
        close: false,
        keep_alive: false,
        body: RequestBody::None,
        if_none_match: None,
        range: None,
        if_range: None,
    };
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(h.value) {
                return Err(HeadError::InvalidHost);
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length(h.value, &mut length)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            let (close, keep_alive) = connection_tokens(h.value);
            fields.close |= close;
            fields.keep_alive |= keep_alive;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            append(&mut fields.if_none_match, h.value, ", ");
        } else if name.eq_ignore_ascii_case("range") {
            append(&mut fields.range, h.value, ",");
        } else if name.eq_ignore_ascii_case("if-range") {
            fields.if_range = match fields.if_range {
                Some(_) => Some(String::new()),
                None => Some(String::from_utf8_lossy(h.value).into_owned()),
            };
        }
    }
    if hosts > 1 {
        return Err(HeadError::DuplicateHost);
    }
    if hosts == 0 && version == Version::Http11 {
        return Err(HeadError::MissingHost);
    }
    if transfer_encoding {
        if length.is_some() {
            return Err(HeadError::TransferEncodingWithContentLength);
        }
        if version == Version::Http10 {
            return Err(HeadError::TransferEncodingInHttp10);
        }
        fields.body = RequestBody::Chunked;
    } else if let Some(n) = length.filter(|&n| n > 0) {
        fields.body = RequestBody::Length(n);
    }
    Ok(fields)
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::vec::Vec;

    fn ok(input: &[u8]) -> Request {
        match parse(input) {
            Parse::Complete(req, n) => {
                assert_eq!(n, req.head_bytes);
                req
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn err(input: &[u8]) -> HeadError {
        match parse(input) {
            Parse::Rejected(r) => r.error,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn a_simple_get() {
        let input = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let req = ok(input);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.version, Version::Http11);
        assert_eq!(req.raw_target, "/index.html");
        assert_eq!(req.target.as_ref().unwrap().path, "/index.html");
        assert!(req.keep_alive);
        assert_eq!(req.body, RequestBody::None);
        assert_eq!(req.head_bytes, input.len());
    }

    #[test]
    fn bare_lf_line_ends_and_leading_empty_lines() {
        let req = ok(b"\r\n\nHEAD / HTTP/1.1\nHost: h\n\n");
        assert_eq!(req.method, Method::Head);
        assert_eq!(req.head_bytes, 28);
    }

    #[test]
    fn partial_heads_wait() {
        let full = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Parse::Partial, "cut at {cut}");
        }
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        let ka = |input: &[u8]| ok(input).keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        // keep-alive is meaningless but harmless in 1.1.
        assert!(ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
        ));
    }

    #[test]
    fn host_rules() {
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), HeadError::MissingHost);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            HeadError::DuplicateHost
        );
        assert_eq!(
            err(b"GET / HTTP/1.0\r\nhost: a\r\nHOST: b\r\n\r\n"),
            HeadError::DuplicateHost
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            HeadError::InvalidHost
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            HeadError::InvalidHost
        );
        // HTTP/1.0 needs none; an empty Host is allowed; ports and IP literals.
        ok(b"GET / HTTP/1.0\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHost: 10.0.0.2:8080\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    }

    #[test]
    fn content_length_rules() {
        let body = |input: &[u8]| ok(input).body;
        assert_eq!(
            body(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
            RequestBody::None
        );
        assert_eq!(
            body(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n"),
            RequestBody::Length(12)
        );
        // Repeated or listed, all equal: one value.
        assert_eq!(
            body(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n"),
            RequestBody::Length(5)
        );
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert_eq!(
                err(bad),
                HeadError::InvalidContentLength,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The largest value that fits in 19 digits is fine.
        assert_eq!(
            body(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n"),
            RequestBody::Length(9_999_999_999_999_999_999)
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").body,
            RequestBody::Chunked
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            HeadError::TransferEncodingWithContentLength
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::TransferEncodingWithContentLength
        );
        assert_eq!(
            err(b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::TransferEncodingInHttp10
        );
    }

    #[test]
    fn httparse_refuses_whitespace_before_the_colon_and_folding() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
            HeadError::Malformed(httparse::Error::HeaderName)
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"),
            HeadError::Malformed(httparse::Error::HeaderName)
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n"),
            HeadError::Malformed(httparse::Error::HeaderName)
        );
        // Obsolete line folding.
        assert!(matches!(
            err(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        // A header line starting with whitespace.
        assert!(matches!(
            err(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
            HeadError::Malformed(_)
        ));
    }

    #[test]
    fn httparse_refuses_bad_bytes_and_lines() {
        for (bad, want) in [
            (
                &b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"[..],
                httparse::Error::HeaderValue,
            ),
            (
                b"GET / HTTP/1.1\r\nHo\x01st: h\r\n\r\n",
                httparse::Error::HeaderName,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n",
                httparse::Error::HeaderValue,
            ),
            (b"GET /\r\n\r\n", httparse::Error::Token),
            (b"G@T / HTTP/1.1\r\n\r\n", httparse::Error::Token),
            (b" GET / HTTP/1.1\r\n\r\n", httparse::Error::Token),
            (b"GET / HTTP/1.1\rX\n\r\n", httparse::Error::NewLine),
        ] {
            assert_eq!(
                err(bad),
                HeadError::Malformed(want),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn versions() {
        assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").version, Version::Http10);
        assert_eq!(
            err(b"GET / HTTP/2.0\r\n\r\n"),
            HeadError::UnsupportedVersion
        );
        assert_eq!(
            err(b"GET / HTTP/1.2\r\n\r\n"),
            HeadError::UnsupportedVersion
        );
        assert_eq!(
            err(b"GET / HTTP/0.9\r\n\r\n"),
            HeadError::UnsupportedVersion
        );
        // Garbage where the version goes is malformed, not 505.
        for bad in [
            &b"GET / HTTP/2\r\n\r\n"[..],
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"GET /  HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.0\r\n\r\n",
        ] {
            assert!(
                matches!(err(bad), HeadError::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // An unsupported version waits for its line end before it is judged.
        assert_eq!(parse(b"GET / HTTP/2.0"), Parse::Partial);
        assert_eq!(parse(b"GET / HTTP/2.0\r"), Parse::Partial);
    }

    #[test]
    fn request_line_limit_is_414_even_before_the_head_ends() {
        let mut line = Vec::from(&b"GET /"[..]);
        line.resize(REQUEST_LINE_BYTES_MAX - " HTTP/1.1".len(), b'a');
        line.extend_from_slice(b" HTTP/1.1");
        assert_eq!(line.len(), REQUEST_LINE_BYTES_MAX);
        let mut at_limit = line.clone();
        at_limit.extend_from_slice(b"\r\nHost: h\r\n\r\n");
        ok(&at_limit);
        // One byte more: 414, complete or not, whatever follows.
        let mut over = Vec::from(&b"GET /a"[..]);
        over.extend_from_slice(&line[5..]);
        assert_eq!(over.len(), REQUEST_LINE_BYTES_MAX + 1);
        assert_eq!(
            err(&[&over[..], b"\r\nHost: h\r\n\r\n"].concat()),
            HeadError::RequestLineTooLong
        );
        assert_eq!(err(&over), HeadError::RequestLineTooLong);
        // Exactly at the limit without a line end yet: still waiting; a
        // trailing CR does not count.
        assert_eq!(parse(&line), Parse::Partial);
        assert_eq!(parse(&[&line[..], b"\r"].concat()), Parse::Partial);
        // One byte past the limit that makes the line malformed: 400.
        assert_eq!(
            err(&[&line[..], b"x"].concat()),
            HeadError::Malformed(httparse::Error::NewLine)
        );
    }

    #[test]
    fn a_long_line_is_judged_by_its_first_bytes_however_they_arrive() {
        // Found by the fuzz target: a syntax error early in a line longer
        // than the limit was 414 when the line came at once and 400 when it
        // came in pieces (httparse saw the error before the limit did).
        let mut line = Vec::from(&b"GET  /x"[..]);
        line.resize(REQUEST_LINE_BYTES_MAX + 100, b'a');
        let whole = err(&[&line[..], b" HTTP/1.1\r\nHost: h\r\n\r\n"].concat());
        let early = err(&line[..10]);
        assert_eq!(whole, early);
        assert_eq!(whole, HeadError::Malformed(httparse::Error::Token));
        // An error past the limit is not looked at: 414 both ways.
        let mut line = Vec::from(&b"GET /"[..]);
        line.resize(REQUEST_LINE_BYTES_MAX + 1, b'a');
        line.extend_from_slice(b"\x01 HTTP/1.1\r\n\r\n");
        assert_eq!(err(&line), HeadError::RequestLineTooLong);
        assert_eq!(
            err(&line[..REQUEST_LINE_BYTES_MAX + 1]),
            HeadError::RequestLineTooLong
        );
    }

    #[test]
    fn header_limits_are_431() {
        let mut many = Vec::from(&b"GET / HTTP/1.1\r\nHost: h\r\n"[..]);
        for i in 0..HEADERS_MAX - 1 {
            many.extend_from_slice(alloc::format!("X-{i}: v\r\n").as_bytes());
        }
        let mut fits = many.clone();
        fits.extend_from_slice(b"\r\n");
        ok(&fits);
        many.extend_from_slice(b"X-last: v\r\n\r\n");
        assert_eq!(err(&many), HeadError::TooManyHeaders);

        // A short request line, then a head that does not end in time.
        let mut long = Vec::from(&b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: "[..]);
        long.resize(HEAD_BYTES_MAX, b'v');
        assert_eq!(err(&long), HeadError::HeadTooLarge);
        long.truncate(HEAD_BYTES_MAX - 1);
        assert_eq!(parse(&long), Parse::Partial);
    }

    #[test]
    fn conditional_and_range_fields() {
        let req = ok(b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nIf-None-Match: W/\"b\"\r\nRange: bytes=0-1\r\nIf-Range: \"a\"\r\n\r\n");
        assert_eq!(req.if_none_match.as_deref(), Some("\"a\", W/\"b\""));
        assert_eq!(req.range.as_deref(), Some("bytes=0-1"));
        assert_eq!(req.if_range.as_deref(), Some("\"a\""));
        let req = ok(b"GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nRange: bytes=4-5\r\nIf-Range: \"a\"\r\nIf-Range: \"a\"\r\n\r\n");
        assert_eq!(req.range.as_deref(), Some("bytes=0-1,bytes=4-5"));
        assert_eq!(req.if_range.as_deref(), Some(""));
    }

    #[test]
    fn rejections_keep_what_was_understood() {
        let Parse::Rejected(r) = parse(b"HEAD /x HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert_eq!(
            (r.method.clone(), r.raw_target.as_str()),
            (Some(Method::Head), "/x")
        );
        assert_eq!(r.status(), Status::BadRequest);
        let Parse::Rejected(r) = parse(b"\x01") else {
            panic!()
        };
        assert_eq!((r.method, r.raw_target.as_str()), (None, ""));
    }

    #[test]
    fn other_methods_parse() {
        let req = ok(b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req.method, Method::Other("DELETE".into()));
        assert_eq!(req.method.as_str(), "DELETE");
        let req = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req.target, Err(TargetError::Form));
    }
}
