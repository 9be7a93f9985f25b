//! Property: a replay resumed from any checkpoint of a synthetic trace (with
//! the model addresses of a replay through it) is in the same state as the
//! replay from the first event at that checkpoint and at every later one —
//! the same blocks on every device, address for address, and the same
//! resident bytes — and ends with the same leaks (those allocated after the
//! checkpoint, and those allocated before it still on an open device) and
//! the same out-of-memory; as the synthetic generator records the addresses
//! the model gives, with no divergence. Resumed from the trace alone, every
//! buffer still lands where it was recorded.

use super::*;
use proptest::prelude::*;
use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_model::alloc::BlockView;
use ttalloc_trace::{TraceReader, WriterOptions};

const TYPES_PLACED: [BufferType; 4] = [
    BufferType::Dram,
    BufferType::L1,
    BufferType::L1Small,
    BufferType::Trace,
];

type DeviceState = Vec<(DeviceId, PerType, Vec<Vec<BlockView>>)>;

fn setup<'a>(interner: &'a InternTables, overrides: &'a DeviceConfig) -> EngineSetup<'a> {
    EngineSetup {
        arch: Arch::WormholeB0,
        overrides,
        warmup: 0,
        cycles: CycleInput::Spans(&[]),
        interner,
        release_sites: None,
        stop_at_oom: false,
    }
}

/// Every open device's state: resident bytes and block tables.
fn state(engine: &Engine<'_>) -> DeviceState {
    let mut state: DeviceState = engine
        .devs
        .iter()
        .filter_map(|d| {
            // Closed devices hold nothing (a resumed replay may never have seen them).
            let sim = d.sim.as_ref()?;
            let views = TYPES_PLACED.iter().map(|&bt| sim.memory_view(bt)).collect();
            Some((d.id, d.resident, views))
        })
        .collect();
    state.sort_by_key(|s| s.0);
    state
}

fn feed(engine: &mut Engine<'_>, events: &[Event], from: u64, to: u64) {
    let (from, to) = (from as usize, to as usize);
    for (i, chunk) in events[from..to].chunks(1000).enumerate() {
        engine.feed((from + i * 1000) as u64, chunk).unwrap();
    }
}

fn check(opts: SynthOptions) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.zst");
    let wopts = WriterOptions {
        block_events: 500,
        ..WriterOptions::default()
    };
    write_trace(&path, &opts, wopts).unwrap();
    let reader = TraceReader::open(&path).unwrap();
    let mut events = Vec::new();
    reader.for_each_event(|_, e| events.push(e)).unwrap();
    let n = events.len() as u64;
    let interner = reader.interner();
    let overrides = DeviceConfig::default();
    let points: Vec<u64> = reader.checkpoints().iter().map(|c| c.next_event).collect();
    assert!(!points.is_empty());
    // The replay from the start, with its state at every checkpoint.
    let mut engine = Engine::new(setup(interner, &overrides));
    let mut at_points = Vec::new();
    let mut known = Vec::new();
    let mut fed = 0;
    for &p in &points {
        feed(&mut engine, &events, fed, p);
        at_points.push(state(&engine));
        known.push(engine.model_addresses());
        fed = p;
    }
    feed(&mut engine, &events, fed, n);
    let full = engine.finish();
    assert_eq!(full.divergences, 0, "the synthetic trace replays exactly");
    for (i, &from) in points.iter().enumerate() {
        let at = format!("checkpoint {i} (event {from}), {opts:?}");
        let cp = reader.checkpoint(i).unwrap();
        let mut engine = Engine::resume(setup(interner, &overrides), &cp, Some(&known[i])).unwrap();
        assert_eq!(state(&engine), at_points[i], "restored, {at}");
        let mut fed = from;
        for (j, &p) in points.iter().enumerate().skip(i + 1) {
            feed(&mut engine, &events, fed, p);
            assert_eq!(state(&engine), at_points[j], "at checkpoint {j}, {at}");
            fed = p;
        }
        feed(&mut engine, &events, fed, n);
        let resumed = engine.finish();
        assert_eq!(resumed.divergences, 0, "{at}");
        assert_eq!(resumed.rejected_allocs, full.rejected_allocs, "{at}");
        let key = |l: &Leak| {
            (
                l.event,
                l.buffer,
                l.object,
                l.device,
                l.buffer_type,
                l.size,
                l.address,
                l.site,
                l.label,
            )
        };
        // Buffers that outlived a device closed before the checkpoint are
        // history the checkpoint does not carry.
        let want: Vec<_> = full
            .leaks
            .iter()
            .filter(|l| l.class != LeakClass::OutlivedDevice || l.closed_at >= Some(from))
            .map(key)
            .collect();
        let got: Vec<_> = resumed.leaks.iter().map(key).collect();
        assert_eq!(got, want, "{at}");
        assert_eq!(
            resumed.oom.as_ref().map(|o| (o.event, &o.message)),
            full.oom.as_ref().map(|o| (o.event, &o.message)),
            "{at}"
        );
        // From the trace alone (programs placed again in creation order):
        // every buffer still lands where it was recorded, and leaks agree.
        let mut engine = Engine::resume(setup(interner, &overrides), &cp, None).unwrap();
        feed(&mut engine, &events, from, n);
        let alone = engine.finish();
        assert_eq!(alone.divergences, 0, "trace alone, {at}");
        assert_eq!(
            alone.leaks.iter().map(key).collect::<Vec<_>>(),
            want,
            "trace alone, {at}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn a_replay_resumed_from_any_checkpoint_ends_as_the_full_replay(
        seed in 1u64..1_000_000,
        devices in 1u32..4,
        cycles in 1u32..6,
        leak in proptest::option::of((0usize..60, 1u32..4)),
        reopen in any::<bool>(),
    ) {
        check(SynthOptions {
            events: 12_000,
            seed,
            devices,
            cycles,
            leak_site: leak.map(|(site, from_cycle)| LeakSite { site, from_cycle }),
            reopen_devices: reopen,
        });
    }
}
