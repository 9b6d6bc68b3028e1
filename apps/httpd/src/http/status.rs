//! Response status codes httpd sends.

use core::fmt;

/// A response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 200.
    Ok,
    /// 206: one byte range of the file.
    PartialContent,
    /// 301: a directory asked for without its trailing slash.
    MovedPermanently,
    /// 304: `If-None-Match` matched.
    NotModified,
    /// 400: a malformed request.
    BadRequest,
    /// 404.
    NotFound,
    /// 405: a method other than GET and HEAD.
    MethodNotAllowed,
    /// 413: the request announced a body.
    ContentTooLarge,
    /// 414: the request line is longer than
    /// [`REQUEST_LINE_BYTES_MAX`](super::REQUEST_LINE_BYTES_MAX).
    UriTooLong,
    /// 416: the range starts past the end of the file.
    RangeNotSatisfiable,
    /// 431: the header fields are too many or too long.
    HeaderFieldsTooLarge,
    /// 500: the disk failed before the response started.
    InternalServerError,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl Status {
    /// Every status, for tests.
    pub const ALL: [Status; 13] = [
        Status::Ok,
        Status::PartialContent,
        Status::MovedPermanently,
        Status::NotModified,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::ContentTooLarge,
        Status::UriTooLong,
        Status::RangeNotSatisfiable,
        Status::HeaderFieldsTooLarge,
        Status::InternalServerError,
        Status::VersionNotSupported,
    ];

    /// The three-digit code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase (RFC 9110's).
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::PartialContent => "Partial Content",
            Status::MovedPermanently => "Moved Permanently",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }

    /// Whether the connection ends after this response: the request was
    /// malformed (its framing can no longer be trusted), its body was left
    /// unread, or the server failed.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::ContentTooLarge
                | Status::UriTooLong
                | Status::HeaderFieldsTooLarge
                | Status::InternalServerError
                | Status::VersionNotSupported
        )
    }

    /// Whether a response with this status carries a body (304 never does).
    pub fn has_body(self) -> bool {
        self != Status::NotModified
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn codes_and_reasons_are_distinct() {
        for (i, a) in Status::ALL.iter().enumerate() {
            for b in &Status::ALL[i + 1..] {
                assert_ne!(a.code(), b.code());
                assert_ne!(a.reason(), b.reason());
            }
            assert!((200..600).contains(&a.code()));
        }
        assert_eq!(alloc::format!("{}", Status::NotFound), "404 Not Found");
    }

    #[test]
    fn which_statuses_close() {
        let closing: alloc::vec::Vec<u16> = Status::ALL
            .iter()
            .filter(|s| s.closes_connection())
            .map(|s| s.code())
            .collect();
        assert_eq!(closing, [400, 413, 414, 431, 500, 505]);
        assert!(!Status::NotModified.has_body());
        assert!(Status::NotFound.has_body());
    }
}
