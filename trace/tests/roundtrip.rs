//! Write -> read round trips, including the proptest over every event kind.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::HashMap;
use ttalloc_model::*;
use ttalloc_trace::{TraceReader, TraceWriter, WriterOptions, FORMAT_MAJOR, FORMAT_MINOR};

/// An independent recomputation of the live-bytes checkpoint.
fn live_after(events: &[Event]) -> Vec<(u32, u8, u64)> {
    let mut bufs: HashMap<(u32, u64), (u8, u64)> = HashMap::new();
    for e in events {
        match e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                size,
                ..
            } => {
                bufs.insert((device.0, buffer.0), (buffer_type as u8, size));
            }
            EventKind::BufferFree { device, buffer, .. } => {
                bufs.remove(&(device.0, buffer.0));
            }
            EventKind::DeviceClose { device } => bufs.retain(|(d, _), _| *d != device.0),
            _ => {}
        }
    }
    let mut sums: HashMap<(u32, u8), u64> = HashMap::new();
    for ((d, _), (bt, size)) in bufs {
        let s = sums.entry((d, bt)).or_default();
        *s = s.wrapping_add(size);
    }
    let mut v: Vec<_> = sums
        .into_iter()
        .filter(|(_, b)| *b > 0)
        .map(|((d, bt), b)| (d, bt, b))
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_events_round_trip(
        events in proptest::collection::vec(event(), 0..300),
        block_events in 1usize..80,
        seal_every in proptest::option::of(1usize..50),
        extra_sites_every in proptest::option::of(1usize..30),
        // Every minor version this build writes: 2.0/2.1 blocks and 2.2's
        // column coding must both read back exactly.
        minor in 0..=FORMAT_MINOR,
        // The clock resolution kept: timestamps read back rounded down to it.
        clock_tick_ns in prop_oneof![Just(1u64), 2u64..5000, Just(1_000_000_000)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zst");
        let opts = WriterOptions { block_events, clock_tick_ns, ..Default::default() };
        let mut w = TraceWriter::create_with_version(&path, header(), opts, FORMAT_MAJOR, minor).unwrap();
        vocabulary(w.interner_mut());
        let mut extra_sites = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(k) = extra_sites_every {
                if i % k == 0 {
                    // New intern entries between blocks: written incrementally.
                    let s = w.interner_mut().intern_stack_str(&[(&format!("f{i}"), "gen.py", i as u32), ("run", "test.py", 5)]);
                    extra_sites.push(s);
                }
            }
            w.push(e).unwrap();
            if let Some(k) = seal_every {
                if i % k == k - 1 {
                    w.seal().unwrap();
                }
            }
        }
        let writer_tables = w.interner().clone();
        prop_assert_eq!(w.events_written(), events.len() as u64);
        w.finish().unwrap();

        let events: Vec<Event> = events
            .iter()
            .map(|e| Event { ts: e.ts - e.ts % clock_tick_ns, ..e.clone() })
            .collect();
        let r = TraceReader::open(&path).unwrap();
        prop_assert!(r.truncation().is_none());
        prop_assert_eq!(r.header().format_major, FORMAT_MAJOR);
        prop_assert_eq!(r.header().format_minor, minor);
        prop_assert_eq!(&r.header().argv, &header().argv);
        prop_assert_eq!(r.num_events(), events.len() as u64);
        let got: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&got, &events);
        for s in extra_sites {
            prop_assert_eq!(r.interner().resolve(s), writer_tables.resolve(s));
        }
        prop_assert_eq!(r.interner().num_strings(), writer_tables.num_strings());
        prop_assert_eq!(r.interner().num_sites(), writer_tables.num_sites());
        // Index: contiguous ordinals, first/last ts, checkpoints.
        let mut next = 0u64;
        for b in r.blocks() {
            prop_assert_eq!(b.first_event, next);
            let blk = &events[b.first_event as usize..(b.first_event + b.count as u64) as usize];
            prop_assert_eq!(b.first_ts, blk[0].ts);
            prop_assert_eq!(b.last_ts, blk[blk.len() - 1].ts);
            let live: Vec<_> = b.live.iter().map(|l| (l.device.0, l.buffer_type as u8, l.bytes)).collect();
            prop_assert_eq!(live, live_after(&events[..(b.first_event + b.count as u64) as usize]));
            next += b.count as u64;
        }
        prop_assert_eq!(next, events.len() as u64);
        prop_assert!(r.warnings().is_empty());
    }
}

