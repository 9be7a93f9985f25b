//! [`Events`]: a trace's events one at a time, a block decoded at a time.

use super::TraceReader;
use crate::decode::{BlockColumns, EventCursor};
use crate::Result;
use ttalloc_model::Event;

/// Iterator returned by [`TraceReader::events`]. After an error it goes on
/// with the next block.
pub struct Events<'a> {
    reader: &'a TraceReader,
    next_block: usize,
    /// The current block, decoded into columns; events are built from it
    /// one at a time (no intermediate `Vec<Event>`).
    cols: BlockColumns,
    cur: EventCursor,
}

impl<'a> Events<'a> {
    pub(super) fn new(reader: &'a TraceReader) -> Self {
        Events {
            reader,
            next_block: 0,
            cols: BlockColumns::default(),
            cur: EventCursor::default(),
        }
    }
}

impl Iterator for Events<'_> {
    type Item = Result<Event>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((_, e)) = self.cols.next_event(&mut self.cur) {
                return Some(Ok(e));
            }
            if self.next_block >= self.reader.blocks().len() {
                return None;
            }
            let i = self.next_block;
            self.next_block += 1;
            self.cur = EventCursor::default();
            if let Err(e) = self.reader.decode_columns(i, &mut self.cols) {
                self.cols.clear();
                return Some(Err(e));
            }
        }
    }
}
