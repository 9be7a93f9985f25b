//! Telling a binary's allocator which allocations are a decoded block's.
//!
//! A reader decodes blocks into a few buffers it keeps pooled for the rest
//! of a scan (`TraceReader::take_columns`, the decoder's working arrays,
//! the decompressed record): megabytes each (5 MB for a block of workload
//! W), allocated while a block is being decoded and then reused, block
//! after block. Their first touch is most of a short replay's page faults.
//! A binary's global allocator may give them memory of their own (the
//! `ttalloc` binary backs them with transparent huge pages): it asks
//! [`decoding_block`] whether the calling thread is decoding a block now.

use std::cell::Cell;

thread_local! {
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is decoding a trace block now: what it
/// allocates is a decoded block's buffers, the decoder's working arrays or
/// the block's compressed and decompressed bytes, which the reader keeps
/// and reuses for the rest of the scan. Cheap (a thread-local flag), and
/// safe to call from a global allocator (it neither allocates nor panics,
/// also while the thread exits).
pub fn decoding_block() -> bool {
    DECODING.try_with(Cell::get).unwrap_or(false)
}

/// Marks the calling thread as decoding a block until dropped (a decode
/// inside another one leaves the mark as it found it).
pub(super) struct Decoding {
    was: bool,
}

impl Decoding {
    pub(super) fn start() -> Self {
        let was = DECODING.try_with(|d| d.replace(true)).unwrap_or(false);
        Decoding { was }
    }
}

impl Drop for Decoding {
    fn drop(&mut self) {
        let _ = DECODING.try_with(|d| d.set(self.was));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_holds_while_decoding_and_nests() {
        assert!(!decoding_block());
        {
            let _outer = Decoding::start();
            assert!(decoding_block());
            {
                let _inner = Decoding::start();
                assert!(decoding_block());
            }
            // The inner decode ended; the outer one still runs.
            assert!(decoding_block());
            // Another thread is not marked by this one's decode.
            assert!(!std::thread::spawn(decoding_block).join().unwrap());
        }
        assert!(!decoding_block());
    }
}
