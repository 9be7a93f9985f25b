//! Hostile-input tests of the ttnn graph-capture importer (`import`).
//!
//! Properties, for any input file:
//! - the import never panics and never reports an I/O or sink error for an
//!   in-memory file (every failure is a syntax or node error);
//! - an error names a byte offset inside the file, and for a node error the
//!   node index whose bytes hold that offset;
//! - everything before the bad part is kept: the events in the sink are
//!   exactly those an import of only the good nodes makes.

use proptest::prelude::*;
use std::io::Cursor;
use ttalloc_model::{Event, EventKind};
use ttalloc_recorder::import::{
    count_cores, import_graph, ImportError, ImportFailure, ImportOptions, ImportSummary, VecSink,
};

const OLD: &str = include_str!("../../corpora/graphs/add_old_string_params.json");
const REPORT: &str = include_str!("../../corpora/graphs/matmul_report_int_params.json");
const BASE_TS: u64 = 1_000_000;

type Outcome = (Result<ImportSummary, Box<ImportFailure>>, Vec<Event>);

fn import(bytes: &[u8]) -> Outcome {
    let mut sink = VecSink::default();
    let opts = ImportOptions {
        base_ts: BASE_TS,
        ..Default::default()
    };
    let r = import_graph(Cursor::new(bytes), &mut sink, opts);
    // The summary always matches what reached the sink.
    let summary = match &r {
        Ok(s) => s,
        Err(f) => &f.partial,
    };
    assert_eq!(summary.events, sink.events.len() as u64);
    assert!(
        matches!(
            sink.events.first().map(|e| &e.kind),
            Some(EventKind::ProcessStart { .. })
        ),
        "the process start is always recorded"
    );
    (r, sink.events)
}

/// The offset an error names, checked to be a clear, in-file position.
fn error_offset(f: &ImportFailure, len: usize) -> u64 {
    let text = f.to_string();
    let offset = match &f.error {
        ImportError::Syntax { offset, .. } | ImportError::BadNode { offset, .. } => *offset,
        other => panic!("an in-memory import failed with {other:?}"),
    };
    assert!(
        text.contains(&format!("byte offset {offset}")),
        "error does not name its offset: {text}"
    );
    assert!(offset <= len as u64, "{text} (file of {len} bytes)");
    offset
}

/// The node index an error is about, if it is about one.
fn error_node(f: &ImportFailure) -> Option<u64> {
    match &f.error {
        ImportError::Syntax { node, .. } => *node,
        ImportError::BadNode { index, .. } => Some(*index),
        _ => None,
    }
}

/// Byte spans of the top-level values of a JSON array (strings and nesting
/// respected): the node spans of a well-formed graph array.
fn node_spans(text: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let (mut depth, mut in_str, mut esc, mut start) = (0usize, false, false, 0usize);
    for (i, &b) in text.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth == 2 {
                    start = i;
                }
            }
            b'}' | b']' => {
                if depth == 2 {
                    spans.push((start, i + 1));
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    spans
}

/// Events made by the first `k` nodes of a full import (the process start,
/// then everything stamped before node `k`).
fn events_of_first_nodes(full: &[Event], k: usize) -> &[Event] {
    let n = full
        .iter()
        .enumerate()
        .take_while(|(i, e)| *i == 0 || e.ts < BASE_TS + k as u64)
        .count();
    &full[..n]
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, String),
    Delete(usize, usize),
    Truncate(usize),
}

impl Mutation {
    /// Applies the mutation and returns the first changed byte offset.
    fn apply(&self, b: &mut Vec<u8>) -> usize {
        let n = b.len().max(1);
        match self {
            Mutation::Flip(i, m) => {
                let i = i % n;
                if let Some(x) = b.get_mut(i) {
                    *x ^= m;
                }
                i
            }
            Mutation::Insert(i, s) => {
                let i = i % (b.len() + 1);
                b.splice(i..i, s.bytes());
                i
            }
            Mutation::Delete(i, len) => {
                let i = i % n;
                let end = (i + len).min(b.len());
                b.drain(i.min(end)..end);
                i
            }
            Mutation::Truncate(i) => {
                let i = i % (b.len() + 1);
                b.truncate(i);
                i
            }
        }
    }
}

