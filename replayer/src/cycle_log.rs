//! The per-cycle table, kept small: a replay can cut a trace into millions
//! of cycles (`--cycles op=NAME`, long pytest sessions), and each
//! [`CycleStats`] holds three per-device tables. Kept as they are, those
//! cost about 1.2 KB per cycle on 8 devices (95 MB for 74k op cycles of
//! the 10M-event synthetic trace). Here each cycle is appended as varints,
//! every table coded against the one before it: a cycle's live bytes at its
//! start are usually the previous cycle's at its end, and an op touches one
//! device, so most entries are a zero flag — a few dozen bytes per cycle.
//!
//! Reading is sequential ([`CycleLog::iter`] decodes as it goes); the rare
//! lookup by position ([`CycleLog::get`]) decodes from the start.

use crate::cycles::CycleSpan;
use crate::findings::{CycleStats, FirstLeft, PerType};
use std::collections::BTreeMap;
use ttalloc_model::{BufferId, BufferType, DeviceId, SiteId, StringId};

type Table = BTreeMap<DeviceId, PerType>;

/// Every cycle of a replay, in order, compactly.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CycleLog {
    bytes: Vec<u8>,
    len: usize,
    /// The encoder's baselines: the last cycle's tables.
    last: Baselines,
}

/// What each table of the next cycle is coded against.
#[derive(Clone, Default, PartialEq, Eq)]
struct Baselines {
    after: Table,
    peak: Table,
    end_event: u64,
    index: u32,
}

impl CycleLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a cycle (cycles come in order of their index).
    pub fn push(&mut self, c: CycleStats) {
        let out = &mut self.bytes;
        let b = &self.last;
        put_signed(out, c.index as i64 - b.index as i64);
        put_signed(out, c.span.start_event.wrapping_sub(b.end_event) as i64);
        put(out, c.span.end_event.wrapping_sub(c.span.start_event));
        put(out, c.left_behind_bytes);
        put(out, c.left_behind_buffers);
        put_types(out, &c.left_behind, &[0; 4]);
        match c.label {
            Some(l) => put(out, l.get() as u64 + 1),
            None => put(out, 0),
        }
        match &c.first_left {
            None => out.push(0),
            Some(f) => {
                out.push(1 + f.address.is_some() as u8);
                put(out, f.event.wrapping_sub(c.span.start_event));
                put(out, f.device.get() as u64);
                put(out, f.buffer.get());
                if let Some(a) = f.address {
                    put(out, a);
                }
                out.push(f.buffer_type as u8);
                put(out, f.size);
                put(out, f.site.get() as u64);
                put(out, f.label.get() as u64);
            }
        }
        put_table(out, &c.live_before, &b.after);
        put_table(out, &c.live_after, &c.live_before);
        put_table(out, &c.peak, &b.peak);
        self.last = Baselines {
            index: c.index,
            end_event: c.span.end_event,
            after: c.live_after,
            peak: c.peak,
        };
        self.len += 1;
    }

    /// The cycles in order, decoded one at a time.
    pub fn iter(&self) -> Cycles<'_> {
        Cycles {
            bytes: &self.bytes,
            pos: 0,
            left: self.len,
            base: Baselines::default(),
        }
    }

    /// The cycle at `position` (0-based): decodes the ones before it too,
    /// so walk with [`CycleLog::iter`] rather than call this in a loop.
    pub fn get(&self, position: usize) -> Option<CycleStats> {
        self.iter().nth(position)
    }

    /// Bytes held (for tests and benchmarks of the coding).
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
}

impl std::fmt::Debug for CycleLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<CycleStats> for CycleLog {
    fn from_iter<I: IntoIterator<Item = CycleStats>>(iter: I) -> Self {
        let mut log = CycleLog::new();
        for c in iter {
            log.push(c);
        }
        log
    }
}

impl<'a> IntoIterator for &'a CycleLog {
    type Item = CycleStats;
    type IntoIter = Cycles<'a>;
    fn into_iter(self) -> Cycles<'a> {
        self.iter()
    }
}

