//! The size of httpd's read cache: the `cache=` option and the default
//! taken from the free heap.
//!
//! httpd keeps hot file data in memory with ringlet-storage's
//! `CachedDevice` between the tar store and blkfront. Its capacity is
//! chosen once the server listens (its fixed allocations made):
//!
//! - `cache=N` on the command line: `N` MiB (0 turns the cache off), but
//!   never more than the free heap beyond what the connections may need
//!   ([`connections_reserve_bytes`]); a cut is logged.
//! - otherwise a quarter of what the free heap has beyond that reserve, at
//!   most [`CACHE_DEFAULT_BYTES_MAX`]. A small guest, whose free heap the
//!   connections may need whole, gets no cache, so the cache never raises
//!   the memory httpd needs.
//! - on a host (the sim), where the heap's size means nothing, the default
//!   is [`CACHE_DEFAULT_BYTES_MAX`].
//!
//! The free heap comes from the PVH kernel's allocator, which counts the
//! bytes it has handed out (`ringlet::xen::pvh::heap_free_bytes`).

use core::fmt;

/// The largest `cache=` accepted, in MiB.
pub const CACHE_MIB_MAX: u64 = 64 * 1024;
/// The default capacity's upper bound.
pub const CACHE_DEFAULT_BYTES_MAX: u64 = 256 << 20;
/// The default takes `1 / CACHE_DEFAULT_SHARE` of the free heap beyond the
/// connections' reserve.
pub const CACHE_DEFAULT_SHARE: u64 = 4;
/// A connection's memory beyond its socket buffers, file chunk and request
/// buffer (its task, socket state, response head), rounded up.
pub const CONNECTION_OVERHEAD_BYTES: u64 = 8 * 1024;
/// Memory kept for everything else a loaded server allocates (packet
/// buffers, blkfront's page pool, timers).
pub const RESERVE_BASE_BYTES: u64 = 1 << 20;

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOption {
    /// No `cache=`: the default.
    Default,
    /// `cache=N`: at most `N` MiB (0: off).
    Mib(u64),
}

/// The command line's `cache=` is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOptionError {
    /// Not a number from 0 to [`CACHE_MIB_MAX`], or given twice.
    Invalid,
}

impl fmt::Display for CacheOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheOptionError::Invalid => write!(
                f,
                "cache= must be a number of MiB from 0 (off) to {CACHE_MIB_MAX}, given once"
            ),
        }
    }
}

impl core::error::Error for CacheOptionError {}

impl CacheOption {
    /// The `cache=N` word of `cmdline` (MiB); other words are left to
    /// their owners.
    ///
    /// # Errors
    ///
    /// [`CacheOptionError::Invalid`] for a value that is not a number from
    /// 0 to [`CACHE_MIB_MAX`], or a second `cache=`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringlet_httpd::cache::CacheOption;
    /// assert_eq!(CacheOption::from_cmdline("ip=dhcp cache=32"), Ok(CacheOption::Mib(32)));
    /// assert_eq!(CacheOption::from_cmdline("port=80"), Ok(CacheOption::Default));
    /// assert!(CacheOption::from_cmdline("cache=lots").is_err());
    /// ```
    pub fn from_cmdline(cmdline: &str) -> Result<CacheOption, CacheOptionError> {
        let mut option = CacheOption::Default;
        for word in cmdline.split_ascii_whitespace() {
            let Some(value) = word.strip_prefix("cache=") else {
                continue;
            };
            if option != CacheOption::Default {
                return Err(CacheOptionError::Invalid);
            }
            let mib = value
                .parse::<u64>()
                .ok()
                .filter(|&n| n <= CACHE_MIB_MAX)
                .ok_or(CacheOptionError::Invalid)?;
            option = CacheOption::Mib(mib);
        }
        Ok(option)
    }
}

/// The memory a server may still allocate once it listens, with
/// `connections_max` connections busy at once: for each, the socket that
/// replaces it in the backlog (`tcp_buffer_bytes`: receive plus transmit),
/// its file chunk, its request buffer (`head_bytes`) and
/// [`CONNECTION_OVERHEAD_BYTES`]; plus [`RESERVE_BASE_BYTES`].
pub fn connections_reserve_bytes(
    connections_max: usize,
    tcp_buffer_bytes: usize,
    chunk_bytes: usize,
    head_bytes: usize,
) -> u64 {
    let per_connection = (tcp_buffer_bytes as u64)
        .saturating_add(chunk_bytes as u64)
        .saturating_add(head_bytes as u64)
        .saturating_add(CONNECTION_OVERHEAD_BYTES);
    (connections_max as u64)
        .saturating_mul(per_connection)
        .saturating_add(RESERVE_BASE_BYTES)
}

