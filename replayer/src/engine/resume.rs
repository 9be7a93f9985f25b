//! Starting a replay from a trace's allocator-state checkpoint instead of
//! its first event: the devices are opened as recorded, the model is
//! restarted with what they held (`Device::restore`: buffers at their
//! recorded addresses), and the books track those objects as allocated at
//! their original events.
//!
//! What a resumed replay knows: the model's state, and every live object
//! with its event, site, size and address — so placements, out-of-memory,
//! divergences and leaks from the checkpoint on are those of a replay from
//! the start. What it does not: history before the checkpoint (peaks,
//! finished cycles, which cycle made a live object, buffers that outlived a
//! closed device, freed ids for double-free detection). Callers resume only
//! where their answer cannot depend on that history.

use super::*;
use ttalloc_model::alloc::{Held, Owner};
use ttalloc_trace::Checkpoint;

/// What a replay's model knew at a checkpoint that the trace does not say:
/// where program binaries and traces were placed (no event records it), and
/// where each live buffer is, or that the model could not place it. Taken
/// from a replay that went through the checkpoint
/// ([`Engine::model_addresses`]), it makes a resumed replay exact.
#[derive(Clone, Debug, Default)]
pub struct ModelAddresses {
    programs: FastMap<(DeviceId, u64), u64>,
    traces: FastMap<(DeviceId, u64), u64>,
    /// Buffer id -> its address in the model; `None`: not placed.
    buffers: FastMap<u64, Option<u64>>,
}

