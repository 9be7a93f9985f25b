//! Every tracked object in one slab: buffers, program binaries and traces,
//! live on their device or outlived it. A buffer id, or a program's or
//! trace's key, finds its record's slot; the cycle books keep slots.

use super::buffer_ids::BufferIds;
use super::{Live, OtherKey, OUTLIVED};
use crate::findings::ObjectKind;
use ttalloc_model::hash::FastMap;

/// `Live::event` of a vacant slot (no event has this ordinal).
const VACANT: u64 = u64::MAX;

/// A slot claimed for a new buffer's record ([`LiveTable::claim_new_buffer`]).
/// Made only there, from a slot of the table (a vacant one, or one pushed
/// then), and the table never drops a slot: so its record is written
/// without a bounds check ([`LiveTable::write_claimed`]).
#[derive(Clone, Copy)]
pub(super) struct Claimed(u32);

impl Claimed {
    #[inline(always)]
    pub(super) fn slot(self) -> u32 {
        self.0
    }
}

#[derive(Default)]
pub(super) struct LiveTable {
    records: Vec<Live>,
    vacant: Vec<u32>,
    /// Buffer id -> slot, live or outlived (a new allocation of an id
    /// replaces an outlived record), and the ids freed.
    buffers: BufferIds,
    /// Live programs and traces -> slot.
    others: FastMap<OtherKey, u32>,
    /// Programs and traces that outlived their device -> slot. Kept apart:
    /// a program loaded again after its device reopened is a second record.
    outlived_others: FastMap<OtherKey, u32>,
    /// Slot -> the event that closed the device of the `OUTLIVED` record
    /// there (rare: kept beside the records; entries of slots vacated since
    /// are stale, and overwritten when their slot outlives a device again).
    closed_at: FastMap<u32, u64>,
}

impl LiveTable {
    #[inline]
    pub(super) fn get(&self, slot: u32) -> &Live {
        &self.records[slot as usize]
    }

    /// A slot to write a new record in (vacant until it is).
    #[inline(always)]
    pub(super) fn vacant_slot(&mut self) -> u32 {
        match self.vacant.pop() {
            Some(slot) => slot,
            None => {
                push_record(&mut self.records, &mut self.vacant, Live::VACANT);
                (self.records.len() - 1) as u32
            }
        }
    }

    /// How many slots the table has (vacant or not).
    pub(super) fn slots(&self) -> usize {
        self.records.len()
    }

    /// The record at `slot` if it is still the one created at `event`.
    #[inline]
    pub(super) fn holding(&self, slot: u32, event: u64) -> Option<&Live> {
        self.records
            .get(slot as usize)
            .filter(|l| l.event == event && event != VACANT)
    }

