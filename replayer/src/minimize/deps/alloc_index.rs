//! The latest alloc of each (device, buffer id), for pairing frees with
//! their allocs while a trace is read: a table indexed by the id where the
//! ids are dense, a hash map for the rest.
//!
//! Why: a map entry of (device, id) -> ordinal took 24 bytes plus its
//! control byte at a load of at most 7/8, and the map kept every alloc of
//! the trace (a second free of a buffer pairs with its alloc too): for the
//! 10M-event synthetic trace, 2.85M entries in a 3.67M-slot table, 92 MB
//! (138 MB while it grew), the largest part of `minimize`'s first pass.
//! tt-metal numbers buffers with one counter from 0, so their ids are
//! dense: the table takes 8 bytes per id. Ids that are not (addresses, an
//! importer's) go to the map, as before.

use ttalloc_model::hash::FastMap;

const EMPTY: u32 = u32::MAX;

/// Ids the table grows to cover without question; beyond, up to this many
/// times the allocs recorded so far (so sparse ids never make it grow
/// without bound).
const DENSE_FLOOR: u64 = 1 << 20;
const DENSE_SPREAD: u64 = 4;

/// (device, buffer id) -> the ordinal of its latest alloc.
#[derive(Default)]
pub(super) struct AllocIndex {
    /// By id: the device of the first alloc of that id and the ordinal of
    /// that device's latest alloc of it (`EMPTY`: none yet). A slot's
    /// device never changes: another device's allocs of the id are in
    /// `others`.
    dense: Vec<(u32, u32)>,
    others: FastMap<(u32, u64), u32>,
    inserted: u64,
}

impl AllocIndex {
    /// Device `device`'s alloc of buffer `id` is at ordinal `i`.
    pub(super) fn insert(&mut self, device: u32, id: u64, i: u32) {
        self.inserted += 1;
        if let Some(slot) = self.slot_for(id) {
            if slot.1 == EMPTY || slot.0 == device {
                *slot = (device, i);
                return;
            }
        }
        self.others.insert((device, id), i);
    }

    /// The ordinal of device `device`'s latest alloc of buffer `id`.
    pub(super) fn get(&self, device: u32, id: u64) -> Option<u32> {
        match usize::try_from(id).ok().and_then(|k| self.dense.get(k)) {
            Some(&(d, i)) if i != EMPTY && d == device => Some(i),
            _ => self.others.get(&(device, id)).copied(),
        }
    }

    /// The table's slot of `id`, grown to it if the ids are dense enough.
    fn slot_for(&mut self, id: u64) -> Option<&mut (u32, u32)> {
        let limit = DENSE_FLOOR.max(self.inserted.saturating_mul(DENSE_SPREAD));
        if id >= limit {
            return None;
        }
        let k = id as usize;
        if k >= self.dense.len() {
            self.dense.resize(k + 1, (0, EMPTY));
        }
        self.dense.get_mut(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Ids dense from 0, a few far apart, and some shared by devices.
    fn id() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0u64..64,
            1 => (DENSE_FLOOR - 4)..(DENSE_FLOOR + 4),
            1 => any::<u64>(),
        ]
    }

    proptest! {
        /// The index answers as a map of (device, id) to the latest alloc.
        #[test]
        fn pairs_as_a_map_of_device_and_id(
            ops in proptest::collection::vec((any::<bool>(), 0u32..3, id()), 1..400)
        ) {
            let mut index = AllocIndex::default();
            let mut map: HashMap<(u32, u64), u32> = HashMap::new();
            for (i, &(alloc, device, id)) in ops.iter().enumerate() {
                if alloc {
                    index.insert(device, id, i as u32);
                    map.insert((device, id), i as u32);
                } else {
                    prop_assert_eq!(index.get(device, id), map.get(&(device, id)).copied());
                }
            }
            for &(_, device, id) in &ops {
                prop_assert_eq!(index.get(device, id), map.get(&(device, id)).copied());
            }
        }
    }

    #[test]
    fn dense_ids_take_the_table_and_sparse_ones_the_map() {
        let mut index = AllocIndex::default();
        for id in 0..1000 {
            index.insert(id as u32 % 8, id, id as u32);
        }
        // Every id in the table, 8 bytes each; none in the map.
        assert_eq!(index.dense.len(), 1000);
        assert!(index.others.is_empty());
        // Addresses as ids: far past the allocs recorded, to the map.
        let far = 1u64 << 40;
        index.insert(0, far, 1000);
        assert_eq!(index.dense.len(), 1000);
        assert_eq!(index.get(0, far), Some(1000));
        // The same id on another device: to the map, the first kept.
        index.insert(3, 5, 1001);
        assert_eq!((index.get(5, 5), index.get(3, 5)), (Some(5), Some(1001)));
    }
}
