//! Feeding chunks of events to the engine, with cycle boundaries applied.
//!
//! The hot path is a trace block's columns with no observer: buffer allocs
//! and frees (nearly all of a trace), circular buffers, programs and traces
//! go straight to their handlers, and op scopes no cycle rule looks at are
//! skipped (`segments.rs`: no per-event check of precomputed spans). Every
//! event that may start or end a cycle, and every event of an in-memory
//! chunk or of an observed replay, takes the general step ([`Engine::step`]).

use super::*;
pub(super) use op_skip::OpSkip;
use ttalloc_trace::BlockColumns;

mod op_skip;
mod segments;

use ttalloc_model::tag_code::{ALLOC, CB_ALLOC, CB_FREE_ALL, FREE, MARKER, OP_BEGIN, OP_END};

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
                self.feed_columns::<false>(online.as_mut(), *first, columns)
            }
            (_, false) => {
                chunk.try_for_each(|ord, item| self.step::<false>(online.as_mut(), ord, &item))
            }
            (Chunk::Columns { first, columns }, true) => {
                self.feed_columns::<true>(online.as_mut(), *first, columns)
            }
            (_, true) => {
                chunk.try_for_each(|ord, item| self.step::<true>(online.as_mut(), ord, &item))
            }
        };
        self.online = online;
        self.events = self.events.max(chunk.first() + chunk.len() as u64);
        result
    }

    /// A block's columns: the walk of `Chunk::try_for_each`, with the
    /// events that cannot bound a cycle handled in place, and op scopes
    /// left out of the walk when no cycle rule follows them.
    ///
    /// `OBSERVE`, with an observer: the walk over every event (the
    /// observer sees op scopes too), each handled as without one and then
    /// shown to the observer. Its items carry no time (`ts` 0, as `light`
    /// says): an observer reads a block's times from the chunk. Through
    /// `Chunk::try_for_each` and the general step, an observed replay of
    /// the 2M synthetic trace took twice the engine's instructions.
    fn feed_columns<const OBSERVE: bool>(
        &mut self,
        online: Option<&mut OnlineCycles>,
        first: u64,
        c: &BlockColumns,
    ) -> crate::Result<()> {
        if self.stopped {
            return Ok(());
        }
        let bounding = bounding_kinds(online.as_deref());
        if OBSERVE {
            return self.walk_columns::<true>(online, first, c, bounding);
        }
        let ops_bound = bounding & (1 << OP_BEGIN | 1 << OP_END) != 0;
        let mut op_skip = std::mem::take(&mut self.op_skip);
        let result = if ops_bound {
            self.walk_columns::<false>(online, first, c, bounding)
        } else {
            op_skip.scan(&c.tags);
            // Most blocks have no 2.1 alloc field, and an entry in each
            // column for every alloc, free and circular buffer (a decoded
            // block always has): their walk passes the defaults as
            // constants and checks no event's entry. Any other block takes
            // the walk that reads and checks them (one copy of the walk
            // each).
            let fit = op_skip::KindCounts::of(&c.tags).fit(c);
            if fit && !c.allocs.has_ext() {
                self.walk_segments::<false, false>(online, first, c, bounding, &op_skip)
            } else {
                self.walk_segments::<true, true>(online, first, c, bounding, &op_skip)
            }
        };
        self.op_skip = op_skip;
        result
    }

    /// The walk of [`Engine::feed_columns`] over every event of the block,
    /// when the online rule follows op scopes (else `walk_segments` walks
    /// the events other than op scopes). `OBSERVE`: each event is shown to
    /// the observer once handled.
    fn walk_columns<const OBSERVE: bool>(
        &mut self,
        mut online: Option<&mut OnlineCycles>,
        first: u64,
        c: &BlockColumns,
        bounding: u32,
    ) -> crate::Result<()> {
        let looks_at = |tag: u8| bounding & (1 << tag) != 0;
        // The next ordinal where a precomputed span starts or ends (never,
        // with an online rule): there the general step runs.
        let mut mark = self.next_start.min(self.cur_end);
        let (mut ka, mut kf, mut kn, mut kc, mut ko) = (0usize, 0usize, 0usize, 0usize, 0usize);
        for (pos, &tag) in c.tags.iter().enumerate() {
            let ord = first + pos as u64;
            let item = match tag {
                ALLOC => {
                    let i = ka;
                    if i >= c.allocs.len() {
                        continue;
                    }
                    ka += 1;
                    if ord != mark {
                        let stopped = self.alloc_at::<true>(ord, &c.allocs, i)?;
                        if OBSERVE {
                            if let Some(a) = c.allocs.get(i) {
                                self.observe(ord, &Item::Alloc(a));
                            }
                        }
                        if stopped {
                            return Ok(());
                        }
                        continue;
                    }
                    let Some(a) = c.allocs.get(i) else { continue };
                    Item::Alloc(a)
                }
                FREE => {
                    let Some(x) = c.frees.get(kf) else { continue };
                    kf += 1;
                    if ord != mark {
                        self.free(ord, x.device, x.buffer, || x.site)?;
                        if OBSERVE {
                            self.observe(ord, &Item::Free(x));
                        }
                        continue;
                    }
                    Item::Free(x)
                }
                OP_BEGIN | OP_END | MARKER => {
                    let name = if tag == OP_END {
                        StringId::EMPTY
                    } else {
                        let Some(&id) = c.names.get(kn) else { continue };
                        kn += 1;
                        id
                    };
                    let item = scope_item(c, pos, tag, name);
                    // A scope bounds no cycle here and the engine does
                    // nothing with it: only the observer sees it (a third
                    // of a trace's events).
                    if OBSERVE && ord != mark && !looks_at(tag) {
                        self.observe(ord, &item);
                        continue;
                    }
                    item
                }
                // Circular buffers (a fifth of a trace) go to their own
                // handlers: the kind is known here, no second dispatch.
                CB_ALLOC | CB_FREE_ALL => {
                    let Some(cb) = c.cbs.get(kc) else { continue };
                    kc += 1;
                    if ord != mark && !looks_at(tag) {
                        self.cb_col(ord, &cb)?;
                        if OBSERVE {
                            self.observe(ord, &cb_item(c, pos, &cb));
                        }
                        continue;
                    }
                    cb_item(c, pos, &cb)
                }
                t if t as usize >= EventTag::ALL.len() => continue,
                _ => {
                    let Some((_, e)) = c.others.get(ko) else {
                        continue;
                    };
                    prefetch(&c.others, ko + OTHERS_AHEAD);
                    ko += 1;
                    if ord != mark && !looks_at(tag) {
                        self.event(ord, e)?;
                        if OBSERVE {
                            self.observe(ord, &Item::Event(e));
                        }
                        if self.stopped {
                            return Ok(());
                        }
                        continue;
                    }
                    Item::Event(e)
                }
            };
            self.step::<OBSERVE>(online.as_deref_mut(), ord, &item)?;
            if self.stopped {
                return Ok(());
            }
            mark = self.next_start.min(self.cur_end);
        }
        Ok(())
    }

    /// The general step for the op scope at ordinal `ord` that the walk
    /// left out (a precomputed span starts or ends there); false if there
    /// is none (the walk over every event would not step there either).
    fn skipped_op_step(
        &mut self,
        online: Option<&mut OnlineCycles>,
        first: u64,
        c: &BlockColumns,
        op_skip: &OpSkip,
        ord: u64,
    ) -> crate::Result<bool> {
        let pos = (ord - first) as usize;
        let (tag, name) = match c.tags.get(pos) {
            Some(&OP_END) => (OP_END, StringId::EMPTY),
            Some(&OP_BEGIN) => match c.names.get(op_skip.name_index(pos)) {
                Some(&name) => (OP_BEGIN, name),
                None => return Ok(false),
            },
            _ => return Ok(false),
        };
        self.step::<false>(online, ord, &scope_item(c, pos, tag, name))?;
        Ok(true)
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
            Item::Light(e) | Item::Cb(e) => cycles.boundary(e, self.setup.interner),
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
            Item::Alloc(a) => self.alloc_col(ord, a).map(|_stopped| ()),
            Item::Free(x) => self.free(ord, x.device, x.buffer, || x.site),
            Item::Event(e) => self.event(ord, e),
            Item::Cb(e) => self.event(ord, e),
            Item::Light(_) => Ok(()),
        }
    }

    /// Alloc `i` of a block's columns, read where it lies (no copy of the
    /// whole alloc is made to pass it, and its flags are read once:
    /// `AllocColumns::at`, not an `AllocCol` of `Option`s unpacked again). Inlined into the block walks: out
    /// of line, its call, prologue and epilogue and the result's way back
    /// cost ~16 instructions per alloc (2M synthetic 960.3M -> 951.2M
    /// instructions inlined; 10M replay no slower).
    ///
    /// `EXT`: whether the block's allocs may have 2.1 fields
    /// ([`AllocColumns::has_ext`](ttalloc_trace::AllocColumns::has_ext)).
    /// Without, the defaults are constants: no read, test or spill of them
    /// per alloc.
    #[inline(always)]
    fn alloc_at<const EXT: bool>(
        &mut self,
        ord: u64,
        allocs: &ttalloc_trace::AllocColumns,
        i: usize,
    ) -> crate::Result<bool> {
        debug_assert!(EXT || !allocs.has_ext());
        let Some(a) = allocs.at(i) else {
            return Ok(false);
        };
        let dev = self.dev_index(a.device())?;
        let recorded = a.address();
        if recorded.is_none() {
            // The path with a recorded address is laid out straight (a
            // jump less per alloc): a replay checks placements against
            // them, and the synthetic traces record every one. An alloc
            // without one takes a jump more.
            super::cold_path();
        }
        let ext = if EXT { a.ext() } else { Default::default() };
        let req = Req {
            buffer_type: a.buffer_type(),
            size: a.size(),
            page_size: a.page_size_or_zero(),
            layout: a.layout(),
            num_cores: a.num_cores_or_zero(),
            per_bank_size: ext.per_bank_size,
        };
        let slot = super::buffers::device_type_slot_of_code(a.type_code());
        self.alloc_in(
            ord,
            dev,
            slot,
            a.buffer(),
            req,
            recorded,
            a.site(),
            ext.label,
        )
    }

    /// A circular-buffer event of a block's columns, straight to its handler.
    #[inline(always)]
    fn cb_col(&mut self, ord: u64, cb: &ttalloc_trace::CbCol) -> crate::Result<()> {
        if cb.free_all {
            return self.cb_free_all(cb.device);
        }
        let event = super::objects::CbEvent {
            address: cb.address,
            size: cb.size,
            cores: cb.cores,
            global: cb.globally_allocated,
            site: cb.site,
        };
        self.cb_alloc(ord, cb.device, &event)
    }

    #[inline(always)]
    fn alloc_col(&mut self, ord: u64, a: &ttalloc_trace::AllocCol) -> crate::Result<bool> {
        let dev = self.dev_index(a.device)?;
        let req = Req {
            buffer_type: a.buffer_type,
            size: a.size,
            page_size: a.page_size.unwrap_or(0),
            layout: a.layout,
            num_cores: a.num_cores.unwrap_or(0),
            per_bank_size: a.per_bank_size,
        };
        self.alloc(ord, dev, a.buffer, req, a.address, a.site, a.label)
    }
}