    /// Every record, live or outlived.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Live> {
        self.records.iter().filter(|l| l.event != VACANT)
    }

    /// Every record, live or outlived, with its slot.
    pub(super) fn iter_with_slots(&self) -> impl Iterator<Item = (u32, &Live)> {
        (0..self.records.len() as u32)
            .zip(&self.records)
            .filter(|(_, l)| l.event != VACANT)
    }

    /// The event that closed the device of the `OUTLIVED` record at `slot`.
    pub(super) fn closed_at(&self, slot: u32) -> u64 {
        self.closed_at.get(&slot).copied().unwrap_or(0)
    }

    /// Slots of the records of device `dev` that are still on it.
    pub(super) fn on_device(&self, dev: u16) -> Vec<u32> {
        (0..self.records.len() as u32)
            .filter(|&s| {
                let l = &self.records[s as usize];
                l.event != VACANT && l.dev == dev && l.flags & OUTLIVED == 0
            })
            .collect()
    }

    #[inline]
    fn occupy(&mut self, live: Live) -> u32 {
        match self.vacant.pop() {
            Some(slot) => {
                self.records[slot as usize] = live;
                slot
            }
            None => {
                push_record(&mut self.records, &mut self.vacant, live);
                (self.records.len() - 1) as u32
            }
        }
    }

    #[inline]
    fn vacate(&mut self, slot: u32) -> Live {
        let r = &mut self.records[slot as usize];
        let live = *r;
        r.event = VACANT;
        self.vacant.push(slot);
        live
    }

    /// `slot`, whose record was live until now, is vacant: pushed on
    /// `vacant` without a capacity check (a free's).
    #[inline(always)]
    fn push_vacant(&mut self, slot: u32) {
        let len = self.vacant.len();
        debug_assert!(len < self.records.len() && self.records.len() <= self.vacant.capacity());
        // SAFETY: `vacant` holds distinct slots of vacant records (a slot
        // goes on it when its record stops being live, and comes off when
        // it is claimed), and `slot`'s record was live: so `len` is below
        // `records.len()`, which `push_record` keeps at most the capacity.
        // Entry `len` is in the allocation, and the first `len + 1` are
        // initialized once it is written.
        unsafe {
            self.vacant.as_mut_ptr().add(len).write(slot);
            self.vacant.set_len(len + 1);
        }
    }

    #[inline]
    pub(super) fn buffer_slot(&mut self, id: u64) -> Option<u32> {
        self.buffers.slot(id)
    }

    /// True if buffer `id` was freed (and not allocated again since).
    pub(super) fn was_freed(&mut self, id: u64) -> bool {
        self.buffers.was_freed(id)
    }

    /// Puts `live` in place of the record at `slot` (the same buffer id);
    /// returns the record it replaces.
    #[inline]
    pub(super) fn replace_at(&mut self, slot: u32, live: Live) -> Live {
        std::mem::replace(&mut self.records[slot as usize], live)
    }

    /// A slot for the record of buffer `id`, which is not in the table,
    /// with `id` live there already, when its entry is found without a
    /// search (see `BufferIds::vacant_entry`); `None` when unsure (ask
    /// `buffer_slot`). The slot stays vacant until its record is written
    /// (`get_mut`), which the caller does before the table is read again.
    #[inline(always)]
    pub(super) fn claim_new_buffer(&mut self, id: u64) -> Option<Claimed> {
        let entry = self.buffers.vacant_entry(id)?;
        let slot = match self.vacant.pop() {
            Some(slot) => slot,
            None => {
                // (Laid out apart: a jump less per claim from `vacant`.)
                super::cold_path();
                push_record(&mut self.records, &mut self.vacant, Live::VACANT);
                (self.records.len() - 1) as u32
            }
        };
        *entry = BufferIds::live_entry(slot);
        Some(Claimed(slot))
    }

    /// [`LiveTable::claim_new_buffer`] by the general path (`id` is not in
    /// the table).
    #[inline(never)]
    pub(super) fn claim_new_buffer_slow(&mut self, id: u64) -> Claimed {
        let slot = self.vacant_slot();
        self.buffers.set_live(id, slot);
        Claimed(slot)
    }

    /// Writes the record of a claimed slot.
    #[inline(always)]
    pub(super) fn write_claimed(&mut self, at: Claimed, live: Live) {
        debug_assert!((at.0 as usize) < self.records.len());
        // SAFETY: a `Claimed` holds a slot of `records` (see `Claimed`:
        // made only by the claims above, from `vacant`, which holds slots
        // of records, or from a record just pushed), and `records` never
        // shrinks.
        unsafe { *self.records.get_unchecked_mut(at.0 as usize) = live };
    }

    /// Records buffer `live.id`, not in the table yet; returns its slot.
    #[inline]
    pub(super) fn insert_new_buffer(&mut self, live: Live) -> u32 {
        let id = live.id;
        let slot = self.occupy(live);
        self.buffers.set_live(id, slot);
        slot
    }

    /// Records buffer `live.id`; returns its slot and the record it
    /// replaced (live or outlived), if any.
    pub(super) fn insert_buffer(&mut self, live: Live) -> (u32, Option<Live>) {
        match self.buffers.slot(live.id) {
            Some(slot) => {
                let old = std::mem::replace(&mut self.records[slot as usize], live);
                (slot, Some(old))
            }
            None => (self.insert_new_buffer(live), None),
        }
    }

    /// Buffer `id` is freed: removes it; returns its record as it was (what
    /// a free reads, read where it lies: a copy of the fields a free needs
    /// cost 8 instructions per free; the slot is vacant from now on, but
    /// written again only by the next call that takes one).
    #[inline]
    pub(super) fn take_buffer(&mut self, id: u64) -> Option<&Live> {
        let slot = self.buffers.free(id)?;
        self.push_vacant(slot);
        debug_assert!((slot as usize) < self.records.len());
        // SAFETY: `buffers` holds only slots of `records` (this table gives
        // it each slot it holds: `claim_new_buffer`, `claim_new_buffer_slow`,
        // `insert_new_buffer`), and `records` never shrinks.
        let r = unsafe { self.records.get_unchecked_mut(slot as usize) };
        r.event = VACANT;
        Some(r)
    }

    /// Removes buffer `id` (not freed: replaced).
    #[inline]
    pub(super) fn remove_buffer(&mut self, id: u64) -> Option<Live> {
        let slot = self.buffers.remove(id)?;
        Some(self.vacate(slot))
    }

    /// Records a live program or trace (none is live under `key`; an
    /// outlived one may be); returns its slot.
    pub(super) fn insert_other(&mut self, key: OtherKey, live: Live) -> u32 {
        let slot = self.occupy(live);
        if let Some(old) = self.others.insert(key, slot) {
            self.vacate(old);
        }
        slot
    }

    /// Removes a live program or trace.
    pub(super) fn remove_other(&mut self, key: OtherKey) -> Option<Live> {
        let slot = self.others.remove(&key)?;
        Some(self.vacate(slot))
    }

    /// Removes a program or trace that outlived its device.
    pub(super) fn remove_outlived_other(&mut self, key: OtherKey) -> Option<Live> {
        let slot = self.outlived_others.remove(&key)?;
        Some(self.vacate(slot))
    }

    /// The key of a program's or trace's record.
    pub(super) fn other_key(live: &Live) -> OtherKey {
        (live.kind, live.dev, live.id)
    }

    /// Removes the record at `slot` whatever it is.
    pub(super) fn remove_slot(&mut self, slot: u32) -> Live {
        let live = *self.get(slot);
        if live.kind == ObjectKind::Buffer {
            self.buffers.remove(live.id);
        } else if live.flags & OUTLIVED != 0 {
            self.outlived_others.remove(&Self::other_key(&live));
        } else {
            self.others.remove(&Self::other_key(&live));
        }
        self.vacate(slot)
    }

    /// Turns the record at `slot` (on a device being closed at event
    /// `ord`) into one that outlived it: still tracked, no longer resident.
    pub(super) fn outlive(&mut self, slot: u32, ord: u64) {
        let r = &mut self.records[slot as usize];
        r.flags = OUTLIVED;
        r.handle = None;
        self.closed_at.insert(slot, ord);
        if r.kind != ObjectKind::Buffer {
            let key = Self::other_key(r);
            self.others.remove(&key);
            // A record already outlived under this key is gone from the books
            // (the same program loaded again on a reopened device, then closed).
            if let Some(old) = self.outlived_others.insert(key, slot) {
                self.vacate(old);
            }
        }
    }
}

/// Appends a record to a table's `records` (its slot is `records.len() -
/// 1`), keeping room in its `vacant` for every slot (what lets
/// `LiveTable::push_vacant` skip its check).
#[inline]
fn push_record(records: &mut Vec<Live>, vacant: &mut Vec<u32>, live: Live) {
    records.push(live);
    if vacant.capacity() < records.len() {
        grow_vacant(records.len(), vacant);
    }
}

#[cold]
#[inline(never)]
fn grow_vacant(slots: usize, vacant: &mut Vec<u32>) {
    vacant.reserve(slots.next_power_of_two() - vacant.len());
}
