//! Writes the Python script: a header saying what the trace showed and how
//! to run it, small helpers, one function per cycle, and `main` calling
//! them in the recorded order. Every buffer is a `ttnn.allocate_tensor_on_device`
//! whose buffer has the recorded type, size, page size and layout (see
//! `shape`); each allocation prints its address beside the recorded one.

use super::shape::{request_for, RecordedBuffer};
use crate::cycles::CycleSpan;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use ttalloc_model::buffer_name::StreamNames;
use ttalloc_model::{Event, EventKind, InternTables, SiteId};

/// What the script is made from.
pub struct ScriptInput<'a> {
    pub source: &'a str,
    pub events: &'a [Event],
    pub interner: &'a InternTables,
    pub cycles: &'a [CycleSpan],
    /// Lines for the header: what a replay of the trace found.
    pub findings: Vec<String>,
    /// Ordinals of allocations that leaked (their comment says so).
    pub leaked: HashSet<u64>,
    /// Ordinal of the allocation tt-metal (or the model) refused, with its message.
    pub refused: Option<(u64, String)>,
}

/// What the script could not express exactly.
#[derive(Clone, Debug, Default)]
pub struct ScriptStats {
    pub buffers: u64,
    pub inexact_buffers: u64,
    pub skipped_buffers: u64,
    pub functions: usize,
}

const HELPERS: &str = r#"import ttnn

devices = {}
tensors = {}


def cores(n):
    """n worker cores, row by row on the 8-wide grid."""
    rows, rest = divmod(n, 8)
    ranges = set()
    if rows:
        ranges.add(ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(7, rows - 1)))
    if rest:
        ranges.add(ttnn.CoreRange(ttnn.CoreCoord(0, rows), ttnn.CoreCoord(rest - 1, rows)))
    return ttnn.CoreRangeSet(ranges)


def grid(cols, rows):
    """A cols x rows rectangle of worker cores."""
    return ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(cols - 1, rows - 1))})


def sharded(memory_layout, buffer_type, core_set, shard_shape):
    spec = ttnn.ShardSpec(core_set, shard_shape, ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(memory_layout, buffer_type, spec)


def open_device(device_id, **config):
    devices[device_id] = ttnn.open_device(device_id=device_id, **config)


def close_device(device_id):
    ttnn.close_device(devices.pop(device_id))


def alloc(key, device_id, shape, dtype, layout, memory_config, recorded=None):
    tensor = ttnn.allocate_tensor_on_device(ttnn.Shape(shape), dtype, layout, devices[device_id], memory_config)
    tensors[key] = tensor
    address = tensor.buffer_address()
    same = "" if recorded is None else (" (as recorded)" if address == recorded else f" (recorded {recorded})")
    print(f"alloc {key} on device {device_id}: address {address}{same}")


def alloc_refused(key, device_id, shape, dtype, layout, memory_config):
    """The allocation the recording saw refused: attempt it, print tt-metal's message."""
    try:
        alloc(key, device_id, shape, dtype, layout, memory_config)
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if "Out of Memory:" in line]
        text = lines[0] if lines else str(error).splitlines()[0]
        print("refused: " + text[text.find("Out of Memory:"):].rstrip("."))
        return
    print(f"alloc {key}: not refused this time")


def free(key):
    ttnn.deallocate(tensors.pop(key))
"#;

/// `function (file:line)` of the innermost frame (the file's last component).
fn frame_text(interner: &InternTables, site: SiteId, depth: usize) -> String {
    let frames = interner.resolve(site);
    if frames.is_empty() {
        return "an unknown call site".to_owned();
    }
    frames
        .iter()
        .take(depth)
        .map(|f| {
            let file = f.file.rsplit('/').next().unwrap_or(&f.file);
            format!("{} ({}:{})", f.function, file, f.line)
        })
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// One script line per event (or a comment), into `body`.
struct Emitter<'a> {
    input: &'a ScriptInput<'a>,
    stats: ScriptStats,
    /// Buffers the script allocated (a free of any other is a comment).
    made: HashSet<(u32, u64)>,
    /// Skipped objects of the current function, by what they are.
    skipped: BTreeMap<&'static str, u64>,
    opened: HashSet<u32>,
    /// Buffer names for comments, as every command names them.
    names: StreamNames,
}

