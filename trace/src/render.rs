//! One event as a line of text or a JSON object, with strings and call sites
//! resolved (what `ttalloc cat` prints).

mod json_line;
mod line;
#[cfg(test)]
mod test_events;

pub use json_line::JsonLineRenderer;

pub use line::{common_dir, event_line, event_line_styled, site_text, LineRenderer, LineStyle};

use serde_json::{json, Map, Value};
use ttalloc_model::event::split_argv;
use ttalloc_model::{Event, EventKind, InternTables, StringId};

/// The event's fields in a readable order (ids resolved to strings where
/// they are interned strings).
fn fields(e: &Event, t: &InternTables) -> Vec<(&'static str, Value)> {
    let mut m = Vec::new();
    let mut put = |k: &'static str, v: Value| m.push((k, v));
    if let Some(d) = e.kind.device() {
        put("device", json!(d.0));
    }
    match &e.kind {
        EventKind::ProcessStart { ppid, argv } => {
            put("ppid", json!(ppid.0));
            put("argv", json!(split_argv(t.string(*argv))));
        }
        EventKind::ProcessExit { status } => put("status", json!(status)),
        EventKind::DeviceOpen { arch, config, .. } => {
            put("arch", json!(arch.name()));
            put(
                "config",
                serde_json::to_value(config).unwrap_or(Value::Null),
            );
        }
        EventKind::BufferAlloc {
            buffer,
            buffer_type,
            address,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            label,
            ..
        } => {
            put("buffer", json!(buffer.0));
            put("buffer_type", json!(buffer_type.name()));
            put("address", json!(address));
            put("size", json!(size));
            put("page_size", json!(page_size));
            put("layout", json!(layout.name()));
            put("num_cores", json!(num_cores));
            put("per_bank_size", json!(per_bank_size));
            put("label", label_json(*label, t));
        }
        EventKind::AllocRefused {
            buffer_type,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            message,
            ..
        } => {
            put("buffer_type", json!(buffer_type.name()));
            put("size", json!(size));
            put("page_size", json!(page_size));
            put("layout", json!(layout.name()));
            put("num_cores", json!(num_cores));
            put("per_bank_size", json!(per_bank_size));
            put("message", json!(t.string(*message)));
        }
        EventKind::BufferFree { buffer, .. } => put("buffer", json!(buffer.0)),
        EventKind::CbAlloc {
            address,
            size,
            cores,
            globally_allocated,
            ..
        } => {
            put("address", json!(address));
            put("size", json!(size));
            put("cores", json!(cores));
            put("globally_allocated", json!(globally_allocated));
        }
        EventKind::ProgramLoad {
            program,
            binary_size,
            ..
        } => {
            put("program", json!(program.0));
            put("binary_size", json!(binary_size));
        }
        EventKind::ProgramUnload { program, .. } => put("program", json!(program.0)),
        EventKind::TraceCapture { trace_id, size, .. } => {
            put("trace_id", json!(trace_id.0));
            put("size", json!(size));
        }
        EventKind::TraceRelease { trace_id, .. } => put("trace_id", json!(trace_id.0)),
        EventKind::OpBegin { name } => put("name", json!(t.string(*name))),
        EventKind::Marker { label } => put("label", json!(t.string(*label))),
        EventKind::DeviceClose { .. } | EventKind::CbFreeAll { .. } | EventKind::OpEnd => {}
    }
    m
}

/// A buffer label: its text, or null when the buffer has none.
fn label_json(label: StringId, t: &InternTables) -> Value {
    if label == StringId::EMPTY {
        Value::Null
    } else {
        json!(t.string(label))
    }
}

/// `{"ordinal", "ts", "pid", "kind", ...fields, "site": [{function, file, line}, ...]}`;
/// `site` (innermost frame first) is present for kinds that carry one.
/// `name`, when given, is the buffer's display name
/// (`ttalloc_model::buffer_name`), added as `"name"`.
pub fn event_json(ordinal: u64, e: &Event, t: &InternTables, name: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("ordinal".into(), json!(ordinal));
    m.insert("ts".into(), json!(e.ts));
    m.insert("pid".into(), json!(e.pid.0));
    m.insert("kind".into(), json!(e.kind.tag().name()));
    m.extend(fields(e, t).into_iter().map(|(k, v)| (k.to_string(), v)));
    if let Some(n) = name {
        m.insert("name".into(), json!(n));
    }
    if let Some(site) = e.kind.site() {
        m.insert(
            "site".into(),
            serde_json::to_value(t.resolve(site)).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}
