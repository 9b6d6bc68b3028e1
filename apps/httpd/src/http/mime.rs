//! Content types by file extension.

/// The type of files whose extension is not in the table.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// Extension (lower case) → media type. Text types say UTF-8.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
];

/// The content type for a path, by the extension of its last segment
/// (case-insensitive); [`DEFAULT_TYPE`] when there is none or it is unknown.
///
/// # Examples
///
/// ```
/// use ringlet_httpd::http::mime::content_type;
/// assert_eq!(content_type("/a/index.HTML"), "text/html; charset=utf-8");
/// assert_eq!(content_type("/img.d/logo"), "application/octet-stream");
/// ```
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return DEFAULT_TYPE;
    };
    if stem.is_empty() {
        // A dot file (`.htaccess`) has no extension.
        return DEFAULT_TYPE;
    }
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or(DEFAULT_TYPE, |(_, t)| t)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/s/style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/logo.png"), "image/png");
        assert_eq!(content_type("/a.tar.gz"), "application/gzip");
        assert_eq!(content_type("/photo.JPeG"), "image/jpeg");
        assert_eq!(content_type("/app.wasm"), "application/wasm");
        assert_eq!(content_type("/big.bin"), DEFAULT_TYPE);
        assert_eq!(content_type("/README"), DEFAULT_TYPE);
        assert_eq!(content_type("/.html"), DEFAULT_TYPE);
        assert_eq!(content_type("/dir.html/x"), DEFAULT_TYPE);
        assert_eq!(content_type("/x."), DEFAULT_TYPE);
        assert_eq!(content_type(""), DEFAULT_TYPE);
    }

    #[test]
    fn table_is_lower_case_and_unique() {
        for (i, (e, t)) in TYPES.iter().enumerate() {
            assert_eq!(*e, e.to_ascii_lowercase());
            assert!(!t.is_empty() && !t.contains(['\r', '\n']));
            assert!(TYPES[i + 1..].iter().all(|(f, _)| f != e));
        }
    }
}
