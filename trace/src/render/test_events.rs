//! Events for the line renderers' tests.

use ttalloc_model::{
    BufferId, BufferType, DeviceId, EventKind, InternTables, Layout, SiteId, StringId,
};

/// Every shape of the kinds the line renderers write field by field
/// (buffer allocs and frees, circular buffers, op scopes, markers):
/// optional fields present and absent, labels empty and not, strings that
/// need quoting or escaping (quotes, backslash, control bytes, non-ASCII),
/// a site unknown.
pub(super) fn common_kinds(t: &mut InternTables) -> Vec<EventKind> {
    let site = t.intern_stack_str(&[("f\"q", "/src/a.py", 3), ("g", "C:\\b.py", 9)]);
    let label = t.intern_string("L1 \"x\"\t\u{1}\u{1f}\u{8}\u{c}\r\n é→ [1,32]");
    let op = t.intern_string("ttnn.add");
    let mut kinds = Vec::new();
    for (address, page_size, num_cores, per_bank_size, label, site) in [
        (Some(0x1000), Some(2048), Some(64), Some(4096), label, site),
        (None, None, None, None, StringId::EMPTY, SiteId::UNKNOWN),
        (Some(0), None, Some(1), None, label, site),
    ] {
        kinds.push(EventKind::BufferAlloc {
            device: DeviceId(3),
            buffer: BufferId(1 << 41 | 7),
            buffer_type: BufferType::L1Small,
            address,
            size: u64::MAX,
            page_size,
            layout: Layout::BlockSharded,
            num_cores,
            per_bank_size,
            label,
            site,
        });
    }
    for site in [site, SiteId::UNKNOWN] {
        kinds.push(EventKind::BufferFree {
            device: DeviceId(0),
            buffer: BufferId(99),
            site,
        });
    }
    for (cores, globally_allocated) in [(Some(8), true), (None, false)] {
        kinds.push(EventKind::CbAlloc {
            device: DeviceId(1),
            address: 0x20_c840,
            size: 8192,
            cores,
            globally_allocated,
            site,
        });
    }
    kinds.push(EventKind::CbFreeAll {
        device: DeviceId(1),
    });
    kinds.push(EventKind::OpBegin { name: op });
    kinds.push(EventKind::OpEnd);
    kinds.push(EventKind::Marker { label });
    kinds.push(EventKind::Marker {
        label: StringId::EMPTY,
    });
    kinds
}
