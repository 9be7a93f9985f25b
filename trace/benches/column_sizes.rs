//! Where a trace's bytes go, column by column (a bench binary, `harness =
//! false`): for every column id, its bytes as stored (before zstd) and
//! compressed on its own with zstd per block, per event of the trace. The
//! columns share one zstd frame per block in the file, so the per-column
//! figures add up to about the file's size, not exactly.
//!
//! `cargo bench -p ttalloc-trace --bench column_sizes -- TRACE.zst [LEVEL]`
//! With `--reencode` the trace's events are first written again by this
//! build's writer (at LEVEL) into a temporary file, which is measured: this
//! is how a change of the column coding is compared on the same events.
//! `--clock-tick=NS` re-encodes keeping time at that resolution (FORMAT.md
//! TS_UNIT; `record --clock-tick`).

use std::collections::BTreeMap;
use ttalloc_trace::{TraceReader, TraceWriter, WriterOptions};

/// Column names by id (FORMAT.md §5.1).
const NAMES: [&str; 42] = [
    "TAG",
    "TS",
    "PID",
    "DEVICE",
    "ALLOC_BUF",
    "FREE_BUF",
    "ALLOC_FLAGS",
    "SIZE",
    "ADDR",
    "PAGE",
    "CORES",
    "ALLOC_SITE",
    "FREE_SITE",
    "NAME",
    "MISC",
    "EXT",
    "SIZE_REM",
    "(17)",
    "ALLOC_EXT",
    "TS_REL",
    "SIZE_BY_SITE",
    "ALLOC_DEV",
    "FREE_DEV",
    "OTHER_DEV",
    "FREE_CHAIN",
    "SIZE_RECENT",
    "SIZE_NEW",
    "TS_KIND",
    "TS_BASE",
    "FLAGS_NEW",
    "CORES_NEW",
    "CB_ADDR",
    "CB_SIZE",
    "CB_FLAGS",
    "CB_SITE",
    "SITE_BY_NAME",
    "SITE_NEW",
    "FREE_BY_DEV",
    "FREE_FAR",
    "TS_TICKS",
    "TS_UNIT",
    "FREE_DEV_NEAR",
];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let Some(path) = args.next() else {
        eprintln!("usage: column_sizes TRACE.zst [LEVEL]");
        std::process::exit(2);
    };
    let level: i32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let open = |p: &std::path::Path| {
        TraceReader::open(p).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        })
    };
    let mut reader = open(std::path::Path::new(&path));
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::args().any(|a| a == "--reencode") {
        let out = dir.path().join("reencoded.zst");
        let clock_tick_ns = std::env::args()
            .find_map(|a| a.strip_prefix("--clock-tick=").map(str::to_owned))
            .map_or(1, |t| t.parse().expect("--clock-tick=NS"));
        let opts = WriterOptions {
            level,
            clock_tick_ns,
            ..Default::default()
        };
        let mut w = TraceWriter::create(&out, reader.header().clone(), opts).expect("create");
        *w.interner_mut() = reader.interner().clone();
        for e in reader.events() {
            w.push(&e.expect("event")).expect("push");
        }
        w.finish().expect("finish");
        reader = open(&out);
    }
    let n = reader.num_events().max(1) as f64;
    // id -> (raw bytes, compressed bytes, compressed plane by plane)
    let mut sizes: BTreeMap<u16, (u64, u64, u64)> = BTreeMap::new();
    let (mut whole, mut split) = (0u64, 0u64);
    let mut splitter = zstd::bulk::Compressor::new(level).expect("cctx");
    splitter
        .set_parameter(zstd::zstd_safe::CParameter::UseBlockSplitter(
            zstd::zstd_safe::ParamSwitch::Enable,
        ))
        .expect("splitter");
    for i in 0..reader.blocks().len() {
        let mut all = Vec::new();
        let count = reader.blocks()[i].count as usize;
        reader
            .bench_raw_columns(i, |id, bytes| {
                all.extend_from_slice(bytes);
                let z = zstd::bulk::compress(bytes, level).expect("compress").len();
                let e = sizes.entry(id).or_default();
                e.0 += bytes.len() as u64;
                e.1 += z as u64;
                // A packed column: width byte, then planes of one byte per value.
                let w = bytes.first().copied().unwrap_or(0) as usize;
                let per = bytes.len().saturating_sub(1).checked_div(w).unwrap_or(0);
                if w > 0 && per * w + 1 == bytes.len() && per > 0 && per <= count {
                    e.2 += 1 + bytes[1..]
                        .chunks(per)
                        .map(|p| zstd::bulk::compress(p, level).expect("compress").len() as u64)
                        .sum::<u64>();
                } else {
                    e.2 += z as u64;
                }
            })
            .expect("block");
        whole += zstd::bulk::compress(&all, level).expect("compress").len() as u64;
        split += splitter.compress(&all).expect("compress").len() as u64;
    }
    println!(
        "columns in one frame per block: {:.3} B/event; with zstd's block splitter: {:.3}",
        whole as f64 / n,
        split as f64 / n
    );
    println!(
        "{path} (format {}.{}): {} events, {} blocks, {:.3} B/event in the file",
        reader.header().format_major,
        reader.header().format_minor,
        reader.num_events(),
        reader.blocks().len(),
        reader.file_size() as f64 / n
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "column", "raw B/ev", "zstd B/ev", "by plane"
    );
    let (mut raw, mut z, mut zp) = (0, 0, 0);
    for (id, (r, c, p)) in &sizes {
        let name = NAMES.get(*id as usize).copied().unwrap_or("?");
        println!(
            "{:<12} {:>10.3} {:>10.3} {:>10.3}",
            name,
            *r as f64 / n,
            *c as f64 / n,
            *p as f64 / n
        );
        raw += r;
        z += c;
        zp += p;
    }
    println!(
        "{:<12} {:>10.3} {:>10.3} {:>10.3}",
        "total",
        raw as f64 / n,
        z as f64 / n,
        zp as f64 / n
    );
}
