//! The request target: origin- or absolute-form, percent-decoded into a path
//! and a raw query, and the path percent-encoded again for `Location`.
//!
//! The path is decoded once (`%2e%2e` is `..`), then checked: an escape that
//! is not `%` and two hex digits, a decoded NUL, or a `..` segment is an
//! error; a decoded path that is not UTF-8 cannot name any entry of the tar
//! store (whose paths are UTF-8). The query is kept as sent and never
//! interpreted (it does not select a file).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A decoded request target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The decoded path; starts with `/`.
    pub path: String,
    /// The query as sent, without the `?` (`None` when there was no `?`).
    pub query: Option<String>,
}

/// Why a request target was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// Neither origin-form (`/path`) nor absolute-form (`http://host/path`)
    /// (e.g. `*` or a bare word).
    Form,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The path decodes to a NUL byte.
    Nul,
    /// The path has a `..` segment (after decoding).
    DotDot,
    /// The decoded path is not UTF-8 (no entry can have it).
    NotUtf8,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetError::Form => "request target is neither a path nor an absolute URI",
            TargetError::BadEscape => "bad percent-escape in the path",
            TargetError::Nul => "the path contains a NUL byte",
            TargetError::DotDot => "the path contains a '..' segment",
            TargetError::NotUtf8 => "the decoded path is not UTF-8",
        })
    }
}

impl core::error::Error for TargetError {}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits off the scheme and authority of an absolute-form target;
/// returns the rest (path, query), or `None` if `raw` is not absolute-form.
fn strip_absolute(raw: &str) -> Option<&str> {
    let scheme_end = raw.find("://")?;
    let scheme = &raw[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[authority_end..])
}

/// Parses and decodes a request target.
///
/// # Errors
///
/// See [`TargetError`].
///
/// # Examples
///
/// ```
/// use ringlet_httpd::http::target::{parse_target, TargetError};
///
/// let t = parse_target("/a%20b/c.html?x=1").unwrap();
/// assert_eq!((t.path.as_str(), t.query.as_deref()), ("/a b/c.html", Some("x=1")));
/// assert_eq!(parse_target("http://example.com").unwrap().path, "/");
/// assert_eq!(parse_target("/a/%2e%2e/b"), Err(TargetError::DotDot));
/// assert_eq!(parse_target("*"), Err(TargetError::Form));
/// ```
pub fn parse_target(raw: &str) -> Result<Target, TargetError> {
    let rest = if raw.starts_with('/') {
        raw
    } else {
        strip_absolute(raw).ok_or(TargetError::Form)?
    };
    // A fragment is never sent by a conforming client; cut it if it is.
    let rest = rest.split('#').next().unwrap_or("");
    let (raw_path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(String::from(q))),
        None => (rest, None),
    };
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    if !raw_path.starts_with('/') {
        return Err(TargetError::Form);
    }
    let bytes = raw_path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(hi), Some(lo)) => decoded.push(hi << 4 | lo),
                _ => return Err(TargetError::BadEscape),
            }
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    if decoded.contains(&0) {
        return Err(TargetError::Nul);
    }
    if decoded.split(|&b| b == b'/').any(|seg| seg == b"..") {
        return Err(TargetError::DotDot);
    }
    let path = String::from_utf8(decoded).map_err(|_| TargetError::NotUtf8)?;
    Ok(Target { path, query })
}

/// Whether a byte may appear in a path unescaped (RFC 3986 `pchar` and
/// `/`, minus `%`).
fn path_safe(b: u8) -> bool {
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
                | b'@'
                | b'/'
        )
}

/// Appends `path` to `out`, percent-encoding every byte that is not safe in
/// a path (so the result has no space, control byte or non-ASCII byte).
pub fn encode_path(path: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in path.as_bytes() {
        if path_safe(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// Appends a raw query to `out`, escaping what may not appear in a header
/// value or a URI (`%` stays: the query is already encoded).
pub fn encode_query(query: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in query.as_bytes() {
        if path_safe(b) || b == b'?' || b == b'%' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn path(raw: &str) -> Result<String, TargetError> {
        parse_target(raw).map(|t| t.path)
    }

    #[test]
    fn origin_form() {
        assert_eq!(path("/").unwrap(), "/");
        assert_eq!(path("/index.html").unwrap(), "/index.html");
        assert_eq!(path("/a//b/./c").unwrap(), "/a//b/./c");
        let t = parse_target("/x?").unwrap();
        assert_eq!(t.query.as_deref(), Some(""));
        let t = parse_target("/x?a=1?b#frag").unwrap();
        assert_eq!((t.path.as_str(), t.query.as_deref()), ("/x", Some("a=1?b")));
        assert_eq!(parse_target("/x#f").unwrap().query, None);
    }

    #[test]
    fn absolute_form() {
        assert_eq!(path("http://h/a/b").unwrap(), "/a/b");
        assert_eq!(path("HTTPS://h:8080").unwrap(), "/");
        let t = parse_target("http://h?q").unwrap();
        assert_eq!((t.path.as_str(), t.query.as_deref()), ("/", Some("q")));
        assert_eq!(path("ftp://h/a"), Err(TargetError::Form));
        assert_eq!(path("*"), Err(TargetError::Form));
        assert_eq!(path("index.html"), Err(TargetError::Form));
        assert_eq!(path("h:80"), Err(TargetError::Form));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(path("/a%20b").unwrap(), "/a b");
        assert_eq!(path("/%41%4a%4A").unwrap(), "/AJJ");
        assert_eq!(path("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(path("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(path("/%"), Err(TargetError::BadEscape));
        assert_eq!(path("/%4"), Err(TargetError::BadEscape));
        assert_eq!(path("/%zz"), Err(TargetError::BadEscape));
        assert_eq!(path("/%g0"), Err(TargetError::BadEscape));
        assert_eq!(path("/a%00b"), Err(TargetError::Nul));
        assert_eq!(path("/%C3"), Err(TargetError::NotUtf8));
        assert_eq!(path("/%ff"), Err(TargetError::NotUtf8));
    }

    #[test]
    fn dot_dot_is_refused_encoded_or_not() {
        for raw in [
            "/..",
            "/../etc/passwd",
            "/a/../b",
            "/a/..",
            "/%2e%2e/x",
            "/%2E%2E",
            "/.%2e/x",
            "/a%2f..%2fb",
            "http://h/../x",
        ] {
            assert_eq!(path(raw), Err(TargetError::DotDot), "{raw}");
        }
        // Not a `..` segment.
        assert_eq!(path("/a..b").unwrap(), "/a..b");
        assert_eq!(path("/.../x").unwrap(), "/.../x");
        assert_eq!(path("/..a").unwrap(), "/..a");
    }

    #[test]
    fn encoding_round_trips_and_is_header_safe() {
        let mut out = String::new();
        encode_path("/a b/c\r\nd/é%", &mut out);
        assert_eq!(out, "/a%20b/c%0D%0Ad/%C3%A9%25");
        assert_eq!(path(&out).unwrap(), "/a b/c\r\nd/é%");
        let mut q = String::new();
        encode_query("a=1&b=%20 c\"", &mut q);
        assert_eq!(q, "a=1&b=%20%20c%22");
    }
}
