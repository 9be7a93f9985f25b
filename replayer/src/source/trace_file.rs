//! A trace file as a source of events: its blocks decoded one at a time
//! (or ahead of the consumer on a thread of their own), memory bounded by a
//! block or two.

use super::decode_ahead::{decode_ahead, Buffers};
use super::{Chunk, ChunkHook, ChunkPass, EventSource};
use crate::error::Result;
use std::ops::ControlFlow;
use ttalloc_model::{Event, InternTables};
use ttalloc_trace::{BlockColumns, BlockInfo, TraceReader};

impl EventSource for TraceReader {
    fn visit_back(
        &self,
        ordinal: u64,
        f: &mut dyn FnMut(u64, &[Event]) -> Result<bool>,
    ) -> Result<()> {
        let blocks = self.blocks();
        let Some(last) = blocks.len().checked_sub(1) else {
            return Ok(());
        };
        // Its only user (the op behind an event) reads no time.
        let (mut columns, mut buf) = (self.take_columns(), Vec::new());
        for i in (0..=self.block_of(ordinal).min(last)).rev() {
            self.decode_columns_untimed(i, &mut columns)?;
            buf.clear();
            columns.for_each_event(|_, e| buf.push(e));
            if !f(blocks[i].first_event, &buf)? {
                break;
            }
        }
        self.put_columns(columns);
        Ok(())
    }
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
    fn visit_prefix_chunks(
        &self,
        events: u64,
        f: &mut dyn FnMut(&Chunk<'_>) -> Result<()>,
    ) -> Result<()> {
        let decode =
            |r: &TraceReader, i, buf: &mut BlockColumns| r.decode_columns(i, buf).map(|()| true);
        visit_prefix_decoded(self, events, decode, &mut |chunk| {
            f(chunk).map(|()| ControlFlow::Continue(()))
        })
    }
    fn visit_prefix_non_buffer(
        &self,
        events: u64,
        f: &mut dyn FnMut(&Chunk<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        // Block 0 whole (the replay that follows takes it), the others
        // without their allocs and frees (the replay decodes them again,
        // from the decompressed records the reader keeps for it).
        // No times: the probe reads none, nor does a replay.
        let decode = |r: &TraceReader, i, buf: &mut BlockColumns| match i {
            0 => r.decode_columns_untimed(i, buf).map(|()| true),
            _ => r.decode_columns_non_buffer(i, buf),
        };
        visit_prefix_decoded(self, events, decode, f)
    }
    fn visit_last_non_buffer(&self, f: &mut dyn FnMut(&Chunk<'_>) -> Result<()>) -> Result<()> {
        let Some(last) = self.blocks().len().checked_sub(1) else {
            return Ok(());
        };
        let mut columns = self.take_columns();
        let result = match self.decode_columns_non_buffer(last, &mut columns) {
            Ok(_) => f(&Chunk::Columns {
                first: self.blocks()[last].first_event,
                columns: &columns,
            }),
            Err(e) => Err(e.into()),
        };
        self.put_columns(columns);
        result
    }
    fn interner(&self) -> &InternTables {
        TraceReader::interner(self)
    }
    fn num_events(&self) -> u64 {
        TraceReader::num_events(self)
    }
    fn warnings(&self) -> Vec<String> {
        TraceReader::warnings(self)
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
        decode_ahead(
            self,
            decoders,
            |r: &TraceReader, i, buf: &mut Vec<Event>| r.decode_block(i, buf),
            Buffers::NEW,
            None,
            &mut |i, buf: &Vec<Event>| f(blocks[i].first_event, buf),
        )
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
        let blocks = self.blocks();
        decode_ahead(
            self,
            1,
            |r: &TraceReader, i, buf: &mut Vec<Event>| r.decode_block(i, buf),
            Buffers::NEW,
            Some(&mut |i, buf: &Vec<Event>| pre(blocks[i].first_event, buf)),
            &mut |i, buf: &Vec<Event>| f(blocks[i].first_event, buf),
        )
    }
    fn visit_chunks_with(
        &self,
        pass: ChunkPass,
        mut pre: Option<ChunkHook<'_>>,
        f: &mut dyn FnMut(&Chunk<'_>) -> Result<()>,
    ) -> Result<()> {
        let blocks = self.blocks();
        fn columns_of<'c>(blocks: &[BlockInfo], i: usize, columns: &'c BlockColumns) -> Chunk<'c> {
            Chunk::Columns {
                first: blocks[i].first_event,
                columns,
            }
        }
        // Block 0 may come decoded from the cycle probe (`keep_decoded`).
        let timed = pass.timed;
        let decode = move |r: &TraceReader, i, buf: &mut BlockColumns| match timed {
            true => r.decode_columns_or_kept(i, buf),
            false => r.decode_columns_or_kept_untimed(i, buf),
        };
        // Decoding on this thread costs less CPU in all: two cores at work
        // at once, with a block's columns written on one and read on the
        // other, took 3-18% more CPU on the 10M synthetic trace beside
        // other work (1-2% on an idle machine), for the overlap in wall time.
        if blocks.len() < 2 || !pass.ahead {
            let mut buf = self.take_columns();
            for i in 0..blocks.len() {
                decode(self, i, &mut buf)?;
                let c = columns_of(blocks, i, &buf);
                if let Some(pre) = pre.as_deref_mut() {
                    pre(&c);
                }
                f(&c)?;
            }
            self.put_columns(buf);
            return Ok(());
        }
        // Decoded blocks come from the reader's pool and go back to it.
        let pooled = Buffers {
            take: &|| self.take_columns(),
            give: &|b| self.put_columns(b),
        };
        match pre {
            Some(p) => decode_ahead(
                self,
                1,
                decode,
                pooled,
                Some(&mut |i, buf: &BlockColumns| p(&columns_of(blocks, i, buf))),
                &mut |i, buf: &BlockColumns| f(&columns_of(blocks, i, buf)),
            ),
            None => decode_ahead(
                self,
                1,
                decode,
                pooled,
                None,
                &mut |i, buf: &BlockColumns| f(&columns_of(blocks, i, buf)),
            ),
        }
    }
    fn checkpoints(&self) -> Option<&[BlockInfo]> {
        Some(self.blocks())
    }
}

/// Decodes blocks with `decode` (which says whether it decoded a block
/// whole) from the start until at least `events` events were seen, handing
/// each to `f`. Block 0, decoded whole, is kept for the replay that follows
/// (`TraceReader::keep_decoded`); the others go through one buffer from the
/// reader's pool, back there at the end (the replay's decoder takes it next).
fn visit_prefix_decoded(
    reader: &TraceReader,
    events: u64,
    decode: impl Fn(&TraceReader, usize, &mut BlockColumns) -> ttalloc_trace::Result<bool>,
    f: &mut dyn FnMut(&Chunk<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let mut columns = reader.take_columns();
    for (i, block) in reader.blocks().iter().enumerate() {
        if block.first_event >= events && i > 0 {
            break;
        }
        let whole = decode(reader, i, &mut columns)?;
        let flow = f(&Chunk::Columns {
            first: block.first_event,
            columns: &columns,
        })?;
        if i == 0 && whole {
            reader.keep_decoded(0, std::mem::replace(&mut columns, reader.take_columns()));
        }
        if flow.is_break() {
            break;
        }
    }
    reader.put_columns(columns);
    Ok(())
}
