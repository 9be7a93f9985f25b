//! Buffer id -> record slot of the live buffers, and which ids were freed
//! (to tell a double free from a free of an id never allocated).
//!
//! Recorders number buffers in dense, rising runs (one per connection, in
//! the id's high bits), and most buffers die young. So the ids of the last
//! `WINDOW` allocations of a run are looked up by indexing a ring of
//! entries, with no hashing; an id's entry says live (its slot), freed, or
//! neither. As a run moves on, entries leaving the window go to the general
//! structures: a hash map for the few ids still live, [`FreedSet`] for the
//! freed ones (about one bit each). Ids that do not come in runs (the window
//! would slide more than it is used) go to the general structures directly.

use crate::freed::FreedSet;
use ttalloc_model::hash::FastMap;

/// Ids a window covers (a power of two): 64 KiB of entries.
const WINDOW: u64 = 1 << 14;
const MASK: u64 = WINDOW - 1;
/// A window slides by whole chunks of ids.
const CHUNK: u64 = 1 << 10;
/// The id bits that name a run (the recorder's connection).
const RUN_SHIFT: u32 = 40;
/// Runs with a window of their own; ids of other runs use the general path.
const MAX_WINDOWS: usize = 8;
/// Entry of an id neither live nor freed.
const NONE: u32 = 0;
/// Entry of a freed id.
const FREED: u32 = u32::MAX;

pub(super) struct BufferIds {
    /// The window used last (a placeholder, `NO_RUN`, before the first):
    /// held in place, so the fast paths read its entries with no length
    /// check and no pointer to a list of windows to load.
    front: Window,
    /// The other windows (swapped with `front` when one of them is used).
    rest: Vec<Window>,
    /// The ids that window covers, `last_lo..last_lo + last_len` (inside
    /// its run; empty when there is none or it is retired): one compare
    /// finds whether it covers an id (see `sync_last`).
    last_lo: u64,
    last_len: u64,
    /// Live ids outside every window.
    overflow: FastMap<u64, u32>,
    /// Freed ids outside every window.
    freed: FreedSet,
}

/// `Window::run` of the placeholder (no id's run: ids have 64 bits).
const NO_RUN: u64 = u64::MAX;

struct Window {
    /// `id >> RUN_SHIFT` of the ids it covers.
    run: u64,
    /// It covers ids `base..base + WINDOW` (a multiple of `CHUNK`).
    base: u64,
    /// Entry of id `i` at `i & MASK`: `NONE`, `FREED`, or slot + 1.
    entries: Box<[u32; WINDOW as usize]>,
    /// Ids set live in it, and entries looked at while sliding: a window
    /// that slides far more than it is used is retired.
    used: u64,
    scanned: u64,
    /// Its run's ids all take the general path now.
    retired: bool,
}

impl Window {
    /// A window of run `run` over ids `base..base + WINDOW`, all entries `NONE`.
    fn new(run: u64, base: u64) -> Window {
        Window {
            run,
            base,
            entries: vec![NONE; WINDOW as usize]
                .into_boxed_slice()
                .try_into()
                .expect("WINDOW entries"),
            used: 0,
            scanned: 0,
            retired: false,
        }
    }

    /// `BufferIds::front` before any window: covers nothing (retired).
    fn placeholder() -> Window {
        Window {
            retired: true,
            ..Window::new(NO_RUN, 0)
        }
    }

    #[inline]
    fn covers(&self, id: u64) -> bool {
        id.wrapping_sub(self.base) < WINDOW && !self.retired
    }

    /// Hands the entries of ids `lo..hi` (inside the window, whole chunks)
    /// to the general structures and clears them.
    fn evict(&mut self, lo: u64, hi: u64, overflow: &mut FastMap<u64, u32>, freed: &mut FreedSet) {
        debug_assert!(lo.is_multiple_of(CHUNK) && hi.is_multiple_of(CHUNK));
        self.scanned += hi - lo;
        for chunk in (lo..hi).step_by(CHUNK as usize) {
            let at = (chunk & MASK) as usize;
            let entries = &mut self.entries[at..at + CHUNK as usize];
            let mut freed_bits = [0u64; (CHUNK / 64) as usize];
            // 64 entries at a time, without a branch per entry (most ids
            // are freed by now; a live one is rare, found in a second look).
            for ((bits, group), first) in freed_bits
                .iter_mut()
                .zip(entries.chunks_exact_mut(64))
                .zip((chunk..).step_by(64))
            {
                let (freed_mask, any_live) = freed_mask(group);
                *bits = freed_mask;
                if any_live {
                    for (id, &e) in (first..).zip(group.iter()) {
                        if e != NONE && e != FREED {
                            overflow.insert(id, e - 1);
                        }
                    }
                }
                group.fill(NONE);
            }
            freed.insert_bits(chunk, &freed_bits);
        }
    }

