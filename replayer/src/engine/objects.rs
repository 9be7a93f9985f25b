//! Every event that is not a buffer alloc or free: devices, circular
//! buffers, programs and traces (the "other" objects), and refusals.

use super::*;

/// A `CbAlloc`'s fields but its device.
pub(super) struct CbEvent {
    pub address: u64,
    pub size: u64,
    pub cores: Option<u32>,
    pub global: bool,
    pub site: SiteId,
}

impl Engine<'_> {
    pub(super) fn event(&mut self, ord: u64, e: &Event) -> crate::Result<()> {
        match &e.kind {
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                address,
                size,
                page_size,
                layout,
                num_cores,
                per_bank_size,
                label,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let req = Req {
                    buffer_type: *buffer_type,
                    size: *size,
                    page_size: page_size.unwrap_or(0),
                    layout: *layout,
                    num_cores: num_cores.unwrap_or(0),
                    per_bank_size: *per_bank_size,
                };
                self.alloc(ord, dev, *buffer, req, *address, *site, *label)?;
            }
            EventKind::BufferFree {
                device,
                buffer,
                site,
            } => self.free(ord, *device, *buffer, || *site)?,
            EventKind::DeviceOpen {
                device,
                arch,
                config,
            } => {
                let dev = self.dev_index(*device)?;
                self.device_open(ord, dev, *arch, config)?;
            }
            EventKind::DeviceClose { device } => {
                let dev = self.dev_index(*device)?;
                self.close(ord, dev);
            }
            EventKind::CbAlloc {
                device,
                address,
                size,
                cores,
                globally_allocated,
                site,
            } => {
                let cb = CbEvent {
                    address: *address,
                    size: *size,
                    cores: *cores,
                    global: *globally_allocated,
                    site: *site,
                };
                self.cb_alloc(ord, *device, &cb)?;
            }
            EventKind::CbFreeAll { device } => self.cb_free_all(*device)?,
            EventKind::ProgramLoad {
                device,
                program,
                binary_size,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let key = (ObjectKind::Program, dev.stored(), program.get());
                let sim = self.sim(dev)?;
                let mut placed = sim.load_program(program.get(), *binary_size);
                if let Err(AllocFailure::AlreadyLive) = placed {
                    // Loaded again while loaded: the first copy is gone.
                    sim.unload_program(program.get());
                    placed = sim.load_program(program.get(), *binary_size);
                }
                self.add_other(
                    ord,
                    dev,
                    key,
                    0,
                    *binary_size,
                    *site,
                    placed,
                    BufferType::Dram,
                );
            }
            EventKind::ProgramUnload { device, program } => {
                let dev = self.dev_index(*device)?;
                self.sim(dev)?.unload_program(program.get());
                self.remove_other((ObjectKind::Program, dev.stored(), program.get()));
            }
            EventKind::TraceCapture {
                device,
                trace_id,
                size,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let key = (ObjectKind::Trace, dev.stored(), trace_id.get() as u64);
                let sim = self.sim(dev)?;
                let mut placed = sim.capture_trace(trace_id.get(), *size);
                if let Err(AllocFailure::AlreadyLive) = placed {
                    sim.release_trace(trace_id.get());
                    placed = sim.capture_trace(trace_id.get(), *size);
                }
                self.add_other(ord, dev, key, 3, *size, *site, placed, BufferType::Trace);
            }
            EventKind::TraceRelease { device, trace_id } => {
                let dev = self.dev_index(*device)?;
                self.sim(dev)?.release_trace(trace_id.get());
                self.remove_other((ObjectKind::Trace, dev.stored(), trace_id.get() as u64));
            }
            EventKind::ProcessStart { .. }
            | EventKind::ProcessExit { .. }
            | EventKind::OpBegin { .. }
            | EventKind::OpEnd
            | EventKind::Marker { .. } => {}
            EventKind::AllocRefused {
                device,
                buffer_type,
                size,
                page_size,
                layout,
                num_cores,
                per_bank_size,
                message,
                site,
            } => {
                let dev = self.dev_index(*device)?;
                let req = Req {
                    buffer_type: *buffer_type,
                    size: *size,
                    page_size: page_size.unwrap_or(0),
                    layout: *layout,
                    num_cores: num_cores.unwrap_or(0),
                    per_bank_size: *per_bank_size,
                };
                self.refused(ord, dev, &req, *message, *site)?;
            }
        }
        Ok(())
    }

    /// A circular buffer's allocation on `device`. Inlined into the block
    /// walks (as a call, its prologue and epilogue cost more than its own
    /// work; the model's part stays a call).
    #[inline(always)]
    pub(super) fn cb_alloc(
        &mut self,
        ord: u64,
        device: DeviceId,
        cb: &CbEvent,
    ) -> crate::Result<()> {
        let dev = self.dev_index(device)?;
        // The device and its model found once (its peak is kept beside).
        let d = self.open_dev(dev)?;
        let sim = d.sim.as_mut().expect("opened");
        // Address 0 is firmware space, never a static CB's: it means "not
        // recorded" (graph captures), so place it as the program's CB
        // allocator does.
        let fits = if cb.address == 0 && !cb.global {
            sim.cb_place_fits(cb.size, cb.cores)
        } else {
            sim.cb_alloc_fits(cb.address, cb.size, cb.cores, cb.global)
        };
        let cb_bytes = sim.cb_bytes();
        d.cb_peak = Some(d.cb_peak.unwrap_or(0).max(cb_bytes));
        // Clashes are counted here, without a branch on each (a trace may
        // clash on many of its CBs: 83k of the 2M synthetic trace's 200k);
        // only the first is described, from the model's state as the CB
        // left it.
        self.f.cb_clashes += u64::from(!fits);
        if !fits & self.f.first_cb_clash.is_none() {
            self.first_cb_clash(ord, dev, device, cb.cores, cb.site);
        }
        Ok(())
    }

    /// The first circular buffer that clashed, as the finding (formatted
    /// only for that one): the clash of device `dev`'s static CB region as
    /// the CB just recorded left it.
    #[cold]
    #[inline(never)]
    fn first_cb_clash(
        &mut self,
        ord: u64,
        dev: DevIx,
        device: DeviceId,
        cores: Option<u32>,
        site: SiteId,
    ) {
        let Some(clash) = self.devs[dev]
            .sim
            .as_ref()
            .and_then(|s| s.cb_clash_now(cores))
        else {
            return;
        };
        self.f.first_cb_clash = Some(CbClash {
            event: ord,
            device,
            message: clash.to_string(),
            site,
        });
    }

    /// Every circular buffer of `device` is freed.
    #[inline(always)]
    pub(super) fn cb_free_all(&mut self, device: DeviceId) -> crate::Result<()> {
        let dev = self.dev_index(device)?;
        self.sim(dev)?.cb_free_all();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_other(
        &mut self,
        ord: u64,
        dev: DevIx,
        key: OtherKey,
        slot: usize,
        size: u64,
        site: SiteId,
        placed: Result<(), AllocFailure>,
        buffer_type: BufferType,
    ) {
        if let Some(old) = self.live.remove_other(key) {
            self.f.duplicate_allocs += 1;
            self.untrack(&old);
            self.devs[dev].objects -= 1;
        }
        let mut live = Live {
            dev: dev.stored(),
            slot: slot as u8,
            flags: RESIDENT,
            cycle: self.cycle_number(),
            site,
            kind: key.0,
            id: key.2,
            label: StringId::EMPTY,
            handle: None,
            size,
            event: ord,
            address: NO_ADDR,
        };
        match placed {
            Ok(()) => {
                let d = &mut self.devs[dev];
                d.resident[slot] += size;
                d.cycle_peak[slot] = d.cycle_peak[slot].max(d.resident[slot]);
                if d.resident[slot] > d.peak[slot].bytes {
                    d.peak[slot] = Peak {
                        bytes: d.resident[slot],
                        event: ord,
                    };
                }
            }
            Err(AllocFailure::Oom(oom)) => {
                live.flags = FAILED;
                self.out_of_memory(ord, dev, slot, buffer_type, size, oom, site);
            }
            Err(other) => {
                let why = other.reason();
                live.flags = FAILED;
                self.rejected(why);
            }
        }
        self.devs[dev].objects += 1;
        let at = self.live.insert_other(key, live);
        self.note_alloc(at, ord);
    }

    pub(super) fn remove_other(&mut self, key: OtherKey) {
        if let Some(old) = self.live.remove_other(key) {
            self.untrack(&old);
            self.devs[old.dev as usize].objects -= 1;
        } else if let Some(old) = self.live.remove_outlived_other(key) {
            self.untrack(&old);
        }
    }
}
