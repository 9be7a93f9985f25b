//! The decoded blocks a trace store keeps for its next reads, and which
//! one goes when another must be decoded.
//!
//! Every replay of a candidate walks its blocks in ascending order, and
//! the next candidate, a little smaller, walks about the same blocks again.
//! Dropping the block used longest ago (LRU) is the worst choice for such
//! cycles: a candidate over one block more than are kept decoded every
//! block at every replay (`cargo bench --bench minimize`'s 1M-event leak:
//! ten candidates in a row over five blocks). So a block goes by when it is
//! needed next, as far as the walk tells (Belady's rule, with the next walk
//! taken to be this one again): first a block this walk does not read,
//! then, of those it has passed, the last (the next walk reaches it last),
//! else the one furthest ahead.

use ttalloc_model::Event;

/// Decoded blocks kept: each a block's events at 104 bytes each, about
/// 7 MB.
pub(super) const KEPT_BLOCKS: usize = 4;

/// The blocks kept decoded, and the blocks of the walk under way.
#[derive(Default)]
pub(super) struct KeptBlocks {
    /// Their indexes and events, the latest used last.
    blocks: Vec<(usize, Vec<Event>)>,
    /// The blocks the walk under way reads, ascending.
    walk: Vec<usize>,
}

impl KeptBlocks {
    /// A walk over `blocks` (ascending) begins.
    pub(super) fn begin_walk(&mut self, blocks: impl IntoIterator<Item = usize>) {
        self.walk.clear();
        self.walk.extend(blocks);
    }

    /// Block `b`'s events, if kept (taken out until [`KeptBlocks::put`]).
    pub(super) fn take(&mut self, b: usize) -> Option<Vec<Event>> {
        let k = self.blocks.iter().position(|(kb, _)| *kb == b)?;
        Some(self.blocks.remove(k).1)
    }

    /// A vector to decode block `b` into: the events of the block that
    /// goes, when as many as are kept are held, else a new one.
    pub(super) fn spare_for(&mut self, b: usize) -> Vec<Event> {
        if self.blocks.len() < KEPT_BLOCKS {
            return Vec::new();
        }
        let walks = |x: usize| self.walk.binary_search(&x).is_ok();
        let k = self
            .blocks
            .iter()
            .position(|&(x, _)| !walks(x))
            .or_else(|| self.last_of(|x| x < b))
            .or_else(|| self.last_of(|_| true))
            .unwrap_or(0);
        self.blocks.remove(k).1
    }

    /// Where the kept block of the highest index that `pick` takes is.
    fn last_of(&self, pick: impl Fn(usize) -> bool) -> Option<usize> {
        (0..self.blocks.len())
            .filter(|&k| pick(self.blocks[k].0))
            .max_by_key(|&k| self.blocks[k].0)
    }

    /// Block `b`'s events, kept (as the latest used).
    pub(super) fn put(&mut self, b: usize, events: Vec<Event>) {
        self.blocks.push((b, events));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks decoded by walks over `blocks`, `walks` times.
    fn decodes(blocks: &[usize], walks: usize) -> usize {
        let mut kept = KeptBlocks::default();
        let mut decoded = 0;
        for _ in 0..walks {
            kept.begin_walk(blocks.iter().copied());
            for &b in blocks {
                let events = kept.take(b).unwrap_or_else(|| {
                    decoded += 1;
                    kept.spare_for(b)
                });
                kept.put(b, events);
            }
        }
        decoded
    }

    #[test]
    fn walks_over_one_block_more_than_are_kept_decode_about_one_block_each() {
        let blocks: Vec<usize> = (0..=KEPT_BLOCKS).collect();
        // The first walk decodes them all. Each later one finds all but the
        // one left out, or, every few walks, all but the first and the last
        // (the first is the one missing: the furthest ahead goes for it):
        // one or two decodes, where an LRU decoded all five every time.
        let (first, later) = (decodes(&blocks, 1), decodes(&blocks, 10) - blocks.len());
        assert_eq!(first, blocks.len());
        assert!((9..=18).contains(&later), "{later} decodes in 9 walks");
    }

    #[test]
    fn walks_over_as_many_blocks_as_are_kept_decode_them_once() {
        let blocks = [0, 7, 9, 30];
        assert_eq!(decodes(&blocks, 10), 4);
    }

    #[test]
    fn a_block_the_walk_does_not_read_goes_first() {
        let mut kept = KeptBlocks::default();
        kept.begin_walk(0..KEPT_BLOCKS);
        for b in 0..KEPT_BLOCKS {
            kept.put(b, Vec::new());
        }
        // A walk over blocks 1.. and one more: block 0 goes.
        kept.begin_walk(1..=KEPT_BLOCKS);
        let _ = kept.spare_for(KEPT_BLOCKS);
        assert!(kept.take(0).is_none());
        assert!((1..KEPT_BLOCKS).all(|b| kept.take(b).is_some()));
    }
}
