//! A simulated tt-metal device: one bank manager per device buffer type
//! (DRAM, L1, L1_SMALL, TRACE), host (SYSTEM_MEMORY) buffers tracked apart,
//! program binaries, traces and circular buffers.

use super::bank::{BankManager, Placement, Statistics};
use super::error::{AllocError, CbClash, CbClashKind, ConfigError, OutOfMemory};
use super::free_list::BlockRef;
use super::owner::Owner;
use super::preset::resolve;
use crate::config::{Arch, DeviceConfig};
use crate::event::BufferType;
use crate::hash::FastMap;
use crate::ids::{BufferId, ProgramId, TraceId};

mod circular_buffers;
mod inspect;
mod live_buffers;
mod programs_and_traces;
mod records;
mod request;

use live_buffers::LiveBuffers;
pub use live_buffers::{Handle, Placed};
use records::Live;
pub use records::{BlockView, CircularBuffer, Released};
pub use request::AllocRequest;

/// Page size assumed for program binaries (interleaved over the DRAM banks)
/// when the caller does not know it.
pub const PROGRAM_PAGE_SIZE: u64 = 2048;
/// tt-metal's trace buffer page size (`compute_interleaved_trace_buf_page_size`):
/// of 1024, 2048 and 4096 B, the largest that minimizes the padding of
/// `size` to a whole number of pages in every bank.
pub fn trace_page_size(size: u64, num_banks: u32) -> u64 {
    let mut pick = 1024;
    let mut min_waste = u64::MAX;
    for page in [1024u64, 2048, 4096] {
        let fully_banked = page * num_banks.max(1) as u64;
        let padded = size.div_ceil(fully_banked).saturating_mul(fully_banked);
        let waste = padded - size;
        if waste <= min_waste {
            min_waste = waste;
            pick = page;
        }
    }
    pick
}

/// Places a request first-fit in its bank manager (its direction, its
/// spread); `None` when nothing fits (see [`place_failure`]).
#[inline(always)]
fn place_in(m: &mut BankManager, req: &AllocRequest) -> Option<(Placement, BlockRef)> {
    let bottom_up = req
        .bottom_up
        .unwrap_or_else(|| default_bottom_up(req.buffer_type));
    m.place(
        req.size,
        req.page_size,
        req.shard_count(),
        req.per_bank_size,
        bottom_up,
    )
}

/// Why [`place_in`] placed nothing: out of memory. (Takes the request's
/// fields, not the request: a reference would make every allocation
/// build the request in memory for this call that almost never happens.)
#[inline(always)]
fn place_failure(m: &BankManager, req: &AllocRequest) -> AllocError {
    AllocError::OutOfMemory(m.out_of_memory_for(
        req.size,
        req.page_size,
        req.num_shards(),
        req.per_bank_size,
    ))
}

#[cold]
#[inline(never)]
fn l1_small_interleaved() -> AllocError {
    AllocError::Unsupported {
        buffer_type: BufferType::L1Small,
        message: "L1_SMALL only supports sharded allocations, see validate_num_banks".into(),
    }
}

/// tt-metal's default direction: `Buffer::bottom_up` defaults to true for DRAM and TRACE.
pub fn default_bottom_up(buffer_type: BufferType) -> bool {
    matches!(
        buffer_type,
        BufferType::Dram | BufferType::Trace | BufferType::SystemMemory
    )
}

/// A simulated device.
#[derive(Clone, Debug)]
pub struct Device {
    arch: Arch,
    config: DeviceConfig,
    /// DRAM, L1, L1_SMALL, TRACE.
    managers: [BankManager; 4],
    buffers: LiveBuffers,
    programs: FastMap<ProgramId, Live>,
    traces: FastMap<TraceId, Live>,
    /// Host bytes (u128: recorded sizes are untrusted and their sum must not overflow).
    system_bytes: u128,
    system_buffers: usize,
    cbs: circular_buffers::CbTable,
    /// Worker L1's size: a static CB region must end within it.
    cb_l1_limit: u64,
    last_program: Option<ProgramId>,
    strict: bool,
}

