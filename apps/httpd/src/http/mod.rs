//! The sans-IO HTTP/1.1 core: bytes in, response plans out.
//!
//! Nothing here reads a socket, a disk or a clock. A connection's input goes
//! into a [`Connection`] (a bounded buffer and a bounded queue of parsed
//! requests); each queued [`Item`] is turned into a [`Response`] by
//! [`respond`] against a [`Site`] (path → file metadata). A response is a
//! head (bytes to send) and a body plan ([`Body`]: nothing, static bytes, or
//! a byte range of a file on the disk) that the server streams.
//!
//! ```
//! use ringlet_httpd::http::{respond, Connection, Item, MemSite, Status};
//!
//! let mut site = MemSite::new();
//! site.insert("index.html", b"<h1>hi</h1>".to_vec(), 1_700_000_000);
//! let mut conn = Connection::new();
//! conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
//! let Some(Item::Request(first)) = conn.next_item() else { panic!() };
//! assert_eq!(respond(&first, &site, false).status, Status::Ok);
//! let Some(Item::Request(second)) = conn.next_item() else { panic!() };
//! assert_eq!(respond(&second, &site, false).status, Status::NotFound);
//! assert!(conn.next_item().is_none() && conn.wants_input());
//! ```
//!
//! # Rules
//!
//! - Requests are parsed with `httparse` ([`request`]); the head must fit
//!   in [`HEAD_BYTES_MAX`], the request line in [`REQUEST_LINE_BYTES_MAX`]
//!   (414 otherwise, detected as soon as no line end is found within it),
//!   the header fields in [`HEADERS_MAX`] and the rest of the head (431).
//! - Persistent connections: HTTP/1.1 unless `Connection: close`; HTTP/1.0
//!   only with `Connection: keep-alive`. Pipelined requests are queued (at
//!   most [`PIPELINE_DEPTH_MAX`]) and answered in order.
//! - GET and HEAD (HEAD gets exactly GET's header fields, Range included,
//!   and no body); any other method 405 with `Allow: GET, HEAD`.
//! - 400 for malformed requests: httparse's errors (which include
//!   whitespace before a header colon and obsolete line folding), HTTP/1.1
//!   without `Host` or with two, an invalid `Host`, `Transfer-Encoding`
//!   with `Content-Length`, `Transfer-Encoding` in HTTP/1.0, an invalid or
//!   conflicting `Content-Length`, a bad percent-escape, a NUL or a `..`
//!   segment in the path. 505 for `HTTP/x.y` other than 1.0 and 1.1.
//! - 413 for a GET or HEAD that announces a body (the server reads none).
//! - A single byte range (206; 416 with `Content-Range: bytes */len`);
//!   several ranges get the full 200 ([`range`]).
//! - Strong `ETag`s from the tar entry's size, mtime and data offset;
//!   `If-None-Match` → 304, `If-Range` ([`etag`]).
//! - `Content-Type` by extension ([`mime`]); `index.html` for directories;
//!   `/dir` → 301 to `/dir/`.
//! - No `Date` header (no trustworthy clock); `Server: ringlet-httpd`.
//! - Responses that end the connection (400, 413, 414, 431, 500, 505, and
//!   any request that asked for it) carry `Connection: close`.
#![forbid(unsafe_code)]

pub mod conn;
pub mod etag;
pub mod mime;
pub mod range;
pub mod request;
pub mod response;
pub mod site;
pub mod status;
pub mod target;

pub use conn::{Connection, Item};
pub use request::{HeadError, Method, Rejection, Request, Version};
pub use response::{respond, respond_error, Body, Response};
pub use site::{FileInfo, MemSite, Resource, Site};
pub use status::Status;

/// The most bytes a request head (request line, header fields, the empty
/// line) may take; a head not complete within it is refused (414 or 431).
/// It is also the size of a connection's input buffer.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;

/// The longest request line (method, target, version; without the line
/// end); longer is 414.
pub const REQUEST_LINE_BYTES_MAX: usize = 4 * 1024;

/// The most header fields in a request; more is 431.
pub const HEADERS_MAX: usize = 48;

/// Pipelined requests parsed and queued per connection before it stops
/// reading (the rest waits in the input buffer, then in TCP's window).
pub const PIPELINE_DEPTH_MAX: usize = 16;

/// The `Server` header's value.
pub const SERVER_NAME: &str = "ringlet-httpd";

/// The largest response head [`respond`] makes (the `Location` of a
/// redirect is the only part that grows with the request: at most three
/// bytes per byte of the request line).
pub const RESPONSE_HEAD_BYTES_MAX: usize = 1024 + 3 * REQUEST_LINE_BYTES_MAX;

const _: () = assert!(REQUEST_LINE_BYTES_MAX < HEAD_BYTES_MAX);
const _: () = assert!(PIPELINE_DEPTH_MAX > 0 && HEADERS_MAX > 0);

#[cfg(test)]
mod tests;