/// Why the cache got its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `cache=0`.
    Off,
    /// `cache=N`, granted.
    Asked,
    /// `cache=N` (this many bytes), cut to the free heap beyond the reserve.
    AskedCut {
        /// What `cache=` asked for.
        asked_bytes: u64,
    },
    /// The default: a share of the free heap beyond the reserve, perhaps
    /// capped (0 when the reserve takes it all).
    Default,
    /// The default on a host, where the heap's size is not known.
    DefaultHosted,
}

/// The capacity chosen, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheChoice {
    /// The cache's capacity in bytes.
    pub bytes: u64,
    /// Why.
    pub reason: Reason,
    /// The free heap measured, if any.
    pub free_heap_bytes: Option<u64>,
    /// The memory kept for the connections.
    pub reserve_bytes: u64,
}

impl CacheChoice {
    /// Chooses the capacity (see the module docs) from the command line's
    /// `option`, the free heap (`None` on a host) and the connections'
    /// reserve.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringlet_httpd::cache::{CacheChoice, CacheOption};
    /// const MIB: u64 = 1 << 20;
    /// // 250 MiB free, 10 MiB kept: a quarter of 240 MiB.
    /// let c = CacheChoice::choose(CacheOption::Default, Some(250 * MIB), 10 * MIB);
    /// assert_eq!(c.bytes, 60 * MIB);
    /// // A small guest: nothing beyond the reserve, no cache.
    /// let c = CacheChoice::choose(CacheOption::Default, Some(6 * MIB), 10 * MIB);
    /// assert_eq!(c.bytes, 0);
    /// ```
    pub fn choose(
        option: CacheOption,
        free_heap_bytes: Option<u64>,
        reserve_bytes: u64,
    ) -> CacheChoice {
        let room = free_heap_bytes.map(|free| free.saturating_sub(reserve_bytes));
        let (bytes, reason) = match (option, room) {
            (CacheOption::Mib(0), _) => (0, Reason::Off),
            (CacheOption::Mib(mib), room) => {
                let asked = mib << 20;
                match room {
                    Some(room) if room < asked => (room, Reason::AskedCut { asked_bytes: asked }),
                    _ => (asked, Reason::Asked),
                }
            }
            (CacheOption::Default, Some(room)) => (
                (room / CACHE_DEFAULT_SHARE).min(CACHE_DEFAULT_BYTES_MAX),
                Reason::Default,
            ),
            (CacheOption::Default, None) => (CACHE_DEFAULT_BYTES_MAX, Reason::DefaultHosted),
        };
        CacheChoice {
            bytes,
            reason,
            free_heap_bytes,
            reserve_bytes,
        }
    }
}

/// `n` bytes in MiB, one decimal.
struct Mib(u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = self.0.saturating_mul(10) >> 20;
        write!(f, "{}.{} MiB", tenths / 10, tenths % 10)
    }
}

