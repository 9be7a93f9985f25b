//! The binary's global allocator: the system's, except for the big buffers
//! a trace reader decodes blocks into, which come from one region of memory
//! advised for transparent huge pages.
//!
//! Why: a replay decodes every block into the same few pooled buffers
//! (decoded blocks in flight, the decoder's working arrays, the
//! decompressed record: ~12 MB for workload W), so their pages are touched
//! for the first time once per process, and with 4 KiB pages every first
//! touch is a page fault. On the 2-core VM this was measured on a fault
//! costs ~1.35 µs per 4 KiB page and a huge-page fault ~0.14 µs per 4 KiB:
//! W's ~3,100 faults were ~13% of its replay's CPU.
//!
//! Only those buffers: an allocation of at least [`MIN`] bytes made while
//! its thread decodes a block ([`ttalloc_trace::decoding_block`]). They are
//! packed from the bottom of the region, lowest free place first, and a
//! buffer that grows extends in place when the space after it is free. A
//! block freed (a buffer that grew and moved, mostly in the first blocks)
//! keeps its pages while it lies in the huge-page part: the next buffers
//! are packed into them, so a page is zeroed by the kernel once per
//! process, not once per move (giving part of a huge page back splits it,
//! and the part given back faults and is zeroed again 4 KiB at a time).
//! Above that part a freed block gives its pages back, as the system
//! allocator unmaps a big block. The rest of the program (the allocator
//! model's tables, say) keeps the system allocator and its 4 KiB pages.
//!
//! The price is resident memory: a huge page is resident whole once any
//! byte of it is touched, and a buffer grown by doubling (`Vec`'s growth
//! when a later block is a little bigger) has a tail it never touches,
//! which 4 KiB pages leave out. So only the region's first [`HUGE_PART`]
//! bytes are advised for huge pages; the rest of it has 4 KiB pages.
//! Measured (2-core VM, THP `madvise`, medians of 15 alternating runs):
//! workload W's replay 3,100 → 1,000 page faults, 45.8 → 40.8 ms CPU, peak
//! RSS 18.5 → 22.2 MB; the 10M-event synthetic trace 3,340 → 2,500 faults,
//! peak RSS 18.1 → 22.9 MB (50M events: 23.9 MB). Tried: 10 MiB of huge
//! pages (W 1,600 faults, 42.2 ms, 20.6 MB; 10M 21.2 MB); a part of 4 KiB
//! pages for every buffer that grows (fewer faults saved: buffers of a
//! trace whose blocks vary all grow after the first block); keeping all
//! freed blocks resident for reuse (10M 24 MB). Later, with the decoder's
//! columns reserved to size (its buffers reach ~11.5 MiB into the region
//! for W, ~12.3 MiB for the 10M trace): freed blocks kept in a 14 MiB huge
//! part, W 779 → 509 faults, 10M 1,729 → 1,258, but 10M peak RSS 22.2 →
//! 24.4 MB (a last huge page zeroed whole for 0.3 MiB of use); with the
//! part 12 MiB, W 511 faults and 10M 1,274 at 22.4 MB.
//!
//! On a VM whose balloon reports free memory to the host (virtio-balloon
//! free page reporting, as on the 2-core VM), a free 2 MiB block left idle
//! for a few seconds goes back to the host, and the first touch of it
//! faults on the host too: 12 MiB of huge pages measured 0.6 ms backed and
//! 11–99 ms after an idle pause (4 KiB pages 5–16 ms). Back-to-back
//! replays (a benchmark's) mostly get backed pages; after a pause W's
//! median was the same with or without huge pages, with a longer tail with
//! them. What a replay touches, not how it is faulted, is the lasting cost.
//!
//! Where the region cannot be had (no mmap, strict overcommit refusing the
//! reservation) or is full, allocations fall back to the system allocator;
//! a kernel without transparent huge pages (or with them `never`) ignores
//! the advice and faults the region in 4 KiB pages, as before.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Decoded-block buffers get region memory from this size up (smaller ones
/// are a few pages at most, which huge pages would not save).
const MIN: usize = 64 << 10;
/// The region's granule: every block starts on a page and is a whole
/// number of pages.
const PAGE: usize = 4 << 10;
/// A transparent huge page on x86_64 and aarch64 with 4 KiB base pages.
const HUGE: usize = 2 << 20;
/// How much of the region (from its start, where buffers are packed
/// first) is advised for huge pages and keeps freed blocks' pages: a bound
/// on what they may add to resident memory. Workload W's decoded-block
/// buffers reach ~11.5 MiB into the region, the 10M-event synthetic
/// trace's ~12.3 MiB.
const HUGE_PART: usize = 12 << 20;
/// Address space reserved for the region (not memory: only what is
/// touched becomes resident). A replay uses ~12 MB of it, a scan on 8
/// cores ~60 MB.
const RESERVE: usize = 1 << 30;

