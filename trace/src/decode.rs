//! Decoding an event block into [`BlockColumns`]: every packed column is
//! decoded whole in a few vector loops (`column_values`), one branch-free
//! walk over the kinds hands devices and buffer ids to allocs, frees and the
//! other kinds, then each kind is assembled in its own loop; only callers
//! that want `Event` values pay for a pass that builds them.
//! Column lengths and id limits are checked before the loops run (the one
//! unchecked loop, the walk, is bounded by the kind histogram); malformed
//! input is an error, never a panic.

use crate::codec::{col, AddrHistory, FIRST_UNKNOWN_TAG, FLAG_ADDR, FLAG_CORES, FLAG_PAGE};
use crate::records::ArchivedBlockRec;
use crate::varint::{unzigzag, Cursor, Overrun};
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, EventTag, Layout, Pid,
    ProgramId, SiteId, StringId, TraceId,
};

/// Id limits of the intern tables events may refer to.
#[derive(Clone, Copy, Debug)]
pub struct RefLimits {
    pub strings: u32,
    pub sites: u32,
}

/// Why a block did not decode (the caller adds block and offset).
pub type DecodeError = String;

fn overrun(what: &str) -> impl Fn(Overrun) -> DecodeError + '_ {
    move |_| format!("column {what} ends early or holds a malformed varint")
}

/// One `BufferAlloc` of a block.
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

/// One `BufferFree` of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeCol {
    pub device: DeviceId,
    pub buffer: BufferId,
    pub site: SiteId,
}

/// One block decoded into columns (struct of arrays): the fastest way to read
/// a trace when an analysis can work per kind.
///
/// Event `p` of the block (ordinal `first_event + p`) has kind code
/// `tags[p]`, timestamp `ts[p]` and pid `pid[p]`. Its payload is the next
/// unused entry of: `allocs` (BufferAlloc), `frees` (BufferFree), `names`
/// (OpBegin's name / Marker's label), nothing (OpEnd), or `others` (every
/// other known kind, stored whole with its position). Codes of kinds newer
/// than this reader (`>= EventTag::ALL.len()`) have no payload here and are
/// counted in `skipped`. [`BlockColumns::for_each_event`] does this walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockColumns {
    pub first_event: u64,
    pub tags: Vec<u8>,
    pub ts: Vec<u64>,
    pub pid: Vec<u32>,
    pub allocs: Vec<AllocCol>,
    pub frees: Vec<FreeCol>,
    pub names: Vec<StringId>,
    pub others: Vec<(u32, Event)>,
    /// Events of unknown kinds skipped: (kind code, count).
    pub skipped: Vec<(u8, u32)>,
    /// Scratch: the device of every event that has one, and of allocs / frees.
    devices: Vec<u32>,
    alloc_devices: Vec<u32>,
    free_devices: Vec<u32>,
    /// Scratch: position and device of every event of another kind.
    other_pos: Vec<u32>,
    other_dev: Vec<u32>,
    /// Scratch: whole columns of varints, decoded in bulk.
    vals: ColumnValues,
}

/// Reused buffers holding whole decoded varint columns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ColumnValues {
    device: Vec<u64>,
    alloc_buf: Vec<u64>,
    free_buf: Vec<u64>,
    alloc_site: Vec<u64>,
    free_site: Vec<u64>,
    page: Vec<u64>,
    size: Vec<u64>,
    size_rem: Vec<u64>,
    addr: Vec<u64>,
    cores: Vec<u64>,
    name: Vec<u64>,
    /// Resolved buffer ids of the block's frees.
    free_ids: Vec<u64>,
    /// Previous address per (device, buffer type) slot (see `AddrHistory`).
    addr_slots: Vec<u64>,
}

