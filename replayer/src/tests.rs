//! Replays of hand-built event streams: one test per finding kind, cycles,
//! accumulation, bisect and delta debugging. Expected numbers are worked out
//! in the comments from the events each test builds.

use crate::findings::{LeakClass, ObjectKind};
use crate::options::{CycleMode, ReplayOptions};
use crate::report::Report;
use crate::{replay_events, FailKind};
use ttalloc_model::*;

/// Builds an event stream with call sites.
struct Trace {
    events: Vec<Event>,
    it: InternTables,
}

const PID: Pid = Pid(100);

impl Trace {
    fn new() -> Self {
        Trace {
            events: Vec::new(),
            it: InternTables::new(),
        }
    }
    /// Ordinal the next event will get.
    fn next(&self) -> u64 {
        self.events.len() as u64
    }
    fn push(&mut self, kind: EventKind) -> u64 {
        let ord = self.next();
        self.events.push(Event {
            ts: 1_000 + ord,
            pid: PID,
            kind,
        });
        ord
    }
    fn site(&mut self, frames: &[(&str, &str, u32)]) -> SiteId {
        self.it.intern_stack_str(frames)
    }
    fn open(&mut self, d: u32) -> u64 {
        self.open_with(d, DeviceConfig::default())
    }
    fn open_with(&mut self, d: u32, config: DeviceConfig) -> u64 {
        self.push(EventKind::DeviceOpen {
            device: DeviceId(d),
            arch: Arch::WormholeB0,
            config: Box::new(config),
        })
    }
    fn close(&mut self, d: u32) -> u64 {
        self.push(EventKind::DeviceClose {
            device: DeviceId(d),
        })
    }
    fn alloc(&mut self, d: u32, b: u64, bt: BufferType, size: u64, site: SiteId) -> u64 {
        self.alloc_full(d, b, bt, size, None, site)
    }
    fn alloc_full(
        &mut self,
        d: u32,
        b: u64,
        bt: BufferType,
        size: u64,
        address: Option<u64>,
        site: SiteId,
    ) -> u64 {
        self.push(EventKind::BufferAlloc {
            device: DeviceId(d),
            buffer: BufferId(b),
            buffer_type: bt,
            address,
            size,
            page_size: Some(2048),
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site,
        })
    }
    fn free(&mut self, d: u32, b: u64) -> u64 {
        self.push(EventKind::BufferFree {
            device: DeviceId(d),
            buffer: BufferId(b),
            site: SiteId::UNKNOWN,
        })
    }
    fn marker(&mut self, label: &str) -> u64 {
        let label = self.it.intern_string(label);
        self.push(EventKind::Marker { label })
    }
    fn op(&mut self, name: &str) -> u64 {
        let name = self.it.intern_string(name);
        self.push(EventKind::OpBegin { name })
    }
    fn op_end(&mut self) -> u64 {
        self.push(EventKind::OpEnd)
    }
    fn replay(&self, opts: &ReplayOptions) -> Report {
        replay_events(self.events.clone(), self.it.clone(), opts).expect("replay")
    }
}

fn bisecting() -> ReplayOptions {
    ReplayOptions {
        bisect: true,
        ..ReplayOptions::default()
    }
}

/// A small L1 (one bank of 64 KiB above a 4 KiB reserved area) so that
/// out-of-memory and clashes are easy to provoke.
fn tiny_l1() -> DeviceConfig {
    DeviceConfig {
        l1_banks: Some(1),
        l1_bank_size: Some(65536),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(4096),
        l1_small_size: Some(0),
        worker_l1_size: Some(4096 + 65536),
        ..Default::default()
    }
}

#[test]
fn buffer_live_at_its_device_close_outlived_it() {
    let mut t = Trace::new();
    let s = t.site(&[
        ("mesh_device_initialize", "w.py", 25),
        ("<module>", "w.py", 40),
    ]);
    t.open(0);
    t.alloc(0, 1, BufferType::Dram, 65536, s);
    let leaked = t.alloc(0, 2, BufferType::Dram, 36864, s);
    t.free(0, 1);
    let close = t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.leaks.len(), 1);
    let l = &r.leaks[0];
    assert_eq!(
        (l.class, l.buffer, l.size, l.event, l.closed_at),
        (LeakClass::OutlivedDevice, 2, 36864, leaked, Some(close))
    );
    assert_eq!(l.buffer_type, "DRAM");
    assert_eq!(l.site.frames[0].function, "mesh_device_initialize");
    assert_eq!(l.site.frames[1].function, "<module>");
    // The model placed it: DRAM is bottom-up, so it sits right above buffer 1's 65536 B
    // (65536 B over 12 banks = 32 pages -> 3 pages of 2048 B per bank = 6144 B).
    assert!(l.address.is_some());
    assert!(r.fails(&[FailKind::Leak]) && r.fails(&[FailKind::Any]));
    assert!(!r.fails(&[
        FailKind::Oom,
        FailKind::UnknownFree,
        FailKind::DoubleFree,
        FailKind::Divergence
    ]));
}

#[test]
fn buffer_live_at_end_of_trace_outside_cycles_was_never_freed() {
    let mut t = Trace::new();
    let s = t.site(&[("load_weights", "w.py", 3)]);
    t.open(3);
    let ev = t.alloc(3, 7, BufferType::L1, 4096, s);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.leaks.len(), 1);
    assert_eq!(
        (r.leaks[0].class, r.leaks[0].device, r.leaks[0].event),
        (LeakClass::NeverFreed, 3, ev)
    );
    assert_eq!(r.leaks[0].cycle, None);
    assert_eq!(r.devices, vec![3]);
}

#[test]
fn allocation_alive_after_its_cycle_and_never_freed_is_left_behind() {
    let mut t = Trace::new();
    let s = t.site(&[("step", "w.py", 9)]);
    t.open(0);
    t.marker("run 1");
    t.alloc(0, 1, BufferType::Dram, 2048, s);
    t.free(0, 1);
    t.marker("run 2");
    let ev = t.alloc(0, 2, BufferType::Dram, 4096, s);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cycle_kind, "marker");
    assert_eq!(r.cycles.len(), 2);
    assert_eq!(r.leaks.len(), 1);
    assert_eq!(
        (r.leaks[0].class, r.leaks[0].cycle, r.leaks[0].event),
        (LeakClass::LeftBehind, Some(2), ev)
    );
    assert_eq!(r.cycles[0].left_behind_bytes, 0);
    assert_eq!(r.cycles[1].left_behind_bytes, 4096);
}

