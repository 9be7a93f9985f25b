//! The size and flags caches hold one slot per site modulo 4096; the
//! sizes pass reads a slot by the site unmasked when every site of the
//! block is below 4096, masked otherwise. Both decode what was written.

use super::*;

/// Allocs at `sites` in turn, sizes changing so that each site both
/// repeats recent sizes and stores new ones; decoded with `limit` sites.
fn sizes_decode_as_written(sites: &[u32], limit: u32) {
    let mut enc = BlockEncoder::new(crate::codec::ColumnLayout::V23);
    let mut written = Vec::new();
    for i in 0..400u64 {
        let site = sites[i as usize % sites.len()];
        let size = 2048 * (1 + (i * 7 + site as u64) % 6);
        written.push((site, size));
        enc.push(&Event {
            ts: 1_000 + i * 10,
            pid: Pid(1),
            kind: EventKind::BufferAlloc {
                device: DeviceId(0),
                buffer: BufferId(i),
                buffer_type: BufferType::Dram,
                address: None,
                size,
                page_size: Some(2048),
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: StringId::EMPTY,
                site: SiteId(site),
            },
        });
    }
    let rec = BlockRec {
        first_event: 0,
        count: enc.len(),
        first_ts: enc.first_ts(),
        last_ts: 1_000 + 400 * 10,
        live: vec![],
        columns: enc.take_columns(),
    };
    let bytes = rkyv::to_bytes::<BoxedError>(&rec).unwrap();
    let archived = rkyv::access::<crate::records::ArchivedBlockRec, BoxedError>(&bytes).unwrap();
    let limits = RefLimits {
        strings: 50,
        sites: limit,
    };
    let mut out = BlockColumns::default();
    decode_columns(
        archived,
        BlockTimes::InBlock,
        limits,
        &mut DecodeScratch::default(),
        &mut out,
    )
    .unwrap();
    let mut decoded = Vec::new();
    out.for_each_event(|_, e| {
        if let EventKind::BufferAlloc { site, size, .. } = e.kind {
            decoded.push((site.0, size));
        }
    });
    assert_eq!(decoded, written, "sites {sites:?} below {limit}");
}

#[test]
fn sizes_decode_as_written_with_sites_below_and_past_the_slots() {
    // Every site below the slots: read unmasked, the last slot included.
    sizes_decode_as_written(&[0, 3, 4095, 17], 4096);
    // Sites past the slots clash with the ones below: 4099 and 8191 share
    // slots with 3 and 4095, each alloc's size moving the shared sizes.
    sizes_decode_as_written(&[3, 4099, 4095, 8191, 5000], 8192);
}
