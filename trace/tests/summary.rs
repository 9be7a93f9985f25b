//! `TraceSummary` (what `ttalloc info` prints) on a hand-made trace whose
//! numbers are worked out below.

mod common;

use common::*;
use ttalloc_model::*;
use ttalloc_trace::summary::{SummaryTally, TraceSummary};
use ttalloc_trace::{BlockColumns, TraceReader};

fn alloc(ts: u64, device: u32, buffer: u64, bt: BufferType, size: u64) -> Event {
    Event {
        ts,
        pid: Pid(10),
        kind: EventKind::BufferAlloc {
            device: DeviceId(device),
            buffer: BufferId(buffer),
            buffer_type: bt,
            address: None,
            size,
            page_size: None,
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId(2),
        },
    }
}

fn ev(ts: u64, pid: u32, kind: EventKind) -> Event {
    Event {
        ts,
        pid: Pid(pid),
        kind,
    }
}

#[test]
fn peaks_live_bytes_processes_and_counts() {
    use BufferType::*;
    let events = vec![
        ev(
            100,
            10,
            EventKind::ProcessStart {
                ppid: Pid(1),
                argv: StringId(3),
            },
        ), // "python\0test.py"
        ev(
            110,
            10,
            EventKind::DeviceOpen {
                device: DeviceId(0),
                arch: Arch::WormholeB0,
                config: Box::new(DeviceConfig {
                    dram_banks: Some(12),
                    ..Default::default()
                }),
            },
        ),
        alloc(120, 0, 1, Dram, 1000),
        alloc(130, 0, 2, Dram, 500), // DRAM live 1500 (peak)
        alloc(140, 0, 3, L1, 64),
        ev(
            150,
            10,
            EventKind::BufferFree {
                device: DeviceId(0),
                buffer: BufferId(1),
                site: SiteId(3),
            },
        ), // DRAM 500
        alloc(160, 0, 4, Dram, 700), // DRAM 1200
        ev(
            165,
            10,
            EventKind::BufferFree {
                device: DeviceId(0),
                buffer: BufferId(99),
                site: SiteId(0),
            },
        ), // unknown: ignored
        alloc(170, 1, 5, Dram, 4000), // device 1 never opened in the trace
        ev(
            180,
            10,
            EventKind::DeviceClose {
                device: DeviceId(0),
            },
        ), // drops 2, 3, 4
        alloc(190, 0, 6, Dram, 10),  // after close: live 10
        ev(200, 11, EventKind::Marker { label: StringId(2) }),
        ev(210, 10, EventKind::ProcessExit { status: Some(-9) }),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    write(&path, &events, 4);
    let r = TraceReader::open(&path).unwrap();
    let s = TraceSummary::compute(&r).unwrap();

    assert_eq!(s.events, 13);
    assert_eq!(s.events_by_kind["buffer_alloc"], 6);
    assert_eq!(s.events_by_kind["buffer_free"], 2);
    assert_eq!(s.events_by_kind["cb_alloc"], 0);
    assert_eq!(s.events_by_kind.values().sum::<u64>(), 13);
    assert_eq!(
        (s.first_ts, s.last_ts, s.duration_ns),
        (Some(100), Some(210), 110)
    );
    assert_eq!(s.blocks, 4);
    // Written with the default tick (1 ns): every digit kept.
    assert_eq!(s.clock_tick_ns, Some(1));
    assert!(s.truncation.is_none());
    assert_eq!(
        s.format_version,
        format!(
            "{}.{}",
            ttalloc_trace::FORMAT_MAJOR,
            ttalloc_trace::FORMAT_MINOR
        )
    );

    assert_eq!(s.processes.len(), 2);
    let p = &s.processes[0];
    assert_eq!(
        (p.pid, p.ppid, p.exited, p.exit_status, p.events),
        (10, Some(1), true, Some(-9), 12)
    );
    assert_eq!(p.argv, ["python", "test.py"]);
    assert_eq!((s.processes[1].pid, s.processes[1].exited), (11, false));

    assert_eq!(s.devices.len(), 2);
    let d0 = &s.devices[0];
    assert_eq!(
        (d0.device, d0.arch, d0.opens, d0.closes),
        (0, Arch::WormholeB0, 1, 1)
    );
    assert_eq!(d0.config.as_ref().unwrap().dram_banks, Some(12));
    assert_eq!((d0.buffer_allocs, d0.buffer_frees), (5, 2));
    assert_eq!(d0.peak_live_bytes["DRAM"], 1500);
    assert_eq!(d0.peak_live_bytes["L1"], 64);
    assert_eq!(d0.live_bytes_at_end.len(), 1);
    assert_eq!(d0.live_bytes_at_end["DRAM"], 10);
    let d1 = &s.devices[1];
    assert_eq!((d1.opens, d1.config.is_none()), (0, true));
    assert_eq!(d1.live_bytes_at_end["DRAM"], 4000);

    // The footer checkpoints follow the same rules.
    let last = r.blocks().last().unwrap();
    let live: Vec<(u32, BufferType, u64)> = last
        .live
        .iter()
        .map(|l| (l.device.0, l.buffer_type, l.bytes))
        .collect();
    assert_eq!(live, [(0, Dram, 10), (1, Dram, 4000)]);
    let live_at = |block: usize| -> Vec<(u32, BufferType, u64)> {
        r.blocks()[block]
            .live
            .iter()
            .map(|l| (l.device.0, l.buffer_type, l.bytes))
            .collect()
    };
    // Block 1 (events 4..8) ends before the close: 500 + 700 B DRAM (1 was
    // freed, the free of 99 is unknown) and the 64 B L1 buffer.
    assert_eq!(live_at(1), [(0, Dram, 1200), (0, L1, 64)]);
    // Block 2 (events 8..12) ends after device 1's alloc, the DeviceClose of
    // device 0 (which drops 2, 3 and 4, the L1 one too) and the alloc of 6.
    let after_close = &r.blocks()[2];
    assert_eq!((after_close.first_event, after_close.count), (8, 4));
    assert_eq!(live_at(2), [(0, Dram, 10), (1, Dram, 4000)]);

    let text = s.to_text();
    // The DRAM peak of 1000 + 500 B, exact, as every command writes bytes.
    assert!(text.contains("peak live: DRAM 1,500 B, L1 64 B"), "{text}");
    // Counts in the singular and plural: 16 events in blocks of 4; pid 11
    // sent one marker.
    assert!(text.contains(", 4 blocks\n"), "{text}");
    assert!(text.contains("pid 11: 1 event,"), "{text}");
    // The arch is spelled the same in JSON as in text.
    let json = serde_json::to_value(&s).unwrap();
    for d in json["devices"].as_array().unwrap() {
        let arch = d["arch"].as_str().unwrap();
        assert!(
            ["unknown", "wormhole_b0", "blackhole"].contains(&arch),
            "{arch}"
        );
    }
    assert!(text.contains("killed by signal 9"), "{text}");
    assert!(text.contains("integrity:  ok"), "{text}");
}

/// The clock tick a trace was written at is what the summary shows (the
/// writer stores it in every block); a trace without events has none.
#[test]
fn the_clock_tick_is_the_one_the_trace_was_written_at() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let opts = ttalloc_trace::WriterOptions {
        block_events: 2,
        clock_tick_ns: 250_000,
        ..Default::default()
    };
    let mut w = ttalloc_trace::TraceWriter::create(&path, header(), opts).unwrap();
    vocabulary(w.interner_mut());
    // Five events in three blocks; timestamps are rounded down to 250 µs.
    for (i, ts) in [1_000_000u64, 1_300_000, 1_800_000, 2_260_000, 2_500_001]
        .into_iter()
        .enumerate()
    {
        w.push(&alloc(ts, 0, i as u64, BufferType::Dram, 100))
            .unwrap();
    }
    w.finish().unwrap();
    let s = TraceSummary::compute(&TraceReader::open(&path).unwrap()).unwrap();
    assert_eq!(s.blocks, 3);
    assert_eq!(s.clock_tick_ns, Some(250_000));
    // 1,000,000 stays; 2,500,001 is rounded down to 2,500,000.
    assert_eq!((s.first_ts, s.last_ts), (Some(1_000_000), Some(2_500_000)));
    let text = s.to_text();
    assert!(text.contains("\nclock tick: 250 µs\n"), "{text}");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["clock_tick_ns"], 250_000);

    write(&path, &[], 2);
    let s = TraceSummary::compute(&TraceReader::open(&path).unwrap()).unwrap();
    assert_eq!(s.clock_tick_ns, None);
    assert!(!s.to_text().contains("clock tick"));
    assert!(serde_json::to_value(&s).unwrap()["clock_tick_ns"].is_null());
}