#[test]
fn long_cycles_find_what_they_left_behind_among_many_allocations() {
    // 20,000 buffers allocated and freed in each of two runs (the engine
    // compacts its list of the cycle's allocations as it goes); in run 2,
    // buffers 25,000 and 39,999 (2048 B each) and a re-allocation of
    // 30,000 (the first copy freed, the second 4096 B kept) stay live.
    let mut t = Trace::new();
    let s = t.site(&[("step", "w.py", 9)]);
    let keep = t.site(&[("keep", "w.py", 12)]);
    t.open(0);
    t.marker("run 1");
    for id in 1..=20_000 {
        t.alloc(0, id, BufferType::Dram, 2048, s);
        t.free(0, id);
    }
    t.marker("run 2");
    let mut first = 0;
    for id in 20_001..=40_000 {
        let kept = id == 25_000 || id == 39_999;
        let ev = t.alloc(0, id, BufferType::Dram, 2048, if kept { keep } else { s });
        if id == 25_000 {
            first = ev;
        }
        if !kept {
            t.free(0, id);
        }
    }
    t.alloc(0, 30_000, BufferType::Dram, 4096, keep);
    t.marker("run 3");
    let r = t.replay(&ReplayOptions {
        bisect: true,
        ..ReplayOptions::default()
    });
    assert_eq!(r.cycles.len(), 3);
    assert_eq!(
        (
            r.cycles[0].left_behind_buffers,
            r.cycles[0].left_behind_bytes
        ),
        (0, 0)
    );
    assert_eq!(
        (
            r.cycles[1].left_behind_buffers,
            r.cycles[1].left_behind_bytes
        ),
        (3, 2048 + 2048 + 4096)
    );
    let b = r.bisect.as_ref().unwrap();
    assert_eq!((b.first_cycle, b.first_event), (Some(2), Some(first)));
}

#[test]
fn unknown_and_double_frees_are_told_apart() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    t.alloc(0, 1, BufferType::Dram, 2048, s);
    t.free(0, 1);
    let double = t.free(0, 1);
    let unknown = t.free(0, 99);
    t.free(0, 1);
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!((r.double_frees, r.unknown_frees), (2, 1));
    assert_eq!(r.first_double_free.as_ref().unwrap().event, double);
    assert_eq!(r.first_unknown_free.as_ref().unwrap().event, unknown);
    assert!(r.leaks.is_empty());
    assert!(r.fails(&[FailKind::DoubleFree]) && r.fails(&[FailKind::UnknownFree]));
    assert!(!r.fails(&[FailKind::Leak]));
}

#[test]
fn reallocated_id_after_free_is_not_a_double_free_later() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    t.alloc(0, 5, BufferType::Dram, 2048, s);
    t.free(0, 5);
    t.alloc(0, 5, BufferType::Dram, 2048, s);
    t.free(0, 5);
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!((r.double_frees, r.unknown_frees), (0, 0));
    assert!(!r.has_findings());
}

#[test]
fn out_of_memory_by_fragmentation_has_tt_metals_text_and_figures() {
    // The fragmentation_oom scenario: 64 L1 banks of 1364928 B. Ten 8 MiB
    // buffers take 131072 B per bank each, top-down: buffer i occupies
    // [1364928 - 131072(i+1), 1364928 - 131072 i). Freeing 1,3,5,7,9 leaves
    // four 131072 B holes plus buffer 9's hole merged with the bottom
    // 1364928 - 10*131072 = 54208 B: 185280 B. Free = 4*131072 + 185280 =
    // 709568 B, allocated 5*131072 = 655360 B. 12 MiB = 6144 pages = 96 per
    // bank = 196608 B per bank: no block is large enough.
    let mut t = Trace::new();
    let fill = t.site(&[("fill_kv_cache", "w.py", 15)]);
    let grow = t.site(&[("grow", "w.py", 26)]);
    t.open_with(
        0,
        DeviceConfig {
            l1_banks: Some(64),
            l1_bank_size: Some(1364928),
            l1_alignment: Some(16),
            l1_unreserved_base: Some(134208),
            l1_small_size: Some(0),
            worker_l1_size: Some(1499136),
            ..Default::default()
        },
    );
    t.marker("fill");
    for i in 0..10 {
        t.alloc(0, i, BufferType::L1, 8 << 20, fill);
    }
    t.marker("evict");
    for i in (1..10).step_by(2) {
        t.free(0, i);
    }
    t.marker("grow");
    let bad = t.alloc(0, 100, BufferType::L1, 12 << 20, grow);
    let r = t.replay(&bisecting());
    let oom = r.oom.as_ref().expect("an out-of-memory");
    assert_eq!(oom.event, bad);
    assert_eq!(
        oom.message,
        "Out of Memory: Not enough space to allocate 12582912 B L1 buffer across 64 banks, where each bank needs to store 196608 B, but bank size is 1364928 B (allocated: 655360 B, free: 709568 B, largest free block: 185280 B)"
    );
    assert_eq!(
        (oom.free_bytes, oom.largest_free_block, oom.fragmentation),
        (Some(709568), Some(185280), true)
    );
    assert_eq!(oom.site.frames[0].function, "grow");
    // The failed allocation never existed: it is not a leak. The five kept
    // buffers are (allocated in cycle "fill", never freed).
    assert_eq!(r.leaks.len(), 5);
    assert!(r
        .leaks
        .iter()
        .all(|l| l.class == LeakClass::LeftBehind && l.cycle == Some(1)));
    // Delta debugging: releasing the kv-cache buffers at the end of their
    // cycle ("fill") makes the out-of-memory disappear.
    let m = r
        .bisect
        .as_ref()
        .unwrap()
        .minimal_sites
        .as_ref()
        .expect("ddmin ran");
    assert_eq!(m.failure, "oom");
    assert_eq!(m.sites.len(), 1);
    assert_eq!(m.sites[0].frames[0].function, "fill_kv_cache");
    assert!(r.fails(&[FailKind::Oom]));
}

