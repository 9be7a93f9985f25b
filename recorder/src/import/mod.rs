//! Importers: other sources of allocation events turned into ttalloc events.
//!
//! [`import_graph`] reads ttnn's graph capture JSON — the array of nodes that
//! `ttnn.graph.end_graph_capture()` returns, or the report object that
//! `end_graph_capture_to_file` writes (`{"devices": [...], "graph": [...],
//! "metadata": {...}, "version": 1, ...}`) — with string-valued (older
//! tt-metal) or integer-valued (newer) params.
//!
//! Mapping:
//! - a buffer's identity is the `buffer` node that `buffer_allocate` and
//!   `buffer_deallocate` point to through `connections[0]`; each allocation
//!   gets a fresh ttalloc `BufferId` and keeps the reported address;
//! - a `buffer_deallocate` whose buffer was not allocated inside the capture
//!   becomes a `BufferFree` of a never-allocated id (the replayer's
//!   "Deallocation for unknown buffer");
//! - the open `function_start` scopes are the call site: one frame per op,
//!   innermost first, function = op name, file `<ttnn>`, line 0; they also
//!   become `OpBegin`/`OpEnd` events;
//! - `circular_buffer_allocate` -> `CbAlloc` (cores counted from
//!   `core_range_set`), `circular_buffer_deallocate_all` -> `CbFreeAll` (old
//!   versions without `device_id`: every device with CBs);
//! - the report's `devices` entries -> `DeviceOpen` with arch, L1 banks and
//!   bank size, worker L1 size, first allocatable L1 address (the CB base)
//!   and DRAM channels as DRAM banks; a device without an entry is opened
//!   with an unknown layout the first time a node uses it;
//! - `error` nodes -> `Marker`s; `tensor`, `buffer`, `capture_*` carry no
//!   allocation; other node types are counted and reported, never fatal.
//!
//! There are no per-node timestamps: event `i` gets `base_ts + i` ns. The
//! input is streamed node by node; memory follows the live buffers and the
//! largest single node, not the file.

mod convert;
pub mod raw;
mod scan;
pub mod sink;

pub use convert::{count_cores, OP_FRAME_FILE};
pub use sink::{EventSink, SinkError, VecSink};

use convert::{Converter, NodeError};
use raw::{RawDevice, RawNode};
use scan::{json_error_offset, ScanError, Scanner};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Seek};
use ttalloc_model::Pid;

#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Timestamp (ns since the epoch) of the first event.
    pub base_ts: u64,
    /// Process id the events are attributed to.
    pub pid: Pid,
    /// What the `ProcessStart` event's argv says (e.g. "ttnn-graph-capture\0FILE").
    pub source: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            base_ts: 0,
            pid: Pid(0),
            source: "ttnn-graph-capture".into(),
        }
    }
}