impl fmt::Display for CacheChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bytes == 0 {
            f.write_str("off")?;
        } else {
            write!(f, "{}", Mib(self.bytes))?;
        }
        let free = Mib(self.free_heap_bytes.unwrap_or(0));
        let reserve = Mib(self.reserve_bytes);
        match self.reason {
            Reason::Off => f.write_str(" (cache=0)"),
            Reason::Asked => write!(f, " (cache={})", self.bytes >> 20),
            Reason::AskedCut { asked_bytes } => write!(
                f,
                " (cache={} cut to the free heap, {free}, less {reserve} kept for connections)",
                asked_bytes >> 20
            ),
            Reason::Default if self.bytes == 0 => write!(
                f,
                " (the free heap, {free}, is not more than the {reserve} kept for \
                 connections; cache= sets it)"
            ),
            Reason::Default => write!(
                f,
                " (1/{CACHE_DEFAULT_SHARE} of the free heap, {free}, less {reserve} kept for \
                 connections, at most {}; cache= sets it)",
                Mib(CACHE_DEFAULT_BYTES_MAX)
            ),
            Reason::DefaultHosted => {
                f.write_str(" (the default's cap: a host's heap; cache= sets it)")
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::string::ToString;

    const MIB: u64 = 1 << 20;

    #[test]
    fn option_from_cmdline() {
        let ok = |s: &str| CacheOption::from_cmdline(s).unwrap();
        assert_eq!(ok(""), CacheOption::Default);
        assert_eq!(ok("ip=dhcp port=80"), CacheOption::Default);
        assert_eq!(ok("cache=0"), CacheOption::Mib(0));
        assert_eq!(ok("port=8 cache=64 conns=3"), CacheOption::Mib(64));
        assert_eq!(ok("cache=65536"), CacheOption::Mib(CACHE_MIB_MAX));
        // Someone else's words.
        assert_eq!(ok("cache nocache=3 cachex=4"), CacheOption::Default);
        for bad in [
            "cache=",
            "cache=-1",
            "cache=1.5",
            "cache=0x10",
            "cache=65537",
            "cache=99999999999999999999",
            "cache=1 cache=1",
            "cache=0 cache=2",
        ] {
            assert_eq!(
                CacheOption::from_cmdline(bad),
                Err(CacheOptionError::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn reserve_counts_every_connection() {
        // httpd's defaults: 128 connections, 8 + 32 KiB sockets, 16 KiB
        // chunks, 8 KiB heads.
        let r = connections_reserve_bytes(128, 40 << 10, 16 << 10, 8 << 10);
        assert_eq!(r, 128 * (72 << 10) + MIB);
        assert_eq!(connections_reserve_bytes(0, 1, 1, 1), RESERVE_BASE_BYTES);
        assert_eq!(
            connections_reserve_bytes(usize::MAX, usize::MAX, 1, 1),
            u64::MAX
        );
    }

    #[test]
    fn choice() {
        let choose = CacheChoice::choose;
        let reserve = 10 * MIB;
        // The default: a quarter of what is beyond the reserve, capped.
        let c = choose(CacheOption::Default, Some(250 * MIB), reserve);
        assert_eq!((c.bytes, c.reason), (60 * MIB, Reason::Default));
        let c = choose(CacheOption::Default, Some(4096 * MIB), reserve);
        assert_eq!(c.bytes, CACHE_DEFAULT_BYTES_MAX);
        // Small guests: nothing (9 MB guests have less free heap than the
        // reserve).
        for free in [0, 5 * MIB, reserve] {
            let c = choose(CacheOption::Default, Some(free), reserve);
            assert_eq!((c.bytes, c.reason), (0, Reason::Default), "{free}");
        }
        let c = choose(CacheOption::Default, Some(reserve + 4 * MIB), reserve);
        assert_eq!(c.bytes, MIB);
        // cache=N: granted up to what is beyond the reserve.
        let c = choose(CacheOption::Mib(32), Some(250 * MIB), reserve);
        assert_eq!((c.bytes, c.reason), (32 * MIB, Reason::Asked));
        let c = choose(CacheOption::Mib(32), Some(20 * MIB), reserve);
        assert_eq!(
            (c.bytes, c.reason),
            (
                10 * MIB,
                Reason::AskedCut {
                    asked_bytes: 32 * MIB
                }
            )
        );
        let c = choose(CacheOption::Mib(0), Some(250 * MIB), reserve);
        assert_eq!((c.bytes, c.reason), (0, Reason::Off));
        // A host: the cap, or what was asked.
        let c = choose(CacheOption::Default, None, reserve);
        assert_eq!(
            (c.bytes, c.reason),
            (CACHE_DEFAULT_BYTES_MAX, Reason::DefaultHosted)
        );
        let c = choose(CacheOption::Mib(CACHE_MIB_MAX), None, reserve);
        assert_eq!(c.bytes, CACHE_MIB_MAX << 20);
    }

    #[test]
    fn choice_reads_well() {
        let reserve = 10 * MIB;
        let line = |o, free| CacheChoice::choose(o, free, reserve).to_string();
        assert_eq!(
            line(CacheOption::Default, Some(250 * MIB)),
            "60.0 MiB (1/4 of the free heap, 250.0 MiB, less 10.0 MiB kept for connections, \
             at most 256.0 MiB; cache= sets it)"
        );
        assert_eq!(
            line(CacheOption::Default, Some(6 * MIB + MIB / 2)),
            "off (the free heap, 6.5 MiB, is not more than the 10.0 MiB kept for connections; \
             cache= sets it)"
        );
        assert_eq!(line(CacheOption::Mib(0), Some(6 * MIB)), "off (cache=0)");
        assert_eq!(
            line(CacheOption::Mib(8), Some(250 * MIB)),
            "8.0 MiB (cache=8)"
        );
        assert_eq!(
            line(CacheOption::Mib(8), Some(12 * MIB)),
            "2.0 MiB (cache=8 cut to the free heap, 12.0 MiB, less 10.0 MiB kept for \
             connections)"
        );
    }
}
