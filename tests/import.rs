//! End-to-end tests: `ttalloc import` of hand-written graph captures (see
//! `corpora/graphs/README.md` for what each must produce), read back with
//! the trace reader.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ttalloc_model::{BufferId, BufferType, DeviceId, Event, EventKind, InternTables, SiteId};
use ttalloc_trace::TraceReader;

fn ttalloc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ttalloc"))
}

fn graph(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpora/graphs")
        .join(name)
}

fn import(graph: &Path, out: &Path, extra: &[&str]) -> Output {
    ttalloc()
        .arg("import")
        .arg(graph)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn read(trace: &Path) -> (Vec<Event>, InternTables) {
    let r = TraceReader::open(trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    assert!(r.truncation().is_none(), "the trace is sealed");
    let events: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    (events, r.interner().clone())
}

fn ops(interner: &InternTables, site: SiteId) -> Vec<String> {
    interner
        .resolve(site)
        .into_iter()
        .map(|f| f.function)
        .collect()
}

/// (device, type, address, size, site functions) of every allocation.
type Alloc = (DeviceId, BufferType, Option<u64>, u64, Vec<String>);

fn allocs(events: &[Event], interner: &InternTables) -> Vec<Alloc> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BufferAlloc {
                device,
                buffer_type,
                address,
                size,
                site,
                ..
            } => Some((*device, *buffer_type, *address, *size, ops(interner, *site))),
            _ => None,
        })
        .collect()
}

fn live_at_end(events: &[Event]) -> Vec<(BufferType, u64)> {
    let mut live: HashMap<BufferId, (BufferType, u64)> = HashMap::new();
    for e in events {
        match &e.kind {
            EventKind::BufferAlloc {
                buffer,
                buffer_type,
                size,
                ..
            } => {
                live.insert(*buffer, (*buffer_type, *size));
            }
            EventKind::BufferFree { buffer, .. } => {
                live.remove(buffer);
            }
            _ => {}
        }
    }
    let mut v: Vec<_> = live.into_values().collect();
    v.sort();
    v
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn old_string_params_array_imports_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("add.zst");
    let o = import(&graph("add_old_string_params.json"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("17 nodes"), "{text}");
    assert!(
        text.contains("unknown node types (ignored): custom_probe (1)"),
        "{text}"
    );
    assert!(
        text.contains("left behind at the end of the capture: 1 buffer,"),
        "{text}"
    );

    let (events, interner) = read(&out);
    assert_eq!(
        allocs(&events, &interner),
        [
            (
                DeviceId(0),
                BufferType::L1,
                Some(1953396066),
                24576,
                vec!["ttnn::add".to_owned()]
            ),
            (
                DeviceId(0),
                BufferType::Dram,
                Some(1024),
                2048,
                vec!["ttnn::prim::binary".to_owned(), "ttnn::add".to_owned()]
            ),
        ]
    );
    // The leak: the DRAM buffer allocated in ttnn::prim::binary.
    assert_eq!(live_at_end(&events), [(BufferType::Dram, 2048)]);
    let cbs: Vec<&EventKind> = events
        .iter()
        .map(|e| &e.kind)
        .filter(|k| matches!(k, EventKind::CbAlloc { .. } | EventKind::CbFreeAll { .. }))
        .collect();
    assert!(
        matches!(
            cbs[..],
            [
                EventKind::CbAlloc {
                    device: DeviceId(0),
                    address: 0,
                    size: 4096,
                    cores: Some(8),
                    globally_allocated: false,
                    ..
                },
                EventKind::CbFreeAll {
                    device: DeviceId(0)
                }
            ]
        ),
        "{cbs:?}"
    );
    // One free of the L1 buffer, one free of a buffer the capture never allocated.
    let alloc_ids: Vec<BufferId> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferAlloc { buffer, .. } => Some(buffer),
            _ => None,
        })
        .collect();
    let frees: Vec<BufferId> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::BufferFree { buffer, .. } => Some(buffer),
            _ => None,
        })
        .collect();
    assert_eq!(frees.len(), 2);
    assert_eq!(frees[0], alloc_ids[0]);
    assert!(!alloc_ids.contains(&frees[1]));
}

