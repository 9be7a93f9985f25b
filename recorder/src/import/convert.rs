//! Turns graph-capture nodes, one at a time, into ttalloc events.
//!
//! State is what is live: the open op scopes (they are the call site), the
//! buffers allocated and not yet freed (keyed by their `buffer` node), and the
//! devices seen. Nothing grows with the number of nodes except the counters.

use super::raw::{ParamValue, RawDevice, RawNode};
use super::sink::{EventSink, SinkError};
use super::{ImportOptions, ImportSummary};
use std::collections::{BTreeSet, HashMap};
use ttalloc_model::{
    Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind, Layout, SiteId,
    StackNode, StringId,
};

/// The pseudo file name of the frames made from ttnn op names.
pub const OP_FRAME_FILE: &str = "<ttnn>";

/// A node that cannot be converted.
#[derive(Debug)]
pub enum NodeError {
    Bad(String),
    Sink(SinkError),
}

impl From<SinkError> for NodeError {
    fn from(e: SinkError) -> Self {
        NodeError::Sink(e)
    }
}

struct LiveBuffer {
    id: BufferId,
    device: DeviceId,
    buffer_type: BufferType,
    size: u64,
}

pub struct Converter<'s, S: EventSink + ?Sized> {
    sink: &'s mut S,
    opts: ImportOptions,
    next_buffer: u64,
    /// `buffer` node counter -> the allocation it identifies.
    live: HashMap<u64, LiveBuffer>,
    /// Open `function_start` scopes: (op name, call site including it).
    scopes: Vec<SiteId>,
    devices_opened: BTreeSet<DeviceId>,
    /// Devices with circular buffers allocated since their last free-all.
    cb_devices: BTreeSet<DeviceId>,
    pub summary: ImportSummary,
}

const MAX_NOTES: usize = 20;

impl<'s, S: EventSink + ?Sized> Converter<'s, S> {
    pub fn new(sink: &'s mut S, opts: ImportOptions) -> Self {
        Converter {
            sink,
            opts,
            next_buffer: 1,
            live: HashMap::new(),
            scopes: Vec::new(),
            devices_opened: BTreeSet::new(),
            cb_devices: BTreeSet::new(),
            summary: ImportSummary::default(),
        }
    }

    fn ts(&self) -> u64 {
        // One nanosecond per node keeps the capture's order.
        self.opts.base_ts.saturating_add(self.summary.nodes)
    }

    fn emit(&mut self, kind: EventKind) -> Result<(), SinkError> {
        let ev = Event {
            ts: self.ts(),
            pid: self.opts.pid,
            kind,
        };
        self.sink.push(&ev)?;
        self.summary.events += 1;
        Ok(())
    }

    fn note(&mut self, text: String) {
        self.summary.anomalies += 1;
        if self.summary.notes.len() < MAX_NOTES {
            self.summary.notes.push(text);
        }
    }

    fn new_buffer_id(&mut self) -> BufferId {
        let id = BufferId(self.next_buffer);
        self.next_buffer += 1;
        id
    }

    fn site(&self) -> SiteId {
        self.scopes.last().copied().unwrap_or(SiteId::UNKNOWN)
    }

    /// Emits the process start that owns every imported event.
    pub fn start(&mut self) -> Result<(), SinkError> {
        let argv = self.sink.interner_mut().intern_string(&self.opts.source);
        self.emit(EventKind::ProcessStart {
            ppid: ttalloc_model::Pid(0),
            argv,
        })
    }

