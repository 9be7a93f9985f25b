//! The decoder must survive blocks whose checksums are right but whose
//! contents are not (a writer bug, a checksum collision): errors, never
//! panics. These tests bypass the checksums and feed it garbage.
use super::packed::column_values;
use super::*;
use crate::codec::col;
use crate::codec::BlockEncoder;
use crate::records::{BlockRec, ColumnRec};
use proptest::prelude::*;
use rancor::BoxedError;
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, Layout, Pid, SiteId,
};

const LIMITS: RefLimits = RefLimits {
    strings: 50,
    sites: 50,
};

fn decode(rec: &BlockRec) -> Result<BlockColumns, DecodeError> {
    let bytes = rkyv::to_bytes::<BoxedError>(rec).unwrap();
    let archived = rkyv::access::<crate::records::ArchivedBlockRec, BoxedError>(&bytes).unwrap();
    let mut out = BlockColumns::default();
    decode_columns(
        archived,
        BlockTimes::InBlock,
        LIMITS,
        &mut DecodeScratch::default(),
        &mut out,
    )
    .map(|_| out)
}

fn valid_block() -> BlockRec {
    // A 2.3 block (2.4's codings are checked against it below).
    let mut enc = BlockEncoder::new(crate::codec::ColumnLayout::V23);
    let mut ts = 1_000_000u64;
    for i in 0..200u64 {
        ts += 777 * (i % 5);
        let kind = match i % 7 {
            0 => EventKind::OpBegin { name: StringId(3) },
            1 | 2 => EventKind::BufferAlloc {
                device: DeviceId((i % 3) as u32),
                buffer: BufferId(i),
                buffer_type: BufferType::L1,
                address: Some(0x1000 + i * 64),
                size: 4096 * (i % 9 + 1),
                page_size: Some(2048),
                layout: Layout::HeightSharded,
                num_cores: Some(8),
                per_bank_size: None,
                label: StringId::EMPTY,
                site: SiteId(7),
            },
            3 => EventKind::BufferFree {
                device: DeviceId(((i - 2) % 3) as u32),
                buffer: BufferId(i - 2),
                site: SiteId(1),
            },
            4 => EventKind::CbAlloc {
                device: DeviceId(1),
                address: 0x4000,
                size: 2048,
                cores: None,
                globally_allocated: true,
                site: SiteId(2),
            },
            5 => EventKind::DeviceOpen {
                device: DeviceId(2),
                arch: Arch::Blackhole,
                config: Box::new(DeviceConfig {
                    dram_banks: Some(8),
                    ..Default::default()
                }),
            },
            _ => EventKind::OpEnd,
        };
        enc.push(&Event {
            ts,
            pid: Pid(5 + (i / 50) as u32),
            kind,
        });
    }
    let count = enc.len();
    BlockRec {
        first_event: 0,
        count,
        first_ts: 0,
        last_ts: 0,
        live: vec![],
        columns: enc.take_columns(),
    }
}