#[test]
fn new_int_params_report_imports_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("matmul.zst");
    let o = import(&graph("matmul_report_int_params.json"), &out, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["form"], "report");
    assert_eq!(summary["nodes"], 14);
    assert_eq!(summary["live_buffers"], 2);
    assert_eq!(summary["live_bytes"], 131072 + 1024);
    assert_eq!(summary["unknown_node_types"], serde_json::json!({}));

    let (events, interner) = read(&out);
    let open = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::DeviceOpen {
                device,
                arch,
                config,
            } => Some((*device, *arch, config.clone())),
            _ => None,
        })
        .expect("a DeviceOpen");
    assert_eq!(
        (open.0, open.1),
        (DeviceId(0), ttalloc_model::Arch::WormholeB0)
    );
    assert_eq!(
        (open.2.l1_banks, open.2.l1_bank_size, open.2.dram_banks),
        (Some(64), Some(1364928), Some(12))
    );
    let m = vec!["ttnn::matmul".to_owned()];
    assert_eq!(
        allocs(&events, &interner),
        [
            (DeviceId(0), BufferType::L1, Some(1310720), 65536, m.clone()),
            (
                DeviceId(0),
                BufferType::Dram,
                Some(32768),
                131072,
                m.clone()
            ),
            (DeviceId(0), BufferType::L1Small, Some(1490944), 1024, m),
        ]
    );
    assert_eq!(
        live_at_end(&events),
        [(BufferType::Dram, 131072), (BufferType::L1Small, 1024)]
    );
    let cbs: Vec<(u64, u64, Option<u32>, bool)> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::CbAlloc {
                address,
                size,
                cores,
                globally_allocated,
                ..
            } => Some((address, size, cores, globally_allocated)),
            _ => None,
        })
        .collect();
    assert_eq!(
        cbs,
        [
            (102432, 8192, Some(64), false),
            (110624, 2048, Some(5), true)
        ]
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.zst");
    std::fs::write(&out, b"precious").unwrap();
    let o = import(&graph("add_old_string_params.json"), &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let o = import(&graph("add_old_string_params.json"), &out, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&out).0.len(), 12);
}

#[test]
fn malformed_graph_names_the_node_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let text = std::fs::read_to_string(graph("add_old_string_params.json")).unwrap();
    // Break node #8 (the DRAM buffer_allocate): its size is no number.
    let broken = text.replacen(
        r#"{"connections":[7],"counter":8,"node_type":"buffer_allocate","params":{"address":"1024","layout":"INTERLEAVED","size":"2048""#,
        r#"{"connections":[7],"counter":8,"node_type":"buffer_allocate","params":{"address":"1024","layout":"INTERLEAVED","size":"2k""#,
        1,
    );
    assert_ne!(broken, text);
    std::fs::write(&bad, &broken).unwrap();
    let offset = broken.find(r#"{"connections":[7],"counter":8"#).unwrap();
    let out = dir.path().join("bad.zst");
    let o = import(&bad, &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.json"), "{err}");
    assert!(
        err.contains("node #8") && err.contains("counter 8"),
        "{err}"
    );
    assert!(err.contains(&format!("byte offset {offset}")), "{err}");
    assert!(err.contains("'2k'"), "{err}");
    // No partial trace is left to block the retry (nor a temporary file).
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only bad.json: {left:?}");
    // Fixed, the same command succeeds without --force.
    std::fs::write(&bad, &text).unwrap();
    let o = import(&bad, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&out).0.len(), 12);

    // Not JSON at all.
    std::fs::write(&bad, "hello").unwrap();
    let o = import(&bad, &dir.path().join("x.zst"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("byte offset 0"), "{}", stderr(&o));

    // Missing input: a clear error, no output file.
    let missing = dir.path().join("none.zst");
    let o = import(&dir.path().join("nope.json"), &missing, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.json"), "{}", stderr(&o));
    assert!(!missing.exists());
}

#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    // Windows editors save JSON with a BOM; the import is the same as without.
    let dir = tempfile::tempdir().unwrap();
    let with_bom = dir.path().join("bom.json");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(std::fs::read(graph("add_old_string_params.json")).unwrap());
    std::fs::write(&with_bom, &bytes).unwrap();
    let out = dir.path().join("bom.zst");
    let o = import(&with_bom, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&out).0.len(), 12, "the 12 events of the plain file");
}
