//! Buffer allocations and frees: placed through the model, checked against
//! the recorded address, and kept in the books (tracked and resident bytes,
//! peaks, out-of-memory, divergences, bad frees).

use super::live_table::Claimed;
use super::*;
use type_slots::device_type_slot;
pub(super) use type_slots::device_type_slot_of_code;

mod type_slots;

impl Engine<'_> {
    /// A buffer allocation; `Ok(true)` if the replay stopped at it (the
    /// first out-of-memory with `stop_at_oom`: only the cold paths can stop,
    /// so the block walk has nothing to look at after a plain one). The
    /// common case (a device buffer type, a new id, an open device) is
    /// handled here; the rest by `alloc_general`. Inlined whole into the
    /// block walk's `alloc_at`: called there, the request and the arguments
    /// went through memory (35 instructions more per alloc).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn alloc(
        &mut self,
        ord: u64,
        dev: DevIx,
        buffer: BufferId,
        req: Req,
        recorded: Option<u64>,
        site: SiteId,
        label: StringId,
    ) -> crate::Result<bool> {
        let slot = device_type_slot(req.buffer_type);
        self.alloc_in(ord, dev, slot, buffer, req, recorded, site, label)
    }

    /// [`Engine::alloc`] with the type's slot `slot` found by the caller
    /// (`device_type_slot` of `req.buffer_type`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn alloc_in(
        &mut self,
        ord: u64,
        dev: DevIx,
        slot: Option<usize>,
        buffer: BufferId,
        req: Req,
        recorded: Option<u64>,
        site: SiteId,
        label: StringId,
    ) -> crate::Result<bool> {
        debug_assert_eq!(slot, device_type_slot(req.buffer_type));
        let Some(s) = slot else {
            let done = self.alloc_general(ord, dev, buffer, req, recorded, site, label);
            return done.map(|()| self.stopped);
        };
        let d = &mut self.devs[dev];
        // The model, taken before the claim: taken after it, its presence
        // was tested again (the claim's stores may have changed it, for
        // all the compiler knows).
        let Some(sim) = d.sim.as_mut() else {
            let done = self.alloc_general(ord, dev, buffer, req, recorded, site, label);
            return done.map(|()| self.stopped);
        };
        // The id's record slot, claimed at once (a new id, nearly always):
        // nothing of the claim is carried across the placement.
        let slot = match self.live.claim_new_buffer(buffer.get()) {
            Some(slot) => slot,
            None if self.live.buffer_slot(buffer.get()).is_none() => {
                self.live.claim_new_buffer_slow(buffer.get())
            }
            None => {
                let done = self.alloc_general(ord, dev, buffer, req, recorded, site, label);
                return done.map(|()| self.stopped);
            }
        };
        // `s` indexes arrays of four: the mask lets the compiler drop the checks.
        let s = s & 3;
        // The common case, placed where recorded (or nothing recorded),
        // straight on: a handle merged from several outcomes went through
        // the stack in pieces and was read back whole (a store-forwarding
        // stall at every alloc).
        let placed = sim.alloc_placed_in(s, buffer, &req);
        let (address, handle) = match (placed, recorded) {
            (Ok((addr, handle)), None) => (addr, handle),
            (Ok((addr, handle)), Some(rec)) if rec == addr => (addr, handle),
            (placed, _) => {
                self.alloc_unusual(
                    ord, dev, s, slot, buffer, req, recorded, site, label, placed,
                );
                return Ok(self.stopped);
            }
        };
        // The books, on the device already at hand.
        count_placed(d, s, req.size, ord);
        d.objects += 1;
        let record = Placed {
            dev,
            s,
            flags: RESIDENT,
            handle: Some(handle),
            address,
        };
        self.write_record(ord, slot, buffer, req.size, site, label, record);
        Ok(false)
    }

    /// [`Engine::alloc`] when the model failed to place a buffer, or placed
    /// it elsewhere than recorded.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn alloc_unusual(
        &mut self,
        ord: u64,
        dev: DevIx,
        s: usize,
        slot: Claimed,
        buffer: BufferId,
        req: Req,
        recorded: Option<u64>,
        site: SiteId,
        label: StringId,
        placed: Result<(u64, Handle), AllocFailure>,
    ) {
        let (flags, handle, address) = match placed {
            Ok((addr, handle)) => match recorded {
                Some(rec) if rec != addr => (
                    RESIDENT,
                    self.resync(ord, dev, buffer, &req, handle, rec, addr),
                    rec,
                ),
                Some(rec) => (RESIDENT, Some(handle), rec),
                None => (RESIDENT, Some(handle), addr),
            },
            Err(failure) => {
                self.alloc_failed(ord, dev, s, buffer, &req, recorded, site, failure);
                (FAILED, None, recorded.unwrap_or(NO_ADDR))
            }
        };
        let d = &mut self.devs[dev];
        if flags & FAILED == 0 {
            count_placed(d, s, req.size, ord);
        }
        d.objects += 1;
        let record = Placed {
            dev,
            s,
            flags,
            handle,
            address,
        };
        self.write_record(ord, slot, buffer, req.size, site, label, record);
    }

    /// The record of a new buffer at `slot` (claimed for its id), and its
    /// note for the current cycle (`note_alloc`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn write_record(
        &mut self,
        ord: u64,
        slot: Claimed,
        buffer: BufferId,
        size: u64,
        site: SiteId,
        label: StringId,
        p: Placed,
    ) {
        let cycle = self.cycle_number();
        let record = Live {
            dev: p.dev.stored(),
            slot: p.s as u8,
            flags: p.flags,
            cycle,
            site,
            kind: ObjectKind::Buffer,
            id: buffer.get(),
            label,
            handle: p.handle,
            size,
            event: ord,
            address: p.address,
        };
        self.live.write_claimed(slot, record);
        self.note_alloc(slot.slot(), ord);
    }

    /// The model placed a buffer elsewhere than recorded: re-synced on the
    /// recorded address so one divergence does not cascade into every later
    /// placement. Returns the buffer's handle at the recorded address.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn resync(
        &mut self,
        ord: u64,
        dev: DevIx,
        buffer: BufferId,
        req: &Req,
        handle: Handle,
        recorded: u64,
        model: u64,
    ) -> Option<Handle> {
        let device = self.devs[dev].id;
        let sim = self.devs[dev].sim.as_mut().expect("placed on it");
        sim.free_placed(handle);
        let handle = sim
            .alloc_placed_at(buffer, req, recorded)
            .or_else(|| sim.alloc_placed(buffer, req).ok().map(|p| p.1));
        self.divergence(ord, device, buffer, recorded, Some(model));
        handle
    }

    /// The model could not place a buffer: an out-of-memory, or a refusal.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn alloc_failed(
        &mut self,
        ord: u64,
        dev: DevIx,
        slot: usize,
        buffer: BufferId,
        req: &Req,
        recorded: Option<u64>,
        site: SiteId,
        failure: AllocFailure,
    ) {
        match failure {
            AllocFailure::Oom(oom) => {
                self.out_of_memory(ord, dev, slot, req.buffer_type, req.size, oom, site);
            }
            other => {
                let why = other.reason();
                self.rejected(why);
                if let Some(rec) = recorded {
                    self.divergence(ord, self.devs[dev].id, buffer, rec, None);
                }
            }
        }
    }

    /// [`Engine::alloc`] in every case: host memory, an id live already,
    /// a device not open.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn alloc_general(
        &mut self,
        ord: u64,
        dev: DevIx,
        buffer: BufferId,
        req: Req,
        recorded: Option<u64>,
        site: SiteId,
        label: StringId,
    ) -> crate::Result<()> {
        let req = &req;
        let slot = device_type_slot(req.buffer_type);
        let cycle = self.cycle_number();
        // The one id lookup of an allocation (a new id is then inserted).
        let mut existing = self.live.buffer_slot(buffer.get());
        let mut live = Live {
            dev: dev.stored(),
            slot: slot.map_or(NO_SLOT, |s| s as u8),
            flags: 0,
            cycle,
            site,
            kind: ObjectKind::Buffer,
            id: buffer.get(),
            label,
            handle: None,
            size: req.size,
            event: ord,
            address: recorded.unwrap_or(NO_ADDR),
        };
        if let Some(s) = slot {
            let device = self.devs[dev].id;
            if let Some(at) = existing {
                let old = self.live.get(at);
                if old.dev as usize == dev.get() && old.handle.is_some() {
                    // A live id allocated again on this device (its model
                    // holds it): the first one is gone for good (settled
                    // before the new one counts, so peaks never hold both).
                    let old = self.live.remove_buffer(buffer.get()).expect("found");
                    existing = None;
                    self.f.duplicate_allocs += 1;
                    self.forget(old);
                }
            }
            let sim = self.sim(dev)?;
            match sim.alloc_placed(buffer, req) {
                Ok((addr, handle)) => {
                    live.flags = RESIDENT;
                    live.handle = Some(handle);
                    match recorded {
                        Some(rec) if rec != addr => {
                            // Re-sync on the recorded address so one divergence
                            // does not cascade into every later placement.
                            sim.free_placed(handle);
                            live.handle = sim
                                .alloc_placed_at(buffer, req, rec)
                                .or_else(|| sim.alloc_placed(buffer, req).ok().map(|p| p.1));
                            self.divergence(ord, device, buffer, rec, Some(addr));
                        }
                        Some(_) => {}
                        None => live.address = addr,
                    }
                }
                Err(AllocFailure::Oom(oom)) => {
                    live.flags = FAILED;
                    self.out_of_memory(ord, dev, s, req.buffer_type, req.size, oom, site);
                }
                Err(other) => {
                    let why = other.reason();
                    live.flags = FAILED;
                    self.rejected(why);
                    if let Some(rec) = recorded {
                        self.divergence(ord, device, buffer, rec, None);
                    }
                }
            }
            if live.flags & FAILED == 0 {
                count_placed(&mut self.devs[dev], s, req.size, ord);
            }
        }
        self.devs[dev].objects += 1;
        // A replaced live record is a live id allocated again that this
        // device's model did not hold (not placed, or on another device).
        let (slot, replaced) = match existing {
            Some(at) => (at, Some(self.live.replace_at(at, live))),
            None => (self.live.insert_new_buffer(live), None),
        };
        if let Some(old) = replaced {
            self.untrack(&old);
            if old.flags & OUTLIVED == 0 {
                self.f.duplicate_allocs += 1;
                let od = &mut self.devs[old.dev as usize];
                od.objects -= 1;
                if let (Some(sim), Some(h)) = (od.sim.as_mut(), old.handle) {
                    sim.free_placed(h);
                }
            }
        }
        self.note_alloc(slot, ord);
        Ok(())
    }

    /// A buffer free on `device`. Inlined whole into the block walks: as a
    /// call, its prologue and epilogue cost 4 instructions per event (2M
    /// synthetic 1059.4M -> 1046.6M instructions in all). The device's
    /// index is not looked up when the freed record is on it (nearly
    /// always): its entry exists, and nothing else here needs it.
    /// `site` gives the free's call site, read only for a bad free (a
    /// block's column is not read for every free).
    #[inline(always)]
    pub(super) fn free(
        &mut self,
        ord: u64,
        device: DeviceId,
        buffer: BufferId,
        site: impl FnOnce() -> SiteId,
    ) -> crate::Result<()> {
        let Some(live) = self.live.take_buffer(buffer.get()) else {
            let dev = self.dev_index(device)?;
            self.bad_free(ord, dev, buffer, site());
            return Ok(());
        };
        // SAFETY: every record is written with its device's `DevIx::stored`
        // (`alloc`, `alloc_general`, `add_other`, and a resumed replay's
        // records), made by this engine's table. Checked, the index cost
        // three instructions per free.
        let d = unsafe { self.devs.of_record(live.dev) };
        if d.id != device {
            // Freed on another device than its own: that device gets its
            // entry now, as any event naming a device does.
            let live = *live;
            self.dev_index(device)?;
            release(&mut self.devs[live.dev as usize], &live);
            return Ok(());
        }
        release(d, live);
        Ok(())
    }

    /// A free of a buffer not tracked: freed twice, or never allocated.
    #[cold]
    fn bad_free(&mut self, ord: u64, dev: DevIx, buffer: BufferId, site: SiteId) {
        let bad = BadFree {
            event: ord,
            device: self.devs[dev].id,
            buffer,
            site,
        };
        if self.live.was_freed(buffer.get()) {
            self.f.double_frees += 1;
            self.f.first_double_free.get_or_insert(bad);
        } else {
            self.f.unknown_frees += 1;
            self.f.first_unknown_free.get_or_insert(bad);
        }
    }

    /// Drops a buffer from the books and from its device.
    pub(super) fn forget(&mut self, live: Live) {
        self.untrack(&live);
        let d = &mut self.devs[live.dev as usize];
        d.objects -= 1;
        if let (Some(sim), Some(h)) = (d.sim.as_mut(), live.handle) {
            sim.free_placed(h);
        }
    }

    /// Removes an object's bytes from the books (not from the simulator).
    pub(super) fn untrack(&mut self, live: &Live) {
        if live.slot == NO_SLOT || live.flags & FAILED != 0 {
            return;
        }
        let d = &mut self.devs[live.dev as usize];
        let s = live.slot as usize;
        if live.flags & RESIDENT != 0 {
            d.resident[s] -= live.size;
        } else {
            d.outlived[s] -= live.size;
        }
    }

    /// Counts an allocation the model could not place; the first one becomes
    /// the OOM finding, with what was resident at that moment.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn out_of_memory(
        &mut self,
        ord: u64,
        dev: DevIx,
        slot: usize,
        buffer_type: BufferType,
        size: u64,
        oom: Oom,
        site: SiteId,
    ) {
        self.f.ooms += 1;
        if self.f.oom.is_none() {
            self.f.oom_resident_sites = self.resident_sites(dev, slot);
            let context = self.devs[dev].sim.as_ref().map(|sim| {
                let c = sim.config();
                let banks = match buffer_type {
                    BufferType::L1 | BufferType::L1Small => c.l1_banks,
                    _ => c.dram_banks,
                };
                OomContext {
                    num_banks: oom.num_banks,
                    device_banks: banks.unwrap_or(0),
                    l1_small_size: c.l1_small_size.unwrap_or(0),
                    trace_region_size: c.trace_region_size.unwrap_or(0),
                }
            });
            self.f.oom = Some(OomFinding {
                event: ord,
                device: self.devs[dev].id,
                buffer_type,
                size,
                message: oom.message,
                recorded_message: None,
                free_bytes: oom.free,
                largest_free_block: oom.largest_free_block,
                fragmentation: oom.fragmentation,
                site,
                context,
            });
        }
        if self.setup.stop_at_oom {
            self.stopped = true;
        }
    }

    pub(super) fn rejected(&mut self, why: String) {
        self.f.rejected_allocs += 1;
        self.f.first_rejection.get_or_insert(why);
    }

    pub(super) fn divergence(
        &mut self,
        ord: u64,
        device: DeviceId,
        buffer: BufferId,
        recorded: u64,
        model: Option<u64>,
    ) {
        self.f.divergences += 1;
        if self.f.first_divergence.is_none() {
            self.f.first_divergence = Some(Divergence {
                event: ord,
                device,
                buffer,
                recorded,
                model,
            });
        }
    }
}

