use super::*;
use ttalloc_model::DeviceId;
use ttalloc_trace::{TraceHeader, TraceWriter, WriterOptions};

/// The cycle probe's decoded-block buffer is the one the replay's
/// decoder decodes its first block into (no second one faulted in from
/// scratch), and the replay's buffers go back to the reader after it.
#[test]
fn a_replay_decodes_into_the_buffer_its_probe_gave_back() {
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
    // 150 events: blocks 0 and 1, decoded into one buffer.
    let mut probed = 0;
    let mut probe_buffer = None;
    reader
        .visit_prefix_chunks(150, &mut |c| {
            probed += c.len();
            if let Chunk::Columns { columns, .. } = c {
                probe_buffer = Some(columns.tags.as_ptr());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(probed, 200);
    let mut first_block_buffer = None;
    let mut replayed = 0;
    reader
        .visit_chunks(None, &mut |c| {
            if let Chunk::Columns { columns, .. } = c {
                first_block_buffer.get_or_insert(columns.tags.as_ptr());
            }
            replayed += c.len();
            Ok(())
        })
        .unwrap();
    assert_eq!(replayed, 1000);
    assert_eq!(first_block_buffer, probe_buffer);
    // Back in the pool: one or two buffers (as the threads' timing
    // went), the probe's among them, each holding a block's room.
    let back = [reader.take_columns(), reader.take_columns()];
    assert!(back.iter().any(|b| Some(b.tags.as_ptr()) == probe_buffer));
    assert!(back[0].tags.capacity() >= 100);
}
