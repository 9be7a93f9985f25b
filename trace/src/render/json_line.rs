//! One event as a line of JSON (`ttalloc cat --jsonl`), written straight
//! into a caller's buffer: the same object [`super::event_json`] builds,
//! keys in the same (sorted) order, without a map of values per event.
//! Each call site's JSON is made once; the kinds nearly every event is are
//! written key by key, the rare ones through `event_json`.

use super::event_json;
use std::fmt::Write;
use ttalloc_model::{Event, EventKind, InternTables, SiteId, StringId};

/// Writes events as JSON lines, keeping each call site's JSON once made.
pub struct JsonLineRenderer<'t> {
    t: &'t InternTables,
    /// JSON of site `i` at `i`, once made.
    sites: Vec<Option<Box<str>>>,
}

impl<'t> JsonLineRenderer<'t> {
    pub fn new(t: &'t InternTables) -> Self {
        JsonLineRenderer {
            t,
            sites: Vec::new(),
        }
    }

    /// Appends event `e`'s JSON object (no newline) to `s`; `name`, when
    /// given, is the buffer's display name.
    pub fn write_line(&mut self, s: &mut String, ordinal: u64, e: &Event, name: Option<&str>) {
        if !self.write_common(s, ordinal, e, name) {
            let _ = write!(s, "{}", event_json(ordinal, e, self.t, name));
        }
    }

    /// The JSON of `site`, made on first use.
    fn site(&mut self, site: SiteId) -> &str {
        let i = site.0 as usize;
        if i >= self.sites.len() {
            self.sites.resize(i + 1, None);
        }
        let t = self.t;
        self.sites[i].get_or_insert_with(|| {
            serde_json::to_value(t.resolve(site))
                .unwrap_or_default()
                .to_string()
                .into_boxed_str()
        })
    }

    /// Writes the kinds nearly every event is, keys sorted as
    /// `event_json`'s map sorts them; returns false for other kinds
    /// (nothing written).
    fn write_common(
        &mut self,
        s: &mut String,
        ordinal: u64,
        e: &Event,
        name: Option<&str>,
    ) -> bool {
        let t = self.t;
        let pid = e.pid.0;
        let ts = e.ts;
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
                site,
            } => {
                s.push_str("{\"address\":");
                opt(s, *address);
                let _ = write!(
                    s,
                    ",\"buffer\":{},\"buffer_type\":\"{}\",\"device\":{},\"kind\":\"buffer_alloc\",\"label\":",
                    buffer.0,
                    buffer_type.name(),
                    device.0
                );
                if *label == StringId::EMPTY {
                    s.push_str("null");
                } else {
                    json_str(s, t.string(*label));
                }
                let _ = write!(s, ",\"layout\":\"{}\"", layout.name());
                named(s, name);
                s.push_str(",\"num_cores\":");
                opt(s, *num_cores);
                let _ = write!(s, ",\"ordinal\":{ordinal},\"page_size\":");
                opt(s, *page_size);
                s.push_str(",\"per_bank_size\":");
                opt(s, *per_bank_size);
                let _ = write!(s, ",\"pid\":{pid},\"site\":");
                s.push_str(self.site(*site));
                let _ = write!(s, ",\"size\":{size},\"ts\":{ts}}}");
            }
            EventKind::BufferFree {
                device,
                buffer,
                site,
            } => {
                let _ = write!(
                    s,
                    "{{\"buffer\":{},\"device\":{},\"kind\":\"buffer_free\"",
                    buffer.0, device.0
                );
                named(s, name);
                let _ = write!(s, ",\"ordinal\":{ordinal},\"pid\":{pid},\"site\":");
                s.push_str(self.site(*site));
                let _ = write!(s, ",\"ts\":{ts}}}");
            }
            EventKind::CbAlloc {
                device,
                address,
                size,
                cores,
                globally_allocated,
                site,
            } => {
                let _ = write!(s, "{{\"address\":{address},\"cores\":");
                opt(s, *cores);
                let _ = write!(
                    s,
                    ",\"device\":{},\"globally_allocated\":{globally_allocated},\"kind\":\"cb_alloc\"",
                    device.0
                );
                named(s, name);
                let _ = write!(s, ",\"ordinal\":{ordinal},\"pid\":{pid},\"site\":");
                s.push_str(self.site(*site));
                let _ = write!(s, ",\"size\":{size},\"ts\":{ts}}}");
            }
            EventKind::CbFreeAll { device } => {
                let _ = write!(s, "{{\"device\":{},\"kind\":\"cb_free_all\"", device.0);
                named(s, name);
                let _ = write!(s, ",\"ordinal\":{ordinal},\"pid\":{pid},\"ts\":{ts}}}");
            }
            // An op's "name" is its own: a buffer name would replace it in
            // event_json's map, so that rare case goes there.
            EventKind::OpBegin { name: op } if name.is_none() => {
                s.push_str("{\"kind\":\"op_begin\",\"name\":");
                json_str(s, t.string(*op));
                let _ = write!(s, ",\"ordinal\":{ordinal},\"pid\":{pid},\"ts\":{ts}}}");
            }
            EventKind::OpEnd => {
                s.push_str("{\"kind\":\"op_end\"");
                named(s, name);
                let _ = write!(s, ",\"ordinal\":{ordinal},\"pid\":{pid},\"ts\":{ts}}}");
            }
            EventKind::Marker { label } => {
                s.push_str("{\"kind\":\"marker\",\"label\":");
                json_str(s, t.string(*label));
                named(s, name);
                let _ = write!(s, ",\"ordinal\":{ordinal},\"pid\":{pid},\"ts\":{ts}}}");
            }
            _ => return false,
        }
        true
    }
}

/// `,"name":NAME` when there is a name (its place in the sorted keys).
fn named(s: &mut String, name: Option<&str>) {
    if let Some(n) = name {
        s.push_str(",\"name\":");
        json_str(s, n);
    }
}

/// A number, or `null`.
fn opt<T: std::fmt::Display>(s: &mut String, v: Option<T>) {
    match v {
        Some(v) => {
            let _ = write!(s, "{v}");
        }
        None => s.push_str("null"),
    }
}

/// `x` as a JSON string, escaped as serde_json escapes it.
fn json_str(s: &mut String, x: &str) {
    s.push('"');
    let mut from = 0;
    for (i, b) in x.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        s.push_str(&x[from..i]);
        if escape.is_empty() {
            let _ = write!(s, "\\u{b:04x}");
        } else {
            s.push_str(escape);
        }
        from = i + 1;
    }
    s.push_str(&x[from..]);
    s.push('"');
}

#[cfg(test)]
mod tests;
