//! Import of hand-written graphs (see `corpora/graphs/README.md` for what
//! each fixture must produce).

use super::*;
use std::collections::HashMap;
use std::io::Cursor;
use ttalloc_model::{Arch, BufferId, BufferType, DeviceId, Event, EventKind, Layout};

const OLD: &str = include_str!("../../../corpora/graphs/add_old_string_params.json");
const NEW: &str = include_str!("../../../corpora/graphs/matmul_report_int_params.json");

type Failed = Box<(ImportError, ImportSummary, VecSink)>;

fn import(text: &str) -> Result<(ImportSummary, VecSink), Failed> {
    let mut sink = VecSink::default();
    let opts = ImportOptions {
        base_ts: 1_000,
        ..Default::default()
    };
    match import_graph(Cursor::new(text.as_bytes()), &mut sink, opts) {
        Ok(s) => Ok((s, sink)),
        Err(f) => Err(Box::new((f.error, f.partial, sink))),
    }
}

/// Buffers allocated and not freed at the end: id -> (device, type, size).
fn live_at_end(events: &[Event]) -> HashMap<BufferId, (DeviceId, BufferType, u64)> {
    let mut live = HashMap::new();
    for e in events {
        match &e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                size,
                ..
            } => {
                live.insert(*buffer, (*device, *buffer_type, *size));
            }
            EventKind::BufferFree { buffer, .. } => {
                live.remove(buffer);
            }
            _ => {}
        }
    }
    live
}

fn site_names(sink: &VecSink, site: ttalloc_model::SiteId) -> Vec<String> {
    sink.interner
        .resolve(site)
        .into_iter()
        .map(|f| f.function)
        .collect()
}

#[test]
fn old_string_params_array() {
    let (s, sink) = import(OLD).unwrap();
    assert_eq!(s.form, GraphForm::Array);
    assert_eq!(s.nodes, 17);
    assert_eq!(s.bytes, OLD.len() as u64);
    assert_eq!(
        (s.buffers_allocated, s.buffers_freed, s.unknown_frees),
        (2, 1, 1)
    );
    assert_eq!((s.cb_allocs, s.cb_free_alls, s.ops), (1, 1, 2));
    assert_eq!((s.live_buffers, s.live_bytes), (1, 2048));
    assert_eq!(s.unknown_node_types.get("custom_probe"), Some(&1));
    assert_eq!(s.unknown_node_types.len(), 1);
    assert_eq!(s.devices, [0]);

    let allocs: Vec<&Event> = sink
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::BufferAlloc { .. }))
        .collect();
    assert_eq!(allocs.len(), 2);
    match &allocs[0].kind {
        EventKind::BufferAlloc {
            device,
            buffer_type,
            address,
            size,
            layout,
            site,
            page_size,
            num_cores,
            ..
        } => {
            assert_eq!(*device, DeviceId(0));
            assert_eq!(*buffer_type, BufferType::L1);
            assert_eq!(*address, Some(1953396066));
            assert_eq!(*size, 24576);
            assert_eq!(*layout, Layout::Interleaved);
            assert_eq!((*page_size, *num_cores), (None, None));
            assert_eq!(site_names(&sink, *site), ["ttnn::add"]);
            let frames = sink.interner.resolve(*site);
            assert_eq!(
                (frames[0].file.as_str(), frames[0].line),
                (OP_FRAME_FILE, 0)
            );
        }
        _ => unreachable!(),
    }
    match &allocs[1].kind {
        EventKind::BufferAlloc {
            buffer_type,
            address,
            size,
            site,
            ..
        } => {
            assert_eq!(
                (*buffer_type, *address, *size),
                (BufferType::Dram, Some(1024), 2048)
            );
            assert_eq!(
                site_names(&sink, *site),
                ["ttnn::prim::binary", "ttnn::add"]
            );
        }
        _ => unreachable!(),
    }
    // The leak is the DRAM buffer.
    let live = live_at_end(&sink.events);
    assert_eq!(
        live.into_values().collect::<Vec<_>>(),
        [(DeviceId(0), BufferType::Dram, 2048)]
    );

    let cb: Vec<&EventKind> = sink
        .events
        .iter()
        .map(|e| &e.kind)
        .filter(|k| matches!(k, EventKind::CbAlloc { .. } | EventKind::CbFreeAll { .. }))
        .collect();
    assert_eq!(cb.len(), 2);
    match cb[0] {
        EventKind::CbAlloc {
            device,
            address,
            size,
            cores,
            globally_allocated,
            site,
        } => {
            assert_eq!(
                (*device, *address, *size, *cores, *globally_allocated),
                (DeviceId(0), 0, 4096, Some(8), false)
            );
            assert_eq!(
                site_names(&sink, *site),
                ["ttnn::prim::binary", "ttnn::add"]
            );
        }
        _ => unreachable!(),
    }
    assert_eq!(
        *cb[1],
        EventKind::CbFreeAll {
            device: DeviceId(0)
        }
    );

    // Timestamps keep the node order; the first event is the process start.
    assert!(matches!(
        sink.events[0].kind,
        EventKind::ProcessStart { .. }
    ));
    assert!(sink.events.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert!(sink.events.iter().all(|e| e.ts >= 1_000));
    let begins = sink
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::OpBegin { .. }))
        .count();
    let ends = sink
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::OpEnd))
        .count();
    assert_eq!((begins, ends), (2, 2));
}

