//! The scratch disk's pattern: a pure function of a seed and the byte
//! offset on the disk, so dom0 can regenerate it independently.
//!
//! The disk is a sequence of little-endian 64-bit words; the word at byte
//! offset `8 * i` is `splitmix64(seed * 2^32 + i)` (wrapping arithmetic).
//! The dom0 checker (`xtask/src/e2e/scenarios/storage-pattern.c`) computes
//! the same formula; change both together.
#![forbid(unsafe_code)]

/// Bytes per pattern word.
pub const WORD_BYTES: usize = 8;

/// One step of splitmix64 (Steele, Lea, Flood 2014): a bijective mix of
/// `x + golden gamma`.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The pattern word with index `i` (byte offset `8 * i`) for `seed`.
pub const fn word(seed: u64, i: u64) -> u64 {
    splitmix64(seed.wrapping_shl(32).wrapping_add(i))
}

/// Fills `buf` with the pattern as it lies on the disk from byte `offset`.
///
/// # Panics
///
/// If `offset` or `buf.len()` is not a multiple of [`WORD_BYTES`] (callers
/// work in whole sectors).
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    assert!(offset.is_multiple_of(WORD_BYTES as u64) && buf.len().is_multiple_of(WORD_BYTES));
    let first = offset / WORD_BYTES as u64;
    for (k, chunk) in buf.chunks_exact_mut(WORD_BYTES).enumerate() {
        chunk.copy_from_slice(&word(seed, first + k as u64).to_le_bytes());
    }
}

/// The first byte of `buf` that differs from the pattern at `offset`, as
/// an offset on the disk; `None` when all match.
///
/// # Panics
///
/// As [`fill`].
pub fn first_mismatch(seed: u64, offset: u64, buf: &[u8]) -> Option<u64> {
    assert!(offset.is_multiple_of(WORD_BYTES as u64) && buf.len().is_multiple_of(WORD_BYTES));
    let first = offset / WORD_BYTES as u64;
    for (k, chunk) in buf.chunks_exact(WORD_BYTES).enumerate() {
        let want = word(seed, first + k as u64).to_le_bytes();
        if let Some(b) = chunk.iter().zip(want).position(|(a, b)| *a != b) {
            return Some(offset + (k * WORD_BYTES + b) as u64);
        }
    }
    None
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn splitmix64_known_values() {
        // The first outputs of the reference splitmix64 generator seeded
        // with 0 (state advances by the gamma before each mix).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        // The values the dom0 checker's self-test expects.
        assert_eq!(word(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(word(1, 5), splitmix64((1 << 32) + 5));
    }

    #[test]
    fn fill_is_positional() {
        let mut whole = [0u8; 64];
        fill(7, 4096, &mut whole);
        let mut tail = [0u8; 32];
        fill(7, 4096 + 32, &mut tail);
        assert_eq!(&whole[32..], &tail);
        assert_eq!(&whole[..8], &word(7, 512).to_le_bytes());
        let mut other = [0u8; 64];
        fill(8, 4096, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn mismatch_is_located() {
        let mut buf = [0u8; 256];
        fill(3, 1024, &mut buf);
        assert_eq!(first_mismatch(3, 1024, &buf), None);
        assert_eq!(first_mismatch(4, 1024, &buf), Some(1024));
        buf[77] ^= 1;
        assert_eq!(first_mismatch(3, 1024, &buf), Some(1024 + 77));
    }

    #[test]
    #[should_panic]
    fn unaligned_offset_is_a_bug() {
        fill(0, 4, &mut [0u8; 8]);
    }
}
