//! A buffer type's slot in a device's per-type books (`PerType` arrays of
//! four), by tables: buffer types come in no order a branch predicts.

use super::super::*;

// Type slots index `PerType` arrays of four (the `& 3` of `buffers.rs` relies on it).
const _: () = assert!(TYPES.len() == 4);

/// `type_slot` by table: buffer types come in no order a branch predicts.
#[inline]
pub(super) fn device_type_slot(bt: BufferType) -> Option<usize> {
    const SLOTS: [u8; BufferType::ALL.len()] = {
        let mut slots = [NO_SLOT; BufferType::ALL.len()];
        let mut i = 0;
        while i < TYPES.len() {
            slots[TYPES[i] as usize] = i as u8;
            i += 1;
        }
        slots
    };
    let s = SLOTS[bt as usize];
    (s != NO_SLOT).then_some(s as usize)
}

/// `device_type_slot` of the buffer type whose code (a block's alloc
/// flags, `AllocRef::type_code`) is `code`: `BufferType::ALL[code]`, and
/// DRAM for the codes past it (as the trace reads them).
#[inline]
pub(in crate::engine) fn device_type_slot_of_code(code: u8) -> Option<usize> {
    const SLOTS: [u8; 8] = {
        let mut slots = [NO_SLOT; 8];
        let mut code = 0;
        while code < 8 {
            let bt = if code < BufferType::ALL.len() {
                BufferType::ALL[code]
            } else {
                BufferType::Dram
            };
            let mut i = 0;
            while i < TYPES.len() {
                if TYPES[i] as usize == bt as usize {
                    slots[code] = i as u8;
                }
                i += 1;
            }
            code += 1;
        }
        slots
    };
    let s = SLOTS[code as usize & 7];
    (s != NO_SLOT).then_some(s as usize)
}

#[cfg(test)]
#[test]
fn the_slot_table_is_type_slot() {
    for bt in BufferType::ALL {
        assert_eq!(device_type_slot(bt), type_slot(bt), "{bt:?}");
        // What `Sim::alloc_placed_in` is given for the model's bank manager.
        assert_eq!(
            device_type_slot(bt),
            ttalloc_model::alloc::manager_slot(bt),
            "{bt:?}"
        );
        // By the code a block's alloc holds for the type.
        let mut allocs = ttalloc_trace::AllocColumns::default();
        allocs.push(&ttalloc_trace::AllocCol {
            device: DeviceId(0),
            buffer: BufferId(1),
            buffer_type: bt,
            layout: ttalloc_model::Layout::Interleaved,
            address: None,
            size: 64,
            page_size: None,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId::UNKNOWN,
        });
        let code = allocs.at(0).expect("one alloc").type_code();
        assert_eq!(
            device_type_slot_of_code(code),
            device_type_slot(bt),
            "{bt:?}"
        );
    }
    // Codes past the types read as DRAM.
    for code in BufferType::ALL.len() as u8..8 {
        assert_eq!(
            device_type_slot_of_code(code),
            device_type_slot(BufferType::Dram)
        );
    }
}
