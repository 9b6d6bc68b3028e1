//! The guest-physical memory layout: which RAM the heap may use.
//!
//! The start info's memory map lists RAM; the image, the start info, its
//! command line and memory map (which stay in use), the low 1 MiB and anything
//! above the boot page tables' reach are taken out. What is left, cut to
//! whole pages, becomes the heap. Plain arithmetic, tested on the host.

/// A half-open range of guest-physical addresses `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Region {
    /// The region of `len` bytes at `start` (saturating at the top).
    pub const fn at(start: u64, len: u64) -> Region {
        Region {
            start,
            end: start.saturating_add(len),
        }
    }

    /// Bytes in the region (0 if empty or inverted).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the region holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most reserved ranges [`usable`] takes out.
pub const RESERVED_MAX: usize = 8;

/// The most usable regions [`usable`] returns; smaller leftovers are dropped.
pub const USABLE_MAX: usize = 16;

/// Page size used for alignment.
const PAGE: u64 = 4096;

/// RAM minus `reserved`, clipped to `[low, high)`, each piece shrunk to whole
/// pages. Writes up to [`USABLE_MAX`] regions to `out`, largest first, and
/// returns how many.
///
/// # Panics
///
/// If `reserved` has more than [`RESERVED_MAX`] entries (a bug in the caller,
/// which builds it from a fixed list).
pub fn usable(
    ram: impl IntoIterator<Item = Region>,
    reserved: &[Region],
    low: u64,
    high: u64,
    out: &mut [Region; USABLE_MAX],
) -> usize {
    assert!(reserved.len() <= RESERVED_MAX, "too many reserved ranges");
    let mut sorted = [Region { start: 0, end: 0 }; RESERVED_MAX];
    sorted[..reserved.len()].copy_from_slice(reserved);
    let sorted = &mut sorted[..reserved.len()];
    sorted.sort_unstable_by_key(|r| r.start);

    let mut count = 0;
    let push = |piece: Region, out: &mut [Region; USABLE_MAX], count: &mut usize| {
        let start = piece.start.div_ceil(PAGE).saturating_mul(PAGE);
        let end = piece.end / PAGE * PAGE;
        if end <= start {
            return;
        }
        let piece = Region { start, end };
        if *count < USABLE_MAX {
            out[*count] = piece;
            *count += 1;
        } else if let Some(smallest) = out.iter_mut().min_by_key(|r| r.len()) {
            if smallest.len() < piece.len() {
                *smallest = piece;
            }
        }
    };
    for region in ram {
        let start = region.start.max(low);
        let end = region.end.min(high);
        if end <= start {
            continue;
        }
        let mut cursor = start;
        for hole in sorted.iter() {
            if hole.end <= cursor || hole.start >= end {
                continue;
            }
            if hole.start > cursor {
                push(
                    Region {
                        start: cursor,
                        end: hole.start,
                    },
                    out,
                    &mut count,
                );
            }
            cursor = cursor.max(hole.end);
        }
        if cursor < end {
            push(Region { start: cursor, end }, out, &mut count);
        }
    }
    out[..count].sort_unstable_by_key(|r| core::cmp::Reverse(r.len()));
    count
}

#[cfg(test)]
mod test {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn run(ram: &[Region], reserved: &[Region], low: u64, high: u64) -> alloc::vec::Vec<Region> {
        let mut out = [Region { start: 0, end: 0 }; USABLE_MAX];
        let n = usable(ram.iter().copied(), reserved, low, high, &mut out);
        out[..n].to_vec()
    }

    #[test]
    fn image_and_start_info_are_taken_out() {
        // A 64 MiB PVH guest: RAM from 0, image at 1 MiB..1.5 MiB, start info
        // and its command line right after the image.
        let ram = [Region::at(0, 64 * MIB)];
        let reserved = [
            Region {
                start: MIB,
                end: MIB + 512 * 1024,
            },
            Region::at(MIB + 512 * 1024, 56),
            Region::at(MIB + 512 * 1024 + 56, 20),
        ];
        let got = run(&ram, &reserved, MIB, 4096 * MIB);
        assert_eq!(
            got,
            [Region {
                start: MIB + 512 * 1024 + 4096,
                end: 64 * MIB
            }]
        );
    }

    #[test]
    fn pieces_between_holes_are_kept_and_sorted_largest_first() {
        let ram = [Region::at(0, 16 * MIB), Region::at(32 * MIB, 64 * MIB)];
        let reserved = [Region::at(4 * MIB, MIB), Region::at(40 * MIB, MIB)];
        let got = run(&ram, &reserved, MIB, 4096 * MIB);
        assert_eq!(
            got,
            [
                Region {
                    start: 41 * MIB,
                    end: 96 * MIB
                },
                Region {
                    start: 5 * MIB,
                    end: 16 * MIB
                },
                Region {
                    start: 32 * MIB,
                    end: 40 * MIB
                },
                Region {
                    start: MIB,
                    end: 4 * MIB
                },
            ]
        );
    }

    #[test]
    fn unaligned_ram_is_shrunk_to_pages_and_slivers_dropped() {
        let ram = [
            Region {
                start: 2 * MIB + 1,
                end: 2 * MIB + 4096 + 100,
            },
            Region {
                start: 8 * MIB + 10,
                end: 9 * MIB - 10,
            },
        ];
        let got = run(&ram, &[], MIB, 4096 * MIB);
        assert_eq!(
            got,
            [Region {
                start: 8 * MIB + 4096,
                end: 9 * MIB - 4096
            }]
        );
    }

    #[test]
    fn ram_above_the_identity_map_is_ignored() {
        let ram = [Region::at(0, 6 * 1024 * MIB)];
        let got = run(&ram, &[], MIB, 4 * 1024 * MIB);
        assert_eq!(
            got,
            [Region {
                start: MIB,
                end: 4 * 1024 * MIB
            }]
        );
    }

    #[test]
    fn at_most_usable_max_regions_keeping_the_largest() {
        let ram: alloc::vec::Vec<Region> = (0..40u64)
            .map(|i| Region::at((2 + 2 * i) * MIB, (i + 1) * 4096))
            .collect();
        let got = run(&ram, &[], MIB, 4096 * MIB);
        assert_eq!(got.len(), USABLE_MAX);
        assert_eq!(got[0].len(), 40 * 4096);
        assert_eq!(
            got[USABLE_MAX - 1].len(),
            (40 - USABLE_MAX as u64 + 1) * 4096
        );
    }

    #[test]
    fn overlapping_reserved_ranges() {
        let ram = [Region::at(0, 16 * MIB)];
        let reserved = [
            Region::at(2 * MIB, 4 * MIB),
            Region::at(3 * MIB, MIB),
            Region::at(5 * MIB, 2 * MIB),
        ];
        let got = run(&ram, &reserved, MIB, 4096 * MIB);
        assert_eq!(
            got,
            [
                Region {
                    start: 7 * MIB,
                    end: 16 * MIB
                },
                Region {
                    start: MIB,
                    end: 2 * MIB
                }
            ]
        );
    }
}
