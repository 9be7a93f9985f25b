//! Decoding an event block into [`BlockColumns`]: every kind's columns are
//! decoded on their own in tight loops (allocs, frees, names and timestamps
//! do not depend on each other), then — only for callers that want `Event`
//! values — one pass over the kind column assembles them.
//! Every read is bounds-checked; malformed input is an error, never a panic.

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
}

impl BlockColumns {
    /// Number of events stored (skipped ones included).
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    fn clear(&mut self) {
        self.tags.clear();
        self.ts.clear();
        self.pid.clear();
        self.allocs.clear();
        self.frees.clear();
        self.names.clear();
        self.others.clear();
        self.skipped.clear();
        self.devices.clear();
        self.alloc_devices.clear();
        self.free_devices.clear();
        self.other_pos.clear();
        self.other_dev.clear();
    }

    /// Calls `f(ordinal, event)` for every event of a known kind, in order.
    pub fn for_each_event<F: FnMut(u64, Event)>(&self, mut f: F) {
        let (mut ka, mut kf, mut kn) = (0usize, 0usize, 0usize);
        let mut others = self.others.iter();
        for (pos, &tag) in self.tags.iter().enumerate() {
            let kind = match tag {
                4 => {
                    let a = &self.allocs[ka];
                    ka += 1;
                    EventKind::BufferAlloc {
                        device: a.device,
                        buffer: a.buffer,
                        buffer_type: a.buffer_type,
                        address: a.address,
                        size: a.size,
                        page_size: a.page_size,
                        layout: a.layout,
                        num_cores: a.num_cores,
                        site: a.site,
                    }
                }
                5 => {
                    let x = &self.frees[kf];
                    kf += 1;
                    EventKind::BufferFree {
                        device: x.device,
                        buffer: x.buffer,
                        site: x.site,
                    }
                }
                12 => {
                    kn += 1;
                    EventKind::OpBegin {
                        name: self.names[kn - 1],
                    }
                }
                14 => {
                    kn += 1;
                    EventKind::Marker {
                        label: self.names[kn - 1],
                    }
                }
                13 => EventKind::OpEnd,
                t if t >= FIRST_UNKNOWN_TAG => continue,
                _ => match others.next() {
                    Some((_, e)) => e.kind.clone(),
                    None => continue, // unreachable for a decoded block
                },
            };
            f(
                self.first_event + pos as u64,
                Event {
                    ts: self.ts[pos],
                    pid: Pid(self.pid[pos]),
                    kind,
                },
            );
        }
    }
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
        Err(format!(
            "site id {v} is not defined (only {} known)",
            limits.sites
        ))
    }
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

