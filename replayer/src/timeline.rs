//! Memory over time, recorded during a replay by an [`Observer`]: resident
//! bytes per device and buffer type, downsampled to a bounded number of
//! buckets (each keeps its lowest and highest value, so peaks survive any
//! downsampling), plus what the exports need besides: op scopes with their
//! timestamps, the timestamps of chosen events, and the call sites resident
//! at one chosen event (the peak).

use crate::findings::{PerType, TYPES};
use crate::observe::{EngineView, Observer};
use crate::source::{Chunk, Item};
use ttalloc_model::{BufferType, DeviceId, EventKind, SiteId, StringId};

/// What to record.
#[derive(Clone, Debug, Default)]
pub struct TimelineOptions {
    /// Events in the trace (to size the buckets).
    pub events: u64,
    /// Most buckets per series.
    pub points: usize,
    /// Most op scopes kept (0: none).
    pub max_ops: usize,
    /// Event ordinals whose timestamps are wanted (any order).
    pub marks: Vec<u64>,
    /// After this event, keep the call sites resident in this device and
    /// buffer type slot.
    pub snapshot: Option<(u64, DeviceId, usize)>,
}

/// One bucket of a series: events `[ord, next bucket's ord)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// First event of the bucket.
    pub ord: u64,
    /// Timestamp (ns) of the first event of the bucket that touched the series.
    pub ts: u64,
    pub min: u64,
    pub max: u64,
}

/// Resident bytes of one buffer type on one device over time. Buckets in
/// which nothing changed are left out: the value holds from one point to
/// the next. The last point is the value at the end of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    pub device: DeviceId,
    pub buffer_type: BufferType,
    pub peak: u64,
    pub points: Vec<Point>,
}

/// An op scope (`OpBegin` .. `OpEnd`) of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSlice {
    pub pid: u32,
    pub name: StringId,
    pub begin_ts: u64,
    pub end_ts: u64,
    /// Nesting depth (0: top level).
    pub depth: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    pub events: u64,
    /// Events per bucket.
    pub bucket: u64,
    pub series: Vec<Series>,
    pub ops: Vec<OpSlice>,
    /// Op scopes not kept (beyond `max_ops`, or never closed).
    pub ops_dropped: u64,
    /// Timestamps of the requested events, sorted by ordinal.
    pub marks: Vec<(u64, u64)>,
    pub snapshot_sites: Vec<(SiteId, u64)>,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
}

impl Timeline {
    /// The timestamp of event `ord`: exact for a requested mark, else the
    /// nearest earlier one known (a bucket's or a mark's).
    pub fn ts_of(&self, ord: u64) -> u64 {
        if let Ok(i) = self.marks.binary_search_by_key(&ord, |m| m.0) {
            return self.marks[i].1;
        }
        let mut best = (0u64, self.first_ts.unwrap_or(0));
        let mut consider = |o: u64, ts: u64| {
            if o <= ord && o >= best.0 {
                best = (o, ts);
            }
        };
        for &(o, ts) in &self.marks {
            consider(o, ts);
        }
        for s in &self.series {
            for p in &s.points {
                consider(p.ord, p.ts);
            }
        }
        best.1
    }
}

/// A device's series, and its values at the last visit of them all.
struct Open {
    series: [Option<usize>; 4],
    /// The bucket of that visit (`u64::MAX`: none yet).
    bucket: u64,
    last: PerType,
}

/// The [`Observer`] that records a [`Timeline`].
pub struct TimelineRecorder {
    opts: TimelineOptions,
    t: Timeline,
    /// Per engine device (by first appearance): its series per slot.
    devices: Vec<(DeviceId, Open)>,
    /// Per series: the open bucket (index, min, max, ts) and the last value.
    open: Vec<(u64, u64, u64, u64, u64)>,
    marks: Vec<u64>,
    next_mark: usize,
    /// Timestamps of the current chunk, and of the event before it.
    chunk_first: u64,
    chunk_ts: Vec<u64>,
    prev_ts: u64,
    /// Open op scopes per process: (pid, name, begin ts).
    op_stack: Vec<(u32, StringId, u64)>,
    /// The highest peak so far, chosen as the report chooses it.
    best: Option<PeakSeen>,
    /// The bucket of the last event after which every device's series was
    /// visited (see `event`).
    visited_all: Option<u64>,
    /// The events of the last event's bucket, and its number.
    current_bucket: (std::ops::Range<u64>, u64),
    /// (event, time) of the cycles' bounds and of the highest peak seen,
    /// the events a report asks the times of afterwards.
    seen_ts: Vec<(u64, u64)>,
    best_ts: Option<(u64, u64)>,
}

/// A series' peak: the first event at which it reached its highest value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeakSeen {
    pub device: DeviceId,
    /// Buffer type slot, as in [`TYPES`].
    pub slot: usize,
    pub bytes: u64,
    pub event: u64,
}

impl PeakSeen {
    /// Whether `self` is chosen over `other` as the highest peak: more
    /// bytes; on a tie, the device first in the report's order (its id as
    /// text), then the buffer type first in [`TYPES`].
    fn beats(&self, other: &PeakSeen) -> bool {
        match self.bytes.cmp(&other.bytes) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                (self.device.to_string(), self.slot) < (other.device.to_string(), other.slot)
            }
        }
    }
}

