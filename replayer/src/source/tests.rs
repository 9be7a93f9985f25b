use super::*;
use ttalloc_model::{DeviceId, Pid};
use ttalloc_trace::{TraceHeader, TraceWriter, WriterOptions};

/// The cycle probe's first block, decoded whole, is the replay's first
/// block (not decoded again), and the replay decodes the others into the
/// probe's other buffer (no new one faulted in from scratch); the
/// replay's buffers go back to the reader after it.
#[test]
fn a_replay_takes_its_first_block_and_its_buffers_from_the_probe() {
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
    // 150 events: blocks 0 and 1.
    let mut probe_buffers = Vec::new();
    reader
        .visit_prefix_non_buffer(150, &mut |c| {
            if let Chunk::Columns { columns, .. } = c {
                probe_buffers.push(columns.tags.as_ptr());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(probe_buffers.len(), 2);
    let mut replay_buffers = Vec::new();
    let mut replayed = Vec::new();
    reader
        .visit_chunks(None, &mut |c| {
            if let Chunk::Columns { columns, .. } = c {
                replay_buffers.push(columns.tags.as_ptr());
            }
            let mut ts = Vec::new();
            c.try_for_each(|_, item| {
                if let Item::Event(e) = item {
                    ts.push(e.ts);
                }
                Ok::<(), ()>(())
            })
            .unwrap();
            replayed.extend(ts);
            Ok(())
        })
        .unwrap();
    // Every event, in order, block 0's included.
    assert_eq!(replayed, (0..1000).map(|i| 10 * i).collect::<Vec<_>>());
    assert_eq!(replay_buffers[0], probe_buffers[0]);
    assert!(replay_buffers.iter().all(|p| probe_buffers.contains(p)));
    // Back in the pool: one or two buffers (as the threads' timing
    // went), each holding a block's room.
    let back = [reader.take_columns(), reader.take_columns()];
    assert!(back
        .iter()
        .any(|b| probe_buffers.contains(&b.tags.as_ptr())));
    assert!(back[0].tags.capacity() >= 100);
}
