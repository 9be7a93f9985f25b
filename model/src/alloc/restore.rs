//! Restarting a device from a checkpoint: the objects it held, in the order
//! they were made, put back where they were — buffers at their recorded
//! addresses, circular buffers at theirs, program binaries and traces at the
//! addresses a replay gave them when the caller knows them, and what has no
//! known address where the allocator puts it when it comes in that order.
//!
//! A checkpoint lists only what survived, so the allocator sees fewer
//! objects than when each was first placed: an object placed without a
//! known address lands where it did before unless something freed since
//! had shaped the free space around it (a program unloaded below a later
//! one, say). Callers that need the exact state pass the addresses. An
//! address that is no longer free is an error naming the object, never a
//! silent move: the caller then replays from an earlier point.

use super::device::{AllocRequest, Device, Handle};
use super::error::AllocError;
use crate::ids::{BufferId, ProgramId, TraceId};
use std::fmt;

/// One object a device holds at a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    Buffer {
        buffer: BufferId,
        request: AllocRequest,
        /// Recorded address; `None`: the allocator places it.
        address: Option<u64>,
    },
    /// `address`: where a replay had placed it, when known (traces
    /// record none); `None`: the allocator places it.
    Program {
        program: ProgramId,
        binary_size: u64,
        address: Option<u64>,
    },
    Trace {
        trace: TraceId,
        size: u64,
        address: Option<u64>,
    },
    /// A statically allocated CB at `address` (0: not recorded, placed as
    /// the program's CB allocator does), or a globally allocated one.
    CircularBuffer {
        address: u64,
        size: u64,
        cores: Option<u32>,
        globally_allocated: bool,
    },
}

/// Why object `index` of a restore could not be put back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError {
    pub index: usize,
    pub error: AllocError,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "held object {} cannot be restored: {}",
            self.index, self.error
        )
    }
}

impl std::error::Error for RestoreError {}

impl Device {
    /// Puts `held` (in the order the objects were made) back on this
    /// device, which should hold nothing yet. Circular-buffer region checks
    /// are not repeated: each CB was checked when it was made.
    pub fn restore(&mut self, held: &[Held]) -> Result<(), RestoreError> {
        self.restore_buffers_as(held, false).map(drop)
    }

    /// [`Device::restore`] for a caller that keeps its own ids: buffers are
    /// placed as `Device::allocate_placed` places them; returns each
    /// buffer's handle, in `held`'s order.
    pub fn restore_placed(
        &mut self,
        held: &[Held],
    ) -> Result<Vec<(BufferId, Handle)>, RestoreError> {
        self.restore_buffers_as(held, true)
    }