#[test]
fn ordinals_and_visitors_agree_with_decode_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let events = sample_events(1000);
    write(&path, &events, 64);
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.blocks().len(), 16);
    let mut seen = Vec::new();
    r.for_each_event(|ord, e| seen.push((ord, e))).unwrap();
    assert_eq!(seen.len(), 1000);
    for (i, (ord, e)) in seen.iter().enumerate() {
        assert_eq!(*ord, i as u64);
        assert_eq!(e, &events[i]);
    }
    // Decoded ahead on 0 to 5 threads, blocks still arrive in order.
    for workers in 0..6 {
        let mut scanned = Vec::new();
        r.scan_columns_on(workers, |i, cols| {
            assert_eq!(cols.first_event, r.blocks()[i].first_event);
            cols.for_each_event(|ord, e| scanned.push((ord, e)));
            Ok(())
        })
        .unwrap();
        assert_eq!(scanned, seen, "{workers} workers");
    }
    let mut v = Vec::new();
    r.decode_block(3, &mut v).unwrap();
    assert_eq!(v, events[192..256]);
    assert_eq!(r.block_of(0), 0);
    assert_eq!(r.block_of(191), 2);
    assert_eq!(r.block_of(192), 3);
    assert_eq!(r.block_of(1000), 16);
    assert!(r.decode_block(16, &mut v).is_err());
}

#[test]
fn push_rejects_ids_that_are_not_interned() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TraceWriter::create(
        &dir.path().join("t.zst"),
        header(),
        WriterOptions::default(),
    )
    .unwrap();
    let e = Event {
        ts: 1,
        pid: Pid(1),
        kind: EventKind::Marker {
            label: StringId(99),
        },
    };
    assert!(w.push(&e).unwrap_err().to_string().contains("not interned"));
    let e = Event {
        ts: 1,
        pid: Pid(1),
        kind: EventKind::BufferFree {
            device: DeviceId(0),
            buffer: BufferId(1),
            site: SiteId(7),
        },
    };
    assert!(w.push(&e).is_err());
    assert_eq!(w.events_written(), 0);
}

#[test]
fn seal_interval_seals_old_blocks_on_tick() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let opts = WriterOptions {
        seal_interval: std::time::Duration::from_millis(20),
        ..Default::default()
    };
    let mut w = TraceWriter::create(&path, header(), opts).unwrap();
    vocabulary(w.interner_mut());
    let events = sample_events(10);
    w.push(&events[0]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(40));
    w.tick().unwrap();
    w.push(&events[1]).unwrap();
    // Not finished: read while the writer is still open, as a crash would leave it.
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.num_events(), 1, "the first block was sealed by tick");
    assert!(r.truncation().is_some());
    std::thread::sleep(std::time::Duration::from_millis(40));
    w.push(&events[2]).unwrap(); // push also checks the age
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.num_events(), 3);
    drop(w); // dropping seals nothing new (the block is empty) and writes no footer
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.num_events(), 3);
    assert!(r.truncation().unwrap().reason.contains("without a footer"));
}

#[test]
fn large_blocks_round_trip_across_decode_chunks() {
    // Blocks far larger than the decoder's internal chunk, with pid runs and
    // every kind crossing chunk boundaries.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let mut events = sample_events(25_000);
    for (i, e) in events.iter_mut().enumerate() {
        e.pid = Pid(1000 + (i / 777) as u32 % 3);
        if i % 5000 == 4999 {
            e.ts -= 10_000_000; // a step back in time
        }
    }
    write(&path, &events, 65536);
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.blocks().len(), 1);
    let got: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, events);
}

#[test]
fn reader_decodes_blocks_from_several_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TraceReader>();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let events = sample_events(4000);
    write(&path, &events, 250);
    let r = TraceReader::open(&path).unwrap();
    let blocks = r.blocks().len();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (r, events) = (&r, &events);
            s.spawn(move || {
                for i in (t..blocks).step_by(4) {
                    r.visit_block(i, |ord, e| assert_eq!(e, events[ord as usize]))
                        .unwrap();
                }
            });
        }
    });
}
