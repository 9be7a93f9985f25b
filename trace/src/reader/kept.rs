//! What one pass over a trace leaves for the next pass to take instead of
//! doing the work again: a replay's cycle probe decodes the first blocks of
//! a trace, then the replay decodes them again from the start.
//!
//! Two things are kept: one block decoded whole (the probe decodes block 0
//! whole), and the decompressed records of the blocks the probe decoded
//! without their allocs and frees (the replay decodes those whole, and
//! their zstd frames are a third of decoding them: 12.6M instructions of a
//! 2M-event replay for blocks 1 to 3).

use crate::decode::BlockColumns;
use rkyv::util::AlignedVec;
use std::sync::Mutex;

/// Most decompressed records kept at once: the probe's prefix (250,000
/// events) is blocks 1 to 3 beyond block 0 in blocks of 65,536 events;
/// records past the cap are not kept (the replay decompresses them again),
/// so memory stays at a few blocks' records whatever the caller does.
const RECORDS_MAX: usize = 4;

#[derive(Default)]
pub(super) struct Kept {
    /// A block decoded whole and its index.
    block: Mutex<Option<(usize, BlockColumns)>>,
    /// Decompressed (and checked: zstd frame, record checksum) records of
    /// blocks, by block index.
    records: Mutex<Vec<(usize, AlignedVec<16>)>>,
}

impl Kept {
    /// Keeps `columns`, block `i` decoded whole; returns the block it
    /// replaces, if any.
    pub(super) fn keep_block(&self, i: usize, columns: BlockColumns) -> Option<BlockColumns> {
        lock(&self.block).replace((i, columns)).map(|(_, old)| old)
    }

    /// The block kept by `keep_block` if it is block `i` (then no longer
    /// kept).
    pub(super) fn take_block(&self, i: usize) -> Option<BlockColumns> {
        let mut kept = lock(&self.block);
        match kept.take() {
            Some((k, columns)) if k == i => Some(columns),
            other => {
                *kept = other;
                None
            }
        }
    }

    /// Keeps `record`, block `i`'s decompressed record, unless as many are
    /// kept already (or block `i`'s is).
    pub(super) fn keep_record(&self, i: usize, record: AlignedVec<16>) {
        let mut records = lock(&self.records);
        if records.len() < RECORDS_MAX && records.iter().all(|&(k, _)| k != i) {
            records.push((i, record));
        }
    }

    /// Block `i`'s record kept by `keep_record`, if any (then no longer
    /// kept).
    pub(super) fn take_record(&self, i: usize) -> Option<AlignedVec<16>> {
        let mut records = lock(&self.records);
        let at = records.iter().position(|&(k, _)| k == i)?;
        Some(records.swap_remove(at).1)
    }
}

/// A lock that a panic elsewhere did not make unusable: what it guards is
/// whole between calls (replaced or taken in one step).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(byte: u8) -> AlignedVec<16> {
        let mut v = AlignedVec::new();
        v.extend_from_slice(&[byte; 40]);
        v
    }

    /// A record is handed out once, to its own block; the first
    /// `RECORDS_MAX` are kept and later ones are not.
    #[test]
    fn records_are_taken_once_by_their_block_and_capped() {
        let kept = Kept::default();
        for i in 1..=RECORDS_MAX + 1 {
            kept.keep_record(i, record(i as u8));
        }
        // Block 1 again: the one kept first stays.
        kept.keep_record(1, record(99));
        assert!(kept.take_record(0).is_none());
        assert!(kept.take_record(RECORDS_MAX + 1).is_none(), "past the cap");
        for i in (1..=RECORDS_MAX).rev() {
            assert_eq!(kept.take_record(i).unwrap().as_slice(), &[i as u8; 40]);
            assert!(kept.take_record(i).is_none(), "taken once");
        }
    }
}
