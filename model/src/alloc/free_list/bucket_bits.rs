//! The bitmap of buckets in which some block starts.

/// A set of bucket indices as a bitmap with a summary level per 64 words,
/// so "the last member at or before `pos`" is a few word scans.
#[derive(Clone, Debug)]
pub(super) struct BucketBits {
    /// `levels[0]` has one bit per bucket; bit `w` of `levels[l + 1]` is set
    /// when word `w` of `levels[l]` is non-zero. The last level is one word.
    levels: Vec<Vec<u64>>,
}

impl BucketBits {
    pub(super) fn new(buckets: usize) -> BucketBits {
        let mut levels = Vec::new();
        let mut len = buckets.max(1);
        loop {
            let words = len.div_ceil(64);
            levels.push(vec![0u64; words]);
            if words == 1 {
                break;
            }
            len = words;
        }
        BucketBits { levels }
    }

    #[inline]
    pub(super) fn insert(&mut self, mut i: usize) {
        for level in &mut self.levels {
            let w = &mut level[i / 64];
            let was = *w;
            *w |= 1 << (i % 64);
            if was != 0 {
                return;
            }
            i /= 64;
        }
    }

    #[inline]
    pub(super) fn remove(&mut self, mut i: usize) {
        for level in &mut self.levels {
            let w = &mut level[i / 64];
            *w &= !(1 << (i % 64));
            if *w != 0 {
                return;
            }
            i /= 64;
        }
    }

    pub(super) fn contains(&self, i: usize) -> bool {
        self.levels[0][i / 64] & (1 << (i % 64)) != 0
    }

    /// The largest member `<= pos`.
    pub(super) fn last_at_or_before(&self, pos: usize) -> Option<usize> {
        let mut i = pos;
        let mut l = 0;
        // Climb until a word holds a member at or before the position.
        let (mut l, mut j) = loop {
            let w = self.levels[l][i / 64] & (u64::MAX >> (63 - i % 64));
            if w != 0 {
                break (l, i / 64 * 64 + 63 - w.leading_zeros() as usize);
            }
            if i < 64 || l + 1 == self.levels.len() {
                return None;
            }
            i = i / 64 - 1;
            l += 1;
        };
        // Descend, taking the highest member each time.
        while l > 0 {
            l -= 1;
            let w = self.levels[l][j];
            j = j * 64 + 63 - w.leading_zeros() as usize;
        }
        Some(j)
    }
}
