//! Every workload recorded exactly (checked against the harness's echo of the
//! API calls and the workload READMEs), the summary, and `--fail-on`.

use super::*;

fn site_json(r: &TraceReader, site: ttalloc_model::SiteId) -> Value {
    Value::Array(
        r.interner()
            .resolve(site)
            .into_iter()
            .map(|f| json!([f.function, f.file, f.line]))
            .collect(),
    )
}

/// The trace event in the shape `tests/support/echo_site` writes for each API call.
fn echo_shape(r: &TraceReader, e: &Event) -> Option<Value> {
    let s = |id| r.interner().string(id).to_owned();
    Some(match &e.kind {
        EventKind::ProcessStart { .. } | EventKind::ProcessExit { .. } => return None,
        EventKind::DeviceOpen {
            device,
            arch,
            config,
        } => {
            let cfg: serde_json::Map<String, Value> = config
                .known()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            json!({"kind": "device_open", "device": device.0, "arch": *arch as u8, "config": cfg})
        }
        EventKind::DeviceClose { device } => json!({"kind": "device_close", "device": device.0}),
        EventKind::BufferAlloc {
            device,
            buffer,
            buffer_type,
            address,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            label,
            site,
        } => {
            let label = (*label != ttalloc_model::StringId::EMPTY).then(|| s(*label));
            json!({"kind": "buffer_alloc", "device": device.0, "buffer": buffer.0 & LOCAL_MASK,
                "buffer_type": buffer_type.name(), "size": size, "address": address, "page_size": page_size,
                "layout": layout.name(), "num_cores": num_cores, "per_bank_size": per_bank_size,
                "label": label, "site": site_json(r, *site)})
        }
        EventKind::AllocRefused {
            device,
            buffer_type,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            message,
            site,
        } => json!({"kind": "alloc_refused", "device": device.0, "buffer_type": buffer_type.name(),
            "size": size, "page_size": page_size, "layout": layout.name(), "num_cores": num_cores,
            "per_bank_size": per_bank_size, "message": s(*message), "site": site_json(r, *site)}),
        EventKind::BufferFree {
            device,
            buffer,
            site,
        } => json!({"kind": "buffer_free", "device": device.0,
            "buffer": buffer.0 & LOCAL_MASK, "site": site_json(r, *site)}),
        EventKind::CbAlloc {
            device,
            address,
            size,
            cores,
            globally_allocated,
            site,
        } => {
            json!({"kind": "cb_alloc", "device": device.0, "address": address, "size": size, "cores": cores,
                "globally_allocated": globally_allocated, "site": site_json(r, *site)})
        }
        EventKind::CbFreeAll { device } => json!({"kind": "cb_free_all", "device": device.0}),
        EventKind::ProgramLoad {
            device,
            program,
            binary_size,
            site,
        } => json!({"kind": "program_load",
            "device": device.0, "program": program.0 & LOCAL_MASK, "binary_size": binary_size,
            "site": site_json(r, *site)}),
        EventKind::ProgramUnload { device, program } => {
            json!({"kind": "program_unload", "device": device.0, "program": program.0 & LOCAL_MASK})
        }
        EventKind::TraceCapture {
            device,
            trace_id,
            size,
            site,
        } => {
            json!({"kind": "trace_capture", "device": device.0, "trace_id": trace_id.0, "size": size,
                "site": site_json(r, *site)})
        }
        EventKind::TraceRelease { device, trace_id } => {
            json!({"kind": "trace_release", "device": device.0, "trace_id": trace_id.0})
        }
        EventKind::OpBegin { name } => json!({"kind": "op_begin", "name": s(*name)}),
        EventKind::OpEnd => json!({"kind": "op_end"}),
        EventKind::Marker { label } => json!({"kind": "marker", "label": s(*label)}),
    })
}

/// Parses "N `kind`" pairs from the README's "Event counts:" paragraph.
fn readme_counts(readme: &str) -> BTreeMap<String, u64> {
    let start = readme
        .find("Event counts:")
        .expect("README has an 'Event counts:' paragraph");
    let para = &readme[start
        ..readme[start..]
            .find("\n\n")
            .map_or(readme.len(), |e| start + e)];
    let words: Vec<&str> = para.split_whitespace().collect();
    let mut out = BTreeMap::new();
    for w in words.windows(2) {
        if let Ok(n) = w[0].trim_start_matches('(').parse::<u64>() {
            if w[1].starts_with('`') {
                let kind =
                    w[1].trim_matches(|c: char| c == '`' || c == ',' || c == '.' || c == ';');
                out.insert(kind.to_owned(), n);
            }
        }
    }
    assert!(!out.is_empty(), "no counts parsed from: {para}");
    out
}

