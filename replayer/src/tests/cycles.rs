//! Cycles and growth: device spans, warm-up, bisect, call-site ranking,
//! delta debugging, marker and op cycles.

use super::*;

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
        t.op("model.linear");
        id += 1;
        t.alloc(0, id, BufferType::L1, 4096, s);
        t.op_end();
        t.op("model.add");
        t.op_end();
    }
    t.op("model.linear");
    t.op_end();
    let r = t.replay(&ReplayOptions::default());
    assert_eq!(r.cycle_kind, "op=model.linear");
    assert_eq!(r.cycles.len(), 5);
    assert_eq!(r.cycles[0].left_behind_bytes, 4096);
    assert_eq!(r.cycles[4].left_behind_bytes, 0);
}