    /// Device info from the report's `devices` array.
    pub fn device_info(&mut self, dev: &RawDevice) -> Result<(), NodeError> {
        let id = match &dev.device_id {
            Some(v) => u32::try_from(
                v.as_u64()
                    .map_err(|e| NodeError::Bad(format!("device_id: {e}")))?,
            )
            .map_err(|_| NodeError::Bad("device_id out of range".into()))?,
            None => return Err(NodeError::Bad("a device entry has no device_id".into())),
        };
        let device = DeviceId(id);
        let arch = match &dev.arch {
            Some(v) => v.text().parse::<Arch>().unwrap_or_else(|_| {
                self.note(format!("device {id}: unknown arch '{}'", v.text()));
                Arch::Unknown
            }),
            None => Arch::Unknown,
        };
        let num = |v: &Option<ParamValue>| v.as_ref().and_then(|v| v.as_u64().ok());
        let config = DeviceConfig {
            dram_banks: num(&dev.num_dram_channels).and_then(|v| u32::try_from(v).ok()),
            l1_banks: num(&dev.l1_num_banks).and_then(|v| u32::try_from(v).ok()),
            l1_bank_size: num(&dev.l1_bank_size),
            l1_unreserved_base: num(&dev.address_at_first_l1_cb_buffer),
            worker_l1_size: num(&dev.worker_l1_size),
            ..Default::default()
        };
        if !self.devices_opened.insert(device) {
            self.note(format!("device {id} is described twice; using the first"));
            return Ok(());
        }
        self.summary.devices.push(id);
        self.emit(EventKind::DeviceOpen {
            device,
            arch,
            config: Box::new(config),
        })?;
        Ok(())
    }

    /// A device used by a node: opened (with unknown layout) the first time.
    fn use_device(&mut self, device: DeviceId) -> Result<(), SinkError> {
        if self.devices_opened.insert(device) {
            self.summary.devices.push(device.0);
            self.emit(EventKind::DeviceOpen {
                device,
                arch: Arch::Unknown,
                config: Box::default(),
            })?;
        }
        Ok(())
    }

    pub fn node(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let result = self.node_inner(node);
        self.summary.nodes += 1;
        result
    }

    fn node_inner(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let Some(kind) = node.node_type.as_deref() else {
            return Err(NodeError::Bad("the node has no node_type".into()));
        };
        match kind {
            "capture_start" | "capture_end" | "tensor" | "buffer" => Ok(()),
            "function_start" => self.function_start(node),
            "function_end" => self.function_end(node),
            "buffer_allocate" => self.buffer_allocate(node),
            "buffer_deallocate" => self.buffer_deallocate(node),
            "circular_buffer_allocate" => self.cb_allocate(node),
            "circular_buffer_deallocate_all" => self.cb_free_all(node),
            "error" => self.error_node(node),
            other => {
                *self
                    .summary
                    .unknown_node_types
                    .entry(other.to_owned())
                    .or_insert(0) += 1;
                Ok(())
            }
        }
    }

    fn function_start(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let name = node.params.name.as_ref().map(|v| v.text().into_owned());
        let name = name.unwrap_or_else(|| "<unnamed op>".to_owned());
        let interner = self.sink.interner_mut();
        let name_id = interner.intern_string(&name);
        let frame = interner.intern_frame_str(&name, OP_FRAME_FILE, 0);
        let parent = self.site();
        let site = self
            .sink
            .interner_mut()
            .intern_node(StackNode { parent, frame });
        self.scopes.push(site);
        self.summary.ops += 1;
        self.emit(EventKind::OpBegin { name: name_id })?;
        Ok(())
    }

    fn function_end(&mut self, _node: &RawNode) -> Result<(), NodeError> {
        if self.scopes.pop().is_none() {
            let c = self.summary.nodes;
            self.note(format!(
                "node #{c}: function_end without an open function_start"
            ));
            return Ok(());
        }
        self.emit(EventKind::OpEnd)?;
        Ok(())
    }

    fn device_of(&self, node: &RawNode) -> Result<DeviceId, NodeError> {
        match &node.params.device_id {
            None => Ok(DeviceId(0)),
            Some(v) => {
                let id = v
                    .as_u64()
                    .map_err(|e| NodeError::Bad(format!("device_id: {e}")))?;
                u32::try_from(id)
                    .map(DeviceId)
                    .map_err(|_| NodeError::Bad(format!("device_id {id} is out of range")))
            }
        }
    }