#[test]
fn packed_columns_round_trip_at_every_width_and_reject_bad_lengths() {
    let mut out = Vec::new();
    for w in 0..=8usize {
        for n in [1usize, 2, 7, 33] {
            let vals: Vec<u64> = (0..n as u64)
                .map(|i| match w {
                    0 => 0,
                    8 => u64::MAX - i,
                    _ => (1u64 << (8 * w - 1)) | ((i * 0x0101_0101_0101) & ((1 << (8 * w)) - 1)),
                })
                .collect();
            let mut bytes = Vec::new();
            crate::codec::pack(&vals, &mut bytes);
            assert_eq!(bytes[0] as usize, w);
            assert_eq!(bytes.len(), 1 + w * n);
            column_values(&bytes, n, "t", &mut out).unwrap();
            assert_eq!(out, vals, "width {w}, {n} values");
            // One value more or fewer than the block says, or cut short.
            assert!(column_values(&bytes, n + 1, "t", &mut out).is_err() || w == 0);
            assert!(column_values(&bytes, n - 1, "t", &mut out).is_err() || (w == 0 && n > 1));
            assert!(column_values(&bytes[..bytes.len() - 1], n, "t", &mut out).is_err());
        }
    }
    assert!(column_values(&[9, 0, 0], 0, "t", &mut out).is_err());
    assert!(column_values(&[], 1, "t", &mut out).is_err());
    assert!(
        column_values(&[9; 10], 1, "t", &mut out).is_err(),
        "width above 8"
    );
    column_values(&[], 0, "t", &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn a_valid_block_decodes() {
    let cols = decode(&valid_block()).unwrap();
    assert_eq!(cols.len(), 200);
    let mut n = 0;
    cols.for_each_event(|_, _| n += 1);
    assert_eq!(n, 200);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn damaged_columns_never_panic(
        col in 0usize..col::COUNT,
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
        count_delta in -2i64..3,
    ) {
        let mut rec = valid_block();
        let n = rec.columns.len();
        let c = &mut rec.columns[col % n].bytes;
        if !c.is_empty() {
            let i = pos.index(c.len());
            if cut { c.truncate(i) } else { c[i] = byte }
        }
        rec.count = (rec.count as i64 + count_delta).max(0) as u32;
        let _ = decode(&rec);
    }

    #[test]
    fn random_columns_never_panic(
        count in 0u32..64,
        cols in proptest::collection::vec((0u16..col::COUNT as u16 + 1, proptest::collection::vec(any::<u8>(), 0..80)), 0..20),
    ) {
        let rec = BlockRec {
            first_event: 0,
            count,
            first_ts: 0,
            last_ts: 0,
            live: vec![],
            columns: cols.into_iter().map(|(id, bytes)| ColumnRec { id, bytes }).collect(),
        };
        if let Ok(c) = decode(&rec) {
            c.for_each_event(|_, _| {});
        }
    }

    #[test]
    fn random_tags_with_plausible_columns_never_panic(
        tags in proptest::collection::vec(0u8..20, 1..64),
        fill in any::<u8>(),
        by_kind in any::<bool>(),
    ) {
        let n = tags.len();
        let mk = |id: u16, len: usize, b: u8| ColumnRec { id, bytes: vec![b & 0x7f; len] };
        let mut rec = BlockRec {
            first_event: 0,
            count: n as u32,
            first_ts: 0,
            last_ts: 0,
            live: vec![],
            columns: vec![
                ColumnRec { id: col::TAG, bytes: tags.clone() },
                mk(col::TS, n + 1, 1),
                ColumnRec { id: col::PID, bytes: vec![0, n as u8] },
                mk(col::DEVICE, n, 0),
                mk(col::ALLOC_FLAGS, tags.iter().filter(|&&t| t == 4).count(), fill & 0x1f),
                mk(col::ALLOC_BUF, n, 2),
                mk(col::SIZE, n, fill),
                mk(col::ALLOC_SITE, n, 1),
                mk(col::FREE_BUF, n, 1),
                mk(col::FREE_SITE, n, 1),
                mk(col::NAME, n, 1),
                mk(col::MISC, 4 * n, fill),
                mk(col::EXT, 2 * n, 0),
            ],
        };
        if by_kind {
            // The 2.3 coding of devices and freed buffers.
            rec.columns.retain(|c| c.id != col::DEVICE && c.id != col::FREE_BUF);
            for id in [col::ALLOC_DEV, col::FREE_DEV, col::OTHER_DEV, col::FREE_CHAIN] {
                rec.columns.push(mk(id, n, 1));
            }
        }
        if let Ok(c) = decode(&rec) {
            c.for_each_event(|_, _| {});
        }
    }
}

#[test]
fn a_block_with_both_codings_of_a_field_is_corrupt() {
    // A 2.3 block holds TS_KIND and SIZE_RECENT; adding the 2.0 or 2.2
    // column of the same field makes the block ambiguous, hence corrupt.
    for (new, old, what) in [
        (col::TS_KIND, col::TS, "ts"),
        (col::TS_KIND, col::TS_REL, "ts"),
        (col::SIZE_RECENT, col::SIZE, "size"),
        (col::SIZE_RECENT, col::SIZE_BY_SITE, "size"),
        (col::FLAGS_NEW, col::ALLOC_FLAGS, "flags"),
    ] {
        let mut rec = valid_block();
        let bytes = rec
            .columns
            .iter()
            .find(|c| c.id == new)
            .unwrap()
            .bytes
            .clone();
        rec.columns.push(ColumnRec { id: old, bytes });
        let err = decode(&rec).unwrap_err();
        assert_eq!(err, format!("block holds {what} in more than one coding"));
    }
}

#[test]
fn a_block_with_devices_or_frees_in_both_2_2_and_2_3_columns_is_corrupt() {
    // valid_block is a 2.3 block; a DEVICE or FREE_BUF column (2.2's
    // coding of the same fields) next to its per-kind ones is ambiguous.
    for (new, old) in [
        (col::ALLOC_DEV, col::DEVICE),
        (col::FREE_CHAIN, col::FREE_BUF),
    ] {
        let mut rec = valid_block();
        let bytes = rec
            .columns
            .iter()
            .find(|c| c.id == new)
            .unwrap()
            .bytes
            .clone();
        rec.columns.push(ColumnRec { id: old, bytes });
        let err = decode(&rec).unwrap_err();
        assert_eq!(
            err,
            "block holds devices or freed buffers in both its 2.2 and its 2.3 columns"
        );
    }
}

/// `valid_block`'s events written again in `layout`.
fn recoded(layout: crate::codec::ColumnLayout) -> BlockRec {
    let rec = valid_block();
    let cols = decode(&rec).unwrap();
    let mut enc = BlockEncoder::new(layout);
    cols.for_each_event(|_, e| enc.push(&e));
    BlockRec {
        count: enc.len(),
        columns: enc.take_columns(),
        ..rec
    }
}

#[test]
fn a_2_4_block_decodes_to_the_events_of_its_2_3_coding() {
    use crate::codec::ColumnLayout::{V23, V24};
    let (old, new) = (recoded(V23), recoded(V24));
    let has = |r: &BlockRec, id| r.columns.iter().any(|c| c.id == id);
    for id in [
        col::TS_KIND,
        col::ALLOC_SITE,
        col::FREE_CHAIN,
        col::FREE_DEV,
    ] {
        assert!(has(&old, id) && !has(&new, id), "column {id}");
    }
    for id in [
        col::TS_TICKS,
        col::SITE_BY_NAME,
        col::FREE_BY_DEV,
        col::FREE_DEV_NEAR,
        col::CB_ADDR,
        col::CB_SIZE,
        col::CB_FLAGS,
        col::CB_SITE,
    ] {
        assert!(has(&new, id) && !has(&old, id), "column {id}");
    }
    let events = |r: &BlockRec| {
        let mut v = Vec::new();
        decode(r).unwrap().for_each_event(|_, e| v.push(e));
        v
    };
    let (old, new) = (events(&old), events(&new));
    assert_eq!(old.len(), 200);
    assert_eq!(old, new);
}

#[test]
fn a_2_4_block_with_a_field_in_its_2_3_column_too_is_corrupt() {
    for (new, old, err) in [
        (
            col::TS_TICKS,
            col::TS_KIND,
            "block holds ts in more than one coding",
        ),
        (
            col::FREE_BY_DEV,
            col::FREE_CHAIN,
            "block holds freed buffers in more than one coding",
        ),
        (
            col::FREE_DEV_NEAR,
            col::FREE_DEV,
            "block holds free devices in more than one coding",
        ),
        (
            col::SITE_BY_NAME,
            col::ALLOC_SITE,
            "block holds alloc sites in more than one coding",
        ),
    ] {
        let mut rec = recoded(crate::codec::ColumnLayout::V24);
        let bytes = rec
            .columns
            .iter()
            .find(|c| c.id == new)
            .unwrap()
            .bytes
            .clone();
        rec.columns.push(ColumnRec { id: old, bytes });
        assert_eq!(decode(&rec).unwrap_err(), err);
    }
}

#[test]
fn a_2_3_block_decodes_to_the_events_of_its_2_2_coding() {
    // valid_block's events (allocs on devices 0-2 interleaved with frees
    // of earlier buffers on other devices, CB allocs and device opens)
    // through the 2.2 and the 2.3 coding.
    let encode = |layout| {
        let rec = valid_block();
        let cols = decode(&rec).unwrap();
        let mut enc = BlockEncoder::new(layout);
        cols.for_each_event(|_, e| enc.push(&e));
        BlockRec {
            count: enc.len(),
            columns: enc.take_columns(),
            ..rec
        }
    };
    let old = encode(crate::codec::ColumnLayout::V22);
    let new = encode(crate::codec::ColumnLayout::V23);
    let has = |r: &BlockRec, id| r.columns.iter().any(|c| c.id == id);
    for id in [col::DEVICE, col::FREE_BUF] {
        assert!(has(&old, id) && !has(&new, id), "column {id}");
    }
    for id in [
        col::ALLOC_DEV,
        col::FREE_DEV,
        col::OTHER_DEV,
        col::FREE_CHAIN,
    ] {
        assert!(has(&new, id) && !has(&old, id), "column {id}");
    }
    let events = |r: &BlockRec| {
        let mut v = Vec::new();
        decode(r).unwrap().for_each_event(|_, e| v.push(e));
        v
    };
    let (old, new) = (events(&old), events(&new));
    assert_eq!(old.len(), 200);
    assert_eq!(old, new);
    // Spot checks against valid_block's recipe: event 10 (10 % 7 = 3) frees
    // buffer 8 on device (10 - 2) % 3 = 2; event 11 (4) is a CB alloc on
    // device 1; event 12 (5) opens device 2.
    assert!(matches!(
        new[10].kind,
        EventKind::BufferFree {
            device: DeviceId(2),
            buffer: BufferId(8),
            ..
        }
    ));
    assert_eq!(new[11].kind.device(), Some(DeviceId(1)));
    assert!(matches!(
        new[12].kind,
        EventKind::DeviceOpen {
            device: DeviceId(2),
            ..
        }
    ));
}

#[test]
fn both_layouts_decode_to_the_same_events() {
    // The same events through the 2.0, 2.2 and 2.3 column codings: allocs
    // of changing sizes at five sites, each followed (every third) by a free
    // after a shorter gap, so 2.3 has two kinds with their own median gaps.
    let encode = |layout| {
        let mut enc = BlockEncoder::new(layout);
        let mut ts = 1_700_000_000_000_000_000u64;
        for i in 0..300u64 {
            ts += 100 + 37 * (i % 11);
            if i % 3 == 2 {
                ts += 40 + i % 7;
                enc.push(&Event {
                    ts,
                    pid: Pid(9),
                    kind: EventKind::BufferFree {
                        device: DeviceId(0),
                        buffer: BufferId(i - 1),
                        site: SiteId(1),
                    },
                });
            }
            enc.push(&Event {
                ts,
                pid: Pid(9),
                kind: EventKind::BufferAlloc {
                    device: DeviceId(0),
                    buffer: BufferId(i),
                    buffer_type: BufferType::Dram,
                    address: None,
                    size: 2048 * (1 + (i % 3) * (i % 5)),
                    page_size: Some(2048),
                    layout: Layout::Interleaved,
                    num_cores: None,
                    per_bank_size: None,
                    label: StringId::EMPTY,
                    site: SiteId((i % 5) as u32),
                },
            });
        }
        let first_ts = enc.first_ts();
        let count = enc.len();
        BlockRec {
            first_event: 0,
            count,
            first_ts,
            last_ts: ts,
            live: vec![],
            columns: enc.take_columns(),
        }
    };
    let old = encode(crate::codec::ColumnLayout::V20);
    let v22 = encode(crate::codec::ColumnLayout::V22);
    let v23 = encode(crate::codec::ColumnLayout::V23);
    let has = |r: &BlockRec, id| r.columns.iter().any(|c| c.id == id);
    assert!(has(&old, col::TS) && has(&old, col::SIZE) && !has(&old, col::TS_REL));
    assert!(has(&v22, col::TS_REL) && has(&v22, col::SIZE_BY_SITE) && !has(&v22, col::TS));
    assert!(has(&v23, col::TS_KIND) && has(&v23, col::TS_BASE) && has(&v23, col::SIZE_RECENT));
    assert!(!has(&v23, col::TS_REL) && !has(&v23, col::SIZE_BY_SITE));
    let events = |r: &BlockRec| {
        let mut v = Vec::new();
        decode(r).unwrap().for_each_event(|_, e| v.push(e));
        v
    };
    // 300 allocs and 100 frees.
    assert_eq!(events(&old).len(), 400);
    assert_eq!(events(&old), events(&v22));
    assert_eq!(events(&old), events(&v23));
}

#[test]
fn a_remainder_as_large_as_the_page_is_named() {
    // valid_block's allocs all have 2048-byte pages and whole-page sizes
    // (remainder column of width 0); give every alloc a remainder of 4096.
    let mut rec = valid_block();
    let n = rec
        .columns
        .iter()
        .find(|c| c.id == col::SIZE_RECENT)
        .unwrap()
        .bytes
        .len();
    let rem = rec
        .columns
        .iter_mut()
        .find(|c| c.id == col::SIZE_REM)
        .unwrap();
    rem.bytes.clear();
    crate::codec::pack(&vec![4096; n], &mut rem.bytes);
    let err = decode(&rec).unwrap_err();
    // The first alloc (event 1) is 4096 * (1 % 9 + 1) = 8192 B: 4 pages.
    assert_eq!(err, "size of 4 pages of 2048 + 4096 is not a valid size");
}

/// valid_block's remainder column (width 0: every size is whole pages) is
/// not unpacked for the paged loop; the same zeros stored one byte wide
/// are, and decode the same.
#[test]
fn remainders_of_width_0_decode_as_stored_zeros() {
    let rec = valid_block();
    let n = column(&rec, col::SIZE_RECENT).len();
    assert_eq!(column(&rec, col::SIZE_REM), [0u8]);
    let mut wide = valid_block();
    let rem = wide
        .columns
        .iter_mut()
        .find(|c| c.id == col::SIZE_REM)
        .unwrap();
    rem.bytes = std::iter::once(1u8).chain(vec![0; n]).collect();
    let (a, b) = (decode(&rec).unwrap(), decode(&wide).unwrap());
    assert!(a.allocs.len() > 50);
    assert_eq!(a, b);
}

/// A size that overflows is named the same whether the remainders were
/// unpacked or not (width 0).
#[test]
fn an_overflowing_size_is_named_with_remainders_of_width_0() {
    let mut rec = valid_block();
    let n = column(&rec, col::SIZE_RECENT).len();
    let page = rec.columns.iter_mut().find(|c| c.id == col::PAGE).unwrap();
    page.bytes.clear();
    crate::codec::pack(&vec![1 << 62; n], &mut page.bytes);
    assert_eq!(column(&rec, col::SIZE_REM), [0u8]);
    let err = decode(&rec).unwrap_err();
    // The first alloc (event 1) is 8192 B of 2048-byte pages: 4 units.
    assert_eq!(
        err,
        "size of 4 pages of 4611686018427387904 + 0 is not a valid size"
    );
}

fn column(rec: &BlockRec, id: u16) -> &[u8] {
    &rec.columns.iter().find(|c| c.id == id).unwrap().bytes
}

/// Without its allocs and frees, a block decodes to the rest of what it
/// decodes to whole: kinds, times, pids, names, circular buffers and the
/// other kinds; blocks before 2.3 come whole.
#[test]
fn a_block_decoded_without_buffers_holds_the_rest_of_it() {
    use crate::codec::ColumnLayout;
    let decode_non_buffer = |rec: &BlockRec| {
        let bytes = rkyv::to_bytes::<BoxedError>(rec).unwrap();
        let archived =
            rkyv::access::<crate::records::ArchivedBlockRec, BoxedError>(&bytes).unwrap();
        let mut out = BlockColumns::default();
        decode_columns_non_buffer(
            archived,
            BlockTimes::InBlock,
            LIMITS,
            &mut DecodeScratch::default(),
            &mut out,
        )
        .map(|whole| (whole, out))
    };
    let rest = |c: &BlockColumns| {
        (
            c.tags.clone(),
            c.timestamps().collect::<Vec<_>>(),
            c.pid_runs().collect::<Vec<_>>(),
            c.names.clone(),
            c.cbs.clone(),
            c.others.clone(),
        )
    };
    for layout in [ColumnLayout::V23, ColumnLayout::V24, ColumnLayout::V25] {
        let rec = recoded(layout);
        let whole = decode(&rec).unwrap();
        let (is_whole, light) = decode_non_buffer(&rec).unwrap();
        assert!(!is_whole, "{layout:?}");
        assert!(whole.allocs.len() > 50 && whole.frees.len() > 20);
        assert!(whole.cbs.len() > 20 && !whole.others.is_empty());
        assert_eq!((light.allocs.len(), light.frees.len()), (0, 0));
        assert_eq!(rest(&light), rest(&whole), "{layout:?}");
    }
    let old = recoded(ColumnLayout::V22);
    let (is_whole, light) = decode_non_buffer(&old).unwrap();
    assert!(is_whole);
    assert_eq!(light, decode(&old).unwrap());
}

mod circular_buffers;
mod other_devices;
mod reused_output;
mod sites_past_the_slots;
mod times_record;
mod wide_ids;
mod wide_times;
