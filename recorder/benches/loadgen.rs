//! Native load generator: client processes speaking the native protocol with
//! batching, into a real recorder session writing a real trace.
//!
//! `cargo bench -p ttalloc-recorder --bench loadgen [-- CLIENTS EVENTS_PER_CLIENT [TOTAL_RATE]]`
//!
//! Reports sustained events/s (first event sent to trace sealed) and the
//! recorder's own CPU (getrusage of this process, which hosts only the
//! recorder: the clients are child processes). Without a rate the clients
//! send as fast as the recorder takes events (its maximum); with
//! TOTAL_RATE (events/s over all clients, e.g. 5000000) they pace themselves,
//! which shows the recorder's CPU at that load.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};
use ttalloc_model::{
    BufferId, BufferType, DeviceId, Event, EventKind, Frame, FrameId, Layout, Pid, SiteId,
    StackNode, StringId,
};
use ttalloc_recorder::protocol::Encoder;
use ttalloc_recorder::{Session, SessionOptions};

const BATCH: usize = 16_000;
const SITES: u32 = 64;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--client") {
        client(
            &args[1],
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        );
        return;
    }
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(4);
    let per_client: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let rate: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let client_rate = rate / clients as f64;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("load.zst");
    let session = Session::start(SessionOptions::new(&out, vec!["loadgen".into()])).unwrap();
    let sock = session.socket_path().display().to_string();
    let me = std::env::current_exe().unwrap();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut children: Vec<_> = (0..clients)
        .map(|i| {
            Command::new(&me)
                .args([
                    "--client",
                    &sock,
                    &per_client.to_string(),
                    &i.to_string(),
                    &client_rate.to_string(),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let summary = session.finish(Duration::from_secs(5)).unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let total = clients as u64 * per_client;
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(summary.write_error.is_none());
    // Every event plus one ProcessStart and one ProcessExit per client.
    assert_eq!(
        summary.events_written,
        total + 2 * clients as u64,
        "events lost"
    );
    println!(
        "loadgen: {clients} clients x {per_client} events = {total} events ({}) in {wall:.2} s: {:.2} M events/s; \
         recorder CPU {cpu:.2} s = {:.2} cores ({:.0} ns/event); trace {:.1} MB ({:.2} B/event); recorder peak RSS {:.0} MB",
        if rate > 0.0 { format!("paced at {:.1} M/s", rate / 1e6) } else { "unpaced".to_owned() },
        total as f64 / wall / 1e6,
        cpu / wall,
        cpu * 1e9 / total as f64,
        size as f64 / 1e6,
        size as f64 / total as f64,
        peak_rss_mb()
    );
}

/// Peak resident set of this process (the recorder), MB.
fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

/// User + system CPU seconds of this process (the recorder), children excluded.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn client(sock: &str, events: u64, seed: u64, rate: f64) {
    let mut s = UnixStream::connect(sock).unwrap();
    let mut enc = Encoder::new();
    let pid = std::process::id();
    enc.hello(pid, 1, now(), "loadgen", "1", &["loadgen", "--client"]);
    // Python-looking call sites: 64 stacks of 10 frames sharing a prefix.
    let mut strings = vec![
        "<module>".to_owned(),
        "test.py".to_owned(),
        "ttnn/operations.py".to_owned(),
    ];
    for i in 0..SITES {
        strings.push(format!("op_{i}"));
    }
    let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
    enc.strings(&refs);
    let frames: Vec<Frame> = (0..SITES + 9)
        .map(|i| Frame {
            function: StringId(if i < 9 { 1 } else { 4 + (i - 9) }),
            file: StringId(if i < 9 { 2 } else { 3 }),
            line: 10 + i,
        })
        .collect();
    enc.frames(&frames);
    let mut nodes = Vec::new();
    for i in 0..9u32 {
        nodes.push(StackNode {
            parent: SiteId(i),
            frame: FrameId(i),
        });
    }
    for i in 0..SITES {
        nodes.push(StackNode {
            parent: SiteId(9),
            frame: FrameId(9 + i),
        });
    }
    enc.stacks(&nodes);
    s.write_all(&enc.buf).unwrap();

    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    let mut live: Vec<u64> = Vec::new();
    let mut next_id = 1u64;
    let mut sent = 0u64;
    let start = Instant::now();
    while sent < events {
        if rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        batch.clear();
        let ts = now();
        let n = BATCH.min((events - sent) as usize);
        for k in 0..n {
            let r = next();
            let kind = if live.len() > 256 || (!live.is_empty() && r % 3 == 0) {
                let idx = (r >> 8) as usize % live.len();
                let b = live.swap_remove(idx);
                EventKind::BufferFree {
                    device: DeviceId((b % 8) as u32),
                    buffer: BufferId(b),
                    site: SiteId(0),
                }
            } else {
                let b = next_id;
                next_id += 1;
                live.push(b);
                EventKind::BufferAlloc {
                    device: DeviceId((b % 8) as u32),
                    buffer: BufferId(b),
                    buffer_type: if r & 16 == 0 {
                        BufferType::Dram
                    } else {
                        BufferType::L1
                    },
                    address: None,
                    size: 2048 * (1 + (r >> 20) % 512),
                    page_size: Some(2048),
                    layout: Layout::Interleaved,
                    num_cores: None,
                    per_bank_size: None,
                    label: StringId::EMPTY,
                    site: SiteId(10 + ((r >> 40) as u32 % SITES)),
                }
            };
            batch.push(Event {
                ts: ts + k as u64,
                pid: Pid(pid),
                kind,
            });
        }
        let mut enc = Encoder::new();
        enc.events(&batch);
        s.write_all(&enc.buf).unwrap();
        sent += n as u64;
    }
    let mut enc = Encoder::new();
    enc.goodbye(Some(0));
    s.write_all(&enc.buf).unwrap();
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}
