//! zstd's sequence API (static, experimental), wrapped for the writer:
//! find a record's matches with the writer's own match finder settings,
//! keep those worth a sequence (`match_filter`), and code the frame from
//! them with zstd blocks ending at the writer's cuts.

use crate::match_filter::{self, ZSTD_MIN_MATCH};
use std::ptr::NonNull;
use zstd::zstd_safe::{self, zstd_sys as zs};

/// An owned `ZSTD_CCtx` (zstd-safe's `CCtx` does not hand out its pointer,
/// which the sequence API needs).
struct RawCCtx(NonNull<zs::ZSTD_CCtx>);

// SAFETY: a ZSTD_CCtx is plain heap state with no thread affinity (zstd-safe's
// CCtx is Send too); `RawCCtx` owns it and hands it out only through `&mut self`.
unsafe impl Send for RawCCtx {}

impl RawCCtx {
    fn new() -> std::io::Result<Self> {
        // SAFETY: ZSTD_createCCtx has no preconditions; null means out of memory.
        let p = unsafe { zs::ZSTD_createCCtx() };
        NonNull::new(p)
            .map(RawCCtx)
            .ok_or_else(|| std::io::Error::other("zstd: cannot create a context"))
    }

    fn set(&mut self, param: zs::ZSTD_cParameter, value: i32) -> std::io::Result<()> {
        // SAFETY: the context is live (owned); zstd checks the parameter and value.
        check(unsafe { zs::ZSTD_CCtx_setParameter(self.0.as_ptr(), param, value) }).map(|_| ())
    }
}

impl Drop for RawCCtx {
    fn drop(&mut self) {
        // SAFETY: the context was created by ZSTD_createCCtx and is freed once.
        unsafe { zs::ZSTD_freeCCtx(self.0.as_ptr()) };
    }
}

fn check(code: usize) -> std::io::Result<usize> {
    // SAFETY: ZSTD_isError only compares a number.
    if unsafe { zs::ZSTD_isError(code) } != 0 {
        Err(std::io::Error::other(format!(
            "zstd: {}",
            zstd_safe::get_error_name(code)
        )))
    } else {
        Ok(code)
    }
}

/// The shortest block zstd compresses (`MIN_CBLOCK_SIZE` +
/// `ZSTD_blockHeaderSize` + 2 in zstd 1.5.7's `ZSTD_buildSeqStore`); below it
/// the sequence collector fails. (A different zstd only makes the writer
/// fall back to its streaming path.)
const ZSTD_TINY_BLOCK: usize = 7;

const NO_SEQUENCE: zs::ZSTD_Sequence = zs::ZSTD_Sequence {
    offset: 0,
    litLength: 0,
    matchLength: 0,
    rep: 0,
};

/// Codes records into frames whose sequences are zstd's matches less those
/// not worth decoding.
pub(crate) struct SequenceCoder {
    finder: RawCCtx,
    coder: RawCCtx,
    found: Vec<zs::ZSTD_Sequence>,
    kept: Vec<zs::ZSTD_Sequence>,
}

impl SequenceCoder {
    /// `min_match`: the finder's shortest match (None: the level's own).
    pub(crate) fn new(level: i32, min_match: Option<u32>) -> std::io::Result<Self> {
        use zs::ZSTD_cParameter as P;
        let mut finder = RawCCtx::new()?;
        finder.set(P::ZSTD_c_compressionLevel, level)?;
        if let Some(m) = min_match {
            finder.set(P::ZSTD_c_minMatch, m as i32)?;
        }
        let mut coder = RawCCtx::new()?;
        for (p, v) in [
            (P::ZSTD_c_compressionLevel, level),
            (P::ZSTD_c_checksumFlag, 1),
            (P::ZSTD_c_contentSizeFlag, 1),
            // Matches split at a block end may be shorter than the finder's.
            (P::ZSTD_c_minMatch, ZSTD_MIN_MATCH as i32),
            // ZSTD_c_blockDelimiters: ZSTD_sf_explicitBlockDelimiters.
            (P::ZSTD_c_experimentalParam11, 1),
            // ZSTD_c_validateSequences: a bad offset is an error, not a bad frame.
            (P::ZSTD_c_experimentalParam12, 1),
            // ZSTD_c_repcodeResolution: ZSTD_ps_enable (a level under 10 would
            // code every repeated offset in full: 2.93 -> 2.96 B/event).
            (P::ZSTD_c_experimentalParam19, 1),
        ] {
            coder.set(p, v)?;
        }
        Ok(SequenceCoder {
            finder,
            coder,
            found: Vec::new(),
            kept: Vec::new(),
        })
    }

    /// Compresses `record` into `out` (cleared first) as one frame with zstd
    /// blocks ending at `cuts`. Ok(false) if zstd's match finder gave
    /// sequences that do not fit the record (it is documented as not
    /// guaranteed to succeed): the caller then compresses another way.
    pub(crate) fn compress(
        &mut self,
        record: &[u8],
        cuts: &[usize],
        out: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        // zstd stores a block under `ZSTD_TINY_BLOCK` bytes raw, and its
        // sequence collector then refuses the whole record ("Uncompressible
        // block"). Such a block holds no match: find the matches of the
        // whole blocks before it and leave it to literals.
        let tail = record.len() % match_filter::BLOCK_MAX;
        let searched = if tail < ZSTD_TINY_BLOCK {
            &record[..record.len() - tail]
        } else {
            record
        };
        let n = if searched.is_empty() {
            0
        } else {
            let bound = zstd_safe::sequence_bound(searched.len());
            if self.found.len() < bound {
                self.found.resize(bound, NO_SEQUENCE);
            }
            // SAFETY: `found` holds `bound` (>= ZSTD_sequenceBound) initialized
            // sequences, the capacity passed; `searched` is a live slice of its length.
            #[allow(deprecated)]
            let n = unsafe {
                zs::ZSTD_generateSequences(
                    self.finder.0.as_ptr(),
                    self.found.as_mut_ptr(),
                    bound,
                    searched.as_ptr().cast(),
                    searched.len(),
                )
            };
            let Ok(n) = check(n) else {
                return Ok(false);
            };
            // SAFETY: the first `n` (<= bound) sequences were just written.
            unsafe { zs::ZSTD_mergeBlockDelimiters(self.found.as_mut_ptr(), n.min(bound)) }
        };
        if !match_filter::keep_paying_matches(record, cuts, &self.found[..n], &mut self.kept) {
            return Ok(false);
        }
        out.clear();
        out.reserve(zstd_safe::compress_bound(record.len()));
        // SAFETY: the context is live; reset takes any directive value of the enum.
        check(unsafe {
            zs::ZSTD_CCtx_reset(
                self.coder.0.as_ptr(),
                zs::ZSTD_ResetDirective::ZSTD_reset_session_only,
            )
        })?;
        // SAFETY: `out` has `capacity()` writable bytes from its start (it is
        // empty); `kept` and `record` are live slices of the lengths passed.
        // The sequences are validated by zstd (ZSTD_c_validateSequences) and
        // their matches were checked against `record` by `keep_paying_matches`.
        let written = unsafe {
            zs::ZSTD_compressSequences(
                self.coder.0.as_ptr(),
                out.as_mut_ptr().cast(),
                out.capacity(),
                self.kept.as_ptr(),
                self.kept.len(),
                record.as_ptr().cast(),
                record.len(),
            )
        };
        let Ok(written) = check(written) else {
            return Ok(false);
        };
        // SAFETY: zstd wrote `written` (<= capacity) bytes from the start.
        unsafe { out.set_len(written.min(out.capacity())) };
        Ok(true)
    }
}