/// Decodes a [`CycleLog`] in order.
pub struct Cycles<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: usize,
    base: Baselines,
}

impl Iterator for Cycles<'_> {
    type Item = CycleStats;

    fn next(&mut self) -> Option<CycleStats> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The log only holds what `push` wrote, so every read succeeds.
        let r = &mut Reader {
            bytes: self.bytes,
            pos: self.pos,
        };
        let index = (self.base.index as i64 + r.signed()) as u32;
        let start_event = self.base.end_event.wrapping_add(r.signed() as u64);
        let end_event = start_event.wrapping_add(r.get());
        let left_behind_bytes = r.get();
        let left_behind_buffers = r.get();
        let left_behind = r.types(&[0; 4]);
        let label = r.get().checked_sub(1).map(|l| StringId::new(l as u32));
        let first_left = match r.byte() {
            0 => None,
            flag => {
                let event = start_event.wrapping_add(r.get());
                let device = DeviceId::new(r.get() as u32);
                let buffer = BufferId::new(r.get());
                let address = (flag == 2).then(|| r.get());
                let buffer_type = BufferType::from_u8(r.byte()).unwrap_or(BufferType::Dram);
                Some(FirstLeft {
                    event,
                    device,
                    buffer,
                    address,
                    buffer_type,
                    size: r.get(),
                    site: SiteId::new(r.get() as u32),
                    label: StringId::new(r.get() as u32),
                })
            }
        };
        let live_before = r.table(&self.base.after);
        let live_after = r.table(&live_before);
        let peak = r.table(&self.base.peak);
        self.pos = r.pos;
        self.base = Baselines {
            index,
            end_event,
            after: live_after.clone(),
            peak: peak.clone(),
        };
        Some(CycleStats {
            index,
            span: CycleSpan {
                start_event,
                end_event,
            },
            live_before,
            live_after,
            left_behind_bytes,
            left_behind_buffers,
            left_behind,
            first_left,
            label,
            peak,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Cycles<'_> {}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Four values against a baseline: a flag byte of which differ, then their differences.
fn put_types(out: &mut Vec<u8>, t: &PerType, base: &PerType) {
    let flags_at = out.len();
    out.push(0);
    for s in 0..4 {
        if t[s] != base[s] {
            out[flags_at] |= 1 << s;
            put_signed(out, t[s].wrapping_sub(base[s]) as i64);
        }
    }
}

/// A per-device table against a baseline table: its devices, then each
/// device's four values against the baseline's (zeros when it had none).
fn put_table(out: &mut Vec<u8>, t: &Table, base: &Table) {
    put(out, t.len() as u64);
    let mut prev = 0i64;
    for (d, v) in t {
        put_signed(out, d.get() as i64 - prev);
        prev = d.get() as i64;
        put_types(out, v, base.get(d).unwrap_or(&[0; 4]));
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn get(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= ((b & 0x7f) as u64).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }

    fn signed(&mut self) -> i64 {
        let v = self.get();
        (v >> 1) as i64 ^ -((v & 1) as i64)
    }

    fn types(&mut self, base: &PerType) -> PerType {
        let flags = self.byte();
        let mut t = *base;
        for (s, v) in t.iter_mut().enumerate() {
            if flags & (1 << s) != 0 {
                *v = v.wrapping_add(self.signed() as u64);
            }
        }
        t
    }

    fn table(&mut self, base: &Table) -> Table {
        let n = self.get();
        let mut t = Table::new();
        let mut prev = 0i64;
        for _ in 0..n {
            prev += self.signed();
            let d = DeviceId::new(prev as u32);
            let v = self.types(base.get(&d).unwrap_or(&[0; 4]));
            t.insert(d, v);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table() -> impl Strategy<Value = Table> {
        proptest::collection::btree_map(
            (0u32..6).prop_map(DeviceId::new),
            proptest::array::uniform4(prop_oneof![Just(0u64), 0u64..1 << 20, Just(u64::MAX)]),
            0..4,
        )
    }

    fn cycle() -> impl Strategy<Value = CycleStats> {
        let first_left = proptest::option::of(
            (
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
                proptest::option::of(any::<u64>()),
                0u8..5,
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
            )
                .prop_map(|(event, dev, buf, address, bt, size, site, label)| {
                    FirstLeft {
                        event,
                        device: DeviceId::new(dev),
                        buffer: BufferId::new(buf),
                        address,
                        buffer_type: BufferType::from_u8(bt).expect("0..5"),
                        size,
                        site: SiteId::new(site),
                        label: StringId::new(label),
                    }
                }),
        );
        (
            (any::<u32>(), any::<u64>(), any::<u64>()),
            (any::<u64>(), any::<u64>()),
            proptest::array::uniform4(any::<u64>()),
            proptest::option::of(any::<u32>()),
            first_left,
            (table(), table(), table()),
        )
            .prop_map(
                |((index, start, end), (bytes, buffers), left, label, first_left, (b, a, p))| {
                    CycleStats {
                        index,
                        span: CycleSpan {
                            start_event: start,
                            end_event: end,
                        },
                        live_before: b,
                        live_after: a,
                        left_behind_bytes: bytes,
                        left_behind_buffers: buffers,
                        left_behind: left,
                        first_left,
                        label: label.map(StringId::new),
                        peak: p,
                    }
                },
            )
    }

    proptest! {
        /// Whatever goes in comes out, in order, by walk and by position,
        /// extreme values included.
        #[test]
        fn every_cycle_reads_back(cycles in proptest::collection::vec(cycle(), 0..24)) {
            let log: CycleLog = cycles.iter().cloned().collect();
            prop_assert_eq!(log.len(), cycles.len());
            let back: Vec<CycleStats> = log.iter().collect();
            prop_assert_eq!(&back, &cycles);
            for (i, c) in cycles.iter().enumerate() {
                prop_assert_eq!(log.get(i), Some(c.clone()));
            }
            prop_assert_eq!(log.get(cycles.len()), None);
        }
    }

    /// The point of the log: op cycles on 8 devices where one device
    /// changes per cycle take a few dozen bytes each, not a kilobyte.
    #[test]
    fn a_cycle_that_touches_one_device_costs_a_few_dozen_bytes() {
        let mut live: Table = (0..8)
            .map(|d| (DeviceId::new(d), [1 << 30, 1 << 20, 0, 0]))
            .collect();
        let mut log = CycleLog::new();
        let n = 1000u32;
        for i in 1..=n {
            let before = live.clone();
            live.get_mut(&DeviceId::new(i % 8)).expect("8 devices")[0] += 4096;
            log.push(CycleStats {
                index: i,
                span: CycleSpan {
                    start_event: i as u64 * 100,
                    end_event: i as u64 * 100 + 99,
                },
                live_before: before,
                live_after: live.clone(),
                left_behind_bytes: 4096,
                left_behind_buffers: 1,
                left_behind: [4096, 0, 0, 0],
                first_left: None,
                label: None,
                peak: live.clone(),
            });
        }
        let per_cycle = log.encoded_len() as f64 / n as f64;
        // Three 8-device tables: 3 × (count + 8 × (id + flag byte)) = 51 B,
        // plus two changed values and the cycle's own fields.
        assert!(per_cycle < 80.0, "{per_cycle} B per cycle");
        assert_eq!(log.get(499).expect("500 cycles").live_after, {
            // After cycle 500, device d grew in cycles i ≡ d (mod 8).
            let mut t: Table = (0..8)
                .map(|d| (DeviceId::new(d), [1 << 30, 1 << 20, 0, 0]))
                .collect();
            for i in 1..=500u32 {
                t.get_mut(&DeviceId::new(i % 8)).expect("8 devices")[0] += 4096;
            }
            t
        });
    }
}
