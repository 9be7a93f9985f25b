//! Where replayed events come from: a trace file (one block decoded at a
//! time, memory bounded by a block) or events already in memory (tests,
//! importers, generators). The engine only sees ordered slices of events.

use crate::error::Result;
use ttalloc_model::{Event, InternTables};
use ttalloc_trace::{BlockInfo, TraceReader};

/// A hook run on the decoding thread on every run of events, in order.
pub type PreHook<'a> = &'a mut (dyn FnMut(u64, &[Event]) + Send);

pub trait EventSource {
    fn interner(&self) -> &InternTables;
    fn num_events(&self) -> u64;
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
    /// Visits whole blocks (chunks) from the start until at least `events`
    /// events were seen (a cheap look at the beginning of a trace).
    fn visit_prefix(
        &self,
        events: u64,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()>;
    /// The footer checkpoints (live bytes per device and type at block ends), if any.
    fn checkpoints(&self) -> Option<&[BlockInfo]> {
        None
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
const CHUNK: usize = 65536;

impl EventSource for MemoryTrace {
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

impl EventSource for TraceReader {
    fn visit_prefix(
        &self,
        events: u64,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        for (i, block) in self.blocks().iter().enumerate() {
            if block.first_event >= events && i > 0 {
                break;
            }
            self.decode_block(i, &mut buf)?;
            f(block.first_event, &buf)?;
        }
        Ok(())
    }
    fn interner(&self) -> &InternTables {
        TraceReader::interner(self)
    }
    fn num_events(&self) -> u64 {
        TraceReader::num_events(self)
    }
    fn visit_with(
        &self,
        decoders: usize,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()> {
        let blocks = self.blocks();
        if decoders == 0 || blocks.len() < 2 {
            let mut buf = Vec::new();
            for (i, block) in blocks.iter().enumerate() {
                self.decode_block(i, &mut buf)?;
                f(block.first_event, &buf)?;
            }
            return Ok(());
        }
        decode_ahead(self, decoders, None, f)
    }
    fn visit_split(
        &self,
        pre: &mut (dyn FnMut(u64, &[Event]) + Send),
        f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
    ) -> Result<()> {
        if self.blocks().len() < 2 {
            return self.visit_with(0, &mut |first, events| {
                pre(first, events);
                f(first, events)
            });
        }
        decode_ahead(self, 1, Some(pre), f)
    }
    fn checkpoints(&self) -> Option<&[BlockInfo]> {
        Some(self.blocks())
    }
}

/// Blocks decoded ahead by this many per decoder thread (memory: a few blocks).
const AHEAD: usize = 2;

/// Decodes blocks on `decoders` threads (block i on thread i % decoders)
/// while `f` consumes them in order on the calling thread. Event buffers go
/// back to their decoder to be reused, so memory stays at a few blocks.
/// `pre`, if any, runs on the decoder thread after each block is decoded
/// (only with one decoder, so that it sees the blocks in order).
fn decode_ahead(
    reader: &TraceReader,
    decoders: usize,
    mut pre: Option<PreHook<'_>>,
    f: &mut dyn FnMut(u64, &[Event]) -> Result<()>,
) -> Result<()> {
    assert!(
        pre.is_none() || decoders == 1,
        "an in-order hook needs one decoder"
    );
    use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
    let blocks = reader.blocks();
    let n = blocks.len();
    let decoders = decoders.min(n);
    std::thread::scope(|scope| {
        let mut full: Vec<Receiver<ttalloc_trace::Result<Vec<Event>>>> = Vec::new();
        let mut empty: Vec<SyncSender<Vec<Event>>> = Vec::new();
        for t in 0..decoders {
            let (full_tx, full_rx) = sync_channel(AHEAD);
            let (empty_tx, empty_rx) = sync_channel::<Vec<Event>>(AHEAD + 1);
            full.push(full_rx);
            empty.push(empty_tx);
            let mut pre = pre.take();
            scope.spawn(move || {
                for i in (t..n).step_by(decoders) {
                    let mut buf = empty_rx.try_recv().unwrap_or_default();
                    let r = reader.decode_block(i, &mut buf).map(|()| buf);
                    if let (Some(pre), Ok(events)) = (pre.as_mut(), r.as_ref()) {
                        pre(blocks[i].first_event, events);
                    }
                    let failed = r.is_err();
                    // The consumer hung up (an error downstream): stop.
                    if full_tx.send(r).is_err() || failed {
                        return;
                    }
                }
            });
        }
        for (i, block) in blocks.iter().enumerate() {
            let t = i % decoders;
            let buf = match full[t].recv() {
                Ok(r) => r?,
                Err(_) => break,
            };
            f(block.first_event, &buf)?;
            let _ = empty[t].try_send(buf);
        }
        Ok(())
    })
}
