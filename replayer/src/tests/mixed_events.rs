//! One generator of mixed events for the block walks' property tests (the
//! cycle scan's columns walk and the rare-kinds walk), so both draw from
//! the same kinds.

use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, EventKind, Layout, SiteId, StringId,
};

/// Event `i`'s kind by `code`: 0 buffer alloc, 1 free (of an earlier id),
/// 2 op begin, 3 op end, 4 marker, 5 circular buffer, 6 CB free-all,
/// 7 device open, anything else device close; on device `i % devices`,
/// named from `names`.
pub(crate) fn mixed_kind(code: u8, i: u64, names: &[StringId], devices: u64) -> EventKind {
    let device = DeviceId((i % devices) as u32);
    match code {
        0 => EventKind::BufferAlloc {
            device,
            buffer: BufferId(i),
            buffer_type: BufferType::Dram,
            address: None,
            size: 4096,
            page_size: None,
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId::UNKNOWN,
        },
        1 => EventKind::BufferFree {
            device,
            buffer: BufferId(i / 2),
            site: SiteId::UNKNOWN,
        },
        2 => EventKind::OpBegin {
            name: names[i as usize % names.len()],
        },
        3 => EventKind::OpEnd,
        4 => EventKind::Marker {
            label: names[(i as usize + 1) % names.len()],
        },
        5 => EventKind::CbAlloc {
            device,
            address: 0x1000,
            size: 64,
            cores: None,
            globally_allocated: false,
            site: SiteId::UNKNOWN,
        },
        6 => EventKind::CbFreeAll { device },
        7 => EventKind::DeviceOpen {
            device,
            arch: Arch::WormholeB0,
            config: Box::new(DeviceConfig::default()),
        },
        _ => EventKind::DeviceClose { device },
    }
}
