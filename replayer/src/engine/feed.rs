//! Feeding chunks of events to the engine, with cycle boundaries applied.
//!
//! The hot path is a trace block's columns with no observer: buffer allocs
//! and frees (nearly all of a trace), circular buffers, programs and traces
//! go straight to their handlers, and op scopes no cycle rule looks at are
//! skipped, with one ordinal compare per event for precomputed spans. Every
//! event that may start or end a cycle, and every event of an in-memory
//! chunk or of an observed replay, takes the general step ([`Engine::step`]).

use super::*;
use ttalloc_trace::BlockColumns;

const ALLOC: u8 = EventTag::BufferAlloc as u8;
const FREE: u8 = EventTag::BufferFree as u8;
const OP_BEGIN: u8 = EventTag::OpBegin as u8;
const OP_END: u8 = EventTag::OpEnd as u8;
const MARKER: u8 = EventTag::Marker as u8;

impl Engine<'_> {
    /// Replays `events`, the first of which has ordinal `first`.
    pub fn feed(&mut self, first: u64, events: &[Event]) -> crate::Result<()> {
        self.feed_chunk(&Chunk::Events { first, events })
    }

    /// Replays a chunk of consecutive events.
    pub fn feed_chunk(&mut self, chunk: &Chunk<'_>) -> crate::Result<()> {
        if let Some(o) = self.observer.as_deref_mut() {
            o.chunk(chunk);
        }
        let mut online = self.online.take();
        let result = match (chunk, self.observer.is_some()) {
            (Chunk::Columns { first, columns }, false) => {
                self.feed_columns(online.as_mut(), *first, columns)
            }
            (_, false) => {
                chunk.try_for_each(|ord, item| self.step::<false>(online.as_mut(), ord, &item))
            }
            (_, true) => {
                chunk.try_for_each(|ord, item| self.step::<true>(online.as_mut(), ord, &item))
            }
        };
        self.online = online;
        self.events = self.events.max(chunk.first() + chunk.len() as u64);
        result
    }

    /// A block's columns, no observer: the walk of `Chunk::try_for_each`,
    /// with the events that cannot bound a cycle handled in place.
    fn feed_columns(
        &mut self,
        mut online: Option<&mut OnlineCycles>,
        first: u64,
        c: &BlockColumns,
    ) -> crate::Result<()> {
        if self.stopped {
            return Ok(());
        }
        // Events the online rule looks at (some rules follow op scopes).
        let bounding: u32 = match online.as_ref() {
            Some(o) => (0..EventTag::ALL.len() as u8)
                .filter(|&t| o.looks_at(t))
                .fold(0, |bits, t| bits | 1 << t),
            None => 0,
        };
        let looks_at = |tag: u8| bounding & (1 << tag) != 0;
        let ops_bound = looks_at(OP_BEGIN) || looks_at(OP_END);
        // The next ordinal where a precomputed span starts or ends (never,
        // with an online rule): there the general step runs.
        let mut mark = self.next_start.min(self.cur_end);
        let (mut ka, mut kf, mut kn) = (0usize, 0usize, 0usize);
        let mut others = c.others.iter();
        for (pos, &tag) in c.tags.iter().enumerate() {
            let ord = first + pos as u64;
            if pos % 64 == 0 {
                prefetch(&c.tags, pos + TAGS_AHEAD);
            }
            let item = match tag {
                ALLOC => {
                    let Some(a) = c.allocs.get(ka) else { continue };
                    // The decoder wrote the columns on another core: ask for
                    // the lines a few events ahead.
                    prefetch(&c.allocs, ka + ALLOCS_AHEAD);
                    ka += 1;
                    if ord != mark {
                        self.alloc_col(ord, a)?;
                        if self.stopped {
                            return Ok(());
                        }
                        continue;
                    }
                    Item::Alloc(a)
                }
                FREE => {
                    let Some(x) = c.frees.get(kf) else { continue };
                    prefetch(&c.frees, kf + FREES_AHEAD);
                    kf += 1;
                    if ord != mark {
                        let dev = self.dev_index(x.device)?;
                        self.free(ord, dev, x.buffer, x.site);
                        continue;
                    }
                    Item::Free(x)
                }
                OP_BEGIN | OP_END | MARKER => {
                    let kind = if tag == OP_END {
                        EventKind::OpEnd
                    } else {
                        let Some(&id) = c.names.get(kn) else { continue };
                        kn += 1;
                        if tag == OP_BEGIN {
                            EventKind::OpBegin { name: id }
                        } else {
                            EventKind::Marker { label: id }
                        }
                    };
                    // Op scopes do nothing to the devices.
                    if tag != MARKER && !ops_bound && ord != mark {
                        continue;
                    }
                    Item::Light(Event {
                        ts: c.ts.get(pos).copied().unwrap_or(0),
                        pid: Pid(c.pid.get(pos).copied().unwrap_or(0)),
                        kind,
                    })
                }
                t if t as usize >= EventTag::ALL.len() => continue,
                _ => {
                    let Some((_, e)) = others.next() else {
                        continue;
                    };
                    if ord != mark && !looks_at(tag) {
                        self.event(ord, e)?;
                        if self.stopped {
                            return Ok(());
                        }
                        continue;
                    }
                    Item::Event(e)
                }
            };
            self.step::<false>(online.as_deref_mut(), ord, &item)?;
            if self.stopped {
                return Ok(());
            }
            mark = self.next_start.min(self.cur_end);
        }
        Ok(())
    }

    /// One event: the cycle boundaries it makes (precomputed spans, or the
    /// online rule), the event itself, and the observer.
    #[inline]
    fn step<const OBSERVE: bool>(
        &mut self,
        online: Option<&mut OnlineCycles>,
        ord: u64,
        item: &Item<'_>,
    ) -> crate::Result<()> {
        if self.stopped {
            return Ok(());
        }
        let Some(cycles) = online else {
            if ord == self.next_start {
                self.cur_end = self.spans[self.next_cycle].end_event;
                self.next_start = u64::MAX;
                self.start_cycle(ord, marker_label(item));
            }
            self.item(ord, item)?;
            if OBSERVE {
                self.observe(ord, item);
            }
            if ord == self.cur_end {
                self.end_cycle(ord);
                self.cur_end = u64::MAX;
                self.next_cycle += 1;
                self.next_start = self
                    .spans
                    .get(self.next_cycle)
                    .map_or(u64::MAX, |c| c.start_event);
            }
            return Ok(());
        };
        let b = match item {
            // Buffer allocs and frees never bound a cycle.
            Item::Alloc(_) | Item::Free(_) => Boundary::default(),
            Item::Event(e) => cycles.boundary(e, self.setup.interner),
            Item::Light(e) => cycles.boundary(e, self.setup.interner),
        };
        if b.end_before && self.in_cycle {
            self.end_cycle(ord - 1);
        }
        if b.start && !self.in_cycle {
            self.start_cycle(ord, marker_label(item));
        }
        self.item(ord, item)?;
        if OBSERVE {
            self.observe(ord, item);
        }
        if b.end_after && self.in_cycle {
            self.end_cycle(ord);
        }
        Ok(())
    }

    fn observe(&mut self, ord: u64, item: &Item<'_>) {
        if let Some(o) = self.observer.take() {
            o.event(ord, item, &crate::observe::EngineView::new(self));
            self.observer = Some(o);
        }
    }

    #[inline]
    fn item(&mut self, ord: u64, item: &Item<'_>) -> crate::Result<()> {
        match item {
            Item::Alloc(a) => self.alloc_col(ord, a),
            Item::Free(x) => {
                let dev = self.dev_index(x.device)?;
                self.free(ord, dev, x.buffer, x.site);
                Ok(())
            }
            Item::Event(e) => self.event(ord, e),
            Item::Light(_) => Ok(()),
        }
    }

    #[inline]
    fn alloc_col(&mut self, ord: u64, a: &ttalloc_trace::AllocCol) -> crate::Result<()> {
        let dev = self.dev_index(a.device)?;
        let req = Req {
            buffer_type: a.buffer_type,
            size: a.size,
            page_size: a.page_size,
            layout: a.layout,
            num_cores: a.num_cores,
            per_bank_size: a.per_bank_size,
        };
        self.alloc(ord, dev, a.buffer, &req, a.address, a.site, a.label)
    }
}

/// How far ahead in their columns `feed_columns` asks for allocs, frees
/// and tags (a few cache lines).
const ALLOCS_AHEAD: usize = 6;
const FREES_AHEAD: usize = 16;
const TAGS_AHEAD: usize = 256;

/// Asks for the cache line of `column[at]`, if there is one.
#[inline(always)]
fn prefetch<T>(column: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = column.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch is a
        // hint that reads nothing (the address is a live element anyway).
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (column, at);
}

/// The label of a marker (a cycle that starts there is named after it).
fn marker_label(item: &Item<'_>) -> Option<StringId> {
    match item {
        Item::Event(Event {
            kind: EventKind::Marker { label },
            ..
        })
        | Item::Light(Event {
            kind: EventKind::Marker { label },
            ..
        }) => Some(*label),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
