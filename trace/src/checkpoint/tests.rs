//! Checkpoints hold exactly the objects a naive walk over the events says
//! are held, are spaced as documented, and a damaged one is an error that
//! leaves the events and the other checkpoints readable.

use crate::{TraceHeader, TraceReader, TraceWriter, WriterOptions};
use std::path::Path;
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, Layout, Pid, ProgramId,
    SiteId, TraceId,
};

/// A small deterministic mix of every kind that makes or drops an object.
fn events(n: usize, seed: u64) -> Vec<Event> {
    let mut x = seed | 1;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut out = Vec::new();
    let mut live: Vec<(u32, u64)> = Vec::new();
    let mut next_buffer = 1u64;
    let push = |out: &mut Vec<Event>, kind| {
        let ts = out.len() as u64 * 10;
        out.push(Event {
            ts,
            pid: Pid(7),
            kind,
        })
    };
    for d in 0..2 {
        let config = DeviceConfig {
            l1_small_size: Some(32768 * (d as u64 + 1)),
            ..DeviceConfig::default()
        };
        push(
            &mut out,
            EventKind::DeviceOpen {
                device: DeviceId(d),
                arch: Arch::WormholeB0,
                config: Box::new(config),
            },
        );
    }
    while out.len() < n {
        let device = DeviceId(rnd(2) as u32);
        let kind = match rnd(20) {
            0..=7 => {
                let buffer = next_buffer;
                next_buffer += 1;
                live.push((device.0, buffer));
                EventKind::BufferAlloc {
                    device,
                    buffer: BufferId(buffer),
                    buffer_type: [BufferType::Dram, BufferType::L1][rnd(2) as usize],
                    address: (rnd(4) != 0).then(|| rnd(1 << 20) * 32),
                    size: 2048 * (1 + rnd(8)),
                    page_size: (rnd(2) == 0).then_some(2048),
                    layout: Layout::Interleaved,
                    num_cores: (rnd(3) == 0).then_some(8),
                    per_bank_size: (rnd(5) == 0).then_some(4096),
                    label: ttalloc_model::StringId::EMPTY,
                    site: SiteId(rnd(3) as u32),
                }
            }
            8..=13 if !live.is_empty() => {
                let (d, b) = live.swap_remove(rnd(live.len() as u64) as usize);
                EventKind::BufferFree {
                    device: DeviceId(d),
                    buffer: BufferId(b),
                    site: SiteId::UNKNOWN,
                }
            }
            14 => EventKind::CbAlloc {
                device,
                address: 100_000 + rnd(100) * 64,
                size: 4096,
                cores: Some(4),
                globally_allocated: rnd(4) == 0,
                site: SiteId(1),
            },
            15 => EventKind::CbFreeAll { device },
            16 => EventKind::ProgramLoad {
                device,
                program: ProgramId(rnd(4)),
                binary_size: 8192,
                site: SiteId(2),
            },
            17 => EventKind::ProgramUnload {
                device,
                program: ProgramId(rnd(4)),
            },
            18 => EventKind::TraceCapture {
                device,
                trace_id: TraceId(rnd(3) as u32),
                size: 1 << 16,
                site: SiteId(1),
            },
            _ if rnd(8) == 0 => {
                // Close and reopen: everything on the device goes.
                live.retain(|(d, _)| *d != device.0);
                push(&mut out, EventKind::DeviceClose { device });
                EventKind::DeviceOpen {
                    device,
                    arch: Arch::Blackhole,
                    config: Box::default(),
                }
            }
            _ => EventKind::TraceRelease {
                device,
                trace_id: TraceId(rnd(3) as u32),
            },
        };
        push(&mut out, kind);
    }
    out.truncate(n);
    out
}

/// The objects held after `events`, by a walk over a plain list (the rules
/// of FORMAT.md §4.5, written out again without the tracker's maps).
type Ordered = Vec<(u64, Event)>;

