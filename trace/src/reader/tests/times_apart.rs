//! Format 2.6: a block's times are a frame of their own, after the
//! block's; a pass that reads no time never reads that frame.

use super::*;
use ttalloc_model::{BufferId, SiteId};

/// 1,000 events in blocks of 100 (allocs, frees, op scopes and device
/// closes, gaps of 1 to 97 ns), as written.
fn mixed_trace(path: &Path) -> Vec<Event> {
    let opts = WriterOptions {
        block_events: 100,
        ..WriterOptions::default()
    };
    let header = TraceHeader::new(vec!["test".into()], String::new());
    let mut w = TraceWriter::create(path, header, opts).unwrap();
    let name = w.interner_mut().intern_string("op");
    let mut events = Vec::new();
    let mut ts = 1_000;
    for i in 0..1000u64 {
        ts += 1 + (i * 37) % 97;
        let device = DeviceId((i % 3) as u32);
        let buffer = BufferId(i / 4);
        let kind = match i % 4 {
            0 => dram_alloc(device, buffer, Some(4096 * i)),
            1 => EventKind::BufferFree {
                device,
                buffer,
                site: SiteId(0),
            },
            2 => EventKind::OpBegin { name },
            _ if i % 100 == 99 => EventKind::DeviceClose { device },
            _ => EventKind::OpEnd,
        };
        let e = Event {
            ts,
            pid: Pid(7),
            kind,
        };
        w.push(&e).unwrap();
        events.push(e);
    }
    w.finish().unwrap();
    events
}

fn without_time(e: &Event) -> Event {
    Event { ts: 0, ..e.clone() }
}

/// The writer puts every block's times in the frame after it, and no time
/// column in the block; decoded with times, every event has its own.
#[test]
fn every_block_has_its_times_in_the_next_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let events = mixed_trace(&path);
    let reader = TraceReader::open(&path).unwrap();
    assert_eq!(reader.header().format_minor, FORMAT_MINOR);
    assert_eq!(reader.blocks().len(), 10);
    assert_eq!(reader.index.times.len(), 10);
    for (block, times) in reader.index.locs.iter().zip(&reader.index.times) {
        assert_eq!(times.offset, block.offset + block.len);
    }
    for i in 0..10 {
        let mut ids = Vec::new();
        reader.bench_raw_columns(i, |id, _| ids.push(id)).unwrap();
        assert!(
            ids.iter().all(|&id| !crate::codec::col::is_time(id)),
            "{ids:?}"
        );
    }
    let read: Vec<Event> = reader.events().collect::<Result<_>>().unwrap();
    assert_eq!(read, events);
}

/// Decoded without times, a block is what it is with them, less the
/// times: every `ts_at` 0, no clock tick.
#[test]
fn an_untimed_decode_is_the_timed_one_without_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    mixed_trace(&path);
    let reader = TraceReader::open(&path).unwrap();
    let (mut timed, mut untimed) = (BlockColumns::default(), BlockColumns::default());
    for i in 0..reader.blocks().len() {
        reader.decode_columns(i, &mut timed).unwrap();
        reader.decode_columns_untimed(i, &mut untimed).unwrap();
        assert_eq!(timed.clock_tick_ns, 1);
        assert_eq!(untimed.clock_tick_ns, 0);
        assert!(untimed.timestamps().next().is_none());
        assert!(timed.timestamps().all(|t| t > 1_000));
        let all = |c: &BlockColumns| {
            let mut v = Vec::new();
            c.for_each_event(|o, e| v.push((o, without_time(&e))));
            v
        };
        assert_eq!(all(&untimed), all(&timed));
        assert_eq!(untimed.pids().count(), 100);
    }
}

/// Overwrites the middle of frame `loc` of the file at `path`.
fn damage(path: &Path, loc: FrameLocRec) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0x55; 8], loc.offset + loc.len / 2)
        .unwrap();
}

/// A damaged times frame is an error of a decode that reads times, naming
/// the block and the frame; a decode that reads none never sees it.
#[test]
fn a_damaged_times_frame_fails_only_decodes_that_read_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    mixed_trace(&path);
    let times = TraceReader::open(&path).unwrap().index.times[4];
    damage(&path, times);
    let reader = TraceReader::open(&path).unwrap();
    let mut c = BlockColumns::default();
    let err = reader.decode_columns(4, &mut c).unwrap_err().to_string();
    let frame = format!("times record (frame at byte {})", times.offset);
    assert!(err.contains("block 4") && err.contains(&frame), "{err}");
    for i in 0..10 {
        reader.decode_columns_untimed(i, &mut c).unwrap();
        reader.decode_columns_non_buffer(i, &mut c).unwrap();
        if i != 4 {
            reader.decode_columns(i, &mut c).unwrap();
        }
    }
}

/// A file cut after a block's frame, before or inside its times, keeps
/// the blocks before it: the readable part ends where that block starts.
#[test]
fn a_block_cut_from_its_times_is_not_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let events = mixed_trace(&path);
    let whole = std::fs::read(&path).unwrap();
    let index = &TraceReader::open(&path).unwrap().index;
    let (block, times) = (index.locs[6], index.times[6]);
    for cut in [
        times.offset,
        times.offset + times.len / 2,
        times.offset + times.len - 1,
    ] {
        let cut_path = dir.path().join("cut.zst");
        std::fs::write(&cut_path, &whole[..cut as usize]).unwrap();
        let reader = TraceReader::open(&cut_path).unwrap();
        assert_eq!(reader.blocks().len(), 6, "cut at {cut}");
        let t = reader.truncation().expect("truncated");
        assert_eq!(t.valid_up_to, block.offset, "cut at {cut}");
        assert_eq!(t.events_recovered, 600);
        let why = format!(
            "the block at byte {} has no times record after it",
            block.offset
        );
        assert!(t.reason.contains(&why), "{}", t.reason);
        let read: Vec<Event> = reader.events().collect::<Result<_>>().unwrap();
        assert_eq!(read, events[..600]);
    }
}

/// A block kept without its times serves a pass that reads none, not one
/// that reads them (that one decodes the block again, times and all).
#[test]
fn a_block_kept_without_times_serves_only_untimed_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    mixed_trace(&path);
    let reader = TraceReader::open(&path).unwrap();
    let kept_untimed = || {
        let mut c = BlockColumns::default();
        reader.decode_columns_untimed(0, &mut c).unwrap();
        assert!(!c.has_times());
        reader.keep_decoded(0, c);
    };
    let mut out = BlockColumns::default();
    kept_untimed();
    reader.decode_columns_or_kept(0, &mut out).unwrap();
    assert!(out.has_times() && out.ts_at(0) > 1_000);
    kept_untimed();
    reader.decode_columns_or_kept_untimed(0, &mut out).unwrap();
    assert!(!out.has_times());
    // Taken: the next decode of block 0 is a decode (with times if asked).
    reader.decode_columns_or_kept(0, &mut out).unwrap();
    assert!(out.has_times());
}
