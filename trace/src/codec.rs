//! The event-block codec: events are split into columns (one stream per
//! field family) of deltas, which zstd then compresses well. Most columns are
//! *packed*: one value per event that uses them, all stored with the block's
//! widest byte width, byte plane by byte plane (all low bytes, then all second
//! bytes, ...): zstd sees the noisy low bytes apart from the near-constant
//! high ones, and a reader decodes a whole column with a few vectorised loops
//! instead of a varint per value. Frees carry only device, buffer and site:
//! the alloc already said the rest. See FORMAT.md §5 for the column list and
//! per-kind layout.

use crate::cb_coding::CbPredictor;
use crate::ext::{AllocExtEncoder, REFUSED};
use crate::free_by_device::FreeEncoder;
use crate::recent_sizes::{RecentSizes, SizeCode};
use crate::records::ColumnRec;
use crate::site_by_name::SitesByName;
use crate::site_flags::SiteFlags;
use crate::ts_by_kind::KindBases;
use crate::varint::{self, zigzag};
use ttalloc_model::{Event, EventKind, EventTag, Pid};

pub mod col;
mod history;
mod layout;
mod packing;

pub use history::AddrHistory;
pub(crate) use history::SiteHistory;
pub use layout::ColumnLayout;
#[cfg(test)]
pub(crate) use packing::packed_width;
pub(crate) use packing::{pack, pack_near_constant, NEAR_CONSTANT};

/// First kind code a 2.0 reader does not know: such events carry their whole
/// payload in the EXT column, length-prefixed, so old readers can skip them.
pub const FIRST_UNKNOWN_TAG: u8 = EventTag::ALL.len() as u8;

pub(crate) const FLAG_ADDR: u8 = 1 << 5;
pub(crate) const FLAG_PAGE: u8 = 1 << 6;
pub(crate) const FLAG_CORES: u8 = 1 << 7;

/// Accumulates one block's events as columns.
pub struct BlockEncoder {
    layout: ColumnLayout,
    prev_size: SiteHistory,
    recent_sizes: RecentSizes,
    site_flags: SiteFlags,
    /// Scratch of the per-kind medians (2.3).
    gap_scratch: Vec<i64>,
    cols: [Vec<u8>; col::COUNT],
    /// Values of the packed columns, packed when the block is taken.
    vals: [Vec<u64>; col::COUNT],
    count: u32,
    first_ts: u64,
    last_ts: u64,
    prev_ts: u64,
    prev_pid: u32,
    run_pid: u32,
    pid_run: u64,
    prev_alloc_buf: u64,
    /// 2.3: the previous free's buffer (FREE_CHAIN).
    prev_free_buf: u64,
    /// The previous device of the DEVICE chain (2.0–2.2) or of each kind's
    /// chain (2.3: indexed by `DeviceChain`).
    prev_device: [u32; 3],
    prev_addr: AddrHistory,
    alloc_ext: AllocExtEncoder,
    /// 2.4: where the next circular buffer is expected, per device.
    cb_predictor: CbPredictor,
    /// 2.4: recent alloc sites per op name, and the name allocs run under
    /// (the last OpBegin or Marker in the block).
    sites_by_name: SitesByName,
    last_name: Option<u32>,
    /// 2.4: the block's allocs per device, for the frees.
    frees: FreeEncoder,
    /// 2.4: the clock tick timestamps are multiples of (1 = ns).
    clock_tick: u64,
    /// 2.4: the device of the block's latest alloc (FREE_DEV_NEAR).
    last_alloc_device: u32,
}

impl Default for BlockEncoder {
    fn default() -> Self {
        BlockEncoder {
            layout: ColumnLayout::default(),
            prev_size: SiteHistory::default(),
            recent_sizes: RecentSizes::default(),
            site_flags: SiteFlags::default(),
            gap_scratch: Vec::new(),
            cols: std::array::from_fn(|_| Vec::new()),
            vals: std::array::from_fn(|_| Vec::new()),
            count: 0,
            first_ts: 0,
            last_ts: 0,
            prev_ts: 0,
            prev_pid: 0,
            run_pid: 0,
            pid_run: 0,
            prev_alloc_buf: 0,
            prev_free_buf: 0,
            prev_device: [0; 3],
            prev_addr: AddrHistory::default(),
            alloc_ext: AllocExtEncoder::default(),
            cb_predictor: CbPredictor::default(),
            sites_by_name: SitesByName::default(),
            last_name: None,
            frees: FreeEncoder::default(),
            clock_tick: 1,
            last_alloc_device: 0,
        }
    }
}

