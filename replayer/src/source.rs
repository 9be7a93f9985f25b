//! Where replayed events come from: a trace file (one block decoded at a
//! time, memory bounded by a block) or events already in memory (tests,
//! importers, generators). The engine only sees ordered slices of events.

use crate::error::Result;
use std::ops::ControlFlow;
use ttalloc_model::{Event, EventKind, EventTag, InternTables};
use ttalloc_trace::{AllocCol, BlockColumns, BlockInfo, FreeCol};

/// A hook run on the decoding thread on every run of events, in order.
pub type PreHook<'a> = &'a mut (dyn FnMut(u64, &[Event]) + Send);

/// A hook run on the decoding thread on every chunk, in order.
pub type ChunkHook<'a> = &'a mut (dyn FnMut(&Chunk<'_>) + Send);

/// A run of consecutive events as the source holds them: `Event` values, or
/// a trace block's columns (no `Event` is built for buffer allocs and frees,
/// which are nearly all of a trace).
pub enum Chunk<'a> {
    Events {
        first: u64,
        events: &'a [Event],
    },
    Columns {
        first: u64,
        columns: &'a BlockColumns,
    },
}

/// One event of a [`Chunk`].
pub enum Item<'a> {
    Alloc(AllocCol),
    Free(FreeCol),
    /// Any event (from an `Events` chunk, or a rare kind from columns).
    Event(&'a Event),
    /// `OpBegin`, `OpEnd` or `Marker` rebuilt from columns (no heap data).
    Light(Event),
    /// A circular-buffer event (`CbAlloc`, `CbFreeAll`) rebuilt from its
    /// block's `cbs` columns: handled as `Event` is.
    Cb(Event),
}

impl Chunk<'_> {
    /// Ordinal of the first event.
    pub fn first(&self) -> u64 {
        match self {
            Chunk::Events { first, .. } | Chunk::Columns { first, .. } => *first,
        }
    }

    /// Number of ordinals the chunk spans.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Events { events, .. } => events.len(),
            Chunk::Columns { columns, .. } => columns.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(ordinal, item)` for every event of a known kind, in order;
    /// stops at the first error.
    #[inline]
    pub fn try_for_each<E>(
        &self,
        f: impl FnMut(u64, Item<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.walk::<true, true, true, E>(f)
    }

    /// Like [`Chunk::try_for_each`], skipping buffer allocs and frees (nearly
    /// all of a trace): for passes that only look at the other kinds, such
    /// as cycle scans. From columns, skipping them costs a byte compare each,
    /// and op begins and ends and circular buffers come **without their
    /// time** (`ts` 0: a block keeps its times coded, and a time costs a few
    /// gaps' sum; cycle scans read none).
    #[inline]
    pub fn try_for_each_non_buffer<E>(
        &self,
        f: impl FnMut(u64, Item<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.walk::<false, true, false, E>(f)
    }

    /// Like [`Chunk::try_for_each_non_buffer`], also skipping op begins and
    /// ends (a third of a trace) and circular buffers (`CbAlloc`,
    /// `CbFreeAll`, a seventh): for passes that follow neither, such as the
    /// cycle scan.
    #[inline]
    pub fn try_for_each_non_buffer_non_op<E>(
        &self,
        f: impl FnMut(u64, Item<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.walk::<false, false, false, E>(f)
    }

    /// The walk of the `try_for_each` kinds; `TIMED`: whether op scopes
    /// and circular buffers from columns come with their times (else 0).
    #[inline]
    fn walk<const BUFFERS: bool, const OPS: bool, const TIMED: bool, E>(
        &self,
        mut f: impl FnMut(u64, Item<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match *self {
            Chunk::Events { first, events } => {
                for (i, e) in events.iter().enumerate() {
                    if !BUFFERS
                        && matches!(
                            e.kind,
                            EventKind::BufferAlloc { .. } | EventKind::BufferFree { .. }
                        )
                    {
                        continue;
                    }
                    if !OPS
                        && matches!(
                            e.kind,
                            EventKind::OpBegin { .. }
                                | EventKind::OpEnd
                                | EventKind::CbAlloc { .. }
                                | EventKind::CbFreeAll { .. }
                        )
                    {
                        continue;
                    }
                    f(first + i as u64, Item::Event(e))?;
                }
            }
            // Nearly every event is a buffer alloc or free or an op begin
            // or end: skip them without a look.
            Chunk::Columns { first, columns } if !BUFFERS && !OPS => {
                return crate::rare_kinds::for_each_rare_kind(first, columns, f);
            }
            Chunk::Columns { first, columns: c } => {
                // The same walk as `BlockColumns::for_each_event`, without
                // building events for allocs and frees.
                let (mut allocs, mut frees, mut names) =
                    (c.allocs.iter(), c.frees.iter(), c.names.iter());
                let mut others = c.others.iter();
                let mut kc = 0usize;
                // Times in one pass (each event's gap added once), if wanted.
                let mut times = TIMED.then(|| c.timestamps());
                for (pos, &tag) in c.tags.iter().enumerate() {
                    let ord = first + pos as u64;
                    let ts = times.as_mut().and_then(|t| t.next()).unwrap_or(0);
                    let item = match tag {
                        // Allocs and frees only advance their own columns.
                        t if !BUFFERS
                            && (t == EventTag::BufferAlloc as u8
                                || t == EventTag::BufferFree as u8) =>
                        {
                            continue
                        }
                        t if t == EventTag::BufferAlloc as u8 => match allocs.next() {
                            Some(a) => Item::Alloc(a),
                            None => continue,
                        },
                        t if t == EventTag::BufferFree as u8 => match frees.next() {
                            Some(x) => Item::Free(x),
                            None => continue,
                        },
                        // Op begins only advance the names column.
                        t if !OPS && t == EventTag::OpBegin as u8 => {
                            names.next();
                            continue;
                        }
                        t if !OPS
                            && (t == EventTag::OpEnd as u8
                                || t == EventTag::CbAlloc as u8
                                || t == EventTag::CbFreeAll as u8) =>
                        {
                            continue
                        }
                        t if t == EventTag::OpBegin as u8
                            || t == EventTag::Marker as u8
                            || t == EventTag::OpEnd as u8 =>
                        {
                            let kind = if t == EventTag::OpEnd as u8 {
                                EventKind::OpEnd
                            } else {
                                let Some(&id) = names.next() else { continue };
                                if t == EventTag::OpBegin as u8 {
                                    EventKind::OpBegin { name: id }
                                } else {
                                    EventKind::Marker { label: id }
                                }
                            };
                            Item::Light(Event {
                                ts,
                                pid: c.pid_at(pos),
                                kind,
                            })
                        }
                        t if t == EventTag::CbAlloc as u8 || t == EventTag::CbFreeAll as u8 => {
                            match c.cbs.get(kc) {
                                Some(cb) => {
                                    kc += 1;
                                    Item::Cb(Event {
                                        ts,
                                        pid: c.pid_at(pos),
                                        kind: cb.kind(),
                                    })
                                }
                                None => continue,
                            }
                        }
                        t if t as usize >= EventTag::ALL.len() => continue,
                        _ => match others.next() {
                            Some((_, e)) => Item::Event(e),
                            None => continue,
                        },
                    };
                    f(ord, item)?;
                }
            }
        }
        Ok(())
    }
}

/// How a pass over a source's chunks
/// ([`EventSource::visit_chunks_with`]) wants them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPass {
    /// Whether a trace file's blocks are decoded on a thread of their own,
    /// ahead of the consumer (else on the calling thread, just before it
    /// sees them). Sources held in memory ignore it.
    pub ahead: bool,
    /// Whether the pass reads the events' times. Without, a trace file's
    /// blocks come without them (`ts_at` 0): a block's times are most of a
    /// trace's compressed bytes, and from format 2.6 on a frame of their
    /// own that is then not read. Sources held in memory ignore it.
    pub timed: bool,
}

pub trait EventSource {
    fn interner(&self) -> &InternTables;
    fn num_events(&self) -> u64;
    /// What the source itself has to tell the user about what it delivered
    /// so far (a trace file: events of unknown kinds it skipped).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Calls `f(first_ordinal, events)` for consecutive runs of events, in order.
    fn visit(&self, f: &mut dyn FnMut(u64, &[Event]) -> Result<()>) -> Result<()> {
        self.visit_with(1, f)
    }
    /// Like `visit`, letting up to `decoders` background threads decode ahead
    /// of `f` (sources held in memory ignore it).
    fn visit_with(
        &self,
        decoders: usize,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()>;
    /// Like `visit_with(1, f)`, also calling `pre` on every run of events,
    /// in order, on the decoding thread (work taken off the consumer's).
    fn visit_split(
        &self,
        pre: &mut (dyn FnMut(u64, &[Event]) + Send),
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()> {
        self.visit_with(1, &mut |first, events| {
            pre(first, events);
            f(first, events)
        })
    }
    /// Like `visit_split`, with chunks in the source's own form (a trace
    /// file's blocks stay columns: the fastest way through a replay).
    fn visit_chunks(
        &self,
        pre: Option<ChunkHook<'_>>,
        f: &mut dyn FnMut(&Chunk<'_>) -> Result<()>,
    ) -> Result<()> {
        let pass = ChunkPass {
            ahead: true,
            timed: true,
        };
        self.visit_chunks_with(pass, pre, f)
    }
    /// Like `visit_chunks`, decoded as `pass` says.
    fn visit_chunks_with(
        &self,
        _pass: ChunkPass,
        pre: Option<ChunkHook<'_>>,
        f: &mut dyn FnMut(&Chunk<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut g = |first: u64, events: &[Event]| f(&Chunk::Events { first, events });
        match pre {
            Some(pre) => self.visit_split(
                &mut |first, events| pre(&Chunk::Events { first, events }),
                &mut g,
            ),
            None => self.visit_with(1, &mut g),
        }
    }
    /// Visits whole blocks (chunks) from the start until at least `events`
    /// events were seen (a cheap look at the beginning of a trace).
    fn visit_prefix(
        &self,
        events: u64,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()>;
    /// Like `visit_prefix`, with chunks in the source's own form (a trace
    /// file's blocks stay columns: no `Event` is built for allocs and frees).
    fn visit_prefix_chunks(
        &self,
        events: u64,
        f: &mut dyn FnMut(&Chunk<'_>) -> Result<()>,
    ) -> Result<()> {
        self.visit_prefix(events, &mut |first, events| {
            f(&Chunk::Events { first, events })
        })
    }
    /// Like `visit_prefix_chunks`, for a pass that skips buffer allocs and
    /// frees (the replay's cycle probe): a source may leave them out of its
    /// chunks (a trace's blocks after its first come without them). It
    /// ends early where `f` says `Break`.
    fn visit_prefix_non_buffer(
        &self,
        events: u64,
        f: &mut dyn FnMut(&Chunk<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut done = false;
        self.visit_prefix_chunks(events, &mut |chunk| {
            if !done {
                done = f(chunk)?.is_break();
            }
            Ok(())
        })
    }
    /// Visits the source's last chunk as [`EventSource::visit_prefix_non_buffer`]
    /// does its first ones (a trace file's last block, without its allocs
    /// and frees): a look at how the trace ends that costs one block.
    fn visit_last_non_buffer(&self, f: &mut dyn FnMut(&Chunk<'_>) -> Result<()>) -> Result<()> {
        let last = self.num_events().saturating_sub(1);
        self.visit_back(last, &mut |first, events| {
            f(&Chunk::Events { first, events })?;
            Ok(false)
        })
    }
    /// The footer checkpoints (live bytes per device and type at block ends), if any.
    fn checkpoints(&self) -> Option<&[BlockInfo]> {
        None
    }
    /// Visits the runs of events from the one holding event `ordinal` back
    /// to the start, last run first, until `f` returns `Ok(false)`: a look
    /// at what precedes one event that costs a block or two, not the prefix.
    /// A trace file's come without their times (`ts` 0).
    fn visit_back(
        &self,
        ordinal: u64,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<bool>,
    ) -> Result<()> {
        let mut runs: Vec<(u64, Vec<Event>)> = Vec::new();
        self.visit_prefix(ordinal.saturating_add(1), &mut |first, events| {
            runs.push((first, events.to_vec()));
            Ok(())
        })?;
        for (first, events) in runs.iter().rev() {
            if !f(*first, events)? {
                break;
            }
        }
        Ok(())
    }
}

/// Events held in memory.
pub struct MemoryTrace {
    pub events: Vec<Event>,
    pub interner: InternTables,
}

impl MemoryTrace {
    pub fn new(events: Vec<Event>, interner: InternTables) -> Self {
        MemoryTrace { events, interner }
    }
}

/// Chunk size for in-memory traces (same order as a trace block).
pub(crate) const CHUNK: usize = 65536;

impl EventSource for MemoryTrace {
    fn visit_back(
        &self,
        ordinal: u64,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<bool>,
    ) -> Result<()> {
        let last = (ordinal as usize).min(self.events.len().saturating_sub(1));
        for c in (0..self.events.len().min(last + 1).div_ceil(CHUNK)).rev() {
            let end = ((c + 1) * CHUNK).min(self.events.len());
            if !f((c * CHUNK) as u64, &self.events[c * CHUNK..end])? {
                break;
            }
        }
        Ok(())
    }
    fn visit_prefix(
        &self,
        events: u64,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()> {
        let n = (events as usize).min(self.events.len());
        let end = n.div_ceil(CHUNK).max(1) * CHUNK;
        for (i, chunk) in self.events[..end.min(self.events.len())]
            .chunks(CHUNK)
            .enumerate()
        {
            f((i * CHUNK) as u64, chunk)?;
        }
        Ok(())
    }
    fn interner(&self) -> &InternTables {
        &self.interner
    }
    fn num_events(&self) -> u64 {
        self.events.len() as u64
    }
    fn visit_with(
        &self,
        _decoders: usize,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()> {
        for (i, chunk) in self.events.chunks(CHUNK).enumerate() {
            f((i * CHUNK) as u64, chunk)?;
        }
        Ok(())
    }
}

mod decode_ahead;
#[cfg(test)]
mod tests;
mod trace_file;
