//! A 16-ary "max tree" over a fixed number of leaves: each leaf holds a `u32`
//! (the largest free block, in alignment units, starting in one address
//! bucket), and every level above holds the maximum of each group of 16
//! entries below it. One group is 64 bytes — one cache line — so a query or
//! an update touches one line per level: `log16(leaves)` lines, never more.
//!
//! Queries answer "the lowest (or highest) leaf whose value is >= s", which
//! is exactly first-fit bottom-up (or top-down) over address buckets.

const FAN: usize = 16;

#[derive(Clone, Debug)]
pub(crate) struct MaxTree {
    /// `levels[0]` are the leaves; the last level is a single group.
    levels: Vec<Vec<u32>>,
}

/// Bit `k` set when `group[k] >= s`. Values and `s` stay below 2^31 (the
/// free list guarantees it), so a signed compare is exact.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn fit_mask(group: &[u32], s: u32) -> u32 {
    let group: &[u32; FAN] = group.try_into().expect("a group has FAN entries");
    let s = s as i32;
    let mut mask = 0u32;
    for (k, &v) in group.iter().enumerate() {
        mask |= ((v as i32 >= s) as u32) << k;
    }
    mask
}

/// Bit `k` set when `group[k] >= s`: four packed compares and movemasks
/// (SSE2 is part of the x86_64 baseline). Values and `s` stay below 2^31,
/// so the signed compare `v > s - 1` is exact.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn fit_mask(group: &[u32], s: u32) -> u32 {
    use std::arch::x86_64::{
        _mm_castsi128_ps, _mm_cmpgt_epi32, _mm_movemask_ps, _mm_set1_epi32, _mm_set_epi32,
    };
    let g: &[u32; FAN] = group.try_into().expect("a group has FAN entries");
    let mut mask = 0u32;
    // SAFETY: these intrinsics only need SSE2, which this cfg guarantees
    // is enabled at compile time; they touch no memory but their arguments.
    unsafe {
        let sv = _mm_set1_epi32(s as i32 - 1);
        for k in 0..FAN / 4 {
            let v = _mm_set_epi32(
                g[4 * k + 3] as i32,
                g[4 * k + 2] as i32,
                g[4 * k + 1] as i32,
                g[4 * k] as i32,
            );
            let c = _mm_cmpgt_epi32(v, sv);
            mask |= (_mm_movemask_ps(_mm_castsi128_ps(c)) as u32) << (4 * k);
        }
    }
    mask
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn group_max(group: &[u32]) -> u32 {
    let g: &[u32; FAN] = group.try_into().expect("a group has FAN entries");
    g.iter().copied().fold(0, u32::max)
}

/// The largest of 16 entries (all below 2^31): SSE2 has no 32-bit max, so
/// select with a signed compare.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn group_max(group: &[u32]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_andnot_si128, _mm_cmpgt_epi32, _mm_cvtsi128_si32, _mm_or_si128,
        _mm_set_epi32, _mm_shuffle_epi32,
    };
    #[inline(always)]
    fn max(a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled at compile time (cfg above); register-only intrinsics.
        unsafe {
            let m = _mm_cmpgt_epi32(a, b);
            _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b))
        }
    }
    let g: &[u32; FAN] = group.try_into().expect("a group has FAN entries");
    // SAFETY: as above.
    unsafe {
        let v = |k: usize| {
            _mm_set_epi32(
                g[k + 3] as i32,
                g[k + 2] as i32,
                g[k + 1] as i32,
                g[k] as i32,
            )
        };
        let m = max(max(v(0), v(4)), max(v(8), v(12)));
        let m = max(m, _mm_shuffle_epi32(m, 0b01_00_11_10));
        let m = max(m, _mm_shuffle_epi32(m, 0b10_11_00_01));
        _mm_cvtsi128_si32(m) as u32
    }
}

impl MaxTree {
    pub(crate) fn new(leaves: usize) -> MaxTree {
        let mut levels = Vec::new();
        let mut len = leaves.max(1);
        loop {
            let padded = len.div_ceil(FAN) * FAN;
            levels.push(vec![0u32; padded]);
            if padded == FAN {
                break;
            }
            len = padded / FAN;
        }
        MaxTree { levels }
    }

    #[inline]
    pub(crate) fn get(&self, leaf: usize) -> u32 {
        self.levels[0][leaf]
    }

    /// The largest leaf value.
    #[inline]
    pub(crate) fn max(&self) -> u32 {
        group_max(self.levels.last().expect("at least one level"))
    }

    /// Sets a leaf and repairs the maxima above it. A raise only climbs
    /// while a parent is smaller; a lowering only climbs while the parent
    /// held the old value (the leaf was the maximum) — so most updates stop
    /// after one or two levels without rescanning groups.
    #[inline]
    pub(crate) fn set(&mut self, leaf: usize, value: u32) {
        let old = self.levels[0][leaf];
        if old == value {
            return;
        }
        self.levels[0][leaf] = value;
        let mut i = leaf;
        if value > old {
            for l in 1..self.levels.len() {
                i /= FAN;
                let p = &mut self.levels[l][i];
                if *p >= value {
                    return;
                }
                *p = value;
            }
        } else {
            for l in 0..self.levels.len() - 1 {
                let g = i / FAN;
                if self.levels[l + 1][g] != old {
                    return;
                }
                let m = group_max(&self.levels[l][g * FAN..g * FAN + FAN]);
                if m == old {
                    return;
                }
                self.levels[l + 1][g] = m;
                i = g;
            }
        }
    }

