//! The books kept per cycle: which allocations a cycle made, what it left
//! behind when it ended, per call site, and the what-if release of sites.

use super::*;

impl Engine<'_> {
    /// Starts a cycle at event `ord` (named after the marker `label` there, if any).
    pub(super) fn start_cycle(&mut self, ord: u64, label: Option<StringId>) {
        if let Some(o) = self.observer.as_deref_mut() {
            o.cycle_bound(ord);
        }
        self.in_cycle = true;
        self.cur_start = ord;
        self.cycle_label = label;
        for d in self.devs.iter_mut() {
            d.cycle_peak = d.resident;
        }
        self.cycle_count += 1;
        self.cycle_number = self.cycle_count;
        self.cycle_allocs.clear();
        // Listing an allocation and looking it up at the end costs about
        // 21 instructions; a record of the table looked at costs about 6.
        // Cycles repeat: the last one's allocations predict this one's.
        self.cycle_allocs_by_scan = self.cycle_scan.unwrap_or(
            self.last_cycle_allocs >= CYCLE_SCAN_MIN
                && self.live.slots() as u64 <= 2 * self.last_cycle_allocs,
        );
        self.list_cycle_allocs = !self.cycle_allocs_by_scan;
        self.allocs_noted_at_start = self.allocs_noted;
        self.live_before = self.devs.iter().map(|d| (d.id, d.tracked())).collect();
    }

    /// Finds every cycle's allocations by a scan of the records (`true`)
    /// or by a list (`false`), instead of guessing per cycle.
    #[cfg(test)]
    pub(crate) fn force_cycle_scan(&mut self, scan: bool) {
        self.cycle_scan = Some(scan);
    }

    #[inline(always)]
    pub(super) fn cycle_number(&self) -> u32 {
        self.cycle_number
    }

    /// Notes an allocation (at `slot`, event `event`): counted, and listed
    /// when the current cycle lists its allocations. One increment and one
    /// flag tested per allocation (outside cycles the count is not used).
    #[inline(always)]
    pub(super) fn note_alloc(&mut self, slot: u32, event: u64) {
        self.allocs_noted += 1;
        if self.list_cycle_allocs {
            self.list_cycle_alloc(slot, event);
        }
    }

    /// [`Engine::note_alloc`] in a cycle that lists its allocations.
    #[inline(always)]
    fn list_cycle_alloc(&mut self, slot: u32, event: u64) {
        if self.cycle_allocs.len() == self.cycle_allocs.capacity() {
            self.make_room_in_cycle_allocs();
        }
        self.cycle_allocs.push((slot, event));
    }

    /// `cycle_allocs` is full: the entries of objects no longer tracked are
    /// dropped if it has doubled past `cycle_allocs_compact_at` (else the
    /// push grows it). Looked at only when the list is full, not at each
    /// allocation; which entries are dropped when changes nothing
    /// (`end_cycle` skips them anyway).
    #[cold]
    #[inline(never)]
    fn make_room_in_cycle_allocs(&mut self) {
        if self.cycle_allocs.len() >= self.cycle_allocs_compact_at {
            let mut allocs = std::mem::take(&mut self.cycle_allocs);
            allocs.retain(|&(slot, e)| self.live.holding(slot, e).is_some());
            self.cycle_allocs_compact_at = (2 * allocs.len()).max(CYCLE_ALLOCS_MIN);
            self.cycle_allocs = allocs;
        }
    }

    pub(super) fn end_cycle(&mut self, end: u64) {
        if let Some(o) = self.observer.as_deref_mut() {
            o.cycle_bound(end);
        }
        let index = self.cycle_count;
        let span = CycleSpan {
            start_event: self.cur_start,
            end_event: end,
        };
        let after_warmup = index as usize > self.setup.warmup;
        let mut stats = CycleStats {
            index,
            span,
            live_before: std::mem::take(&mut self.live_before),
            live_after: BTreeMap::new(),
            left_behind_bytes: 0,
            left_behind_buffers: 0,
            left_behind: [0; 4],
            first_left: None,
            label: self.cycle_label.take(),
            peak: self.devs.iter().map(|d| (d.id, d.cycle_peak)).collect(),
        };
        let mut allocs = std::mem::take(&mut self.cycle_allocs);
        if self.cycle_allocs_by_scan {
            // What the list would hold that is still there: the records
            // made in this cycle (numbered `index`), in event order.
            allocs.clear();
            allocs.extend(
                self.live
                    .iter_with_slots()
                    .filter(|(_, l)| l.cycle == index)
                    .map(|(slot, l)| (slot, l.event)),
            );
            allocs.sort_unstable_by_key(|&(_, event)| event);
        }
        self.last_cycle_allocs = self.allocs_noted - self.allocs_noted_at_start;
        for &(slot, event) in &allocs {
            let Some(&live) = self.live.holding(slot, event) else {
                continue;
            };
            if live.slot == NO_SLOT || live.flags & FAILED != 0 {
                continue;
            }
            if let Some(release) = self.setup.release_sites {
                if release.contains(&live.site) {
                    self.release(slot, live);
                    continue;
                }
            }
            if live.kind == ObjectKind::Program {
                // Kernel binaries kept by a program cache count in live bytes
                // and growth, but bisect hunts buffers (and trace buffers).
                if after_warmup {
                    *self.program_site_left.entry(live.site).or_default() += live.size;
                }
                continue;
            }
            stats.left_behind_bytes += live.size;
            stats.left_behind_buffers += 1;
            stats.left_behind[live.slot as usize] += live.size;
            if stats.first_left.is_none() {
                stats.first_left = Some(FirstLeft {
                    event,
                    device: self.devs[live.dev as usize].id,
                    buffer: BufferId(live.id),
                    address: (live.address != NO_ADDR).then_some(live.address),
                    buffer_type: TYPES[live.slot as usize],
                    size: live.size,
                    site: live.site,
                    label: live.label,
                });
            }
            if after_warmup {
                *self.site_left.entry(live.site).or_default() += live.size;
            }
        }
        for d in self.devs.iter() {
            stats.live_after.insert(d.id, d.tracked());
        }
        self.cycle_allocs = allocs;
        self.cycle_allocs.clear();
        self.cycle_allocs_compact_at = CYCLE_ALLOCS_MIN;
        self.f.cycles.push(stats);
        self.in_cycle = false;
        self.list_cycle_allocs = false;
        self.cycle_number = 0;
    }

    /// What-if: frees an object at the end of its cycle, as if its site had
    /// released it.
    pub(super) fn release(&mut self, slot: u32, live: Live) {
        if live.kind == ObjectKind::Buffer {
            self.live.remove_slot(slot);
            if live.flags & OUTLIVED == 0 {
                self.forget(live);
            } else {
                self.untrack(&live);
            }
            return;
        }
        if let Some(sim) = self.devs[live.dev as usize].sim.as_mut() {
            match live.kind {
                ObjectKind::Program => sim.unload_program(live.id),
                ObjectKind::Trace => sim.release_trace(live.id as u32),
                ObjectKind::Buffer => {}
            }
        }
        self.live.remove_slot(slot);
        self.untrack(&live);
        if live.flags & OUTLIVED == 0 {
            self.devs[live.dev as usize].objects -= 1;
        }
    }
}

/// The fewest allocations a cycle makes for the next one to be found by a
/// scan of the records rather than listed.
pub(super) const CYCLE_SCAN_MIN: u64 = 256;

/// The fewest entries `cycle_allocs` holds before it is compacted.
pub(super) const CYCLE_ALLOCS_MIN: usize = 4096;
