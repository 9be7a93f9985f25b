//! [`DecodeScratch`], the block decoder's working arrays: whole columns of
//! varints decoded in bulk, the per-site and per-device histories, and the
//! lists that hand devices and buffer ids out to each kind. A decoded block
//! ([`BlockColumns`](super::BlockColumns)) holds none of them: one set
//! serves every block a thread decodes, so a replay holding two decoded
//! blocks in flight touches (faults in, zeroes) them once, not twice.

/// The decoder's working arrays, one set per decoding thread (the reader
/// keeps them pooled: `TraceReader::decode_columns`). What they hold
/// between two decodes means nothing: every decode overwrites what it reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DecodeScratch {
    /// The device of every other-kind event that has one (2.3+), or of
    /// every event that has one (2.0-2.2).
    pub(super) devices: Vec<u32>,
    /// The device of every alloc and of every free: they change places
    /// with the decoded block's `allocs.device` and `frees.device`.
    pub(super) alloc_devices: Vec<u32>,
    pub(super) free_devices: Vec<u32>,
    /// Position and device of every event of another kind.
    pub(super) other_pos: Vec<u32>,
    pub(super) other_dev: Vec<u32>,
    /// How many of the block's kinds are CbAllocs (counted with the kind
    /// words).
    pub(super) cb_allocs: usize,
    /// Whole columns of varints, decoded in bulk.
    pub(super) vals: ColumnValues,
}

/// Reused buffers holding whole decoded varint columns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ColumnValues {
    pub(super) device: Vec<u64>,
    pub(super) alloc_buf: Vec<u64>,
    pub(super) free_buf: Vec<u64>,
    pub(super) alloc_site: Vec<u64>,
    pub(super) free_site: Vec<u64>,
    pub(super) page: Vec<u64>,
    pub(super) size: Vec<u64>,
    pub(super) size_rem: Vec<u64>,
    pub(super) addr: Vec<u64>,
    pub(super) cores: Vec<u64>,
    pub(super) name: Vec<u32>,
    /// Resolved buffer ids of the block's frees.
    pub(super) free_ids: Vec<u64>,
    /// Previous size per site slot (format 2.2; see `SiteHistory`).
    pub(super) prev_size: crate::codec::SiteHistory,
    /// Recent sizes per site slot and the sizes stored whole (format 2.3).
    pub(super) recent_sizes: crate::recent_sizes::RecentSizes,
    pub(super) size_new: Vec<u64>,
    /// Flags of every alloc, previous flags per site slot and the core
    /// counts stored whole (format 2.3).
    pub(super) flags: Vec<u8>,
    pub(super) site_flags: crate::site_flags::SiteFlags,
    pub(super) cores_new: Vec<u64>,
    /// Previous address per (device, buffer type) slot (see `AddrHistory`).
    pub(super) addr_slots: Vec<u64>,
    /// Which events are allocs, frees, names and other kinds (64 to a word).
    pub(super) kinds: Vec<super::KindWord>,
    /// Format 2.4's alloc sites, freed buffers and circular buffers.
    pub(super) sites_by_name: crate::site_by_name::SiteScratch,
    pub(super) free_by_device: crate::free_by_device::FreeColumnsScratch,
    pub(super) cb: crate::cb_coding::CbScratch,
    /// The other kinds that are not circular buffers (indices into `other_pos`).
    pub(super) rare: Vec<u32>,
}