#[test]
fn new_int_params_report_with_device_info() {
    let (s, sink) = import(NEW).unwrap();
    assert_eq!(s.form, GraphForm::Report);
    assert_eq!(s.nodes, 14);
    assert_eq!(
        (s.buffers_allocated, s.buffers_freed, s.unknown_frees),
        (3, 1, 0)
    );
    assert_eq!((s.cb_allocs, s.cb_free_alls, s.ops), (2, 1, 1));
    assert_eq!((s.live_buffers, s.live_bytes), (2, 131072 + 1024));
    assert!(s.unknown_node_types.is_empty());

    // DeviceOpen comes before the first allocation, with the report's layout.
    let open = sink
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::DeviceOpen { .. }))
        .unwrap();
    let first_alloc = sink
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::BufferAlloc { .. }))
        .unwrap();
    assert!(open < first_alloc);
    match &sink.events[open].kind {
        EventKind::DeviceOpen {
            device,
            arch,
            config,
        } => {
            assert_eq!((*device, *arch), (DeviceId(0), Arch::WormholeB0));
            assert_eq!(config.l1_banks, Some(64));
            assert_eq!(config.l1_bank_size, Some(1364928));
            assert_eq!(config.worker_l1_size, Some(1499136));
            assert_eq!(config.l1_unreserved_base, Some(102432));
            assert_eq!(config.dram_banks, Some(12));
        }
        _ => unreachable!(),
    }
    assert_eq!(
        sink.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::DeviceOpen { .. }))
            .count(),
        1
    );

    #[allow(clippy::type_complexity)]
    let allocs: Vec<(
        BufferType,
        Option<u64>,
        u64,
        Option<u64>,
        Layout,
        Option<u32>,
        Option<u64>,
    )> = sink
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BufferAlloc {
                buffer_type,
                address,
                size,
                page_size,
                layout,
                num_cores,
                per_bank_size,
                site,
                ..
            } => {
                assert_eq!(site_names(&sink, *site), ["ttnn::matmul"]);
                Some((
                    *buffer_type,
                    *address,
                    *size,
                    *page_size,
                    *layout,
                    *num_cores,
                    *per_bank_size,
                ))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        allocs,
        [
            (
                BufferType::L1,
                Some(1310720),
                65536,
                Some(2048),
                Layout::HeightSharded,
                Some(8),
                // 32 pages over 8 shards: 4 pages of 2048 B per bank.
                Some(8192)
            ),
            (
                BufferType::Dram,
                Some(32768),
                131072,
                Some(2048),
                Layout::Interleaved,
                None,
                // 64 pages over 12 DRAM banks: ceil(64/12) = 6 pages of 2048 B.
                Some(12288)
            ),
            (
                BufferType::L1Small,
                Some(1490944),
                1024,
                Some(128),
                Layout::HeightSharded,
                Some(8),
                // 8 pages over 8 shards: one 128 B page per bank.
                Some(128)
            ),
        ]
    );
    let mut live: Vec<_> = live_at_end(&sink.events).into_values().collect();
    live.sort();
    assert_eq!(
        live,
        [
            (DeviceId(0), BufferType::Dram, 131072),
            (DeviceId(0), BufferType::L1Small, 1024)
        ]
    );

    let cbs: Vec<(u64, u64, Option<u32>, bool)> = sink
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CbAlloc {
                address,
                size,
                cores,
                globally_allocated,
                ..
            } => Some((*address, *size, *cores, *globally_allocated)),
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
fn both_param_styles_give_the_same_events() {
    // The old fixture rewritten with integer params must import identically.
    let as_ints = OLD
        .replace("\"1953396066\"", "1953396066")
        .replace("\"24576\"", "24576")
        .replace("\"4096\"", "4096")
        .replace("\"2048\"", "2048")
        .replace("\"1024\"", "1024")
        .replace("\"address\":\"0\"", "\"address\":0")
        .replace("\"size\":\"0\"", "\"size\":0")
        .replace("\"false\"", "false");
    assert_ne!(as_ints, OLD);
    let (s1, a) = import(OLD).unwrap();
    let (s2, b) = import(&as_ints).unwrap();
    assert_eq!(a.events, b.events);
    assert_eq!(s1.live_bytes, s2.live_bytes);
}

