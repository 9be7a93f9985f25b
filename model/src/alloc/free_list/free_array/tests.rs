//! The free array against a plain sorted vector.

use super::*;
use proptest::prelude::*;

/// A plain sorted vector of free blocks, the reference.
fn reference_rank<W: Word>(v: &[FreeBlock<W>], addr: W) -> usize {
    v.iter().filter(|f| f.addr < addr).count()
}

/// Blocks freed and carved at random (`ops`: first fits from either
/// end, or from inside a block) keep the array equal to a plain vector
/// merged by hand, and its rank and first fits (both
/// directions, window or scan) equal plain scans. Over 40 units of
/// `unit` words each, from word `base`.
fn matches_a_plain_vector<W: Word>(
    ops: &[(u64, u64, bool, u64)],
    word: impl Fn(u64) -> W,
    base: u64,
    unit: u64,
) -> Result<(), TestCaseError> {
    let at_word = |x: u64| word(base + x);
    // `taken[u]`: unit `u` is allocated.
    let mut taken = [true; 40];
    let mut a = FreeArray::new::<W>();
    for &(u, len, bottom_up, want) in ops {
        let u = u as usize;
        let end = (u + len as usize).min(40);
        if taken[u..end].iter().all(|&t| t) {
            // Free the run (it is allocated): the array merges it.
            a.free_span(at_word(u as u64 * unit), word((end - u) as u64 * unit));
            taken[u..end].fill(false);
        } else {
            // Carve `want` units first fit, as the compact list does.
            let alloc = word(want * unit);
            let plain: Vec<FreeBlock<W>> = a.blocks::<W>().collect();
            let expect = if bottom_up {
                plain.iter().position(|f| f.size >= alloc)
            } else {
                plain.iter().rposition(|f| f.size >= alloc)
            };
            let got = a.fit(alloc, bottom_up);
            prop_assert_eq!((got < a.len()).then_some(got), expect);
            if let Some(k) = expect {
                let f = plain[k];
                let one = word(unit);
                let at = if want % 3 == 0 && f.size > alloc + one {
                    // Carve from inside the block, one unit up (as an
                    // allocation at a recorded address does): what is left
                    // above it goes in after it.
                    let at = f.addr + one;
                    a.insert::<W>(k + 1, at + alloc, f.size - one - alloc);
                    // SAFETY: `k` is a block's (`expect`: of `plain`).
                    unsafe { a.set_size(k, one) };
                    at
                } else if bottom_up {
                    a.carve_fit::<W, true>(alloc).unwrap()
                } else {
                    a.carve_fit::<W, false>(alloc).unwrap()
                };
                let first = (0..40).find(|&x| at_word(x * unit) == at).unwrap() as usize;
                taken[first..first + want as usize].fill(true);
            }
        }
        // The array is the free runs of `taken`, in order.
        let mut runs = Vec::new();
        let mut x = 0;
        while x < 40 {
            if taken[x] {
                x += 1;
                continue;
            }
            let s = x;
            while x < 40 && !taken[x] {
                x += 1;
            }
            runs.push(FreeBlock {
                addr: at_word(s as u64 * unit),
                size: word((x - s) as u64 * unit),
            });
        }
        prop_assert_eq!(a.blocks::<W>().collect::<Vec<_>>(), runs.clone());
        let slots = a.slot_count::<W>();
        prop_assert!(slots > a.len && slots >= WIDE);
        for k in a.len..slots {
            // SAFETY: `k` is a slot.
            prop_assert_eq!(
                unsafe { a.slot_any::<W>(k) },
                FreeBlock {
                    addr: W::PAD_ADDR,
                    size: W::ZERO
                }
            );
        }
        prop_assert_eq!(a.lines.as_ptr() as usize % 64, 0);
        for probe in [
            0,
            1,
            unit - 1,
            unit,
            unit + 1,
            20 * unit,
            40 * unit - 1,
            40 * unit,
        ] {
            prop_assert_eq!(
                a.rank(at_word(probe)),
                reference_rank(&runs, at_word(probe))
            );
        }
        prop_assert_eq!(a.rank(W::PAD_ADDR), runs.len());
    }
    Ok(())
}

proptest! {
    /// In `u64` and `u32` words (its SSE2 window), units of 16 B and
    /// of 2^25 B (words near `i32::MAX`).
    #[test]
    fn the_padded_array_matches_a_plain_vector(
        ops in prop::collection::vec((0u64..40, 1u64..6, any::<bool>(), 1u64..12), 1..200),
    ) {
        matches_a_plain_vector::<u64>(&ops, |x| x, 0, 16)?;
        // A range ending at `u64::MAX`, a pad's address: the top
        // block's end is where a pad starts, and they must not merge.
        matches_a_plain_vector::<u64>(&ops, |x| x, u64::MAX - 40 * 16, 16)?;
        matches_a_plain_vector::<u32>(&ops, |x| x as u32, 0, 1)?;
        // Units far apart: words up to near `i32::MAX`.
        matches_a_plain_vector::<u32>(&ops, |x| x as u32, 0, 1 << 25)?;
    }
}
