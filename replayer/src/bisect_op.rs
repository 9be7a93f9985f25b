//! The op a bisected allocation happened in: the innermost `OpBegin` scope
//! open in its process at that event (the ttnn capture wraps every op it
//! sees; the hand API's `ttalloc.op(...)` too). Found after the replay
//! (only with `--bisect`) by reading back from that event to the begin that
//! no later end closes: a block or two, not the whole prefix. Matching
//! begins and ends backwards leaves the same begins open as the forward
//! stack does (an end with nothing open closes nothing either way).

use crate::source::EventSource;
use crate::Result;
use ttalloc_model::{EventKind, Pid, StringId};

/// The name of the innermost op open at event `ordinal` in that event's
/// process, or `None` outside every op (or past the end).
pub fn enclosing_op(src: &dyn EventSource, ordinal: u64) -> Result<Option<String>> {
    if ordinal >= src.num_events() {
        return Ok(None);
    }
    let mut pid: Option<Pid> = None;
    // Ends seen (going back) that are not yet matched by a begin.
    let mut unmatched_ends = 0u64;
    let mut found: Option<StringId> = None;
    src.visit_back(ordinal, &mut |first, events| {
        let upto = ordinal.saturating_sub(first).min(events.len() as u64) as usize;
        let before = match pid {
            None => {
                let Some(target) = events.get(upto) else {
                    return Ok(false);
                };
                pid = Some(target.pid);
                &events[..upto]
            }
            Some(_) => &events[..upto],
        };
        let pid = pid.expect("set above");
        for e in before.iter().rev().filter(|e| e.pid == pid) {
            match e.kind {
                EventKind::OpEnd => unmatched_ends += 1,
                EventKind::OpBegin { name } if unmatched_ends == 0 => {
                    found = Some(name);
                    return Ok(false);
                }
                EventKind::OpBegin { .. } => unmatched_ends -= 1,
                _ => {}
            }
        }
        Ok(true)
    })?;
    Ok(found.map(|name| src.interner().string(name).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::CHUNK;
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

    /// The forward reading: a stack of open ops per process, an end with
    /// nothing open closing nothing.
    fn forward_reference(events: &[Event], ordinal: usize) -> Option<StringId> {
        let mut open: std::collections::HashMap<Pid, Vec<StringId>> = Default::default();
        for e in &events[..ordinal] {
            match e.kind {
                EventKind::OpBegin { name } => open.entry(e.pid).or_default().push(name),
                EventKind::OpEnd => {
                    open.entry(e.pid).or_default().pop();
                }
                _ => {}
            }
        }
        open.get(&events[ordinal].pid)?.last().copied()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Reading back from the event finds what the forward stack holds,
        /// with unbalanced ends, two processes, and scopes that open in an
        /// earlier chunk than the event (in-memory chunks are 65,536 events).
        #[test]
        fn reading_back_agrees_with_the_forward_stack(
            steps in proptest::collection::vec((0u8..6, 0u32..2), 1..400),
            padding in 0usize..2,
            picks in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 1..8),
        ) {
            let mut it = InternTables::default();
            let names: Vec<StringId> =
                (0..3).map(|i| it.intern_string(&format!("op{i}"))).collect();
            let mut events = Vec::new();
            for (k, pid) in steps {
                let kind = match k {
                    0 | 1 => EventKind::OpBegin { name: names[k as usize + pid as usize] },
                    2 | 3 => EventKind::OpEnd,
                    _ => EventKind::Marker { label: names[0] },
                };
                events.push(Event { ts: 0, pid: Pid(pid + 1), kind });
                if padding == 1 && events.len() == 50 {
                    // Push what follows past the first in-memory chunk.
                    for _ in 0..CHUNK {
                        events.push(Event { ts: 0, pid: Pid(3), kind: EventKind::Marker { label: names[0] } });
                    }
                }
            }
            let src = MemoryTrace::new(events.clone(), it);
            for pick in picks {
                let at = pick.index(events.len());
                let want = forward_reference(&events, at).map(|n| src.interner().string(n).to_owned());
                proptest::prop_assert_eq!(enclosing_op(&src, at as u64).unwrap(), want, "event {}", at);
            }
        }
    }
}