/// The summary read from columns agrees with a plain count over the
/// decoded events (live bytes by the writer's `LiveTracker`), whatever the
/// events and however they fall into blocks.
mod against_events {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use ttalloc_trace::LiveTracker;

    /// A `SummaryTally` fed the first `blocks` blocks of `r`, decoded as
    /// another pass would (`timed`: with their times).
    fn tallied(r: &TraceReader, blocks: usize, timed: bool) -> Option<TraceSummary> {
        let mut tally = SummaryTally::new();
        let mut c = BlockColumns::default();
        for i in 0..blocks {
            match timed {
                true => r.decode_columns(i, &mut c).unwrap(),
                false => r.decode_columns_untimed(i, &mut c).unwrap(),
            }
            tally.block(&c, r.interner());
        }
        tally.finish(r)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn counts_equal_a_walk_over_events(
            events in proptest::collection::vec(event(), 0..300),
            block in 1usize..64,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.zst");
            write(&path, &events, block);
            let r = TraceReader::open(&path).unwrap();
            let s = TraceSummary::compute(&r).unwrap();
            prop_assert_eq!(tallied(&r, r.blocks().len(), true), Some(s.clone()));
            // A block short, or blocks without their times: no summary.
            if !r.blocks().is_empty() {
                prop_assert_eq!(tallied(&r, r.blocks().len() - 1, true), None);
            }
            if !events.is_empty() {
                prop_assert_eq!(tallied(&r, r.blocks().len(), false), None);
            }

            let mut by_pid: BTreeMap<u32, u64> = BTreeMap::new();
            // device -> (allocs, frees, opens, closes, refused)
            let mut dev: BTreeMap<u32, [u64; 5]> = BTreeMap::new();
            let mut peaks: BTreeMap<(u32, String), u64> = BTreeMap::new();
            let mut live = LiveTracker::default();
            let mut n = 0u64;
            let (mut lo, mut hi) = (u64::MAX, 0u64);
            for e in r.events() {
                let e = e.unwrap();
                n += 1;
                lo = lo.min(e.ts);
                hi = hi.max(e.ts);
                *by_pid.entry(e.pid.0).or_default() += 1;
                if let Some(d) = e.kind.device() {
                    let c = dev.entry(d.0).or_default();
                    let i = match e.kind {
                        EventKind::BufferAlloc { .. } => Some(0),
                        EventKind::BufferFree { .. } => Some(1),
                        EventKind::DeviceOpen { .. } => Some(2),
                        EventKind::DeviceClose { .. } => Some(3),
                        EventKind::AllocRefused { .. } => Some(4),
                        _ => None,
                    };
                    if let Some(i) = i {
                        c[i] += 1;
                    }
                }
                if let Some((d, bt, now)) = live.apply(&e) {
                    let p = peaks.entry((d.0, bt.name().to_string())).or_default();
                    *p = (*p).max(now);
                }
            }
            prop_assert_eq!(s.events, n);
            prop_assert_eq!(s.events_by_kind.values().sum::<u64>(), n);
            if n > 0 {
                prop_assert_eq!((s.first_ts, s.last_ts), (Some(lo), Some(hi)));
            }
            let pids: BTreeMap<u32, u64> = s.processes.iter().map(|p| (p.pid, p.events)).collect();
            prop_assert_eq!(pids, by_pid);
            let devs: BTreeMap<u32, [u64; 5]> = s
                .devices
                .iter()
                .map(|d| (d.device, [d.buffer_allocs, d.buffer_frees, d.opens, d.closes, d.allocs_refused]))
                .collect();
            prop_assert_eq!(devs, dev);
            let got: BTreeMap<(u32, String), u64> = s
                .devices
                .iter()
                .flat_map(|d| d.peak_live_bytes.iter().map(move |(t, &b)| ((d.device, t.clone()), b)))
                .collect();
            prop_assert_eq!(got, peaks.clone());
            // Live at the end: every type that had an alloc, when non-zero.
            let end: BTreeMap<(u32, String), u64> = s
                .devices
                .iter()
                .flat_map(|d| d.live_bytes_at_end.iter().map(move |(t, &b)| ((d.device, t.clone()), b)))
                .collect();
            let want: BTreeMap<(u32, String), u64> = peaks
                .keys()
                .filter_map(|(d, t)| {
                    let bt = *BufferType::ALL.iter().find(|b| b.name() == t).unwrap();
                    let b = live.bytes(DeviceId(*d), bt);
                    (b > 0).then(|| ((*d, t.clone()), b))
                })
                .collect();
            prop_assert_eq!(end, want);
        }
    }
}