#[test]
fn circular_buffers_clashing_with_l1_buffers_are_reported() {
    let mut t = Trace::new();
    let s = t.site(&[("matmul", "w.py", 3)]);
    t.open_with(0, tiny_l1());
    // Top-down: a 61440 B buffer in a 65536 B bank starts at 4096 + 4096 = 8192.
    t.alloc(0, 1, BufferType::L1, 61440, s);
    // CBs from 4096 up: 2048 B end at 6144 (fine), then 4096 more end at 10240 > 8192.
    t.push(EventKind::CbAlloc {
        device: DeviceId(0),
        address: 4096,
        size: 2048,
        cores: Some(1),
        globally_allocated: false,
        site: s,
    });
    let clash = t.push(EventKind::CbAlloc {
        device: DeviceId(0),
        address: 6144,
        size: 4096,
        cores: Some(1),
        globally_allocated: false,
        site: s,
    });
    t.push(EventKind::CbFreeAll {
        device: DeviceId(0),
    });
    t.free(0, 1);
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cb_clashes, 1);
    let c = r.first_cb_clash.as_ref().unwrap();
    assert_eq!(c.event, clash);
    assert!(c.message.contains("clash with L1 buffers"), "{}", c.message);
    assert!(r.fails(&[FailKind::Any]));
    assert!(!r.fails(&[FailKind::Leak, FailKind::Oom]));
}

#[test]
fn recorded_addresses_are_checked_and_the_first_divergence_reported() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open_with(0, tiny_l1());
    // Top-down in [4096, 69632): a 2048 B buffer (one page) lands at 69632 - 2048 = 67584.
    t.alloc_full(0, 1, BufferType::L1, 2048, Some(67584), s);
    // The next one would land at 65536; the recording says 60000.
    let bad = t.alloc_full(0, 2, BufferType::L1, 2048, Some(60000), s);
    // Re-synced on the recording (buffer 2 at [60000, 62048)), the model agrees
    // again: the highest free block is [62048, 67584), so 67584 - 2048 = 65536.
    t.alloc_full(0, 3, BufferType::L1, 2048, Some(65536), s);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.divergences, 1);
    let d = r.first_divergence.as_ref().unwrap();
    assert_eq!(
        (d.event, d.buffer, d.recorded, d.model),
        (bad, 2, 60000, Some(65536))
    );
    assert!(r.fails(&[FailKind::Divergence]));
}

/// The seed: three runs on a 2x4 mesh, each leaving 36864 B DRAM on every device.
fn mesh_runs(leak_from_run: u32) -> (Trace, Vec<u64>) {
    let mut t = Trace::new();
    let init = t.site(&[
        ("mesh_device_initialize", "w.py", 25),
        ("open_mesh", "w.py", 18),
        ("<module>", "w.py", 60),
    ]);
    let tensor = t.site(&[("upload", "w.py", 33), ("<module>", "w.py", 61)]);
    let mut first_leaks = Vec::new();
    let mut id = 0;
    for run in 1..=3 {
        t.marker(&format!("run {run}"));
        for d in 0..8 {
            t.open(d);
        }
        for d in 0..8 {
            id += 1;
            let ev = t.alloc(d, id, BufferType::Dram, 36864, init);
            if d == 0 {
                first_leaks.push(ev);
            }
            if run < leak_from_run {
                t.free(d, id);
            }
        }
        t.op("ttnn.from_torch");
        for d in 0..8 {
            t.alloc(d, 1000 + id + d as u64, BufferType::Dram, 16384, tensor);
        }
        t.op_end();
        for d in 0..8 {
            t.free(d, 1000 + id + d as u64);
        }
        for d in 0..8 {
            t.close(d);
        }
    }
    t.marker("end");
    (t, first_leaks)
}

#[test]
fn device_spans_are_the_default_cycles_and_growth_reads_like_the_seed() {
    let (t, _) = mesh_runs(1);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cycle_kind, "device");
    assert_eq!(r.cycles.len(), 3);
    // Each cycle leaves 8 x 36864 B; tracked live grows by that much per cycle.
    for (i, c) in r.cycles.iter().enumerate() {
        assert_eq!(c.left_behind_bytes, 8 * 36864);
        assert_eq!(c.live_after.dram, (i as u64 + 1) * 8 * 36864);
    }
    assert_eq!(r.growth_per_cycle.dram, 8 * 36864);
    assert_eq!(r.growth_per_cycle.l1, 0);
    assert_eq!(r.growth.len(), 8);
    assert!(r
        .growth
        .iter()
        .all(|g| g.bytes_per_cycle == 36864 && g.since_cycle == 2));
    let human = r.render_human();
    assert!(
        human.contains("DRAM +36,864 B per cycle on each of devices 0–7, since cycle 2"),
        "{human}"
    );
    assert_eq!(r.leaks.len(), 24);
    assert_eq!(r.leaks_total, 24);
    assert!(r.leaks.iter().all(|l| l.class == LeakClass::OutlivedDevice));
    assert!(r.fails(&[FailKind::Growth]));
    // Peak resident on device 0: each close really releases the leftover on
    // the device (it stays only in the tracked view), so a run holds at most
    // 36864 + the 16384 B tensor = 53248 B.
    assert_eq!(r.peak["0"].dram, 36864 + 16384);
}

#[test]
fn warmup_excludes_the_first_cycles_from_growth() {
    let (t, _) = mesh_runs(1);
    let r = t.replay(&ReplayOptions {
        warmup: 3,
        ..ReplayOptions::default()
    });
    assert_eq!(r.growth_per_cycle.total(), 0);
    let r = t.replay(&ReplayOptions {
        warmup: 0,
        ..ReplayOptions::default()
    });
    assert_eq!(r.growth_per_cycle.dram, 8 * 36864);
    assert!(r.growth.iter().all(|g| g.since_cycle == 1));
}