impl<'a> Engine<'a> {
    /// An engine as a replay of the events before `cp.next_event` leaves it
    /// (see the module doc for what is not carried); feed it the events
    /// from `cp.next_event` on. Cycles: give `Spans` that start at or after
    /// the checkpoint, or an `Online` rule whose cycles do not straddle it.
    /// With `known` (from a replay through the same point) every object is
    /// put back exactly; without, programs and traces are placed by the
    /// allocator in creation order (see `ttalloc_model::alloc::Held`).
    pub fn resume(
        setup: EngineSetup<'a>,
        cp: &Checkpoint,
        known: Option<&ModelAddresses>,
    ) -> crate::Result<Engine<'a>> {
        let mut engine = Engine::new(setup);
        engine.restore(cp, known).map_err(|why| {
            crate::ReplayError::Usage(format!(
                "the checkpoint after block {} (event {}) cannot be restored: {why}",
                cp.after_block, cp.next_event
            ))
        })?;
        engine.events = cp.next_event;
        Ok(engine)
    }

    /// What the model holds now that a checkpoint cannot say (see [`ModelAddresses`]).
    pub fn model_addresses(&self) -> ModelAddresses {
        let mut m = ModelAddresses::default();
        for d in self.devs.iter() {
            let Some(sim) = &d.sim else { continue };
            for (owner, address) in sim.held_addresses() {
                match owner {
                    Owner::Program(p) => m.programs.insert((d.id, p.get()), address),
                    Owner::Trace(t) => m.traces.insert((d.id, t.get() as u64), address),
                    Owner::Buffer(_) => None,
                };
            }
        }
        for live in self.live.iter() {
            if live.kind != ObjectKind::Buffer || live.flags & OUTLIVED != 0 {
                continue;
            }
            let id = live.id;
            // The model's own word: after a divergence it may differ from the recording.
            let address = match &self.devs[live.dev as usize].sim {
                _ if live.slot == NO_SLOT => Some(0),
                Some(sim) => live.handle.and_then(|h| sim.address_of_placed(h)),
                None => None,
            };
            m.buffers.insert(id, address);
        }
        m
    }

    fn restore(&mut self, cp: &Checkpoint, known: Option<&ModelAddresses>) -> Result<(), String> {
        for (_, e) in &cp.devices {
            if let EventKind::DeviceOpen {
                device,
                arch,
                config,
            } = &e.kind
            {
                let dev = self.dev_index(*device).map_err(|e| e.to_string())?;
                self.open(dev, *arch, config).map_err(|e| e.to_string())?;
            }
        }
        // Per device, what its model holds, in creation order.
        let mut held: Vec<(DevIx, Vec<Held>, Vec<u64>)> = Vec::new();
        for (ord, e) in &cp.objects {
            let Some(device) = e.kind.device() else {
                continue;
            };
            let dev = self.dev_index(device).map_err(|e| e.to_string())?;
            let i = match held.iter().position(|h| h.0 == dev) {
                Some(i) => i,
                None => {
                    held.push((dev, Vec::new(), Vec::new()));
                    held.len() - 1
                }
            };
            let h = match &e.kind {
                EventKind::BufferAlloc {
                    buffer,
                    buffer_type,
                    address,
                    size,
                    page_size,
                    layout,
                    num_cores,
                    per_bank_size,
                    ..
                } => {
                    let address = match known.map(|k| k.buffers.get(&buffer.get())) {
                        // The model could not place it: nothing to put back.
                        Some(Some(None)) => continue,
                        Some(Some(Some(a))) if *buffer_type != BufferType::SystemMemory => Some(*a),
                        _ => *address,
                    };
                    Held::Buffer {
                        buffer: *buffer,
                        request: Sim::request(&Req {
                            buffer_type: *buffer_type,
                            size: *size,
                            page_size: page_size.unwrap_or(0),
                            layout: *layout,
                            num_cores: num_cores.unwrap_or(0),
                            per_bank_size: *per_bank_size,
                        }),
                        address,
                    }
                }
                EventKind::ProgramLoad {
                    program,
                    binary_size,
                    ..
                } => Held::Program {
                    program: *program,
                    binary_size: *binary_size,
                    address: known.and_then(|k| k.programs.get(&(device, program.get())).copied()),
                },
                EventKind::TraceCapture { trace_id, size, .. } => Held::Trace {
                    trace: *trace_id,
                    size: *size,
                    address: known
                        .and_then(|k| k.traces.get(&(device, trace_id.get() as u64)).copied()),
                },
                EventKind::CbAlloc {
                    address,
                    size,
                    cores,
                    globally_allocated,
                    ..
                } => Held::CircularBuffer {
                    address: *address,
                    size: *size,
                    cores: *cores,
                    globally_allocated: *globally_allocated,
                },
                _ => continue,
            };
            held[i].1.push(h);
            held[i].2.push(*ord);
        }
        // The handle of every restored buffer, by (device, buffer id).
        let mut handles: FastMap<(DevIx, u64), Handle> = FastMap::default();
        for (dev, objects, ords) in &held {
            let placed = self
                .sim(*dev)
                .map_err(|e| e.to_string())?
                .restore_placed(objects)
                .map_err(|e| {
                    let ord = ords.get(e.index).copied().unwrap_or_default();
                    format!("the object made at event {ord}: {}", e.error)
                })?;
            handles.extend(placed.into_iter().map(|(b, h)| ((*dev, b.get()), h)));
        }
        for (ord, e) in &cp.objects {
            self.track_restored(*ord, e, known, &handles)?;
        }
        let last = cp.next_event.saturating_sub(1);
        for d in self.devs.iter_mut() {
            for (peak, &bytes) in d.peak.iter_mut().zip(&d.resident) {
                *peak = Peak { bytes, event: last };
            }
        }
        Ok(())
    }

    /// The books' entry for a restored object (the model already holds it).
    fn track_restored(
        &mut self,
        ord: u64,
        e: &Event,
        known: Option<&ModelAddresses>,
        handles: &FastMap<(DevIx, u64), Handle>,
    ) -> Result<(), String> {
        let Some(device) = e.kind.device() else {
            return Ok(());
        };
        let dev = self.dev_index(device).map_err(|e| e.to_string())?;
        let live = |slot: Option<usize>, kind, id, size, site, label, address| Live {
            dev: dev.stored(),
            slot: slot.map_or(NO_SLOT, |s| s as u8),
            // Host memory (no type slot) is never counted as resident.
            flags: if slot.is_some() { RESIDENT } else { 0 },
            cycle: 0,
            site,
            kind,
            id,
            label,
            handle: None,
            size,
            event: ord,
            address,
        };
        let (key, l) = match &e.kind {
            EventKind::BufferAlloc {
                buffer,
                buffer_type,
                address,
                size,
                label,
                site,
                ..
            } => {
                let handle = handles.get(&(dev, buffer.get())).copied();
                let placed = address.or_else(|| {
                    let sim = self.devs[dev].sim.as_ref()?;
                    sim.address_of_placed(handle?)
                });
                let slot = type_slot(*buffer_type);
                let mut l = live(
                    slot,
                    ObjectKind::Buffer,
                    buffer.get(),
                    *size,
                    *site,
                    *label,
                    placed.unwrap_or(NO_ADDR),
                );
                if known.and_then(|k| k.buffers.get(&buffer.get())) == Some(&None) {
                    l.flags = FAILED;
                } else {
                    l.handle = handle;
                }
                (None, l)
            }
            EventKind::ProgramLoad {
                program,
                binary_size,
                site,
                ..
            } => {
                let key = (ObjectKind::Program, dev.stored(), program.get());
                let l = live(
                    Some(0),
                    key.0,
                    key.2,
                    *binary_size,
                    *site,
                    StringId::EMPTY,
                    NO_ADDR,
                );
                (Some(key), l)
            }
            EventKind::TraceCapture {
                trace_id,
                size,
                site,
                ..
            } => {
                let key = (ObjectKind::Trace, dev.stored(), trace_id.get() as u64);
                let l = live(
                    Some(3),
                    key.0,
                    key.2,
                    *size,
                    *site,
                    StringId::EMPTY,
                    NO_ADDR,
                );
                (Some(key), l)
            }
            _ => return Ok(()),
        };
        if l.slot != NO_SLOT && l.flags & FAILED == 0 {
            let d = &mut self.devs[dev];
            d.resident[l.slot as usize] += l.size;
        }
        self.devs[dev].objects += 1;
        match key {
            None => {
                self.live.insert_buffer(l);
            }
            Some(k) => {
                self.live.insert_other(k, l);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
