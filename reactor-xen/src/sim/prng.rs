//! The simulation's pseudo-random number generator: xoshiro256** seeded by
//! SplitMix64, with integer-ratio probabilities.
//!
//! One `u64` seed feeds the whole world. Each part of the world (the fault
//! sites, each backend, each test workload) gets its own sub-seed derived from
//! the root seed and a label ([`derive_seed`]), so adding a draw in one part
//! never shifts the draws of another.
//!
//! Probabilities are [`Ratio`]s of integers, never floats, so a run is the same
//! on every machine.

use core::fmt;

/// One step of SplitMix64 (Steele, Lea, Flood 2014): used to expand seeds.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The sub-seed of the part named `label` of a run seeded with `seed`.
///
/// # Examples
///
/// ```
/// use ringlet_xen::sim::prng::derive_seed;
/// assert_eq!(derive_seed(7, "faults"), derive_seed(7, "faults"));
/// assert_ne!(derive_seed(7, "faults"), derive_seed(7, "echo"));
/// assert_ne!(derive_seed(7, "faults"), derive_seed(8, "faults"));
/// ```
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    let mut s = seed ^ fnv1a(label.as_bytes());
    splitmix64(&mut s)
}

/// A probability as an integer ratio `num / den` (`num <= den`, `den > 0`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: u32,
    den: u32,
}

impl Ratio {
    /// Probability 0.
    pub const NEVER: Ratio = Ratio { num: 0, den: 1 };
    /// Probability 1.
    pub const ALWAYS: Ratio = Ratio { num: 1, den: 1 };

    /// `num / den`.
    ///
    /// # Panics
    ///
    /// If `den == 0` or `num > den`.
    pub const fn new(num: u32, den: u32) -> Ratio {
        assert!(den > 0, "a ratio needs a non-zero denominator");
        assert!(num <= den, "a probability is at most 1");
        Ratio { num, den }
    }

    /// The numerator.
    pub const fn num(self) -> u32 {
        self.num
    }

    /// The denominator.
    pub const fn den(self) -> u32 {
        self.den
    }

    /// Whether the probability is zero.
    pub const fn is_never(self) -> bool {
        self.num == 0
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// xoshiro256** (Blackman, Vigna 2018): small, fast, and good enough for
/// choosing faults and workloads. Not for cryptography.
#[derive(Clone, PartialEq, Eq)]
pub struct Prng {
    s: [u64; 4],
}

impl fmt::Debug for Prng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prng").finish_non_exhaustive()
    }
}

impl Prng {
    /// A generator whose state is expanded from `seed` with SplitMix64.
    pub fn new(seed: u64) -> Prng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // SplitMix64 is a bijection of its counter, so four consecutive
        // outputs are never all zero (xoshiro's one forbidden state).
        assert!(s != [0; 4]);
        Prng { s }
    }

    /// A generator for the part `label` of a run seeded with `seed`.
    pub fn for_part(seed: u64, label: &str) -> Prng {
        Prng::new(derive_seed(seed, label))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (Lemire's multiply-and-reject: no bias).
    ///
    /// # Panics
    ///
    /// If `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform integer in `lo..=hi`.
    ///
    /// # Panics
    ///
    /// If `lo > hi`.
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    /// True with probability `ratio`.
    pub fn chance(&mut self, ratio: Ratio) -> bool {
        if ratio.num == 0 {
            return false;
        }
        if ratio.num == ratio.den {
            return true;
        }
        self.below(u64::from(ratio.den)) < u64::from(ratio.num)
    }

    /// A uniformly chosen element of `items`, or `None` if it is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let i = self.below(items.len() as u64) as usize;
        items.get(i)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A new generator seeded from this one's next output.
    pub fn fork(&mut self) -> Prng {
        Prng::new(self.next_u64())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::format;
    use std::prelude::rust_2021::*;

    #[test]
    fn splitmix_matches_reference_vector() {
        // Reference outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut s), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(&mut s), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn xoshiro_matches_reference_vector() {
        // xoshiro256** from state [1, 2, 3, 4] (Vigna's xoshiro256starstar.c).
        let mut p = Prng { s: [1, 2, 3, 4] };
        let got: [u64; 4] = core::array::from_fn(|_| p.next_u64());
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a: [u64; 8] = {
            let mut p = Prng::new(42);
            core::array::from_fn(|_| p.next_u64())
        };
        let b: [u64; 8] = {
            let mut p = Prng::new(42);
            core::array::from_fn(|_| p.next_u64())
        };
        let c: [u64; 8] = {
            let mut p = Prng::new(43);
            core::array::from_fn(|_| p.next_u64())
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut p = Prng::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = p.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(p.range_inclusive(5, 5), 5);
        let full = p.range_inclusive(0, u64::MAX);
        let _ = full;
    }

    #[test]
    fn chance_respects_ratio_bounds() {
        let mut p = Prng::new(9);
        assert!((0..100).all(|_| !p.chance(Ratio::NEVER)));
        assert!((0..100).all(|_| p.chance(Ratio::ALWAYS)));
        let hits = (0..10_000).filter(|_| p.chance(Ratio::new(1, 4))).count();
        assert!((2_200..2_800).contains(&hits), "{hits} hits for 1/4");
    }

    #[test]
    #[should_panic(expected = "at most 1")]
    fn ratio_above_one_is_rejected() {
        let _ = Ratio::new(3, 2);
    }

    #[test]
    fn ratio_debug_is_a_fraction() {
        assert_eq!(format!("{:?}", Ratio::new(3, 100)), "3/100");
    }
}