fn held(events: &[Event]) -> (Ordered, Ordered) {
    let mut devices: Ordered = Vec::new();
    let mut objects: Ordered = Vec::new();
    let key = |e: &Event| -> Option<(u8, u32, u64)> {
        match &e.kind {
            EventKind::BufferAlloc { buffer, .. } | EventKind::BufferFree { buffer, .. } => {
                Some((4, 0, buffer.get()))
            }
            EventKind::ProgramLoad {
                device, program, ..
            }
            | EventKind::ProgramUnload { device, program } => Some((8, device.0, program.get())),
            EventKind::TraceCapture {
                device, trace_id, ..
            }
            | EventKind::TraceRelease { device, trace_id } => {
                Some((10, device.0, trace_id.get() as u64))
            }
            _ => None,
        }
    };
    for (ord, e) in events.iter().enumerate() {
        let ord = ord as u64;
        let k = key(e);
        match &e.kind {
            EventKind::BufferAlloc { .. }
            | EventKind::ProgramLoad { .. }
            | EventKind::TraceCapture { .. } => {
                objects.retain(|(_, o)| key(o) != k);
                objects.push((ord, e.clone()));
            }
            EventKind::BufferFree { .. }
            | EventKind::ProgramUnload { .. }
            | EventKind::TraceRelease { .. } => objects.retain(|(_, o)| key(o) != k),
            EventKind::CbAlloc { .. } => objects.push((ord, e.clone())),
            EventKind::CbFreeAll { device } => objects.retain(
                |(_, o)| !matches!(o.kind, EventKind::CbAlloc { device: d, .. } if d == *device),
            ),
            EventKind::DeviceOpen { device, .. } => {
                let busy = objects
                    .iter()
                    .any(|(_, o)| o.kind.device() == Some(*device));
                let open = devices
                    .iter()
                    .position(|(_, d)| d.kind.device() == Some(*device));
                match open {
                    Some(_) if busy => {}
                    Some(i) => devices[i] = (ord, e.clone()),
                    None => devices.push((ord, e.clone())),
                }
            }
            EventKind::DeviceClose { device } => {
                devices.retain(|(_, d)| d.kind.device() != Some(*device));
                objects.retain(|(_, o)| o.kind.device() != Some(*device));
            }
            _ => {}
        }
    }
    devices.sort_by_key(|(_, d)| d.kind.device());
    objects.sort_by_key(|(o, _)| *o);
    (devices, objects)
}

fn write(path: &Path, events: &[Event], block_events: usize, checkpoints: bool) {
    write_at_tick(path, events, block_events, checkpoints, 1);
}

