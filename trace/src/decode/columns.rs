//! [`BlockColumns`], one decoded block as a struct of arrays, and the walks
//! that turn it back into `Event`s in trace order.

use super::buffer_columns::{AllocColumns, FreeColumns};
use crate::codec::FIRST_UNKNOWN_TAG;
use ttalloc_model::{Event, EventKind, Pid, StringId};

/// One block decoded into columns (struct of arrays): the fastest way to read
/// a trace when an analysis can work per kind.
///
/// Event `p` of the block (ordinal `first_event + p`) has kind code
/// `tags[p]`, timestamp [`ts_at(p)`](BlockColumns::ts_at) and pid
/// [`pid_at(p)`](BlockColumns::pid_at). Its payload is the next
/// unused entry of: `allocs` (BufferAlloc), `frees` (BufferFree), `names`
/// (OpBegin's name / Marker's label), nothing (OpEnd), `cbs` (CbAlloc,
/// CbFreeAll), or `others` (every other known kind, stored whole with its position). Codes of kinds newer
/// than this reader (`>= EventTag::ALL.len()`) have no payload here and are
/// counted in `skipped`. [`BlockColumns::for_each_event`] does this walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockColumns {
    pub first_event: u64,
    /// The clock tick the block's timestamps were written at, in ns (each
    /// is a multiple of it; 1 where the block keeps every digit, as blocks
    /// before format 2.4 do); 0 where its timestamps were not decoded
    /// ([`TraceReader::decode_columns_non_buffer`](crate::TraceReader::decode_columns_non_buffer)).
    pub clock_tick_ns: u64,
    pub tags: Vec<u8>,
    /// Every event's timestamp and pid (`ts_at`, `pid_at`, `timestamps`,
    /// `pid_runs`): kept in the form cheapest to write (`times.rs`).
    pub(crate) times: super::times::Times,
    pub(crate) pids: super::times::PidRuns,
    pub allocs: AllocColumns,
    pub frees: FreeColumns,
    pub names: Vec<StringId>,
    /// Circular buffers (`CbAlloc`, `CbFreeAll`), in their own columns.
    pub cbs: super::CbColumns,
    pub others: Vec<(u32, Event)>,
    /// Events of unknown kinds skipped: (kind code, count).
    pub skipped: Vec<(u8, u32)>,
    /// Set by the decoder when no entry of `others` owns heap memory (no
    /// DeviceOpen: its config is boxed), so `clear` need not visit them.
    pub(super) others_own_nothing: bool,
}

impl BlockColumns {
    /// Number of events stored (skipped ones included).
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Bytes of heap the block's arrays hold (their capacity, not only
    /// what the block uses; boxed device configs of `others` not counted):
    /// what a reader keeping this buffer keeps resident once it was
    /// written. For benchmarks and tests.
    #[doc(hidden)]
    pub fn heap_bytes(&self) -> usize {
        fn b<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        let a = &self.allocs;
        let f = &self.frees;
        let c = &self.cbs;
        [
            b(&self.tags),
            self.times.heap_bytes(),
            self.pids.heap_bytes(),
            b(&a.device),
            b(&a.buffer),
            b(&a.flags),
            b(&a.size),
            b(&a.address),
            b(&a.page_size),
            b(&a.num_cores),
            b(&a.site),
            b(&a.ext),
            b(&f.device),
            b(&f.buffer),
            b(&f.site),
            b(&self.names),
            b(&c.rows),
            b(&c.flags),
            b(&self.others),
            b(&self.skipped),
        ]
        .iter()
        .sum()
    }

    /// The timestamp of event `pos` (ns; 0 past the block's end, and for
    /// every event of a block whose timestamps were not decoded:
    /// [`TraceReader::decode_columns_non_buffer`](crate::TraceReader::decode_columns_non_buffer)).
    pub fn ts_at(&self, pos: usize) -> u64 {
        self.times.at(pos)
    }

    /// Whether every event has its time (false where the block was
    /// decoded without: [`TraceReader::decode_columns_untimed`](crate::TraceReader::decode_columns_untimed)).
    pub fn has_times(&self) -> bool {
        self.times.len() == self.tags.len()
    }

