//! Cut and damaged files: never a panic, never a wrong event, every complete
//! block before the damage kept. And `zstd -d` decodes a trace.

mod common;

use common::*;
use ttalloc_model::Event;
use ttalloc_trace::{TraceReader, TraceWriter, WriterOptions};

/// (file end offset after a seal, events written by then)
type SealPoint = (u64, u64);

/// A small trace; returns (bytes, events, header end, seal points).
fn small_trace(dir: &std::path::Path) -> (Vec<u8>, Vec<Event>, u64, Vec<SealPoint>) {
    let path = dir.join("full.zst");
    let events = sample_events(240);
    let mut w = TraceWriter::create(
        &path,
        header(),
        WriterOptions {
            block_events: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let header_end = w.bytes_written();
    vocabulary(w.interner_mut());
    let mut ends = Vec::new();
    for (i, e) in events.iter().enumerate() {
        w.push(e).unwrap();
        if i % 30 == 29 {
            w.seal().unwrap();
            ends.push((w.bytes_written(), i as u64 + 1));
        }
    }
    w.finish().unwrap();
    (std::fs::read(&path).unwrap(), events, header_end, ends)
}

/// Reads everything readable; panics if a returned event differs from the original.
fn read_checked(r: &TraceReader, events: &[Event]) -> (u64, Vec<usize>) {
    let mut good = 0;
    let mut bad_blocks = Vec::new();
    for i in 0..r.blocks().len() {
        let mut n = 0u64;
        let res = r.visit_block(i, |ord, e| {
            assert_eq!(&e, &events[ord as usize], "wrong event {ord} returned");
            n += 1;
        });
        match res {
            Ok(()) => good += n,
            Err(err) => {
                let msg = err.to_string();
                assert!(
                    msg.contains(&format!("corrupt block {i} at byte offset")),
                    "{msg}"
                );
                bad_blocks.push(i);
            }
        }
    }
    (good, bad_blocks)
}

#[test]
fn truncation_at_every_byte_offset_keeps_every_complete_block() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, events, header_end, ends) = small_trace(dir.path());
    let cut_path = dir.path().join("cut.zst");
    let mut last = 0u64;
    for cut in 0..=bytes.len() {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let r = match TraceReader::open(&cut_path) {
            Ok(r) => r,
            Err(e) => {
                assert!(
                    (cut as u64) < header_end,
                    "cut at {cut} after the header must open: {e}"
                );
                continue;
            }
        };
        let (n, bad) = read_checked(&r, &events);
        assert!(bad.is_empty(), "cut at {cut}: blocks {bad:?} failed");
        assert_eq!(n, r.num_events());
        assert!(n >= last, "cut at {cut}: {n} events recovered after {last}");
        last = n;
        let expected = ends
            .iter()
            .filter(|(end, _)| *end <= cut as u64)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        if cut < bytes.len() {
            let t = r.truncation().expect("a cut file is reported as truncated");
            assert_eq!(t.events_recovered, n);
            assert!(t.valid_up_to <= cut as u64);
            assert_eq!(t.file_size, cut as u64);
            assert!(
                n >= expected,
                "cut at {cut}: {n} events, but {expected} were in complete blocks"
            );
        } else {
            assert!(r.truncation().is_none());
        }
    }
    assert_eq!(last, events.len() as u64);
}

#[test]
fn single_byte_corruption_is_an_error_or_a_correct_read() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, events, header_end, ends) = small_trace(dir.path());
    let bad_path = dir.path().join("bad.zst");
    let mut errors = 0;
    for off in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[off] ^= flip;
            std::fs::write(&bad_path, &b).unwrap();
            let r = match TraceReader::open(&bad_path) {
                Ok(r) => r,
                Err(e) => {
                    assert!(
                        (off as u64) < header_end,
                        "damage at {off} after the header must still open: {e}"
                    );
                    errors += 1;
                    continue;
                }
            };
            let (_, bad) = read_checked(&r, &events);
            if !bad.is_empty() || r.num_events() < events.len() as u64 {
                errors += 1;
            }
            // Every block that ended before the damaged byte is still there and readable.
            let before = ends
                .iter()
                .filter(|(end, _)| *end <= off as u64)
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0);
            let readable: u64 = r
                .blocks()
                .iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(_, b)| b.count as u64)
                .sum();
            assert!(
                readable >= before,
                "damage at {off}: only {readable} events readable, {before} were before it"
            );
        }
    }
    assert!(
        errors > bytes.len(),
        "most flips must be detected ({errors})"
    );
}

#[test]
fn corrupt_block_error_names_block_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut bytes, events, _, ends) = small_trace(dir.path());
    // Damage block 3's frame a few bytes past its zstd frame header (a
    // checkpoint frame follows block 3, inside the same seal interval).
    let (start, end) = (ends[2].0, ends[3].0);
    let mid = (start + 24) as usize;
    bytes[mid] ^= 0x55;
    let path = dir.path().join("bad.zst");
    std::fs::write(&path, &bytes).unwrap();
    let r = TraceReader::open(&path).unwrap();
    assert!(r.truncation().is_none(), "the index is intact");
    let (good, bad) = read_checked(&r, &events);
    assert_eq!(bad, [3]);
    assert_eq!(good, events.len() as u64 - 30);
    let mut v = Vec::new();
    let err = r.decode_block(3, &mut v).unwrap_err().to_string();
    assert!(err.contains("corrupt block 3 at byte offset"), "{err}");
    // The offset named is the start of the block's frame, inside [start, end).
    let off: u64 = err
        .split("byte offset ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(off >= start && off < end, "{off} not in {start}..{end}");
    // A scan, on any number of decoding threads, sees blocks 0..3 in order
    // and stops with block 3's error.
    for workers in 0..4 {
        let mut seen = Vec::new();
        let err = r
            .scan_columns_on(workers, |i, cols| {
                seen.push((i, cols.first_event, cols.len()));
                Ok(())
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("corrupt block 3 at byte offset"), "{err}");
        let expected: Vec<_> = r.blocks()[..3]
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.first_event, b.count as usize))
            .collect();
        assert_eq!(seen, expected, "{workers} workers");
    }
    let results: Vec<_> = r.events().collect();
    assert_eq!(
        results.iter().filter(|e| e.is_err()).count(),
        1,
        "the iterator reports it once and goes on"
    );
    assert_eq!(
        results.iter().filter(|e| e.is_ok()).count(),
        events.len() - 30
    );
}

