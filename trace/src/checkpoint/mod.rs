//! Allocator-state checkpoints (format 2.2, FORMAT.md §4.5): every few
//! blocks the writer records the objects the replay model would hold — live
//! buffers, circular buffers, program binaries and traces, each as the event
//! that made it — and the open devices with their config, so a replay can
//! restart from there instead of from the first event. An index record just
//! before the footer says where they are.
//!
//! Readers validate every checkpoint against its index entry and the intern
//! tables; a damaged one is an error the caller reports before replaying
//! from an earlier checkpoint or from the start (never a panic, never
//! trusted). Traces of format 2.0 and 2.1, and unfinished traces, have none.

mod records;
mod tracker;

pub(crate) use records::{CheckpointEntryRec, CheckpointIndexRec};
pub(crate) use tracker::CheckpointTracker;

use crate::frame::{open_record, FrameDecompressor, RecordKind};
use crate::records::FrameLocRec;
use crate::{TraceReader, FORMAT_MAJOR};
use rancor::BoxedError;
use records::*;
use rkyv::util::AlignedVec;
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, InternTables, Layout,
    Pid, ProgramId, SiteId, StringId, TraceId,
};

/// Where one checkpoint is (from the index record; nothing decoded yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The block it follows.
    pub after_block: usize,
    /// Ordinal of the first event a replay from it starts with.
    pub next_event: u64,
    /// Live objects it holds.
    pub objects: u32,
    frame: FrameLocRec,
}

/// The allocator state after `next_event - 1`: replaying `devices`, then
/// `objects` (each with its original ordinal, in order), then the events
/// from `next_event` on, leaves the model as a replay from the start does.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub after_block: usize,
    pub next_event: u64,
    /// The DeviceOpen of every device open, by device id.
    pub devices: Vec<(u64, Event)>,
    /// The BufferAlloc, CbAlloc, ProgramLoad or TraceCapture of every object
    /// still held, by ordinal.
    pub objects: Vec<(u64, Event)>,
}

/// The checkpoint index of a finished trace whose frame before the footer
/// is at `loc`; `Ok(empty)` when that frame is not an index (format 2.0/2.1).
pub(crate) fn read_index(
    data: &[u8],
    loc: FrameLocRec,
    blocks: &[crate::BlockInfo],
) -> Result<Vec<CheckpointInfo>, String> {
    let mut dctx = FrameDecompressor::default();
    let mut buf = AlignedVec::<16>::new();
    let at = loc.offset;
    dctx.decompress(frame_bytes(data, loc)?, &mut buf)
        .map_err(|e| format!("checkpoint index at byte {at}: {e}"))?;
    let rec = open_record(&buf).map_err(|e| format!("checkpoint index at byte {at}: {e}"))?;
    if rec.kind != RecordKind::CheckpointIndex as u32 {
        return Ok(Vec::new());
    }
    if rec.major != FORMAT_MAJOR {
        return Err(format!(
            "checkpoint index at byte {at} is a record of format {}.{}",
            rec.major, rec.minor
        ));
    }
    let index = rkyv::access::<ArchivedCheckpointIndexRec, BoxedError>(rec.payload)
        .map_err(|e| format!("checkpoint index at byte {at}: {e}"))?;
    let mut out = Vec::with_capacity(index.entries.len());
    let mut prev_next = 0u64;
    for (i, e) in index.entries.iter().enumerate() {
        let after_block = e.after_block.to_native() as usize;
        let next_event = e.next_event.to_native();
        let frame = FrameLocRec {
            offset: e.frame.offset.to_native(),
            len: e.frame.len.to_native(),
        };
        let bad = |why: String| format!("checkpoint index at byte {at}, entry {i}: {why}");
        let block = blocks
            .get(after_block)
            .ok_or_else(|| bad(format!("block {after_block} does not exist")))?;
        if next_event != block.first_event + block.count as u64 {
            return Err(bad(format!(
                "says event {next_event} follows block {after_block}, which ends before event {}",
                block.first_event + block.count as u64
            )));
        }
        if next_event <= prev_next {
            return Err(bad("entries are not in event order".into()));
        }
        if frame
            .offset
            .checked_add(frame.len)
            .is_none_or(|end| end > at)
        {
            return Err(bad(format!(
                "frame at byte {} is not before the index",
                frame.offset
            )));
        }
        prev_next = next_event;
        out.push(CheckpointInfo {
            after_block,
            next_event,
            objects: e.objects.to_native(),
            frame,
        });
    }
    Ok(out)
}

