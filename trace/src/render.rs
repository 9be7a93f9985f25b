//! One event as a line of text or a JSON object, with strings and call sites
//! resolved (what `ttalloc cat` prints).

use serde_json::{json, Map, Value};
use std::fmt::Write;
use ttalloc_model::event::split_argv;
use ttalloc_model::{Event, EventKind, FrameId, InternTables, SiteId, StringId};

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

/// The call site as `function (file:line) <- caller (file:line) <- ...`, or `?` if unknown.
pub fn site_text(site: SiteId, t: &InternTables) -> String {
    site_text_styled(site, t, &LineStyle::absolute())
}

fn site_text_styled(site: SiteId, t: &InternTables, style: &LineStyle) -> String {
    let frames = t.resolve(site);
    if frames.is_empty() {
        return "?".into();
    }
    let parts: Vec<String> = frames
        .iter()
        .map(|f| {
            let file = f.file.strip_prefix(&*style.path_prefix).unwrap_or(&f.file);
            format!("{} ({}:{})", f.function, file, f.line)
        })
        .collect();
    parts.join(" <- ")
}

/// How a text line shows times and source files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineStyle {
    /// Times as `+S.ffffff s` after this timestamp; `None`: raw nanoseconds.
    pub start_ts: Option<u64>,
    /// Left out at the start of every file path ("" keeps them whole).
    pub path_prefix: String,
}

impl LineStyle {
    /// Raw epoch nanoseconds and whole paths.
    pub fn absolute() -> LineStyle {
        LineStyle::default()
    }

    /// Times after `start_ts`, and paths under the directory every absolute
    /// source path of the trace shares.
    pub fn relative(start_ts: u64, t: &InternTables) -> LineStyle {
        LineStyle {
            start_ts: Some(start_ts),
            path_prefix: common_dir(t),
        }
    }
}

/// The longest directory (ending in '/') that holds every absolute file
/// path of the trace's frames; "" when they share none but the root.
pub fn common_dir(t: &InternTables) -> String {
    let mut prefix: Option<&str> = None;
    for i in 0..t.num_frames() {
        let Some(frame) = t.frame(FrameId(i as u32)) else {
            continue;
        };
        let file = t.string(frame.file);
        if !file.starts_with('/') {
            continue;
        }
        let dir = &file[..=file.rfind('/').unwrap_or(0)];
        prefix = Some(match prefix {
            None => dir,
            Some(p) => {
                let same = p
                    .bytes()
                    .zip(dir.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &p[..=p[..same].rfind('/').unwrap_or(0)]
            }
        });
    }
    match prefix {
        Some(p) if p.len() > 1 => p.to_owned(),
        _ => String::new(),
    }
}

/// `+12.345678 s` after `start` (or `-...` before it).
fn relative_time(ts: u64, start: u64) -> String {
    let (sign, d) = if ts >= start {
        ('+', ts - start)
    } else {
        ('-', start - ts)
    };
    format!(
        "{sign}{}.{:06} s",
        d / 1_000_000_000,
        d % 1_000_000_000 / 1000
    )
}

/// `ORDINAL TS pid=PID KIND key=value ... [at SITE]`.
pub fn event_line(ordinal: u64, e: &Event, t: &InternTables) -> String {
    event_line_styled(ordinal, e, t, &LineStyle::absolute(), None)
}

/// [`event_line`] with times and paths shown as `style` says; `name`, when
/// given, is the buffer's display name (`ttalloc_model::buffer_name`),
/// shown as `buffer="process P buffer K (LABEL)"` instead of the raw id and label.
pub fn event_line_styled(
    ordinal: u64,
    e: &Event,
    t: &InternTables,
    style: &LineStyle,
    name: Option<&str>,
) -> String {
    let ts = match style.start_ts {
        Some(start) => relative_time(e.ts, start),
        None => e.ts.to_string(),
    };
    let mut s = format!("{ordinal} {ts} pid={} {}", e.pid.0, e.kind.tag().name());
    for (k, v) in fields(e, t) {
        match v {
            _ if k == "label" && name.is_some() => {}
            _ if k == "buffer" && name.is_some() => {
                let _ = write!(s, " {k}={:?}", name.unwrap_or_default());
            }
            Value::Null => {}
            Value::Number(n) if k == "address" => {
                let _ = write!(s, " {k}={:#x}", n.as_u64().unwrap_or(0));
            }
            Value::String(x) => {
                let _ = write!(s, " {k}={x:?}");
            }
            other => {
                let _ = write!(s, " {k}={other}");
            }
        }
    }
    if let Some(site) = e.kind.site() {
        let _ = write!(s, " at {}", site_text_styled(site, t, style));
    }
    s
}