/// JSON fragments that stress the parser: extremes, wrong types, nesting.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_owned()),
        Just("\"18446744073709551615\"".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("\"18446744073709551616\"".to_owned()),
        Just("-1".to_owned()),
        Just("\"-9223372036854775808\"".to_owned()),
        Just("1e308".to_owned()),
        Just("-0.0".to_owned()),
        Just("null".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("\"\\u00e9\\\"\"".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\u{0}".to_owned()),
        (1..300usize).prop_map(|d| "[".repeat(d) + &"]".repeat(d)),
        (1..300usize).prop_map(|d| "[".repeat(d)),
        (1..2000usize).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        "[ -~]{0,16}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        2 => (any::<usize>(), fragment()).prop_map(|(i, s)| Mutation::Insert(i, s)),
        1 => (any::<usize>(), 1..64usize).prop_map(|(i, l)| Mutation::Delete(i, l)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

// ---------------------------------------------------------------------------
// Generated graphs with hostile field values.

/// A scalar-ish JSON value for a numeric param.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0..100_000u64).prop_map(|v| v.to_string()),
        2 => (0..100_000u64).prop_map(|v| format!("\"{v}\"")),
        1 => Just("18446744073709551615".to_owned()),
        1 => Just("\"18446744073709551615\"".to_owned()),
        1 => Just("4294967296".to_owned()),
        1 => Just("18446744073709551616".to_owned()),
        1 => Just("-1".to_owned()),
        1 => Just("\"-5\"".to_owned()),
        1 => Just("1e300".to_owned()),
        1 => Just("2.5".to_owned()),
        1 => Just("null".to_owned()),
        1 => Just("[1]".to_owned()),
        1 => Just("\"lots\"".to_owned()),
        1 => Just("true".to_owned()),
    ]
}

fn buffer_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"DRAM\"".to_owned()),
        Just("\"L1\"".to_owned()),
        Just("\"L1_SMALL\"".to_owned()),
        Just("\"TRACE\"".to_owned()),
        Just("\"bogus\"".to_owned()),
        Just("7".to_owned()),
    ]
}

/// Text that must survive as a string value: long, escaped, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:_]{0,20}",
        ".{0,20}",
        (1..20_000usize).prop_map(|n| "ä".repeat(n)),
    ]
    .prop_map(|s| serde_json::to_string(&s).unwrap())
}

/// Values of keys the importer skips: deep nesting, long strings.
fn ignored() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[]".to_owned()),
        (1..400usize).prop_map(|d| "[".repeat(d) + &"]".repeat(d)),
        (1..400usize).prop_map(|d| "{\"a\":".repeat(d) + "1" + &"}".repeat(d)),
        (1..50_000usize).prop_map(|n| format!("\"{}\"", "q".repeat(n))),
    ]
}