/// The bank manager of each buffer type (by tt-metal's number): its place
/// in [`BufferType::DEVICE`], or `HOST`. A table, not a jump table.
const MANAGER_OF: [u8; 5] = {
    let mut t = [live_buffers::HOST; 5];
    let mut i = 0;
    while i < BufferType::DEVICE.len() {
        t[BufferType::DEVICE[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The bank manager of a buffer type: its place in [`BufferType::DEVICE`]
/// (DRAM, L1, L1_SMALL, TRACE); `None` for SYSTEM_MEMORY, which has none.
/// What [`Device::allocate_placed_in`] takes.
#[inline(always)]
pub fn manager_slot(bt: BufferType) -> Option<usize> {
    let m = MANAGER_OF[bt as usize];
    (m != live_buffers::HOST).then_some(m as usize)
}

#[inline(always)]
fn slot(bt: BufferType) -> Option<usize> {
    manager_slot(bt)
}

/// Where a host buffer of `size` bytes "lands": nowhere, one bank of its size.
fn host_placement(size: u64) -> Placement {
    Placement {
        address: 0,
        per_bank: size,
        num_banks: 1,
    }
}

fn known(v: Option<u64>) -> u64 {
    v.expect("resolved config is fully populated")
}

impl Device {
    /// A device of `arch` whose unknown config fields come from `preset(arch)`.
    pub fn new(arch: Arch, config: &DeviceConfig) -> Result<Device, ConfigError> {
        let c = resolve(arch, config)?;
        let dram_banks = c.dram_banks.expect("resolved");
        let l1_banks = c.l1_banks.expect("resolved");
        let dram_align = c.dram_alignment.expect("resolved") as u64;
        let l1_align = c.l1_alignment.expect("resolved") as u64;
        let dram_base = known(c.dram_unreserved_base);
        let dram_size = known(c.dram_bank_size);
        let l1_base = known(c.l1_unreserved_base);
        let l1_size = known(c.l1_bank_size);
        // tt-metal builds every bank manager's free list with the DRAM
        // alignment (`BankManager::init_allocators`); pages round to the
        // type's own alignment.
        let fl_align = dram_align;
        let managers = [
            BankManager::new(
                BufferType::Dram,
                dram_banks,
                dram_base,
                dram_size,
                dram_align,
                fl_align,
            )?,
            BankManager::new(
                BufferType::L1,
                l1_banks,
                l1_base,
                l1_size,
                l1_align,
                fl_align,
            )?,
            BankManager::new(
                BufferType::L1Small,
                l1_banks,
                l1_base
                    .checked_add(l1_size)
                    .ok_or_else(|| ConfigError::new("L1 bank end overflows 64 bits"))?,
                known(c.l1_small_size),
                l1_align,
                fl_align,
            )?,
            BankManager::new(
                BufferType::Trace,
                dram_banks,
                dram_base
                    .checked_add(dram_size)
                    .ok_or_else(|| ConfigError::new("DRAM bank end overflows 64 bits"))?,
                known(c.trace_region_size),
                dram_align,
                fl_align,
            )?,
        ];
        let cb_l1_limit = known(c.worker_l1_size);
        Ok(Device {
            arch,
            config: c,
            cb_l1_limit,
            managers,
            buffers: LiveBuffers::default(),
            programs: FastMap::default(),
            traces: FastMap::default(),
            system_bytes: 0,
            system_buffers: 0,
            cbs: Default::default(),
            last_program: None,
            strict: false,
        })
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The resolved config (every field known).
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Strict mode rejects what tt-metal rejects even when a recording
    /// may simply have lost the detail (interleaved L1_SMALL buffers).
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// The bank manager of a device buffer type (`None` for SYSTEM_MEMORY).
    pub fn bank_manager(&self, bt: BufferType) -> Option<&BankManager> {
        slot(bt).map(|s| &self.managers[s])
    }

    fn check_new(&self, buffer: BufferId) -> Result<(), AllocError> {
        if self.buffers.contains_id(buffer) {
            return Err(AllocError::AlreadyLive {
                owner: Owner::Buffer(buffer),
            });
        }
        Ok(())
    }

    #[inline(always)]
    fn check_l1_small(&self, r: &AllocRequest) -> Result<(), AllocError> {
        if self.strict && r.buffer_type == BufferType::L1Small && r.num_shards().is_none() {
            return Err(l1_small_interleaved());
        }
        Ok(())
    }

    #[inline(never)]
    fn track_system(&mut self, buffer: BufferId, size: u64, indexed: bool) -> Placed {
        self.count_system(size);
        Placed {
            placement: host_placement(size),
            handle: self.buffers.insert_host(buffer, size, indexed),
        }
    }

    fn count_system(&mut self, size: u64) {
        self.system_bytes += size as u128;
        self.system_buffers += 1;
    }

    /// Allocates a buffer where tt-metal would put it. The device keeps the
    /// id: free it with [`Device::deallocate`].
    #[inline]
    pub fn allocate(
        &mut self,
        buffer: BufferId,
        req: &AllocRequest,
    ) -> Result<Placement, AllocError> {
        let s = slot(req.buffer_type);
        if s.is_some() {
            self.check_l1_small(req)?;
        }
        let mut placement = None;
        let handle =
            self.buffers
                .insert_new_id(&mut self.managers, buffer, req.size, |managers| {
                    let Some(s) = s else {
                        placement = Some(host_placement(req.size));
                        return Ok(None);
                    };
                    let m = &mut managers[s];
                    let Some((p, block)) = place_in(m, req) else {
                        return Err(place_failure(m, req));
                    };
                    placement = Some(p);
                    Ok::<_, AllocError>(Some((Live::new(req, p), s, block)))
                })?;
        match (handle, placement) {
            (Some(_), Some(p)) => {
                if s.is_none() {
                    self.count_system(req.size);
                }
                Ok(p)
            }
            _ => Err(AllocError::AlreadyLive {
                owner: Owner::Buffer(buffer),
            }),
        }
    }

    /// Allocates a buffer where tt-metal would put it, for a caller that
    /// keeps its own table of live ids: the device does not index the id
    /// (no hash operation), and the returned [`Handle`] frees the buffer
    /// ([`Device::deallocate_placed`]). The caller must not place an id
    /// that is still live; [`Device::deallocate`] does not see these buffers.
    #[inline(always)]
    pub fn allocate_placed(
        &mut self,
        buffer: BufferId,
        req: &AllocRequest,
    ) -> Result<Placed, AllocError> {
        self.place(buffer, req)
    }

    /// [`Device::allocate_placed`] of a device buffer for a caller that
    /// knows the request's bank manager already: `slot` must be
    /// [`manager_slot`]`(req.buffer_type)` (a replay has it: one table
    /// lookup per allocation, not two). Any other slot places the buffer
    /// in that slot's bank manager.
    #[inline(always)]
    pub fn allocate_placed_in(
        &mut self,
        slot: usize,
        buffer: BufferId,
        req: &AllocRequest,
    ) -> Result<Placed, AllocError> {
        debug_assert_eq!(Some(slot), manager_slot(req.buffer_type));
        // Masked: the four bank managers need no bounds check.
        self.place_in_slot(slot & 3, buffer, req)
    }

    #[inline(always)]
    fn place(&mut self, buffer: BufferId, req: &AllocRequest) -> Result<Placed, AllocError> {
        let Some(s) = slot(req.buffer_type) else {
            return Ok(self.track_system(buffer, req.size, false));
        };
        self.place_in_slot(s, buffer, req)
    }

    /// Places a device buffer in bank manager `s`.
    #[inline(always)]
    fn place_in_slot(
        &mut self,
        s: usize,
        buffer: BufferId,
        req: &AllocRequest,
    ) -> Result<Placed, AllocError> {
        self.check_l1_small(req)?;
        let bottom_up = req
            .bottom_up
            .unwrap_or_else(|| default_bottom_up(req.buffer_type));
        // The payload goes in with the placement: one write of the block entry.
        let Some((p, block, generation)) = self.managers[s].place_held(
            req.size,
            req.page_size,
            req.shard_count(),
            req.per_bank_size,
            bottom_up,
            buffer.0,
        ) else {
            return Err(place_failure(&self.managers[s], req));
        };
        Ok(Placed {
            placement: p,
            handle: Handle::held(s, block, generation),
        })
    }

    /// Places a buffer at a recorded `address` if that range is free.
    pub fn allocate_at(
        &mut self,
        buffer: BufferId,
        req: &AllocRequest,
        address: u64,
    ) -> Result<Placement, AllocError> {
        self.check_new(buffer)?;
        self.place_at(buffer, req, address, true)
            .map(|p| p.placement)
    }

    /// [`Device::allocate_at`] for a caller that keeps its own ids (see
    /// [`Device::allocate_placed`]).
    pub fn allocate_placed_at(
        &mut self,
        buffer: BufferId,
        req: &AllocRequest,
        address: u64,
    ) -> Result<Placed, AllocError> {
        self.place_at(buffer, req, address, false)
    }

    fn place_at(
        &mut self,
        buffer: BufferId,
        req: &AllocRequest,
        address: u64,
        indexed: bool,
    ) -> Result<Placed, AllocError> {
        let Some(s) = slot(req.buffer_type) else {
            return Ok(self.track_system(buffer, req.size, indexed));
        };
        self.check_l1_small(req)?;
        let m = &mut self.managers[s];
        let spread =
            m.spread_recorded(req.size, req.page_size, req.num_shards(), req.per_bank_size);
        match m.allocate_spread_block_at(spread, address) {
            Some((p, block)) => {
                let handle = self.buffers.insert(
                    &mut self.managers,
                    buffer,
                    Live::new(req, p),
                    s,
                    block,
                    indexed,
                );

                Ok(Placed {
                    placement: p,
                    handle,
                })
            }
            None => Err(self.address_taken(s, req, spread, address)),
        }
    }

    /// Why `allocate_at` could not place a request at `address`.
    #[cold]
    fn address_taken(
        &self,
        s: usize,
        req: &AllocRequest,
        (per_bank, aligned, banks): (u64, u64, u32),
        address: u64,
    ) -> AllocError {
        let fl = self.managers[s].free_list();
        let reserved = fl.alloc_size(per_bank);
        if address < fl.base() || address.saturating_add(reserved) > fl.end() {
            // The range leaves the bank: tt-metal could not place it either.
            return AllocError::OutOfMemory(self.oom(s, req.size, aligned, banks, per_bank));
        }
        // The allocated block in the way: the one at `address`, or
        // the one right after the free block holding `address`.
        let blocking = fl.block_at(address).and_then(|b| {
            if b.allocated {
                Some(b)
            } else {
                fl.block_at(b.address + b.size).filter(|n| n.allocated)
            }
        });
        AllocError::AddressTaken {
            buffer_type: req.buffer_type,
            address,
            per_bank: reserved,
            blocking: blocking.map(|b| (b.address, b.size)),
        }
    }

    fn oom(&self, s: usize, size: u64, aligned: u64, banks: u32, per_bank: u64) -> OutOfMemory {
        let m = &self.managers[s];
        let st = m.statistics();
        OutOfMemory {
            size: aligned,
            requested_size: size,
            buffer_type: m.buffer_type(),
            num_banks: banks,
            per_bank,
            alloc_size: m.free_list().alloc_size(per_bank),
            bank_size: m.bank_size(),
            allocated: st.allocated,
            free: st.free,
            largest_free: st.largest_free,
        }
    }

    /// Frees a buffer allocated by id. `None` for a buffer that is not live
    /// (tt-metal ignores those).
    #[inline]
    pub fn deallocate(&mut self, buffer: BufferId) -> Option<Released> {
        let (removed, entry) = self.buffers.remove_id(&mut self.managers, buffer)?;
        Some(self.release(removed, entry))
    }

    /// Frees a buffer by the handle [`Device::allocate_placed`] gave: no
    /// lookup. `None` for a handle whose buffer was freed already (or
    /// released by [`Device::close`]).
    #[inline]
    pub fn deallocate_placed(&mut self, handle: Handle) -> Option<Released> {
        let (removed, entry) = self.buffers.remove_entry(&mut self.managers, handle)?;
        Some(self.release(removed, entry))
    }

    /// [`Device::deallocate_placed`] for a caller that does not need to
    /// know what left: true when the handle's buffer was live. (Building
    /// the unused [`Released`] cost a replay's free a quarter of its time.)
    #[inline(always)]
    pub fn discard_placed(&mut self, handle: Handle) -> bool {
        match self.buffers.remove(&mut self.managers, handle) {
            Some(removed) => {
                self.uncount(removed);
                true
            }
            None => false,
        }
    }

    /// Hints that the buffer of `handle` will be freed soon: asks for its
    /// block entry's cache line now (no effect on state; a stale handle is fine).
    #[inline]
    pub fn prefetch_placed(&self, handle: Handle) {
        self.buffers.prefetch(&self.managers, handle);
    }

    #[inline]
    fn release(&mut self, removed: live_buffers::Removed, entry: live_buffers::Entry) -> Released {
        self.uncount(removed);
        entry.live.released(Owner::Buffer(entry.buffer))
    }

    /// A removed host buffer leaves the host counts (a device buffer's
    /// memory went back with its removal).
    #[inline(always)]
    fn uncount(&mut self, removed: live_buffers::Removed) {
        if removed.manager == live_buffers::HOST {
            // A host buffer: its `per_bank` is its size.
            self.system_bytes -= removed.per_bank as u128;
            self.system_buffers -= 1;
        }
    }

    /// Device close: frees everything still live the way `deallocate_all()`
    /// does and reports it (buffers, programs, traces; host buffers too),
    /// ordered by buffer type then address.
    pub fn close(&mut self) -> Vec<Released> {
        let mut out: Vec<Released> = self
            .buffers
            .iter(&self.managers)
            .map(|e| e.live.released(Owner::Buffer(e.buffer)))
            .chain(
                self.programs
                    .drain()
                    .map(|(p, l)| l.released(Owner::Program(p))),
            )
            .chain(
                self.traces
                    .drain()
                    .map(|(t, l)| l.released(Owner::Trace(t))),
            )
            .collect();
        self.buffers.clear();
        out.sort_by_key(|r| (r.buffer_type, r.address, r.owner));
        for m in &mut self.managers {
            m.deallocate_all();
        }
        self.system_bytes = 0;
        self.system_buffers = 0;
        self.cbs.clear();
        self.last_program = None;
        out
    }
}
