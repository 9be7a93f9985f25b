//! Traces, what-if overrides, the JSON contract, the synthetic trace,
//! the `auto` guess, config fallbacks and what the report says of growth.

use super::*;

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
    // The most specific site with the most bytes in the user's code ranks
    // first: the leaking stack below ttnn's own frames (ttnn/ttnn/...).
    let user_frames: Vec<_> = expected_frames
        .iter()
        .skip_while(|f| crate::library_frames::is_library_file(&f.file))
        .cloned()
        .collect();
    assert!(user_frames.len() < expected_frames.len() && !user_frames.is_empty());
    assert_eq!(b.sites[0].site.frames, user_frames);
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
        t.op("model.step");
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
