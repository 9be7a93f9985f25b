//! The strongest cross-check of the allocator model: the synthetic generator
//! records the address its own allocator (an independent implementation of
//! tt-metal's placement rules) gave every buffer, and a replay through the
//! model must place every one of them at exactly that address. Runs on a
//! ~100k-event trace (the benchmarks run the same on 10M events).

use ttalloc_corpora::synth::{write_trace, LeakSite, SynthOptions};
use ttalloc_model::EventKind;
use ttalloc_replayer::{replay_file, ReplayOptions};
use ttalloc_trace::WriterOptions;

fn replay_agrees(opts: &SynthOptions) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.zst");
    let stats = write_trace(&path, opts, WriterOptions::default()).expect("synthetic trace");
    // Every allocation carries the generator's address: nothing to check
    // would make "0 divergences" hollow.
    let reader = ttalloc_trace::TraceReader::open(&path).unwrap();
    let mut with_address = 0;
    reader
        .for_each_event(|_, e| {
            if let EventKind::BufferAlloc {
                address: Some(_), ..
            } = e.kind
            {
                with_address += 1;
            }
        })
        .unwrap();
    assert_eq!(with_address, stats.buffers_allocated);
    assert!(with_address > 10_000, "{with_address}");
    let report = replay_file(&path, &ReplayOptions::default()).expect("replay");
    assert_eq!(report.events, stats.events);
    assert_eq!(
        report.divergences, 0,
        "the model placed a buffer elsewhere than the generator: {:?}",
        report.first_divergence
    );
    assert_eq!(
        report.rejected_allocs, 0,
        "the model refused a request: {:?}",
        report.first_rejection
    );
    assert_eq!(report.ooms, 0, "{:?}", report.oom);
    assert_eq!(report.duplicate_allocs, 0);
    assert_eq!(report.unknown_frees + report.double_frees, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn the_model_places_every_synthetic_buffer_where_the_generator_did() {
    let opts = SynthOptions {
        events: 100_000,
        ..SynthOptions::default()
    };
    replay_agrees(&opts);
}

#[test]
fn the_same_with_devices_reopened_every_cycle_and_a_leak() {
    let opts = SynthOptions {
        events: 100_000,
        cycles: 20,
        leak_site: Some(LeakSite {
            site: 5,
            from_cycle: 3,
        }),
        reopen_devices: true,
        ..SynthOptions::default()
    };
    replay_agrees(&opts);
}
