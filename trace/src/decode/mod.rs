//! Decoding an event block into [`BlockColumns`]: every packed column is
//! decoded whole in a few vector loops (`packed`), one branch-free walk over
//! the kinds hands devices and buffer ids to allocs, frees and the other
//! kinds (`block`), then each kind is assembled in its own loop (`allocs`,
//! `others`); only callers that want `Event` values pay for a pass that
//! builds them (`columns`).
//! Column lengths and id limits are checked before the loops run (the one
//! unchecked loop, the walk, is bounded by the kind histogram); malformed
//! input is an error, never a panic.

mod allocs;
mod block;
mod columns;
mod kinds;
mod others;
mod packed;
#[cfg(test)]
mod tests;

pub use block::decode_columns;
pub(crate) use columns::EventCursor;
pub use columns::{AllocCol, AllocColumns, AllocExt, BlockColumns, FreeCol, FreeColumns};
pub(crate) use kinds::{kind_words, KindWord};

use crate::varint::{Cursor, Overrun};
use ttalloc_model::{SiteId, StringId};

/// Id limits of the intern tables events may refer to.
#[derive(Clone, Copy, Debug)]
pub struct RefLimits {
    pub strings: u32,
    pub sites: u32,
}

/// Why a block did not decode (the caller adds block and offset).
pub type DecodeError = String;

pub(super) fn overrun(what: &str) -> impl Fn(Overrun) -> DecodeError + '_ {
    move |_| format!("column {what} ends early or holds a malformed varint")
}

pub(super) fn site_of(v: u64, limits: RefLimits) -> Result<SiteId, DecodeError> {
    if v < limits.sites as u64 {
        Ok(SiteId(v as u32))
    } else {
        Err(undefined_site(v, limits))
    }
}

#[cold]
pub(super) fn undefined_site(v: u64, limits: RefLimits) -> DecodeError {
    format!("site id {v} is not defined (only {} known)", limits.sites)
}

pub(super) fn string_of(v: u64, limits: RefLimits) -> Result<StringId, DecodeError> {
    if v < limits.strings as u64 {
        Ok(StringId(v as u32))
    } else {
        Err(format!(
            "string id {v} is not defined (only {} known)",
            limits.strings
        ))
    }
}

pub(super) fn end(c: &Cursor, what: &str) -> Result<(), DecodeError> {
    if c.is_at_end() {
        Ok(())
    } else {
        Err(format!("column {what} has bytes left after the last event"))
    }
}