fn frame_bytes(data: &[u8], loc: FrameLocRec) -> Result<&[u8], String> {
    loc.offset
        .checked_add(loc.len)
        .filter(|&end| end <= data.len() as u64)
        .map(|end| &data[loc.offset as usize..end as usize])
        .ok_or_else(|| format!("frame at byte {} is beyond the end of the file", loc.offset))
}

impl TraceReader {
    /// The checkpoints of this trace, in event order (none for format 2.0
    /// and 2.1 traces, unfinished traces, or a damaged index — see
    /// [`TraceReader::checkpoint_index_error`]). Read on first use.
    pub fn checkpoints(&self) -> &[CheckpointInfo] {
        &self.checkpoint_index().0
    }

    /// Why the checkpoint index could not be read, if it could not.
    pub fn checkpoint_index_error(&self) -> Option<&str> {
        self.checkpoint_index().1.as_deref()
    }

    /// The latest checkpoint a replay that must see event `ordinal` can
    /// start from (`next_event <= ordinal`).
    pub fn checkpoint_before(&self, ordinal: u64) -> Option<usize> {
        let cps = self.checkpoints();
        cps.partition_point(|c| c.next_event <= ordinal)
            .checked_sub(1)
    }

    /// Decodes and validates checkpoint `i` of [`TraceReader::checkpoints`].
    /// The error names the checkpoint and its frame's byte offset.
    pub fn checkpoint(&self, i: usize) -> Result<Checkpoint, String> {
        let info = self
            .checkpoints()
            .get(i)
            .ok_or_else(|| format!("there is no checkpoint {i}"))?;
        let at = info.frame.offset;
        let bad = |why: String| format!("checkpoint {i} at byte {at}: {why}");
        let mut dctx = FrameDecompressor::default();
        let mut buf = AlignedVec::<16>::new();
        dctx.decompress(frame_bytes(self.data(), info.frame).map_err(bad)?, &mut buf)
            .map_err(bad)?;
        let rec = open_record(&buf).map_err(bad)?;
        if rec.kind != RecordKind::Checkpoint as u32 || rec.major != FORMAT_MAJOR {
            return Err(bad(format!(
                "frame holds a record of kind {} of format {}.{}, not a checkpoint",
                rec.kind, rec.major, rec.minor
            )));
        }
        let c = rkyv::access::<ArchivedCheckpointRec, BoxedError>(rec.payload)
            .map_err(|e| bad(e.to_string()))?;
        decode(c, info, self.interner()).map_err(bad)
    }
}

fn decode(
    c: &ArchivedCheckpointRec,
    info: &CheckpointInfo,
    interner: &InternTables,
) -> Result<Checkpoint, String> {
    let after_block = c.after_block.to_native() as usize;
    let next_event = c.next_event.to_native();
    if after_block != info.after_block || next_event != info.next_event {
        return Err(format!(
            "it says block {after_block} / event {next_event}, the index says block {} / event {}",
            info.after_block, info.next_event
        ));
    }
    if c.objects.len() != info.objects as usize {
        return Err(format!(
            "it holds {} objects, the index says {}",
            c.objects.len(),
            info.objects
        ));
    }
    let mut devices = Vec::with_capacity(c.devices.len());
    let mut prev_device = None;
    for d in c.devices.iter() {
        let device = d.device.to_native();
        if prev_device.is_some_and(|p| p >= device) {
            return Err("devices are not in id order".into());
        }
        prev_device = Some(device);
        let event = d.event.to_native();
        if event >= next_event {
            return Err(format!(
                "device {device} opened at event {event}, after the checkpoint"
            ));
        }
        let arch = Arch::from_u8(d.arch)
            .ok_or_else(|| format!("device {device}: arch code {} is out of range", d.arch))?;
        let mut config = DeviceConfig::default();
        for kv in d.config.iter() {
            // Keys of a later version are ignored, as in a DeviceOpen (§5.3).
            if DeviceConfig::KEYS.contains(&kv.key.as_str()) {
                config
                    .set(&kv.key, &kv.value.to_native().to_string())
                    .map_err(|e| format!("device {device}: {e}"))?;
            }
        }
        devices.push((
            event,
            Event {
                ts: d.ts.to_native(),
                pid: Pid(d.pid.to_native()),
                kind: EventKind::DeviceOpen {
                    device: DeviceId(device),
                    arch,
                    config: Box::new(config),
                },
            },
        ));
    }
    let mut objects = Vec::with_capacity(c.objects.len());
    let mut prev_event = None;
    for (n, o) in c.objects.iter().enumerate() {
        let event = o.event.to_native();
        let bad = |why: String| format!("object {n} (event {event}): {why}");
        if event >= next_event || prev_event.is_some_and(|p| p >= event) {
            return Err(bad("not in event order before the checkpoint".into()));
        }
        prev_event = Some(event);
        let kind = object_kind(o, interner).map_err(bad)?;
        objects.push((
            event,
            Event {
                ts: o.ts.to_native(),
                pid: Pid(o.pid.to_native()),
                kind,
            },
        ));
    }
    Ok(Checkpoint {
        after_block,
        next_event,
        devices,
        objects,
    })
}

