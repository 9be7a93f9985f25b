//! Column ids (FORMAT.md §5.1). Readers ignore columns they do not know.

pub const TAG: u16 = 0;
pub const TS: u16 = 1;
pub const PID: u16 = 2;
pub const DEVICE: u16 = 3;
pub const ALLOC_BUF: u16 = 4;
pub const FREE_BUF: u16 = 5;
pub const ALLOC_FLAGS: u16 = 6;
pub const SIZE: u16 = 7;
pub const ADDR: u16 = 8;
pub const PAGE: u16 = 9;
pub const CORES: u16 = 10;
pub const ALLOC_SITE: u16 = 11;
pub const FREE_SITE: u16 = 12;
pub const NAME: u16 = 13;
pub const MISC: u16 = 14;
pub const EXT: u16 = 15;
pub const SIZE_REM: u16 = 16;
/// Id 17 is unused (format 1.x's TS_HIGH).
pub const ALLOC_EXT: u16 = 18;
/// 2.2: TS with deltas from the block's first timestamp (replaces TS).
pub const TS_REL: u16 = 19;
/// 2.2: SIZE as a change from the site's previous size (replaces SIZE).
pub const SIZE_BY_SITE: u16 = 20;
/// 2.3: the devices of allocs, of frees and of the other kinds, each
/// kind its own delta chain (replace DEVICE).
pub const ALLOC_DEV: u16 = 21;
pub const FREE_DEV: u16 = 22;
pub const OTHER_DEV: u16 = 23;
/// 2.3: a free's buffer as a change from the previous free's (replaces FREE_BUF).
pub const FREE_CHAIN: u16 = 24;
/// 2.3: a size's place among its site's recent sizes (replaces SIZE_BY_SITE).
pub const SIZE_RECENT: u16 = 25;
/// 2.3: the sizes SIZE_RECENT does not place, against the site's latest.
pub const SIZE_NEW: u16 = 26;
/// 2.3: TS_REL less the block's median gap of the event's kind (replaces TS_REL).
pub const TS_KIND: u16 = 27;
/// 2.3: those medians, per kind.
pub const TS_BASE: u16 = 28;
/// 2.3: ALLOC_FLAGS of the allocs whose flags and cores are not their site's previous.
pub const FLAGS_NEW: u16 = 29;
/// 2.3: CORES of those allocs.
pub const CORES_NEW: u16 = 30;
/// 2.4: a CbAlloc's fields in columns of their own (2.3 kept them in
/// MISC): its address against the predicted one (`CbPredictor`), its
/// size, cores and global flag (`cb_coding::flags`), and its site.
pub const CB_ADDR: u16 = 31;
pub const CB_SIZE: u16 = 32;
pub const CB_FLAGS: u16 = 33;
pub const CB_SITE: u16 = 34;
/// 2.4: an alloc's site as its place among the recent sites of the op
/// name it runs under (replaces ALLOC_SITE), and the sites not there.
pub const SITE_BY_NAME: u16 = 35;
pub const SITE_NEW: u16 = 36;
/// 2.4: a free's buffer as its alloc's ordinal on the device (replaces
/// FREE_CHAIN), and the frees of buffers allocated elsewhere.
pub const FREE_BY_DEV: u16 = 37;
pub const FREE_FAR: u16 = 38;
/// 2.4: TS_KIND in units of the block's clock tick (replaces TS_KIND),
/// and that tick when it is not 1 ns.
pub const TS_TICKS: u16 = 39;
pub const TS_UNIT: u16 = 40;
/// 2.4: a free's device against the latest alloc's before it (replaces FREE_DEV).
pub const FREE_DEV_NEAR: u16 = 41;
pub const COUNT: usize = 42;

/// Packed columns (FORMAT.md §5.1); the others are byte streams.
pub const PACKED: [bool; COUNT] = {
    let mut p = [false; COUNT];
    let ids = [
        TS,
        DEVICE,
        ALLOC_BUF,
        FREE_BUF,
        SIZE,
        ADDR,
        PAGE,
        CORES,
        ALLOC_SITE,
        FREE_SITE,
        NAME,
        SIZE_REM,
        TS_REL,
        SIZE_BY_SITE,
        ALLOC_DEV,
        FREE_DEV,
        OTHER_DEV,
        FREE_CHAIN,
        SIZE_NEW,
        TS_KIND,
        CORES_NEW,
        CB_ADDR,
        CB_SIZE,
        CB_FLAGS,
        CB_SITE,
        SITE_NEW,
        FREE_BY_DEV,
        FREE_FAR,
        TS_TICKS,
        FREE_DEV_NEAR,
    ];
    let mut i = 0;
    while i < ids.len() {
        p[ids[i] as usize] = true;
        i += 1;
    }
    p
};

/// The columns of an event's time, of every format: from 2.6 on they are
/// in the block's times record (`TimesRec`), never in the block's own.
pub const TIME: [u16; 6] = [TS, TS_REL, TS_KIND, TS_BASE, TS_TICKS, TS_UNIT];

/// Whether column `id` holds (part of) the events' times.
pub fn is_time(id: u16) -> bool {
    TIME.contains(&id)
}