/// Decodes `block` into `out` (cleared first).
pub fn decode_columns(
    block: &ArchivedBlockRec,
    limits: RefLimits,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    out.clear();
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
    let ts_low = cols[col::TS as usize];
    if tags.len() != count || ts_low.len() != count {
        return Err(format!(
            "kind and timestamp columns hold {} and {} events, block says {count}",
            tags.len(),
            ts_low.len()
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
    // Timestamps: low byte per event + varint high part, prefix-summed.
    out.ts.reserve(count);
    let mut hi_c = Cursor::new(cols[col::TS_HIGH as usize]);
    let mut ts = 0u64;
    for &l in ts_low {
        let hi = hi_c.varint().map_err(overrun("ts"))?;
        if hi >> 56 != 0 {
            return Err("timestamp delta overflows 64 bits".into());
        }
        ts = ts.wrapping_add(hi << 8 | l as u64);
        out.ts.push(ts);
    }
    end(&hi_c, "ts")?;
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
    let mut c = Cursor::new(cols[col::DEVICE as usize]);
    let mut d = 0u32;
    out.devices.reserve(n_dev as usize);
    for _ in 0..n_dev {
        d = d.wrapping_add(c.zigzag().map_err(overrun("device"))? as u32);
        out.devices.push(d);
    }
    end(&c, "device")?;
    // Hand devices to allocs, frees and the other kinds; branch-free (the
    // kind sequence is unpredictable), writing one slack slot past each end.
    let n_alloc = kinds[EventTag::BufferAlloc as usize] as usize;
    let n_free = kinds[EventTag::BufferFree as usize] as usize;
    let n_other = count
        - n_alloc
        - n_free
        - (kinds[EventTag::OpBegin as usize]
            + kinds[EventTag::OpEnd as usize]
            + kinds[EventTag::Marker as usize]) as usize;
    out.devices.push(0);
    out.alloc_devices.resize(n_alloc + 1, 0);
    out.free_devices.resize(n_free + 1, 0);
    out.other_pos.resize(n_other + 1, 0);
    out.other_dev.resize(n_other + 1, 0);
    let (mut kd, mut ka, mut kf, mut ko) = (0usize, 0usize, 0usize, 0usize);
    for (pos, &t) in out.tags.iter().enumerate() {
        let d = out.devices[kd];
        out.alloc_devices[ka] = d;
        ka += (t == EventTag::BufferAlloc as u8) as usize;
        out.free_devices[kf] = d;
        kf += (t == EventTag::BufferFree as u8) as usize;
        out.other_pos[ko] = pos as u32;
        out.other_dev[ko] = d;
        ko += IS_OTHER[t as usize] as usize;
        kd += HAS_DEVICE[t as usize] as usize;
    }
    out.devices.pop();
    out.alloc_devices.truncate(n_alloc);
    out.free_devices.truncate(n_free);
    out.other_pos.truncate(n_other);
    out.other_dev.truncate(n_other);
    decode_allocs(&cols, &out.alloc_devices, limits, &mut out.allocs)?;
    decode_frees(&cols, limits, out)?;

    let n_names = (kinds[EventTag::OpBegin as usize] + kinds[EventTag::Marker as usize]) as usize;
    let mut c = Cursor::new(cols[col::NAME as usize]);
    out.names.reserve(n_names);
    for _ in 0..n_names {
        out.names
            .push(string_of(c.varint().map_err(overrun("name"))?, limits)?);
    }
    end(&c, "name")?;

    let n_fast = kinds[EventTag::BufferAlloc as usize]
        + kinds[EventTag::BufferFree as usize]
        + n_names as u32
        + kinds[EventTag::OpEnd as usize];
    if (n_fast as usize) < count {
        decode_others(&cols, limits, out)?;
    } else if !cols[col::MISC as usize].is_empty() || !cols[col::EXT as usize].is_empty() {
        return Err("a column holds more values than the block's events use".into());
    }
    Ok(())
}

fn decode_allocs(
    cols: &[&[u8]; col::COUNT],
    devices: &[u32],
    limits: RefLimits,
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
    // One field at a time: each loop keeps a single column cursor in registers.
    out.clear();
    out.reserve(n);
    for (&f, &d) in flags.iter().zip(devices) {
        let buffer_type = BufferType::from_u8(f & 7)
            .ok_or_else(|| format!("buffer type code {} is out of range", f & 7))?;
        out.push(AllocCol {
            device: DeviceId(d),
            buffer: BufferId(0),
            buffer_type,
            layout: Layout::from_u8((f >> 3) & 3).unwrap_or_default(),
            address: None,
            size: 0,
            page_size: None,
            num_cores: None,
            site: SiteId::UNKNOWN,
        });
    }

    let mut c = Cursor::new(cols[col::ALLOC_BUF as usize]);
    let mut buffer = 0u64;
    for a in out.iter_mut() {
        buffer = buffer.wrapping_add(c.zigzag().map_err(overrun("alloc buffer"))? as u64);
        a.buffer = BufferId(buffer);
    }
    end(&c, "alloc buffer")?;

    let mut c = Cursor::new(cols[col::ALLOC_SITE as usize]);
    for a in out.iter_mut() {
        a.site = site_of(c.varint_wide().map_err(overrun("alloc site"))?, limits)?;
    }
    end(&c, "alloc site")?;

    let mut c = Cursor::new(cols[col::PAGE as usize]);
    for (a, &f) in out.iter_mut().zip(flags) {
        if f & FLAG_PAGE != 0 {
            a.page_size = Some(c.varint().map_err(overrun("page size"))?);
        }
    }
    end(&c, "page size")?;

    let mut c = Cursor::new(cols[col::SIZE as usize]);
    let mut rem_c = Cursor::new(cols[col::SIZE_REM as usize]);
    for a in out.iter_mut() {
        let s = c.varint_wide().map_err(overrun("size"))?;
        a.size = match a.page_size {
            Some(p) if p > 0 => {
                let rem = rem_c.varint().map_err(overrun("size remainder"))?;
                s.checked_mul(p)
                    .and_then(|x| x.checked_add(rem))
                    .filter(|_| rem < p)
                    .ok_or_else(|| {
                        format!("size of {s} pages of {p} + {rem} is not a valid size")
                    })?
            }
            _ => s,
        };
    }
    end(&c, "size")?;
    end(&rem_c, "size remainder")?;

    let mut c = Cursor::new(cols[col::ADDR as usize]);
    let mut addr_hist = AddrHistory::default();
    for (a, &f) in out.iter_mut().zip(flags) {
        if f & FLAG_ADDR != 0 {
            let prev = addr_hist.slot(a.device.0, a.buffer_type as u8);
            *prev = prev.wrapping_add(c.zigzag_wide().map_err(overrun("address"))? as u64);
            a.address = Some(*prev);
        }
    }
    end(&c, "address")?;

    let mut c = Cursor::new(cols[col::CORES as usize]);
    for (a, &f) in out.iter_mut().zip(flags) {
        if f & FLAG_CORES != 0 {
            a.num_cores = Some(c.varint_u32().map_err(overrun("cores"))?);
        }
    }
    end(&c, "cores")
}

fn decode_frees(
    cols: &[&[u8]; col::COUNT],
    limits: RefLimits,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let mut buf_c = Cursor::new(cols[col::FREE_BUF as usize]);
    let mut site_c = Cursor::new(cols[col::FREE_SITE as usize]);
    out.frees.reserve(out.free_devices.len());
    for &device in &out.free_devices {
        // For now the distance back from the latest alloc; resolved below.
        let dist = buf_c.varint_wide().map_err(overrun("free buffer"))?;
        let site = site_of(site_c.varint().map_err(overrun("free site"))?, limits)?;
        out.frees.push(FreeCol {
            device: DeviceId(device),
            buffer: BufferId(dist),
            site,
        });
    }
    end(&buf_c, "free buffer")?;
    end(&site_c, "free site")?;
    // A free's buffer = (id of the latest alloc before it in the block) - distance.
    // Branch-free over the kinds, with a slack slot past the end of each list.
    let slack_free = FreeCol {
        device: DeviceId(0),
        buffer: BufferId(0),
        site: SiteId::UNKNOWN,
    };
    out.frees.push(slack_free);
    let mut alloc_ids: Vec<u64> = Vec::with_capacity(out.allocs.len() + 1);
    alloc_ids.extend(out.allocs.iter().map(|a| a.buffer.0));
    alloc_ids.push(0);
    let (mut ka, mut kf) = (0usize, 0usize);
    let mut latest = 0u64;
    for &t in &out.tags {
        let is_alloc = t == EventTag::BufferAlloc as u8;
        let is_free = t == EventTag::BufferFree as u8;
        latest = if is_alloc { alloc_ids[ka] } else { latest };
        ka += is_alloc as usize;
        let f = &mut out.frees[kf].buffer;
        f.0 = if is_free {
            latest.wrapping_sub(f.0)
        } else {
            f.0
        };
        kf += is_free as usize;
    }
    out.frees.pop();
    Ok(())
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
        let kind = match EventTag::from_u8(tag).expect("codes below FIRST_UNKNOWN_TAG are defined")
        {
            EventTag::BufferAlloc
            | EventTag::BufferFree
            | EventTag::OpBegin
            | EventTag::OpEnd
            | EventTag::Marker => continue,
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
            EventTag::CbAlloc => {
                let device = dev;
                let address = misc!();
                let size = misc!();
                let cores = match misc!() {
                    0 => None,
                    c => Some(
                        u32::try_from(c - 1).map_err(|_| "cb cores out of range".to_string())?,
                    ),
                };
                let g = misc_c.byte().map_err(overrun("misc"))?;
                if g > 1 {
                    return Err(format!("globally_allocated flag is {g}, not 0 or 1"));
                }
                let site = site_of(misc!(), limits)?;
                EventKind::CbAlloc {
                    device,
                    address,
                    size,
                    cores,
                    globally_allocated: g == 1,
                    site,
                }
            }
            EventTag::CbFreeAll => EventKind::CbFreeAll { device: dev },
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
                EventKind::TraceCapture {
                    device,
                    trace_id,
                    size: misc!(),
                }
            }
            EventTag::TraceRelease => EventKind::TraceRelease {
                device: dev,
                trace_id: TraceId(misc_c.varint_u32().map_err(overrun("misc"))?),
            },
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
                    mk(col::TS, n, fill),
                    mk(col::TS_HIGH, n, fill),
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