impl TimelineRecorder {
    pub fn new(opts: TimelineOptions) -> Self {
        let points = opts.points.max(1) as u64;
        let bucket = opts.events.div_ceil(points).max(1);
        let mut marks = opts.marks.clone();
        marks.sort_unstable();
        marks.dedup();
        TimelineRecorder {
            t: Timeline {
                events: opts.events,
                bucket,
                ..Timeline::default()
            },
            opts,
            devices: Vec::new(),
            open: Vec::new(),
            marks,
            next_mark: 0,
            chunk_first: 0,
            chunk_ts: Vec::new(),
            prev_ts: 0,
            op_stack: Vec::new(),
            best: None,
            visited_all: None,
            current_bucket: (0..0, 0),
            seen_ts: Vec::new(),
            best_ts: None,
        }
    }

    /// The highest peak of any device and buffer type so far (the one the
    /// report names: [`crate::analysis::PeakPoint`]).
    pub fn best_peak(&self) -> Option<PeakSeen> {
        self.best
    }

    /// The bucket of event `ord`: a division only for an event outside the
    /// last one's (not a 64-bit division per event).
    fn bucket_of(&mut self, ord: u64) -> u64 {
        let (events, b) = &self.current_bucket;
        if events.contains(&ord) {
            return *b;
        }
        let b = ord / self.t.bucket;
        let start = b * self.t.bucket;
        self.current_bucket = (start..start.saturating_add(self.t.bucket), b);
        b
    }

    /// (event, time) of the events whose times a report asks for that
    /// this pass saw: the cycles' bounds and the highest peak, by event.
    pub fn take_seen_times(&mut self) -> Vec<(u64, u64)> {
        let mut seen = std::mem::take(&mut self.seen_ts);
        seen.extend(self.best_ts);
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    fn ts(&self, ord: u64) -> u64 {
        ord.checked_sub(self.chunk_first)
            .and_then(|i| self.chunk_ts.get(i as usize).copied())
            .unwrap_or(self.prev_ts)
    }

    /// Device `device`'s bytes after event `ord`; `hint`: where the device
    /// is likely to be in `devices` (the engine lists devices in the order
    /// they came, as this does).
    fn update_device(
        &mut self,
        at: (u64, u64, u64),
        device: DeviceId,
        bytes: &PerType,
        hint: usize,
    ) {
        // (event, its timestamp, its bucket)
        let (ord, ts, bucket) = at;
        let d = match self.devices.get(hint) {
            Some(&(id, _)) if id == device => hint,
            _ => match self.devices.iter().position(|d| d.0 == device) {
                Some(d) => d,
                None => {
                    self.devices.push((
                        device,
                        Open {
                            series: [None; 4],
                            bucket: u64::MAX,
                            last: PerType::default(),
                        },
                    ));
                    self.devices.len() - 1
                }
            },
        };
        // A value the last visit in this bucket saw is where it was left
        // (its series holds it, in this bucket; or it is 0 and has none):
        // nothing to do. An alloc or free changes one of the four.
        let (seen_bucket, seen) = (self.devices[d].1.bucket, self.devices[d].1.last);
        self.devices[d].1.bucket = bucket;
        self.devices[d].1.last = *bytes;
        for (slot, &value) in bytes.iter().enumerate() {
            if seen_bucket == bucket && seen[slot] == value {
                continue;
            }
            let s = match self.devices[d].1.series[slot] {
                Some(s) => s,
                None if value == 0 => continue,
                None => {
                    // Zero from the start of the trace until now.
                    let start = Point {
                        ord: 0,
                        ts: self.t.first_ts.unwrap_or(ts),
                        min: 0,
                        max: 0,
                    };
                    self.t.series.push(Series {
                        device,
                        buffer_type: TYPES[slot],
                        peak: 0,
                        points: if bucket > 0 { vec![start] } else { Vec::new() },
                    });
                    self.open.push((bucket, 0, 0, ts, 0));
                    self.devices[d].1.series[slot] = Some(self.open.len() - 1);
                    self.open.len() - 1
                }
            };
            let o = &mut self.open[s];
            // The same bucket and the value it holds last: nothing changes
            // (min <= last <= max, and the series' peak is at least last).
            // Most calls: every circular buffer event updates every device.
            if o.0 == bucket && o.4 == value {
                continue;
            }
            if o.0 != bucket {
                flush(&mut self.t.series[s], o, self.t.bucket);
                *o = (bucket, o.4, o.4, ts, o.4);
            }
            o.1 = o.1.min(value);
            o.2 = o.2.max(value);
            o.4 = value;
            let series = &mut self.t.series[s];
            if value > series.peak {
                series.peak = value;
                let seen = PeakSeen {
                    device,
                    slot,
                    bytes: value,
                    event: ord,
                };
                if self.best.is_none_or(|b| seen.beats(&b)) {
                    self.best = Some(seen);
                    self.best_ts = Some((ord, ts));
                }
            }
        }
    }

    fn op(&mut self, pid: u32, kind: &EventKind, ts: u64) {
        match kind {
            EventKind::OpBegin { name } => self.op_stack.push((pid, *name, ts)),
            EventKind::OpEnd => {
                let Some(i) = self.op_stack.iter().rposition(|o| o.0 == pid) else {
                    return;
                };
                let (pid, name, begin_ts) = self.op_stack.remove(i);
                if self.t.ops.len() < self.opts.max_ops {
                    let depth = self.op_stack.iter().filter(|o| o.0 == pid).count() as u32;
                    self.t.ops.push(OpSlice {
                        pid,
                        name,
                        begin_ts,
                        end_ts: ts,
                        depth,
                    });
                } else {
                    self.t.ops_dropped += 1;
                }
            }
            _ => {}
        }
    }

    pub fn finish(mut self) -> Timeline {
        for (s, o) in self.open.iter_mut().enumerate() {
            flush(&mut self.t.series[s], o, self.t.bucket);
            let end = self.t.events.max(o.0 * self.t.bucket + 1);
            self.t.series[s].points.push(Point {
                ord: end,
                ts: self.t.last_ts.unwrap_or(o.3),
                min: o.4,
                max: o.4,
            });
        }
        self.t.ops_dropped += self.op_stack.len() as u64;
        self.t.ops.sort_by_key(|o| (o.pid, o.begin_ts, o.depth));
        self.t
            .series
            .sort_by_key(|s| (s.device, TYPES.iter().position(|t| *t == s.buffer_type)));
        self.t
    }
}

/// Whether `item` is a circular-buffer event (from columns or not).
fn is_cb(item: &Item<'_>) -> bool {
    match item {
        Item::Cb(_) => true,
        Item::Event(e) => matches!(
            e.kind,
            EventKind::CbAlloc { .. } | EventKind::CbFreeAll { .. }
        ),
        _ => false,
    }
}

/// Closes a bucket: its point.
fn flush(series: &mut Series, o: &(u64, u64, u64, u64, u64), bucket: u64) {
    series.points.push(Point {
        ord: o.0 * bucket,
        ts: o.3,
        min: o.1,
        max: o.2,
    });
}

impl Observer for TimelineRecorder {
    fn cycle_bound(&mut self, ord: u64) {
        let ts = self.ts(ord);
        self.seen_ts.push((ord, ts));
    }

