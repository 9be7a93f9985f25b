//! The allocation watch: the largest single allocation made by one test thread.

use super::*;

// ---------------------------------------------------------------------------
// Allocation watch: the largest single allocation made by this thread while
// tracking is on (other test threads do not count).

pub(crate) struct Watch;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

pub(crate) fn note_alloc(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
pub(crate) static GLOBAL: Watch = Watch;

/// Runs `f` and returns its result with the largest single allocation it made.
pub(crate) fn largest_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let r = f();
    TRACKING.with(|t| t.set(false));
    (r, LARGEST.with(|l| l.get()))
}

/// What decoding one frame of `payload_len` bytes may allocate at once: the
/// decoded records (a `String` is 24 bytes for at least 4 wire bytes, an
/// `Event` about 48-64 bytes for at least 16) plus the error text.
pub(crate) fn alloc_budget(payload_len: usize) -> usize {
    8 * payload_len + 64 * 1024
}
