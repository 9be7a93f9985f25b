//! The simulated tt-metal device allocator (`tt_metal/impl/allocator/`):
//! first-fit free lists shared in lockstep by the banks of each buffer type,
//! tt-metal's size arithmetic, directions, statistics, block tables and
//! out-of-memory text. Replaying recorded events through a [`Device`] puts
//! buffers where tt-metal put them and fails where tt-metal failed.
//!
//! Layers, bottom up: [`FreeList`] (one address range), [`BankManager`]
//! (one buffer type, all its banks), [`Device`] (all buffer types, programs,
//! traces, circular buffers). [`preset`] gives a fully populated
//! [`DeviceConfig`](crate::DeviceConfig) per architecture.
//!
//! # Fidelity (tt-metal sources: `algorithms/free_list_opt.cpp`,
//! `bank_manager.cpp`, `allocator.cpp`, `program.cpp`)
//!
//! - First fit as `FreeListOpt` with `SearchPolicy::FIRST`: it walks its
//!   size classes keeping the best address, which is the lowest (bottom-up)
//!   or highest (top-down) *start address* among all free blocks that fit.
//!   Top-down carves `offset = block_size - alloc_size`.
//! - `alloc_size = align(max(size, min_allocation))`; bank managers build
//!   their free lists with `alignment = min_allocation = ` the **DRAM**
//!   alignment for every buffer type (`BankManager::init_allocators` passes
//!   `hal.get_alignment(HalMemType::DRAM)`), while pages round to the type's
//!   own alignment (`calculate_bank_size_spread(size, page, banks,
//!   alignment_bytes_)`). On Wormhole an L1 page of 100 B is 112 B per bank
//!   and reserves 128 B.
//! - Per bank: `ceil(num_pages / banks) * round_up(page, alignment)`;
//!   sharded buffers use the shard (core) count as `banks`. tt-metal passes
//!   the buffer's *aligned* size and prints it in the OOM message; so do we.
//! - Freeing an unknown address is ignored (`FreeListOpt::deallocate`), and
//!   so is freeing an unknown buffer id here.
//! - Out of memory renders `BankManager::allocate_buffer`'s current text.
//! - Directions: `Buffer` defaults to bottom-up for DRAM and TRACE, top-down
//!   for L1 and L1_SMALL; program binaries go top-down in DRAM; with no trace
//!   region, traces go top-down in DRAM (reference §5).
//! - `close()` is `deallocate_all()` on every bank manager; it returns what
//!   was still live so a replay can report it.
//! - Circular buffers: `Program::validate_circular_buffer_region` compares
//!   the static CB region's end with the lowest occupied L1 address, and the
//!   region's end with the worker L1 size; both messages are reproduced. The
//!   core range and program id are not in the recorded event: the message
//!   names the core count and the last program loaded.
//! - CBs without a recorded address ([`Device::cb_place`]) stack upward from
//!   the start of unreserved L1, as a program's CB allocator places them.
//!
//! # Decisions where a recording lacks what tt-metal knows
//!
//! - Unknown page size: the buffer is one page (`page_size = size`).
//! - Sharded layout without a core count: spread like an interleaved buffer.
//! - Interleaved L1_SMALL: tt-metal `TT_FATAL`s ("L1_SMALL only supports
//!   sharded allocations"). The allocation-server protocol carries no
//!   layout, so a recorded L1_SMALL buffer often looks interleaved although
//!   tt-metal accepted it as sharded. It is therefore allowed (spread over
//!   the L1_SMALL banks); [`Device::set_strict`] restores tt-metal's refusal.
//! - SYSTEM_MEMORY buffers are host memory: tracked (stats, `close`) but
//!   never placed in a bank.
//! - Program binaries with no page size: [`PROGRAM_PAGE_SIZE`] (2048 B)
//!   pages interleaved over the DRAM banks (an assumption;
//!   `load_program_paged` takes the real one). Trace buffers use tt-metal's
//!   own page choice, [`trace_page_size`].
//!
//! # Not modelled
//!
//! - `validate_num_banks` (bank counts that are neither powers of two nor in
//!   tt-metal's list) and the shard-count-versus-grid check are not
//!   enforced: what-if configs should not fail on them.
//! - The L1 interleaved address limit (`interleaved_address_limit`, storage
//!   cores) and `shrink_size` of the L1 bank; allocator dependencies
//!   (sub-device managers sharing banks); per-bank offsets (a buffer's
//!   address is its offset in every bank, as tt-metal reports it).

mod bank;
mod device;
mod error;
mod free_list;
mod maxtree;
mod owner;
mod preset;
mod restore;

pub use bank::{size_per_bank, BankManager, Placement, Statistics};
pub use device::{
    default_bottom_up, manager_slot, trace_page_size, AllocRequest, BlockView, CircularBuffer,
    Device, Handle, Placed, Released, PROGRAM_PAGE_SIZE,
};
pub use error::{AllocError, CbClash, CbClashKind, ConfigError, OutOfMemory};
pub use free_list::{BlockRef, FreeList, Span};
pub use owner::Owner;
pub use preset::{blackhole, preset, resolve, wormhole_b0, WORMHOLE_B0_L1_BANK_COUNTS};
pub use restore::{Held, RestoreError};
