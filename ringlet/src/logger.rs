//! The appliance's `log` backend: each record becomes one line on the early
//! console (port 0xe9 on Xen) and, once it is attached, on the PV console.
//!
//! A record is formatted once into a fixed buffer of [`LOG_LINE_BYTES`]
//! (longer lines are cut and end with `...`), so logging never allocates and
//! never blocks; a full PV console ring drops the line there (counted by
//! the console writer), port 0xe9 still gets it.

use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicPtr, Ordering};

/// The longest line a record is formatted into.
pub const LOG_LINE_BYTES: usize = 512;

/// Where lines go besides the early console (e.g. the PV console). MUST NOT
/// block, allocate or log.
pub type LineSink = fn(&[u8]);

static SINK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static EARLY: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

struct Logger;

static LOGGER: Logger = Logger;

/// One formatted line.
pub(crate) struct Line {
    bytes: [u8; LOG_LINE_BYTES],
    len: usize,
    cut: bool,
}

impl Line {
    pub(crate) fn new() -> Line {
        Line {
            bytes: [0; LOG_LINE_BYTES],
            len: 0,
            cut: false,
        }
    }

    /// The line with a trailing newline (and `...` before it if it was cut).
    pub(crate) fn finish(&mut self) -> &[u8] {
        let tail: &[u8] = if self.cut { b"...\n" } else { b"\n" };
        let end = self.len.min(LOG_LINE_BYTES - tail.len());
        self.bytes[end..end + tail.len()].copy_from_slice(tail);
        &self.bytes[..end + tail.len()]
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LOG_LINE_BYTES - 4 - self.len.min(LOG_LINE_BYTES - 4);
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            self.cut = true;
        }
        Ok(())
    }
}

#[allow(unsafe_code)]
fn load(slot: &AtomicPtr<()>) -> Option<LineSink> {
    let ptr = slot.load(Ordering::Acquire);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: only `store` writes these slots, always a `LineSink` cast to a
    // pointer; fn pointers and data pointers have the same size here.
    Some(unsafe { core::mem::transmute::<*mut (), LineSink>(ptr) })
}

fn store(slot: &AtomicPtr<()>, sink: LineSink) {
    slot.store(sink as *mut (), Ordering::Release);
}

/// Writes a finished line to the early console and the attached sink.
pub(crate) fn emit(bytes: &[u8]) {
    if let Some(early) = load(&EARLY) {
        early(bytes);
    }
    if let Some(sink) = load(&SINK) {
        sink(bytes);
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = Line::new();
        let _ = match record.level() {
            log::Level::Info => write!(line, "{}", record.args()),
            level => write!(line, "{level}: {}", record.args()),
        };
        emit(line.finish());
    }

    fn flush(&self) {}
}

/// Installs the logger with `early` as the early console. Later calls only
/// replace the early console.
pub(crate) fn init(early: LineSink, level: log::LevelFilter) {
    store(&EARLY, early);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Sends lines to `sink` too (the PV console once it is up).
pub(crate) fn attach(sink: LineSink) {
    store(&SINK, sink);
}

/// The level asked for on the command line (`loglevel=debug` etc.), else
/// `info`.
pub(crate) fn level_from_cmdline(cmdline: &str) -> log::LevelFilter {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("loglevel="))
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn lines_end_with_a_newline_and_long_ones_are_cut() {
        let mut line = Line::new();
        write!(line, "hello {}", 1).unwrap();
        assert_eq!(line.finish(), b"hello 1\n");

        let mut line = Line::new();
        for _ in 0..100 {
            write!(line, "0123456789").unwrap();
        }
        let out = line.finish();
        assert_eq!(out.len(), LOG_LINE_BYTES);
        assert!(out.ends_with(b"789...\n") || out.ends_with(b"...\n"));
        assert!(out.starts_with(b"0123456789"));
    }

    #[test]
    fn level_from_the_command_line() {
        assert_eq!(level_from_cmdline(""), log::LevelFilter::Info);
        assert_eq!(
            level_from_cmdline("panic loglevel=debug"),
            log::LevelFilter::Debug
        );
        assert_eq!(
            level_from_cmdline("loglevel=nonsense"),
            log::LevelFilter::Info
        );
    }
}
