use super::*;
use crate::{AllocColumns, CbColumns, FreeColumns, TraceHeader, TraceWriter, WriterOptions};
use std::path::Path;
use ttalloc_model::{DeviceId, Event, EventKind, Pid};

#[test]
fn a_trace_that_cannot_be_mapped_is_read_instead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let mut w = TraceWriter::create(
        &path,
        TraceHeader::new(vec!["test".into()], String::new()),
        WriterOptions::default(),
    )
    .unwrap();
    for d in 0..5 {
        w.push(&Event {
            ts: 10 + u64::from(d),
            pid: Pid(1),
            kind: EventKind::DeviceClose {
                device: DeviceId(d),
            },
        })
        .unwrap();
    }
    w.finish().unwrap();
    let mapped = TraceReader::open_with(&path, true).unwrap();
    let read = TraceReader::open_with(&path, false).unwrap();
    assert!(matches!(read.map, Contents::Read(_)));
    let all = |r: &TraceReader| r.events().collect::<Result<Vec<_>>>().unwrap();
    assert_eq!(all(&read).len(), 5);
    assert_eq!(all(&read), all(&mapped));
    assert_eq!(read.file_size(), mapped.file_size());
}

/// The reader keeps the decoded-block buffers given back, up to as many
/// as a replay has in flight, for the next scan to decode into.
#[test]
fn the_columns_pool_keeps_buffers_given_back_up_to_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let header = TraceHeader::new(vec!["test".into()], String::new());
    let mut w = TraceWriter::create(&path, header, WriterOptions::default()).unwrap();
    w.push(&Event {
        ts: 10,
        pid: Pid(1),
        kind: EventKind::DeviceClose {
            device: DeviceId(0),
        },
    })
    .unwrap();
    w.finish().unwrap();
    let reader = TraceReader::open(&path).unwrap();
    let used = || {
        let mut c = BlockColumns::default();
        c.tags.reserve(64);
        c
    };
    for _ in 0..COLUMNS_POOL_MAX + 2 {
        reader.put_columns(used());
    }
    let taken: Vec<_> = (0..COLUMNS_POOL_MAX + 1)
        .map(|_| reader.take_columns().tags.capacity())
        .collect();
    // COLUMNS_POOL_MAX kept (each with its room), the rest freed: the
    // next one is new.
    assert!(taken[..COLUMNS_POOL_MAX].iter().all(|&c| c >= 64));
    assert_eq!(taken[COLUMNS_POOL_MAX], 0);
}

/// A trace cut short by another process after it was opened: reading
/// a block through the map would raise SIGBUS; read from the file, the
/// blocks before the cut decode and the first one past it is an error
/// naming it, its offset and what happened.
#[test]
fn a_trace_cut_after_open_is_an_error_naming_the_block_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let opts = WriterOptions {
        block_events: 100,
        ..WriterOptions::default()
    };
    let header = TraceHeader::new(vec!["test".into()], String::new());
    let mut w = TraceWriter::create(&path, header, opts).unwrap();
    for i in 0..1000u64 {
        let device = DeviceId((i % 3) as u32);
        w.push(&Event {
            ts: 10 * i,
            pid: Pid(1),
            kind: EventKind::DeviceClose { device },
        })
        .unwrap();
    }
    w.finish().unwrap();
    let reader = TraceReader::open(&path).unwrap();
    // 1000 events in blocks of 100.
    assert_eq!(reader.blocks().len(), 10);
    let cut_at = reader.index.locs[6].offset + 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut_at)
        .unwrap();
    let mut cols = BlockColumns::default();
    for i in 0..6 {
        reader.decode_columns(i, &mut cols).unwrap();
        assert_eq!(cols.len(), 100, "block {i}");
    }
    let err = reader.decode_columns(6, &mut cols).unwrap_err();
    let TraceError::Corrupt {
        block,
        offset,
        ref reason,
        ..
    } = err
    else {
        panic!("not a corrupt-block error: {err}");
    };
    assert_eq!((block, offset), (6, cut_at - 1));
    assert!(reason.starts_with("reading its "), "{reason}");
}

