use super::*;
use ttalloc_model::{DeviceId, Pid};
use ttalloc_trace::{TraceHeader, TraceReader, TraceWriter, WriterOptions};

/// A trace of 1,000 device closes at ts 0, 10, 20, ... in blocks of 100
/// events, written to `path` and opened.
fn device_closes(path: &std::path::Path) -> TraceReader {
    let opts = WriterOptions {
        block_events: 100,
        ..WriterOptions::default()
    };
    let header = TraceHeader::new(vec!["test".into()], String::new());
    let mut w = TraceWriter::create(path, header, opts).unwrap();
    for i in 0..1000u64 {
        w.push(&Event {
            ts: 10 * i,
            pid: Pid(1),
            kind: EventKind::DeviceClose {
                device: DeviceId((i % 3) as u32),
            },
        })
        .unwrap();
    }
    w.finish().unwrap();
    TraceReader::open(path).unwrap()
}

/// The cycle probe's first block, decoded whole, is the replay's first
/// block (not decoded again), and the replay decodes the others into the
/// probe's other buffer (no new one faulted in from scratch); the
/// replay's buffers go back to the reader after it. The probe reads no
/// time, nor does a replay: a pass that reads them decodes block 0 again.
#[test]
fn a_replay_takes_its_first_block_and_its_buffers_from_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let reader = device_closes(&dir.path().join("t.zst"));
    let probe = || {
        // 150 events: blocks 0 and 1.
        let mut probe_buffers = Vec::new();
        reader
            .visit_prefix_non_buffer(150, &mut |c| {
                if let Chunk::Columns { columns, .. } = c {
                    probe_buffers.push(columns.tags.as_ptr());
                }
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(probe_buffers.len(), 2);
        probe_buffers
    };
    // (ordinal, ts) of every event of a pass, and each chunk's buffer.
    let pass = |timed| {
        let (mut buffers, mut replayed) = (Vec::new(), Vec::new());
        let pass = ChunkPass { ahead: true, timed };
        reader
            .visit_chunks_with(pass, None, &mut |c| {
                if let Chunk::Columns { columns, .. } = c {
                    buffers.push(columns.tags.as_ptr());
                }
                c.try_for_each(|ord, item| {
                    if let Item::Event(e) = item {
                        replayed.push((ord, e.ts));
                    }
                    Ok::<(), ()>(())
                })
                .unwrap();
                Ok(())
            })
            .unwrap();
        (buffers, replayed)
    };
    let probe_buffers = probe();
    let (replay_buffers, replayed) = pass(false);
    // Every event, in order, block 0's included; no times.
    assert_eq!(replayed, (0..1000).map(|i| (i, 0)).collect::<Vec<_>>());
    assert_eq!(replay_buffers[0], probe_buffers[0]);
    assert!(replay_buffers.iter().all(|p| probe_buffers.contains(p)));
    // Back in the pool: one or two buffers (as the threads' timing
    // went), each holding a block's room.
    let back = [reader.take_columns(), reader.take_columns()];
    assert!(back
        .iter()
        .any(|b| probe_buffers.contains(&b.tags.as_ptr())));
    assert!(back[0].tags.capacity() >= 100);
    drop(back);

    probe();
    let (_, timed) = pass(true);
    assert_eq!(timed, (0..1000).map(|i| (i, 10 * i)).collect::<Vec<_>>());
}

/// Without decoding ahead, every block is decoded and handed to `pre` and
/// `f` on the calling thread; with it, `pre` runs on the decoding thread.
/// Both see every event, in order.
#[test]
fn chunks_are_decoded_on_the_calling_thread_unless_decoded_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let reader = device_closes(&dir.path().join("t.zst"));
    let here = std::thread::current().id();
    for ahead in [false, true] {
        let mut pre_threads = Vec::new();
        let mut firsts = Vec::new();
        reader
            .visit_chunks_with(
                ChunkPass { ahead, timed: true },
                Some(&mut |c| pre_threads.push((c.first(), std::thread::current().id()))),
                &mut |c| {
                    assert_eq!(std::thread::current().id(), here);
                    firsts.push(c.first());
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(firsts, (0..10).map(|b| 100 * b).collect::<Vec<u64>>());
        let pre_firsts: Vec<u64> = pre_threads.iter().map(|&(f, _)| f).collect();
        assert_eq!(pre_firsts, firsts, "ahead: {ahead}");
        assert!(
            pre_threads.iter().all(|&(_, t)| (t == here) != ahead),
            "ahead: {ahead}"
        );
    }
}

/// A trace file's last chunk is its last block, without its times, and
/// the in-memory source's is its last `CHUNK` events.
#[test]
fn the_last_chunk_is_the_last_block() {
    let dir = tempfile::tempdir().unwrap();
    let reader = device_closes(&dir.path().join("t.zst"));
    let memory = MemoryTrace::new(
        (0..(CHUNK + 10) as u64)
            .map(|i| Event {
                ts: i,
                pid: Pid(1),
                kind: EventKind::DeviceClose {
                    device: DeviceId(0),
                },
            })
            .collect(),
        InternTables::new(),
    );
    // (source, first ordinal of its last chunk, events in it)
    for (src, first, len) in [
        (&reader as &dyn EventSource, 900, 100),
        (&memory, CHUNK as u64, 10),
    ] {
        let mut seen = Vec::new();
        src.visit_last_non_buffer(&mut |c| {
            c.try_for_each_non_buffer_non_op(|ord, _| {
                seen.push(ord);
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!((c.first(), c.len()), (first, len));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (first..first + len as u64).collect::<Vec<_>>());
    }
}