#[test]
fn garbage_and_empty_files_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.zst");
    std::fs::write(&p, b"").unwrap();
    assert!(TraceReader::open(&p)
        .err()
        .unwrap()
        .to_string()
        .contains("empty"));
    std::fs::write(&p, b"hello, this is not a trace").unwrap();
    assert!(TraceReader::open(&p)
        .err()
        .unwrap()
        .to_string()
        .contains("not a ttalloc trace"));
    // A valid zstd file that is not a trace.
    std::fs::write(&p, zstd::encode_all(&b"just text"[..], 3).unwrap()).unwrap();
    assert!(TraceReader::open(&p)
        .err()
        .unwrap()
        .to_string()
        .contains("not a ttalloc trace"));
    assert!(TraceReader::open(&dir.path().join("missing.zst")).is_err());
}

#[test]
fn zstd_cli_decodes_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    write(&path, &sample_events(5000), 512);
    let out = std::process::Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(&path)
        .output()
        .expect("the zstd command-line tool must be installed (apt-get install zstd)");
    assert!(
        out.status.success(),
        "zstd -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The decoded stream is the concatenated records: it starts with the header's envelope.
    assert_eq!(&out.stdout[..4], b"TTAR");
    assert!(out.stdout.len() > 5000);
    let st = std::process::Command::new("zstd")
        .arg("-t")
        .arg("-q")
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success(), "zstd -t failed");
}

#[test]
fn repair_writes_a_sealed_copy_of_a_cut_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, events, _, ends) = small_trace(dir.path());
    let cut = dir.path().join("cut.zst");
    let cut_at = ends[4].0 as usize + 7;
    std::fs::write(&cut, &bytes[..cut_at]).unwrap();
    let out = dir.path().join("fixed.zst");
    let report = ttalloc_trace::repair::repair(&cut, &out, WriterOptions::default()).unwrap();
    assert!(report.input_truncated);
    assert_eq!(report.events_written, 150);
    assert!(report.blocks_skipped.is_empty());
    let r = TraceReader::open(&out).unwrap();
    assert!(r.truncation().is_none());
    let got: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, events[..150]);
    assert!(ttalloc_trace::repair::repair(&out, &out, WriterOptions::default()).is_err());
}

/// Format 2.6: a block whose times record alone is damaged keeps its
/// events in a repair (at the block's first timestamp); the others are
/// copied as they are.
#[test]
fn repair_keeps_the_events_of_a_block_whose_times_are_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut bytes, events, _, _) = small_trace(dir.path());
    let full = dir.path().join("full.zst");
    let reader = TraceReader::open(&full).unwrap();
    let (offset, len) = reader.times_frame(2).expect("a 2.6 trace");
    let block = reader.blocks()[2].clone();
    let middle = (offset + len / 2) as usize;
    bytes[middle..middle + 4].fill(0xAA);
    let damaged = dir.path().join("damaged.zst");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = dir.path().join("fixed.zst");
    let report = ttalloc_trace::repair::repair(&damaged, &out, WriterOptions::default()).unwrap();
    assert_eq!(report.blocks_untimed, vec![2]);
    assert!(report.blocks_skipped.is_empty());
    assert_eq!(report.events_written, 240);
    let got: Vec<Event> = TraceReader::open(&out)
        .unwrap()
        .events()
        .collect::<Result<_, _>>()
        .unwrap();
    let first = block.first_event as usize;
    let end = first + block.count as usize;
    let expected: Vec<Event> = (events.iter().enumerate())
        .map(|(i, e)| match i {
            i if (first..end).contains(&i) => Event {
                ts: block.first_ts,
                ..e.clone()
            },
            _ => e.clone(),
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn an_altered_seek_table_decompressed_size_is_not_integrity_ok() {
    // Seek table layout (zstd seekable format): entries of compressed size,
    // decompressed size (u32 LE each) and, with descriptor bit 7, a checksum;
    // then num_frames (u32), descriptor (u8) and the magic (u32).
    let dir = tempfile::tempdir().unwrap();
    let (mut bytes, events, _, _) = small_trace(dir.path());
    let len = bytes.len();
    let n = u32::from_le_bytes(bytes[len - 9..len - 5].try_into().unwrap()) as usize;
    let entry = if bytes[len - 5] & 0x80 != 0 { 12 } else { 8 };
    let entries = len - 9 - n * entry;
    let d_size = entries + 2 * entry + 4; // entry 2's decompressed size
    let old = u32::from_le_bytes(bytes[d_size..d_size + 4].try_into().unwrap());
    bytes[d_size..d_size + 4].copy_from_slice(&(old + 1).to_le_bytes());
    let path = dir.path().join("altered.zst");
    std::fs::write(&path, &bytes).unwrap();
    let r = TraceReader::open(&path).unwrap();
    let t = r.truncation().expect("the damage is reported");
    assert!(t.reason.contains("seek table entry 2"), "{}", t.reason);
    // Every event still reads, through the frame scan.
    let (good, bad) = read_checked(&r, &events);
    assert_eq!((good, bad.len()), (events.len() as u64, 0));
}
