//! Trace-format benchmark on the standard synthetic workload (a bench binary,
//! `harness = false`): bytes/event, write throughput, sequential scan speed.
//!
//! `cargo bench -p ttalloc-trace --bench trace_bench -- [EVENTS] [LEVEL]`
//! (default 2,000,000 events, zstd level 3). Prints one line per figure.
//! Peak RSS of `ttalloc info` is measured by `benches/info_rss.sh`.
//! With a `.zst` path as the argument it only scans that trace (for
//! profiling the reader); `TTALLOC_BENCH_COLUMNS_ONLY=1` then runs the
//! `decode_columns` scan alone (`TTALLOC_BENCH_RUNS=N`: N times, no parallel
//! scan; `TTALLOC_BENCH_UNTIMED=1`: the `decode_columns_untimed` scan
//! instead).

use std::hint::black_box;
use std::time::{Duration, Instant};
use ttalloc_corpora::synth::{synth_header, Synth, SynthOptions};
use ttalloc_model::{Event, InternTables};
use ttalloc_trace::{BlockColumns, TraceReader, TraceWriter, WriterOptions};

/// CPU time of this thread: on a shared machine (other jobs compiling) wall
/// time overstates the cost; both are reported.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the whole process (every decoding thread).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `best_of` measuring the whole process's CPU (for multi-threaded scans).
fn best_of_process<T>(runs: usize, mut f: impl FnMut() -> T) -> Timing {
    let mut best = Timing {
        wall: Duration::MAX,
        cpu: Duration::MAX,
    };
    for _ in 0..runs {
        let (t, c) = (Instant::now(), process_cpu());
        black_box(f());
        best.wall = best.wall.min(t.elapsed());
        best.cpu = best.cpu.min(process_cpu() - c);
    }
    best
}

/// What both columnar scans read of a decoded block: its event count, the
/// bytes its allocs and frees move, and every event's time and pid (kept
/// coded in the block: summed here so the figure includes turning them
/// into values, as every reader of whole columns does).
fn consume(cols: &BlockColumns, allocated: &mut u64, n: &mut u64) {
    *n += cols.tags.len() as u64;
    *allocated += cols.allocs.sizes().iter().sum::<u64>();
    *allocated -= cols.frees.len() as u64;
    let times = cols.timestamps().fold(0u64, u64::wrapping_add);
    let pids = cols
        .pid_runs()
        .map(|(p, k)| p.0 as u64 * k as u64)
        .sum::<u64>();
    black_box((times, pids, &cols.names, &cols.cbs, &cols.others));
}

/// The same columnar scan through `scan_columns`: blocks decoded ahead on
/// every core, consumed in order.
fn parallel_columns_scan(reader: &TraceReader) -> (u64, u64) {
    let (mut allocated, mut n) = (0u64, 0u64);
    reader
        .scan_columns(|_, cols| {
            consume(cols, &mut allocated, &mut n);
            Ok(())
        })
        .expect("scan");
    black_box((allocated, n))
}

/// Prints the parallel scan's figure (wall, and per CPU-second of all threads).
fn print_parallel_scan(reader: &TraceReader, n: f64) {
    let workers = ttalloc_trace::scan_workers(reader.blocks().len());
    let t = best_of_process(10, || parallel_columns_scan(reader));
    println!(
        "scan scan_columns ({workers} decoding threads) events: {}",
        t.rate(n)
    );
}

/// Best wall time and best CPU time over `runs` runs.
struct Timing {
    wall: Duration,
    cpu: Duration,
}

impl Timing {
    fn rate(&self, n: f64) -> String {
        format!(
            "{:.1} M/s wall, {:.1} M/s per CPU-second",
            n / self.wall.as_secs_f64() / 1e6,
            n / self.cpu.as_secs_f64() / 1e6
        )
    }
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Timing, T) {
    let mut best = Timing {
        wall: Duration::MAX,
        cpu: Duration::MAX,
    };
    let mut last = None;
    for _ in 0..runs {
        let (t, c) = (Instant::now(), thread_cpu());
        let r = f();
        best.wall = best.wall.min(t.elapsed());
        best.cpu = best.cpu.min(thread_cpu() - c);
        last = Some(r);
    }
    (best, last.expect("runs > 0"))
}

/// The columnar scan: decode every block into `BlockColumns` and touch
/// every column (bytes allocated and freed, event count).
fn columns_scan(reader: &TraceReader) -> (u64, u64) {
    scan_with(reader, TraceReader::decode_columns)
}

/// [`columns_scan`] without the events' times (what a replay reads:
/// from format 2.6 on, their frames are not decompressed).
fn columns_scan_untimed(reader: &TraceReader) -> (u64, u64) {
    scan_with(reader, TraceReader::decode_columns_untimed)
}

fn scan_with(
    reader: &TraceReader,
    decode: impl Fn(&TraceReader, usize, &mut BlockColumns) -> ttalloc_trace::Result<()>,
) -> (u64, u64) {
    let mut cols = BlockColumns::default();
    let (mut allocated, mut n) = (0u64, 0u64);
    for i in 0..reader.blocks().len() {
        decode(reader, i, &mut cols).expect("decode");
        consume(&cols, &mut allocated, &mut n);
    }
    black_box((allocated, n))
}

/// What one decoded block holds once the whole trace went through it (its
/// arrays' capacity: a replay keeps two such buffers resident), per event
/// of the trace's largest block.
fn print_block_bytes(reader: &TraceReader) {
    let mut cols = BlockColumns::default();
    let mut most = 0usize;
    for i in 0..reader.blocks().len() {
        reader.decode_columns(i, &mut cols).expect("decode");
        most = most.max(cols.tags.len());
    }
    let held = cols.heap_bytes();
    println!(
        "decoded block holds {:.2} MiB ({:.1} B per event of a {most}-event block)",
        held as f64 / (1u64 << 20) as f64,
        held as f64 / most.max(1) as f64
    );
}

