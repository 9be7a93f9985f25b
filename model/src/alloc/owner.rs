//! Who holds a block of device memory: shared by the device (its block
//! tables) and the errors that name what is in the way.

use std::fmt;

use crate::ids::{BufferId, ProgramId, TraceId};

/// Who holds a block of device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Buffer(BufferId),
    Program(ProgramId),
    Trace(TraceId),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Buffer(b) => write!(f, "buffer {b}"),
            Owner::Program(p) => write!(f, "program {p}"),
            Owner::Trace(t) => write!(f, "trace {t}"),
        }
    }
}