#[test]
fn devices_after_the_graph_still_open_first() {
    // Hand-written reports may order keys differently from ttnn.
    let v: serde_json::Value = serde_json::from_str(NEW).unwrap();
    let reordered = format!(
        "{{\"version\":1,\"graph\":{},\"metadata\":{{}},\"devices\":{}}}",
        v["graph"], v["devices"]
    );
    let (s, sink) = import(&reordered).unwrap();
    let (s0, sink0) = import(NEW).unwrap();
    assert_eq!(s.nodes, s0.nodes);
    assert_eq!(sink.events, sink0.events);
}

#[test]
fn malformed_node_reports_index_and_offset_and_keeps_what_came_before() {
    let text = r#"[{"counter":0,"node_type":"capture_start","params":{},"connections":[]},
{"counter":1,"node_type":"buffer_allocate","params":{"size":"64","type":"DRAM","address":"0"},"connections":[5]},
{"counter":2,"node_type":"buffer_allocate","params":{"size":"sixty","type":"DRAM"},"connections":[6]}]"#;
    let (err, summary, sink) = *import(text).unwrap_err();
    let msg = err.to_string();
    let node2 = text.find("{\"counter\":2").unwrap();
    assert!(msg.contains("#2"), "{msg}");
    assert!(msg.contains("counter 2"), "{msg}");
    assert!(msg.contains(&format!("byte offset {node2}")), "{msg}");
    assert!(msg.contains("sixty"), "{msg}");
    assert_eq!(summary.buffers_allocated, 1);
    assert_eq!(
        sink.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BufferAlloc { .. }))
            .count(),
        1
    );

    // Broken JSON inside a node: offset points into that node.
    let text =
        "[{\"counter\":0,\"node_type\":\"capture_start\"},\n {\"counter\":1,\"node_type\":tru}]";
    let (err, _, _) = *import(text).unwrap_err();
    match err {
        ImportError::Syntax {
            offset,
            node: Some(1),
            ..
        } => {
            let start = text.find("{\"counter\":1").unwrap() as u64;
            assert!(offset >= start && offset <= text.len() as u64, "{offset}");
        }
        other => panic!("{other}"),
    }

    // Truncated file.
    let (err, s, _) = *import(&OLD[..OLD.len() / 2]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(s.nodes > 0);

    // Not a graph at all.
    for bad in ["", "42", "{\"version\":1}", "[1] x"] {
        assert!(import(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn empty_graph_is_fine() {
    let (s, sink) = import("[]").unwrap();
    assert_eq!(s.nodes, 0);
    assert_eq!(sink.events.len(), 1); // the process start
}

/// A small deterministic generator (no dependency needed).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_inputs_never_panic() {
    // Bad input must give an error (or a valid import), never a panic.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for base in [OLD, NEW] {
        let bytes = base.as_bytes();
        for _ in 0..400 {
            let mut m = bytes.to_vec();
            for _ in 0..1 + xorshift(&mut seed) % 4 {
                let at = (xorshift(&mut seed) as usize) % m.len();
                match xorshift(&mut seed) % 3 {
                    0 => m[at] = b"{}[]\",:0a-\\ "[(xorshift(&mut seed) % 12) as usize],
                    1 => {
                        m.remove(at);
                    }
                    _ => m.truncate(at),
                }
            }
            let text = String::from_utf8_lossy(&m).into_owned();
            let mut sink = VecSink::default();
            let _ = import_graph(
                Cursor::new(text.as_bytes()),
                &mut sink,
                ImportOptions::default(),
            );
        }
    }
}
