//! A block's buffer allocs and frees as columns ([`AllocColumns`],
//! [`FreeColumns`]) and the values built from one entry ([`AllocCol`],
//! [`FreeCol`]): nearly every event of a trace, so kept apart from the
//! rarer kinds of [`BlockColumns`](super::BlockColumns).

use crate::codec::{FLAG_ADDR, FLAG_CORES, FLAG_PAGE};
use ttalloc_model::{BufferId, BufferType, DeviceId, Layout, SiteId, StringId};

/// One `BufferAlloc` of a block, as a value built from [`AllocColumns`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocCol {
    pub device: DeviceId,
    pub buffer: BufferId,
    pub buffer_type: BufferType,
    pub layout: Layout,
    pub address: Option<u64>,
    pub size: u64,
    pub page_size: Option<u64>,
    pub num_cores: Option<u32>,
    /// Format 2.1 (ALLOC_EXT column).
    pub per_bank_size: Option<u64>,
    pub label: StringId,
    pub site: SiteId,
}

/// One `BufferFree` of a block, as a value built from [`FreeColumns`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeCol {
    pub device: DeviceId,
    pub buffer: BufferId,
    pub site: SiteId,
}

/// Buffer type by code (codes 5–7 are rejected before this table is used).
pub(crate) const BUFFER_TYPES: [BufferType; 8] = [
    BufferType::Dram,
    BufferType::L1,
    BufferType::SystemMemory,
    BufferType::L1Small,
    BufferType::Trace,
    BufferType::Dram,
    BufferType::Dram,
    BufferType::Dram,
];

pub(crate) const LAYOUTS: [Layout; 4] = [
    Layout::Interleaved,
    Layout::HeightSharded,
    Layout::WidthSharded,
    Layout::BlockSharded,
];

/// A block's `BufferAlloc`s, one array per field (entry `i` of each is alloc
/// `i`): the decoder writes each field in its own pass, and a reader that
/// wants one field (buffer ids, sizes) reads only that array. Fields an
/// alloc lacks hold 0; `flags` says which are present.
#[derive(Clone, Debug, Default)]
pub struct AllocColumns {
    pub(crate) device: Vec<u32>,
    pub(crate) buffer: Vec<u64>,
    /// The format's flags byte: bits 0–2 buffer type, 3–4 layout, 5 address,
    /// 6 page size, 7 num_cores present.
    pub(crate) flags: Vec<u8>,
    pub(crate) size: Vec<u64>,
    pub(crate) address: Vec<u64>,
    pub(crate) page_size: Vec<u64>,
    /// `Some(p)` when every entry `page_size` holds is `p`, however many:
    /// the next block whose allocs all share page size `p` (nearly every
    /// block) writes only the entries past them, not a block-long array of
    /// copies. Any other write of `page_size` makes it `None`.
    pub(crate) page_fill: Option<u64>,
    pub(crate) num_cores: Vec<u32>,
    pub(crate) site: Vec<u32>,
    /// The 2.1 fields (per-bank size, label), rare: empty when no alloc of
    /// the block has one, else one entry per alloc.
    pub(crate) ext: Vec<AllocExt>,
    /// How many allocs every array holds: 0 while a block is being decoded
    /// (the arrays are filled one by one), set once they are all filled.
    pub(crate) n: usize,
}

/// An alloc's format 2.1 fields (ALLOC_EXT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocExt {
    pub per_bank_size: Option<u64>,
    pub label: StringId,
}

/// Equal when they hold the same allocs (`page_fill` is a note on how
/// `page_size` was written, not part of them).
impl PartialEq for AllocColumns {
    fn eq(&self, o: &Self) -> bool {
        self.n == o.n
            && self.device == o.device
            && self.buffer == o.buffer
            && self.flags == o.flags
            && self.size == o.size
            && self.address == o.address
            && self.page_size == o.page_size
            && self.num_cores == o.num_cores
            && self.site == o.site
            && self.ext == o.ext
    }
}

impl Eq for AllocColumns {}