    fn restore_buffers_as(
        &mut self,
        held: &[Held],
        placed: bool,
    ) -> Result<Vec<(BufferId, Handle)>, RestoreError> {
        let mut handles = Vec::new();
        for (index, h) in held.iter().enumerate() {
            let placed = match h {
                Held::Buffer {
                    buffer,
                    request,
                    address,
                } if placed => match address {
                    Some(a) => self.allocate_placed_at(*buffer, request, *a),
                    None => self.allocate_placed(*buffer, request),
                }
                .map(|p| handles.push((*buffer, p.handle))),
                Held::Buffer {
                    buffer,
                    request,
                    address: Some(a),
                } => self.allocate_at(*buffer, request, *a).map(drop),
                Held::Buffer {
                    buffer,
                    request,
                    address: None,
                } => self.allocate(*buffer, request).map(drop),
                Held::Program {
                    program,
                    binary_size,
                    address: Some(a),
                } => self.load_program_at(*program, *binary_size, *a),
                Held::Program {
                    program,
                    binary_size,
                    address: None,
                } => self.load_program(*program, *binary_size).map(drop),
                Held::Trace {
                    trace,
                    size,
                    address: Some(a),
                } => self.capture_trace_at(*trace, *size, *a),
                Held::Trace {
                    trace,
                    size,
                    address: None,
                } => self.capture_trace(*trace, *size).map(drop),
                Held::CircularBuffer {
                    address,
                    size,
                    cores,
                    globally_allocated,
                } => {
                    // A clash was reported when the CB was made; it is held all the same.
                    if *address == 0 && !*globally_allocated {
                        let _ = self.cb_place(*size, *cores);
                    } else {
                        let _ = self.cb_alloc(*address, *size, *cores, *globally_allocated);
                    }
                    Ok(())
                }
            };
            placed.map_err(|error| RestoreError { index, error })?;
        }
        Ok(handles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::preset;
    use crate::{Arch, BufferType, DeviceConfig};

    fn device() -> Device {
        let _ = preset(Arch::WormholeB0);
        Device::new(Arch::WormholeB0, &DeviceConfig::default()).unwrap()
    }

    fn dram(size: u64) -> AllocRequest {
        AllocRequest::interleaved(BufferType::Dram, size, Some(2048))
    }

    fn l1(size: u64) -> AllocRequest {
        AllocRequest::interleaved(BufferType::L1, size, Some(2048))
    }

    /// A device after a history with frees, and what it still holds (as a
    /// checkpoint lists it: survivors in creation order, with addresses).
    fn history() -> (Device, Vec<Held>) {
        let mut d = device();
        let mut held = Vec::new();
        let addr = |d: &mut Device, id: u64, r: AllocRequest| {
            let a = d.allocate(BufferId(id), &r).unwrap().address;
            (id, r, a)
        };
        // 12 DRAM and 12 L1 buffers of growing sizes; every third one freed.
        let mut made = Vec::new();
        for i in 0..12u64 {
            made.push(addr(&mut d, i, dram(2048 * (i + 1) * 12)));
            made.push(addr(&mut d, 100 + i, l1(2048 * (i + 1) * 64)));
        }
        d.load_program(ProgramId(1), 64 << 10).unwrap();
        d.cb_alloc(0, 4096, Some(8), true).unwrap();
        for (id, _, _) in made.iter().filter(|(id, _, _)| id % 3 == 0) {
            d.deallocate(BufferId(*id)).unwrap();
        }
        for (id, request, a) in made.into_iter().filter(|(id, _, _)| id % 3 != 0) {
            held.push(Held::Buffer {
                buffer: BufferId(id),
                request,
                address: Some(a),
            });
        }
        held.push(Held::Program {
            program: ProgramId(1),
            binary_size: 64 << 10,
            address: None,
        });
        held.push(Held::CircularBuffer {
            address: 0,
            size: 4096,
            cores: Some(8),
            globally_allocated: true,
        });
        (d, held)
    }

    #[test]
    fn a_restored_device_has_the_same_blocks_and_places_the_next_buffers_alike() {
        let (mut original, held) = history();
        let mut restored = device();
        restored.restore(&held).unwrap();
        for bt in [BufferType::Dram, BufferType::L1] {
            assert_eq!(restored.memory_view(bt), original.memory_view(bt), "{bt:?}");
            assert_eq!(restored.stats(bt), original.stats(bt), "{bt:?}");
        }
        assert_eq!(restored.cb_count(), original.cb_count());
        assert_eq!(restored.cb_region_end(), original.cb_region_end());
        assert_eq!(restored.cb_static_bytes(), original.cb_static_bytes());
        // The holes left by the frees are reused the same way: first fit
        // from the bottom for DRAM, from the top for L1.
        for (i, r) in [dram(2048 * 5), l1(2048 * 40), dram(2048 * 300)]
            .iter()
            .enumerate()
        {
            let id = BufferId(1000 + i as u64);
            assert_eq!(
                restored.allocate(id, r).unwrap(),
                original.allocate(id, r).unwrap(),
                "allocation {i}"
            );
        }
    }

    #[test]
    fn a_recorded_address_already_taken_is_an_error_naming_the_object() {
        // The lowest DRAM address a buffer can have, then two buffers there.
        let base = device().allocate(BufferId(9), &dram(2048)).unwrap().address;
        let held = vec![
            Held::Buffer {
                buffer: BufferId(1),
                request: dram(2048 * 12),
                address: Some(base),
            },
            Held::Buffer {
                buffer: BufferId(2),
                request: dram(2048 * 12),
                address: Some(base),
            },
        ];
        let err = device().restore(&held).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(
            matches!(err.error, AllocError::AddressTaken { .. }),
            "{err}"
        );
    }
}