/// A trace of two 100-event blocks: 50 alloc/free pairs, then 49 and a
/// half and a device close as block 1's last event.
fn allocs_and_frees_then_a_close(path: &Path) {
    use ttalloc_model::{BufferId, SiteId};
    let opts = WriterOptions {
        block_events: 100,
        ..WriterOptions::default()
    };
    let header = TraceHeader::new(vec!["test".into()], String::new());
    let mut w = TraceWriter::create(path, header, opts).unwrap();
    let device = DeviceId(0);
    for i in 0..199u64 {
        let buffer = BufferId(i / 2);
        let kind = if i % 2 == 0 {
            dram_alloc(device, buffer, None)
        } else {
            EventKind::BufferFree {
                device,
                buffer,
                site: SiteId(0),
            }
        };
        w.push(&Event {
            ts: 10 * i,
            pid: Pid(1),
            kind,
        })
        .unwrap();
    }
    w.push(&Event {
        ts: 2000,
        pid: Pid(1),
        kind: EventKind::DeviceClose { device },
    })
    .unwrap();
    w.finish().unwrap();
}

/// A 4 KiB interleaved DRAM buffer at site 0, at `address` if recorded.
fn dram_alloc(
    device: DeviceId,
    buffer: ttalloc_model::BufferId,
    address: Option<u64>,
) -> EventKind {
    use ttalloc_model::{BufferType, Layout, SiteId, StringId};
    EventKind::BufferAlloc {
        device,
        buffer,
        buffer_type: BufferType::Dram,
        address,
        size: 4096,
        page_size: None,
        layout: Layout::Interleaved,
        num_cores: None,
        per_bank_size: None,
        label: StringId::EMPTY,
        site: SiteId(0),
    }
}

/// What a decoded block holds for its readers (not the decoder's scratch).
#[allow(clippy::type_complexity)]
fn decoded(
    c: &BlockColumns,
) -> (
    u64,
    &[u8],
    Vec<u64>,
    Vec<(Pid, usize)>,
    &AllocColumns,
    &FreeColumns,
    &[ttalloc_model::StringId],
    &[(u32, Event)],
    &CbColumns,
) {
    (
        c.first_event,
        &c.tags,
        c.timestamps().collect(),
        c.pid_runs().collect(),
        &c.allocs,
        &c.frees,
        &c.names,
        &c.others,
        &c.cbs,
    )
}

/// For a pass that skips buffer allocs and frees, a block of nothing else
/// comes back as its kinds alone (its allocs and frees not decoded), and
/// a block holding any other kind comes as `decode_columns_untimed`
/// decodes it (no times: a cycle scan reads none), without its allocs and
/// frees.
#[test]
fn a_block_of_only_allocs_and_frees_is_not_decoded_for_a_non_buffer_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    allocs_and_frees_then_a_close(&path);
    let reader = TraceReader::open(&path).unwrap();
    assert_eq!(reader.blocks().len(), 2);
    let (mut whole, mut light) = (BlockColumns::default(), BlockColumns::default());

    reader.decode_columns(0, &mut whole).unwrap();
    reader.decode_columns_non_buffer(0, &mut light).unwrap();
    assert_eq!(whole.allocs.len(), 50);
    assert_eq!(light.tags, whole.tags);
    assert_eq!(light.first_event, 0);
    assert_eq!((light.allocs.len(), light.frees.len()), (0, 0));
    assert!(light.timestamps().next().is_none() && light.others.is_empty());

    // Decoded into the same buffer, block 1 comes without its allocs and
    // frees, the rest as decoded whole without times.
    reader.decode_columns_untimed(1, &mut whole).unwrap();
    assert!(!reader.decode_columns_non_buffer(1, &mut light).unwrap());
    assert_eq!((whole.allocs.len(), whole.frees.len()), (50, 49));
    assert_eq!((light.allocs.len(), light.frees.len()), (0, 0));
    whole.allocs = AllocColumns::default();
    whole.frees = FreeColumns::default();
    assert_eq!(decoded(&light), decoded(&whole));
    assert_eq!(light.first_event, 100);
    assert_eq!(light.others.len(), 1);
    assert!(light.timestamps().next().is_none());
}

