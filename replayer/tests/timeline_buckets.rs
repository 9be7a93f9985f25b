//! Memory over time (`TimelineRecorder`) on hand-built streams, with
//! buckets of a few events: which points each series gets, and when. Circular buffers change no device's resident bytes, but the first
//! event of a bucket that is not a buffer alloc or free visits every
//! device's series and opens their new bucket at its time; the recorder
//! skips the later circular buffers of a bucket, which must change nothing.
//! The expected points are worked out event by event below.

use ttalloc_model::*;
use ttalloc_replayer::engine::CycleInput;
use ttalloc_replayer::observe::replay_observed;
use ttalloc_replayer::timeline::{Point, TimelineOptions, TimelineRecorder};
use ttalloc_replayer::{MemoryTrace, ReplayOptions};

/// Event `i` has time 1000 + i.
#[derive(Default)]
struct Stream(Vec<Event>);

impl Stream {
    fn push(&mut self, kind: EventKind) -> &mut Self {
        let ts = 1_000 + self.0.len() as u64;
        self.0.push(Event {
            ts,
            pid: Pid(7),
            kind,
        });
        self
    }
    fn open(&mut self, device: u32) -> &mut Self {
        self.push(EventKind::DeviceOpen {
            device: DeviceId(device),
            arch: Arch::WormholeB0,
            config: Box::default(),
        })
    }
    fn alloc(&mut self, device: u32, buffer: u64, size: u64) -> &mut Self {
        self.push(EventKind::BufferAlloc {
            device: DeviceId(device),
            buffer: BufferId(buffer),
            buffer_type: BufferType::Dram,
            address: None,
            size,
            page_size: Some(2048),
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId::UNKNOWN,
        })
    }
    fn free(&mut self, device: u32, buffer: u64) -> &mut Self {
        self.push(EventKind::BufferFree {
            device: DeviceId(device),
            buffer: BufferId(buffer),
            site: SiteId::UNKNOWN,
        })
    }
    fn cb(&mut self, device: u32) -> &mut Self {
        self.push(EventKind::CbAlloc {
            device: DeviceId(device),
            address: 0x20_0000,
            size: 4096,
            cores: Some(1),
            globally_allocated: false,
            site: SiteId::UNKNOWN,
        })
    }
}

fn point(ord: u64, ts: u64, min: u64, max: u64) -> Point {
    Point { ord, ts, min, max }
}

#[test]
fn circular_buffers_open_buckets_once_and_change_nothing_after() {
    let mut s = Stream::default();
    s.open(0) // 0, bucket 0: every device visited (none has a series)
        .open(1) // 1
        .alloc(0, 1, 4096) // 2, bucket 1: device 0's DRAM series starts
        .cb(1) // 3: first visit of all in bucket 1, nothing changes
        .alloc(1, 2, 8192) // 4, bucket 2: device 1's DRAM series starts
        .cb(0) // 5: closes device 0's bucket 1, opens bucket 2 at ts 1005
        .cb(0) // 6, bucket 3: closes both series' bucket 2, opens 3 at 1006
        .cb(0) // 7: skipped (bucket 3 already visited)
        .free(0, 1) // 8, bucket 4: device 0 alone, back to 0
        .cb(1); // 9: device 1's bucket 4 opens at ts 1009
    let events = s.0.len() as u64;
    let trace = MemoryTrace::new(s.0.clone(), InternTables::new());
    let mut recorder = TimelineRecorder::new(TimelineOptions {
        events,
        points: 5,
        ..TimelineOptions::default()
    });
    replay_observed(
        &trace,
        &ReplayOptions::default(),
        CycleInput::Spans(&[]),
        &mut recorder,
    )
    .expect("replay");
    let t = recorder.finish();
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
    s.open(0) // 0, bucket 0: no series yet
        .alloc(0, 1, 1000) // 1: device 0's DRAM series starts (at 0, no start point)
        .alloc(0, 2, 500) // 2: 1500, the bucket's highest
        .free(0, 1) // 3: 500
        .alloc(0, 3, 2000) // 4, bucket 1: closes bucket 0 (0..1500), 2500
        .free(0, 2) // 5: 2000
        .free(0, 3) // 6: 0
        .cb(0); // 7: nothing changes
    let events = s.0.len() as u64;
    let trace = MemoryTrace::new(s.0.clone(), InternTables::new());
    let mut recorder = TimelineRecorder::new(TimelineOptions {
        events,
        points: 2,
        ..TimelineOptions::default()
    });
    replay_observed(
        &trace,
        &ReplayOptions::default(),
        CycleInput::Spans(&[]),
        &mut recorder,
    )
    .expect("replay");
    let t = recorder.finish();
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