    /// Moves the window so that it covers `id` (above it).
    fn slide_to(&mut self, id: u64, overflow: &mut FastMap<u64, u32>, freed: &mut FreedSet) {
        let new_base = (id - (WINDOW - 1)).div_ceil(CHUNK) * CHUNK;
        let end = self.base.saturating_add(WINDOW).min(new_base);
        self.evict(self.base, end, overflow, freed);
        self.base = new_base;
        // Sparse ids: every allocation would scan a window's worth.
        if self.scanned > 4 * WINDOW + 16 * self.used {
            let end = self.base + WINDOW;
            self.evict(self.base, end, overflow, freed);
            self.retired = true;
        }
    }
}

/// Bit `i` set where `group[i]` (64 entries) is `FREED`, and whether any
/// entry is live: four entries a step (SSE2, part of every x86_64 target).
#[cfg(target_arch = "x86_64")]
#[inline]
fn freed_mask(group: &[u32]) -> (u64, bool) {
    use std::arch::x86_64::*;
    const _: () = assert!(NONE == 0);
    let (mut bits, mut live) = (0u64, 0i32);
    // SAFETY: SSE2 is part of every x86_64 target; each unaligned load
    // reads the four entries of `four`.
    unsafe {
        let freed = _mm_set1_epi32(FREED as i32);
        for (k, four) in group.chunks_exact(4).enumerate() {
            let v = _mm_loadu_si128(four.as_ptr().cast());
            let is_freed = _mm_cmpeq_epi32(v, freed);
            let is_none = _mm_cmpeq_epi32(v, _mm_setzero_si128());
            bits |= (_mm_movemask_ps(_mm_castsi128_ps(is_freed)) as u64) << (4 * k);
            live |= _mm_movemask_ps(_mm_castsi128_ps(_mm_or_si128(is_freed, is_none))) ^ 0xf;
        }
    }
    (bits, live != 0)
}

/// [`freed_mask`] one entry at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn freed_mask(group: &[u32]) -> (u64, bool) {
    let (mut bits, mut live) = (0u64, false);
    for (i, &e) in group.iter().enumerate() {
        bits |= ((e == FREED) as u64) << i;
        live |= e != NONE && e != FREED;
    }
    (bits, live)
}

impl Default for BufferIds {
    fn default() -> Self {
        BufferIds {
            front: Window::placeholder(),
            rest: Vec::new(),
            last_lo: 0,
            last_len: 0,
            overflow: FastMap::default(),
            freed: FreedSet::default(),
        }
    }
}

impl BufferIds {
    /// How many windows there are (the placeholder is none).
    fn window_count(&self) -> usize {
        self.rest.len() + usize::from(self.front.run != NO_RUN)
    }

    /// The window of `id`'s run, if it has one (not retired).
    #[inline]
    fn window(&mut self, id: u64) -> Option<&mut Window> {
        let run = id >> RUN_SHIFT;
        if self.front.run != run {
            let i = self.rest.iter().position(|w| w.run == run)?;
            std::mem::swap(&mut self.front, &mut self.rest[i]);
            if self.rest[i].run == NO_RUN {
                self.rest.swap_remove(i);
            }
            self.sync_last();
        }
        let w = &mut self.front;
        (!w.retired).then_some(w)
    }

    /// Sets `last_lo`/`last_len` from the window used last: the ids it
    /// covers (`Window::covers`) that are of its run. Called whenever that
    /// window changes (another one, slid, retired).
    fn sync_last(&mut self) {
        let (lo, hi) = match &self.front {
            w if !w.retired => {
                let run_start = w.run << RUN_SHIFT;
                let run_end = (w.run + 1).checked_shl(RUN_SHIFT).unwrap_or(u64::MAX);
                (
                    w.base.max(run_start),
                    w.base.saturating_add(WINDOW).min(run_end),
                )
            }
            _ => (0, 0),
        };
        self.last_lo = lo;
        self.last_len = hi.saturating_sub(lo);
    }

    /// The window used last if it covers `id` (the common case: one
    /// compare, no search), for the fast paths below.
    #[inline(always)]
    fn last_covering(&mut self, id: u64) -> Option<&mut Window> {
        if id.wrapping_sub(self.last_lo) >= self.last_len {
            return None;
        }
        debug_assert!({
            let w = &self.front;
            w.run == id >> RUN_SHIFT && w.covers(id)
        });
        Some(&mut self.front)
    }

    /// The entry of `id` in the window used last, if that window covers it
    /// and `id` is not live (counted as used): the caller makes `id` live
    /// there at once (writes [`BufferIds::live_entry`] of its slot), with
    /// no second search.
    #[inline(always)]
    pub(super) fn vacant_entry(&mut self, id: u64) -> Option<&mut u32> {
        let w = self.last_covering(id)?;
        let at = (id & MASK) as usize;
        if !matches!(w.entries[at], NONE | FREED) {
            super::cold_path();
            return None;
        }
        w.used += 1;
        Some(&mut w.entries[at])
    }