impl Emitter<'_> {
    fn event(&mut self, ord: u64, e: &Event, body: &mut String) {
        let it = self.input.interner;
        let name = self.names.name(e, it).unwrap_or_default();
        match &e.kind {
            EventKind::DeviceOpen { device, config, .. } => {
                let mut args = String::new();
                for (k, v) in [
                    ("l1_small_size", config.l1_small_size),
                    ("trace_region_size", config.trace_region_size),
                ] {
                    if let Some(v) = v.filter(|v| *v > 0) {
                        let _ = write!(args, ", {k}={v}");
                    }
                }
                self.opened.insert(device.0);
                let _ = writeln!(body, "    open_device({}{args})", device.0);
            }
            EventKind::DeviceClose { device } => {
                if self.opened.remove(&device.0) {
                    let _ = writeln!(body, "    close_device({})", device.0);
                }
            }
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                address,
                size,
                page_size,
                layout,
                num_cores,
                site,
                ..
            } => {
                self.stats.buffers += 1;
                let rec = RecordedBuffer {
                    buffer_type: *buffer_type,
                    size: *size,
                    page_size: *page_size,
                    layout: *layout,
                    num_cores: *num_cores,
                };
                let what = format!("{size} B {buffer_type} {layout}");
                let by = frame_text(it, *site, 2);
                if self.input.leaked.contains(&ord) {
                    let _ = writeln!(body, "    # {name}, leaked by {by}: {what}");
                } else {
                    let _ = writeln!(body, "    # {name}, by {by}: {what}");
                }
                if !self.opened.contains(&device.0) {
                    self.stats.skipped_buffers += 1;
                    let _ = writeln!(
                        body,
                        "    # (not made: device {} is not open here)",
                        device.0
                    );
                    return;
                }
                match request_for(&rec) {
                    Ok(r) => {
                        if let Some(why) = &r.inexact {
                            self.stats.inexact_buffers += 1;
                            let _ = writeln!(body, "    # NOT EXACT: {why}");
                        }
                        let shape = format!(
                            "[{}, {}, {}, {}]",
                            r.shape[0], r.shape[1], r.shape[2], r.shape[3]
                        );
                        let refused = self.input.refused.as_ref().filter(|(o, _)| *o == ord);
                        if let Some((_, message)) = refused {
                            let _ = writeln!(body, "    # refused in the recording: {message}");
                            let _ = writeln!(
                                body,
                                "    alloc_refused({}, {}, {shape}, {}, {}, {})",
                                buffer.0, device.0, r.dtype, r.layout, r.memory_config
                            );
                        } else {
                            let recorded = address.map_or("None".to_owned(), |a| a.to_string());
                            let _ = writeln!(
                                body,
                                "    alloc({}, {}, {shape}, {}, {}, {}, recorded={recorded})",
                                buffer.0, device.0, r.dtype, r.layout, r.memory_config
                            );
                            self.made.insert((device.0, buffer.0));
                        }
                    }
                    Err(why) => {
                        self.stats.skipped_buffers += 1;
                        let _ = writeln!(body, "    # NOT MADE: {why}");
                    }
                }
            }
            EventKind::BufferFree { device, buffer, .. } => {
                if self.made.remove(&(device.0, buffer.0)) {
                    let _ = writeln!(body, "    free({})", buffer.0);
                } else {
                    let _ = writeln!(body, "    # free of {name} (not made by this script)");
                }
            }
            EventKind::OpBegin { name } => {
                let _ = writeln!(body, "    # op {}", it.string(*name));
            }
            EventKind::Marker { label } => {
                let _ = writeln!(
                    body,
                    "    print({:?})",
                    format!("marker: {}", it.string(*label))
                );
            }
            EventKind::AllocRefused {
                device,
                buffer_type,
                size,
                page_size,
                layout,
                num_cores,
                message,
                ..
            } => {
                // Recorded as refused (trace 2.1): attempt it, nothing is kept.
                let rec = RecordedBuffer {
                    buffer_type: *buffer_type,
                    size: *size,
                    page_size: *page_size,
                    layout: *layout,
                    num_cores: *num_cores,
                };
                let _ = writeln!(
                    body,
                    "    # refused in the recording: {}",
                    it.string(*message)
                );
                match request_for(&rec) {
                    Ok(r) if self.opened.contains(&device.0) => {
                        let shape = format!(
                            "[{}, {}, {}, {}]",
                            r.shape[0], r.shape[1], r.shape[2], r.shape[3]
                        );
                        let _ = writeln!(
                            body,
                            "    alloc_refused(\"refused at event {ord}\", {}, {shape}, {}, {}, {})",
                            device.0, r.dtype, r.layout, r.memory_config
                        );
                    }
                    Ok(_) => {
                        let _ = writeln!(
                            body,
                            "    # (not attempted: device {} is not open here)",
                            device.0
                        );
                    }
                    Err(why) => {
                        let _ = writeln!(body, "    # NOT ATTEMPTED: {why}");
                    }
                }
            }
            EventKind::CbAlloc { .. } => *self.skipped.entry("circular buffers").or_default() += 1,
            EventKind::ProgramLoad { .. } => {
                *self.skipped.entry("program binaries").or_default() += 1
            }
            EventKind::TraceCapture { .. } => {
                *self.skipped.entry("trace captures").or_default() += 1
            }
            EventKind::ProcessStart { .. }
            | EventKind::ProcessExit { .. }
            | EventKind::CbFreeAll { .. }
            | EventKind::ProgramUnload { .. }
            | EventKind::TraceRelease { .. }
            | EventKind::OpEnd => {}
        }
    }

    /// Closes a function: says what it did not make (its docstring keeps it valid when empty).
    fn end_function(&mut self, body: &mut String) {
        if !self.skipped.is_empty() {
            let list: Vec<String> = self
                .skipped
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let _ = writeln!(
                body,
                "    # not reproduced here: {} (ttnn makes these by running ops, not by allocating tensors)",
                list.join(", ")
            );
            self.skipped.clear();
        }
    }
}

