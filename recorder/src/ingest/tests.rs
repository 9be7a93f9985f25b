use super::*;
use std::time::Duration;
use ttalloc_model::{BufferType, DeviceId, EventKind, EventTag, Layout, StringId};
use ttalloc_trace::TraceWriter;
use ttalloc_trace::{TraceHeader, TraceReader, WriterOptions};

fn start(
    dir: &std::path::Path,
    window: Duration,
) -> (IngestHandle, std::thread::JoinHandle<WriterOutcome>) {
    let w = TraceWriter::create(
        &dir.join("t.zst"),
        TraceHeader::default(),
        WriterOptions::default(),
    )
    .unwrap();
    let (h, rx, shared) = channel(Box::new(|m: &str| eprintln!("warning: {m}")));
    let t = std::thread::spawn(move || {
        WriterThread::new(
            rx,
            w,
            shared,
            window,
            WriterOptions::default().seal_interval,
        )
        .run()
    });
    (h, t)
}

fn source(h: &IngestHandle, pid: u32, ts: u64) -> Source {
    h.register(SourceInfo {
        pid,
        ts: Some(ts),
        ..Default::default()
    })
    .unwrap()
}

fn marker(src: &mut Source, ts: u64, label: &str) {
    let label = src.intern_string(label);
    src.send(Event {
        ts,
        pid: Pid(0),
        kind: EventKind::Marker { label },
    })
    .unwrap();
}

fn read(dir: &std::path::Path) -> (TraceReader, Vec<Event>) {
    let r = TraceReader::open(&dir.join("t.zst")).unwrap();
    let ev = r.events().collect::<Result<Vec<_>, _>>().unwrap();
    (r, ev)
}

#[test]
fn merges_by_timestamp_and_keeps_each_sources_order() {
    let dir = tempfile::tempdir().unwrap();
    let (h, t) = start(dir.path(), Duration::from_secs(5));
    let mut a = source(&h, 1, 1);
    let mut b = source(&h, 2, 2);
    for ts in [10, 30, 50, 100, 90] {
        marker(&mut a, ts, &format!("a{ts}"));
    }
    a.flush().unwrap();
    for ts in [20, 40, 95] {
        marker(&mut b, ts, &format!("b{ts}"));
    }
    a.end(Some(0));
    b.end(None);
    h.shutdown();
    let out = t.join().unwrap();
    assert!(out.write_error.is_none());
    let (r, ev) = read(dir.path());
    let labels: Vec<&str> = ev
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Marker { label } => Some(r.interner().string(label)),
            _ => None,
        })
        .collect();
    // a's 100 comes before its 90 (its own order), b's 95 is placed by timestamp.
    assert_eq!(
        labels,
        ["a10", "b20", "a30", "b40", "a50", "b95", "a100", "a90"]
    );
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind.tag() == EventTag::ProcessStart)
            .count(),
        2
    );
    let exits: Vec<_> = ev
        .iter()
        .filter(|e| e.kind.tag() == EventTag::ProcessExit)
        .collect();
    assert_eq!(exits.len(), 2);
    assert!(exits
        .iter()
        .any(|e| e.pid == Pid(1) && e.kind == EventKind::ProcessExit { status: Some(0) }));
}

#[test]
fn sources_intern_locally_and_ids_are_unique_in_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (h, t) = start(dir.path(), Duration::from_millis(1));
    let mut srcs: Vec<Source> = (0..2)
        .map(|i| {
            h.register(SourceInfo {
                pid: 10 + i,
                argv: vec!["p".into()],
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    for (i, s) in srcs.iter_mut().enumerate() {
        // Different stacks per source, so local ids collide but mean different things.
        let func = if i == 0 { "alloc_a" } else { "alloc_b" };
        let site = s.intern_stack(&[(func, "x.py", 3), ("<module>", "x.py", 1)]);
        let buffer = s.buffer_id(1);
        s.send(Event {
            ts: 100 + i as u64,
            pid: Pid(0),
            kind: EventKind::BufferAlloc {
                device: DeviceId(0),
                buffer,
                buffer_type: BufferType::Dram,
                address: None,
                size: 2048,
                page_size: Some(2048),
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: StringId::EMPTY,
                site,
            },
        })
        .unwrap();
        // An id never interned by this source is refused.
        let bad = s.send(Event {
            ts: 0,
            pid: Pid(0),
            kind: EventKind::Marker {
                label: StringId(99),
            },
        });
        assert!(matches!(bad, Err(IngestError::Protocol(_))));
    }
    drop(srcs);
    h.shutdown();
    let out = t.join().unwrap();
    assert_eq!(out.snapshot.live_buffers(), 2);
    let (r, ev) = read(dir.path());
    let allocs: Vec<(u32, u64, String)> = ev
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferAlloc { buffer, site, .. } => Some((
                e.pid.0,
                buffer.0,
                r.interner().resolve(site)[0].function.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(allocs.len(), 2);
    assert_eq!((allocs[0].0, allocs[0].2.as_str()), (10, "alloc_a"));
    assert_eq!((allocs[1].0, allocs[1].2.as_str()), (11, "alloc_b"));
    assert_ne!(
        allocs[0].1, allocs[1].1,
        "buffer ids are unique across sources"
    );
}

#[test]
fn long_merges_cross_batches_and_the_release_cap_in_order() {
    // Source a: 10,000 events at odd microseconds, sent in batches of
    // 3,000; source b: 5,000 at even microseconds, in one batch. Released
    // at shutdown, 4,096 at most per turn, batches split mid-way: the trace
    // holds all 15,000, in time order, each at its source's pid.
    let dir = tempfile::tempdir().unwrap();
    let (h, t) = start(dir.path(), Duration::from_secs(5));
    let mut a = source(&h, 1, 0);
    let mut b = source(&h, 2, 0);
    let label = a.intern_string("m");
    for i in 0..10_000u64 {
        a.send(Event {
            ts: 1_000 + i * 2_000,
            pid: Pid(0),
            kind: EventKind::Marker { label },
        })
        .unwrap();
        if i % 3_000 == 2_999 {
            a.flush().unwrap();
        }
    }
    let label = b.intern_string("m");
    for i in 0..5_000u64 {
        b.send(Event {
            ts: 2_000 + i * 2_000,
            pid: Pid(0),
            kind: EventKind::Marker { label },
        })
        .unwrap();
    }
    a.end(Some(0));
    b.end(Some(0));
    h.shutdown();
    assert!(t.join().unwrap().write_error.is_none());
    let (_, ev) = read(dir.path());
    let markers: Vec<(u64, Pid)> = ev
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Marker { .. }))
        .map(|e| (e.ts, e.pid))
        .collect();
    assert_eq!(markers.len(), 15_000);
    assert!(markers.windows(2).all(|w| w[0].0 < w[1].0), "time order");
    for &(ts, pid) in &markers {
        // b's are at even thousands up to 10,000,000 ns; a's at odd ones.
        let want = if (ts / 1_000) % 2 == 0 && ts <= 10_000_000 {
            Pid(2)
        } else {
            Pid(1)
        };
        assert_eq!(pid, want, "the event at {ts} ns");
    }
}
