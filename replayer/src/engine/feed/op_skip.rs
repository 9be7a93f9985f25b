//! The events of a block the engine acts on when no cycle rule follows op
//! scopes: every event but op begins and ends (about a third of a trace),
//! found in one pass without branches, so the walk that dispatches on each
//! event's kind sees only those.

use super::{MARKER, OP_BEGIN, OP_END};

/// Positions in a block that are not op scopes, and where its names are.
#[derive(Default)]
pub(in crate::engine) struct OpSkip {
    /// `kept[..len]`: positions of the events other than op begins and ends,
    /// in order (the rest of the vector is scratch).
    kept: Vec<u32>,
    len: usize,
    /// Names (op begins' and markers') before position `64 * i`.
    names_before: Vec<u32>,
}

/// Events per entry of `names_before`.
const GROUP: usize = 64;

impl OpSkip {
    /// Finds the events of a block with kind codes `tags` that are kept.
    pub(super) fn scan(&mut self, tags: &[u8]) {
        if self.kept.len() < tags.len() {
            self.kept.resize(tags.len(), 0);
        }
        self.names_before.clear();
        let (mut n, mut names) = (0usize, 0u32);
        for (group, chunk) in tags.chunks(GROUP).enumerate() {
            self.names_before.push(names);
            for (i, &tag) in chunk.iter().enumerate() {
                // Written every time, kept when it is not an op scope.
                self.kept[n] = (group * GROUP + i) as u32;
                n += (tag != OP_BEGIN && tag != OP_END) as usize;
                names += (tag == OP_BEGIN || tag == MARKER) as u32;
            }
        }
        self.len = n;
    }

    /// Positions of the kept events, in order.
    pub(super) fn kept(&self) -> &[u32] {
        &self.kept[..self.len]
    }

    /// The index in the block's names column of the op begin or marker at
    /// `pos` (of the `tags` last scanned).
    pub(super) fn name_index(&self, tags: &[u8], pos: usize) -> usize {
        let group = pos / GROUP;
        let before = self.names_before[group] as usize;
        before
            + tags[group * GROUP..pos]
                .iter()
                .filter(|&&t| t == OP_BEGIN || t == MARKER)
                .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::feed::{ALLOC, FREE};

    #[test]
    fn keeps_all_but_op_scopes_and_finds_every_name() {
        // 200 events cycling through alloc, op begin, free, marker, op end:
        // positions 5k, 5k+2, 5k+3 are kept; op begins and markers take
        // names in order, so the one at 5k+1 has index 2k, at 5k+3 2k+1.
        let tags: Vec<u8> = (0..200)
            .map(|i| [ALLOC, OP_BEGIN, FREE, MARKER, OP_END][i % 5])
            .collect();
        let mut skip = OpSkip::default();
        skip.scan(&tags);
        let want: Vec<u32> = (0..200u32).filter(|p| matches!(p % 5, 0 | 2 | 3)).collect();
        assert_eq!(skip.kept(), &want[..]);
        for k in 0..40 {
            assert_eq!(skip.name_index(&tags, 5 * k + 1), 2 * k);
            assert_eq!(skip.name_index(&tags, 5 * k + 3), 2 * k + 1);
        }
        // A shorter block after a longer one: only its own positions.
        skip.scan(&tags[..7]);
        assert_eq!(skip.kept(), &[0, 2, 3, 5][..]);
    }
}
