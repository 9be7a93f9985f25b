//! The op a bisected allocation happened in: the innermost `OpBegin` scope
//! open in its process at that event (the ttnn capture wraps every op it
//! sees; the hand API's `ttalloc.op(...)` too). Found by reading the events
//! up to it once, after the replay (only with `--bisect`).

use crate::source::EventSource;
use crate::Result;
use ttalloc_model::hash::FastMap;
use ttalloc_model::{EventKind, Pid, StringId};

/// The name of the innermost op open at event `ordinal` in that event's
/// process, or `None` outside every op (or past the end).
pub fn enclosing_op(src: &dyn EventSource, ordinal: u64) -> Result<Option<String>> {
    let mut open: FastMap<Pid, Vec<StringId>> = FastMap::default();
    let mut found: Option<Option<StringId>> = None;
    src.visit_prefix(ordinal.saturating_add(1), &mut |first, events| {
        for (i, e) in events.iter().enumerate() {
            if found.is_some() {
                break;
            }
            if first + i as u64 == ordinal {
                found = Some(open.get(&e.pid).and_then(|s| s.last().copied()));
                break;
            }
            match e.kind {
                EventKind::OpBegin { name } => open.entry(e.pid).or_default().push(name),
                EventKind::OpEnd => {
                    open.entry(e.pid).or_default().pop();
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(found
        .flatten()
        .map(|name| src.interner().string(name).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryTrace;
    use ttalloc_model::{Event, InternTables};

    #[test]
    fn the_innermost_op_of_the_events_own_process() {
        let mut it = InternTables::default();
        let outer = it.intern_string("model.forward");
        let inner = it.intern_string("ttnn.add");
        let other = it.intern_string("ttnn.matmul");
        let ev = |pid: u32, kind| Event {
            ts: 0,
            pid: Pid(pid),
            kind,
        };
        let events = vec![
            ev(1, EventKind::OpBegin { name: outer }),
            ev(1, EventKind::OpBegin { name: inner }),
            ev(2, EventKind::OpBegin { name: other }), // another process's op
            ev(1, EventKind::Marker { label: inner }), // 3: inside ttnn.add
            ev(1, EventKind::OpEnd),
            ev(1, EventKind::Marker { label: inner }), // 5: back in model.forward
            ev(1, EventKind::OpEnd),
            ev(1, EventKind::Marker { label: inner }), // 7: outside every op
        ];
        let src = MemoryTrace::new(events, it);
        assert_eq!(enclosing_op(&src, 3).unwrap().as_deref(), Some("ttnn.add"));
        assert_eq!(
            enclosing_op(&src, 5).unwrap().as_deref(),
            Some("model.forward")
        );
        assert_eq!(enclosing_op(&src, 7).unwrap(), None);
        assert_eq!(enclosing_op(&src, 99).unwrap(), None);
    }
}
