//! A source of events: its local intern ids, its batch, its end.

use super::{now_ns, IngestError, Msg, SOURCE_BATCH};
use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::time::Instant;
use ttalloc_model::{
    BufferId, Event, EventKind, Frame, FrameId, Pid, ProgramId, SiteId, StackNode, StringId,
};

/// One source of events (a process's connection, typically). Not `Clone`:
/// the order of its events is the order they are sent in.
pub struct Source {
    pub(super) id: u32,
    pub(super) pid: Pid,
    pub(super) tx: SyncSender<Msg>,
    pub(super) pending: Vec<Event>,
    pub(super) new_strings: Vec<String>,
    pub(super) new_frames: Vec<Frame>,
    pub(super) new_nodes: Vec<StackNode>,
    /// Counts of local definitions (ids are positional; string 0 and stack 0 are implicit).
    pub(super) strings: u32,
    pub(super) frames: u32,
    pub(super) stacks: u32,
    pub(super) string_index: HashMap<String, StringId>,
    pub(super) frame_index: HashMap<Frame, FrameId>,
    pub(super) stack_index: HashMap<StackNode, SiteId>,
    pub(super) ended: bool,
}

impl Source {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The source's number (the prefix of its buffer and program ids).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// A trace-wide unique buffer id for this source's local buffer id (< 2^40).
    pub fn buffer_id(&self, local: u64) -> BufferId {
        BufferId(self.id_base() | (local & (crate::protocol::LOCAL_ID_LIMIT - 1)))
    }

    /// A trace-wide unique program id for this source's local program id (< 2^40).
    pub fn program_id(&self, local: u64) -> ProgramId {
        ProgramId(self.id_base() | (local & (crate::protocol::LOCAL_ID_LIMIT - 1)))
    }

    pub(crate) fn id_base(&self) -> u64 {
        u64::from(self.id) << 40
    }

    /// Interns a string in this source's id space.
    pub fn intern_string(&mut self, s: &str) -> StringId {
        if s.is_empty() {
            return StringId::EMPTY;
        }
        if let Some(&id) = self.string_index.get(s) {
            return id;
        }
        let id = StringId(self.strings);
        self.strings += 1;
        self.string_index.insert(s.to_owned(), id);
        self.new_strings.push(s.to_owned());
        id
    }

    /// Interns a frame in this source's id space.
    pub fn intern_frame(&mut self, function: &str, file: &str, line: u32) -> FrameId {
        let frame = Frame {
            function: self.intern_string(function),
            file: self.intern_string(file),
            line,
        };
        if let Some(&id) = self.frame_index.get(&frame) {
            return id;
        }
        let id = FrameId(self.frames);
        self.frames += 1;
        self.frame_index.insert(frame, id);
        self.new_frames.push(frame);
        id
    }

    /// Interns a stack given innermost frame first; returns its site id.
    pub fn intern_stack(&mut self, frames_innermost_first: &[(&str, &str, u32)]) -> SiteId {
        let mut site = SiteId::UNKNOWN;
        for &(function, file, line) in frames_innermost_first.iter().rev() {
            let frame = self.intern_frame(function, file, line);
            let node = StackNode {
                parent: site,
                frame,
            };
            site = match self.stack_index.get(&node) {
                Some(&id) => id,
                None => {
                    let id = SiteId(self.stacks);
                    self.stacks += 1;
                    self.stack_index.insert(node, id);
                    self.new_nodes.push(node);
                    id
                }
            };
        }
        site
    }

    /// Queues one event (its pid is set to the source's). String and site ids
    /// must come from this source's interning.
    pub fn send(&mut self, mut event: Event) -> Result<(), IngestError> {
        self.check(&event.kind)?;
        event.pid = self.pid;
        self.pending.push(event);
        if self.pending.len() >= SOURCE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn check(&self, kind: &EventKind) -> Result<(), IngestError> {
        let bad = |what: &str, id: u32, n: u32| {
            Err(IngestError::Protocol(format!(
                "{what} id {id} was not interned by this source (only {n})"
            )))
        };
        if let Some(s) = kind.string() {
            if s.0 >= self.strings {
                return bad("string", s.0, self.strings);
            }
        }
        match kind.site() {
            Some(site) if site.0 >= self.stacks => bad("site", site.0, self.stacks),
            _ => Ok(()),
        }
    }

    /// Sends the queued definitions and events to the writer thread.
    pub fn flush(&mut self) -> Result<(), IngestError> {
        let src = self.id;
        if !self.new_strings.is_empty() {
            let strings = std::mem::take(&mut self.new_strings);
            self.tx
                .send(Msg::Strings { src, strings })
                .map_err(|_| IngestError::Closed)?;
        }
        if !self.new_frames.is_empty() {
            let frames = std::mem::take(&mut self.new_frames);
            self.tx
                .send(Msg::Frames { src, frames })
                .map_err(|_| IngestError::Closed)?;
        }
        if !self.new_nodes.is_empty() {
            let nodes = std::mem::take(&mut self.new_nodes);
            self.tx
                .send(Msg::Stacks { src, nodes })
                .map_err(|_| IngestError::Closed)?;
        }
        if !self.pending.is_empty() {
            let events = std::mem::take(&mut self.pending);
            self.tx
                .send(Msg::Events {
                    src,
                    events,
                    arrived: Instant::now(),
                })
                .map_err(|_| IngestError::Closed)?;
        }
        Ok(())
    }

    /// Ends the source: flushes, then records `ProcessExit { status }`.
    pub fn end(mut self, status: Option<i32>) {
        self.finish(status, true);
    }

    /// Ends the source without a `ProcessExit` (its connection was closed
    /// because of bad input; the process itself may still run).
    pub(crate) fn abort(mut self) {
        self.finish(None, false);
    }

    fn finish(&mut self, status: Option<i32>, exit: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        let _ = self.flush();
        let _ = self.tx.send(Msg::End {
            src: self.id,
            status,
            exit,
            ts: now_ns(),
        });
    }

    // ---- used by the native connection reader (already validated by the decoder) ----

    pub(crate) fn define_strings(&mut self, strings: Vec<String>) -> Result<(), IngestError> {
        self.strings += strings.len() as u32;
        self.flush_events_if_any()?;
        self.tx
            .send(Msg::Strings {
                src: self.id,
                strings,
            })
            .map_err(|_| IngestError::Closed)
    }

    pub(crate) fn define_frames(&mut self, frames: Vec<Frame>) -> Result<(), IngestError> {
        self.frames += frames.len() as u32;
        self.flush_events_if_any()?;
        self.tx
            .send(Msg::Frames {
                src: self.id,
                frames,
            })
            .map_err(|_| IngestError::Closed)
    }

    pub(crate) fn define_stacks(&mut self, nodes: Vec<StackNode>) -> Result<(), IngestError> {
        self.stacks += nodes.len() as u32;
        self.flush_events_if_any()?;
        self.tx
            .send(Msg::Stacks {
                src: self.id,
                nodes,
            })
            .map_err(|_| IngestError::Closed)
    }

    /// Sends a decoded batch (pid, ids and references already validated).
    pub(crate) fn send_batch(&mut self, events: Vec<Event>) -> Result<(), IngestError> {
        self.flush()?;
        self.tx
            .send(Msg::Events {
                src: self.id,
                events,
                arrived: Instant::now(),
            })
            .map_err(|_| IngestError::Closed)
    }

    fn flush_events_if_any(&mut self) -> Result<(), IngestError> {
        if self.pending.is_empty() && self.new_strings.is_empty() {
            Ok(())
        } else {
            self.flush()
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.finish(None, true);
    }
}