impl AllocColumns {
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether any alloc of the block has a format 2.1 field (per-bank
    /// size, label): when none has, a reader can use the defaults for every
    /// alloc of the block instead of asking [`AllocRef::ext`] for each.
    #[inline(always)]
    pub fn has_ext(&self) -> bool {
        !self.ext.is_empty()
    }

    /// Every alloc's buffer id.
    pub fn buffers(&self) -> &[u64] {
        &self.buffer[..self.n]
    }

    /// Every alloc's size in bytes.
    pub fn sizes(&self) -> &[u64] {
        &self.size[..self.n]
    }

    /// Alloc `i`, if the block has that many.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<AllocCol> {
        if i >= self.n {
            return None;
        }
        let ext = self.ext.get(i).copied().unwrap_or_default();
        // SAFETY: every array but `ext` holds at least `n` entries: `n` is
        // set only when they all were filled (`AllocColumns::filled`, `push`).
        unsafe {
            let f = *self.flags.get_unchecked(i);
            Some(AllocCol {
                device: DeviceId(*self.device.get_unchecked(i)),
                buffer: BufferId(*self.buffer.get_unchecked(i)),
                buffer_type: BUFFER_TYPES[(f & 7) as usize],
                layout: LAYOUTS[((f >> 3) & 3) as usize],
                address: (f & FLAG_ADDR != 0).then_some(*self.address.get_unchecked(i)),
                size: *self.size.get_unchecked(i),
                page_size: (f & FLAG_PAGE != 0).then_some(*self.page_size.get_unchecked(i)),
                num_cores: (f & FLAG_CORES != 0).then_some(*self.num_cores.get_unchecked(i)),
                per_bank_size: ext.per_bank_size,
                label: ext.label,
                site: SiteId(*self.site.get_unchecked(i)),
            })
        }
    }

    /// Alloc `i` where it lies, if the block has that many: its flags byte
    /// read once, each field read from its column when asked. What the
    /// replay's hot path reads (no `Option` built for a field nobody asks
    /// for, and none tested twice: `get` builds a whole [`AllocCol`]).
    #[inline(always)]
    pub fn at(&self, i: usize) -> Option<AllocRef<'_>> {
        if i >= self.n {
            return None;
        }
        // SAFETY: `flags` holds at least `n` entries (`AllocColumns::filled`).
        let flags = unsafe { *self.flags.get_unchecked(i) };
        Some(AllocRef {
            columns: self,
            i,
            flags,
        })
    }

    /// Asks for the cache lines of alloc `i` when it starts a line of the
    /// 8-byte arrays (every 8 allocs; the narrower arrays' lines hold more):
    /// a reader on another core than the decoder calls it some way ahead.
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        if i.is_multiple_of(8) && i < self.n {
            prefetch_line(&self.buffer, i);
            prefetch_line(&self.size, i);
            prefetch_line(&self.address, i);
            prefetch_line(&self.page_size, i);
            prefetch_line(&self.device, i);
            prefetch_line(&self.site, i);
            prefetch_line(&self.num_cores, i);
            prefetch_line(&self.flags, i);
        }
    }

    /// Marks the arrays filled: `n` allocs each (checked; the arrays were
    /// filled from columns checked to hold `n` entries).
    pub(crate) fn filled(&mut self, n: usize) {
        let lens = [
            self.device.len(),
            self.buffer.len(),
            self.flags.len(),
            self.size.len(),
            self.address.len(),
            self.page_size.len(),
            self.num_cores.len(),
            self.site.len(),
        ];
        assert!(
            lens.iter().all(|&l| l == n),
            "alloc arrays {lens:?}, {n} allocs"
        );
        assert!(self.ext.is_empty() || self.ext.len() == n);
        self.n = n;
    }

    /// Every alloc, in order.
    pub fn iter(&self) -> impl Iterator<Item = AllocCol> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// Appends one alloc (tests and hand-built blocks; the decoder fills
    /// whole arrays).
    pub fn push(&mut self, a: &AllocCol) {
        let bt = BUFFER_TYPES
            .iter()
            .position(|&t| t == a.buffer_type)
            .unwrap_or(0) as u8;
        let layout = LAYOUTS.iter().position(|&l| l == a.layout).unwrap_or(0) as u8;
        let flags = bt
            | layout << 3
            | if a.address.is_some() { FLAG_ADDR } else { 0 }
            | if a.page_size.is_some() { FLAG_PAGE } else { 0 }
            | if a.num_cores.is_some() { FLAG_CORES } else { 0 };
        let ext = AllocExt {
            per_bank_size: a.per_bank_size,
            label: a.label,
        };
        let n = self.n;
        self.page_fill = None;
        for v in [
            &mut self.buffer,
            &mut self.size,
            &mut self.address,
            &mut self.page_size,
        ] {
            v.truncate(n);
        }
        for v in [&mut self.device, &mut self.num_cores, &mut self.site] {
            v.truncate(n);
        }
        self.flags.truncate(n);
        if ext != AllocExt::default() || !self.ext.is_empty() {
            self.ext.resize(n, AllocExt::default());
            self.ext.push(ext);
        }
        self.device.push(a.device.0);
        self.buffer.push(a.buffer.0);
        self.flags.push(flags);
        self.size.push(a.size);
        self.address.push(a.address.unwrap_or(0));
        self.page_size.push(a.page_size.unwrap_or(0));
        self.num_cores.push(a.num_cores.unwrap_or(0));
        self.site.push(a.site.0);
        self.filled(n + 1);
    }

    /// Starts a block: no alloc (the arrays keep their memory).
    pub(crate) fn clear(&mut self) {
        self.n = 0;
        self.ext.clear();
    }
}

