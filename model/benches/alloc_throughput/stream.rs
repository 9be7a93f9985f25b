//! Replays of an alloc/free stream (generated, or written from a trace)
//! through fresh devices: the model's work in a replay, with no decoding.

use super::timing::{Best, Rng, Timer, ROUNDS};
use std::hint::black_box;
use ttalloc_model::alloc::{AllocRequest, Device, Handle};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout};

/// An alloc/free stream, with what a replay of it needs to know ahead
/// (counted once, not per round).
pub struct Stream {
    steps: Vec<Step>,
    /// Devices the steps name (device numbers are dense from 0).
    pub devices: usize,
    /// Buffer ids the steps name (dense from 0).
    ids: usize,
}

impl Stream {
    fn new(steps: Vec<Step>) -> Stream {
        let (mut devices, mut ids) = (1, 0);
        for s in &steps {
            let (Step::Alloc { device, id, .. } | Step::Free { device, id }) = *s;
            devices = devices.max(device as usize + 1);
            ids = ids.max(id as usize + 1);
        }
        Stream {
            steps,
            devices,
            ids,
        }
    }

    /// The synthetic stream of [`generated_stream`].
    pub fn generated(steps: usize, leak_one_in: u64) -> Stream {
        Stream::new(generated_stream(steps, leak_one_in))
    }

    /// A stream file written from a trace (see [`stream_from_file`]).
    pub fn from_file(path: &str) -> Stream {
        Stream::new(stream_from_file(path))
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    fn fresh_devices(&self) -> Vec<Device> {
        (0..self.devices)
            .map(|_| Device::new(Arch::WormholeB0, &DeviceConfig::default()).expect("preset"))
            .collect()
    }
}

/// One step of a replayed stream: allocate buffer `id` (a dense index) or free it.
#[derive(Clone, Copy)]
enum Step {
    Alloc {
        device: u8,
        id: u32,
        req: AllocRequest,
    },
    Free {
        device: u8,
        id: u32,
    },
}

/// A replay's alloc/free stream: 8 wormhole_b0 devices taking turns, each
/// with a few hundred live buffers (a window of short-lived activations
/// plus a slowly growing set of leaked ones, one in `leak_one_in`; 0: none)
/// — DRAM interleaved bottom-up and L1 sharded top-down, in tile pages, as
/// `synth` generates them. Without leaks every list stays compact (tens of
/// blocks), as in the replay of the synthetic trace between its leaks.
fn generated_stream(steps: usize, leak_one_in: u64) -> Vec<Step> {
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    let mut out = Vec::with_capacity(steps);
    let mut live: Vec<std::collections::VecDeque<u32>> = vec![Default::default(); 8];
    let mut next = 0u32;
    while out.len() < steps {
        let r = rng.next();
        let device = (r % 8) as u8;
        let q = &mut live[device as usize];
        if q.len() > 16 && !(r >> 8).is_multiple_of(4) {
            let id = q.pop_front().expect("non-empty");
            // One in `leak_one_in` stays behind for good (a leak).
            if leak_one_in == 0 || !(r >> 16).is_multiple_of(leak_one_in) {
                out.push(Step::Free { device, id });
            }
            continue;
        }
        let pages = 12 + (r >> 20) % 4000;
        let req = if (r >> 40).is_multiple_of(3) {
            let cores = [32u32, 64][((r >> 44) & 1) as usize];
            AllocRequest {
                buffer_type: BufferType::L1,
                size: (pages % 400 + cores as u64) * 2048,
                page_size: Some(2048),
                layout: Layout::BlockSharded,
                num_cores: Some(cores),
                bottom_up: None,
                per_bank_size: None,
            }
        } else {
            AllocRequest::interleaved(BufferType::Dram, pages * 2048, Some(2048))
        };
        out.push(Step::Alloc {
            device,
            id: next,
            req,
        });
        q.push_back(next);
        next += 1;
    }
    out
}

/// A stream file written from a real trace (`ALLOC_BENCH_STREAM`): 32-byte
/// records `kind u8 (0 alloc, 1 free; others skipped), device u8,
/// buffer_type u8 (0 DRAM, 1 L1, 2 L1_SMALL, 3 TRACE, 4 SYSTEM_MEMORY),
/// sharded u8, num_cores u32, id u64, size u64, page_size u64`, little-endian.
fn stream_from_file(path: &str) -> Vec<Step> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut ids = std::collections::HashMap::new();
    let mut out = Vec::new();
    for rec in bytes.chunks_exact(32) {
        let u64_at = |o: usize| u64::from_le_bytes(rec[o..o + 8].try_into().expect("8 bytes"));
        let device = rec[1];
        let n = ids.len() as u32;
        let id = *ids.entry((device, u64_at(8))).or_insert(n);
        match rec[0] {
            0 => {
                let buffer_type = match rec[2] {
                    0 => BufferType::Dram,
                    1 => BufferType::L1,
                    2 => BufferType::L1Small,
                    3 => BufferType::Trace,
                    _ => BufferType::SystemMemory,
                };
                let cores = u32::from_le_bytes(rec[4..8].try_into().expect("4 bytes"));
                let page = u64_at(24);
                out.push(Step::Alloc {
                    device,
                    id,
                    req: AllocRequest {
                        buffer_type,
                        size: u64_at(16),
                        page_size: (page > 0).then_some(page),
                        layout: if rec[3] != 0 {
                            Layout::BlockSharded
                        } else {
                            Layout::Interleaved
                        },
                        num_cores: (cores > 0).then_some(cores),
                        bottom_up: None,
                        per_bank_size: None,
                    },
                });
            }
            1 => out.push(Step::Free { device, id }),
            _ => {}
        }
    }
    out
}

/// Replays `stream` on fresh devices by buffer id (the device keeps the ids).
pub fn stream_by_id(stream: &Stream) -> Best {
    let mut best = Best::new();
    for _ in 0..ROUNDS.min(7) {
        let mut devs = stream.fresh_devices();
        let timer = Timer::start();
        for step in &stream.steps {
            match *step {
                Step::Alloc { device, id, req } => {
                    let _ = black_box(devs[device as usize].allocate(BufferId(id as u64), &req));
                }
                Step::Free { device, id } => {
                    black_box(devs[device as usize].deallocate(BufferId(id as u64)));
                }
            }
        }
        best.add(timer.per_op(stream.len() as u64));
    }
    best
}

/// Replays `stream` keeping handles in the caller's own table (what the
/// replay engine does): no id lookup in the model.
pub fn stream_placed(stream: &Stream) -> Best {
    let mut best = Best::new();
    for _ in 0..ROUNDS.min(7) {
        let mut devs = stream.fresh_devices();
        let mut handles: Vec<Option<Handle>> = vec![None; stream.ids];
        let timer = Timer::start();
        for step in &stream.steps {
            match *step {
                Step::Alloc { device, id, req } => {
                    if let Ok(p) = devs[device as usize].allocate_placed(BufferId(id as u64), &req)
                    {
                        handles[id as usize] = Some(p.handle);
                    }
                }
                Step::Free { device, id } => {
                    if let Some(h) = handles[id as usize].take() {
                        // As the replay engine frees: nothing read back.
                        black_box(devs[device as usize].discard_placed(h));
                    }
                }
            }
        }
        best.add(timer.per_op(stream.len() as u64));
    }
    best
}