fn node() -> impl Strategy<Value = String> {
    let node_type = prop_oneof![
        3 => Just("buffer_allocate"),
        3 => Just("buffer_deallocate"),
        2 => Just("function_start"),
        2 => Just("function_end"),
        1 => Just("circular_buffer_allocate"),
        1 => Just("circular_buffer_deallocate_all"),
        1 => Just("error"),
        1 => Just("tensor"),
        1 => Just("custom_probe"),
    ];
    let param = |key: &'static str, v: BoxedStrategy<String>| {
        proptest::option::weighted(0.6, v).prop_map(move |v| v.map(|v| format!("\"{key}\":{v}")))
    };
    let params = (
        (
            param("size", number().boxed()),
            param("address", number().boxed()),
            param("type", buffer_type().boxed()),
            param("buffer_type_value", number().boxed()),
            param(
                "device_id",
                prop_oneof![3 => (0..3u32).prop_map(|d| d.to_string()), 1 => number()].boxed(),
            ),
            param("page_size", number().boxed()),
        ),
        (
            param("num_cores", number().boxed()),
            param(
                "layout",
                prop_oneof![Just("\"BLOCK_SHARDED\"".to_owned()), text()].boxed(),
            ),
            param("name", text().boxed()),
            param(
                "core_range_set",
                prop_oneof![
                    Just("\"{[(x=0,y=0) - (x=7,y=7)]}\"".to_owned()),
                    Just(
                        "\"{[(x=0,y=0) - (x=18446744073709551615,y=18446744073709551615)]}\""
                            .to_owned()
                    ),
                    Just("\"{[(x=99999999999999999999,y=0) - (x=0,y=0)]}\"".to_owned()),
                    text(),
                ]
                .boxed(),
            ),
            param(
                "globally_allocated",
                prop_oneof![Just("\"true\"".to_owned()), number()].boxed(),
            ),
            param("error_message", text().boxed()),
        ),
    );
    let connections = proptest::collection::vec(
        prop_oneof![
            6 => (0..4u64).prop_map(|c| c.to_string()),
            1 => Just(u64::MAX.to_string()),
            1 => Just("-1".to_owned()),
        ],
        0..3,
    );
    (
        node_type,
        params,
        connections,
        proptest::option::weighted(0.2, ignored()),
        proptest::option::weighted(0.9, 0..1_000_000u64),
    )
        .prop_map(|(t, (a, b), conns, extra, counter)| {
            let (a0, a1, a2, a3, a4, a5) = a;
            let (b0, b1, b2, b3, b4, b5) = b;
            let params: Vec<String> = [a0, a1, a2, a3, a4, a5, b0, b1, b2, b3, b4, b5]
                .into_iter()
                .flatten()
                .collect();
            let mut fields = vec![
                format!("\"connections\":[{}]", conns.join(",")),
                format!("\"node_type\":\"{t}\""),
                format!("\"params\":{{{}}}", params.join(",")),
            ];
            if let Some(c) = counter {
                fields.push(format!("\"counter\":{c}"));
            }
            if let Some(x) = extra {
                fields.push(format!("\"arguments\":{x}"));
            }
            format!("{{{}}}", fields.join(","))
        })
}

