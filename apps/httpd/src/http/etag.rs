//! Entity tags: made from a tar entry, compared against `If-None-Match`
//! and `If-Range`.
//!
//! httpd's ETags are **strong**: `"<size>-<mtime>-<offset>"` in hex, from
//! the entry's size, modification time and the byte offset of its data in
//! the archive. The archive is read-only for the life of the appliance, so
//! two responses with the same tag have the same bytes; a new image that
//! moves, resizes or re-dates a file changes its tag. (A rebuilt image with
//! a file of the same size, mtime and offset but other bytes would keep the
//! tag: the same trade nginx makes with size and mtime.) Strong tags allow
//! `If-Range`, which needs strong comparison.
//!
//! `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/"x"`
//! matches `"x"`. `*` matches any file. A malformed list matches nothing.

use alloc::string::String;
use core::fmt::Write as _;

use super::site::FileInfo;

/// The strong ETag of a file, quotes included.
///
/// # Examples
///
/// ```
/// use ringlet_httpd::http::{etag::etag, FileInfo};
/// let tag = etag(&FileInfo { size: 4096, mtime: 0x6000_0000, data_offset: 1536 });
/// assert_eq!(tag, "\"1000-60000000-600\"");
/// ```
pub fn etag(file: &FileInfo) -> String {
    let mut tag = String::with_capacity(52);
    // Writing to a String cannot fail.
    let _ = write!(
        tag,
        "\"{:x}-{:x}-{:x}\"",
        file.size, file.mtime, file.data_offset
    );
    tag
}

/// Splits an `#entity-tag` list into its tags' opaque parts (quotes
/// included) with their weakness; `None` if the list is malformed.
fn for_each_tag(list: &str, mut f: impl FnMut(&str, bool) -> bool) -> Option<bool> {
    let mut rest = list.trim_matches([' ', '\t']);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(false);
        }
        let weak = rest.starts_with("W/");
        if weak {
            rest = &rest[2..];
        }
        if !rest.starts_with('"') {
            return None;
        }
        let close = rest[1..].find('"')? + 1;
        let opaque = &rest[..=close];
        // etagc: %x21 / %x23-7E / obs-text; no control bytes or spaces.
        if opaque[1..close]
            .bytes()
            .any(|b| b < 0x21 || b == 0x7f || b == b'"')
        {
            return None;
        }
        if f(opaque, weak) {
            return Some(true);
        }
        rest = rest[close + 1..].trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
    }
}

/// Whether an `If-None-Match` value matches `tag` (weak comparison).
///
/// # Examples
///
/// ```
/// use ringlet_httpd::http::etag::none_match_matches;
/// assert!(none_match_matches("\"a\", W/\"b\"", "\"b\""));
/// assert!(none_match_matches("*", "\"b\""));
/// assert!(!none_match_matches("\"a\"", "\"b\""));
/// ```
pub fn none_match_matches(value: &str, tag: &str) -> bool {
    if value.trim_matches([' ', '\t']) == "*" {
        return true;
    }
    for_each_tag(value, |opaque, _weak| opaque == tag).unwrap_or(false)
}

/// Whether an `If-Range` value lets the range through: only an exact
/// strong match of `tag`. A date (httpd sends no `Last-Modified`), a weak
/// tag or anything else does not.
pub fn if_range_matches(value: &str, tag: &str) -> bool {
    let value = value.trim_matches([' ', '\t']);
    value == tag && !value.starts_with("W/")
}

#[cfg(test)]
mod test {
    use super::*;

    const TAG: &str = "\"1f-5-200\"";

    #[test]
    fn etag_changes_with_each_part() {
        let f = FileInfo {
            size: 31,
            mtime: 5,
            data_offset: 512,
        };
        assert_eq!(etag(&f), TAG);
        assert_ne!(etag(&FileInfo { size: 32, ..f }), TAG);
        assert_ne!(etag(&FileInfo { mtime: 6, ..f }), TAG);
        assert_ne!(
            etag(&FileInfo {
                data_offset: 1024,
                ..f
            }),
            TAG
        );
        let max = FileInfo {
            size: u64::MAX,
            mtime: u64::MAX,
            data_offset: u64::MAX,
        };
        assert_eq!(etag(&max).len(), 2 + 3 * 16 + 2);
    }

    #[test]
    fn if_none_match_lists() {
        assert!(none_match_matches(TAG, TAG));
        assert!(none_match_matches("W/\"1f-5-200\"", TAG));
        assert!(none_match_matches(" \"x\" ,\t\"1f-5-200\" ", TAG));
        assert!(none_match_matches("\"x\",,W/\"1f-5-200\"", TAG));
        assert!(none_match_matches(" * ", TAG));
        assert!(!none_match_matches("\"x\", \"y\"", TAG));
        assert!(!none_match_matches("", TAG));
        // Malformed: matches nothing, even when the tag is in it.
        assert!(!none_match_matches("1f-5-200", TAG));
        assert!(!none_match_matches("\"1f-5-200", TAG));
        assert!(!none_match_matches("\"a b\", \"1f-5-200\"", TAG));
        assert!(!none_match_matches("\"x\" \"1f-5-200\"", TAG));
        assert!(!none_match_matches("w/\"1f-5-200\"", TAG));
        assert!(!none_match_matches("*, \"x\"", TAG));
    }

    #[test]
    fn if_range_is_strong_only() {
        assert!(if_range_matches(TAG, TAG));
        assert!(if_range_matches(" \"1f-5-200\" ", TAG));
        assert!(!if_range_matches("W/\"1f-5-200\"", TAG));
        assert!(!if_range_matches("Sat, 01 Jan 2000 00:00:00 GMT", TAG));
        assert!(!if_range_matches("", TAG));
    }
}