impl BlockColumns {
    /// Number of events stored (skipped ones included).
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.tags.clear();
        self.ts.clear();
        self.pid.clear();
        self.allocs.clear();
        self.frees.clear();
        self.names.clear();
        self.others.clear();
        self.skipped.clear();
        // The other scratch lists are resized, not cleared: every slot
        // they keep is overwritten (only growth is zeroed).
        self.devices.clear();
    }

    /// Calls `f(ordinal, event)` for every event of a known kind, in order.
    pub fn for_each_event<F: FnMut(u64, Event)>(&self, mut f: F) {
        let (mut ka, mut kf, mut kn) = (0usize, 0usize, 0usize);
        let mut others = self.others.iter();
        for (pos, (&tag, (&ts, &pid))) in self
            .tags
            .iter()
            .zip(self.ts.iter().zip(&self.pid))
            .enumerate()
        {
            let ordinal = self.first_event + pos as u64;
            let pid = Pid(pid);
            // Each arm builds its event where `f` takes it: a kind built
            // apart and then moved into the event is stored and reloaded at
            // different widths, which stalls store-to-load forwarding.
            match tag {
                4 => {
                    let a = &self.allocs[ka];
                    ka += 1;
                    f(
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::BufferAlloc {
                                device: a.device,
                                buffer: a.buffer,
                                buffer_type: a.buffer_type,
                                address: a.address,
                                size: a.size,
                                page_size: a.page_size,
                                layout: a.layout,
                                num_cores: a.num_cores,
                                per_bank_size: a.per_bank_size,
                                label: a.label,
                                site: a.site,
                            },
                        },
                    )
                }
                5 => {
                    let x = &self.frees[kf];
                    kf += 1;
                    f(
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::BufferFree {
                                device: x.device,
                                buffer: x.buffer,
                                site: x.site,
                            },
                        },
                    )
                }
                12 => {
                    kn += 1;
                    let name = self.names[kn - 1];
                    f(
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::OpBegin { name },
                        },
                    )
                }
                14 => {
                    kn += 1;
                    let label = self.names[kn - 1];
                    f(
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::Marker { label },
                        },
                    )
                }
                13 => f(
                    ordinal,
                    Event {
                        ts,
                        pid,
                        kind: EventKind::OpEnd,
                    },
                ),
                t if t >= FIRST_UNKNOWN_TAG => {}
                _ => {
                    if let Some((_, e)) = others.next() {
                        f(
                            ordinal,
                            Event {
                                ts,
                                pid,
                                kind: e.kind.clone(),
                            },
                        )
                    }
                }
            }
        }
    }

    /// The event at `cur` (skipping unknown kinds) and its ordinal; advances `cur`.
    #[inline]
    pub(crate) fn next_event(&self, cur: &mut EventCursor) -> Option<(u64, Event)> {
        loop {
            let pos = cur.pos;
            let &tag = self.tags.get(pos)?;
            cur.pos += 1;
            let ordinal = self.first_event + pos as u64;
            let (ts, pid) = (self.ts[pos], Pid(self.pid[pos]));
            // Each arm builds its event in place (see `for_each_event`).
            return Some(match tag {
                4 => {
                    let a = &self.allocs[cur.alloc];
                    cur.alloc += 1;
                    (
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::BufferAlloc {
                                device: a.device,
                                buffer: a.buffer,
                                buffer_type: a.buffer_type,
                                address: a.address,
                                size: a.size,
                                page_size: a.page_size,
                                layout: a.layout,
                                num_cores: a.num_cores,
                                per_bank_size: a.per_bank_size,
                                label: a.label,
                                site: a.site,
                            },
                        },
                    )
                }
                5 => {
                    let x = &self.frees[cur.free];
                    cur.free += 1;
                    (
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::BufferFree {
                                device: x.device,
                                buffer: x.buffer,
                                site: x.site,
                            },
                        },
                    )
                }
                12 => {
                    cur.name += 1;
                    let name = self.names[cur.name - 1];
                    (
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::OpBegin { name },
                        },
                    )
                }
                14 => {
                    cur.name += 1;
                    let label = self.names[cur.name - 1];
                    (
                        ordinal,
                        Event {
                            ts,
                            pid,
                            kind: EventKind::Marker { label },
                        },
                    )
                }
                13 => (
                    ordinal,
                    Event {
                        ts,
                        pid,
                        kind: EventKind::OpEnd,
                    },
                ),
                t if t >= FIRST_UNKNOWN_TAG => continue,
                _ => match self.others.get(cur.other) {
                    Some((_, e)) => {
                        cur.other += 1;
                        (
                            ordinal,
                            Event {
                                ts,
                                pid,
                                kind: e.kind.clone(),
                            },
                        )
                    }
                    None => continue, // unreachable for a decoded block
                },
            });
        }
    }
}

/// Where a walk over a [`BlockColumns`] is: the next event and the next
/// entry of each per-kind list.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EventCursor {
    pos: usize,
    alloc: usize,
    free: usize,
    name: usize,
    other: usize,
}

/// Whether events of a kind code carry a device (DEVICE column).
const HAS_DEVICE: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = EventTag::DeviceOpen as usize;
    while k <= EventTag::TraceRelease as usize {
        t[k] = true;
        k += 1;
    }
    t
};

/// Whether events of a kind code are decoded by `decode_others` (every kind
/// but alloc, free, op begin/end and marker; unknown kinds included).
const IS_OTHER: [bool; 256] = {
    let mut t = [true; 256];
    t[EventTag::BufferAlloc as usize] = false;
    t[EventTag::BufferFree as usize] = false;
    t[EventTag::OpBegin as usize] = false;
    t[EventTag::OpEnd as usize] = false;
    t[EventTag::Marker as usize] = false;
    t
};

fn site_of(v: u64, limits: RefLimits) -> Result<SiteId, DecodeError> {
    if v < limits.sites as u64 {
        Ok(SiteId(v as u32))
    } else {
        Err(undefined_site(v, limits))
    }
}

#[cold]
fn undefined_site(v: u64, limits: RefLimits) -> DecodeError {
    format!("site id {v} is not defined (only {} known)", limits.sites)
}