/// One alloc of a block's [`AllocColumns`], read where it lies (see
/// [`AllocColumns::at`]): `i` is below the columns' count, so every read
/// is in bounds without a check.
#[derive(Clone, Copy)]
pub struct AllocRef<'c> {
    columns: &'c AllocColumns,
    i: usize,
    flags: u8,
}

impl AllocRef<'_> {
    /// Entry `i` of one of the columns (not `ext`).
    #[inline(always)]
    fn read<T: Copy>(&self, column: &[T]) -> T {
        debug_assert!(self.i < column.len());
        // SAFETY: `i < n` (`AllocColumns::at`), and every array but `ext`
        // holds at least `n` entries (`AllocColumns::filled`, `push`).
        unsafe { *column.get_unchecked(self.i) }
    }

    #[inline(always)]
    pub fn device(&self) -> DeviceId {
        DeviceId(self.read(&self.columns.device))
    }

    #[inline(always)]
    pub fn buffer(&self) -> BufferId {
        BufferId(self.read(&self.columns.buffer))
    }

    /// The buffer type's code (0–4: `BufferType as u8`; the decoder
    /// rejects codes 5–7, and `BUFFER_TYPES` maps them as `get` does).
    #[inline(always)]
    pub fn buffer_type(&self) -> BufferType {
        BUFFER_TYPES[(self.flags & 7) as usize]
    }

    /// The buffer type's code (flags bits 0-2): [`AllocRef::buffer_type`]
    /// is `BufferType::ALL[code]` for codes 0-4 (a decoded block has no
    /// other) and `Dram` for 5-7. For a reader that maps the type to its
    /// own table: one lookup by the code, not two.
    #[inline(always)]
    pub fn type_code(&self) -> u8 {
        self.flags & 7
    }

    #[inline(always)]
    pub fn layout(&self) -> Layout {
        // The codes are the discriminants (a match, not a table: it folds
        // to the code itself).
        match (self.flags >> 3) & 3 {
            0 => Layout::Interleaved,
            1 => Layout::HeightSharded,
            2 => Layout::WidthSharded,
            _ => Layout::BlockSharded,
        }
    }

    #[inline(always)]
    pub fn size(&self) -> u64 {
        self.read(&self.columns.size)
    }

    /// The recorded address, if any.
    #[inline(always)]
    pub fn address(&self) -> Option<u64> {
        (self.flags & FLAG_ADDR != 0).then(|| self.read(&self.columns.address))
    }

    #[inline(always)]
    pub fn page_size(&self) -> Option<u64> {
        (self.flags & FLAG_PAGE != 0).then(|| self.read(&self.columns.page_size))
    }

    #[inline(always)]
    pub fn num_cores(&self) -> Option<u32> {
        (self.flags & FLAG_CORES != 0).then(|| self.read(&self.columns.num_cores))
    }

    /// The page size, 0 when none was recorded: the column as it lies (an
    /// alloc without one holds 0 there, see [`AllocColumns`]), no flag
    /// tested and no `Option` built for a caller to whom 0 means unknown.
    #[inline(always)]
    pub fn page_size_or_zero(&self) -> u64 {
        let page = self.read(&self.columns.page_size);
        debug_assert!(self.flags & FLAG_PAGE != 0 || page == 0);
        page
    }

    /// The core count, 0 when none was recorded (as
    /// [`AllocRef::page_size_or_zero`]).
    #[inline(always)]
    pub fn num_cores_or_zero(&self) -> u32 {
        let cores = self.read(&self.columns.num_cores);
        debug_assert!(self.flags & FLAG_CORES != 0 || cores == 0);
        cores
    }

    #[inline(always)]
    pub fn site(&self) -> SiteId {
        SiteId(self.read(&self.columns.site))
    }

    /// The format 2.1 fields (per-bank size, label; none in most blocks).
    #[inline(always)]
    pub fn ext(&self) -> AllocExt {
        self.columns.ext.get(self.i).copied().unwrap_or_default()
    }
}

