//! [`BlockColumns`], one decoded block as a struct of arrays, and the walks
//! that turn it back into `Event`s in trace order.

use crate::codec::FIRST_UNKNOWN_TAG;
use ttalloc_model::{
    BufferId, BufferType, DeviceId, Event, EventKind, Layout, Pid, SiteId, StringId,
};

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
    pub(super) devices: Vec<u32>,
    pub(super) alloc_devices: Vec<u32>,
    pub(super) free_devices: Vec<u32>,
    /// Scratch: position and device of every event of another kind.
    pub(super) other_pos: Vec<u32>,
    pub(super) other_dev: Vec<u32>,
    /// Scratch: whole columns of varints, decoded in bulk.
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
    pub(super) name: Vec<u64>,
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
    /// Format 2.4's alloc sites, freed buffers and circular buffers.
    pub(super) sites_by_name: crate::site_by_name::SiteScratch,
    pub(super) free_by_device: crate::free_by_device::FreeColumnsScratch,
    pub(super) cb: crate::cb_coding::CbScratch,
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
            let (ts, pid) = (self.ts[pos], Pid(self.pid[pos]));
            // Each arm builds its event where it is returned: a kind built
            // apart and then moved into the event is stored and reloaded at
            // different widths, which stalls store-to-load forwarding.
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
