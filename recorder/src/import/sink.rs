//! Where importers and the compat listener put the events they make.
//!
//! Both need two things from a trace writer: its intern tables (to turn op
//! names into call sites, argv into strings) and `push`. Coding against this
//! small trait keeps them testable without a trace file and lets the recorder
//! core's ingest handle stand in for the writer (see `compat::listener`).

use std::fmt;
use ttalloc_model::{Event, InternTables};

/// An error from the sink (disk full, writer closed, ...), kept as text so
/// every sink can report its own kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError(pub String);

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SinkError {}

/// A consumer of recorded events.
pub trait EventSink {
    /// The intern tables the pushed events' ids refer to.
    fn interner_mut(&mut self) -> &mut InternTables;
    /// Appends one event.
    fn push(&mut self, event: &Event) -> Result<(), SinkError>;
}

impl EventSink for ttalloc_trace::TraceWriter {
    fn interner_mut(&mut self) -> &mut InternTables {
        ttalloc_trace::TraceWriter::interner_mut(self)
    }
    fn push(&mut self, event: &Event) -> Result<(), SinkError> {
        ttalloc_trace::TraceWriter::push(self, event).map_err(|e| SinkError(e.to_string()))
    }
}

impl<S: EventSink + ?Sized> EventSink for &mut S {
    fn interner_mut(&mut self) -> &mut InternTables {
        (**self).interner_mut()
    }
    fn push(&mut self, event: &Event) -> Result<(), SinkError> {
        (**self).push(event)
    }
}

/// Keeps everything in memory: for tests and for callers that post-process.
#[derive(Debug, Default)]
pub struct VecSink {
    pub interner: InternTables,
    pub events: Vec<Event>,
}

impl EventSink for VecSink {
    fn interner_mut(&mut self) -> &mut InternTables {
        &mut self.interner
    }
    fn push(&mut self, event: &Event) -> Result<(), SinkError> {
        self.events.push(event.clone());
        Ok(())
    }
}
