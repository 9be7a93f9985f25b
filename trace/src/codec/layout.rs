//! Which coding a block's columns use, by format minor version.

/// How a block's columns are coded: the format minor version decides
/// (FORMAT.md §5.1; 2.0 and 2.1 share a layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColumnLayout {
    /// Formats 2.0 and 2.1.
    V20,
    /// Format 2.2: TS_REL instead of TS (deltas start from the block's first
    /// timestamp), SIZE_BY_SITE instead of SIZE (a delta against the previous
    /// size of the same call site). New column ids, so a 2.1 reader finds no
    /// TS or SIZE and reports the block as damaged instead of misreading it.
    V22,
    /// Format 2.3: as 2.2, and each kind keeps its own device chain
    /// (ALLOC_DEV, FREE_DEV, OTHER_DEV instead of DEVICE) and a free names
    /// its buffer as a change from the previous free's (FREE_CHAIN instead
    /// of FREE_BUF): a reader hands devices and buffer ids to each kind
    /// without walking the kind column. TS_KIND and TS_BASE instead of
    /// TS_REL (each gap less the block's median gap of its kind), SIZE_RECENT
    /// and SIZE_NEW instead of SIZE_BY_SITE (a size's place among its
    /// site's recent sizes), FLAGS_NEW and CORES_NEW instead of ALLOC_FLAGS
    /// and CORES (only where they differ from the site's previous alloc's).
    V23,
    /// Format 2.4: as 2.3, and a CbAlloc's fields in columns of their own
    /// (CB_ADDR, CB_SIZE, CB_FLAGS, CB_SITE instead of MISC), an alloc's
    /// site by the op name it runs under (SITE_BY_NAME and SITE_NEW instead
    /// of ALLOC_SITE), a free's buffer by its ordinal among the device's
    /// allocs (FREE_BY_DEV and FREE_FAR instead of FREE_CHAIN), timestamps
    /// in clock ticks (TS_TICKS and TS_UNIT instead of TS_KIND). Every 2.4
    /// block holds TS_TICKS, so a 2.3 reader finds no timestamps in it and
    /// reports it damaged.
    V24,
    /// Format 2.5: as 2.4, and a packed column whose values are all one
    /// value but a few (at most one in 256) may be stored as that value and
    /// the exceptions (width byte 0x80, `codec/packing.rs`): no byte planes
    /// for zstd to decompress or the reader to gather. A 2.4 reader finds a
    /// width above 8 and reports such a block damaged.
    #[default]
    V25,
}

impl ColumnLayout {
    /// The layout of blocks written as format 2.`minor`.
    pub fn of_minor(minor: u16) -> ColumnLayout {
        match minor {
            0 | 1 => ColumnLayout::V20,
            2 => ColumnLayout::V22,
            3 => ColumnLayout::V23,
            4 => ColumnLayout::V24,
            _ => ColumnLayout::V25,
        }
    }
}