impl BlockEncoder {
    /// An encoder writing blocks in `layout`.
    pub fn new(layout: ColumnLayout) -> BlockEncoder {
        BlockEncoder {
            layout,
            clock_tick: 1,
            ..BlockEncoder::default()
        }
    }

    /// Timestamps pushed from now on are multiples of `tick` ns (the writer
    /// rounds them down): 2.4 blocks store them in ticks. At least 1.
    pub fn set_clock_tick(&mut self, tick: u64) {
        self.clock_tick = tick.max(1);
    }

    pub fn len(&self) -> u32 {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn first_ts(&self) -> u64 {
        self.first_ts
    }
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    #[inline]
    fn common(&mut self, tag: u8, ts: u64, pid: Pid) {
        if self.count == 0 {
            self.first_ts = ts;
            if self.layout >= ColumnLayout::V22 {
                // 2.2: deltas start from the block's first timestamp (kept in
                // the block record), so the column is as narrow as its gaps.
                self.prev_ts = ts;
            }
        }
        self.last_ts = ts;
        self.count += 1;
        self.cols[col::TAG as usize].push(tag);
        // Deltas are wrapping (not zigzag): timestamps almost always grow, and a
        // rare step back just widens this block's column.
        let ts_col = match self.layout {
            ColumnLayout::V20 => col::TS,
            ColumnLayout::V22 => col::TS_REL,
            // The kind's median is taken off when the block is sealed.
            ColumnLayout::V23 => col::TS_KIND,
            // And the gaps are divided by the clock tick then.
            ColumnLayout::V24 | ColumnLayout::V25 => col::TS_TICKS,
        };
        self.put(ts_col, ts.wrapping_sub(self.prev_ts));
        self.prev_ts = ts;
        // Pids come in long runs: the column holds (pid delta, run length) pairs.
        if self.pid_run > 0 && pid.0 == self.run_pid {
            self.pid_run += 1;
        } else {
            self.flush_pid_run();
            self.run_pid = pid.0;
            self.pid_run = 1;
        }
    }

    fn flush_pid_run(&mut self) {
        if self.pid_run > 0 {
            let d = zigzag(self.run_pid.wrapping_sub(self.prev_pid) as i32 as i64);
            varint::put(&mut self.cols[col::PID as usize], d);
            varint::put(&mut self.cols[col::PID as usize], self.pid_run);
            self.prev_pid = self.run_pid;
            self.pid_run = 0;
        }
    }

    /// Appends `v` to column `c` (packed or varint, by the column).
    #[inline]
    fn put(&mut self, c: u16, v: u64) {
        if col::PACKED[c as usize] {
            self.vals[c as usize].push(v);
        } else {
            varint::put(&mut self.cols[c as usize], v);
        }
    }

    #[cfg(test)]
    pub fn push(&mut self, e: &Event) {
        self.push_at(e.ts, e)
    }

    /// Appends `e` as if its time were `ts` (a writer's rounding to its
    /// clock tick, without a copy of the event).
    pub fn push_at(&mut self, ts: u64, e: &Event) {
        self.common(e.kind.tag() as u8, ts, e.pid);
        if e.kind.tag() == REFUSED {
            // A 2.1 kind: its whole payload (device included) goes to EXT,
            // so a 2.0 reader can skip it (FORMAT.md §5.4).
            crate::ext::put_refused(&e.kind, &mut self.cols[col::EXT as usize]);
            return;
        }
        if let Some(d) = e.kind.device() {
            // 2.3: allocs, frees and the other kinds each chain their own
            // devices (a reader needs no walk over the kinds to hand them out).
            let (c, chain) = match (self.layout, &e.kind) {
                (ColumnLayout::V20 | ColumnLayout::V22, _) => (col::DEVICE, 0),
                (_, EventKind::BufferAlloc { .. }) => (col::ALLOC_DEV, 0),
                (_, EventKind::BufferFree { .. }) => (col::FREE_DEV, 1),
                (_, _) => (col::OTHER_DEV, 2),
            };
            if self.layout >= ColumnLayout::V24 && chain == 1 {
                // 2.4: a free's device against the latest alloc's (the op's).
                let delta = d.0.wrapping_sub(self.last_alloc_device) as i32 as i64;
                self.put(col::FREE_DEV_NEAR, zigzag(delta));
            } else {
                let prev = &mut self.prev_device[chain];
                let delta = d.0.wrapping_sub(*prev) as i32 as i64;
                *prev = d.0;
                self.put(c, zigzag(delta));
            }
            if chain == 0 {
                self.last_alloc_device = d.0;
            }
        }
        use col::*;
        match &e.kind {
            EventKind::ProcessStart { ppid, argv } => {
                self.put(MISC, ppid.0 as u64);
                self.put(MISC, argv.0 as u64);
            }
            EventKind::ProcessExit { status } => {
                let v = match status {
                    None => 0,
                    Some(s) => zigzag(*s as i64) + 1,
                };
                self.put(MISC, v);
            }
            EventKind::DeviceOpen { arch, config, .. } => {
                self.cols[MISC as usize].push(*arch as u8);
                let known = config.known();
                self.put(MISC, known.len() as u64);
                for (key, value) in known {
                    self.put(MISC, key.len() as u64);
                    self.cols[MISC as usize].extend_from_slice(key.as_bytes());
                    self.put(MISC, value);
                }
            }
            EventKind::CbFreeAll { device } => {
                if self.layout >= ColumnLayout::V24 {
                    self.cb_predictor.free_all(device.0);
                }
            }
            EventKind::DeviceClose { .. } | EventKind::OpEnd => {}
            EventKind::BufferAlloc {
                device,
                buffer,
                buffer_type,
                address,
                size,
                page_size,
                layout,
                num_cores,
                per_bank_size,
                label,
                site,
            } => {
                self.alloc_ext.push(
                    *per_bank_size,
                    *label,
                    &mut self.cols[col::ALLOC_EXT as usize],
                );
                let d = buffer.0.wrapping_sub(self.prev_alloc_buf);
                self.prev_alloc_buf = buffer.0;
                self.put(ALLOC_BUF, zigzag(d as i64));
                let mut flags = (*buffer_type as u8) | ((*layout as u8) << 3);
                if let Some(a) = address {
                    flags |= FLAG_ADDR;
                    let prev = self.prev_addr.slot(device.0, *buffer_type as u8);
                    let d = a.wrapping_sub(*prev);
                    *prev = *a;
                    self.put(ADDR, zigzag(d as i64));
                }
                if let Some(p) = page_size {
                    flags |= FLAG_PAGE;
                    self.put(PAGE, *p);
                }
                if num_cores.is_some() {
                    flags |= FLAG_CORES;
                }
                // 2.3: flags and cores only when they differ from the
                // site's previous alloc's (SIZE_RECENT's bit 3 says which).
                let repeat = self.layout >= ColumnLayout::V23
                    && self
                        .site_flags
                        .repeats(site.0 as u64, flags, num_cores.unwrap_or(0));
                if !repeat {
                    let (flags_col, cores_col) = match self.layout {
                        ColumnLayout::V20 | ColumnLayout::V22 => (ALLOC_FLAGS, CORES),
                        ColumnLayout::V23 | ColumnLayout::V24 | ColumnLayout::V25 => {
                            (FLAGS_NEW, CORES_NEW)
                        }
                    };
                    self.cols[flags_col as usize].push(flags);
                    if let Some(c) = num_cores {
                        self.put(cores_col, *c as u64);
                    }
                }
                let repeat_bit = if repeat { SiteFlags::REPEAT } else { 0 };
                // Sizes are whole pages: store pages and the remainder (almost always 0).
                let units = match page_size {
                    Some(p) if *p > 0 => {
                        self.put(SIZE_REM, size % p);
                        size / p
                    }
                    _ => *size,
                };
                match self.layout {
                    ColumnLayout::V20 => self.put(SIZE, units),
                    // 2.2: a site mostly allocates the same size again.
                    ColumnLayout::V22 => {
                        let prev = &mut self.prev_size.slots[SiteHistory::index(site.0 as u64)];
                        let d = units.wrapping_sub(*prev) as i64;
                        *prev = units;
                        self.put(SIZE_BY_SITE, zigzag(d));
                    }
                    // 2.3: its place among the site's recent sizes.
                    ColumnLayout::V23 | ColumnLayout::V24 | ColumnLayout::V25 => {
                        match self.recent_sizes.encode(site.0 as u64, units) {
                            SizeCode::Recent(place) => {
                                self.cols[SIZE_RECENT as usize].push(place | repeat_bit)
                            }
                            SizeCode::New { zigzag_delta } => {
                                self.cols[SIZE_RECENT as usize].push(RecentSizes::NEW | repeat_bit);
                                self.put(SIZE_NEW, zigzag_delta);
                            }
                        }
                    }
                }
                if self.layout >= ColumnLayout::V24 {
                    // 2.4: its place among the recent sites of its op.
                    let slot = SitesByName::slot_of(self.last_name);
                    let place = self.sites_by_name.encode(slot, site.0);
                    self.cols[SITE_BY_NAME as usize].push(place);
                    if place == SitesByName::NEW {
                        self.put(SITE_NEW, site.0 as u64);
                    }
                    self.frees.alloc(device.0, buffer.0);
                } else {
                    self.put(ALLOC_SITE, site.0 as u64);
                }
            }
            EventKind::BufferFree {
                device,
                buffer,
                site,
            } => {
                if self.layout >= ColumnLayout::V24 {
                    // 2.4: its alloc's ordinal among the device's allocs.
                    let (code, far) = self.frees.free(device.0, buffer.0);
                    self.put(FREE_BY_DEV, code);
                    if let Some(f) = far {
                        self.put(FREE_FAR, f);
                    }
                } else if self.layout == ColumnLayout::V23 {
                    // 2.3: the change from the previous free's buffer (frees
                    // mostly follow the order of their allocs).
                    let d = buffer.0.wrapping_sub(self.prev_free_buf);
                    self.prev_free_buf = buffer.0;
                    self.put(FREE_CHAIN, zigzag(d as i64));
                } else {
                    // Frees refer to earlier allocs: the distance back from the
                    // latest alloc (zigzag: a free of a later id costs a bit, not 8 bytes).
                    let d = self.prev_alloc_buf.wrapping_sub(buffer.0);
                    self.put(FREE_BUF, zigzag(d as i64));
                }
                self.put(FREE_SITE, site.0 as u64);
            }
            EventKind::CbAlloc {
                device,
                address,
                size,
                cores,
                globally_allocated,
                site,
            } if self.layout >= ColumnLayout::V24 => {
                let predicted = self.cb_predictor.predict(device.0);
                self.cb_predictor.alloc(device.0, *address, *size);
                self.put(CB_ADDR, zigzag(address.wrapping_sub(predicted) as i64));
                self.put(CB_SIZE, *size);
                self.put(
                    CB_FLAGS,
                    crate::cb_coding::flags(*cores, *globally_allocated),
                );
                let site = self.cb_predictor.site_code(device.0, site.0);
                self.put(CB_SITE, site);
            }
            EventKind::CbAlloc {
                address,
                size,
                cores,
                globally_allocated,
                site,
                ..
            } => {
                self.put(MISC, *address);
                self.put(MISC, *size);
                self.put(MISC, cores.map_or(0, |c| c as u64 + 1));
                self.cols[MISC as usize].push(*globally_allocated as u8);
                self.put(MISC, site.0 as u64);
            }
            EventKind::ProgramLoad {
                program,
                binary_size,
                site,
                ..
            } => {
                self.put(MISC, program.0);
                self.put(MISC, *binary_size);
                self.put(MISC, site.0 as u64);
            }
            EventKind::ProgramUnload { program, .. } => self.put(MISC, program.0),
            EventKind::TraceCapture {
                trace_id,
                size,
                site,
                ..
            } => {
                self.put(MISC, trace_id.0 as u64);
                self.put(MISC, *size);
                self.put(MISC, site.0 as u64);
            }
            EventKind::TraceRelease { trace_id, .. } => self.put(MISC, trace_id.0 as u64),
            EventKind::OpBegin { name: s } | EventKind::Marker { label: s } => {
                self.last_name = Some(s.0);
                self.put(NAME, s.0 as u64);
            }
            EventKind::AllocRefused { .. } => unreachable!("encoded above"),
        }
    }

    /// Appends an event of a kind this version does not define (tests of
    /// forward compatibility use it to play a newer writer); `tag` is at
    /// least `FIRST_UNKNOWN_TAG` (the writer checks).
    pub fn push_unknown(&mut self, tag: u8, ts: u64, pid: Pid, payload: &[u8]) {
        self.common(tag, ts, pid);
        self.put(col::EXT, payload.len() as u64);
        self.cols[col::EXT as usize].extend_from_slice(payload);
    }

    /// Moves the non-empty columns out (the encoder keeps its buffers' capacity
    /// through [`BlockEncoder::reclaim`]) and resets the block state.
    pub fn take_columns(&mut self) -> Vec<ColumnRec> {
        self.flush_pid_run();
        match self.layout {
            ColumnLayout::V20 | ColumnLayout::V22 => {}
            ColumnLayout::V23 => self.gaps_less_kind_medians(col::TS_KIND, 1),
            ColumnLayout::V24 | ColumnLayout::V25 => {
                // Every gap between multiples of the tick is one, unless a
                // step of more than 2^63 ns wrapped: such a block keeps ns.
                let tick = self.clock_tick;
                let exact = tick == 1
                    || self.vals[col::TS_TICKS as usize]
                        .iter()
                        .all(|&g| (g as i64) % (tick as i64) == 0);
                let tick = if exact { tick } else { 1 };
                self.gaps_less_kind_medians(col::TS_TICKS, tick);
                if tick > 1 {
                    varint::put(&mut self.cols[col::TS_UNIT as usize], tick);
                }
            }
        }
        let near_constant = self.layout >= ColumnLayout::V25;
        for (c, v) in self.cols.iter_mut().zip(&mut self.vals) {
            if !v.is_empty() {
                if near_constant {
                    pack_near_constant(v, c);
                } else {
                    pack(v, c);
                }
                v.clear();
            }
        }
        let mut out = Vec::new();
        for (id, c) in self.cols.iter_mut().enumerate() {
            if !c.is_empty() {
                out.push(ColumnRec {
                    id: id as u16,
                    bytes: std::mem::take(c),
                });
            }
        }
        self.count = 0;
        self.prev_ts = 0;
        self.prev_pid = 0;
        self.run_pid = 0;
        self.pid_run = 0;
        self.prev_alloc_buf = 0;
        self.prev_free_buf = 0;
        self.prev_device = [0; 3];
        self.prev_addr.clear();
        match self.layout {
            ColumnLayout::V20 => {}
            ColumnLayout::V22 => self.prev_size.clear(),
            ColumnLayout::V23 => {
                self.recent_sizes.clear();
                self.site_flags.clear();
            }
            ColumnLayout::V24 | ColumnLayout::V25 => {
                self.recent_sizes.clear();
                self.site_flags.clear();
                self.cb_predictor.clear();
                self.sites_by_name.clear();
                self.last_name = None;
                self.frees.clear();
                self.last_alloc_device = 0;
            }
        }
        self.alloc_ext.clear();
        out
    }

    /// 2.3: writes TS_BASE (each kind's median gap in the block) and turns
    /// the gaps of column `ts_col` into `zigzag(gap − median of the event's
    /// kind)`; 2.4: gaps and medians in units of `tick` (every timestamp is
    /// a multiple of it, so every gap is too, as a signed difference).
    fn gaps_less_kind_medians(&mut self, ts_col: u16, tick: u64) {
        let tags = &self.cols[col::TAG as usize];
        let gaps = &mut self.vals[ts_col as usize];
        if tick > 1 {
            for g in gaps.iter_mut() {
                *g = (*g as i64 / tick as i64) as u64;
            }
        }
        let bases = KindBases::medians(tags, gaps, &mut self.gap_scratch);
        for (g, &t) in gaps.iter_mut().zip(tags) {
            *g = zigzag(g.wrapping_sub(bases.base[t as usize]) as i64);
        }
        bases.write(&mut self.cols[col::TS_BASE as usize]);
    }

    /// Gives column buffers back after serialisation so their memory is reused.
    pub fn reclaim(&mut self, cols: Vec<ColumnRec>) {
        for mut c in cols {
            if let Some(slot) = self.cols.get_mut(c.id as usize) {
                if slot.capacity() < c.bytes.capacity() {
                    c.bytes.clear();
                    *slot = c.bytes;
                }
            }
        }
    }
}