#[test]
fn bisect_finds_the_first_leaking_cycle_and_allocation() {
    // Runs 1 and 2 free everything; run 3 leaks.
    let (t, first_leaks) = mesh_runs(3);
    let r = t.replay(&bisecting());
    let b = r.bisect.as_ref().unwrap();
    assert_eq!(b.first_cycle, Some(3));
    assert_eq!(b.first_event, Some(first_leaks[2]));
    assert_eq!(b.first_device, Some(0));
    assert_eq!(
        b.site.as_ref().unwrap().frames[0].function,
        "mesh_device_initialize"
    );
    // Cycles 2 and 3 count (warm-up 1): (0 + 8*36864) / 2.
    assert_eq!(b.bytes_per_cycle, 4 * 36864);
    assert!(b.minimal_sites.is_none(), "a leak explains the growth");
}

#[test]
fn sites_are_ranked_with_inclusive_totals_over_the_call_tree() {
    // Two leaking leaves under one caller, and an unrelated smaller leak.
    let mut t = Trace::new();
    let a = t.site(&[
        ("alloc_a", "w.py", 10),
        ("shared", "w.py", 5),
        ("<module>", "w.py", 1),
    ]);
    let b = t.site(&[
        ("alloc_b", "w.py", 20),
        ("shared", "w.py", 6),
        ("<module>", "w.py", 1),
    ]);
    let b2 = t.site(&[
        ("alloc_b", "w.py", 20),
        ("shared", "w.py", 5),
        ("<module>", "w.py", 1),
    ]);
    let c = t.site(&[("other", "w.py", 30), ("<module>", "w.py", 2)]);
    t.open(0);
    let mut id = 0;
    for run in 1..=3 {
        t.marker(&format!("run {run}"));
        for (site, size) in [(a, 3000u64), (b2, 2000), (b, 500), (c, 100)] {
            id += 1;
            t.alloc(0, id, BufferType::Dram, size, site);
        }
    }
    let r = t.replay(&bisecting());
    let sites = &r.bisect.as_ref().unwrap().sites;
    let names = |i: usize| -> Vec<(String, u32)> {
        sites[i]
            .site
            .frames
            .iter()
            .map(|f| (f.function.clone(), f.line))
            .collect()
    };
    // <module>:1 holds 5500 per cycle; shared:5 holds a + b2 = 5000; then a 3000,
    // b2 2000, shared:6 500 / alloc_b under it 500, <module>:2 100 / other 100.
    assert_eq!(sites[0].bytes_per_cycle, 5500);
    assert_eq!(names(0), vec![("<module>".to_string(), 1)]);
    assert_eq!(sites[1].bytes_per_cycle, 5000);
    assert_eq!(names(1)[0], ("shared".to_string(), 5));
    assert_eq!(sites[1].self_bytes_per_cycle, 0);
    assert_eq!(sites[2].bytes_per_cycle, 3000);
    assert_eq!(names(2)[0], ("alloc_a".to_string(), 10));
    assert_eq!(sites[2].self_bytes_per_cycle, 3000);
    assert_eq!(sites[3].bytes_per_cycle, 2000);
    // Ties rank the deeper (more specific) frame first.
    assert_eq!(sites[4].bytes_per_cycle, 500);
    assert_eq!(names(4)[0], ("alloc_b".to_string(), 20));
    assert_eq!(names(5)[0], ("shared".to_string(), 6));
    // Nodes: <module>:1, <module>:2, shared:5, shared:6, alloc_a, alloc_b (x2), other.
    assert_eq!(sites.len(), 8);
}

#[test]
fn growth_released_only_at_close_is_explained_by_ddmin() {
    // A program cache: each run loads a program and a captured DRAM buffer
    // that are freed only after the last run; a per-op L1 output is freed.
    let mut t = Trace::new();
    let compile = t.site(&[
        ("program_cache_compile", "w.py", 12),
        ("matmul", "w.py", 20),
    ]);
    let load = t.site(&[("load_program", "w.py", 11), ("matmul", "w.py", 20)]);
    let out = t.site(&[("matmul", "w.py", 21)]);
    t.open(0);
    let mut id = 0;
    for run in 1..=3u64 {
        t.marker(&format!("run {run}"));
        for k in 0..2u64 {
            t.push(EventKind::ProgramLoad {
                device: DeviceId(0),
                program: ProgramId(run * 10 + k),
                binary_size: 20480,
                site: load,
            });
            id += 1;
            t.alloc(0, id, BufferType::Dram, 65536, compile);
            t.alloc(0, 100 + id, BufferType::L1, 32768, out);
            t.free(0, 100 + id);
        }
    }
    t.marker("close");
    for b in 1..=id {
        t.free(0, b);
    }
    for run in 1..=3u64 {
        for k in 0..2u64 {
            t.push(EventKind::ProgramUnload {
                device: DeviceId(0),
                program: ProgramId(run * 10 + k),
            });
        }
    }
    t.close(0);
    let r = t.replay(&bisecting());
    assert!(r.leaks.is_empty());
    // Markers "run #" repeat: 3 cycles, each ending before the next marker.
    assert_eq!(r.cycles.len(), 3);
    // Per run: 2 x 65536 B buffers + 2 x 20480 B binaries in DRAM.
    assert_eq!(r.growth_per_cycle.dram, 2 * 65536 + 2 * 20480);
    let m = r
        .bisect
        .as_ref()
        .unwrap()
        .minimal_sites
        .as_ref()
        .expect("ddmin ran");
    assert_eq!(m.failure, "growth");
    // Releasing the buffers alone still leaves the binaries growing: both sites.
    let names: Vec<&str> = m
        .sites
        .iter()
        .map(|s| s.frames[0].function.as_str())
        .collect();
    assert_eq!(names, vec!["program_cache_compile", "load_program"]);
    // Bisect itself hunts buffers: the binaries are not "left behind".
    let b = r.bisect.as_ref().unwrap();
    assert_eq!(b.bytes_per_cycle, 2 * 65536);
    assert_eq!(
        b.site.as_ref().unwrap().frames[0].function,
        "program_cache_compile"
    );
}

