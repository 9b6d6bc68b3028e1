//! What a block backend offers, read from its xenstore directory and
//! validated: geometry, the `info` bits and the features.
//!
//! Every value is untrusted text. Numbers are decimal; a missing optional
//! node takes blkif.h's default; a malformed or out-of-range value is a
//! [`ConfigError`], never a guess.
//!
//! # Units
//!
//! `sectors` counts 512-byte units, as Linux blkback writes it (blkif.h
//! says "units of sector-size", but every Linux and Xen backend in use
//! writes 512-byte units, and frontends read it that way). `sector-size` is
//! the logical block size: requests must be aligned to it.
#![forbid(unsafe_code)]

use core::fmt;

use crate::blkif::{
    SEGMENTS_PER_INDIRECT_PAGE, SEGMENTS_PER_REQUEST_MAX, VDISK_CDROM, VDISK_READONLY,
    VDISK_REMOVABLE,
};
use crate::block::{BlockInfo, SECTOR_SIZE_MAX, SECTOR_SIZE_MIN};

/// The most segments blkfront puts in one indirect request, whatever the
/// backend offers (128 KiB of 4 KiB pages, as Linux; bounds the pages pinned:
/// a full ring of 32 requests pins at most 1024 pages).
pub const INDIRECT_SEGMENTS_MAX: u32 = 32;

const _: () = assert!(
    INDIRECT_SEGMENTS_MAX as usize
        <= SEGMENTS_PER_INDIRECT_PAGE * crate::blkif::INDIRECT_PAGES_PER_REQUEST_MAX
);

/// Longest xenstore value blkfront parses as a number.
const NUMBER_DIGITS_MAX: usize = 20;

/// The backend's nodes as read from xenstore (`None`: node absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct BackendNodes<'a> {
    /// `sectors`.
    pub sectors: Option<&'a str>,
    /// `sector-size`.
    pub sector_size: Option<&'a str>,
    /// `info`.
    pub info: Option<&'a str>,
    /// `feature-flush-cache`.
    pub feature_flush_cache: Option<&'a str>,
    /// `feature-barrier`.
    pub feature_barrier: Option<&'a str>,
    /// `feature-max-indirect-segments`.
    pub feature_max_indirect_segments: Option<&'a str>,
}

/// How blkfront makes writes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushMethod {
    /// `BLKIF_OP_FLUSH_DISKCACHE` (`feature-flush-cache`).
    FlushDiskcache,
    /// An empty `BLKIF_OP_WRITE_BARRIER` (`feature-barrier` only).
    Barrier,
    /// Neither offered: the backend has no volatile cache; flush is a no-op.
    None,
}

/// A backend's validated configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// Logical block size in bytes.
    pub sector_size: u32,
    /// Device size in logical blocks.
    pub sectors: u64,
    /// `VDISK_READONLY`.
    pub read_only: bool,
    /// `VDISK_REMOVABLE`.
    pub removable: bool,
    /// `VDISK_CDROM`.
    pub cdrom: bool,
    /// How to flush.
    pub flush: FlushMethod,
    /// Segments per request: [`SEGMENTS_PER_REQUEST_MAX`] (11) without
    /// indirect descriptors, else the backend's maximum capped at
    /// [`INDIRECT_SEGMENTS_MAX`].
    pub segments_max: u32,
    /// Whether requests use `BLKIF_OP_INDIRECT`.
    pub indirect: bool,
}

impl BackendConfig {
    /// The device as the [`BlockDevice`](crate::BlockDevice) trait sees it.
    pub fn block_info(&self) -> BlockInfo {
        BlockInfo {
            sector_size: self.sector_size,
            sectors: self.sectors,
            read_only: self.read_only,
            buf_align: 1,
        }
    }
}

/// Which node a [`ConfigError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Node {
    /// `sectors`.
    Sectors,
    /// `sector-size`.
    SectorSize,
    /// `info`.
    Info,
    /// `feature-flush-cache`.
    FeatureFlushCache,
    /// `feature-barrier`.
    FeatureBarrier,
    /// `feature-max-indirect-segments`.
    FeatureMaxIndirectSegments,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Node::Sectors => "sectors",
            Node::SectorSize => "sector-size",
            Node::Info => "info",
            Node::FeatureFlushCache => "feature-flush-cache",
            Node::FeatureBarrier => "feature-barrier",
            Node::FeatureMaxIndirectSegments => "feature-max-indirect-segments",
        })
    }
}

/// Why a backend's configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required node is absent.
    Missing(Node),
    /// A node is not a decimal number that fits.
    NotANumber(Node),
    /// `sector-size` is not a power of two in 512..=4096.
    BadSectorSize(u32),
    /// The size in bytes is not a whole number of logical blocks, or overflows.
    BadSize,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(n) => write!(f, "backend node {n} is missing"),
            ConfigError::NotANumber(n) => write!(f, "backend node {n} is not a decimal number"),
            ConfigError::BadSectorSize(s) => write!(f, "backend sector-size {s} is not supported"),
            ConfigError::BadSize => f.write_str("backend size is not a whole number of sectors"),
        }
    }
}

