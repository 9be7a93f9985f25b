//! Writes a minimised trace: the kept events, with intern tables holding
//! only the strings, frames and call stacks they use, and a provenance
//! record saying what it was minimised from.

use super::store::EventStore;
use crate::Result;
use std::collections::HashMap;
use std::path::Path;
use ttalloc_model::{Event, InternTables, SiteId, StringId};
use ttalloc_trace::{Provenance, TraceHeader, TraceWriter, WriterOptions};

/// Re-interns the ids of kept events into a fresh table.
struct Pruner<'a> {
    from: &'a InternTables,
    to: InternTables,
    sites: HashMap<SiteId, SiteId>,
}

impl Pruner<'_> {
    fn string(&mut self, id: StringId) -> StringId {
        self.to.intern_string(self.from.string(id))
    }

    fn site(&mut self, id: SiteId) -> SiteId {
        if let Some(&s) = self.sites.get(&id) {
            return s;
        }
        let frames = self.from.resolve(id);
        let triples: Vec<(&str, &str, u32)> = frames
            .iter()
            .map(|f| (f.function.as_str(), f.file.as_str(), f.line))
            .collect();
        let s = self.to.intern_stack_str(&triples);
        self.sites.insert(id, s);
        s
    }

    fn event(&mut self, e: &Event) -> Event {
        let mut kind = e.kind.clone();
        // Every kind names at most one string and one site.
        if let Some(s) = kind.string_mut() {
            *s = self.string(*s);
        }
        if let Some(s) = kind.site_mut() {
            *s = self.site(*s);
        }
        Event {
            ts: e.ts,
            pid: e.pid,
            kind,
        }
    }
}

/// The kept events with ids re-interned into pruned tables.
pub fn prune(
    events: &dyn EventStore,
    kept: &[u32],
    interner: &InternTables,
) -> Result<(Vec<Event>, InternTables)> {
    let mut p = Pruner {
        from: interner,
        to: InternTables::new(),
        sites: HashMap::new(),
    };
    let mut out = Vec::with_capacity(kept.len());
    events.each_of(kept, &mut |_, e| {
        out.push(p.event(e));
        Ok(())
    })?;
    Ok((out, p.to))
}

/// Writes the minimised trace to `path` (which must not be the input).
pub fn write(
    path: &Path,
    header: TraceHeader,
    provenance: &Provenance,
    events: &[Event],
    interner: InternTables,
) -> Result<()> {
    let mut w = TraceWriter::create(path, header, WriterOptions::default())?;
    w.write_provenance(provenance)?;
    *w.interner_mut() = interner;
    for e in events {
        w.push(e)?;
    }
    w.finish()?;
    Ok(())
}