fn string_of(v: u64, limits: RefLimits) -> Result<StringId, DecodeError> {
    if v < limits.strings as u64 {
        Ok(StringId(v as u32))
    } else {
        Err(format!(
            "string id {v} is not defined (only {} known)",
            limits.strings
        ))
    }
}

fn end(c: &Cursor, what: &str) -> Result<(), DecodeError> {
    if c.is_at_end() {
        Ok(())
    } else {
        Err(format!("column {what} has bytes left after the last event"))
    }
}

/// Decodes packed column `bytes` into `out`; it must hold exactly `n` values:
/// a width byte `w` (0–8) and `w` byte planes of `n` bytes, or nothing when
/// `n` is 0. Each plane is one vectorisable pass.
fn column_values(
    bytes: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    // `out` is not cleared: `gather` overwrites every value, so only growth
    // is zeroed.
    if n == 0 {
        out.clear();
        return if bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("column {what} has bytes left after the last event"))
        };
    }
    let Some((&w, planes)) = bytes.split_first() else {
        return Err(format!("column {what} ends early"));
    };
    if w > 8 {
        return Err(format!("column {what} is {w} bytes wide (at most 8)"));
    }
    match planes.len().cmp(&(w as usize * n)) {
        std::cmp::Ordering::Equal => {}
        std::cmp::Ordering::Less => return Err(format!("column {what} ends early")),
        std::cmp::Ordering::Greater => {
            return Err(format!("column {what} has bytes left after the last event"))
        }
    }
    gather(w as usize, planes, n, out);
    Ok(())
}

