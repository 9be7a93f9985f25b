//! Errors of the simulated allocator. Each renders the message tt-metal
//! itself would print for the same situation, so a replayed failure reads
//! like the real one.

use crate::event::BufferType;
use crate::ids::ProgramId;
use std::fmt;

use super::owner::Owner;

/// A device configuration that cannot describe a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid device config: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// tt-metal's out-of-memory condition with every number of its message, and
/// what the numbers mean (`is_fragmentation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    /// The size tt-metal prints: the buffer's aligned size
    /// (`num_pages * round_up(page_size, alignment)`).
    pub size: u64,
    /// The size as requested (recorded).
    pub requested_size: u64,
    pub buffer_type: BufferType,
    /// Banks the buffer spreads over (shards for sharded buffers).
    pub num_banks: u32,
    /// Bytes each bank must store (`size_per_bank`).
    pub per_bank: u64,
    /// What the free list actually needs: `per_bank` rounded to the free
    /// list's alignment and minimum allocation.
    pub alloc_size: u64,
    /// The bank manager's size (`max_size_bytes`).
    pub bank_size: u64,
    pub allocated: u64,
    pub free: u64,
    pub largest_free: u64,
}

impl OutOfMemory {
    /// True when enough bytes are free but no single free block is large
    /// enough: the failure is fragmentation, not exhaustion.
    pub fn is_fragmentation(&self) -> bool {
        self.free >= self.alloc_size && self.largest_free < self.alloc_size
    }

    /// One sentence saying which kind of failure this is, with the numbers.
    pub fn verdict(&self) -> String {
        if self.alloc_size > self.bank_size {
            format!(
                "the buffer needs {} B per bank, more than the whole {} B bank",
                self.alloc_size, self.bank_size
            )
        } else if self.is_fragmentation() {
            format!(
                "fragmentation: {} B are free but the largest free block is {} B (needs {} B)",
                self.free, self.largest_free, self.alloc_size
            )
        } else {
            format!(
                "exhaustion: only {} B are free per bank (needs {} B)",
                self.free, self.alloc_size
            )
        }
    }
}

impl fmt::Display for OutOfMemory {
    /// tt-metal's current text (`BankManager::allocate_buffer`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Out of Memory: Not enough space to allocate {} B {} buffer across {} banks, where each bank needs to store {} B, but bank size is {} B (allocated: {} B, free: {} B, largest free block: {} B)",
            self.size,
            self.buffer_type.name(),
            self.num_banks,
            self.per_bank,
            self.bank_size,
            self.allocated,
            self.free,
            self.largest_free
        )
    }
}

impl std::error::Error for OutOfMemory {}

/// Why an allocation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    OutOfMemory(OutOfMemory),
    /// The buffer (or program, or trace) id is already live on this device.
    AlreadyLive {
        owner: Owner,
    },
    /// `allocate_at`: the range at the recorded address is not one free span.
    AddressTaken {
        buffer_type: BufferType,
        address: u64,
        per_bank: u64,
        /// The allocated block in the way as `(address, size)`;
        /// `Device::owner_at` names its owner.
        blocking: Option<(u64, u64)>,
    },
    /// A request tt-metal rejects outright (e.g. interleaved L1_SMALL in strict mode).
    Unsupported {
        buffer_type: BufferType,
        message: String,
    },
}

impl AllocError {
    pub fn out_of_memory(&self) -> Option<&OutOfMemory> {
        match self {
            AllocError::OutOfMemory(oom) => Some(oom),
            _ => None,
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::OutOfMemory(oom) => oom.fmt(f),
            AllocError::AlreadyLive { owner } => write!(f, "{owner} is already allocated"),
            AllocError::AddressTaken {
                buffer_type,
                address,
                per_bank,
                blocking,
            } => {
                write!(
                    f,
                    "cannot place {per_bank} B per bank at {buffer_type} address {address}: the range is not free"
                )?;
                if let Some((a, size)) = blocking {
                    write!(f, " (a {size} B block is allocated at {a})")?;
                }
                Ok(())
            }
            AllocError::Unsupported { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for AllocError {}

impl From<OutOfMemory> for AllocError {
    fn from(oom: OutOfMemory) -> Self {
        AllocError::OutOfMemory(oom)
    }
}

/// What a statically allocated circular buffer region ran into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CbClashKind {
    /// An L1 buffer sits below the end of the CB region
    /// ("... clash with L1 buffers on core range ...").
    L1Buffer { l1_buffer_address: u64 },
    /// The CB region grows past the top of L1 ("... beyond max L1 size ...").
    BeyondL1 { max_l1_size: u64 },
}

/// tt-metal's circular-buffer validation failure (`Program::validate_circular_buffer_region`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CbClash {
    /// The program the CBs belong to, when known (the last program loaded).
    pub program: Option<ProgramId>,
    /// Number of cores of the CB's core range, when recorded.
    pub cores: Option<u32>,
    /// Where the static CB region ends (one past its last byte).
    pub cb_region_end: u64,
    pub kind: CbClashKind,
}

impl CbClash {
    fn core_range(&self) -> String {
        match self.cores {
            Some(n) => format!("[{n} cores]"),
            None => "[all cores]".to_string(),
        }
    }
}

impl fmt::Display for CbClash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CbClashKind::L1Buffer { l1_buffer_address } => {
                let program = self.program.map_or_else(|| "?".to_string(), |p| p.to_string());
                write!(
                    f,
                    "Statically allocated circular buffers in program {program} clash with L1 buffers on core range {}. L1 buffer allocated at {l1_buffer_address} and static circular buffer region ends at {}",
                    self.core_range(),
                    self.cb_region_end
                )
            }
            CbClashKind::BeyondL1 { max_l1_size } => write!(
                f,
                "Statically allocated circular buffers on core range {} grow to {} B which is beyond max L1 size of {max_l1_size} B",
                self.core_range(),
                self.cb_region_end
            ),
        }
    }
}

impl std::error::Error for CbClash {}
