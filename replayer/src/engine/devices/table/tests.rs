//! `Devices` against a plain list of ids: a device is found where the
//! list has it, whether its id is small (found by `find`) or not (found
//! by `position`), and indexing by its `DevIx` reads that device.

use super::{DevIx, Devices, DIRECT_DEVICE_IDS};
use crate::engine::Dev;
use proptest::prelude::*;
use ttalloc_model::DeviceId;

/// `Engine::dev_index` over the table: found, or pushed.
fn index_of(devs: &mut Devices, id: DeviceId) -> DevIx {
    match devs.find(id) {
        Some(ix) => ix,
        None => match devs.position(|d| d.id == id) {
            Some(ix) => ix,
            None => devs.push(Dev::new(id)),
        },
    }
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    prop_oneof![
        // Small ids (indexed), a few of them so they repeat.
        (0u32..8).prop_map(DeviceId),
        (0u32..DIRECT_DEVICE_IDS as u32).prop_map(DeviceId),
        // Ids past the direct table (searched).
        (DIRECT_DEVICE_IDS as u32..DIRECT_DEVICE_IDS as u32 + 4).prop_map(DeviceId),
        any::<u32>().prop_map(DeviceId),
    ]
}

proptest! {
    #[test]
    fn devices_are_found_where_a_list_has_them(ids in proptest::collection::vec(device_id(), 0..200)) {
        let mut devs = Devices::default();
        let mut list: Vec<DeviceId> = Vec::new();
        for id in ids {
            let ix = index_of(&mut devs, id);
            let expected = match list.iter().position(|&d| d == id) {
                Some(i) => i,
                None => {
                    list.push(id);
                    list.len() - 1
                }
            };
            prop_assert_eq!(ix.get(), expected);
            prop_assert_eq!(devs[ix].id, id);
            prop_assert_eq!(devs[ix.get()].id, id);
            prop_assert_eq!(devs.len(), list.len());
            // Small ids are found without a search once seen.
            if (id.0 as usize) < DIRECT_DEVICE_IDS {
                prop_assert_eq!(devs.find(id), Some(ix));
            } else {
                prop_assert_eq!(devs.find(id), None);
            }
        }
    }
}