impl core::error::Error for ConfigError {}

fn decimal(node: Node, s: &str) -> Result<u64, ConfigError> {
    let s = s.trim_end_matches('\0');
    if s.is_empty() || s.len() > NUMBER_DIGITS_MAX || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::NotANumber(node));
    }
    s.parse().map_err(|_| ConfigError::NotANumber(node))
}

fn optional(node: Node, s: Option<&str>, default: u64) -> Result<u64, ConfigError> {
    s.map_or(Ok(default), |s| decimal(node, s))
}

impl BackendConfig {
    /// Validates a backend's nodes.
    ///
    /// # Errors
    ///
    /// See [`ConfigError`].
    pub fn parse(nodes: &BackendNodes<'_>) -> Result<BackendConfig, ConfigError> {
        let sectors_512 = decimal(
            Node::Sectors,
            nodes.sectors.ok_or(ConfigError::Missing(Node::Sectors))?,
        )?;
        let sector_size = optional(
            Node::SectorSize,
            nodes.sector_size,
            u64::from(SECTOR_SIZE_MIN),
        )?;
        let sector_size =
            u32::try_from(sector_size).map_err(|_| ConfigError::NotANumber(Node::SectorSize))?;
        if !sector_size.is_power_of_two()
            || !(SECTOR_SIZE_MIN..=SECTOR_SIZE_MAX).contains(&sector_size)
        {
            return Err(ConfigError::BadSectorSize(sector_size));
        }
        let bytes = sectors_512.checked_mul(512).ok_or(ConfigError::BadSize)?;
        if !bytes.is_multiple_of(u64::from(sector_size)) {
            return Err(ConfigError::BadSize);
        }
        let info = optional(Node::Info, nodes.info, 0)?;
        let info = u32::try_from(info).map_err(|_| ConfigError::NotANumber(Node::Info))?;
        let flush_cache = optional(Node::FeatureFlushCache, nodes.feature_flush_cache, 0)? != 0;
        let barrier = optional(Node::FeatureBarrier, nodes.feature_barrier, 0)? != 0;
        let indirect = optional(
            Node::FeatureMaxIndirectSegments,
            nodes.feature_max_indirect_segments,
            0,
        )?;
        let direct = SEGMENTS_PER_REQUEST_MAX as u64;
        // Branch-free on purpose. The equivalent
        // `if indirect > direct { (indirect.min(MAX) as u32, true) } else { (direct as u32, false) }`
        // is miscompiled by rustc 1.95 / nightly 1.97 (LLVM 22) at
        // opt-level >= 1 on x86_64-unknown-linux-gnu: the `min` is hoisted
        // out of the branch with a `range(12, 0)` attribute on its argument,
        // and the whole expression folds to `indirect.min(MAX)`, so a
        // backend without indirect segments got `segments_max == 0` (found
        // by the `blkif_response` fuzz target; see
        // `test::segments_for_every_indirect_value`).
        let segments_max = indirect.clamp(direct, u64::from(INDIRECT_SEGMENTS_MAX)) as u32;
        let indirect = indirect > direct;
        Ok(BackendConfig {
            sector_size,
            sectors: bytes / u64::from(sector_size),
            read_only: info & VDISK_READONLY != 0,
            removable: info & VDISK_REMOVABLE != 0,
            cdrom: info & VDISK_CDROM != 0,
            flush: if flush_cache {
                FlushMethod::FlushDiskcache
            } else if barrier {
                FlushMethod::Barrier
            } else {
                FlushMethod::None
            },
            segments_max,
            indirect,
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn nodes() -> BackendNodes<'static> {
        BackendNodes {
            sectors: Some("2048"),
            sector_size: Some("512"),
            ..BackendNodes::default()
        }
    }

    #[test]
    fn linux_blkback_typical() {
        let n = BackendNodes {
            info: Some("0"),
            feature_flush_cache: Some("1"),
            feature_barrier: Some("1"),
            feature_max_indirect_segments: Some("256"),
            ..nodes()
        };
        let c = BackendConfig::parse(&n).unwrap();
        assert_eq!(c.sectors, 2048);
        assert_eq!(c.sector_size, 512);
        assert_eq!(c.flush, FlushMethod::FlushDiskcache);
        assert!(c.indirect);
        assert_eq!(c.segments_max, INDIRECT_SEGMENTS_MAX);
        assert!(!c.read_only);
        assert_eq!(c.block_info().size_bytes(), 1 << 20);
    }

    /// Regression: no `feature-max-indirect-segments` node, and every
    /// value up to 40, give 11 direct segments up to 11 and `min(value,
    /// 32)` indirect ones above. The old branchy form was miscompiled at
    /// opt-level >= 1 (0 segments without the node): this test fails on it
    /// under `cargo test --release`, which is how to run it.
    #[test]
    fn segments_for_every_indirect_value() {
        let c = BackendConfig::parse(&nodes()).unwrap();
        assert_eq!((c.segments_max, c.indirect), (11, false));
        for v in 0..=40u64 {
            let s = alloc::format!("{v}");
            let c = BackendConfig::parse(&BackendNodes {
                feature_max_indirect_segments: Some(&s),
                ..nodes()
            })
            .unwrap();
            // Not `if v <= 11 { .. } else { v.min(32) .. }`: the compiler
            // bug miscompiles that form here too.
            let want = match v {
                0..=11 => (11, false),
                12..=32 => (v as u32, true),
                _ => (32, true),
            };
            assert_eq!((c.segments_max, c.indirect), want, "{v}");
        }
    }

    #[test]
    fn defaults_and_bits() {
        let c = BackendConfig::parse(&BackendNodes {
            sector_size: None,
            info: Some("6"),
            ..nodes()
        })
        .unwrap();
        assert_eq!(c.sector_size, 512);
        assert!(c.read_only && c.removable && !c.cdrom);
        assert_eq!(c.flush, FlushMethod::None);
        assert_eq!(c.segments_max, 11);
        assert!(!c.indirect);
        let c = BackendConfig::parse(&BackendNodes {
            feature_barrier: Some("1"),
            feature_max_indirect_segments: Some("8"),
            ..nodes()
        })
        .unwrap();
        assert_eq!(c.flush, FlushMethod::Barrier);
        assert!(!c.indirect);
        let c = BackendConfig::parse(&BackendNodes {
            feature_max_indirect_segments: Some("100000"),
            ..nodes()
        })
        .unwrap();
        assert_eq!(c.segments_max, INDIRECT_SEGMENTS_MAX);
    }

    #[test]
    fn large_sectors() {
        let c = BackendConfig::parse(&BackendNodes {
            sector_size: Some("4096"),
            ..nodes()
        })
        .unwrap();
        assert_eq!(c.sectors, 256);
        assert_eq!(
            BackendConfig::parse(&BackendNodes {
                sectors: Some("2049"),
                sector_size: Some("4096"),
                ..nodes()
            }),
            Err(ConfigError::BadSize)
        );
    }

    #[test]
    fn malformed() {
        let bad = |n: BackendNodes<'static>| BackendConfig::parse(&n).unwrap_err();
        assert_eq!(
            bad(BackendNodes {
                sectors: None,
                ..nodes()
            }),
            ConfigError::Missing(Node::Sectors)
        );
        assert_eq!(
            bad(BackendNodes {
                sectors: Some("-1"),
                ..nodes()
            }),
            ConfigError::NotANumber(Node::Sectors)
        );
        assert_eq!(
            bad(BackendNodes {
                sectors: Some(""),
                ..nodes()
            }),
            ConfigError::NotANumber(Node::Sectors)
        );
        assert_eq!(
            bad(BackendNodes {
                sectors: Some("99999999999999999999"),
                ..nodes()
            }),
            ConfigError::NotANumber(Node::Sectors)
        );
        assert_eq!(
            bad(BackendNodes {
                sectors: Some("18446744073709551615"),
                ..nodes()
            }),
            ConfigError::BadSize
        );
        assert_eq!(
            bad(BackendNodes {
                sector_size: Some("1000"),
                ..nodes()
            }),
            ConfigError::BadSectorSize(1000)
        );
        assert_eq!(
            bad(BackendNodes {
                sector_size: Some("8192"),
                ..nodes()
            }),
            ConfigError::BadSectorSize(8192)
        );
        assert_eq!(
            bad(BackendNodes {
                sector_size: Some("256"),
                ..nodes()
            }),
            ConfigError::BadSectorSize(256)
        );
        assert_eq!(
            bad(BackendNodes {
                sector_size: Some("4294967296"),
                ..nodes()
            }),
            ConfigError::NotANumber(Node::SectorSize)
        );
        assert_eq!(
            bad(BackendNodes {
                info: Some("0x4"),
                ..nodes()
            }),
            ConfigError::NotANumber(Node::Info)
        );
        assert_eq!(
            bad(BackendNodes {
                feature_flush_cache: Some("yes"),
                ..nodes()
            }),
            ConfigError::NotANumber(Node::FeatureFlushCache)
        );
        assert_eq!(
            bad(BackendNodes {
                feature_max_indirect_segments: Some(" 32"),
                ..nodes()
            }),
            ConfigError::NotANumber(Node::FeatureMaxIndirectSegments)
        );
    }
}