fn object_kind(o: &ArchivedLiveObjectRec, interner: &InternTables) -> Result<EventKind, String> {
    let flags = o.flags;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(format!("flags {flags:#x} has unknown bits"));
    }
    let site = SiteId(o.site.to_native());
    interner
        .check_site(site)
        .map_err(|_| format!("site {site} is not defined"))?;
    let device = DeviceId(o.device.to_native());
    let opt = |bit: u8, v: u64| (flags & bit != 0).then_some(v);
    Ok(match o.tag {
        4 => {
            let label = StringId(o.label.to_native());
            interner
                .check_string(label)
                .map_err(|_| format!("label string {label} is not defined"))?;
            let buffer_type = BufferType::from_u8(o.buffer_type)
                .ok_or_else(|| format!("buffer type code {} is out of range", o.buffer_type))?;
            let layout = Layout::from_u8(o.layout)
                .ok_or_else(|| format!("layout code {} is out of range", o.layout))?;
            EventKind::BufferAlloc {
                device,
                buffer: BufferId(o.id.to_native()),
                buffer_type,
                address: opt(HAS_ADDRESS, o.address.to_native()),
                size: o.size.to_native(),
                page_size: opt(HAS_PAGE_SIZE, o.page_size.to_native()),
                layout,
                num_cores: (flags & HAS_CORES != 0).then_some(o.cores.to_native()),
                per_bank_size: opt(HAS_PER_BANK, o.per_bank_size.to_native()),
                label,
                site,
            }
        }
        6 => EventKind::CbAlloc {
            device,
            address: o.address.to_native(),
            size: o.size.to_native(),
            cores: (flags & HAS_CORES != 0).then_some(o.cores.to_native()),
            globally_allocated: flags & GLOBALLY_ALLOCATED != 0,
            site,
        },
        8 => EventKind::ProgramLoad {
            device,
            program: ProgramId(o.id.to_native()),
            binary_size: o.size.to_native(),
            site,
        },
        10 => EventKind::TraceCapture {
            device,
            trace_id: TraceId(
                u32::try_from(o.id.to_native())
                    .map_err(|_| format!("trace id {} is out of range", o.id))?,
            ),
            size: o.size.to_native(),
            site,
        },
        tag => return Err(format!("event kind {tag} does not make an object")),
    })
}

/// Serialises one checkpoint record (for the writer).
pub(crate) fn to_bytes(rec: &CheckpointRec) -> Result<AlignedVec, String> {
    rkyv::to_bytes::<BoxedError>(rec).map_err(|e| e.to_string())
}

/// Serialises the index record (for the writer).
pub(crate) fn index_to_bytes(rec: &CheckpointIndexRec) -> Result<AlignedVec, String> {
    rkyv::to_bytes::<BoxedError>(rec).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

/// Checkpoints of events held in memory, one after every `every` events
/// (`every > 0`), as the writer would record them: for replays of
/// in-memory traces (`minimize`). Site and label ids are checked against
/// `interner` as when read from a file.
pub fn checkpoints_of(
    events: &[Event],
    every: usize,
    interner: &InternTables,
) -> Result<Vec<Checkpoint>, String> {
    let every = every.max(1);
    let mut state = CheckpointTracker::default();
    let mut out = Vec::new();
    for (ord, e) in events.iter().enumerate() {
        state.apply(ord as u64, e.ts, e);
        let next = ord + 1;
        if next % every == 0 && next < events.len() {
            let after_block = (next / every - 1) as u32;
            let rec = state.snapshot(after_block, next as u64);
            let bytes = to_bytes(&rec)?;
            let archived = rkyv::access::<ArchivedCheckpointRec, BoxedError>(&bytes)
                .map_err(|e| e.to_string())?;
            let info = CheckpointInfo {
                after_block: after_block as usize,
                next_event: next as u64,
                objects: rec.objects.len() as u32,
                frame: FrameLocRec { offset: 0, len: 0 },
            };
            out.push(decode(archived, &info, interner)?);
        }
    }
    Ok(out)
}
