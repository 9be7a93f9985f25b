//! One event as a line of text (what `ttalloc cat` prints by default):
//! `ORDINAL TS pid=PID KIND key=value ... [at SITE]`.
//!
//! [`LineRenderer`] writes lines into a caller's buffer and keeps each call
//! site's text once made: a trace has a few hundred sites and millions of
//! events, and resolving a site (its frames' strings copied, formatted and
//! joined) was most of a line's cost. The kinds nearly every event is
//! (buffer allocs and frees, circular buffers, op scopes, markers) are
//! written field by field; the rare ones go through the same field list the
//! JSON lines use, so both agree on names and order.

use super::fields;
use serde_json::Value;
use std::fmt::Write;
use ttalloc_model::{Event, EventKind, FrameId, InternTables, SiteId, StringId};

/// The call site as `function (file:line) <- caller (file:line) <- ...`, or `?` if unknown.
pub fn site_text(site: SiteId, t: &InternTables) -> String {
    let mut s = String::new();
    write_site(&mut s, site, t, "");
    s
}

/// Appends `site`'s text to `s`, leaving `path_prefix` out of file paths.
fn write_site(s: &mut String, site: SiteId, t: &InternTables, path_prefix: &str) {
    let frames = t.frame_ids(site);
    let mut any = false;
    for f in frames.into_iter().filter_map(|f| t.frame(f)) {
        if any {
            s.push_str(" <- ");
        }
        any = true;
        let file = t.string(f.file);
        let file = file.strip_prefix(path_prefix).unwrap_or(file);
        let _ = write!(s, "{} ({}:{})", t.string(f.function), file, f.line);
    }
    if !any {
        s.push('?');
    }
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

/// Appends `+12.345678 s` after `start` (or `-...` before it).
fn write_relative_time(s: &mut String, ts: u64, start: u64) {
    let (sign, d) = if ts >= start {
        ('+', ts - start)
    } else {
        ('-', start - ts)
    };
    let _ = write!(
        s,
        "{sign}{}.{:06} s",
        d / 1_000_000_000,
        d % 1_000_000_000 / 1000
    );
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
    let mut s = String::new();
    LineRenderer::new(t, style.clone()).write_line(&mut s, ordinal, e, name);
    s
}

/// Writes events as text lines ([`event_line_styled`]'s), keeping each
/// call site's text once made.
pub struct LineRenderer<'t> {
    t: &'t InternTables,
    style: LineStyle,
    /// Text of site `i` at `i`, once made.
    sites: Vec<Option<Box<str>>>,
}

impl<'t> LineRenderer<'t> {
    pub fn new(t: &'t InternTables, style: LineStyle) -> Self {
        LineRenderer {
            t,
            style,
            sites: Vec::new(),
        }
    }

    /// Appends event `e`'s line (no newline) to `s`.
    pub fn write_line(&mut self, s: &mut String, ordinal: u64, e: &Event, name: Option<&str>) {
        let _ = write!(s, "{ordinal} ");
        match self.style.start_ts {
            Some(start) => write_relative_time(s, e.ts, start),
            None => {
                let _ = write!(s, "{}", e.ts);
            }
        }
        let _ = write!(s, " pid={} {}", e.pid.0, e.kind.tag().name());
        if !self.write_common_fields(s, e, name) {
            write_fields(s, e, self.t, name);
        }
        if let Some(site) = e.kind.site() {
            s.push_str(" at ");
            s.push_str(self.site(site));
        }
    }

    /// The text of `site`, made on first use.
    fn site(&mut self, site: SiteId) -> &str {
        let i = site.0 as usize;
        if i >= self.sites.len() {
            self.sites.resize(i + 1, None);
        }
        let (t, prefix) = (self.t, self.style.path_prefix.as_str());
        self.sites[i].get_or_insert_with(|| {
            let mut text = String::new();
            write_site(&mut text, site, t, prefix);
            text.into_boxed_str()
        })
    }

    /// Writes the fields of the kinds nearly every event is, as
    /// [`write_fields`] would; returns false for other kinds (nothing
    /// written).
    fn write_common_fields(&self, s: &mut String, e: &Event, name: Option<&str>) -> bool {
        let t = self.t;
        match &e.kind {
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
                ..
            } => {
                write_device_and_buffer(s, device.0, buffer.0, name);
                let _ = write!(s, " buffer_type={:?}", buffer_type.name());
                if let Some(a) = address {
                    let _ = write!(s, " address={a:#x}");
                }
                let _ = write!(s, " size={size}");
                if let Some(p) = page_size {
                    let _ = write!(s, " page_size={p}");
                }
                let _ = write!(s, " layout={:?}", layout.name());
                if let Some(n) = num_cores {
                    let _ = write!(s, " num_cores={n}");
                }
                if let Some(p) = per_bank_size {
                    let _ = write!(s, " per_bank_size={p}");
                }
                if name.is_none() && *label != StringId::EMPTY {
                    let _ = write!(s, " label={:?}", t.string(*label));
                }
            }
            EventKind::BufferFree { device, buffer, .. } => {
                write_device_and_buffer(s, device.0, buffer.0, name);
            }
            EventKind::CbAlloc {
                device,
                address,
                size,
                cores,
                globally_allocated,
                ..
            } => {
                let _ = write!(s, " device={} address={address:#x} size={size}", device.0);
                if let Some(c) = cores {
                    let _ = write!(s, " cores={c}");
                }
                let _ = write!(s, " globally_allocated={globally_allocated}");
            }
            EventKind::CbFreeAll { device } => {
                let _ = write!(s, " device={}", device.0);
            }
            EventKind::OpBegin { name } => {
                let _ = write!(s, " name={:?}", t.string(*name));
            }
            EventKind::Marker { label } => {
                let _ = write!(s, " label={:?}", t.string(*label));
            }
            EventKind::OpEnd => {}
            _ => return false,
        }
        true
    }
}

/// ` device=D buffer=B`, the buffer as its name when it has one.
fn write_device_and_buffer(s: &mut String, device: u32, buffer: u64, name: Option<&str>) {
    let _ = write!(s, " device={device}");
    match name {
        Some(n) => {
            let _ = write!(s, " buffer={n:?}");
        }
        None => {
            let _ = write!(s, " buffer={buffer}");
        }
    }
}

/// Appends `e`'s fields as `key=value` pairs, from the field list the JSON
/// lines use: strings quoted, addresses in hex, absent values left out.
fn write_fields(s: &mut String, e: &Event, t: &InternTables, name: Option<&str>) {
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
}

#[cfg(test)]
mod tests;