fn main() {
    if let Some(path) = std::env::args().nth(1).filter(|a| a.ends_with(".zst")) {
        // Scan an existing trace only (for profiling the reader).
        let reader = TraceReader::open(std::path::Path::new(&path)).expect("open");
        let n = reader.num_events() as f64;
        if std::env::var_os("TTALLOC_BENCH_COLUMNS_ONLY").is_some() {
            // `TTALLOC_BENCH_RUNS=N`: N scans and no parallel one (for
            // counting instructions under cachegrind).
            let runs = std::env::var("TTALLOC_BENCH_RUNS")
                .ok()
                .and_then(|r| r.parse().ok());
            if std::env::var_os("TTALLOC_BENCH_UNTIMED").is_some() {
                let (t, _) = best_of(runs.unwrap_or(30), || columns_scan_untimed(&reader));
                println!("scan decode_columns_untimed events: {}", t.rate(n));
                return;
            }
            let (t, _) = best_of(runs.unwrap_or(30), || columns_scan(&reader));
            println!("scan decode_columns events: {}", t.rate(n));
            if runs.is_none() {
                print_parallel_scan(&reader, n);
                print_block_bytes(&reader);
            }
            return;
        }
        let (t, _) = best_of(10, || {
            reader
                .for_each_event(|_, e| {
                    black_box(&e);
                })
                .expect("scan")
        });
        println!("scan for_each_event events: {}", t.rate(n));
        let (t, _) = best_of(10, || columns_scan(&reader));
        println!("scan decode_columns events: {}", t.rate(n));
        let (t, _) = best_of(10, || columns_scan_untimed(&reader));
        println!("scan decode_columns_untimed events: {}", t.rate(n));
        let (t, _) = best_of(10, || {
            for i in 0..reader.blocks().len() {
                black_box(reader.bench_unpack_block(i).expect("unpack"));
            }
        });
        println!("floor (zstd + checksum + rkyv only) events: {}", t.rate(n));
        print_block_bytes(&reader);
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args
        .first()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(2_000_000);
    let level: i32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let opts = SynthOptions {
        events: n,
        seed: 1,
        ..Default::default()
    };

    let t = Instant::now();
    let mut tables = InternTables::new();
    let mut synth = Synth::new(opts.clone(), &mut tables);
    let mut events: Vec<Event> = Vec::with_capacity(n as usize + 1000);
    while let Some(e) = synth.next_event() {
        events.push(e);
    }
    let n = events.len() as u64;
    println!(
        "workload: {n} synthetic events generated in {:.2?}",
        t.elapsed()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.zst");
    let wopts = WriterOptions {
        level,
        ..Default::default()
    };
    // `TTALLOC_BENCH_MINOR=3` writes format 2.3 (to compare a coding's
    // writer cost with the previous one's in one build).
    let minor: u16 = std::env::var("TTALLOC_BENCH_MINOR")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(ttalloc_trace::FORMAT_MINOR);
    let (write_time, raw_bytes) = best_of(3, || {
        let mut w = TraceWriter::create_with_version(
            &path,
            synth_header(&opts),
            wopts.clone(),
            ttalloc_trace::FORMAT_MAJOR,
            minor,
        )
        .expect("create");
        *w.interner_mut() = tables.clone();
        for e in &events {
            w.push(e).expect("push");
        }
        w.seal().expect("seal");
        let raw = w.raw_block_bytes();
        w.finish().expect("finish");
        raw
    });
    let size = std::fs::metadata(&path).expect("stat").len();
    let mem_bytes = n as f64 * std::mem::size_of::<Event>() as f64;
    println!(
        "bytes/event (zstd level {level}): {:.3} ({size} bytes, {n} events)",
        size as f64 / n as f64
    );
    println!("write events: {}", write_time.rate(n as f64));
    println!(
        "write MB of encoded columns ({:.2} B/event before zstd): {}",
        raw_bytes as f64 / n as f64,
        write_time.rate(raw_bytes as f64)
    );
    println!(
        "write MB of in-memory events ({} B each): {}",
        std::mem::size_of::<Event>(),
        write_time.rate(mem_bytes)
    );

    let reader = TraceReader::open(&path).expect("open");
    assert_eq!(reader.num_events(), n);
    let (t, count) = best_of(5, || {
        let mut count = 0u64;
        reader
            .for_each_event(|_, e| {
                black_box(&e);
                count += 1;
            })
            .expect("scan");
        count
    });
    assert_eq!(count, n);
    println!("scan for_each_event events: {}", t.rate(n as f64));
    let (t, (_, c)) = best_of(5, || columns_scan(&reader));
    assert_eq!(c, n);
    println!("scan decode_columns events: {}", t.rate(n as f64));
    let (t, (_, c)) = best_of(5, || columns_scan_untimed(&reader));
    assert_eq!(c, n);
    println!("scan decode_columns_untimed events: {}", t.rate(n as f64));
    print_parallel_scan(&reader, n as f64);
    let (t, _) = best_of(3, || {
        let mut buf = Vec::new();
        for i in 0..reader.blocks().len() {
            reader.decode_block(i, &mut buf).expect("decode");
            black_box(&buf);
        }
    });
    println!(
        "scan decode_block into Vec<Event> events: {}",
        t.rate(n as f64)
    );
    let (t, c) = best_of(3, || {
        let mut c = 0usize;
        for e in reader.events() {
            black_box(e.expect("event"));
            c += 1;
        }
        c
    });
    assert_eq!(c as u64, n);
    println!("scan events() iterator events: {}", t.rate(n as f64));
}
