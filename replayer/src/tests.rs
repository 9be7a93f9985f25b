//! Replays of hand-built event streams: one test per finding kind, cycles,
//! accumulation, bisect and delta debugging. Expected numbers are worked out
//! in the comments from the events each test builds.

use crate::findings::{LeakClass, ObjectKind};
use crate::options::{CycleMode, ReplayOptions};
use crate::report::Report;
use crate::{replay_events, FailKind};
use ttalloc_model::*;

/// Builds an event stream with call sites.
struct Trace {
    events: Vec<Event>,
    it: InternTables,
}

const PID: Pid = Pid(100);

impl Trace {
    fn new() -> Self {
        Trace {
            events: Vec::new(),
            it: InternTables::new(),
        }
    }
    /// Ordinal the next event will get.
    fn next(&self) -> u64 {
        self.events.len() as u64
    }
    fn push(&mut self, kind: EventKind) -> u64 {
        let ord = self.next();
        self.events.push(Event {
            ts: 1_000 + ord,
            pid: PID,
            kind,
        });
        ord
    }
    fn site(&mut self, frames: &[(&str, &str, u32)]) -> SiteId {
        self.it.intern_stack_str(frames)
    }
    fn open(&mut self, d: u32) -> u64 {
        self.open_with(d, DeviceConfig::default())
    }
    fn open_with(&mut self, d: u32, config: DeviceConfig) -> u64 {
        self.push(EventKind::DeviceOpen {
            device: DeviceId(d),
            arch: Arch::WormholeB0,
            config: Box::new(config),
        })
    }
    fn close(&mut self, d: u32) -> u64 {
        self.push(EventKind::DeviceClose {
            device: DeviceId(d),
        })
    }
    fn alloc(&mut self, d: u32, b: u64, bt: BufferType, size: u64, site: SiteId) -> u64 {
        self.alloc_full(d, b, bt, size, None, site)
    }
    fn alloc_full(
        &mut self,
        d: u32,
        b: u64,
        bt: BufferType,
        size: u64,
        address: Option<u64>,
        site: SiteId,
    ) -> u64 {
        self.push(EventKind::BufferAlloc {
            device: DeviceId(d),
            buffer: BufferId(b),
            buffer_type: bt,
            address,
            size,
            page_size: Some(2048),
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site,
        })
    }
    fn free(&mut self, d: u32, b: u64) -> u64 {
        self.push(EventKind::BufferFree {
            device: DeviceId(d),
            buffer: BufferId(b),
            site: SiteId::UNKNOWN,
        })
    }
    fn marker(&mut self, label: &str) -> u64 {
        let label = self.it.intern_string(label);
        self.push(EventKind::Marker { label })
    }
    fn op(&mut self, name: &str) -> u64 {
        let name = self.it.intern_string(name);
        self.push(EventKind::OpBegin { name })
    }
    fn op_end(&mut self) -> u64 {
        self.push(EventKind::OpEnd)
    }
    fn replay(&self, opts: &ReplayOptions) -> Report {
        replay_events(self.events.clone(), self.it.clone(), opts).expect("replay")
    }
}

fn bisecting() -> ReplayOptions {
    ReplayOptions {
        bisect: true,
        ..ReplayOptions::default()
    }
}

/// A small L1 (one bank of 64 KiB above a 4 KiB reserved area) so that
/// out-of-memory and clashes are easy to provoke.
fn tiny_l1() -> DeviceConfig {
    DeviceConfig {
        l1_banks: Some(1),
        l1_bank_size: Some(65536),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(4096),
        l1_small_size: Some(0),
        worker_l1_size: Some(4096 + 65536),
        ..Default::default()
    }
}

/// The seed: three runs on a 2x4 mesh, each leaving 36864 B DRAM on every device.
fn mesh_runs(leak_from_run: u32) -> (Trace, Vec<u64>) {
    let mut t = Trace::new();
    let init = t.site(&[
        ("mesh_device_initialize", "w.py", 25),
        ("open_mesh", "w.py", 18),
        ("<module>", "w.py", 60),
    ]);
    let tensor = t.site(&[("upload", "w.py", 33), ("<module>", "w.py", 61)]);
    let mut first_leaks = Vec::new();
    let mut id = 0;
    for run in 1..=3 {
        t.marker(&format!("run {run}"));
        for d in 0..8 {
            t.open(d);
        }
        for d in 0..8 {
            id += 1;
            let ev = t.alloc(d, id, BufferType::Dram, 36864, init);
            if d == 0 {
                first_leaks.push(ev);
            }
            if run < leak_from_run {
                t.free(d, id);
            }
        }
        t.op("ttnn.from_torch");
        for d in 0..8 {
            t.alloc(d, 1000 + id + d as u64, BufferType::Dram, 16384, tensor);
        }
        t.op_end();
        for d in 0..8 {
            t.free(d, 1000 + id + d as u64);
        }
        for d in 0..8 {
            t.close(d);
        }
    }
    t.marker("end");
    (t, first_leaks)
}

mod arbitrary_streams;
mod cycles;
mod findings;
pub(crate) mod mixed_events;
mod outputs;
