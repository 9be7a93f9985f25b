//! Traces written by earlier releases stay readable. `data/synth-2.1.zst`
//! was written by the format 2.1 writer (before 2.2 changed the TS and SIZE
//! columns), `data/synth-2.2.zst` by the 2.2 writer (before 2.3 gave each
//! kind its own device column and chained the frees' buffers),
//! `data/synth-2.3.zst` by the 2.3 writer (before 2.4 coded sites by op
//! name, frees by device ordinal and circular buffers in columns),
//! `data/synth-2.4.zst` by the 2.4 writer (before 2.5 stored near-constant
//! columns as one value and their exceptions), `data/synth-2.5.zst` by
//! the 2.5 writer, all with
//! `synth -n 4000 --cycles 10 --leak-site 3@4 --reopen --seed 7`; the
//! generator is deterministic, so the events they read must be exactly the
//! ones the generator makes today.

use std::path::Path;
use ttalloc_corpora::synth::{LeakSite, Synth, SynthOptions};
use ttalloc_model::{Event, InternTables};
use ttalloc_trace::TraceReader;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn a_format_2_1_trace_reads_exactly_what_was_written() {
    reads_exactly_what_was_written("synth-2.1.zst", 1);
}

#[test]
fn a_format_2_2_trace_reads_exactly_what_was_written() {
    reads_exactly_what_was_written("synth-2.2.zst", 2);
}

#[test]
fn a_format_2_3_trace_reads_exactly_what_was_written() {
    reads_exactly_what_was_written("synth-2.3.zst", 3);
}

#[test]
fn a_format_2_4_trace_reads_exactly_what_was_written() {
    reads_exactly_what_was_written("synth-2.4.zst", 4);
}

#[test]
fn a_format_2_5_trace_reads_exactly_what_was_written() {
    reads_exactly_what_was_written("synth-2.5.zst", 5);
}

fn reads_exactly_what_was_written(name: &str, minor: u16) {
    let r = TraceReader::open(&fixture(name)).unwrap();
    assert_eq!(
        (r.header().format_major, r.header().format_minor),
        (2, minor)
    );
    assert!(r.truncation().is_none());
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());

    let opts = SynthOptions {
        events: 4000,
        seed: 7,
        cycles: 10,
        leak_site: Some(LeakSite {
            site: 3,
            from_cycle: 4,
        }),
        reopen_devices: true,
        ..Default::default()
    };
    let mut tables = InternTables::new();
    let mut synth = Synth::new(opts, &mut tables);
    let mut expected: Vec<Event> = Vec::new();
    while let Some(e) = synth.next_event() {
        expected.push(e);
    }
    let got: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    // 3,828 events, as `synth` reported when it wrote the file.
    assert_eq!(got.len(), 3828);
    assert_eq!(got, expected);
    // The call sites resolve to the same frames.
    assert_eq!(r.interner().num_sites(), tables.num_sites());
    for e in &got {
        if let Some(site) = e.kind.site() {
            assert_eq!(r.interner().resolve(site), tables.resolve(site));
        }
    }
    // The columnar scan agrees with the event scan.
    let mut cols = ttalloc_trace::BlockColumns::default();
    let mut n = 0;
    for i in 0..r.blocks().len() {
        r.decode_columns(i, &mut cols).unwrap();
        n += cols.len();
    }
    assert_eq!(n, 3828);
}