    fn buffer_allocate(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let p = &node.params;
        let size = required_u64(&p.size, "size")?;
        let address = optional_u64(&p.address, "address")?;
        let page_size = optional_u64(&p.page_size, "page_size")?;
        let per_bank_size = optional_u64(&p.max_size_per_bank, "max_size_per_bank")?;
        let num_cores = optional_u64(&p.num_cores, "num_cores")?
            .filter(|&n| n > 0)
            .map(|n| {
                u32::try_from(n)
                    .map_err(|_| NodeError::Bad(format!("num_cores {n} is out of range")))
            })
            .transpose()?;
        let buffer_type = buffer_type_of(node)?;
        let layout = match &p.layout {
            None => Layout::Interleaved,
            Some(v) => v.text().parse::<Layout>().unwrap_or_else(|_| {
                let c = self.summary.nodes;
                self.note(format!(
                    "node #{c}: unknown layout '{}', taken as INTERLEAVED",
                    v.text()
                ));
                Layout::Interleaved
            }),
        };
        let device = self.device_of(node)?;
        self.use_device(device)?;
        let id = self.new_buffer_id();
        let key = match node.connections.first() {
            Some(&k) => k,
            None => {
                let c = self.summary.nodes;
                self.note(format!(
                    "node #{c}: buffer_allocate without a buffer connection; it can never be freed"
                ));
                u64::MAX - self.summary.nodes
            }
        };
        if let Some(old) = self.live.insert(
            key,
            LiveBuffer {
                id,
                device,
                buffer_type,
                size,
            },
        ) {
            let c = self.summary.nodes;
            self.note(format!(
                "node #{c}: buffer node {key} allocated again while live (previous allocation {} stays live)",
                old.id
            ));
            self.summary.live_bytes_orphaned =
                self.summary.live_bytes_orphaned.saturating_add(old.size);
        }
        self.summary.buffers_allocated += 1;
        let site = self.site();
        self.emit(EventKind::BufferAlloc {
            device,
            buffer: id,
            buffer_type,
            address,
            size,
            page_size,
            layout,
            num_cores,
            per_bank_size,
            label: StringId::EMPTY,
            site,
        })?;
        Ok(())
    }

    fn buffer_deallocate(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let site = self.site();
        let live = node.connections.first().and_then(|k| self.live.remove(k));
        match live {
            Some(b) => {
                self.summary.buffers_freed += 1;
                self.emit(EventKind::BufferFree {
                    device: b.device,
                    buffer: b.id,
                    site,
                })?;
            }
            None => {
                // Allocated before the capture began: recorded as a free of a
                // buffer id that was never allocated, which the replayer
                // reports as "Deallocation for unknown buffer".
                let device = self.device_of(node)?;
                self.use_device(device)?;
                let id = self.new_buffer_id();
                self.summary.unknown_frees += 1;
                self.emit(EventKind::BufferFree {
                    device,
                    buffer: id,
                    site,
                })?;
            }
        }
        Ok(())
    }

    fn cb_allocate(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let p = &node.params;
        let size = required_u64(&p.size, "size")?;
        let address = optional_u64(&p.address, "address")?.unwrap_or(0);
        let globally_allocated = match &p.globally_allocated {
            None => false,
            Some(v) => v
                .as_bool()
                .map_err(|e| NodeError::Bad(format!("globally_allocated: {e}")))?,
        };
        let cores = p
            .core_range_set
            .as_ref()
            .and_then(|v| count_cores(&v.text()));
        let device = self.device_of(node)?;
        self.use_device(device)?;
        self.cb_devices.insert(device);
        self.summary.cb_allocs += 1;
        let site = self.site();
        self.emit(EventKind::CbAlloc {
            device,
            address,
            size,
            cores,
            globally_allocated,
            site,
        })?;
        Ok(())
    }

    fn cb_free_all(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let devices: Vec<DeviceId> = if node.params.device_id.is_some() {
            vec![self.device_of(node)?]
        } else if self.cb_devices.is_empty() {
            // Old versions name no device; with no CBs live there is nothing to free.
            return Ok(());
        } else {
            // Old versions name no device: free the CBs of every device that has some.
            self.cb_devices.iter().copied().collect()
        };
        for device in devices {
            self.use_device(device)?;
            self.cb_devices.remove(&device);
            self.summary.cb_free_alls += 1;
            self.emit(EventKind::CbFreeAll { device })?;
        }
        Ok(())
    }