pub struct BlockPages;

/// Where the region starts: 0 before it is mapped, [`NO_REGION`] when it
/// could not be.
static BASE: AtomicUsize = AtomicUsize::new(0);
const NO_REGION: usize = usize::MAX;
static SPANS: Mutex<Spans> = Mutex::new(Spans::new(RESERVE));

fn spans() -> std::sync::MutexGuard<'static, Spans> {
    // Every method leaves `Spans` consistent before anything can panic.
    SPANS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The region's start, mapping it on first use.
fn base() -> Option<usize> {
    match BASE.load(Ordering::Acquire) {
        NO_REGION => None,
        0 => {
            // Map under the lock, so that two threads do not both map it.
            let _spans = spans();
            match BASE.load(Ordering::Acquire) {
                0 => {
                    let b = map_region().unwrap_or(NO_REGION);
                    BASE.store(b, Ordering::Release);
                    (b != NO_REGION).then_some(b)
                }
                NO_REGION => None,
                b => Some(b),
            }
        }
        b => Some(b),
    }
}

#[cfg(target_os = "linux")]
fn map_region() -> Option<usize> {
    // Over-map by a huge page so the region can start on a huge-page
    // boundary (a huge page is only used where 2 MiB aligned fit).
    let span = RESERVE + HUGE;
    // SAFETY: an anonymous private mapping with no address hint; the
    // result is checked before use.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = (raw as usize).next_multiple_of(HUGE);
    // SAFETY: the range is inside the mapping just made (HUGE_PART <
    // RESERVE). Advice only: a kernel without transparent huge pages says
    // EINVAL, which changes nothing.
    unsafe { libc::madvise(start as *mut libc::c_void, HUGE_PART, libc::MADV_HUGEPAGE) };
    Some(start)
}

#[cfg(not(target_os = "linux"))]
fn map_region() -> Option<usize> {
    None
}

/// The region's offset of `p`, if the region holds it.
fn offset_of(p: *mut u8) -> Option<usize> {
    let base = BASE.load(Ordering::Acquire);
    let p = p as usize;
    (base != 0 && base != NO_REGION && p >= base && p < base + RESERVE).then(|| p - base)
}

fn wanted(layout: Layout) -> bool {
    layout.size() >= MIN && layout.align() <= PAGE && ttalloc_trace::decoding_block()
}

/// Of a freed block of `len` bytes at the region's offset `at`, the part
/// given back to the system: its offset in the block and its length (zero
/// when all of it stays). The part in the region's first [`HUGE_PART`]
/// bytes stays resident and is handed out again (blocks are packed
/// lowest-first, so the next buffers reuse it): giving it back would split
/// its huge page and make the next block fault and zero it again, 4 KiB at
/// a time. Above it, memory is given back as the system allocator unmaps a
/// big block, so that resident memory stays bounded.
fn given_back(at: usize, len: usize) -> (usize, usize) {
    let kept = HUGE_PART.saturating_sub(at).min(len);
    (kept, len - kept)
}

