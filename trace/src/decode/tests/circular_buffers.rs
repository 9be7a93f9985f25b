//! Circular buffers: their own decoded columns (`BlockColumns::cbs`),
//! from both codings, and out-of-range values named.

use super::*;

/// A block of `kinds`, one event each (ts 10, 11, ..., pid 5), in `layout`.
pub(super) fn block_of(layout: crate::codec::ColumnLayout, kinds: &[EventKind]) -> BlockRec {
    let mut enc = BlockEncoder::new(layout);
    for (i, kind) in kinds.iter().enumerate() {
        enc.push(&Event {
            ts: 10 + i as u64,
            pid: Pid(5),
            kind: kind.clone(),
        });
    }
    BlockRec {
        first_event: 0,
        count: enc.len(),
        first_ts: 0,
        last_ts: 0,
        live: vec![],
        columns: enc.take_columns(),
    }
}

#[test]
fn circular_buffers_decode_into_their_own_columns_in_both_codings() {
    use crate::codec::ColumnLayout::{V23, V24};
    let cb_alloc = |address, cores, globally_allocated| EventKind::CbAlloc {
        device: DeviceId(1),
        address,
        size: 4096,
        cores,
        globally_allocated,
        site: SiteId(2),
    };
    let kinds = [
        cb_alloc(0x8000, Some(3), false),
        EventKind::DeviceClose {
            device: DeviceId(0),
        },
        EventKind::CbFreeAll {
            device: DeviceId(1),
        },
        cb_alloc(0x9000, None, true),
    ];
    for layout in [V23, V24] {
        let cols = decode(&block_of(layout, &kinds)).unwrap();
        // Events 0, 2 and 3 are circular buffers; only the close (1) is in `others`.
        let cbs: Vec<_> = cols.cbs.iter().collect();
        assert_eq!(cbs.iter().map(|c| c.pos).collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(cbs[0].kind(), kinds[0]);
        assert!(cbs[1].free_all && cbs[1].device == DeviceId(1));
        assert_eq!(cbs[1].kind(), kinds[2]);
        assert_eq!(cbs[2].kind(), kinds[3]);
        assert_eq!(cols.others.len(), 1);
        assert_eq!(cols.others[0].0, 1);
        // Rebuilt whole, in trace order, with their ts and pid.
        let mut back = Vec::new();
        cols.for_each_event(|_, e| back.push(e));
        assert_eq!(
            back.iter().map(|e| &e.kind).collect::<Vec<_>>(),
            kinds.iter().collect::<Vec<_>>()
        );
        // Event 1 of the columns is event 2 of the block, ts and pid included.
        let (pos, free_all) = cols.cb_event(1).unwrap();
        assert_eq!((pos, &free_all), (2, &back[2]));
    }
}

#[test]
fn a_circular_buffer_value_out_of_range_is_named() {
    // One CbAlloc between two rare kinds, in 2.4's CB_ columns.
    let kinds = [
        EventKind::DeviceClose {
            device: DeviceId(0),
        },
        EventKind::CbAlloc {
            device: DeviceId(1),
            address: 0x8000,
            size: 4096,
            cores: Some(3),
            globally_allocated: false,
            site: SiteId(2),
        },
        EventKind::DeviceClose {
            device: DeviceId(1),
        },
    ];
    let rec = block_of(crate::codec::ColumnLayout::V24, &kinds);
    assert!(decode(&rec).is_ok());
    let with = |id: u16, bytes: Vec<u8>| {
        let mut r = rec.clone();
        r.columns.iter_mut().find(|c| c.id == id).unwrap().bytes = bytes;
        decode(&r).unwrap_err()
    };
    // CB_SITE 60 is site 59; LIMITS knows 50 sites.
    let e = with(col::CB_SITE, vec![1, 60]);
    assert!(e.contains("site id 59 is not defined"), "{e}");
    // CB_FLAGS (2^32 + 1) << 1: cores + 1 = 2^32 + 1, so cores = 2^32.
    let e = with(col::CB_FLAGS, vec![5, 2, 0, 0, 0, 2]);
    assert!(
        e.contains("circular buffer cores 4294967296 out of range"),
        "{e}"
    );
}

/// Values as `w` byte planes (a width the writer would not pick: one
/// more plane, or planes for a column of zeros).
fn planes(vals: &[u64], w: u8) -> Vec<u8> {
    let mut b = vec![w];
    for j in 0..w {
        b.extend(vals.iter().map(|&v| (v >> (8 * j)) as u8));
    }
    b
}

proptest! {
    /// CbAlloc site codes of one byte plane and flags of one value are
    /// read in place: the same columns as when the block stores them so
    /// that they are unpacked into `u64`s (site codes in two planes, flags
    /// in planes), with and without flags that vary.
    #[test]
    fn cb_sites_and_flags_read_in_place_decode_as_unpacked(
        events in proptest::collection::vec(
            // Devices from 1024 on share device 0's predictor slot.
            (0u8..8, prop_oneof![6 => 0u32..3, 1 => Just(1024u32), 1 => Just(u32::MAX)], 0u64..1 << 20, 1u64..1 << 17, 0u32..50),
            1..700,
        ),
        flags in prop_oneof![Just(None), Just(Some((Some(3), false))), Just(Some((None, false))), Just(Some((Some(0), true)))],
    ) {
        let kinds: Vec<EventKind> = events
            .iter()
            .enumerate()
            .map(|(i, &(k, device, address, size, site))| {
                let device = DeviceId(device);
                match k {
                    0 => EventKind::CbFreeAll { device },
                    1 => EventKind::DeviceClose { device },
                    _ => {
                        // One (cores, global) for all, or varying ones.
                        let (cores, globally_allocated) =
                            flags.unwrap_or(((i % 3 > 0).then_some(i as u32 % 5), i % 2 == 0));
                        EventKind::CbAlloc {
                            device,
                            address,
                            size,
                            cores,
                            globally_allocated,
                            site: SiteId(site),
                        }
                    }
                }
            })
            .collect();
        let rec = block_of(crate::codec::ColumnLayout::V25, &kinds);
        let n = kinds.iter().filter(|k| matches!(k, EventKind::CbAlloc { .. })).count();
        let mut unpacked = rec.clone();
        for c in unpacked.columns.iter_mut() {
            if n > 0 && (c.id == col::CB_SITE || c.id == col::CB_FLAGS) {
                let mut vals = Vec::new();
                column_values(&c.bytes, n, "x", &mut vals).unwrap();
                // Site codes (below 51) in two planes; flags in one more
                // plane than they need.
                let w = if c.id == col::CB_SITE { 2 } else { crate::codec::packed_width(vals.iter().copied().max().unwrap_or(0)) as u8 + 1 };
                c.bytes = planes(&vals, w);
            }
        }
        let (a, b) = (decode(&rec).unwrap(), decode(&unpacked).unwrap());
        prop_assert_eq!(&a, &b);
        let mut back = Vec::new();
        a.for_each_event(|_, e| back.push(e.kind));
        prop_assert_eq!(back, kinds);
    }
}