/// The whole script.
pub fn write_script(input: &ScriptInput<'_>) -> (String, ScriptStats) {
    let mut em = Emitter {
        input,
        stats: ScriptStats::default(),
        made: HashSet::new(),
        skipped: BTreeMap::new(),
        opened: HashSet::new(),
        names: StreamNames::default(),
    };
    // Runs of events: each cycle, and the stretches between them.
    let mut parts: Vec<(Option<usize>, u64, u64)> = Vec::new();
    let mut next = 0u64;
    let n = input.events.len() as u64;
    for (i, c) in input.cycles.iter().enumerate() {
        if c.start_event > next {
            parts.push((None, next, c.start_event - 1));
        }
        parts.push((
            Some(i + 1),
            c.start_event,
            c.end_event.min(n.saturating_sub(1)),
        ));
        next = c.end_event + 1;
    }
    if next < n {
        parts.push((None, next, n - 1));
    }
    let mut functions = String::new();
    let mut calls = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (cycle, first, last) in parts {
        let base = match cycle {
            Some(c) => format!("cycle_{c}"),
            None if first == 0 => "setup".to_owned(),
            None if last + 1 == n => "teardown".to_owned(),
            None => format!("between_{first}"),
        };
        let count = names.entry(base.clone()).or_default();
        *count += 1;
        let name = if *count > 1 {
            format!("{base}_{count}")
        } else {
            base
        };
        let mut body = format!("def {name}():\n");
        let _ = writeln!(body, "    \"\"\"Events {first}..{last} of the trace.\"\"\"");
        for ord in first..=last {
            em.event(ord, &input.events[ord as usize], &mut body);
        }
        em.end_function(&mut body);
        functions.push_str(&body);
        functions.push_str("\n\n");
        calls.push(name);
    }
    em.stats.functions = calls.len();
    let mut s = String::new();
    let _ = writeln!(s, "#!/usr/bin/env python3");
    let _ = writeln!(
        s,
        "\"\"\"Reproduces the device-memory sequence of {} with ttnn alone.",
        input.source
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "What the trace showed ({} events):", input.events.len());
    if input.findings.is_empty() {
        let _ = writeln!(s, "- nothing (no leak, growth, out-of-memory or bad free)");
    }
    for f in &input.findings {
        let _ = writeln!(s, "- {f}");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Every recorded buffer is a ttnn.allocate_tensor_on_device with the same buffer type, size,\n\
         page size and layout; each allocation prints its address and the recorded one. Lines marked\n\
         NOT EXACT say what could not be expressed and what was used instead ({} of {} buffers).\n\
         Circular buffers, program binaries and trace captures come from running ops: not reproduced.",
        em.stats.inexact_buffers, em.stats.buffers
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Run it on a Tenstorrent device (or the ttnn mock cluster):"
    );
    let _ = writeln!(s, "    TT_LOGGER_LEVEL=off python3 repro.py");
    let _ = writeln!(
        s,
        "and under `ttalloc record -o repro.zst -- python3 repro.py` to compare with the trace."
    );
    let _ = writeln!(
        s,
        "Written by ttalloc {} (`ttalloc repro`).",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(s, "\"\"\"");
    s.push_str(HELPERS);
    s.push_str("\n\n");
    s.push_str(&functions);
    s.push_str("def main():\n");
    for c in &calls {
        let _ = writeln!(s, "    {c}()");
    }
    s.push_str("    for device_id in list(devices):\n        close_device(device_id)\n");
    s.push_str("\n\nif __name__ == \"__main__\":\n    main()\n");
    (s, em.stats)
}
