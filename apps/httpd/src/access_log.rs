//! The access log: one line per request, and the token bucket that limits
//! how many reach the console.
//!
//! A line reads `GET /index.html 200 1432 87us`: method, target as sent,
//! status, body bytes sent, and microseconds from taking the request to
//! queueing its last byte. Method and target are sanitized (bytes outside
//! printable ASCII become `\xNN`) and cut at [`LOG_FIELD_BYTES_MAX`].
//!
//! The console is slow (a PV ring drained by xenconsoled), so lines pass a
//! token bucket ([`RateLimiter`]): [`LOG_BURST`] lines at once, then
//! [`LOG_LINES_PER_SEC`] per second. Suppressed lines are counted and the
//! count is reported with the next line that passes. The limiter is
//! sans-IO: it is given the time.

use core::fmt;

/// Lines the bucket holds (a burst that is logged in full).
pub const LOG_BURST: u32 = 64;
/// Lines per second the bucket refills.
pub const LOG_LINES_PER_SEC: u32 = 20;
/// The longest method or target logged, in bytes of the original.
pub const LOG_FIELD_BYTES_MAX: usize = 200;

const MICROS_PER_SEC: u64 = 1_000_000;

/// A token bucket over microsecond timestamps.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Tokens, in millionths.
    micro_tokens: u64,
    capacity_micro: u64,
    per_sec: u64,
    last_us: u64,
    suppressed: u64,
}

/// What [`RateLimiter::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Log the line; `suppressed` lines were dropped since the last one
    /// logged (report them).
    Log {
        /// Lines dropped before this one.
        suppressed: u64,
    },
    /// Drop the line (it is counted).
    Suppress,
}

impl RateLimiter {
    /// A full bucket of `burst` lines refilled at `per_sec` lines per
    /// second, starting at `now_us`.
    ///
    /// # Panics
    ///
    /// If `burst` is 0.
    pub fn new(burst: u32, per_sec: u32, now_us: u64) -> RateLimiter {
        assert!(burst > 0, "a bucket needs room for one line");
        let capacity_micro = u64::from(burst) * MICROS_PER_SEC;
        RateLimiter {
            micro_tokens: capacity_micro,
            capacity_micro,
            per_sec: u64::from(per_sec),
            last_us: now_us,
            suppressed: 0,
        }
    }

    /// Whether a line at `now_us` may be logged. Time that goes backwards
    /// refills nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringlet_httpd::access_log::{Admit, RateLimiter};
    /// let mut rl = RateLimiter::new(1, 1, 0);
    /// assert_eq!(rl.admit(0), Admit::Log { suppressed: 0 });
    /// assert_eq!(rl.admit(10), Admit::Suppress);
    /// assert_eq!(rl.admit(1_000_000), Admit::Log { suppressed: 1 });
    /// ```
    pub fn admit(&mut self, now_us: u64) -> Admit {
        let elapsed = now_us.saturating_sub(self.last_us);
        self.last_us = self.last_us.max(now_us);
        self.micro_tokens = self
            .micro_tokens
            .saturating_add(elapsed.saturating_mul(self.per_sec))
            .min(self.capacity_micro);
        if self.micro_tokens >= MICROS_PER_SEC {
            self.micro_tokens -= MICROS_PER_SEC;
            Admit::Log {
                suppressed: core::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed += 1;
            Admit::Suppress
        }
    }

    /// Lines suppressed and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// A method or target, sanitized and cut for the log.
#[derive(Clone, Copy, Debug)]
pub struct LogField<'a>(pub &'a str);

impl fmt::Display for LogField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.as_bytes();
        let cut = bytes.len().min(LOG_FIELD_BYTES_MAX);
        if cut == 0 {
            return f.write_str("-");
        }
        for &b in &bytes[..cut] {
            if (0x21..0x7f).contains(&b) && b != b'\\' {
                fmt::Write::write_char(f, b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if cut < bytes.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// One access-log line.
#[derive(Clone, Copy, Debug)]
pub struct AccessLine<'a> {
    /// The method as sent (`-` if the head was refused before it).
    pub method: &'a str,
    /// The target as sent.
    pub target: &'a str,
    /// The status code sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// Microseconds spent.
    pub micros: u64,
}

impl fmt::Display for AccessLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}us",
            LogField(self.method),
            LogField(self.target),
            self.status,
            self.bytes,
            self.micros
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use alloc::format;
    use alloc::string::String;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut rl = RateLimiter::new(3, 2, 1_000);
        for _ in 0..3 {
            assert_eq!(rl.admit(1_000), Admit::Log { suppressed: 0 });
        }
        for _ in 0..5 {
            assert_eq!(rl.admit(1_000), Admit::Suppress);
        }
        assert_eq!(rl.suppressed(), 5);
        // Half a second at 2 lines/s: one token.
        assert_eq!(rl.admit(501_000), Admit::Log { suppressed: 5 });
        assert_eq!(rl.admit(501_000), Admit::Suppress);
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(matches!(rl.admit(100_000_000), Admit::Log { .. }));
        }
        assert_eq!(rl.admit(100_000_000), Admit::Suppress);
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let mut rl = RateLimiter::new(1, 1000, 5_000_000);
        assert!(matches!(rl.admit(5_000_000), Admit::Log { .. }));
        assert_eq!(rl.admit(0), Admit::Suppress);
        assert_eq!(rl.admit(4_999_999), Admit::Suppress);
        assert!(matches!(rl.admit(5_001_000), Admit::Log { suppressed: 2 }));
    }

    #[test]
    fn zero_rate_never_refills() {
        let mut rl = RateLimiter::new(2, 0, 0);
        assert!(matches!(rl.admit(0), Admit::Log { .. }));
        assert!(matches!(rl.admit(0), Admit::Log { .. }));
        assert_eq!(rl.admit(u64::MAX), Admit::Suppress);
    }

    #[test]
    fn lines_are_sanitized_and_cut() {
        let line = AccessLine {
            method: "GET",
            target: "/a b\r\n\\é",
            status: 200,
            bytes: 12,
            micros: 34,
        };
        assert_eq!(
            format!("{line}"),
            "GET /a\\x20b\\x0d\\x0a\\x5c\\xc3\\xa9 200 12 34us"
        );
        let long: String = "x".repeat(LOG_FIELD_BYTES_MAX + 1);
        let s = format!("{}", LogField(&long));
        assert_eq!(s.len(), LOG_FIELD_BYTES_MAX + 3);
        assert!(s.ends_with("x..."));
        assert_eq!(format!("{}", LogField("")), "-");
    }
}