    fn chunk(&mut self, chunk: &Chunk<'_>) {
        if let Some(&last) = self.chunk_ts.last() {
            self.prev_ts = last;
        }
        self.chunk_first = chunk.first();
        self.chunk_ts.clear();
        match chunk {
            Chunk::Events { events, .. } => self.chunk_ts.extend(events.iter().map(|e| e.ts)),
            Chunk::Columns { columns, .. } => self.chunk_ts.extend(columns.timestamps()),
        }
    }

    fn event(&mut self, ord: u64, item: &Item<'_>, engine: &EngineView<'_, '_>) {
        let ts = self.ts(ord);
        if self.t.first_ts.is_none() {
            self.t.first_ts = Some(ts);
        }
        self.t.last_ts = Some(ts);
        while self.next_mark < self.marks.len() && self.marks[self.next_mark] <= ord {
            if self.marks[self.next_mark] == ord {
                self.t.marks.push((ord, ts));
            }
            self.next_mark += 1;
        }
        if let Some((at, device, slot)) = self.opts.snapshot {
            if at == ord {
                self.t.snapshot_sites = engine.resident_sites(device, slot);
            }
        }
        // Only the touched device changes on a buffer alloc or free.
        let touched = match item {
            Item::Alloc(a) => Some(a.device),
            Item::Free(x) => Some(x.device),
            Item::Cb(_) => None,
            Item::Event(e) => match &e.kind {
                EventKind::BufferAlloc { device, .. } | EventKind::BufferFree { device, .. } => {
                    Some(*device)
                }
                EventKind::OpBegin { .. } | EventKind::OpEnd | EventKind::Marker { .. } => {
                    self.op(e.pid.0, &e.kind, ts);
                    return;
                }
                _ => None,
            },
            Item::Light(e) => {
                self.op(e.pid.0, &e.kind, ts);
                return;
            }
        };
        let bucket = self.bucket_of(ord);
        let at = (ord, ts, bucket);
        match touched {
            // Only that device's series change: the engine lists each
            // device once.
            Some(touched) => {
                let found = engine
                    .resident()
                    .enumerate()
                    .find(|(_, (d, _))| *d == touched);
                if let Some((i, (device, bytes))) = found {
                    self.update_device(at, device, bytes, i);
                }
            }
            // A circular buffer changes no device's resident bytes: once
            // every series was visited in this bucket (each then holds its
            // device's value, and every alloc or free since visited its
            // own device's), visiting them again changes nothing. A fifth
            // of a trace's events; each visit walks every device's series.
            None if is_cb(item) && self.visited_all == Some(bucket) => {}
            None => {
                for (i, (device, bytes)) in engine.resident().enumerate() {
                    self.update_device(at, device, bytes, i);
                }
                self.visited_all = Some(bucket);
            }
        }
    }
}