    /// A window's entry of an id live in `slot`.
    #[inline(always)]
    pub(super) fn live_entry(slot: u32) -> u32 {
        debug_assert!(slot < FREED - 1);
        slot + 1
    }

    /// The slot of live buffer `id`.
    #[inline(always)]
    pub(super) fn slot(&mut self, id: u64) -> Option<u32> {
        match self.last_covering(id) {
            Some(w) => match w.entries[(id & MASK) as usize] {
                NONE | FREED => None,
                live => Some(live - 1),
            },
            None => self.slot_slow(id),
        }
    }

    #[inline(never)]
    fn slot_slow(&mut self, id: u64) -> Option<u32> {
        match self.window(id) {
            Some(w) if w.covers(id) => match w.entries[(id & MASK) as usize] {
                NONE | FREED => None,
                live => Some(live - 1),
            },
            // Above the window: never set live; below: evicted.
            Some(w) if id >= w.base => None,
            _ => self.overflow.get(&id).copied(),
        }
    }

    /// Buffer `id` is live in `slot` (and no longer counts as freed).
    #[inline(always)]
    pub(super) fn set_live(&mut self, id: u64, slot: u32) {
        debug_assert!(slot < FREED - 1);
        match self.last_covering(id) {
            Some(w) => {
                w.used += 1;
                w.entries[(id & MASK) as usize] = slot + 1;
            }
            None => self.set_live_slow(id, slot),
        }
    }

    #[inline(never)]
    fn set_live_slow(&mut self, id: u64, slot: u32) {
        self.set_live_general(id, slot);
        // A window may have been made, slid or retired.
        self.sync_last();
    }

    fn set_live_general(&mut self, id: u64, slot: u32) {
        if self.window(id).is_none() && self.window_count() < MAX_WINDOWS {
            let run = id >> RUN_SHIFT;
            // (`window` made the run's window the front, if it has one.)
            if self.front.run != run {
                let base = id.saturating_sub(WINDOW - 1).div_ceil(CHUNK) * CHUNK;
                let old = std::mem::replace(&mut self.front, Window::new(run, base));
                if old.run != NO_RUN {
                    self.rest.push(old);
                }
            }
        }
        let (overflow, freed) = (&mut self.overflow, &mut self.freed);
        match &mut self.front {
            w if w.run == id >> RUN_SHIFT && !w.retired && id >= w.base => {
                if !w.covers(id) {
                    w.slide_to(id, overflow, freed);
                }
                if w.covers(id) {
                    w.used += 1;
                    w.entries[(id & MASK) as usize] = slot + 1;
                    return;
                }
            }
            _ => {}
        }
        self.freed.remove(id);
        self.overflow.insert(id, slot);
    }

    /// Live buffer `id` was freed: returns its slot (`None` if not live).
    #[inline(always)]
    pub(super) fn free(&mut self, id: u64) -> Option<u32> {
        match self.last_covering(id) {
            Some(w) => {
                let e = &mut w.entries[(id & MASK) as usize];
                match *e {
                    NONE | FREED => {
                        // A bad free (laid out apart from the common path).
                        super::cold_path();
                        None
                    }
                    live => {
                        *e = FREED;
                        Some(live - 1)
                    }
                }
            }
            None => {
                super::cold_path();
                self.free_slow(id)
            }
        }
    }

    #[inline(never)]
    fn free_slow(&mut self, id: u64) -> Option<u32> {
        match self.window(id) {
            Some(w) if w.covers(id) => {
                let e = &mut w.entries[(id & MASK) as usize];
                match *e {
                    NONE | FREED => None,
                    live => {
                        *e = FREED;
                        Some(live - 1)
                    }
                }
            }
            Some(w) if id >= w.base => None,
            _ => {
                let slot = self.overflow.remove(&id)?;
                self.freed.insert(id);
                Some(slot)
            }
        }
    }

    /// Live buffer `id` is gone otherwise (not freed): returns its slot.
    pub(super) fn remove(&mut self, id: u64) -> Option<u32> {
        match self.window(id) {
            Some(w) if w.covers(id) => {
                let e = &mut w.entries[(id & MASK) as usize];
                match *e {
                    NONE | FREED => None,
                    live => {
                        *e = NONE;
                        Some(live - 1)
                    }
                }
            }
            Some(w) if id >= w.base => None,
            _ => self.overflow.remove(&id),
        }
    }

    /// True if `id` was freed and not allocated again since.
    pub(super) fn was_freed(&mut self, id: u64) -> bool {
        match self.window(id) {
            Some(w) if w.covers(id) => w.entries[(id & MASK) as usize] == FREED,
            Some(w) if id >= w.base => false,
            _ => self.freed.contains(id),
        }
    }
}

#[cfg(test)]
mod tests;
