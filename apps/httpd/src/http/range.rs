//! The `Range` header: one byte range, resolved against a file's length.
//!
//! - `bytes=a-b`, `bytes=a-` and `bytes=-n` (unit case-insensitive, spaces
//!   and tabs allowed around the range): one range → 206.
//! - A first byte at or past the end, or a suffix of 0 bytes, or any range
//!   of an empty file → 416 (`Content-Range: bytes */len`).
//! - **Several ranges get the whole file (200)**: RFC 9110 lets a server
//!   ignore `Range`, and this spares httpd `multipart/byteranges`.
//! - Anything else (another unit, `b < a`, non-digits, empty) is ignored:
//!   the whole file, 200 — as RFC 9110 asks for an invalid range set.
//! - Numbers too large for 64 bits saturate (a huge first byte is past the
//!   end; a huge last byte or suffix is clamped to the file).

/// What a `Range` asks of a file of a given length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole file (no usable single range).
    Full,
    /// Send bytes `start..end` (end exclusive, `start < end <= len`).
    Partial {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// 416.
    Unsatisfiable,
}

/// A saturating decimal number; `None` if `s` is empty or has a non-digit.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Resolves a `Range` value against a file of `len` bytes.
///
/// # Examples
///
/// ```
/// use ringlet_httpd::http::range::{resolve, RangeOutcome};
/// assert_eq!(resolve("bytes=0-99", 1000), RangeOutcome::Partial { start: 0, end: 100 });
/// assert_eq!(resolve("bytes=-10", 1000), RangeOutcome::Partial { start: 990, end: 1000 });
/// assert_eq!(resolve("bytes=1000-", 1000), RangeOutcome::Unsatisfiable);
/// assert_eq!(resolve("bytes=0-1,5-6", 1000), RangeOutcome::Full);
/// ```
pub fn resolve(value: &str, len: u64) -> RangeOutcome {
    let value = value.trim_matches([' ', '\t']);
    let Some((unit, set)) = value.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim_matches([' ', '\t']).eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let mut specs = set
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        // None at all (invalid) or several (served whole).
        return RangeOutcome::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    if first.is_empty() {
        // Suffix: the last n bytes.
        let Some(n) = number(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial {
            start: len - n.min(len),
            end: len,
        };
    }
    let Some(start) = number(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(l) if l >= start => Some(l),
            _ => return RangeOutcome::Full,
        }
    };
    if start >= len {
        return RangeOutcome::Unsatisfiable;
    }
    let end = end.map_or(len, |l| l.saturating_add(1).min(len));
    RangeOutcome::Partial { start, end }
}

#[cfg(test)]
mod test {
    use super::*;

    fn p(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(resolve("bytes=0-0", 10), p(0, 1));
        assert_eq!(resolve("bytes=0-9", 10), p(0, 10));
        assert_eq!(resolve("bytes=0-100", 10), p(0, 10));
        assert_eq!(resolve("bytes=3-", 10), p(3, 10));
        assert_eq!(resolve("bytes=9-", 10), p(9, 10));
        assert_eq!(resolve("bytes=-3", 10), p(7, 10));
        assert_eq!(resolve("bytes=-10", 10), p(0, 10));
        assert_eq!(resolve("bytes=-11", 10), p(0, 10));
        assert_eq!(resolve("BYTES = 2-4 ", 10), p(2, 5));
        assert_eq!(resolve("bytes=\t2-4,", 10), p(2, 5));
        assert_eq!(resolve("bytes=2-99999999999999999999999", 10), p(2, 10));
        assert_eq!(resolve("bytes=-99999999999999999999999", 10), p(0, 10));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(resolve("bytes=10-", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(resolve("bytes=10-20", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(
            resolve("bytes=99999999999999999999999-", 10),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(resolve("bytes=-0", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(resolve("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(resolve("bytes=-5", 0), RangeOutcome::Unsatisfiable);
    }

    #[test]
    fn ignored_means_full() {
        for v in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-4",
            "bytes=1",
            "bytes=--1",
            "bytes=-",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=1-2-3",
            "bytes=0-1,3-4",
            "bytes=0-1, -2",
        ] {
            assert_eq!(resolve(v, 10), RangeOutcome::Full, "{v:?}");
        }
    }
}
