//! Memory over time (`TimelineRecorder`) on hand-built streams, with
//! buckets of a few events: which points each series gets, and when.
//! Circular buffers change no device's resident bytes, but the first event
//! of a bucket that is not a buffer alloc or free visits every device's
//! series and opens their new bucket at its time; the recorder skips the
//! later circular buffers of a bucket, which must change nothing. The
//! expected points are worked out event by event below.

mod common;

use common::Stream;
use ttalloc_model::*;
use ttalloc_replayer::engine::CycleInput;
use ttalloc_replayer::observe::replay_observed;
use ttalloc_replayer::timeline::{Point, Timeline, TimelineOptions, TimelineRecorder};
use ttalloc_replayer::{MemoryTrace, ReplayOptions};

/// Memory over time of `s`'s events, in at most `points` buckets.
fn timeline(s: &Stream, points: usize) -> Timeline {
    let trace = MemoryTrace::new(s.events.clone(), InternTables::new());
    let mut recorder = TimelineRecorder::new(TimelineOptions {
        events: s.events.len() as u64,
        points,
        ..TimelineOptions::default()
    });
    replay_observed(
        &trace,
        &ReplayOptions::default(),
        CycleInput::Spans(&[]),
        &mut recorder,
    )
    .expect("replay");
    recorder.finish()
}

/// A circular buffer on device `device` (they change no resident bytes).
fn cb(s: &mut Stream, device: u32) -> &mut Stream {
    s.on(device).cb(0x20_0000, 4096)
}

fn point(ord: u64, ts: u64, min: u64, max: u64) -> Point {
    Point { ord, ts, min, max }
}

#[test]
fn circular_buffers_open_buckets_once_and_change_nothing_after() {
    let mut s = Stream::default();
    let dram = BufferType::Dram;
    s.on(0).open(DeviceConfig::default()); // 0, bucket 0: every device visited (none has a series)
    s.on(1).open(DeviceConfig::default()); // 1
    s.on(0).alloc(1, dram, 4096); // 2, bucket 1: device 0's DRAM series starts
    cb(&mut s, 1); // 3: first visit of all in bucket 1, nothing changes
    s.on(1).alloc(2, dram, 8192); // 4, bucket 2: device 1's DRAM series starts
    cb(&mut s, 0); // 5: closes device 0's bucket 1, opens bucket 2 at ts 1005
    cb(&mut s, 0); // 6, bucket 3: closes both series' bucket 2, opens 3 at 1006
    cb(&mut s, 0); // 7: skipped (bucket 3 already visited)
    s.on(0).free(1); // 8, bucket 4: device 0 alone, back to 0
    cb(&mut s, 1); // 9: device 1's bucket 4 opens at ts 1009
    let t = timeline(&s, 5);
    assert_eq!(t.bucket, 2);
    assert_eq!(t.series.len(), 2, "{:?}", t.series);

    let dev0 = &t.series[0];
    assert_eq!(
        (dev0.device, dev0.buffer_type),
        (DeviceId(0), BufferType::Dram)
    );
    assert_eq!(dev0.peak, 4096);
    assert_eq!(
        dev0.points,
        [
            point(0, 1000, 0, 0),       // zero from the start
            point(2, 1002, 0, 4096),    // bucket 1: the alloc
            point(4, 1005, 4096, 4096), // bucket 2, opened by the CB at 5
            point(6, 1006, 4096, 4096), // bucket 3, opened by the CB at 6
            point(8, 1008, 0, 4096),    // bucket 4: the free
            point(10, 1009, 0, 0),      // the end
        ]
    );

    let dev1 = &t.series[1];
    assert_eq!(
        (dev1.device, dev1.buffer_type),
        (DeviceId(1), BufferType::Dram)
    );
    assert_eq!(dev1.peak, 8192);
    assert_eq!(
        dev1.points,
        [
            point(0, 1000, 0, 0),
            point(4, 1004, 0, 8192),    // bucket 2: the alloc
            point(6, 1006, 8192, 8192), // bucket 3, opened by the CB at 6
            point(8, 1009, 8192, 8192), // bucket 4, opened by the CB at 9
            point(10, 1009, 8192, 8192),
        ]
    );
}

#[test]
fn every_change_within_a_bucket_counts_toward_its_lowest_and_highest() {
    let mut s = Stream::default();
    let dram = BufferType::Dram;
    s.open(DeviceConfig::default()) // 0, bucket 0: no series yet
        .alloc(1, dram, 1000) // 1: device 0's DRAM series starts (at 0, no start point)
        .alloc(2, dram, 500) // 2: 1500, the bucket's highest
        .free(1) // 3: 500
        .alloc(3, dram, 2000) // 4, bucket 1: closes bucket 0 (0..1500), 2500
        .free(2) // 5: 2000
        .free(3); // 6: 0
    cb(&mut s, 0); // 7: nothing changes
    let t = timeline(&s, 2);
    assert_eq!(t.bucket, 4);
    assert_eq!(t.series.len(), 1, "{:?}", t.series);
    assert_eq!(t.series[0].peak, 2500);
    assert_eq!(
        t.series[0].points,
        [
            point(0, 1001, 0, 1500), // bucket 0, opened by the first alloc
            point(4, 1004, 0, 2500), // bucket 1: from 500 up to 2500, down to 0
            point(8, 1007, 0, 0),    // the end
        ]
    );
}