#[test]
fn records_every_workload_exactly() {
    let dirs: Vec<PathBuf> = std::fs::read_dir(workloads_dir())
        .expect("corpora/workloads")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("workload.py").exists())
        .collect();
    assert!(
        dirs.len() >= 7,
        "expected the 7 scenario workloads, found {dirs:?}"
    );
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = tempfile::tempdir().unwrap();
        let echo = tmp.path().join("echo");
        std::fs::create_dir(&echo).unwrap();
        let trace = tmp.path().join("t.zst");
        // The test harness's echo of every API call (not part of the client).
        let echo_site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/echo_site");
        let out = record(
            tmp.path(),
            &trace,
            &["python3", dir.join("workload.py").to_str().unwrap()],
            &[("TTALLOC_ECHO", &echo), ("PYTHONPATH", &echo_site)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("ttalloc replay {} --bisect", trace.display())),
            "{name}: {stderr}"
        );

        let (r, events) = read_trace(&trace);
        assert!(r.truncation().is_none(), "{name}: trace not sealed");
        // Exactly what each process sent, in its order.
        let mut by_pid: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
        for e in &events {
            if let Some(v) = echo_shape(&r, e) {
                by_pid.entry(e.pid.0).or_default().push(v);
            }
        }
        let mut sent: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
        for f in std::fs::read_dir(&echo).unwrap() {
            let p = f.unwrap().path();
            let pid: u32 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            let lines = std::fs::read_to_string(&p).unwrap();
            sent.insert(
                pid,
                lines
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            );
        }
        assert_eq!(sent.len(), 1, "{name}: one process");
        assert_eq!(
            by_pid, sent,
            "{name}: trace differs from what the workload sent"
        );
        // One start and one exit per process.
        let starts = events
            .iter()
            .filter(|e| e.kind.tag() == EventTag::ProcessStart)
            .count();
        let exits = events
            .iter()
            .filter(|e| e.kind.tag() == EventTag::ProcessExit)
            .count();
        assert_eq!((starts, exits), (1, 1), "{name}");
        // The README's event counts are what the workload does.
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        for (kind, n) in readme_counts(&readme) {
            let got = events
                .iter()
                .filter(|e| e.kind.tag().name() == kind)
                .count() as u64;
            assert_eq!(got, n, "{name}: README says {n} `{kind}`, trace has {got}");
        }
        // Sites are real Python stacks of the workload, innermost first.
        let first_alloc = events.iter().find_map(|e| match e.kind {
            EventKind::BufferAlloc { site, .. } => Some(site),
            _ => None,
        });
        if let Some(site) = first_alloc {
            let frames = r.interner().resolve(site);
            assert!(
                frames.iter().all(|f| f.file.ends_with("workload.py")),
                "{name}: {frames:?}"
            );
            assert_eq!(
                frames.last().unwrap().function,
                "<module>",
                "{name}: {frames:?}"
            );
        }
    }
}

#[test]
fn accumulation_summary_and_fail_on_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let wl = workloads_dir();
    let trace = tmp.path().join("acc.zst");
    let acc = wl.join("accumulation/workload.py");
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args(["record", "--fail-on", "leak", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(&acc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("on 8 devices"), "{stderr}");
    assert!(
        stderr.contains("device 0: 6 buffers, 110,592 B DRAM, 67,584 B L1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("finding (leak): 6 buffers left behind"),
        "{stderr}"
    );

    // Refuses to overwrite without --force, and overwrites with it.
    let again = record(tmp.path(), &trace, &["python3", acc.to_str().unwrap()], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let clean = wl.join("clean/workload.py");
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args(["record", "--force", "--fail-on", "leak,growth", "-o"])
        .arg(&trace)
        .args(["--", "python3"])
        .arg(&clean)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("left behind at the end: nothing"),
        "{stderr}"
    );
}

/// `record --fail-on` evaluates kinds only the replayer can decide (an
/// out-of-memory needs the allocator model), with `replay --fail-on`'s meaning.
#[test]
fn fail_on_uses_the_replayer() {
    let tmp = tempfile::tempdir().unwrap();
    let frag = workloads_dir().join("fragmentation_oom/workload.py");
    let run = |kinds: &str, name: &str| {
        Command::new(BIN)
            .current_dir(tmp.path())
            .args(["record", "--fail-on", kinds, "-o"])
            .arg(tmp.path().join(name))
            .args(["--", "python3"])
            .arg(&frag)
            .output()
            .unwrap()
    };
    let out = run("oom", "a.zst");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("finding (oom): Out of Memory: Not enough space to allocate"),
        "{stderr}"
    );
    // The same recording has no double free: that kind alone passes.
    let out = run("double-free", "b.zst");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("finding ("), "{stderr}");
    // A kind that does not exist is bad usage.
    let out = run("leaks", "c.zst");
    assert_eq!(out.status.code(), Some(2));
}