    fn error_node(&mut self, node: &RawNode) -> Result<(), NodeError> {
        let p = &node.params;
        let text = |v: &Option<ParamValue>| {
            v.as_ref()
                .map(|v| v.text().into_owned())
                .unwrap_or_default()
        };
        let label = format!(
            "ttnn error{}{}: {}",
            if p.error_operation.is_some() {
                " in "
            } else {
                ""
            },
            text(&p.error_operation),
            if p.error_message.is_some() {
                text(&p.error_message)
            } else {
                text(&p.error_type)
            }
        );
        let label = self.sink.interner_mut().intern_string(&label);
        self.summary.error_nodes += 1;
        self.emit(EventKind::Marker { label })?;
        Ok(())
    }

    /// Ends the import: the counts of what is still live.
    pub fn finish(mut self) -> ImportSummary {
        self.summary.live_buffers = self.live.len() as u64;
        // Sizes come from the file: saturate rather than overflow.
        self.summary.live_bytes = self
            .live
            .values()
            .fold(0u64, |t, b| t.saturating_add(b.size));
        for b in self.live.values() {
            let t = self
                .summary
                .live_bytes_by_type
                .entry(b.buffer_type)
                .or_insert(0);
            *t = t.saturating_add(b.size);
        }
        self.summary.open_scopes = self.scopes.len() as u64;
        self.summary
    }
}

fn required_u64(v: &Option<ParamValue>, key: &str) -> Result<u64, NodeError> {
    match v {
        Some(v) => v
            .as_u64()
            .map_err(|e| NodeError::Bad(format!("{key}: {e}"))),
        None => Err(NodeError::Bad(format!("missing params.{key}"))),
    }
}

fn optional_u64(v: &Option<ParamValue>, key: &str) -> Result<Option<u64>, NodeError> {
    v.as_ref()
        .map(|v| {
            v.as_u64()
                .map_err(|e| NodeError::Bad(format!("{key}: {e}")))
        })
        .transpose()
}

/// The exact buffer type where the node gives it (newer versions), else
/// `type` ("DRAM"/"L1").
fn buffer_type_of(node: &RawNode) -> Result<BufferType, NodeError> {
    let p = &node.params;
    if let Some(v) = &p.buffer_type_value {
        let n = v
            .as_u64()
            .map_err(|e| NodeError::Bad(format!("buffer_type_value: {e}")))?;
        return u8::try_from(n)
            .ok()
            .and_then(BufferType::from_u8)
            .ok_or_else(|| NodeError::Bad(format!("buffer_type_value {n} is out of range 0-4")));
    }
    for (key, v) in [
        ("exact_buffer_type", &p.exact_buffer_type),
        ("buffer_type", &p.buffer_type),
        ("type", &p.type_),
    ] {
        if let Some(v) = v {
            return v
                .text()
                .parse::<BufferType>()
                .map_err(|e| NodeError::Bad(format!("{key}: {e}")));
        }
    }
    Err(NodeError::Bad("missing params.type".into()))
}

/// Counts the cores of a tt-metal `CoreRangeSet` string such as
/// `{[(x=0,y=0) - (x=0,y=7)], [(x=1,y=0) - (x=2,y=1)]}`.
pub fn count_cores(s: &str) -> Option<u32> {
    let mut coords = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if (bytes[i] == b'x' || bytes[i] == b'y') && bytes[i + 1] == b'=' {
            let mut j = i + 2;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            coords.push(s[i + 2..j].parse::<u64>().ok()?);
            i = j;
        } else {
            i += 1;
        }
    }
    if coords.is_empty() || coords.len() % 4 != 0 {
        return None;
    }
    // Coordinates come from the file: a count that overflows is no count.
    let mut total = 0u64;
    for c in coords.chunks(4) {
        let w = c[2].abs_diff(c[0]).checked_add(1)?;
        let h = c[3].abs_diff(c[1]).checked_add(1)?;
        total = total.checked_add(w.checked_mul(h)?)?;
    }
    u32::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_range_sets_are_counted() {
        assert_eq!(count_cores("{[(x=0,y=0) - (x=0,y=7)]}"), Some(8));
        assert_eq!(
            count_cores("{[(x=0,y=0) - (x=0,y=7)], [(x=1,y=0) - (x=2,y=1)]}"),
            Some(12)
        );
        assert_eq!(count_cores("{}"), None);
        assert_eq!(count_cores("{[(x=0,y=0)]}"), None);
    }
}
