//! The events `minimize` searches, by ordinal: a slice held in memory, or
//! the trace file itself, read back a block at a time.
//!
//! Why the file: an [`Event`] takes 104 bytes in memory and a trace ~3 on
//! disk, so holding a 10M-event trace's events took 1.04 GB of a
//! minimisation's 1.37 GB. A candidate replays its events in order, so it
//! decodes each block it keeps anything of once; the last few blocks
//! decoded are kept for the reads that come back to them (a small
//! candidate's).

use crate::{ReplayError, Result};
use kept::KeptBlocks;
use std::cell::RefCell;
use std::ops::Range;
use ttalloc_model::Event;
use ttalloc_trace::{BlockColumns, TraceReader};

/// Events by ordinal (a position in the trace, from 0).
pub trait EventStore {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `f(ordinal, event)` for each of `ordinals` (ascending), in order.
    fn each_of(&self, ordinals: &[u32], f: &mut dyn FnMut(u32, &Event) -> Result<()>)
        -> Result<()>;

    /// `f(first ordinal, events)` over the events of `range`, a run of
    /// consecutive events at a time.
    fn each_in(
        &self,
        range: Range<usize>,
        f: &mut dyn FnMut(usize, &[Event]) -> Result<()>,
    ) -> Result<()>;

    /// `f` over the events of `ordinals` (ascending), in order, a part at a
    /// time: single events, or a whole block as decoded columns where the
    /// store reads blocks and all of one is asked for (the engine's fast
    /// walk takes it as it is).
    fn each_part(&self, ordinals: &[u32], f: &mut dyn FnMut(Part<'_>) -> Result<()>) -> Result<()> {
        self.each_of(ordinals, &mut |_, e| f(Part::Event(e)))
    }

    /// [`EventStore::each_part`] over the events of `range`: runs of
    /// consecutive events, or whole blocks.
    fn each_part_in(
        &self,
        range: Range<usize>,
        f: &mut dyn FnMut(Part<'_>) -> Result<()>,
    ) -> Result<()> {
        self.each_in(range, &mut |_, run| f(Part::Events(run)))
    }

    /// Event `i` (None past the end).
    fn event(&self, i: usize) -> Result<Option<Event>> {
        let mut out = None;
        if i < self.len() {
            self.each_of(&[i as u32], &mut |_, e| {
                out = Some(e.clone());
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// Events held in memory: a `Vec<Event>` or a `&[Event]`.
impl<T: AsRef<[Event]>> EventStore for T {
    fn len(&self) -> usize {
        self.as_ref().len()
    }

    fn each_of(
        &self,
        ordinals: &[u32],
        f: &mut dyn FnMut(u32, &Event) -> Result<()>,
    ) -> Result<()> {
        for &i in ordinals {
            if let Some(e) = self.as_ref().get(i as usize) {
                f(i, e)?;
            }
        }
        Ok(())
    }

    fn each_in(
        &self,
        range: Range<usize>,
        f: &mut dyn FnMut(usize, &[Event]) -> Result<()>,
    ) -> Result<()> {
        let Range { start, end } = clamped(range, self.len());
        for (k, run) in self.as_ref()[start..end].chunks(RUN).enumerate() {
            f(start + k * RUN, run)?;
        }
        Ok(())
    }
}

/// A part of the events a walk asks for, in order.
pub enum Part<'a> {
    Event(&'a Event),
    /// Consecutive events.
    Events(&'a [Event]),
    /// Every event of a block.
    Block(&'a BlockColumns),
}

impl Part<'_> {
    pub fn len(&self) -> usize {
        match self {
            Part::Event(_) => 1,
            Part::Events(run) => run.len(),
            Part::Block(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `range` cut to the first `len` events.
fn clamped(range: Range<usize>, len: usize) -> Range<usize> {
    let end = range.end.min(len);
    range.start.min(end)..end
}

/// How many events a slice hands `each_in`'s callback at a time (a block's
/// worth: what a trace store hands).
const RUN: usize = 65_536;

/// `f(block, its first ordinal, its end, the ordinals of it)`: what
/// [`TraceEvents::block_runs`] calls.
type BlockRunFn<'f> = &'f mut dyn FnMut(usize, usize, usize, &[u32]) -> Result<()>;

/// A trace file's events, decoded again a block at a time when asked for.
pub struct TraceEvents<'r> {
    reader: &'r TraceReader,
    /// The ordinal of each block's first event, and the count of all events
    /// last: counted as decoded, not from the index (a reader skips events
    /// of kinds it does not know).
    starts: Vec<usize>,
    /// Blocks decoded for earlier reads, kept for the next ones: a small
    /// candidate keeps events of a few blocks (the devices' opens in the
    /// first, the finding's, the closes in the last), read again at every
    /// replay.
    last: RefCell<KeptBlocks>,
}

impl<'r> TraceEvents<'r> {
    /// Reads every block of `reader` once, handing each one's events to
    /// `f(first ordinal, part)`, as decoded columns without times
    /// ([`Part::Block`]: events need not be built for a first pass), or
    /// as events where the block holds kinds this reader skips
    /// ([`Part::Events`]); the store then reads them again from the file.
    pub fn load(
        reader: &'r TraceReader,
        f: &mut dyn FnMut(usize, Part<'_>) -> Result<()>,
    ) -> Result<Self> {
        let blocks = reader.blocks().len();
        let mut starts = Vec::with_capacity(blocks + 1);
        let mut cols = reader.take_columns();
        let mut events = Vec::new();
        let mut at = 0usize;
        for b in 0..blocks {
            starts.push(at);
            reader.decode_columns_untimed(b, &mut cols)?;
            let part = match cols.skipped.is_empty() {
                true => Part::Block(&cols),
                false => {
                    reader.decode_block(b, &mut events)?;
                    Part::Events(&events)
                }
            };
            let n = part.len();
            f(at, part)?;
            at += n;
        }
        reader.put_columns(cols);
        starts.push(at);
        Ok(TraceEvents {
            reader,
            starts,
            last: RefCell::new(KeptBlocks::default()),
        })
    }

    /// The block holding ordinal `i` (`i` < len).
    fn block_of(&self, i: usize) -> usize {
        self.starts.partition_point(|&s| s <= i) - 1
    }

    /// Block `b`'s events, taken out of `kept` or decoded now (into the
    /// events of a block that goes, when `kept` is full).
    fn block(&self, b: usize, kept: &mut KeptBlocks) -> Result<(usize, Vec<Event>)> {
        if let Some(events) = kept.take(b) {
            return Ok((b, events));
        }
        let mut events = kept.spare_for(b);
        self.reader.decode_block(b, &mut events)?;
        let want = self.starts[b + 1] - self.starts[b];
        if events.len() != want {
            return Err(ReplayError::Usage(format!(
                "{}: block {b} decoded to {} events, {want} when first read (was the file changed while being minimised?)",
                self.reader.path().display(),
                events.len()
            )));
        }
        Ok((b, events))
    }
}

impl TraceEvents<'_> {
    /// Block `b` as columns in `cols`, when they hold exactly its events as
    /// read the first time (no kind skipped): else false.
    fn block_columns(&self, b: usize, cols: &mut BlockColumns) -> Result<bool> {
        self.reader.decode_columns_untimed(b, cols)?;
        Ok(cols.len() == self.starts[b + 1] - self.starts[b] && cols.skipped.is_empty())
    }

    /// The blocks `ordinals` (ascending) hold some of, in order.
    fn blocks_of(&self, ordinals: &[u32]) -> Vec<usize> {
        let mut blocks = Vec::new();
        let _ = self.block_runs(ordinals, &mut |b, _, _, _| {
            blocks.push(b);
            Ok(())
        });
        blocks
    }

    /// The blocks of the events of `range` (within the events).
    fn blocks_in(&self, range: Range<usize>) -> Range<usize> {
        match range.is_empty() {
            true => 0..0,
            false => self.block_of(range.start)..self.block_of(range.end - 1) + 1,
        }
    }

    /// `f(block, its first ordinal, its end, the ordinals of it)` for each
    /// block that `ordinals` (ascending) holds some of, in order.
    fn block_runs(&self, ordinals: &[u32], f: BlockRunFn<'_>) -> Result<()> {
        let mut rest = ordinals;
        while let Some(&first) = rest.first() {
            if first as usize >= self.len() {
                break;
            }
            let b = self.block_of(first as usize);
            let (start, end) = (self.starts[b], self.starts[b + 1]);
            let (now, later) = rest.split_at(rest.partition_point(|&o| (o as usize) < end));
            f(b, start, end, now)?;
            rest = later;
        }
        Ok(())
    }

    /// Block `b`'s whole run to `f`: as columns, else as events.
    fn whole_block(
        &self,
        b: usize,
        cols: &mut BlockColumns,
        held: &mut KeptBlocks,
        f: &mut dyn FnMut(Part<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.block_columns(b, cols)? {
            return f(Part::Block(cols));
        }
        let (kb, events) = self.block(b, held)?;
        let out = f(Part::Events(&events));
        held.put(kb, events);
        out
    }
}

impl EventStore for TraceEvents<'_> {
    fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    fn each_of(
        &self,
        ordinals: &[u32],
        f: &mut dyn FnMut(u32, &Event) -> Result<()>,
    ) -> Result<()> {
        // The kept block is taken out while `f` runs (a read from inside it
        // decodes afresh instead of finding it borrowed).
        let mut held = self.last.take();
        held.begin_walk(self.blocks_of(ordinals));
        let result = self.block_runs(ordinals, &mut |b, start, _, now| {
            let (kb, events) = self.block(b, &mut held)?;
            let out = now
                .iter()
                .try_for_each(|&o| f(o, &events[o as usize - start]));
            held.put(kb, events);
            out
        });
        *self.last.borrow_mut() = held;
        result
    }

    fn each_part(&self, ordinals: &[u32], f: &mut dyn FnMut(Part<'_>) -> Result<()>) -> Result<()> {
        let mut cols = self.reader.take_columns();
        let mut held = self.last.take();
        held.begin_walk(self.blocks_of(ordinals));
        let result = self.block_runs(ordinals, &mut |b, start, end, now| {
            // Sorted, distinct, inside the block: all of it.
            if now.len() == end - start {
                return self.whole_block(b, &mut cols, &mut held, f);
            }
            let (kb, events) = self.block(b, &mut held)?;
            let out = now
                .iter()
                .try_for_each(|&o| f(Part::Event(&events[o as usize - start])));
            held.put(kb, events);
            out
        });
        *self.last.borrow_mut() = held;
        self.reader.put_columns(cols);
        result
    }

    fn each_part_in(
        &self,
        range: Range<usize>,
        f: &mut dyn FnMut(Part<'_>) -> Result<()>,
    ) -> Result<()> {
        let Range { start: mut at, end } = clamped(range, self.len());
        let mut cols = self.reader.take_columns();
        let mut held = self.last.take();
        held.begin_walk(self.blocks_in(at..end));
        let result = (|| {
            while at < end {
                let b = self.block_of(at);
                let (start, stop) = (self.starts[b], self.starts[b + 1]);
                if at == start && stop <= end {
                    self.whole_block(b, &mut cols, &mut held, f)?;
                    at = stop;
                    continue;
                }
                let stop = stop.min(end);
                let (kb, events) = self.block(b, &mut held)?;
                let out = f(Part::Events(&events[at - start..stop - start]));
                held.put(kb, events);
                out?;
                at = stop;
            }
            Ok(())
        })();
        *self.last.borrow_mut() = held;
        self.reader.put_columns(cols);
        result
    }

    fn each_in(
        &self,
        range: Range<usize>,
        f: &mut dyn FnMut(usize, &[Event]) -> Result<()>,
    ) -> Result<()> {
        let Range { start: mut at, end } = clamped(range, self.len());
        let mut held = self.last.take();
        held.begin_walk(self.blocks_in(at..end));
        let result = (|| {
            while at < end {
                let b = self.block_of(at);
                let (start, stop) = (self.starts[b], self.starts[b + 1].min(end));
                let (kb, events) = self.block(b, &mut held)?;
                let out = f(at, &events[at - start..stop - start]);
                held.put(kb, events);
                out?;
                at = stop;
            }
            Ok(())
        })();
        *self.last.borrow_mut() = held;
        result
    }
}

mod kept;
#[cfg(test)]
mod tests;