/// The kinds the online rule looks at, a bit per kind code (some rules
/// follow op scopes); none without one.
fn bounding_kinds(online: Option<&OnlineCycles>) -> u32 {
    match online {
        Some(o) => (0..EventTag::ALL.len() as u8)
            .filter(|&t| o.looks_at(t))
            .fold(0, |bits, t| bits | 1 << t),
        None => 0,
    }
}

/// How far ahead in `others` the walk asks for entries (about 100 bytes
/// each). Allocs, frees, circular buffers and tags are read in order from
/// plain arrays: the hardware prefetcher follows them (asking for their
/// lines in software cost 15M instructions per 2M events, and the 10M
/// synthetic replay is no slower without it: 0.436 -> 0.423 s, medians of 9).
const OTHERS_AHEAD: usize = 4;

/// Event `pos` of a block, a light one (no payload column but names).
///
/// The block walks' items carry no time (`ts` 0): nothing the engine does
/// with them reads it (an observer gets its items from `Chunk::try_for_each`,
/// which times them), and a block keeps its times coded: `ts_at` sums up to
/// a chunk's gaps for each op scope a walk that follows them would ask.
fn light<'c>(c: &BlockColumns, pos: usize, kind: EventKind) -> Item<'c> {
    Item::Light(Event {
        ts: 0,
        pid: c.pid_at(pos),
        kind,
    })
}

/// The op begin, op end or marker (`tag`) at `pos` of a block as a light
/// item; `name` is its entry of the names column (unused for an op end).
fn scope_item<'c>(c: &BlockColumns, pos: usize, tag: u8, name: StringId) -> Item<'c> {
    let kind = match tag {
        OP_BEGIN => EventKind::OpBegin { name },
        MARKER => EventKind::Marker { label: name },
        _ => EventKind::OpEnd,
    };
    light(c, pos, kind)
}

/// The circular-buffer event `cb` at `pos` of a block, as an item (no
/// time, as [`light`]).
fn cb_item<'c>(c: &BlockColumns, pos: usize, cb: &ttalloc_trace::CbCol) -> Item<'c> {
    Item::Cb(Event {
        ts: 0,
        pid: c.pid_at(pos),
        kind: cb.kind(),
    })
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