/// Where a new buffer went: its device, type slot, flags, handle and address.
struct Placed {
    dev: DevIx,
    s: usize,
    flags: u8,
    handle: Option<Handle>,
    address: u64,
}

/// A buffer of `size` bytes placed on device `d`, type slot `s`, at event
/// `ord`: tracked and resident bytes, and their peaks.
#[inline(always)]
fn count_placed(d: &mut Dev, s: usize, size: u64, ord: u64) {
    let s = s & 3;
    d.resident[s] += size;
    // The cycle's peak is one of the bytes resident since the cycle began,
    // so never above the replay's peak: only a new cycle peak can be a new
    // peak (one compare for most allocations, not two).
    debug_assert!(d.cycle_peak[s] <= d.peak[s].bytes);
    if d.resident[s] > d.cycle_peak[s] {
        d.cycle_peak[s] = d.resident[s];
        if d.resident[s] > d.peak[s].bytes {
            d.peak[s] = Peak {
                bytes: d.resident[s],
                event: ord,
            };
        }
    }
}

/// A freed buffer's record `live` leaves the books of its device `d`, and
/// its model (unless it outlived the device).
#[inline(always)]
fn release(d: &mut Dev, live: &Live) {
    if live.flags & RESIDENT == 0 {
        return release_not_resident(d, live);
    }
    // RESIDENT: a type slot, not failed, not outlived (see the flag). A
    // type slot indexes arrays of four (the mask drops the checks).
    let ty = live.slot as usize & 3;
    d.resident[ty] -= live.size;
    d.objects -= 1;
    if let (Some(sim), Some(h)) = (d.sim.as_mut(), live.handle) {
        sim.free_placed(h);
    }
}

/// [`release`] of a record not resident: failed, outlived its device, or
/// of host memory (no type slot).
#[cold]
#[inline(never)]
fn release_not_resident(d: &mut Dev, live: &Live) {
    let (ty, flags, size) = (live.slot, live.flags, live.size);
    if ty != NO_SLOT && flags & FAILED == 0 {
        // Slotted, not failed, not resident: outlived its device.
        d.outlived[ty as usize & 3] -= size;
    }
    // Freed after its device closed: the tracker hears of it now (the
    // device forgot it at its close).
    if flags & OUTLIVED == 0 {
        d.objects -= 1;
        if let (Some(sim), Some(h)) = (d.sim.as_mut(), live.handle) {
            sim.free_placed(h);
        }
    }
}