#[test]
fn marker_regex_and_op_cycles() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    let m1 = t.marker("iteration 1");
    t.op("ttnn.matmul");
    t.alloc(0, 1, BufferType::Dram, 2048, s);
    t.op("ttnn.inner");
    t.op_end();
    let e1 = t.op_end();
    let n = t.marker("note");
    let m2 = t.marker("iteration 2");
    let o2 = t.op("ttnn.matmul");
    let e2 = t.op_end();
    t.op("ttnn.add");
    let last = t.op_end();
    let mode = |s: &str| ReplayOptions {
        cycles: s.parse::<CycleMode>().unwrap(),
        ..ReplayOptions::default()
    };
    let r = t.replay(&mode("marker=^iteration"));
    let spans: Vec<(u64, u64)> = r
        .cycles
        .iter()
        .map(|c| (c.start_event, c.end_event))
        .collect();
    assert_eq!(spans, vec![(m1, n - 1), (m2, last)]);
    let r = t.replay(&mode("op=ttnn.matmul"));
    let spans: Vec<(u64, u64)> = r
        .cycles
        .iter()
        .map(|c| (c.start_event, c.end_event))
        .collect();
    assert_eq!(spans, vec![(m1 + 1, e1), (o2, e2)]);
    assert_eq!(r.cycle_kind, "op=ttnn.matmul");
    let r = t.replay(&mode("device"));
    assert_eq!(r.cycles.len(), 1, "one device span, open until the end");
    // auto: one device span; markers "iteration #" repeat, so they delimit
    // cycles, each ending before the next marker of any label.
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cycle_kind, "marker");
    let spans: Vec<(u64, u64)> = r
        .cycles
        .iter()
        .map(|c| (c.start_event, c.end_event))
        .collect();
    assert_eq!(spans, vec![(m1, n - 1), (m2, last)]);
}

#[test]
fn auto_falls_back_to_the_most_repeated_top_level_op() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    let mut id = 0;
    for _ in 0..4 {
        t.op("ttnn.linear");
        id += 1;
        t.alloc(0, id, BufferType::L1, 4096, s);
        t.op_end();
        t.op("ttnn.add");
        t.op_end();
    }
    t.op("ttnn.linear");
    t.op_end();
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cycle_kind, "op=ttnn.linear");
    assert_eq!(r.cycles.len(), 5);
    assert_eq!(r.cycles[0].left_behind_bytes, 4096);
    assert_eq!(r.cycles[4].left_behind_bytes, 0);
}

#[test]
fn traces_left_in_the_trace_region_are_leaks_of_kind_trace() {
    let mut t = Trace::new();
    t.open_with(
        0,
        DeviceConfig {
            trace_region_size: Some(1 << 20),
            ..Default::default()
        },
    );
    let prefill = t.site(&[("capture_prefill", "model.py", 7)]);
    let decode = t.site(&[("capture_decode", "model.py", 9)]);
    for run in 1..=3u32 {
        t.marker(&format!("run {run}"));
        t.push(EventKind::TraceCapture {
            device: DeviceId(0),
            trace_id: TraceId(2 * run - 1),
            size: 3145728,
            site: prefill,
        });
        t.push(EventKind::TraceCapture {
            device: DeviceId(0),
            trace_id: TraceId(2 * run),
            size: 1572864,
            site: decode,
        });
        t.push(EventKind::TraceRelease {
            device: DeviceId(0),
            trace_id: TraceId(2 * run),
        });
    }
    t.marker("end");
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert!(r.oom.is_none(), "{:?}", r.oom);
    assert_eq!(r.growth_per_cycle.trace, 3145728);
    assert_eq!(r.leaks.len(), 3);
    assert!(r
        .leaks
        .iter()
        .all(|l| l.object == ObjectKind::Trace && l.class == LeakClass::OutlivedDevice));
    assert_eq!(
        r.leaks.iter().map(|l| l.buffer).collect::<Vec<_>>(),
        vec![1, 3, 5]
    );
    // The trace region left behind names the capture that made it.
    assert!(r
        .leaks
        .iter()
        .all(|l| l.site.frames.len() == 1 && l.site.frames[0].function == "capture_prefill"));
    // Peak: 3 prefill + 1 decode.
    assert_eq!(r.peak["0"].trace, 3 * 3145728 + 1572864);
}

#[test]
fn set_overrides_change_the_outcome() {
    // 70000 B of L1 does not fit the 65536 B bank; with a bigger bank it does.
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open_with(
        0,
        DeviceConfig {
            l1_bank_size: None,
            ..tiny_l1()
        },
    );
    t.alloc(0, 1, BufferType::L1, 70000, s);
    t.free(0, 1);
    t.close(0);
    let mut small = ReplayOptions::default();
    small.set("l1_bank_size=65536").unwrap();
    assert!(t.replay(&small).oom.is_some());
    let mut big = ReplayOptions::default();
    big.set("l1_bank_size=131072").unwrap();
    big.set("worker_l1_size=135168").unwrap();
    assert!(t.replay(&big).oom.is_none());
}

#[test]
fn clean_stream_reports_nothing() {
    let (mut t, _) = mesh_runs(4);
    // mesh_runs(4) never leaks.
    t.marker("done");
    let r = t.replay(&bisecting());
    assert!(!r.has_findings(), "{}", r.render_human());
    assert!(!r.fails(&[FailKind::Any]));
    assert!(r.render_human().contains("no findings"));
    let b = r.bisect.as_ref().unwrap();
    assert_eq!((b.first_cycle, b.first_event), (None, None));
    assert!(b.sites.is_empty() && b.minimal_sites.is_none());
}