    /// The pid of event `pos` (`Pid(0)` past the block's end, and where
    /// pids were not decoded, as for [`BlockColumns::ts_at`]).
    #[inline]
    pub fn pid_at(&self, pos: usize) -> Pid {
        Pid(self.pids.at(pos))
    }

    /// Every event's timestamp, in order (none where they were not
    /// decoded): one pass that adds each event's gap, for readers of every
    /// event's time ([`BlockColumns::ts_at`] sums up to a few gaps per call).
    pub fn timestamps(&self) -> impl Iterator<Item = u64> + '_ {
        self.times.iter()
    }

    /// Every event's pid, in order (none where pids were not decoded).
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.pids
            .runs()
            .flat_map(|(pid, n)| std::iter::repeat_n(pid, n))
    }

    /// The pids of the block's events as runs, in order: `(pid, events)`,
    /// neighbours with different pids (none where pids were not decoded).
    pub fn pid_runs(&self) -> impl Iterator<Item = (Pid, usize)> + '_ {
        self.pids.runs()
    }

    /// The pid of every event, if one process wrote the whole block (nearly
    /// always): `None` when several did, or pids were not decoded.
    pub fn one_pid(&self) -> Option<Pid> {
        let whole = self.pids.len() == self.tags.len();
        self.pids.one().filter(|_| whole).map(Pid)
    }

    /// Appends one event's kind code, timestamp and pid (tests and
    /// hand-built blocks; its payload goes to its kind's columns).
    pub fn push_event_head(&mut self, tag: u8, ts: u64, pid: Pid) {
        self.times.push(ts);
        self.tags.push(tag);
        self.pids.push(pid.0, 1);
    }

    /// The circular-buffer event `i` of the block (`cbs` entry `i`) with
    /// its position.
    pub fn cb_event(&self, i: usize) -> Option<(u32, Event)> {
        let cb = self.cbs.get(i)?;
        let p = cb.pos as usize;
        Some((
            cb.pos,
            Event {
                ts: self.ts_at(p),
                pid: self.pid_at(p),
                kind: cb.kind(),
            },
        ))
    }

    pub(crate) fn clear(&mut self) {
        self.clock_tick_ns = 0;
        self.tags.clear();
        self.times.clear();
        self.pids.clear();
        self.allocs.clear();
        self.frees.n = 0;
        self.names.clear();
        self.cbs.clear();
        if self.others_own_nothing {
            // SAFETY: 0 is within capacity, and the entries dropped from
            // view own nothing (`others_own_nothing`; were it wrong, a
            // config would leak, nothing worse).
            unsafe { self.others.set_len(0) };
        } else {
            self.others.clear();
        }
        self.others_own_nothing = false;
        self.skipped.clear();
    }

    /// Calls `f(ordinal, event)` for every event of a known kind, in order.
    pub fn for_each_event<F: FnMut(u64, Event)>(&self, mut f: F) {
        let mut cur = EventCursor::default();
        while let Some((ordinal, event)) = self.next_event(&mut cur) {
            f(ordinal, event);
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
            let ts = self.times.next(pos, cur.ts);
            cur.ts = ts;
            let pid = self.pid_at(pos);
            // Each arm builds its event where it is returned: a kind built
            // apart and then moved into the event is stored and reloaded at
            // different widths, which stalls store-to-load forwarding.
            return Some(match tag {
                4 => {
                    let a = self.allocs.get(cur.alloc)?;
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
                    let x = self.frees.get(cur.free)?;
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
                CB_ALLOC | CB_FREE_ALL => match self.cbs.get(cur.cb) {
                    Some(cb) => {
                        cur.cb += 1;
                        (
                            ordinal,
                            Event {
                                ts,
                                pid,
                                kind: cb.kind(),
                            },
                        )
                    }
                    None => continue, // unreachable for a decoded block
                },
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
    /// The time of event `pos - 1`.
    ts: u64,
    alloc: usize,
    free: usize,
    name: usize,
    cb: usize,
    other: usize,
}

use ttalloc_model::tag_code::{CB_ALLOC, CB_FREE_ALL};