/// Asks for the cache line of `column[i]` (`i` is in bounds).
#[inline(always)]
pub(super) fn prefetch_line<T>(column: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = column.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch is a
        // hint that reads nothing.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (column, i);
}

/// A block's `BufferFree`s, one array per field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeColumns {
    pub(crate) device: Vec<u32>,
    pub(crate) buffer: Vec<u64>,
    pub(crate) site: Vec<u32>,
    /// How many frees every array holds (as `AllocColumns::n`).
    pub(crate) n: usize,
}

impl FreeColumns {
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Every free's buffer id.
    pub fn buffers(&self) -> &[u64] {
        &self.buffer[..self.n]
    }

    /// Free `i`, if the block has that many.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<FreeCol> {
        if i >= self.n {
            return None;
        }
        // SAFETY: every array holds at least `n` entries (`FreeColumns::filled`).
        unsafe {
            Some(FreeCol {
                device: DeviceId(*self.device.get_unchecked(i)),
                buffer: BufferId(*self.buffer.get_unchecked(i)),
                site: SiteId(*self.site.get_unchecked(i)),
            })
        }
    }

    /// Free `i` where it lies, if the block has that many: each field read
    /// from its column when asked (the site only matters to a bad free).
    #[inline(always)]
    pub fn at(&self, i: usize) -> Option<FreeRef<'_>> {
        (i < self.n).then_some(FreeRef { columns: self, i })
    }

    /// As [`AllocColumns::prefetch`].
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        if i.is_multiple_of(8) && i < self.n {
            prefetch_line(&self.buffer, i);
            prefetch_line(&self.device, i);
            prefetch_line(&self.site, i);
        }
    }

    /// Marks the arrays filled with `n` frees each (checked).
    pub(crate) fn filled(&mut self, n: usize) {
        let lens = [self.device.len(), self.buffer.len(), self.site.len()];
        assert!(
            lens.iter().all(|&l| l == n),
            "free arrays {lens:?}, {n} frees"
        );
        self.n = n;
    }

    /// Every free, in order.
    pub fn iter(&self) -> impl Iterator<Item = FreeCol> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// Appends one free (tests and hand-built blocks).
    pub fn push(&mut self, x: &FreeCol) {
        let n = self.n;
        self.device.truncate(n);
        self.buffer.truncate(n);
        self.site.truncate(n);
        self.device.push(x.device.0);
        self.buffer.push(x.buffer.0);
        self.site.push(x.site.0);
        self.filled(n + 1);
    }
}

/// One free of a block's [`FreeColumns`], read where it lies (see
/// [`FreeColumns::at`]): `i` is below the columns' count.
#[derive(Clone, Copy)]
pub struct FreeRef<'c> {
    columns: &'c FreeColumns,
    i: usize,
}

impl FreeRef<'_> {
    /// Entry `i` of one of the columns.
    #[inline(always)]
    fn read<T: Copy>(&self, column: &[T]) -> T {
        debug_assert!(self.i < column.len());
        // SAFETY: `i < n` (`FreeColumns::at`), and every array holds at
        // least `n` entries (`FreeColumns::filled`, `push`).
        unsafe { *column.get_unchecked(self.i) }
    }

    #[inline(always)]
    pub fn device(&self) -> DeviceId {
        DeviceId(self.read(&self.columns.device))
    }

    #[inline(always)]
    pub fn buffer(&self) -> BufferId {
        BufferId(self.read(&self.columns.buffer))
    }

    #[inline(always)]
    pub fn site(&self) -> SiteId {
        SiteId(self.read(&self.columns.site))
    }
}

#[cfg(test)]
mod tests;