#[test]
fn json_has_the_contract_fields() {
    let (t, _) = mesh_runs(1);
    let r = t.replay(&bisecting());
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    for key in [
        "events",
        "devices",
        "leaks",
        "cycles",
        "growth_per_cycle",
        "bisect",
        "unknown_frees",
        "double_frees",
        "oom",
        "divergences",
        "peak",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let leak = &v["leaks"][0];
    for key in [
        "device",
        "buffer_type",
        "size",
        "buffer",
        "address",
        "class",
        "cycle",
        "event",
        "site",
    ] {
        assert!(leak.get(key).is_some(), "leak misses {key}");
    }
    assert_eq!(leak["class"], "outlived_device");
    assert!(leak["site"]["frames"][0].get("function").is_some());
    let cycle = &v["cycles"][0];
    for key in [
        "index",
        "start_event",
        "end_event",
        "live_after",
        "left_behind_bytes",
    ] {
        assert!(cycle.get(key).is_some(), "cycle misses {key}");
    }
    for t in ["DRAM", "L1", "L1_SMALL", "TRACE"] {
        assert!(cycle["live_after"].get(t).is_some());
        assert!(v["growth_per_cycle"].get(t).is_some());
        assert!(v["peak"]["0"].get(t).is_some());
    }
    let b = &v["bisect"];
    for key in [
        "first_cycle",
        "first_event",
        "site",
        "bytes_per_cycle",
        "sites",
    ] {
        assert!(b.get(key).is_some(), "bisect misses {key}");
    }
    assert!(b["sites"][0].get("site").is_some() && b["sites"][0].get("bytes_per_cycle").is_some());
    assert!(v["oom"].is_null());
    assert_eq!(v["events"], t.events.len() as u64);
}

#[test]
fn bisect_finds_the_synthetic_leak_site_and_cycle() {
    use ttalloc_corpora::synth::{generate, LeakSite, SynthOptions};
    let opts = SynthOptions {
        events: 60_000,
        cycles: 30,
        leak_site: Some(LeakSite {
            site: 17,
            from_cycle: 12,
        }),
        ..SynthOptions::default()
    };
    let (it, events, stats) = generate(&opts);
    let leak_site = SiteId(
        stats
            .leak_site_id
            .expect("the generator reports its leak site"),
    );
    let expected_frames = it.resolve(leak_site);
    let r = replay_events(events, it, &bisecting()).unwrap();
    assert_eq!(r.cycle_kind, "marker");
    assert_eq!(r.cycles.len(), 30);
    // The generator frees everything else at the end of each cycle.
    for c in &r.cycles {
        let generated = stats.leaked_bytes_per_cycle[c.index as usize - 1];
        assert_eq!(c.left_behind_bytes, generated, "cycle {}", c.index);
    }
    let b = r.bisect.as_ref().unwrap();
    let first = (12..=30)
        .find(|&k| stats.leaked_bytes_per_cycle[k - 1] > 0)
        .unwrap() as u32;
    assert_eq!(b.first_cycle, Some(first));
    assert_eq!(b.site.as_ref().unwrap().frames, expected_frames);
    // The most specific site with the most bytes is the leaking one.
    assert_eq!(b.sites[0].site.frames, expected_frames);
    // (Whether the generator's addresses agree with the model is the
    // generator's and the model's business; bisect must not depend on it.)
}

#[test]
fn a_wrong_guess_from_the_beginning_is_corrected_by_the_whole_trace() {
    // The first 300,000 events are repeated top-level ops (auto would pick
    // op cycles from them); markers come later, and markers win over ops.
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    while t.next() < 300_000 {
        t.op("ttnn.add");
        t.op_end();
    }
    let mut id = 0;
    for run in 1..=3 {
        t.marker(&format!("run {run}"));
        id += 1;
        t.alloc(0, id, BufferType::Dram, 2048 * run, s);
    }
    let auto = t.replay(&bisecting());
    let explicit = t.replay(&ReplayOptions {
        cycles: "marker=^run".parse().unwrap(),
        ..bisecting()
    });
    assert_eq!(auto.cycle_kind, "marker");
    assert_eq!(auto.cycles.len(), 3);
    assert_eq!(auto.cycles, explicit.cycles);
    assert_eq!(auto.leaks, explicit.leaks);
    assert_eq!(auto.bisect, explicit.bisect);
    assert_eq!(auto.bisect.as_ref().unwrap().first_cycle, Some(2));
}

#[test]
fn an_unusable_recorded_config_falls_back_to_the_preset_with_a_warning() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    // 102400 + 1364928 + 32768 > 1499136: no L1 layout satisfies this.
    t.open_with(
        0,
        DeviceConfig {
            l1_unreserved_base: Some(102400),
            l1_bank_size: Some(1364928),
            l1_small_size: Some(32768),
            worker_l1_size: Some(1499136),
            ..Default::default()
        },
    );
    t.alloc(0, 1, BufferType::L1, 4096, s);
    t.free(0, 1);
    t.close(0);
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("device 0") && r.warnings[0].contains("derived"));
    assert!(!r.has_findings());
    // A bad --set is still an error: the user asked for it.
    let mut bad = ReplayOptions::default();
    bad.set("l1_small_size=2000000").unwrap();
    assert!(replay_events(t.events.clone(), t.it.clone(), &bad).is_err());
}

#[test]
fn growth_must_be_steady_and_is_measured_from_where_it_starts() {
    // Ten runs on an open device. Runs 2 and 3 fill a cache (kept, 4096 B
    // each); from run 8 on every run leaves 8192 B behind.
    let mut t = Trace::new();
    let cache = t.site(&[("cache_fill", "w.py", 5)]);
    let leak = t.site(&[("leaky", "w.py", 9)]);
    let tmp = t.site(&[("work", "w.py", 7)]);
    t.open(0);
    let mut id = 0;
    for run in 1..=10 {
        t.marker(&format!("run {run}"));
        id += 1;
        t.alloc(0, id, BufferType::Dram, 2048, tmp);
        t.free(0, id);
        if run == 2 || run == 3 {
            id += 1;
            t.alloc(0, id, BufferType::Dram, 4096, cache);
        }
        if run >= 8 {
            id += 1;
            t.alloc(0, id, BufferType::L1, 8192, leak);
        }
    }
    let r = t.replay(&ReplayOptions::default());
    // DRAM grew in runs 2 and 3 only (2 of the 9 cycles after warm-up): not steady.
    assert_eq!(r.growth_per_cycle.dram, 0);
    // L1: since run 8, +8192 in each of runs 8, 9, 10.
    assert_eq!(r.growth_per_cycle.l1, 8192);
    assert_eq!(r.growth.len(), 1);
    assert_eq!(r.growth[0].since_cycle, 8);
    assert!(r
        .render_human()
        .contains("L1 +8,192 B per cycle on device 0, since cycle 8"));
    // Both are still leaks (never freed) and bisect points at the cache first.
    let b = t.replay(&bisecting()).bisect.unwrap();
    assert_eq!(b.first_cycle, Some(2));
    assert_eq!(b.site.unwrap().frames[0].function, "cache_fill");
}