/// Which of the two JSON forms the input was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GraphForm {
    /// `end_graph_capture()`: a bare array of nodes.
    #[default]
    Array,
    /// `end_graph_capture_to_file`: an object with `graph` and `devices`.
    Report,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub form: GraphForm,
    pub bytes: u64,
    pub nodes: u64,
    pub events: u64,
    pub ops: u64,
    pub buffers_allocated: u64,
    pub buffers_freed: u64,
    /// Deallocations of buffers allocated before the capture began.
    pub unknown_frees: u64,
    pub cb_allocs: u64,
    pub cb_free_alls: u64,
    pub error_nodes: u64,
    /// Buffers allocated in the capture and never freed, and their bytes.
    pub live_buffers: u64,
    pub live_bytes: u64,
    pub live_bytes_by_type: BTreeMap<ttalloc_model::BufferType, u64>,
    /// Bytes of allocations whose buffer node was allocated again while live.
    pub live_bytes_orphaned: u64,
    /// `function_start`s without their `function_end` at the end.
    pub open_scopes: u64,
    /// Devices opened, in order.
    pub devices: Vec<u32>,
    /// Node types the importer does not know, with their counts.
    pub unknown_node_types: BTreeMap<String, u64>,
    /// Oddities that did not stop the import (count, and the first few).
    pub anomalies: u64,
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub enum ImportError {
    Io(io::Error),
    /// The file is not (valid) JSON of the expected shape at `offset`.
    Syntax {
        offset: u64,
        node: Option<u64>,
        reason: String,
    },
    /// A node that is valid JSON but cannot be converted.
    BadNode {
        index: u64,
        counter: Option<u64>,
        offset: u64,
        reason: String,
    },
    /// The event sink (trace writer) failed.
    Sink(SinkError),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Io(e) => write!(f, "read error: {e}"),
            ImportError::Syntax {
                offset,
                node: Some(n),
                reason,
            } => {
                write!(
                    f,
                    "malformed graph node #{n} at byte offset {offset}: {reason}"
                )
            }
            ImportError::Syntax {
                offset,
                node: None,
                reason,
            } => {
                write!(f, "malformed graph JSON at byte offset {offset}: {reason}")
            }
            ImportError::BadNode {
                index,
                counter,
                offset,
                reason,
            } => {
                write!(f, "graph node #{index}")?;
                if let Some(c) = counter {
                    write!(f, " (counter {c})")?;
                }
                write!(f, " at byte offset {offset}: {reason}")
            }
            ImportError::Sink(e) => write!(f, "writing the trace: {e}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<io::Error> for ImportError {
    fn from(e: io::Error) -> Self {
        ImportError::Io(e)
    }
}

impl From<SinkError> for ImportError {
    fn from(e: SinkError) -> Self {
        ImportError::Sink(e)
    }
}

fn scan_err(e: ScanError, node: Option<u64>) -> ImportError {
    match e {
        ScanError::Io(e) => ImportError::Io(e),
        ScanError::Syntax { offset, reason } => ImportError::Syntax {
            offset,
            node,
            reason,
        },
    }
}

/// An import that stopped at bad input: the error, and what was imported
/// before it (those events are in the sink).
#[derive(Debug)]
pub struct ImportFailure {
    pub error: ImportError,
    pub partial: ImportSummary,
}

impl fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ImportFailure {}

/// Imports a graph capture from `input` into `sink`. On error, the events of
/// the nodes before the bad one have been pushed already (the caller keeps
/// them); the summary of that part comes with the error.
pub fn import_graph<R: Read + Seek, S: EventSink + ?Sized>(
    input: R,
    sink: &mut S,
    opts: ImportOptions,
) -> Result<ImportSummary, Box<ImportFailure>> {
    let mut conv = Converter::new(sink, opts);
    let mut scanner = Scanner::new(input);
    let result = run(&mut scanner, &mut conv);
    let bytes = scanner.offset();
    let mut summary = conv.finish();
    summary.bytes = bytes;
    match result {
        Ok(form) => {
            summary.form = form;
            Ok(summary)
        }
        Err(error) => Err(Box::new(ImportFailure {
            error,
            partial: summary,
        })),
    }
}

fn run<R: Read + Seek, S: EventSink + ?Sized>(
    scanner: &mut Scanner<R>,
    conv: &mut Converter<'_, S>,
) -> Result<GraphForm, ImportError> {
    conv.start()?;
    scanner.skip_bom().map_err(|e| scan_err(e, None))?;
    let form = match scanner.peek().map_err(|e| scan_err(e, None))? {
        Some(b'[') => {
            graph_array(scanner, conv)?;
            GraphForm::Array
        }
        Some(b'{') => {
            report_object(scanner, conv)?;
            GraphForm::Report
        }
        Some(_) => {
            return Err(scan_err(
                scanner.syntax(
                    "expected a JSON array of graph nodes or an object with a \"graph\" key (ttnn graph capture)"
                        .into(),
                ),
                None,
            ))
        }
        None => return Err(scan_err(scanner.syntax("the file is empty".into()), None)),
    };
    if let Some(b) = scanner.peek().map_err(|e| scan_err(e, None))? {
        return Err(scan_err(
            scanner.syntax(format!("unexpected data after the graph ('{}')", b as char)),
            None,
        ));
    }
    Ok(form)
}

/// The report object. `devices` must be turned into `DeviceOpen`s before the
/// graph's events; ttnn writes keys sorted (devices first), but if the graph
/// comes first it is skipped, the devices read, and the graph re-read.
fn report_object<R: Read + Seek, S: EventSink + ?Sized>(
    scanner: &mut Scanner<R>,
    conv: &mut Converter<'_, S>,
) -> Result<(), ImportError> {
    let se = |e| scan_err(e, None);
    scanner.expect(b'{', "'{'").map_err(se)?;
    let mut devices_seen = false;
    let mut graph_done = false;
    let mut deferred_graph: Option<u64> = None;
    let mut end_of_object = None;
    loop {
        match scanner.peek().map_err(se)? {
            Some(b'}') => {
                scanner.bump();
                end_of_object = end_of_object.or(Some(scanner.offset()));
                break;
            }
            Some(b'"') => {}
            _ => {
                return Err(se(
                    scanner.syntax("expected a key or '}' in the report object".into())
                ))
            }
        }
        let (off, raw_key) = scanner.value().map_err(se)?;
        let key: String = serde_json::from_slice(raw_key).map_err(|e| ImportError::Syntax {
            offset: off,
            node: None,
            reason: format!("bad key: {e}"),
        })?;
        let len = raw_key.len();
        scanner.consume(len);
        scanner.expect(b':', "':'").map_err(se)?;
        match key.as_str() {
            "graph" if !graph_done && deferred_graph.is_none() => {
                if devices_seen {
                    graph_array(scanner, conv)?;
                    graph_done = true;
                } else {
                    deferred_graph = Some(scanner.offset());
                    scanner.skip_value().map_err(se)?;
                }
            }
            "devices" if !devices_seen => {
                let (off, raw) = scanner.value().map_err(se)?;
                let devices: Vec<RawDevice> =
                    serde_json::from_slice(raw).map_err(|e| ImportError::Syntax {
                        offset: json_error_offset(off, raw, &e),
                        node: None,
                        reason: format!("devices: {e}"),
                    })?;
                for (i, d) in devices.iter().enumerate() {
                    conv.device_info(d).map_err(|e| match e {
                        NodeError::Sink(e) => ImportError::Sink(e),
                        NodeError::Bad(reason) => ImportError::Syntax {
                            offset: off,
                            node: None,
                            reason: format!("devices[{i}]: {reason}"),
                        },
                    })?;
                }
                let len = raw.len();
                scanner.consume(len);
                devices_seen = true;
            }
            _ => scanner.skip_value().map_err(se)?,
        }
        match scanner.peek().map_err(se)? {
            Some(b',') => scanner.bump(),
            Some(b'}') => {}
            _ => {
                return Err(se(scanner.syntax(
                    "expected ',' or '}' after a value in the report object".into(),
                )))
            }
        }
    }
    if let Some(graph_at) = deferred_graph {
        let resume = end_of_object.unwrap_or(scanner.offset());
        scanner.seek_to(graph_at)?;
        graph_array(scanner, conv)?;
        scanner.seek_to(resume)?;
        graph_done = true;
    }
    if !graph_done {
        return Err(ImportError::Syntax {
            offset: 0,
            node: None,
            reason: "the report object has no \"graph\" key: not a ttnn graph capture".into(),
        });
    }
    Ok(())
}

fn graph_array<R: Read + Seek, S: EventSink + ?Sized>(
    scanner: &mut Scanner<R>,
    conv: &mut Converter<'_, S>,
) -> Result<(), ImportError> {
    scanner
        .expect(b'[', "'[' (the array of graph nodes)")
        .map_err(|e| scan_err(e, None))?;
    if scanner.peek().map_err(|e| scan_err(e, None))? == Some(b']') {
        scanner.bump();
        return Ok(());
    }
    loop {
        let index = conv.summary.nodes;
        let se = |e| scan_err(e, Some(index));
        let (off, raw) = scanner.value().map_err(se)?;
        let node: RawNode = serde_json::from_slice(raw).map_err(|e| ImportError::Syntax {
            offset: json_error_offset(off, raw, &e),
            node: Some(index),
            reason: e.to_string(),
        })?;
        conv.node(&node).map_err(|e| match e {
            NodeError::Sink(e) => ImportError::Sink(e),
            NodeError::Bad(reason) => ImportError::BadNode {
                index,
                counter: node.counter,
                offset: off,
                reason,
            },
        })?;
        let len = raw.len();
        drop(node);
        scanner.consume(len);
        match scanner.peek().map_err(se)? {
            Some(b',') => scanner.bump(),
            Some(b']') => {
                scanner.bump();
                return Ok(());
            }
            Some(b) => {
                return Err(se(scanner.syntax(format!(
                    "expected ',' or ']' after node #{index}, found '{}'",
                    b as char
                ))))
            }
            None => {
                return Err(se(
                    scanner.syntax(format!("the file ends after node #{index} (truncated?)"))
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
