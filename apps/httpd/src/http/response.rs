//! Responses: what to send for a request, as a head (bytes) and a body
//! plan.
//!
//! [`respond`] decides, in this order (the first that applies wins):
//! 1. a method other than GET or HEAD: 405 with `Allow: GET, HEAD`;
//! 2. a request body announced: 413;
//! 3. an unusable target: 400 (404 for a path that is not UTF-8);
//! 4. the path: a file → step 5; a file with a trailing `/` → 404; a
//!    directory without a trailing `/` → 301 to the same path with one (and
//!    the query); a directory with one → its `index.html` (step 5) or 404;
//!    nothing → 404;
//! 5. `If-None-Match` matching the file's ETag → 304; else `Range` (only if
//!    there is no `If-Range`, or it matches the ETag strongly) → 206 or
//!    416; else 200.
//!
//! HEAD gets the same head as GET and an empty body. Every response has
//! `Server` and, except 304, `Content-Length`; error responses have a
//! short `text/plain` body. There is no `Date` (no trustworthy clock).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use super::etag::{etag, if_range_matches, none_match_matches};
use super::mime::content_type;
use super::range::{resolve, RangeOutcome};
use super::request::{Method, Rejection, Request, RequestBody, Version};
use super::site::{FileInfo, Resource, Site};
use super::status::Status;
use super::target::{encode_path, encode_query, TargetError};
use super::SERVER_NAME;

/// What follows a response's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Nothing (HEAD, 304).
    Empty,
    /// These bytes (error texts).
    Static(&'static [u8]),
    /// `len` bytes of the site's storage from `data_offset` (a file or a
    /// range of one), streamed by the server.
    File {
        /// Byte offset of the first byte to send.
        data_offset: u64,
        /// Bytes to send.
        len: u64,
    },
}

impl Body {
    /// The bytes this body sends.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Static(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Whether it sends nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: Status,
    /// The status line and header fields, with the final empty line.
    pub head: Vec<u8>,
    /// The body to send after the head.
    pub body: Body,
    /// Whether the connection ends after this response (the head says
    /// `Connection: close`).
    pub close: bool,
}

/// A response head being written.
struct Head(Vec<u8>);

impl fmt::Write for Head {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl Head {
    fn new(status: Status) -> Head {
        let mut head = Head(Vec::with_capacity(256));
        // Writing to a Vec cannot fail.
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: {SERVER_NAME}\r\n",
            status.code(),
            status.reason()
        );
        head
    }

    fn field(&mut self, name: &str, value: fmt::Arguments<'_>) {
        let _ = write!(self, "{name}: {value}\r\n");
    }