mod arbitrary_streams {
    //! Any event sequence — frees of unknown ids, closes of unopened devices,
    //! absurd sizes, bad configs — replays without a panic, and the books
    //! balance: a stream that frees everything it allocates and closes its
    //! devices reports no leak.
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Open(u32, u8),
        Close(u32),
        Alloc(u32, u64, u8, u64, Option<u64>, u8, Option<u32>),
        Free(u32, u64),
        Cb(u32, u64, u64),
        CbFreeAll(u32),
        Load(u32, u64, u64),
        Unload(u32, u64),
        Capture(u32, u32, u64),
        Release(u32, u32),
        Marker(u8),
        OpBegin(u8),
        OpEnd,
    }

    fn size() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 1u64..100_000, Just(u64::MAX), Just(1u64 << 40)]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u32..3, 0u8..4).prop_map(|(d, c)| Step::Open(d, c)),
            (0u32..3).prop_map(Step::Close),
            (
                0u32..3,
                0u64..20,
                0u8..5,
                size(),
                proptest::option::of(0u64..2_000_000),
                0u8..4,
                proptest::option::of(0u32..70)
            )
                .prop_map(|(d, b, t, s, a, l, c)| Step::Alloc(d, b, t, s, a, l, c)),
            (0u32..3, 0u64..20).prop_map(|(d, b)| Step::Free(d, b)),
            (0u32..3, 0u64..2_000_000, size()).prop_map(|(d, a, s)| Step::Cb(d, a, s)),
            (0u32..3).prop_map(Step::CbFreeAll),
            (0u32..3, 0u64..5, size()).prop_map(|(d, p, s)| Step::Load(d, p, s)),
            (0u32..3, 0u64..5).prop_map(|(d, p)| Step::Unload(d, p)),
            (0u32..3, 0u32..5, size()).prop_map(|(d, t, s)| Step::Capture(d, t, s)),
            (0u32..3, 0u32..5).prop_map(|(d, t)| Step::Release(d, t)),
            (0u8..3).prop_map(Step::Marker),
            (0u8..3).prop_map(Step::OpBegin),
            Just(Step::OpEnd),
        ]
    }

    /// `config` of a device with room in every region.
    const ROOMY: u8 = 4;

    fn config(c: u8) -> DeviceConfig {
        match c {
            0 => DeviceConfig::default(),
            ROOMY => DeviceConfig {
                l1_small_size: Some(256 << 10),
                trace_region_size: Some(64 << 20),
                ..Default::default()
            },
            1 => tiny_l1(),
            // Impossible: more L1 than the core has.
            2 => DeviceConfig {
                l1_bank_size: Some(1 << 30),
                worker_l1_size: Some(1 << 20),
                ..Default::default()
            },
            _ => DeviceConfig {
                trace_region_size: Some(0),
                l1_small_size: Some(65536),
                ..Default::default()
            },
        }
    }

    fn build(ops: &[Step]) -> Trace {
        let mut t = Trace::new();
        let s = t.site(&[("f", "w.py", 1)]);
        for o in ops {
            match *o {
                Step::Open(d, c) => {
                    t.open_with(d, config(c));
                }
                Step::Close(d) => {
                    t.close(d);
                }
                Step::Alloc(d, b, bt, size, address, layout, num_cores) => {
                    t.push(EventKind::BufferAlloc {
                        device: DeviceId(d),
                        buffer: BufferId(b),
                        buffer_type: BufferType::from_u8(bt).unwrap(),
                        address,
                        size,
                        page_size: if size % 3 == 0 { None } else { Some(2048) },
                        layout: Layout::from_u8(layout).unwrap(),
                        num_cores,
                        per_bank_size: None,
                        label: StringId::EMPTY,
                        site: s,
                    });
                }
                Step::Free(d, b) => {
                    t.free(d, b);
                }
                Step::Cb(d, address, size) => {
                    t.push(EventKind::CbAlloc {
                        device: DeviceId(d),
                        address,
                        size,
                        cores: Some(8),
                        globally_allocated: size % 2 == 0,
                        site: s,
                    });
                }
                Step::CbFreeAll(d) => {
                    t.push(EventKind::CbFreeAll {
                        device: DeviceId(d),
                    });
                }
                Step::Load(d, p, size) => {
                    t.push(EventKind::ProgramLoad {
                        device: DeviceId(d),
                        program: ProgramId(p),
                        binary_size: size,
                        site: s,
                    });
                }
                Step::Unload(d, p) => {
                    t.push(EventKind::ProgramUnload {
                        device: DeviceId(d),
                        program: ProgramId(p),
                    });
                }
                Step::Capture(d, id, size) => {
                    t.push(EventKind::TraceCapture {
                        device: DeviceId(d),
                        trace_id: TraceId(id),
                        size,
                        site: SiteId::UNKNOWN,
                    });
                }
                Step::Release(d, id) => {
                    t.push(EventKind::TraceRelease {
                        device: DeviceId(d),
                        trace_id: TraceId(id),
                    });
                }
                Step::Marker(m) => {
                    t.marker(&format!("run {m}"));
                }
                Step::OpBegin(n) => {
                    t.op(&format!("ttnn.op{n}"));
                }
                Step::OpEnd => {
                    t.op_end();
                }
            }
        }
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn never_panics(ops in proptest::collection::vec(step(), 0..120), bisect in any::<bool>()) {
            let t = build(&ops);
            let opts = ReplayOptions { bisect, ..ReplayOptions::default() };
            // Bad configs may be refused (an error), never a panic.
            if let Ok(r) = replay_events(t.events.clone(), t.it.clone(), &opts) {
                prop_assert_eq!(r.events, t.events.len() as u64);
                let _ = r.render_human();
                let _ = r.to_json();
            }
        }

        /// Every allocation fits — each buffer type's sizes are bounded so
        /// that 60 of them fit on one device, L1_SMALL ones are sharded as
        /// tt-metal requires, and the frees all come last — so the books
        /// must balance exactly: nothing refused, no OOM, no leak.
        #[test]
        fn freeing_everything_leaves_nothing(allocs in proptest::collection::vec((0u32..3, 0usize..4, 0u64..1_000_000), 1..60)) {
            // (buffer type code, largest size): DRAM over 12 x 1 GiB banks;
            // L1 over 64 banks of 1499136 - 134208 - 262144 B; L1_SMALL on
            // 8 cores of 256 KiB; TRACE over 12 x 64 MiB trace regions.
            const TYPES: [(u8, u64); 4] = [(0, 5_000_000), (1, 800_000), (3, 30_000), (4, 4_000_000)];
            let mut ops: Vec<Step> = (0..3).map(|d| Step::Open(d, ROOMY)).collect();
            let mut used = std::collections::BTreeSet::new();
            for (i, &(d, t, fraction)) in allocs.iter().enumerate() {
                let (bt, largest) = TYPES[t];
                let size = 1 + fraction * largest / 1_000_000;
                let (layout, cores) = if bt == 3 { (1, Some(8)) } else { (0, None) };
                ops.push(Step::Alloc(d, i as u64, bt, size, None, layout, cores));
                used.insert((d, bt));
            }
            for (i, &(d, _, _)) in allocs.iter().enumerate().rev() {
                ops.push(Step::Free(d, i as u64));
            }
            ops.extend([Step::Close(0), Step::Close(1), Step::Close(2)]);
            let t = build(&ops);
            let r = t.replay(&ReplayOptions::default());
            prop_assert_eq!(r.ooms, 0, "{:?}", r.oom);
            prop_assert_eq!(r.rejected_allocs, 0, "{:?}", r.first_rejection);
            prop_assert!(r.leaks.is_empty(), "{:?}", r.leaks);
            prop_assert_eq!(r.unknown_frees + r.double_frees, 0);
            // Every buffer was placed: each (device, type) used has a peak.
            for (d, bt) in used {
                let p = &r.peak[&d.to_string()];
                let peak = [p.dram, p.l1, 0, p.l1_small, p.trace][bt as usize];
                prop_assert!(peak > 0, "device {} type {}: {:?}", d, bt, p);
            }
        }
    }
}