fn graph(nodes: &[String]) -> String {
    format!("[\n{}\n]", nodes.join(",\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// (1) Arbitrary bytes, biased to JSON punctuation.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            2 => proptest::sample::select(b"[]{}\",:0123456789 -tfnu\\e.".to_vec()),
        ],
        0..300,
    )) {
        let (r, _) = import(&bytes);
        if let Err(f) = r {
            error_offset(&f, bytes.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// (2) Damage to the array fixture: the nodes that end before the first
    /// changed byte are imported exactly as from the intact file.
    #[test]
    fn mutated_array_fixture_keeps_the_intact_nodes(muts in proptest::collection::vec(mutation(), 1..4)) {
        let (full, full_events) = import(OLD.as_bytes());
        let full = full.unwrap();
        let spans = node_spans(OLD.as_bytes());
        assert_eq!(spans.len() as u64, full.nodes);
        let mut bytes = OLD.as_bytes().to_vec();
        let mut first = usize::MAX;
        for m in &muts {
            first = first.min(m.apply(&mut bytes));
        }
        let intact = spans.iter().take_while(|s| s.1 <= first).count();
        let (r, events) = import(&bytes);
        let want = events_of_first_nodes(&full_events, intact);
        assert!(events.len() >= want.len(), "{:?}", r.as_ref().err().map(|f| f.to_string()));
        assert_eq!(&events[..want.len()], want);
        match r {
            Ok(s) => assert!(s.nodes >= intact as u64),
            Err(f) => {
                assert!(f.partial.nodes >= intact as u64, "{f}");
                let at = error_offset(&f, bytes.len());
                if intact > 0 {
                    assert!(at >= spans[intact - 1].1 as u64, "{f} is inside an intact node");
                }
            }
        }
    }

    /// (2) Damage to the report fixture: no panic, a clear error.
    #[test]
    fn mutated_report_fixture(muts in proptest::collection::vec(mutation(), 1..4), graph_first in any::<bool>()) {
        let mut text = REPORT.to_owned();
        if graph_first {
            // The deferred-graph path: the graph key before the devices key.
            let g = text.find("\"graph\"").unwrap();
            let m = text.find("\"metadata\"").unwrap();
            text = format!("{{{}{}{}", &text[g..m], &text[1..g], &text[m..]);
            assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
        }
        let mut bytes = text.into_bytes();
        for m in &muts {
            m.apply(&mut bytes);
        }
        if let (Err(f), _) = import(&bytes) {
            error_offset(&f, bytes.len());
        }
    }

    /// (2)+(3) Generated graphs with extreme values, wrong types, long
    /// strings and deep nesting: the import stops at the first bad node,
    /// names it and an offset inside it, and keeps exactly what an import of
    /// the nodes before it makes.
    #[test]
    fn generated_graphs_stop_at_the_bad_node(nodes in proptest::collection::vec(node(), 0..12)) {
        let text = graph(&nodes);
        let (r, events) = import(text.as_bytes());
        let spans = node_spans(text.as_bytes());
        assert_eq!(spans.len(), nodes.len());
        let f = match r {
            Ok(s) => {
                assert_eq!(s.nodes, nodes.len() as u64);
                assert_eq!(s.bytes, text.len() as u64);
                return Ok(());
            }
            Err(f) => f,
        };
        let at = error_offset(&f, text.len());
        let bad = error_node(&f).unwrap_or_else(|| panic!("not a node error: {f}")) as usize;
        assert!(bad < nodes.len(), "{f}");
        let (start, end) = spans[bad];
        assert!((start as u64..=end as u64).contains(&at), "{f}: node #{bad} spans {start}..{end}");
        // Everything before the bad node is kept, exactly.
        let good = graph(&nodes[..bad]);
        let (good_r, good_events) = import(good.as_bytes());
        let good_s = good_r.unwrap_or_else(|e| panic!("the nodes before #{bad} import cleanly: {e}"));
        assert_eq!(good_s.nodes, bad as u64);
        assert_eq!(events, good_events, "{f}");
        // And the same nodes followed by garbage keep them too.
        let cut = format!("[\n{}{}", nodes[..bad].iter().map(|n| format!("{n},\n")).collect::<String>(), "}{oops");
        let (r, events) = import(cut.as_bytes());
        let f = r.expect_err("garbage is an error");
        let at = error_offset(&f, cut.len());
        assert!(at >= (cut.len() - "}{oops".len()) as u64, "{f}");
        assert_eq!(events, good_events);
    }

    /// A graph cut anywhere keeps every node that is complete before the cut.
    #[test]
    fn truncated_fixture_keeps_complete_nodes(cut in 0..OLD.trim_end().len()) {
        let (_, full_events) = import(OLD.as_bytes());
        let spans = node_spans(OLD.as_bytes());
        let complete = spans.iter().take_while(|s| s.1 <= cut).count();
        let (r, events) = import(&OLD.as_bytes()[..cut]);
        let f = r.expect_err("a cut graph is an error");
        error_offset(&f, cut);
        assert_eq!(f.partial.nodes, complete as u64, "{f}");
        assert_eq!(events, events_of_first_nodes(&full_events, complete));
    }

    /// Core-range strings from the wild never panic the core counter.
    #[test]
    fn core_counts_never_panic(s in "[{}\\[\\]() ,xy=0-9-]{0,60}", big in any::<u64>()) {
        let _ = count_cores(&s);
        let s = format!("{{[(x=0,y={big}) - (x={big},y=0)]}}");
        let n = count_cores(&s);
        let side = u128::from(big) + 1;
        let want = side * side;
        assert_eq!(n.map(u128::from), (want <= u128::from(u32::MAX)).then_some(want));
    }
}

/// The overflows found while fuzzing, pinned down.
#[test]
fn extreme_sizes_and_coordinates() {
    // Two never-freed buffers of u64::MAX bytes: live bytes saturate.
    let text = r#"[
{"connections":[1],"counter":0,"node_type":"buffer_allocate","params":{"size":18446744073709551615,"type":"DRAM"}},
{"connections":[2],"counter":1,"node_type":"buffer_allocate","params":{"size":"18446744073709551615","type":"DRAM"}},
{"connections":[1],"counter":2,"node_type":"buffer_allocate","params":{"size":18446744073709551615,"type":"DRAM"}}
]"#;
    let (r, _) = import(text.as_bytes());
    let s = r.unwrap();
    assert_eq!((s.live_buffers, s.live_bytes), (2, u64::MAX));
    assert_eq!(s.live_bytes_orphaned, u64::MAX);
    assert_eq!(
        s.live_bytes_by_type.get(&ttalloc_model::BufferType::Dram),
        Some(&u64::MAX)
    );
    // A core range whose corners are u64::MAX apart.
    assert_eq!(
        count_cores("{[(x=0,y=0) - (x=18446744073709551615,y=0)]}"),
        None
    );
    assert_eq!(count_cores("{[(x=0,y=0) - (x=65535,y=65535)]}"), None);
    assert_eq!(count_cores("{[(x=0,y=0) - (x=1,y=1)]}"), Some(4));
}

/// Nesting far beyond any parser's recursion: in a skipped report key, in a
/// node, and in `devices`.
#[test]
fn very_deep_nesting() {
    let deep = |d: usize| "[".repeat(d) + &"]".repeat(d);
    let text = format!(
        r#"{{"metadata":{},"graph":[],"devices":[]}}"#,
        deep(1_000_000)
    );
    let (r, _) = import(text.as_bytes());
    assert_eq!(r.unwrap().nodes, 0);

    // In a key the importer skips: fine, whatever the depth.
    let text = format!(
        r#"[{{"node_type":"tensor","params":{{}}}},{{"node_type":"tensor","arguments":{}}}]"#,
        deep(100_000)
    );
    let (r, _) = import(text.as_bytes());
    assert_eq!(r.unwrap().nodes, 2);

    // In a param value: a non-scalar value, not an error for a name...
    let text = format!(
        r#"[{{"node_type":"tensor","params":{{}}}},{{"node_type":"function_start","params":{{"name":{}}}}}]"#,
        deep(100_000)
    );
    let (r, _) = import(text.as_bytes());
    assert_eq!(r.unwrap().ops, 1);
    // ... but an error for a size, naming the node and the field.
    let text = format!(
        r#"[{{"node_type":"tensor","params":{{}}}},{{"node_type":"buffer_allocate","params":{{"type":"L1","size":{}}}}}]"#,
        deep(100_000)
    );
    let (r, events) = import(text.as_bytes());
    let f = r.unwrap_err();
    assert_eq!(error_node(&f), Some(1), "{f}");
    assert!(f.to_string().contains("size: a non-scalar value"), "{f}");
    error_offset(&f, text.len());
    assert_eq!(f.partial.nodes, 2);
    assert_eq!(events.len(), 1);
    // A node that is a deep array instead of an object.
    let text = format!(r#"[{{"node_type":"tensor"}},{}]"#, deep(100_000));
    let (r, events) = import(text.as_bytes());
    let f = r.unwrap_err();
    assert_eq!(error_node(&f), Some(1), "{f}");
    error_offset(&f, text.len());
    assert_eq!(events.len(), 1);

    let text = format!(
        r#"{{"devices":[{{"device_id":{}}}],"graph":[]}}"#,
        deep(100_000)
    );
    let (r, _) = import(text.as_bytes());
    let f = r.unwrap_err();
    assert!(f.to_string().contains("devices[0]: device_id"), "{f}");
    error_offset(&f, text.len());

    // Unclosed nesting to the end of a large file.
    let text = format!("[{}", "[".repeat(3_000_000));
    let (r, _) = import(text.as_bytes());
    let f = r.unwrap_err();
    assert!(f.to_string().contains("truncated"), "{f}");
}

/// Values the scanner hands out that are not values at all.
#[test]
fn empty_values_are_errors() {
    for text in [
        r#"{"graph":[],"x":}"#,
        r#"{"graph":[],"x":,"y":1}"#,
        r#"[,]"#,
        r#"{"devices":,"graph":[]}"#,
    ] {
        let (r, _) = import(text.as_bytes());
        let f = r.expect_err(text);
        error_offset(&f, text.len());
    }
}
