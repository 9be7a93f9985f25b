//! Decoding an event block into [`BlockColumns`]: every packed column is
//! decoded whole in a few vector loops (`packed`), one branch-free walk over
//! the kinds hands devices and buffer ids to allocs, frees and the other
//! kinds (`block`), then each kind is assembled in its own loop (`allocs`,
//! `others`); only callers that want `Event` values pay for a pass that
//! builds them (`columns`).
//! Column lengths and id limits are checked before the loops run (the one
//! unchecked loop, the walk, is bounded by the kind histogram); malformed
//! input is an error, never a panic.

/// Defines `fn $name(args) -> ret` that runs `$inner` (an
/// `#[inline(always)]` fn) compiled for POPCNT, BMI1/2, LZCNT and AVX2
/// when the CPU has them (checked per call: a cached load), else for the
/// baseline CPU. The decoder's bit loops count with popcounts, which the
/// baseline x86_64 target codes as a dozen instructions each.
macro_rules! fast_cpu_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident => $inner:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
                unsafe fn fast($($arg: $ty),*) -> $ret {
                    $inner($($arg),*)
                }
                if $crate::decode::fast_cpu() {
                    // SAFETY: the CPU has every feature `fast` is compiled for.
                    return unsafe { fast($($arg),*) };
                }
            }
            $inner($($arg),*)
        }
    };
}
pub(crate) use fast_cpu_dispatch;

/// Whether the CPU has the features `fast_cpu_dispatch` compiles for.
#[inline]
pub(crate) fn fast_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("lzcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

mod allocs;
mod block;
mod buffer_columns;
mod cb_columns;
mod chain;
mod columns;
mod hand_out;
mod kinds;
pub(crate) mod mtf;
mod others;
mod packed;
mod scratch;
#[cfg(test)]
mod tests;
mod times;

pub use block::{decode_columns, decode_columns_non_buffer, BlockTimes};
pub use buffer_columns::{
    AllocCol, AllocColumns, AllocExt, AllocRef, FreeCol, FreeColumns, FreeRef,
};
pub use cb_columns::{CbCol, CbColumns};
pub use columns::BlockColumns;
pub(crate) use columns::EventCursor;
pub(crate) use kinds::{kind_words, KindWord};
pub(crate) use scratch::DecodeScratch;

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

/// The capacity a decoded column of `n` entries gets when it must grow: a
/// sixteenth to spare from a thousand entries on (one grown to the exact
/// count grows again at the next block holding a few more; small ones
/// cost little to grow and are kept exact).
#[inline]
pub(crate) const fn room_for(n: usize) -> usize {
    if n >= 1024 {
        n + n / 16
    } else {
        n
    }
}

/// Makes `v` `n` entries long for a decode that overwrites every one
/// (only growth is zeroed). A vector too small is replaced
/// ([`room_for`]), not grown: growing copies its old entries, which mean
/// nothing.
#[inline]
pub(crate) fn overwrite_len<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    if v.capacity() < n {
        *v = Vec::new();
        v.reserve_exact(room_for(n));
    }
    v.resize(n, T::default());
}

/// Empties `v` and makes room for `n` entries in it (replaced, not grown,
/// when too small: as [`overwrite_len`]).
#[inline]
pub(crate) fn clear_for<T>(v: &mut Vec<T>, n: usize) {
    v.clear();
    if v.capacity() < n {
        *v = Vec::new();
        v.reserve_exact(room_for(n));
    }
}

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