#[test]
fn an_id_allocated_again_replaces_the_first_buffer() {
    let mut t = Trace::new();
    let s = t.site(&[("f", "w.py", 1)]);
    t.open(0);
    t.open(1);
    t.alloc(0, 1, BufferType::Dram, 4096, s);
    // Same device, same id: the first one is gone; peaks never hold both.
    t.alloc(0, 1, BufferType::Dram, 8192, s);
    // Another device, same id: moves there.
    let last = t.alloc(1, 1, BufferType::L1, 2048, s);
    t.push(EventKind::ProgramLoad {
        device: DeviceId(0),
        program: ProgramId(7),
        binary_size: 1000,
        site: s,
    });
    t.push(EventKind::ProgramLoad {
        device: DeviceId(0),
        program: ProgramId(7),
        binary_size: 3000,
        site: s,
    });
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.duplicate_allocs, 3);
    // Device 0 held the 8192 B buffer (never with the 4096 B one), then only
    // binaries once the id moved to device 1.
    assert_eq!(r.peak["0"].dram, 8192);
    assert_eq!(r.leaks.len(), 2, "{:?}", r.leaks);
    let buf = r
        .leaks
        .iter()
        .find(|l| l.object == ObjectKind::Buffer)
        .unwrap();
    assert_eq!((buf.device, buf.size, buf.event), (1, 2048, last));
    let prog = r
        .leaks
        .iter()
        .find(|l| l.object == ObjectKind::Program)
        .unwrap();
    assert_eq!(prog.size, 3000);
    assert_eq!(r.rejected_allocs, 0, "{:?}", r.first_rejection);
}

#[test]
fn dram_without_page_size_spreads_and_its_oom_hint_names_a_dram_setting() {
    // Twenty 100 MiB DRAM buffers (2 GiB of a 12 GiB wormhole_b0) with no
    // page size fit: unknown page size spreads a buffer over all 12 banks.
    let mut t = Trace::new();
    t.open(0);
    for b in 0..20 {
        t.push(EventKind::BufferAlloc {
            device: DeviceId(0),
            buffer: BufferId(b),
            buffer_type: BufferType::Dram,
            address: None,
            size: 100 << 20,
            page_size: None,
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId::UNKNOWN,
        });
    }
    let r = t.replay(&ReplayOptions::default());
    assert!(r.oom.is_none(), "{}", r.render_human());
    // 11 GiB more cannot fit (12 x 1 GiB banks hold 2 GiB already): the hint
    // names DRAM's neighbour, the trace region, never l1_small_size.
    t.push(EventKind::BufferAlloc {
        device: DeviceId(0),
        buffer: BufferId(99),
        buffer_type: BufferType::Dram,
        address: None,
        size: 11 << 30,
        page_size: None,
        layout: Layout::Interleaved,
        num_cores: None,
        per_bank_size: None,
        label: StringId::EMPTY,
        site: SiteId::UNKNOWN,
    });
    let r = t.replay(&ReplayOptions::default());
    assert!(r.oom.is_some());
    let human = r.render_human();
    assert!(human.contains("trace_region_size"), "{human}");
    assert!(!human.contains("l1_small_size"), "{human}");
}

#[test]
fn a_warmup_longer_than_the_trace_says_growth_was_not_analysed() {
    // Three device-span cycles; a warm-up of 10 leaves none to analyse.
    let (t, _) = mesh_runs(1);
    let r = t.replay(&ReplayOptions {
        warmup: 10,
        ..ReplayOptions::default()
    });
    assert!(r.growth.is_empty());
    let human = r.render_human();
    assert!(
        human.contains("growth was not analysed: the warm-up of 10 cycles excludes all 3 cycles"),
        "{human}"
    );
}

#[test]
fn a_capped_leak_listing_does_not_present_its_count_as_the_total() {
    // 100,005 DRAM buffers never freed: the report lists the first 100,000
    // and must not say "100000 buffers never freed" as if that were all.
    let mut t = Trace::new();
    t.open(0);
    let n = crate::report::MAX_LEAKS_LISTED as u64 + 5;
    for b in 0..n {
        t.alloc(0, b, BufferType::Dram, 32, SiteId::UNKNOWN);
    }
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.leaks_total, n);
    let human = r.render_human();
    assert!(
        human.contains("100,000 buffers never freed (among the first 100,000 listed of 100,005 leaked objects)"),
        "{}",
        &human[..human.len().min(2000)]
    );
}