/// Gives back to the system the part of the `len` bytes at the region's
/// offset `at`, a block being freed, that [`given_back`] says. Done before
/// the block goes back to the free places: another thread may take it
/// right after.
fn release(at: usize, len: usize) {
    let (from, back) = given_back(at, len);
    if back == 0 {
        return;
    }
    let base = BASE.load(Ordering::Acquire);
    #[cfg(target_os = "linux")]
    // SAFETY: the range is part of a block of the region (mapped at
    // `base`, since the block was handed out) owned by the caller, which
    // frees it; its contents are not read again (taken again, it reads as
    // zero or as what its next owner writes).
    unsafe {
        libc::madvise(
            (base + at + from) as *mut libc::c_void,
            back,
            libc::MADV_DONTNEED,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (base, from);
}

/// A block of `size` bytes from the region, and how many of its first
/// bytes were used before (the rest is fresh, zero memory).
fn take(size: usize) -> Option<(*mut u8, usize)> {
    let base = base()?;
    let (at, used) = spans().take(size.next_multiple_of(PAGE))?;
    Some(((base + at) as *mut u8, used.min(size)))
}

// SAFETY: a pointer the region holds (`offset_of`) was handed out by
// `take` (the region is only ever handed out there) and goes back to the
// region, with the size it was last given; every other pointer came from
// `System` and goes back there.
unsafe impl GlobalAlloc for BlockPages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if wanted(layout) {
            if let Some((p, _)) = take(layout.size()) {
                return p;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if wanted(layout) {
            if let Some((p, used)) = take(layout.size()) {
                ptr::write_bytes(p, 0, used);
                return p;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match offset_of(p) {
            Some(at) => {
                let len = layout.size().next_multiple_of(PAGE);
                release(at, len);
                spans().give(at, len);
            }
            None => System.dealloc(p, layout),
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let (old, new) = (layout.size(), new_size);
        match offset_of(p) {
            Some(at) => {
                let resized =
                    spans().resize(at, old.next_multiple_of(PAGE), new.next_multiple_of(PAGE));
                if resized {
                    return p;
                }
                let q = match take(new) {
                    Some((q, _)) => q,
                    None => System.alloc(new_layout),
                };
                if !q.is_null() {
                    ptr::copy_nonoverlapping(p, q, old.min(new));
                    release(at, old.next_multiple_of(PAGE));
                    spans().give(at, old.next_multiple_of(PAGE));
                }
                q
            }
            None => {
                // A buffer that grew big while decoding moves to the region.
                if wanted(new_layout) {
                    if let Some((q, _)) = take(new) {
                        ptr::copy_nonoverlapping(p, q, old.min(new));
                        System.dealloc(p, layout);
                        return q;
                    }
                }
                System.realloc(p, layout, new_size)
            }
        }
    }
}

/// Most free places [`Spans`] remembers; a place freed beyond that is not
/// reused (a replay leaves a handful).
const MAX_FREE: usize = 64;

/// Which parts of a region of `cap` bytes are handed out: everything below
/// `top` except the `free` places (sorted by offset, none touching another
/// or `top`). Offsets and lengths are multiples of [`PAGE`].
#[derive(Debug)]
struct Spans {
    cap: usize,
    top: usize,
    /// The highest `top` has been: the region above it has never been used.
    high_water: usize,
    free: [(usize, usize); MAX_FREE],
    num_free: usize,
}

impl Spans {
    const fn new(cap: usize) -> Self {
        Spans {
            cap,
            top: 0,
            high_water: 0,
            free: [(0, 0); MAX_FREE],
            num_free: 0,
        }
    }

    /// Hands out `len` bytes: the lowest free place that fits, else at the
    /// top. Returns the offset and how many of its first bytes were handed
    /// out before.
    fn take(&mut self, len: usize) -> Option<(usize, usize)> {
        if let Some(i) = self.free[..self.num_free]
            .iter()
            .position(|&(_, l)| l >= len)
        {
            let (at, l) = self.free[i];
            if l == len {
                self.remove_free(i);
            } else {
                self.free[i] = (at + len, l - len);
            }
            return Some((at, len));
        }
        let at = self.top;
        let end = at.checked_add(len).filter(|&e| e <= self.cap)?;
        self.top = end;
        let used = self.high_water.saturating_sub(at).min(len);
        self.high_water = self.high_water.max(end);
        Some((at, used))
    }

    /// Takes back the `len` bytes at `at`, merged with the free places
    /// beside them (or into the top).
    fn give(&mut self, at: usize, len: usize) {
        let (mut at, mut len) = (at, len);
        let i = self.free[..self.num_free].partition_point(|&(a, _)| a < at);
        // The free place after it.
        if i < self.num_free && self.free[i].0 == at + len {
            len += self.free[i].1;
            self.remove_free(i);
        }
        // The free place before it.
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == at {
            at = self.free[i - 1].0;
            len += self.free[i - 1].1;
            self.remove_free(i - 1);
        }
        if at + len == self.top {
            self.top = at;
        } else if self.num_free < MAX_FREE {
            let i = self.free[..self.num_free].partition_point(|&(a, _)| a < at);
            self.free.copy_within(i..self.num_free, i + 1);
            self.free[i] = (at, len);
            self.num_free += 1;
        }
    }

    /// Changes the block at `at` from `old` to `new` bytes where it is, if
    /// it can (smaller, or the space after it is free); false leaves it
    /// as it was.
    fn resize(&mut self, at: usize, old: usize, new: usize) -> bool {
        if new <= old {
            if new < old {
                self.give(at + new, old - new);
            }
            return true;
        }
        let more = new - old;
        let end = at + old;
        if end == self.top {
            if self.cap - self.top < more {
                return false;
            }
            self.top += more;
            self.high_water = self.high_water.max(self.top);
            return true;
        }
        let i = self.free[..self.num_free].partition_point(|&(a, _)| a < end);
        match self.free.get(i) {
            Some(&(a, l)) if i < self.num_free && a == end && l >= more => {
                if l == more {
                    self.remove_free(i);
                } else {
                    self.free[i] = (a + more, l - more);
                }
                true
            }
            _ => false,
        }
    }

    fn remove_free(&mut self, i: usize) {
        self.free.copy_within(i + 1..self.num_free, i);
        self.num_free -= 1;
    }
}

#[cfg(test)]
mod tests;