    /// Descends from entry `j` of level `l` to a leaf, always taking the
    /// first (`lowest`) or last child whose value is >= s.
    #[inline(always)]
    fn descend(&self, mut l: usize, mut j: usize, s: u32, lowest: bool) -> usize {
        while l > 0 {
            l -= 1;
            let base = j * FAN;
            let mask = fit_mask(&self.levels[l][base..base + FAN], s);
            debug_assert!(mask != 0, "max tree out of sync");
            let k = if lowest {
                mask.trailing_zeros()
            } else {
                31 - mask.leading_zeros()
            };
            j = base + k as usize;
        }
        j
    }

    /// The lowest leaf with value >= s (`s >= 1`: padding leaves hold 0).
    #[inline]
    pub(crate) fn first(&self, s: u32) -> Option<usize> {
        debug_assert!(s >= 1);
        let top = self.levels.len() - 1;
        let mask = fit_mask(&self.levels[top], s);
        if mask == 0 {
            return None;
        }
        Some(self.descend(top, mask.trailing_zeros() as usize, s, true))
    }

    /// The highest leaf with value >= s (`s >= 1`).
    #[inline]
    pub(crate) fn last(&self, s: u32) -> Option<usize> {
        debug_assert!(s >= 1);
        let top = self.levels.len() - 1;
        let mask = fit_mask(&self.levels[top], s);
        if mask == 0 {
            return None;
        }
        Some(self.descend(top, 31 - mask.leading_zeros() as usize, s, false))
    }

    /// Every entry above the leaves is the maximum of its group (for tests).
    pub(crate) fn check(&self) -> Result<(), String> {
        for l in 1..self.levels.len() {
            let groups = self.levels[l - 1].len() / FAN;
            for (j, &b) in self.levels[l].iter().enumerate().take(groups) {
                let m = group_max(&self.levels[l - 1][j * FAN..j * FAN + FAN]);
                if b != m {
                    return Err(format!(
                        "entry {b} at level {l} index {j} is not its group's maximum {m}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The highest leaf `<= pos` with value >= s.
    pub(crate) fn last_at_or_before(&self, pos: usize, s: u32) -> Option<usize> {
        let mut l = 0;
        let mut i = pos as isize;
        loop {
            if i < 0 {
                return None;
            }
            let iu = i as usize;
            let level = &self.levels[l];
            if iu < level.len() {
                let base = iu / FAN * FAN;
                let k = iu - base;
                let keep = if k == FAN - 1 {
                    u32::MAX
                } else {
                    (1u32 << (k + 1)) - 1
                };
                let mask = fit_mask(&level[base..base + FAN], s) & keep;
                if mask != 0 {
                    let j = base + (31 - mask.leading_zeros()) as usize;
                    return Some(self.descend(l, j, s, false));
                }
            }
            if l + 1 == self.levels.len() {
                return None;
            }
            i = (iu / FAN) as isize - 1;
            l += 1;
        }
    }

    /// The lowest leaf `>= pos` with value >= s.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn first_at_or_after(&self, pos: usize, s: u32) -> Option<usize> {
        let mut l = 0;
        let mut i = pos;
        loop {
            let level = &self.levels[l];
            if i >= level.len() {
                return None;
            }
            let base = i / FAN * FAN;
            let k = i - base;
            let mask = fit_mask(&level[base..base + FAN], s) & (u32::MAX << k);
            if mask != 0 {
                let j = base + mask.trailing_zeros() as usize;
                return Some(self.descend(l, j, s, true));
            }
            if l + 1 == self.levels.len() {
                return None;
            }
            i = i / FAN + 1;
            l += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_first(v: &[u32], pos: usize, s: u32) -> Option<usize> {
        (pos..v.len()).find(|&i| v[i] >= s)
    }
    fn naive_last(v: &[u32], pos: usize, s: u32) -> Option<usize> {
        (0..=pos.min(v.len().saturating_sub(1)))
            .rev()
            .find(|&i| v[i] >= s)
    }

    #[test]
    fn queries_agree_with_a_linear_scan() {
        // Deterministic pseudo-random values over several tree heights.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for &n in &[1usize, 15, 16, 17, 255, 256, 257, 5000] {
            let mut t = MaxTree::new(n);
            let mut v = vec![0u32; n];
            for _ in 0..(4 * n) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % n as u64) as usize;
                let val = ((x >> 20) % 50) as u32;
                t.set(i, val);
                v[i] = val;
                // Callers never ask for 0 units (padding leaves hold 0).
                let s = 1 + ((x >> 40) % 52) as u32;
                let pos = ((x >> 8) % n as u64) as usize;
                assert_eq!(t.first(s), naive_first(&v, 0, s));
                assert_eq!(t.last(s), naive_last(&v, n - 1, s));
                assert_eq!(t.first_at_or_after(pos, s), naive_first(&v, pos, s));
                assert_eq!(t.last_at_or_before(pos, s), naive_last(&v, pos, s));
                assert_eq!(t.max(), v.iter().copied().max().unwrap());
                t.check().unwrap();
            }
        }
    }
}