/// Appends `n` values to `out`: value `i` = byte `i` of each of the `w`
/// planes (`planes` is `w * n` bytes), little-endian. With AVX2 when the CPU has it (same code, wider
/// vectors: this is the reader's hottest loop after zstd).
fn gather(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { gather_avx2(w, planes, n, out) };
        }
    }
    gather_any(w, planes, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gather_avx2(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    gather_any(w, planes, n, out)
}

#[inline(always)]
fn gather_any(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    match w {
        0 => {
            out.clear();
            out.resize(n, 0);
        }
        1 => gather_w::<1>(planes, n, out),
        2 => gather_w::<2>(planes, n, out),
        3 => gather_w::<3>(planes, n, out),
        4 => gather_w::<4>(planes, n, out),
        5 => gather_w::<5>(planes, n, out),
        6 => gather_w::<6>(planes, n, out),
        7 => gather_w::<7>(planes, n, out),
        _ => gather_w::<8>(planes, n, out),
    }
}

/// One pass for a fixed width: every output word is written once.
#[inline(always)]
fn gather_w<const W: usize>(planes: &[u8], n: usize, out: &mut Vec<u64>) {
    let p: [&[u8]; W] = std::array::from_fn(|j| &planes[j * n..(j + 1) * n]);
    out.resize(n, 0);
    for (i, o) in out.iter_mut().enumerate() {
        let mut v = 0u64;
        for (j, plane) in p.iter().enumerate() {
            v |= (plane[i] as u64) << (8 * j);
        }
        *o = v;
    }
}

/// Checks that every value is below `limit` (one reduction, no branch per value).
fn all_below(vals: &[u64], limit: u32, what: &str) -> Result<(), DecodeError> {
    let max = vals.iter().copied().fold(0u64, u64::max);
    if vals.is_empty() || max < limit as u64 {
        return Ok(());
    }
    Err(format!(
        "{what} id {max} is not defined (only {limit} known)"
    ))
}

/// Decodes `block` into `out` (cleared first).
pub fn decode_columns(
    block: &ArchivedBlockRec,
    limits: RefLimits,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    // Timestamps are overwritten whole below: keep the old ones so only
    // growth is zeroed.
    let ts = std::mem::take(&mut out.ts);
    out.clear();
    out.ts = ts;
    let mut cols: [&[u8]; col::COUNT] = [&[]; col::COUNT];
    for c in block.columns.iter() {
        let id = c.id.to_native() as usize;
        if id < col::COUNT {
            cols[id] = c.bytes.as_slice();
        }
    }
    let count = block.count.to_native() as usize;
    out.first_event = block.first_event.to_native();
    let tags = cols[col::TAG as usize];
    if tags.len() != count {
        return Err(format!(
            "kind column holds {} events, block says {count}",
            tags.len(),
        ));
    }
    out.tags.extend_from_slice(tags);
    // Kind histogram (four partial tables: no store-to-load stalls on runs).
    let mut part = [[0u32; 256]; 4];
    let mut quads = tags.chunks_exact(4);
    for q in &mut quads {
        for (h, &t) in part.iter_mut().zip(q) {
            h[t as usize] += 1;
        }
    }
    for &t in quads.remainder() {
        part[0][t as usize] += 1;
    }
    let mut kinds = [0u32; 256];
    for (k, slot) in kinds.iter_mut().enumerate() {
        *slot = part[0][k] + part[1][k] + part[2][k] + part[3][k];
    }
    let vals = &mut out.vals;
    // Timestamps: deltas, prefix-summed.
    column_values(cols[col::TS as usize], count, "ts", &mut out.ts)?;
    let mut ts = 0u64;
    for t in out.ts.iter_mut() {
        ts = ts.wrapping_add(*t);
        *t = ts;
    }
    // Pids: (delta, run length) pairs.
    out.pid.reserve(count);
    let mut c = Cursor::new(cols[col::PID as usize]);
    let mut pid = 0u32;
    while out.pid.len() < count {
        pid = pid.wrapping_add(c.zigzag().map_err(overrun("pid"))? as u32);
        let run = c.varint().map_err(overrun("pid"))?;
        if run == 0 || run > (count - out.pid.len()) as u64 {
            return Err(format!("pid run of {run} events does not fit the block"));
        }
        out.pid.resize(out.pid.len() + run as usize, pid);
    }
    end(&c, "pid")?;
    // Devices: one chain over every event that has a device (events of one op
    // share it, so deltas are mostly 0); then handed to allocs and frees.
    let n_dev: u32 = (EventTag::DeviceOpen as usize..=EventTag::TraceRelease as usize)
        .map(|k| kinds[k])
        .sum();
    column_values(
        cols[col::DEVICE as usize],
        n_dev as usize,
        "device",
        &mut vals.device,
    )?;
    out.devices.clear();
    out.devices.reserve(n_dev as usize + 1);
    let mut d = 0u32;
    out.devices.extend(vals.device.iter().map(|&v| {
        d = d.wrapping_add(unzigzag(v) as u32);
        d
    }));
    let n_alloc = kinds[EventTag::BufferAlloc as usize] as usize;
    let n_free = kinds[EventTag::BufferFree as usize] as usize;
    let n_names = (kinds[EventTag::OpBegin as usize] + kinds[EventTag::Marker as usize]) as usize;
    let n_other = count - n_alloc - n_free - n_names - kinds[EventTag::OpEnd as usize] as usize;
    // Alloc buffer ids (a zigzag delta chain) and free distances.
    column_values(
        cols[col::ALLOC_BUF as usize],
        n_alloc,
        "alloc buffer",
        &mut vals.alloc_buf,
    )?;
    let mut buffer = 0u64;
    for v in vals.alloc_buf.iter_mut() {
        buffer = buffer.wrapping_add(unzigzag(*v) as u64);
        *v = buffer;
    }
    column_values(
        cols[col::FREE_BUF as usize],
        n_free,
        "free buffer",
        &mut vals.free_buf,
    )?;
    for v in vals.free_buf.iter_mut() {
        *v = unzigzag(*v) as u64;
    }
    // One walk over the kinds hands devices to allocs, frees and the other
    // kinds and resolves a free's buffer (= id of the latest alloc before it
    // in the block − distance). Branch-free (the kind sequence is
    // unpredictable): every list gets a store per event, into a slack slot
    // past its end when the event is not of its kind.
    out.devices.push(0);
    vals.alloc_buf.push(0);
    vals.free_buf.push(0);
    out.alloc_devices.resize(n_alloc + 1, 0);
    out.free_devices.resize(n_free + 1, 0);
    vals.free_ids.resize(n_free + 1, 0);
    out.other_pos.resize(n_other + 1, 0);
    out.other_dev.resize(n_other + 1, 0);
    {
        let devices = &out.devices[..];
        let alloc_ids = &vals.alloc_buf[..];
        let dist = &vals.free_buf[..];
        let alloc_devices = &mut out.alloc_devices[..];
        let free_devices = &mut out.free_devices[..];
        let free_ids = &mut vals.free_ids[..];
        let other_pos = &mut out.other_pos[..];
        let other_dev = &mut out.other_dev[..];
        let (mut kd, mut ka, mut kf, mut ko) = (0usize, 0usize, 0usize, 0usize);
        let mut latest = 0u64;
        debug_assert!(devices.len() == n_dev as usize + 1 && alloc_ids.len() == n_alloc + 1);
        debug_assert!(dist.len() == n_free + 1 && free_ids.len() == n_free + 1);
        debug_assert!(alloc_devices.len() == n_alloc + 1 && free_devices.len() == n_free + 1);
        debug_assert!(other_pos.len() == n_other + 1 && other_dev.len() == n_other + 1);
        for (pos, &t) in out.tags.iter().enumerate() {
            // SAFETY: `kinds` is the histogram of `out.tags`, so before any
            // event each counter is at most the number of its kind in the
            // block: `kd <= n_dev`, `ka <= n_alloc`, `kf <= n_free`,
            // `ko <= n_other` (`n_dev` counts exactly the kinds `HAS_DEVICE`
            // marks, `n_other` exactly those `IS_OTHER` marks), and every
            // list indexed by a counter has one slot more than that count.
            unsafe {
                let d = *devices.get_unchecked(kd);
                let is_alloc = t == EventTag::BufferAlloc as u8;
                let is_free = t == EventTag::BufferFree as u8;
                *alloc_devices.get_unchecked_mut(ka) = d;
                // Branch-free select (an alloc replaces `latest`).
                let keep = (is_alloc as u64).wrapping_sub(1);
                latest = (latest & keep) | (*alloc_ids.get_unchecked(ka) & !keep);
                ka += is_alloc as usize;
                *free_devices.get_unchecked_mut(kf) = d;
                *free_ids.get_unchecked_mut(kf) = latest.wrapping_sub(*dist.get_unchecked(kf));
                kf += is_free as usize;
                *other_pos.get_unchecked_mut(ko) = pos as u32;
                *other_dev.get_unchecked_mut(ko) = d;
                ko += IS_OTHER[t as usize] as usize;
                kd += HAS_DEVICE[t as usize] as usize;
            }
        }
    }
    out.devices.pop();
    vals.alloc_buf.pop();
    vals.free_buf.pop();
    out.alloc_devices.truncate(n_alloc);
    out.free_devices.truncate(n_free);
    vals.free_ids.truncate(n_free);
    out.other_pos.truncate(n_other);
    out.other_dev.truncate(n_other);
    decode_allocs(&cols, &out.alloc_devices, limits, vals, &mut out.allocs)?;

    column_values(
        cols[col::FREE_SITE as usize],
        n_free,
        "free site",
        &mut vals.free_site,
    )?;
    out.frees.clear();
    out.frees.reserve(n_free);
    for ((&d, &b), &s) in out
        .free_devices
        .iter()
        .zip(&vals.free_ids)
        .zip(&vals.free_site)
    {
        if s >= limits.sites as u64 {
            return Err(undefined_site(s, limits));
        }
        out.frees.push(FreeCol {
            device: DeviceId(d),
            buffer: BufferId(b),
            site: SiteId(s as u32),
        });
    }

    column_values(cols[col::NAME as usize], n_names, "name", &mut vals.name)?;
    all_below(&vals.name, limits.strings, "string")?;
    out.names
        .extend(vals.name.iter().map(|&v| StringId(v as u32)));

    if n_other > 0 {
        decode_others(&cols, limits, out)?;
    } else if !cols[col::MISC as usize].is_empty() || !cols[col::EXT as usize].is_empty() {
        return Err("a column holds more values than the block's events use".into());
    }
    Ok(())
}

/// Buffer type by code (codes 5–7 are rejected before this table is used).
const BUFFER_TYPES: [BufferType; 8] = [
    BufferType::Dram,
    BufferType::L1,
    BufferType::SystemMemory,
    BufferType::L1Small,
    BufferType::Trace,
    BufferType::Dram,
    BufferType::Dram,
    BufferType::Dram,
];

const LAYOUTS: [Layout; 4] = [
    Layout::Interleaved,
    Layout::HeightSharded,
    Layout::WidthSharded,
    Layout::BlockSharded,
];

fn decode_allocs(
    cols: &[&[u8]; col::COUNT],
    devices: &[u32],
    limits: RefLimits,
    vals: &mut ColumnValues,
    out: &mut Vec<AllocCol>,
) -> Result<(), DecodeError> {
    let n = devices.len();
    let flags = cols[col::ALLOC_FLAGS as usize];
    if flags.len() != n {
        return Err(format!(
            "alloc flags hold {} allocs, the kind column {n}",
            flags.len()
        ));
    }
    // How many allocs carry each optional field, and the largest type code.
    let (mut n_addr, mut n_page, mut n_cores, mut max_bt) = (0usize, 0usize, 0usize, 0u8);
    for &f in flags {
        n_addr += (f & FLAG_ADDR != 0) as usize;
        n_page += (f & FLAG_PAGE != 0) as usize;
        n_cores += (f & FLAG_CORES != 0) as usize;
        max_bt = max_bt.max(f & 7);
    }
    if BufferType::from_u8(max_bt).is_none() {
        return Err(format!("buffer type code {max_bt} is out of range"));
    }
    column_values(
        cols[col::ALLOC_SITE as usize],
        n,
        "alloc site",
        &mut vals.alloc_site,
    )?;
    column_values(cols[col::SIZE as usize], n, "size", &mut vals.size)?;
    column_values(
        cols[col::PAGE as usize],
        n_page,
        "page size",
        &mut vals.page,
    )?;
    column_values(cols[col::ADDR as usize], n_addr, "address", &mut vals.addr)?;
    column_values(cols[col::CORES as usize], n_cores, "cores", &mut vals.cores)?;
    if vals.cores.iter().any(|&c| c > u32::MAX as u64) {
        return Err("column cores holds a value above 2^32 - 1".into());
    }
    // Every page size > 0 comes with a remainder.
    let n_rem = vals.page.iter().filter(|&&p| p > 0).count();
    column_values(
        cols[col::SIZE_REM as usize],
        n_rem,
        "size remainder",
        &mut vals.size_rem,
    )?;
    // Slack slots: optional fields are read for every alloc, used when present.
    vals.page.push(0);
    vals.addr.push(0);
    vals.cores.push(0);
    vals.addr_slots.clear();
    vals.addr_slots.resize(AddrHistory::SLOTS, 0);
    out.clear();
    out.reserve(n);
    let (mut kp, mut ka, mut kc, mut kr) = (0usize, 0usize, 0usize, 0usize);
    for (i, (&f, &d)) in flags.iter().zip(devices).enumerate() {
        let bt = f & 7;
        let has_page = f & FLAG_PAGE != 0;
        let has_addr = f & FLAG_ADDR != 0;
        let has_cores = f & FLAG_CORES != 0;
        let p = vals.page[kp];
        kp += has_page as usize;
        let s = vals.size[i];
        let size = if has_page && p > 0 {
            let rem = vals.size_rem[kr];
            kr += 1;
            match s.checked_mul(p).and_then(|x| x.checked_add(rem)) {
                Some(v) if rem < p => v,
                _ => {
                    return Err(format!(
                        "size of {s} pages of {p} + {rem} is not a valid size"
                    ))
                }
            }
        } else {
            s
        };
        let slot = &mut vals.addr_slots[AddrHistory::index(d, bt)];
        let addr = slot.wrapping_add(unzigzag(vals.addr[ka]) as u64);
        if has_addr {
            *slot = addr;
        }
        ka += has_addr as usize;
        let cores = vals.cores[kc] as u32;
        kc += has_cores as usize;
        let site = vals.alloc_site[i];
        if site >= limits.sites as u64 {
            return Err(undefined_site(site, limits));
        }
        out.push(AllocCol {
            device: DeviceId(d),
            buffer: BufferId(vals.alloc_buf[i]),
            buffer_type: BUFFER_TYPES[bt as usize],
            layout: LAYOUTS[((f >> 3) & 3) as usize],
            address: has_addr.then_some(addr),
            size,
            page_size: has_page.then_some(p),
            num_cores: has_cores.then_some(cores),
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId(site as u32),
        });
    }
    crate::ext::decode_alloc_ext(cols[col::ALLOC_EXT as usize], out, limits)
}

/// The rarer kinds: payload in MISC, device in DEVICE, unknown kinds in EXT.
fn decode_others(
    cols: &[&[u8]; col::COUNT],
    limits: RefLimits,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let mut misc_c = Cursor::new(cols[col::MISC as usize]);
    let mut ext_c = Cursor::new(cols[col::EXT as usize]);
    macro_rules! misc {
        () => {
            misc_c.varint().map_err(overrun("misc"))?
        };
    }
    out.others.reserve(out.other_pos.len());
    for k in 0..out.other_pos.len() {
        let pos = out.other_pos[k] as usize;
        let tag = out.tags[pos];
        let dev = DeviceId(out.other_dev[k]);
        if tag >= FIRST_UNKNOWN_TAG {
            let n = ext_c.varint().map_err(overrun("ext"))?;
            let n = usize::try_from(n).map_err(|_| "ext length overflows".to_string())?;
            ext_c.take(n).map_err(overrun("ext"))?;
            match out.skipped.iter_mut().find(|(k, _)| *k == tag) {
                Some((_, c)) => *c += 1,
                None => out.skipped.push((tag, 1)),
            }
            continue;
        }
        // The common other kinds first, each event built in place (see
        // `BlockColumns::for_each_event`).
        let (ts, pid) = (out.ts[pos], Pid(out.pid[pos]));
        if tag == EventTag::CbFreeAll as u8 {
            let kind = EventKind::CbFreeAll { device: dev };
            out.others.push((pos as u32, Event { ts, pid, kind }));
            continue;
        }
        if tag == EventTag::CbAlloc as u8 {
            let device = dev;
            let address = misc_c.varint_long().map_err(overrun("misc"))?;
            let size = misc_c.varint_long().map_err(overrun("misc"))?;
            let cores = match misc!() {
                0 => None,
                c => Some(u32::try_from(c - 1).map_err(|_| "cb cores out of range".to_string())?),
            };
            let g = misc_c.byte().map_err(overrun("misc"))?;
            if g > 1 {
                return Err(format!("globally_allocated flag is {g}, not 0 or 1"));
            }
            let site = site_of(misc!(), limits)?;
            out.others.push((
                pos as u32,
                Event {
                    ts,
                    pid,
                    kind: EventKind::CbAlloc {
                        device,
                        address,
                        size,
                        cores,
                        globally_allocated: g == 1,
                        site,
                    },
                },
            ));
            continue;
        }
        let kind = match EventTag::from_u8(tag).expect("codes below FIRST_UNKNOWN_TAG are defined")
        {
            EventTag::BufferAlloc
            | EventTag::BufferFree
            | EventTag::OpBegin
            | EventTag::OpEnd
            | EventTag::Marker
            | EventTag::CbAlloc
            | EventTag::CbFreeAll => continue, // handled above
            EventTag::ProcessStart => EventKind::ProcessStart {
                ppid: Pid(misc_c.varint_u32().map_err(overrun("misc"))?),
                argv: string_of(misc!(), limits)?,
            },
            EventTag::ProcessExit => {
                let v = misc!();
                let status = if v == 0 {
                    None
                } else {
                    let s = unzigzag(v - 1);
                    Some(i32::try_from(s).map_err(|_| format!("exit status {s} out of range"))?)
                };
                EventKind::ProcessExit { status }
            }
            EventTag::DeviceOpen => {
                let device = dev;
                let a = misc_c.byte().map_err(overrun("misc"))?;
                let arch =
                    Arch::from_u8(a).ok_or_else(|| format!("arch code {a} is out of range"))?;
                let n = misc!();
                let mut config = DeviceConfig::default();
                for _ in 0..n {
                    let klen =
                        usize::try_from(misc!()).map_err(|_| "config key too long".to_string())?;
                    let key = misc_c.take(klen).map_err(overrun("misc"))?;
                    let value = misc!();
                    let key = std::str::from_utf8(key)
                        .map_err(|_| "config key is not UTF-8".to_string())?;
                    // A key a newer writer added is dropped (DeviceConfig has no slot for it).
                    if DeviceConfig::KEYS.contains(&key) {
                        config
                            .set(key, &value.to_string())
                            .map_err(|e| format!("device config: {e}"))?;
                    }
                }
                EventKind::DeviceOpen {
                    device,
                    arch,
                    config: Box::new(config),
                }
            }
            EventTag::DeviceClose => EventKind::DeviceClose { device: dev },
            EventTag::ProgramLoad => {
                let device = dev;
                let program = ProgramId(misc!());
                let binary_size = misc!();
                let site = site_of(misc!(), limits)?;
                EventKind::ProgramLoad {
                    device,
                    program,
                    binary_size,
                    site,
                }
            }
            EventTag::ProgramUnload => EventKind::ProgramUnload {
                device: dev,
                program: ProgramId(misc!()),
            },
            EventTag::TraceCapture => {
                let device = dev;
                let trace_id = TraceId(misc_c.varint_u32().map_err(overrun("misc"))?);
                let size = misc!();
                let site = site_of(misc!(), limits)?;
                EventKind::TraceCapture {
                    device,
                    trace_id,
                    size,
                    site,
                }
            }
            EventTag::TraceRelease => EventKind::TraceRelease {
                device: dev,
                trace_id: TraceId(misc_c.varint_u32().map_err(overrun("misc"))?),
            },
            EventTag::AllocRefused => crate::ext::decode_refused(&mut ext_c, limits)?,
        };
        out.others.push((
            pos as u32,
            Event {
                ts: out.ts[pos],
                pid: Pid(out.pid[pos]),
                kind,
            },
        ));
    }
    end(&misc_c, "misc")?;
    end(&ext_c, "ext")
}

#[cfg(test)]
mod tests {
    //! The decoder must survive blocks whose checksums are right but whose
    //! contents are not (a writer bug, a checksum collision): errors, never
    //! panics. These tests bypass the checksums and feed it garbage.
    use super::*;
    use crate::codec::BlockEncoder;
    use crate::records::{BlockRec, ColumnRec};
    use proptest::prelude::*;
    use rancor::BoxedError;

    const LIMITS: RefLimits = RefLimits {
        strings: 50,
        sites: 50,
    };

    fn decode(rec: &BlockRec) -> Result<BlockColumns, DecodeError> {
        let bytes = rkyv::to_bytes::<BoxedError>(rec).unwrap();
        let archived =
            rkyv::access::<crate::records::ArchivedBlockRec, BoxedError>(&bytes).unwrap();
        let mut out = BlockColumns::default();
        decode_columns(archived, LIMITS, &mut out).map(|_| out)
    }

    fn valid_block() -> BlockRec {
        let mut enc = BlockEncoder::default();
        let mut ts = 1_000_000u64;
        for i in 0..200u64 {
            ts += 777 * (i % 5);
            let kind = match i % 7 {
                0 => EventKind::OpBegin { name: StringId(3) },
                1 | 2 => EventKind::BufferAlloc {
                    device: DeviceId((i % 3) as u32),
                    buffer: BufferId(i),
                    buffer_type: BufferType::L1,
                    address: Some(0x1000 + i * 64),
                    size: 4096 * (i % 9 + 1),
                    page_size: Some(2048),
                    layout: Layout::HeightSharded,
                    num_cores: Some(8),
                    per_bank_size: None,
                    label: StringId::EMPTY,
                    site: SiteId(7),
                },
                3 => EventKind::BufferFree {
                    device: DeviceId(((i - 2) % 3) as u32),
                    buffer: BufferId(i - 2),
                    site: SiteId(1),
                },
                4 => EventKind::CbAlloc {
                    device: DeviceId(1),
                    address: 0x4000,
                    size: 2048,
                    cores: None,
                    globally_allocated: true,
                    site: SiteId(2),
                },
                5 => EventKind::DeviceOpen {
                    device: DeviceId(2),
                    arch: Arch::Blackhole,
                    config: Box::new(DeviceConfig {
                        dram_banks: Some(8),
                        ..Default::default()
                    }),
                },
                _ => EventKind::OpEnd,
            };
            enc.push(&Event {
                ts,
                pid: Pid(5 + (i / 50) as u32),
                kind,
            });
        }
        let count = enc.len();
        BlockRec {
            first_event: 0,
            count,
            first_ts: 0,
            last_ts: 0,
            live: vec![],
            columns: enc.take_columns(),
        }
    }

    #[test]
    fn packed_columns_round_trip_at_every_width_and_reject_bad_lengths() {
        let mut out = Vec::new();
        for w in 0..=8usize {
            for n in [1usize, 2, 7, 33] {
                let vals: Vec<u64> = (0..n as u64)
                    .map(|i| match w {
                        0 => 0,
                        8 => u64::MAX - i,
                        _ => {
                            (1u64 << (8 * w - 1)) | ((i * 0x0101_0101_0101) & ((1 << (8 * w)) - 1))
                        }
                    })
                    .collect();
                let mut bytes = Vec::new();
                crate::codec::pack(&vals, &mut bytes);
                assert_eq!(bytes[0] as usize, w);
                assert_eq!(bytes.len(), 1 + w * n);
                column_values(&bytes, n, "t", &mut out).unwrap();
                assert_eq!(out, vals, "width {w}, {n} values");
                // One value more or fewer than the block says, or cut short.
                assert!(column_values(&bytes, n + 1, "t", &mut out).is_err() || w == 0);
                assert!(column_values(&bytes, n - 1, "t", &mut out).is_err() || (w == 0 && n > 1));
                assert!(column_values(&bytes[..bytes.len() - 1], n, "t", &mut out).is_err());
            }
        }
        assert!(column_values(&[9, 0, 0], 0, "t", &mut out).is_err());
        assert!(column_values(&[], 1, "t", &mut out).is_err());
        assert!(
            column_values(&[9; 10], 1, "t", &mut out).is_err(),
            "width above 8"
        );
        column_values(&[], 0, "t", &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_valid_block_decodes() {
        let cols = decode(&valid_block()).unwrap();
        assert_eq!(cols.len(), 200);
        let mut n = 0;
        cols.for_each_event(|_, _| n += 1);
        assert_eq!(n, 200);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        #[test]
        fn damaged_columns_never_panic(
            col in 0usize..20,
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
            count_delta in -2i64..3,
        ) {
            let mut rec = valid_block();
            let n = rec.columns.len();
            let c = &mut rec.columns[col % n].bytes;
            if !c.is_empty() {
                let i = pos.index(c.len());
                if cut { c.truncate(i) } else { c[i] = byte }
            }
            rec.count = (rec.count as i64 + count_delta).max(0) as u32;
            let _ = decode(&rec);
        }

        #[test]
        fn random_columns_never_panic(
            count in 0u32..64,
            cols in proptest::collection::vec((0u16..20, proptest::collection::vec(any::<u8>(), 0..80)), 0..20),
        ) {
            let rec = BlockRec {
                first_event: 0,
                count,
                first_ts: 0,
                last_ts: 0,
                live: vec![],
                columns: cols.into_iter().map(|(id, bytes)| ColumnRec { id, bytes }).collect(),
            };
            if let Ok(c) = decode(&rec) {
                c.for_each_event(|_, _| {});
            }
        }

        #[test]
        fn random_tags_with_plausible_columns_never_panic(
            tags in proptest::collection::vec(0u8..20, 1..64),
            fill in any::<u8>(),
        ) {
            let n = tags.len();
            let mk = |id: u16, len: usize, b: u8| ColumnRec { id, bytes: vec![b & 0x7f; len] };
            let rec = BlockRec {
                first_event: 0,
                count: n as u32,
                first_ts: 0,
                last_ts: 0,
                live: vec![],
                columns: vec![
                    ColumnRec { id: col::TAG, bytes: tags.clone() },
                    mk(col::TS, n + 1, 1),
                    ColumnRec { id: col::PID, bytes: vec![0, n as u8] },
                    mk(col::DEVICE, n, 0),
                    mk(col::ALLOC_FLAGS, tags.iter().filter(|&&t| t == 4).count(), fill & 0x1f),
                    mk(col::ALLOC_BUF, n, 2),
                    mk(col::SIZE, n, fill),
                    mk(col::ALLOC_SITE, n, 1),
                    mk(col::FREE_BUF, n, 1),
                    mk(col::FREE_SITE, n, 1),
                    mk(col::NAME, n, 1),
                    mk(col::MISC, 4 * n, fill),
                    mk(col::EXT, 2 * n, 0),
                ],
            };
            if let Ok(c) = decode(&rec) {
                c.for_each_event(|_, _| {});
            }
        }
    }
}