/// The decoder's working arrays stay with the reader, one set per block
/// being decoded at once: a decoded block holds only what its readers read
/// (a replay's two blocks in flight would fault the working arrays in
/// twice), and the blocks decoded are the same whichever buffer the
/// working arrays came from before.
#[test]
fn decoded_blocks_do_not_keep_the_decoders_working_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    allocs_and_frees_then_a_close(&path);
    let reader = TraceReader::open(&path).unwrap();
    let (mut a, mut b) = (BlockColumns::default(), BlockColumns::default());
    reader.decode_columns(0, &mut a).unwrap();
    reader.decode_columns(1, &mut b).unwrap();
    assert_eq!(reader.decode_scratch.lock().unwrap().len(), 1);
    // Block 0: 100 events (kind 1 B, ts gap 4 each; a time key of 8 B
    // per 32 events, 4) of one pid (one run, kept in place: no heap), 50
    // allocs (device 4, buffer 8, flags 1, size 8, address 8, page size
    // 8, cores 4, site 4) and 50 frees (device 4, buffer 8, site 4):
    // 500 + 32 + 2250 + 800 B.
    // The decoder's lists of alloc and free devices alone would add 400 B;
    // a spare slot per array (the decoder's slack slots) stays below 100.
    let columns = 100 * 5 + 4 * 8 + 50 * 45 + 50 * 16;
    assert!(
        (columns..columns + 100).contains(&a.heap_bytes()),
        "block 0 holds {} B, its columns {columns} B",
        a.heap_bytes()
    );
    // Block 0 again into `b` (decoded after block 1 with the same working
    // arrays): the same as into `a`.
    reader.decode_columns(0, &mut b).unwrap();
    assert_eq!(decoded(&b), decoded(&a));
    assert_eq!(a.allocs.len(), 50);
}

/// A block kept decoded is handed out once, to a decode of that block
/// only; every other decode decodes.
#[test]
fn a_kept_block_is_handed_out_once_for_its_own_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    allocs_and_frees_then_a_close(&path);
    let reader = TraceReader::open(&path).unwrap();
    let mut first = BlockColumns::default();
    reader.decode_columns(0, &mut first).unwrap();
    let kept_tags = first.tags.as_ptr();
    let expected = first.clone();
    reader.keep_decoded(0, first);

    let mut out = BlockColumns::default();
    reader.decode_columns_or_kept(1, &mut out).unwrap();
    assert_eq!(out.first_event, 100);
    reader.decode_columns_or_kept(0, &mut out).unwrap();
    assert_eq!(out.tags.as_ptr(), kept_tags, "the kept buffer itself");
    assert_eq!(decoded(&out), decoded(&expected));
    // Taken: block 0 is decoded again into another buffer.
    let mut again = BlockColumns::default();
    reader.decode_columns_or_kept(0, &mut again).unwrap();
    assert_ne!(again.tags.as_ptr(), kept_tags);
    assert_eq!(decoded(&again), decoded(&expected));
}

/// A block decoded for a non-buffer pass leaves its decompressed record
/// for the next decode of that block, which takes it (once) and decodes
/// exactly what a decode from the file does.
#[test]
fn a_non_buffer_decode_leaves_its_record_to_the_next_decode_of_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    allocs_and_frees_then_a_close(&path);
    let reader = TraceReader::open(&path).unwrap();
    let fresh = TraceReader::open(&path).unwrap();
    let mut light = BlockColumns::default();
    for i in 0..2 {
        reader.decode_columns_non_buffer(i, &mut light).unwrap();
    }
    for i in 0..2 {
        let (mut taken, mut decoded_anew) = (BlockColumns::default(), BlockColumns::default());
        reader.decode_columns(i, &mut taken).unwrap();
        fresh.decode_columns(i, &mut decoded_anew).unwrap();
        assert_eq!(decoded(&taken), decoded(&decoded_anew));
        assert_eq!(taken.allocs.len(), 50);
        assert!(reader.kept.take_record(i).is_none(), "block {i}: taken");
    }
    // Kept again by another non-buffer decode, the record is the frame's.
    reader.decode_columns_non_buffer(1, &mut light).unwrap();
    let record = reader.kept.take_record(1).unwrap();
    assert!(open_record(&record).is_ok());
}

mod times_apart;