fn write_at_tick(path: &Path, events: &[Event], block_events: usize, checkpoints: bool, tick: u64) {
    let opts = WriterOptions {
        block_events,
        clock_tick_ns: tick,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::create(path, TraceHeader::new(vec![], "h".into()), opts).unwrap();
    if !checkpoints {
        w.without_checkpoints();
    }
    for s in 1..3 {
        w.interner_mut()
            .intern_stack_str(&[(&format!("f{s}"), "x.py", s)]);
    }
    for e in events {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn every_checkpoint_holds_what_the_events_before_it_leave() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1u64, 0x9e37, 0xdead_beef] {
        let evs = events(3000, seed);
        let path = dir.path().join(format!("t{seed}.zst"));
        write(&path, &evs, 50, true);
        let r = TraceReader::open(&path).unwrap();
        assert_eq!(r.checkpoint_index_error(), None);
        // 60 blocks of 50 events: one checkpoint every 4 blocks (the
        // spacing grows only past 128 blocks), the last after block 59.
        let after: Vec<usize> = r.checkpoints().iter().map(|c| c.after_block).collect();
        assert_eq!(after, (3..60).step_by(4).collect::<Vec<_>>(), "seed {seed}");
        for (i, info) in r.checkpoints().iter().enumerate() {
            let c = r.checkpoint(i).unwrap();
            assert_eq!(c.next_event, info.next_event);
            assert_eq!(c.next_event, 50 * (info.after_block as u64 + 1));
            let (devices, objects) = held(&evs[..c.next_event as usize]);
            assert_eq!(c.devices, devices, "seed {seed}, checkpoint {i}");
            assert_eq!(c.objects, objects, "seed {seed}, checkpoint {i}");
            assert_eq!(info.objects as usize, objects.len());
        }
        assert_eq!(r.checkpoint_before(0), None);
        assert_eq!(r.checkpoint_before(199), None);
        assert_eq!(r.checkpoint_before(200), Some(0));
        // Checkpoint 13 is after block 55 (event 2800); 14 after the last block.
        assert_eq!(r.checkpoint_before(2999), Some(13));
        assert_eq!(r.checkpoint_before(3000), Some(14));
    }
}

/// A recording's times (ns since the epoch, off the 100 ns tick, a few
/// seconds apart now and then, sometimes a step back) are written rounded
/// down to the tick, in the events and in the checkpoints' objects alike:
/// what a naive walk over the rounded events holds.
#[test]
fn times_off_the_tick_are_rounded_down_in_events_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut evs = events(3000, 0x5eed);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut ts = 1_764_950_400_123_456_789u64;
    for e in &mut evs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ts = match x % 50 {
            0 => ts + 5_000_000_017,
            1 => ts - 1_003,
            _ => ts + x % 950,
        };
        e.ts = ts;
    }
    let rounded: Vec<Event> = evs
        .iter()
        .map(|e| Event {
            ts: e.ts - e.ts % 100,
            ..e.clone()
        })
        .collect();
    assert!(evs.iter().filter(|e| e.ts % 100 != 0).count() > 2900);
    let path = dir.path().join("ticked.zst");
    write_at_tick(&path, &evs, 50, true, 100);
    let r = TraceReader::open(&path).unwrap();
    let got: Vec<Event> = r.events().map(|e| e.unwrap()).collect();
    assert_eq!(got, rounded);
    assert!(!r.checkpoints().is_empty());
    for i in 0..r.checkpoints().len() {
        let c = r.checkpoint(i).unwrap();
        let (devices, objects) = held(&rounded[..c.next_event as usize]);
        assert_eq!(c.devices, devices, "checkpoint {i}");
        assert_eq!(c.objects, objects, "checkpoint {i}");
    }
}

#[test]
fn a_trace_without_checkpoints_reads_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.zst");
    let evs = events(500, 3);
    write(&path, &evs, 50, false);
    let r = TraceReader::open(&path).unwrap();
    assert!(r.checkpoints().is_empty());
    assert_eq!(r.checkpoint_index_error(), None);
    assert_eq!(r.checkpoint_before(400), None);
    assert!(r.checkpoint(0).is_err());
    assert_eq!(r.events().count(), 500);
}

/// Flips one byte in the middle of the frame at `offset`.
fn damage(path: &Path, offset: u64, len: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (offset + len / 2) as usize;
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_checkpoint_is_an_error_naming_it_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.zst");
    let evs = events(1000, 5);
    write(&path, &evs, 50, true);
    let (frame, good) = {
        let r = TraceReader::open(&path).unwrap();
        let good: Vec<_> = (0..r.checkpoints().len())
            .map(|i| r.checkpoint(i).unwrap())
            .collect();
        (r.checkpoints()[1].frame, good)
    };
    damage(&path, frame.offset, frame.len);
    let r = TraceReader::open(&path).unwrap();
    let err = r.checkpoint(1).unwrap_err();
    assert!(
        err.starts_with(&format!("checkpoint 1 at byte {}: ", frame.offset)),
        "{err}"
    );
    for (i, want) in good.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert_eq!(&r.checkpoint(i).unwrap(), want);
    }
    let read: Vec<Event> = r.events().map(|e| e.unwrap()).collect();
    assert_eq!(read, evs);
}

#[test]
fn a_damaged_index_means_no_checkpoints_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.zst");
    let evs = events(600, 9);
    write(&path, &evs, 50, true);
    let loc = TraceReader::open(&path)
        .unwrap()
        .index
        .checkpoint_index
        .unwrap();
    damage(&path, loc.offset, loc.len);
    let r = TraceReader::open(&path).unwrap();
    assert!(r.checkpoints().is_empty());
    let why = r.checkpoint_index_error().unwrap();
    assert!(
        why.starts_with(&format!("checkpoint index at byte {}: ", loc.offset)),
        "{why}"
    );
    assert_eq!(r.events().count(), 600);
}