    fn connection(&mut self, close: bool, version: Version) {
        if close {
            self.field("Connection", format_args!("close"));
        } else if version == Version::Http10 {
            self.field("Connection", format_args!("keep-alive"));
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

/// The text body of an error response.
fn error_text(status: Status) -> &'static [u8] {
    match status {
        Status::Ok => b"200 OK\n",
        Status::PartialContent => b"206 Partial Content\n",
        Status::MovedPermanently => b"301 Moved Permanently\n",
        Status::NotModified => b"",
        Status::BadRequest => b"400 Bad Request\n",
        Status::NotFound => b"404 Not Found\n",
        Status::MethodNotAllowed => b"405 Method Not Allowed\n",
        Status::ContentTooLarge => b"413 Content Too Large\n",
        Status::UriTooLong => b"414 URI Too Long\n",
        Status::RangeNotSatisfiable => b"416 Range Not Satisfiable\n",
        Status::HeaderFieldsTooLarge => b"431 Request Header Fields Too Large\n",
        Status::InternalServerError => b"500 Internal Server Error\n",
        Status::VersionNotSupported => b"505 HTTP Version Not Supported\n",
    }
}

/// An error (or redirect, or 416) response with its text body.
fn error(
    status: Status,
    head_only: bool,
    close: bool,
    version: Version,
    extra: impl FnOnce(&mut Head),
) -> Response {
    let text = error_text(status);
    let mut head = Head::new(status);
    head.field("Content-Type", format_args!("text/plain; charset=utf-8"));
    head.field("Content-Length", format_args!("{}", text.len()));
    extra(&mut head);
    head.connection(close, version);
    Response {
        status,
        head: head.finish(),
        body: if head_only {
            Body::Empty
        } else {
            Body::Static(text)
        },
        close,
    }
}

/// The response for a status without a request to go with it (e.g. 500
/// when the disk fails before a response starts). It closes the connection
/// if the status does ([`Status::closes_connection`]).
pub fn respond_error(status: Status, head_only: bool) -> Response {
    error(
        status,
        head_only,
        status.closes_connection(),
        Version::Http11,
        |_| {},
    )
}

/// The response to a refused head; it always closes the connection.
pub fn respond_rejection(rejection: &Rejection) -> Response {
    let head_only = rejection.method == Some(Method::Head);
    error(rejection.status(), head_only, true, Version::Http11, |_| {})
}

/// The response to `req` from `site` (see the module docs). `closing`:
/// the server is shutting down, so the connection ends after this.
///
/// # Examples
///
/// ```
/// use ringlet_httpd::http::request::{parse, Parse};
/// use ringlet_httpd::http::{respond, Body, MemSite, Status};
///
/// let mut site = MemSite::new();
/// site.insert("docs/index.html", b"<p>docs</p>".to_vec(), 0);
/// let Parse::Complete(req, _) = parse(b"GET /docs HTTP/1.1\r\nHost: h\r\n\r\n") else { panic!() };
/// let r = respond(&req, &site, false);
/// assert_eq!(r.status, Status::MovedPermanently);
/// assert!(r.head.windows(17).any(|w| w == b"Location: /docs/\r"));
/// let Parse::Complete(req, _) = parse(b"HEAD /docs/ HTTP/1.1\r\nHost: h\r\n\r\n") else { panic!() };
/// let r = respond(&req, &site, false);
/// assert_eq!((r.status, r.body), (Status::Ok, Body::Empty));
/// ```
pub fn respond(req: &Request, site: &impl Site, closing: bool) -> Response {
    let head_only = req.method == Method::Head;
    let close = closing || !req.keep_alive;
    let v = req.version;
    match req.method {
        Method::Get | Method::Head => {}
        Method::Other(_) => {
            // A body we do not read ends the connection.
            let close = close || req.body != RequestBody::None;
            return error(Status::MethodNotAllowed, false, close, v, |h| {
                h.field("Allow", format_args!("GET, HEAD"));
            });
        }
    }
    if req.body != RequestBody::None {
        return error(Status::ContentTooLarge, head_only, true, v, |_| {});
    }
    let target = match &req.target {
        Ok(t) => t,
        Err(TargetError::NotUtf8) => return error(Status::NotFound, head_only, close, v, |_| {}),
        Err(_) => return error(Status::BadRequest, head_only, true, v, |_| {}),
    };
    let path = &target.path[1..];
    let trailing_slash = target.path.ends_with('/');
    match site.lookup(path) {
        Resource::File(info) if !trailing_slash => {
            serve_file(req, info, content_type(path), head_only, close)
        }
        Resource::Directory if !trailing_slash => {
            let mut location = String::with_capacity(target.path.len() + 8);
            encode_path(&target.path, &mut location);
            location.push('/');
            if let Some(q) = &target.query {
                location.push('?');
                encode_query(q, &mut location);
            }
            error(Status::MovedPermanently, head_only, close, v, |h| {
                h.field("Location", format_args!("{location}"));
            })
        }
        Resource::Directory => {
            let mut index = String::with_capacity(path.len() + 10);
            index.push_str(path);
            index.push_str("index.html");
            match site.lookup(&index) {
                Resource::File(info) => {
                    serve_file(req, info, content_type(&index), head_only, close)
                }
                _ => error(Status::NotFound, head_only, close, v, |_| {}),
            }
        }
        Resource::File(_) | Resource::Missing => {
            error(Status::NotFound, head_only, close, v, |_| {})
        }
    }
}

fn serve_file(
    req: &Request,
    info: FileInfo,
    content_type: &str,
    head_only: bool,
    close: bool,
) -> Response {
    let tag = etag(&info);
    let v = req.version;
    if let Some(inm) = &req.if_none_match {
        if none_match_matches(inm, &tag) {
            let mut head = Head::new(Status::NotModified);
            head.field("ETag", format_args!("{tag}"));
            head.connection(close, v);
            return Response {
                status: Status::NotModified,
                head: head.finish(),
                body: Body::Empty,
                close,
            };
        }
    }
    let outcome = match (&req.range, &req.if_range) {
        (Some(range), None) => resolve(range, info.size),
        (Some(range), Some(if_range)) if if_range_matches(if_range, &tag) => {
            resolve(range, info.size)
        }
        _ => RangeOutcome::Full,
    };
    let (status, start, end) = match outcome {
        RangeOutcome::Full => (Status::Ok, 0, info.size),
        RangeOutcome::Partial { start, end } => (Status::PartialContent, start, end),
        RangeOutcome::Unsatisfiable => {
            return error(Status::RangeNotSatisfiable, head_only, close, v, |h| {
                h.field("Content-Range", format_args!("bytes */{}", info.size));
            });
        }
    };
    let len = end - start;
    let mut head = Head::new(status);
    head.field("Content-Type", format_args!("{content_type}"));
    head.field("Content-Length", format_args!("{len}"));
    if status == Status::PartialContent {
        head.field(
            "Content-Range",
            format_args!("bytes {start}-{}/{}", end - 1, info.size),
        );
    }
    head.field("ETag", format_args!("{tag}"));
    head.field("Accept-Ranges", format_args!("bytes"));
    head.connection(close, v);
    Response {
        status,
        head: head.finish(),
        body: if head_only || len == 0 {
            Body::Empty
        } else {
            Body::File {
                data_offset: info.data_offset + start,
                len,
            }
        },
        close,
    }
}
