//! The standard synthetic benchmark workload: a deterministic (seeded) stream
//! of tt-metal-like device-memory events.
//!
//! What it models: one Python process drives `devices` Wormhole devices
//! (default 8). Work is a sequence of ttnn ops (`OpBegin`/`OpEnd`), each on
//! one device: it may load its program once per device (program cache),
//! allocate circular buffers (freed at the op's end), allocate intermediate
//! buffers freed before the op ends, and output tensors that stay live for a
//! while and are freed later by one of a few "deallocate" call sites.
//! Buffers are multiples of 2048-byte tile pages, 32 KB to 64 MB in DRAM and
//! up to 2 MB in L1, interleaved or sharded, and get the address a first-fit
//! allocator (DRAM bottom-up, L1 top-down, one free list per bank manager)
//! would give them, so addresses are reused as on a device. 60 allocating call
//! sites (Python-looking stacks 5-7 frames deep) and 4 freeing sites.
//!
//! Addresses are meant to match the model exactly: the recorded
//! `DeviceConfig` is a self-consistent wormhole_b0 layout (the model accepts
//! it as is) and the generator's first fit uses the same ranges, rounding and
//! directions as `ttalloc_model::alloc`, so `ttalloc replay` on a generated
//! trace reports zero divergences (a divergence there is a bug in one of the
//! two). Program binaries and the trace buffer are not placed by the
//! generator (their events carry no address); the model puts them at the top
//! of DRAM and in the trace region, away from the generator's bottom-up DRAM
//! buffers.
//!
//! The workload is split into `cycles` (default 1), each starting with a
//! `Marker "cycle K"` (K from 1) and ending with every live buffer freed — except
//! the buffers of `leak_site`, which from cycle `from_cycle` on are never freed.
//! With `reopen_devices` the devices are closed at the end of every cycle and
//! opened again at the start of the next one.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use ttalloc_model::{
    event::join_argv, Arch, BufferId, BufferType, DeviceConfig, DeviceId, Event, EventKind,
    EventTag, InternTables, Layout, Pid, ProgramId, SiteId, StringId, TraceId,
};
use ttalloc_trace::{TraceError, TraceHeader, TraceWriter, WriterOptions};

/// Number of allocating call sites (`LeakSite::site` is an index below this).
pub const NUM_ALLOC_SITES: usize = 60;
pub const TILE_PAGE: u64 = 2048;
pub const PID: u32 = 4242;
/// First timestamp: 2025-11-23T12:53:20Z in ns.
pub const START_TS: u64 = 1_763_902_400_000_000_000;

/// One call site whose buffers are never freed from a cycle on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LeakSite {
    /// Index of the allocating site, `0..NUM_ALLOC_SITES`.
    pub site: usize,
    /// First cycle (1-based) whose buffers from this site leak.
    pub from_cycle: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthOptions {
    /// Target number of events (the generator ends near it — a cycle ends at
    /// an op boundary, so within about ten events per cycle;
    /// `SynthStats::events` is exact).
    pub events: u64,
    pub seed: u64,
    pub devices: u32,
    pub cycles: u32,
    pub leak_site: Option<LeakSite>,
    pub reopen_devices: bool,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            events: 100_000,
            seed: 1,
            devices: 8,
            cycles: 1,
            leak_site: None,
            reopen_devices: false,
        }
    }
}

/// Exactly what was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SynthStats {
    pub events: u64,
    /// Every `EventTag::name`, zeros included.
    pub by_kind: BTreeMap<String, u64>,
    pub buffers_allocated: u64,
    pub buffers_freed: u64,
    /// Buffers of the leak site never freed, and their bytes (all cycles).
    pub leaked_buffers: u64,
    pub leaked_bytes: u64,
    /// Leaked bytes per cycle (index 0 = cycle 1).
    pub leaked_bytes_per_cycle: Vec<u64>,
    /// The leak site's `SiteId` in the trace's intern tables.
    pub leak_site_id: Option<u32>,
    /// Distinct allocating + freeing call sites.
    pub call_sites: usize,
}

impl SynthStats {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("stats serialize")
    }
}

/// SplitMix64: small, fast, deterministic.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A first-fit allocator over one bank's address range (all banks in lockstep).
struct FreeList {
    /// Sorted, coalesced free ranges [start, end).
    free: Vec<(u64, u64)>,
    top_down: bool,
    alignment: u64,
}

impl FreeList {
    fn new(base: u64, size: u64, alignment: u64, top_down: bool) -> Self {
        FreeList {
            free: vec![(base, base + size)],
            top_down,
            alignment,
        }
    }
    fn alloc(&mut self, size: u64) -> Option<u64> {
        let size = size.div_ceil(self.alignment).max(1) * self.alignment;
        let fits = |&(s, e): &(u64, u64)| e - s >= size;
        if self.top_down {
            let i = self.free.iter().rposition(fits)?;
            let (s, e) = self.free[i];
            if e - s == size {
                self.free.remove(i);
            } else {
                self.free[i].1 = e - size;
            }
            Some(e - size)
        } else {
            let i = self.free.iter().position(fits)?;
            let (s, e) = self.free[i];
            if e - s == size {
                self.free.remove(i);
            } else {
                self.free[i].0 = s + size;
            }
            Some(s)
        }
    }
    fn free(&mut self, addr: u64, size: u64) {
        let size = size.div_ceil(self.alignment).max(1) * self.alignment;
        let i = self.free.partition_point(|&(s, _)| s < addr);
        self.free.insert(i, (addr, addr + size));
        if i + 1 < self.free.len() && self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 = self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 = self.free[i].1;
            self.free.remove(i);
        }
    }
}

// The recorded layout is the wormhole_b0 preset's (`ttalloc_model::alloc::
// preset`) with a 4 MiB DRAM reserve, a 32 MiB trace region and a 32 KiB
// L1_SMALL region carved out of the same 1 GiB DRAM channel and the same
// 1499136 B worker L1, so the model accepts it as recorded: the bank sizes
// are what the model would derive (channel or worker L1 minus the base and
// the region on top of the bank).
const DRAM_BANKS: u64 = 12;
/// The preset's DRAM channel: its unreserved base plus its bank size.
const DRAM_CHANNEL: u64 = 32 + 1_073_741_792;
const DRAM_BASE: u64 = 0x40_0000;
const TRACE_REGION: u64 = 32 << 20;
const DRAM_BANK_SIZE: u64 = DRAM_CHANNEL - DRAM_BASE - TRACE_REGION;
const L1_BANKS: u64 = 64;
const WORKER_L1: u64 = 1_499_136;
const L1_BASE: u64 = 0x1_9000;
const L1_SMALL: u64 = 32_768;
const L1_BANK_SIZE: u64 = WORKER_L1 - L1_BASE - L1_SMALL;

fn wormhole_config() -> DeviceConfig {
    DeviceConfig {
        dram_banks: Some(DRAM_BANKS as u32),
        dram_bank_size: Some(DRAM_BANK_SIZE),
        dram_alignment: Some(32),
        dram_unreserved_base: Some(DRAM_BASE),
        l1_banks: Some(L1_BANKS as u32),
        l1_bank_size: Some(L1_BANK_SIZE),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(L1_BASE),
        l1_small_size: Some(L1_SMALL),
        trace_region_size: Some(TRACE_REGION),
        worker_l1_size: Some(WORKER_L1),
    }
}

struct Device {
    dram: FreeList,
    l1: FreeList,
    /// Live output tensors, oldest first.
    live: VecDeque<u64>,
    programs: HashMap<usize, ProgramId>,
}

impl Device {
    fn new() -> Self {
        Device {
            dram: FreeList::new(DRAM_BASE, DRAM_BANK_SIZE, 32, false),
            l1: FreeList::new(L1_BASE, L1_BANK_SIZE, 16, true),
            live: VecDeque::new(),
            programs: HashMap::new(),
        }
    }
}

struct SiteSpec {
    id: SiteId,
    buffer_type: BufferType,
    layout: Layout,
    /// Typical size in bytes (a multiple of the tile page).
    size: u64,
    num_cores: Option<u32>,
    /// Freed before the op ends (an intermediate) rather than an output.
    intermediate: bool,
}

struct LiveBuf {
    device: u32,
    buffer_type: BufferType,
    address: u64,
    per_bank: u64,
    size: u64,
    leaked: bool,
    cycle: u32,
}

const OPS: [&str; 20] = [
    "ttnn.matmul",
    "ttnn.linear",
    "ttnn.add",
    "ttnn.multiply",
    "ttnn.softmax",
    "ttnn.layer_norm",
    "ttnn.rms_norm",
    "ttnn.gelu",
    "ttnn.silu",
    "ttnn.embedding",
    "ttnn.reshape",
    "ttnn.permute",
    "ttnn.concat",
    "ttnn.to_memory_config",
    "ttnn.to_device",
    "ttnn.from_device",
    "ttnn.experimental.rotary_embedding",
    "ttnn.transformer.scaled_dot_product_attention",
    "ttnn.all_gather",
    "ttnn.typecast",
];

const MODULES: [(&str, &str); 6] = [
    ("forward", "models/demos/llama3/tt/llama_attention.py"),
    ("forward", "models/demos/llama3/tt/llama_mlp.py"),
    ("forward", "models/demos/llama3/tt/llama_decoder.py"),
    ("forward", "models/demos/llama3/tt/llama_model.py"),
    ("prepare_inputs", "models/demos/llama3/tt/llama_common.py"),
    ("forward", "models/demos/llama3/tt/llama_embedding.py"),
];

/// The generator. Intern its vocabulary into the trace's tables with
/// [`Synth::new`], then pull events with [`Synth::next_event`].
pub struct Synth {
    opts: SynthOptions,
    rng: Rng,
    ts: u64,
    queue: VecDeque<Event>,
    sites: Vec<SiteSpec>,
    free_sites: Vec<SiteId>,
    op_names: Vec<StringId>,
    cycle_labels: Vec<StringId>,
    setup_label: StringId,
    teardown_label: StringId,
    argv: StringId,
    devices: Vec<Device>,
    buffers: HashMap<u64, LiveBuf>,
    next_buffer: u64,
    next_program: u64,
    next_trace: u32,
    /// 0 before the prologue; 1..=cycles while running a cycle; cycles+1 at the epilogue; past it done.
    cycle: u32,
    traced_this_cycle: bool,
    /// Live buffers that leak (never freed).
    leaked_live: usize,
    /// Leaked buffers dropped by a DeviceClose: count, bytes, bytes per cycle.
    dropped_leaks: (u64, u64, Vec<u64>),
    done: bool,
    stats: SynthStats,
}

impl Synth {
    pub fn new(opts: SynthOptions, t: &mut InternTables) -> Synth {
        let mut rng = Rng(opts.seed ^ 0x5eed_7a11_0c00_0000);
        let devices = opts.devices.max(1);
        let op_names: Vec<StringId> = OPS.iter().map(|s| t.intern_string(s)).collect();
        let mut sites = Vec::new();
        for i in 0..NUM_ALLOC_SITES {
            let op = i % OPS.len();
            let (mfunc, mfile) = MODULES[(i / 3) % MODULES.len()];
            let op_func = OPS[op].rsplit('.').next().unwrap_or("op");
            let op_file = format!("ttnn/ttnn/operations/{op_func}.py");
            let inner = [
                (
                    "allocate_tensor_on_device",
                    "ttnn/ttnn/operations/core.py",
                    120 + (i % 3) as u32 * 17,
                ),
                ("create_device_tensor", "ttnn/ttnn/operations/core.py", 240),
                ("empty", "ttnn/ttnn/operations/creation.py", 88),
            ][i % 3];
            let mut frames: Vec<(&str, &str, u32)> =
                vec![inner, ("__call__", &op_file, 40 + (i % 7) as u32)];
            frames.push((mfunc, mfile, 100 + (i * 13 % 400) as u32));
            if i % 2 == 0 {
                frames.push(("forward", "models/demos/llama3/tt/llama_decoder.py", 77));
            }
            frames.push(("run_llama3_demo", "models/demos/llama3/demo/demo.py", 512));
            frames.push((
                "test_llama_demo",
                "models/demos/llama3/tests/test_demo.py",
                33 + (i % 4) as u32,
            ));
            if i % 5 == 0 {
                frames.push(("pytest_pyfunc_call", "_pytest/python.py", 159));
            }
            let id = t.intern_stack_str(&frames);
            let dram = rng.chance(70);
            let (buffer_type, layout, size, num_cores) = if dram {
                // Log-uniform 32 KB .. 64 MB in tile pages.
                let exp = rng.range(15, 26);
                let size = ((1u64 << exp) + rng.below(1 << exp)) / TILE_PAGE * TILE_PAGE;
                (
                    BufferType::Dram,
                    Layout::Interleaved,
                    size.max(16 * TILE_PAGE),
                    None,
                )
            } else {
                let exp = rng.range(15, 21);
                let size = ((1u64 << exp) + rng.below(1 << exp)) / TILE_PAGE * TILE_PAGE;
                let layout = Layout::from_u8(rng.below(4) as u8).unwrap_or(Layout::Interleaved);
                let cores = if layout.is_sharded() {
                    Some([8u32, 16, 32, 64][rng.below(4) as usize])
                } else {
                    None
                };
                (BufferType::L1, layout, size.max(16 * TILE_PAGE), cores)
            };
            sites.push(SiteSpec {
                id,
                buffer_type,
                layout,
                size,
                num_cores,
                intermediate: i % 3 == 2,
            });
        }
        let free_sites = vec![
            t.intern_stack_str(&[
                ("deallocate", "ttnn/ttnn/operations/core.py", 310),
                ("forward", "models/demos/llama3/tt/llama_decoder.py", 90),
                ("run_llama3_demo", "models/demos/llama3/demo/demo.py", 512),
            ]),
            t.intern_stack_str(&[
                ("__del__", "ttnn/ttnn/types.py", 52),
                ("run_llama3_demo", "models/demos/llama3/demo/demo.py", 530),
            ]),
            t.intern_stack_str(&[
                ("deallocate", "ttnn/ttnn/operations/core.py", 310),
                ("forward", "models/demos/llama3/tt/llama_attention.py", 260),
                ("forward", "models/demos/llama3/tt/llama_decoder.py", 70),
                ("run_llama3_demo", "models/demos/llama3/demo/demo.py", 512),
            ]),
            t.intern_stack_str(&[
                ("synchronize_device", "ttnn/ttnn/device.py", 140),
                (
                    "test_llama_demo",
                    "models/demos/llama3/tests/test_demo.py",
                    60,
                ),
            ]),
        ];
        let cycle_labels = (1..=opts.cycles.max(1))
            .map(|c| t.intern_string(&format!("cycle {c}")))
            .collect();
        let argv = t.intern_string(&join_argv(&[
            "python",
            "-m",
            "pytest",
            "models/demos/llama3/tests/test_demo.py",
        ]));
        let stats = SynthStats {
            by_kind: EventTag::ALL
                .iter()
                .map(|k| (k.name().to_string(), 0))
                .collect(),
            leaked_bytes_per_cycle: vec![0; opts.cycles.max(1) as usize],
            leak_site_id: opts
                .leak_site
                .and_then(|l| sites.get(l.site))
                .map(|s: &SiteSpec| s.id.0),
            call_sites: sites.len() + free_sites.len(),
            ..Default::default()
        };
        Synth {
            rng,
            ts: START_TS,
            queue: VecDeque::new(),
            sites,
            free_sites,
            op_names,
            cycle_labels,
            setup_label: t.intern_string("setup done"),
            teardown_label: t.intern_string("teardown"),
            argv,
            devices: (0..devices).map(|_| Device::new()).collect(),
            buffers: HashMap::new(),
            next_buffer: 1,
            next_program: 1,
            next_trace: 1,
            cycle: 0,
            traced_this_cycle: false,
            leaked_live: 0,
            dropped_leaks: (0, 0, vec![0; opts.cycles.max(1) as usize]),
            done: false,
            stats,
            opts: SynthOptions {
                devices,
                cycles: opts.cycles.max(1),
                ..opts
            },
        }
    }

    pub fn stats(&self) -> &SynthStats {
        &self.stats
    }

    /// The allocating call sites, in `LeakSite::site` order.
    pub fn alloc_sites(&self) -> Vec<SiteId> {
        self.sites.iter().map(|s| s.id).collect()
    }

    fn emit(&mut self, gap_lo: u64, gap_hi: u64, kind: EventKind) {
        self.ts += self.rng.range(gap_lo, gap_hi);
        self.queue.push_back(Event {
            ts: self.ts,
            pid: Pid(PID),
            kind,
        });
    }

    fn open_devices(&mut self) {
        for d in 0..self.opts.devices {
            self.emit(
                1_000,
                50_000_000,
                EventKind::DeviceOpen {
                    device: DeviceId(d),
                    arch: Arch::WormholeB0,
                    config: Box::new(wormhole_config()),
                },
            );
        }
    }

    fn close_devices(&mut self) {
        for d in 0..self.opts.devices {
            let mut progs: Vec<ProgramId> = self.devices[d as usize]
                .programs
                .drain()
                .map(|(_, p)| p)
                .collect();
            progs.sort();
            for program in progs {
                self.emit(
                    200,
                    2_000,
                    EventKind::ProgramUnload {
                        device: DeviceId(d),
                        program,
                    },
                );
            }
            self.emit(
                1_000,
                1_000_000,
                EventKind::DeviceClose {
                    device: DeviceId(d),
                },
            );
            // tt-metal's deallocate_all: every buffer of the device is gone.
            for b in self.buffers.values().filter(|b| b.device == d && b.leaked) {
                self.leaked_live -= 1;
                self.dropped_leaks.0 += 1;
                self.dropped_leaks.1 += b.size;
                if let Some(slot) = self.dropped_leaks.2.get_mut(b.cycle as usize - 1) {
                    *slot += b.size;
                }
            }
            self.buffers.retain(|_, b| b.device != d);
            self.devices[d as usize] = Device::new();
        }
    }

    fn alloc(&mut self, device: u32, site: usize) -> Option<u64> {
        let spec = &self.sites[site];
        let (buffer_type, layout, num_cores, site_id) =
            (spec.buffer_type, spec.layout, spec.num_cores, spec.id);
        // Mostly the site's usual shape, sometimes a different sequence length.
        let size = match self.rng.below(10) {
            0 => spec.size / 2,
            1 => spec.size * 2,
            _ => spec.size,
        }
        .clamp(16 * TILE_PAGE, 64 << 20)
            / TILE_PAGE
            * TILE_PAGE;
        let pages = size / TILE_PAGE;
        let (per_bank, list) = match buffer_type {
            BufferType::Dram => (
                pages.div_ceil(DRAM_BANKS) * TILE_PAGE,
                &mut self.devices[device as usize].dram,
            ),
            _ => {
                let shards = num_cores.map_or(L1_BANKS, |c| c as u64);
                (
                    pages.div_ceil(shards) * TILE_PAGE,
                    &mut self.devices[device as usize].l1,
                )
            }
        };
        let address = list.alloc(per_bank)?;
        let id = self.next_buffer;
        self.next_buffer += 1;
        let leaked = self
            .opts
            .leak_site
            .is_some_and(|l| l.site == site && self.cycle >= l.from_cycle);
        self.leaked_live += leaked as usize;
        self.buffers.insert(
            id,
            LiveBuf {
                device,
                buffer_type,
                address,
                per_bank,
                size,
                leaked,
                cycle: self.cycle,
            },
        );
        self.stats.buffers_allocated += 1;
        self.emit(
            300,
            3_000,
            EventKind::BufferAlloc {
                device: DeviceId(device),
                buffer: BufferId(id),
                buffer_type,
                address: Some(address),
                size,
                page_size: Some(TILE_PAGE),
                layout,
                num_cores,
                site: site_id,
            },
        );
        Some(id)
    }

    /// Frees a buffer unless it leaks; returns whether a free was emitted.
    fn free(&mut self, id: u64, site: SiteId) -> bool {
        let Some(b) = self.buffers.get(&id) else {
            return false;
        };
        if b.leaked {
            return false;
        }
        let b = self.buffers.remove(&id).expect("present");
        let dev = &mut self.devices[b.device as usize];
        match b.buffer_type {
            BufferType::Dram => dev.dram.free(b.address, b.per_bank),
            _ => dev.l1.free(b.address, b.per_bank),
        }
        self.stats.buffers_freed += 1;
        self.emit(
            200,
            2_500,
            EventKind::BufferFree {
                device: DeviceId(b.device),
                buffer: BufferId(id),
                site,
            },
        );
        true
    }

    fn free_site(&mut self) -> SiteId {
        match self.rng.below(10) {
            0..=5 => self.free_sites[0],
            6 | 7 => self.free_sites[2],
            8 => self.free_sites[1],
            _ => SiteId::UNKNOWN,
        }
    }

    /// One ttnn op on one device.
    fn op(&mut self) {
        let device = self.rng.below(self.opts.devices as u64) as u32;
        let op = self.rng.below(OPS.len() as u64) as usize;
        self.emit(
            2_000,
            40_000,
            EventKind::OpBegin {
                name: self.op_names[op],
            },
        );
        if !self.devices[device as usize].programs.contains_key(&op) {
            let program = ProgramId(self.next_program);
            self.next_program += 1;
            self.devices[device as usize].programs.insert(op, program);
            let site = self.sites[op].id;
            let binary_size = self.rng.range(8, 96) * 1024;
            self.emit(
                500,
                5_000,
                EventKind::ProgramLoad {
                    device: DeviceId(device),
                    program,
                    binary_size,
                    site,
                },
            );
        }
        let cbs = if self.rng.chance(30) {
            self.rng.range(1, 4)
        } else {
            0
        };
        let mut cb_addr = L1_BASE;
        for _ in 0..cbs {
            let size = self.rng.range(1, 16) * TILE_PAGE;
            let site = self.sites[op].id;
            self.emit(
                200,
                1_000,
                EventKind::CbAlloc {
                    device: DeviceId(device),
                    address: cb_addr,
                    size,
                    cores: Some(64),
                    globally_allocated: false,
                    site,
                },
            );
            cb_addr += size;
        }
        // This op's sites: op, op+20, op+40 (the one with index % 3 == 2 is an intermediate).
        let mine: Vec<usize> = (0..3).map(|k| op + k * OPS.len()).collect();
        let mut intermediates = Vec::new();
        for &s in &mine {
            if self.sites[s].intermediate {
                if self.rng.chance(60) {
                    if let Some(id) = self.alloc(device, s) {
                        intermediates.push(id);
                    }
                }
            } else if self.rng.chance(75) {
                // Make room the way a long-running model does: free old outputs.
                let mut id = self.alloc(device, s);
                while id.is_none() {
                    let Some(old) = self.devices[device as usize].live.pop_front() else {
                        break;
                    };
                    let fs = self.free_site();
                    self.free(old, fs);
                    id = self.alloc(device, s);
                }
                if let Some(id) = id {
                    self.devices[device as usize].live.push_back(id);
                }
            }
        }
        for id in intermediates {
            let fs = self.free_site();
            self.free(id, fs);
        }
        if cbs > 0 {
            self.emit(
                200,
                1_000,
                EventKind::CbFreeAll {
                    device: DeviceId(device),
                },
            );
        }
        // Inputs consumed: keep about 16 live outputs per device.
        while self.devices[device as usize].live.len() > 16
            || (self.rng.chance(20) && !self.devices[device as usize].live.is_empty())
        {
            let Some(old) = self.devices[device as usize].live.pop_front() else {
                break;
            };
            let fs = self.free_site();
            self.free(old, fs);
        }
        self.emit(300, 3_000, EventKind::OpEnd);
    }

    fn end_cycle(&mut self) {
        let mut ids: Vec<u64> = self.buffers.keys().copied().collect();
        ids.sort();
        let site = self.free_sites[3];
        for id in ids {
            self.free(id, site);
        }
        for d in &mut self.devices {
            d.live.clear();
        }
        if self.opts.reopen_devices && self.cycle < self.opts.cycles {
            self.close_devices();
        }
    }

    /// Events the end of this cycle will add after its last op: the frees of
    /// every live buffer that does not leak, the next marker and, with
    /// `reopen_devices`, program unloads and device close/open.
    fn tail_estimate(&self) -> u64 {
        let d = self.opts.devices as u64;
        let frees = (self.buffers.len() - self.leaked_live) as u64;
        let reopen = if self.opts.reopen_devices {
            self.devices
                .iter()
                .map(|x| x.programs.len() as u64)
                .sum::<u64>()
                + 2 * d
        } else {
            0
        };
        frees + 1 + reopen
    }

    fn refill(&mut self) {
        // Cycle k (1-based) ends once `prologue + k * per_cycle` events are out;
        // the epilogue (teardown marker, program unloads, closes, exit) is
        // budgeted at its largest.
        let d = self.opts.devices as u64;
        let prologue = 2 + d;
        let epilogue = 2 + d * (1 + OPS.len() as u64);
        let per_cycle =
            self.opts.events.saturating_sub(prologue + epilogue) / self.opts.cycles as u64;
        let target = prologue + self.cycle as u64 * per_cycle;
        if self.cycle == 0 {
            self.emit(
                0,
                1,
                EventKind::ProcessStart {
                    ppid: Pid(1),
                    argv: self.argv,
                },
            );
            self.open_devices();
            self.emit(
                1_000,
                10_000,
                EventKind::Marker {
                    label: self.setup_label,
                },
            );
            self.cycle = 1;
            let m = self.cycle_marker();
            self.queue.push_back(m);
            return;
        }
        if self.cycle <= self.opts.cycles {
            if self.stats.events + self.tail_estimate() < target {
                self.op();
                if !self.traced_this_cycle && self.stats.events + per_cycle / 2 > target {
                    self.traced_this_cycle = true;
                    {
                        self.emit(
                            1_000,
                            5_000,
                            EventKind::TraceCapture {
                                device: DeviceId(0),
                                trace_id: TraceId(self.next_trace),
                                size: 4 << 20,
                                site: self.sites[0].id,
                            },
                        );
                        self.emit(
                            1_000,
                            5_000,
                            EventKind::TraceRelease {
                                device: DeviceId(0),
                                trace_id: TraceId(self.next_trace),
                            },
                        );
                        self.next_trace += 1;
                    }
                }
                return;
            }
            self.end_cycle();
            self.cycle += 1;
            self.traced_this_cycle = false;
            if self.cycle <= self.opts.cycles {
                if self.opts.reopen_devices {
                    self.open_devices();
                }
                let m = self.cycle_marker();
                self.queue.push_back(m);
            }
            return;
        }
        // Epilogue.
        self.emit(
            1_000,
            10_000,
            EventKind::Marker {
                label: self.teardown_label,
            },
        );
        self.close_devices();
        self.emit(1_000, 10_000, EventKind::ProcessExit { status: Some(0) });
        self.done = true;
    }

    fn cycle_marker(&mut self) -> Event {
        self.ts += self.rng.range(10_000, 100_000);
        Event {
            ts: self.ts,
            pid: Pid(PID),
            kind: EventKind::Marker {
                label: self.cycle_labels[self.cycle as usize - 1],
            },
        }
    }

    /// The next event, or `None` when the workload is over.
    pub fn next_event(&mut self) -> Option<Event> {
        while self.queue.is_empty() {
            if self.done {
                self.finish_stats();
                return None;
            }
            self.refill();
        }
        let e = self.queue.pop_front()?;
        self.stats.events += 1;
        *self
            .stats
            .by_kind
            .entry(e.kind.tag().name().to_string())
            .or_default() += 1;
        Some(e)
    }

    fn finish_stats(&mut self) {
        let (mut n, mut bytes) = (0, 0);
        let mut per = vec![0; self.opts.cycles as usize];
        for b in self.buffers.values().filter(|b| b.leaked) {
            n += 1;
            bytes += b.size;
            if let Some(slot) = per.get_mut(b.cycle as usize - 1) {
                *slot += b.size;
            }
        }
        // Buffers dropped by a DeviceClose (reopen_devices) were counted when dropped.
        self.stats.leaked_buffers = n + self.dropped_leaks.0;
        self.stats.leaked_bytes = bytes + self.dropped_leaks.1;
        for (slot, extra) in per.iter_mut().zip(&self.dropped_leaks.2) {
            *slot += extra;
        }
        self.stats.leaked_bytes_per_cycle = per;
    }
}

/// Generates the whole workload in memory (for tests and small N).
pub fn generate(opts: &SynthOptions) -> (InternTables, Vec<Event>, SynthStats) {
    let mut t = InternTables::new();
    let mut s = Synth::new(opts.clone(), &mut t);
    let mut events = Vec::new();
    while let Some(e) = s.next_event() {
        events.push(e);
    }
    (t, events, s.stats().clone())
}

/// The header synthetic traces carry.
pub fn synth_header(opts: &SynthOptions) -> TraceHeader {
    let mut h = TraceHeader::new(
        vec![
            "ttalloc-synth".into(),
            "-n".into(),
            opts.events.to_string(),
            "--seed".into(),
            opts.seed.to_string(),
        ],
        "synthetic".into(),
    );
    h.start_time_ns = START_TS;
    h
}

/// Writes the workload to `path` as a finished trace.
pub fn write_trace(
    path: &Path,
    opts: &SynthOptions,
    wopts: WriterOptions,
) -> Result<SynthStats, TraceError> {
    let mut w = TraceWriter::create(path, synth_header(opts), wopts)?;
    let mut s = Synth::new(opts.clone(), w.interner_mut());
    while let Some(e) = s.next_event() {
        w.push(&e)?;
    }
    w.finish()?;
    Ok(s.stats().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn is_deterministic_and_seed_dependent() {
        let opts = SynthOptions {
            events: 5_000,
            seed: 42,
            ..Default::default()
        };
        let (_, a, sa) = generate(&opts);
        let (_, b, sb) = generate(&opts);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (_, c, _) = generate(&SynthOptions { seed: 43, ..opts });
        assert_ne!(a, c);
    }

    #[test]
    fn counts_and_shape_match_the_spec() {
        let opts = SynthOptions {
            events: 50_000,
            seed: 5,
            ..Default::default()
        };
        let (t, events, stats) = generate(&opts);
        assert_eq!(stats.events, events.len() as u64);
        assert!(
            events.len().abs_diff(50_000) < 200,
            "about N events: {}",
            events.len()
        );
        let mut by_kind: BTreeMap<String, u64> = EventTag::ALL
            .iter()
            .map(|k| (k.name().to_string(), 0))
            .collect();
        let mut devices = BTreeSet::new();
        let mut alloc_sites = BTreeSet::new();
        let mut layouts = BTreeSet::new();
        for e in &events {
            *by_kind.get_mut(e.kind.tag().name()).unwrap() += 1;
            if let EventKind::BufferAlloc {
                device,
                size,
                page_size,
                layout,
                site,
                num_cores,
                ..
            } = &e.kind
            {
                devices.insert(device.0);
                alloc_sites.insert(*site);
                layouts.insert(*layout as u8);
                assert_eq!(*page_size, Some(TILE_PAGE));
                assert_eq!(size % TILE_PAGE, 0);
                assert!((32 << 10..=64 << 20).contains(size), "size {size}");
                assert_eq!(num_cores.is_some(), layout.is_sharded());
            }
        }
        assert_eq!(by_kind, stats.by_kind);
        assert_eq!(devices.len(), 8);
        assert!(
            alloc_sites.len() >= 50,
            "{} call sites used",
            alloc_sites.len()
        );
        assert_eq!(
            layouts.len(),
            4,
            "interleaved and the three sharded layouts"
        );
        assert!(stats.call_sites >= 50);
        assert!(by_kind["op_begin"] > 1000 && by_kind["op_begin"] == by_kind["op_end"]);
        assert!(by_kind["marker"] >= 3);
        // Stacks look like Python tracebacks.
        let frames = t.resolve(*alloc_sites.iter().next().unwrap());
        assert!(frames.len() >= 5 && frames.iter().all(|f| f.file.ends_with(".py")));
        // No leak requested: everything allocated is freed.
        assert_eq!(stats.buffers_allocated, stats.buffers_freed);
        assert_eq!(stats.leaked_buffers, 0);
    }

    /// Live buffers of one device and buffer type never overlap, and freed
    /// addresses are handed out again (first fit reuses holes).
    #[test]
    fn addresses_behave_like_a_first_fit_allocator() {
        let (_, events, _) = generate(&SynthOptions {
            events: 30_000,
            seed: 9,
            ..Default::default()
        });
        let mut live: HashMap<u64, (u32, BufferType, u64, u64)> = HashMap::new();
        let mut seen_addr: HashMap<(u32, u8, u64), u32> = HashMap::new();
        for e in &events {
            match &e.kind {
                EventKind::BufferAlloc {
                    device,
                    buffer,
                    buffer_type,
                    address,
                    size,
                    num_cores,
                    ..
                } => {
                    let a = address.expect("synthetic allocs have addresses");
                    let shards = num_cores.map_or(
                        if *buffer_type == BufferType::Dram {
                            12
                        } else {
                            64
                        },
                        |c| c as u64,
                    );
                    let per_bank = (size / TILE_PAGE).div_ceil(shards) * TILE_PAGE;
                    for (d, bt, s, l) in live.values() {
                        if *d == device.0 && bt == buffer_type {
                            assert!(a + per_bank <= *s || *s + *l <= a, "overlap at {a:#x}");
                        }
                    }
                    live.insert(buffer.0, (device.0, *buffer_type, a, per_bank));
                    *seen_addr
                        .entry((device.0, *buffer_type as u8, a))
                        .or_default() += 1;
                }
                EventKind::BufferFree { buffer, .. } => {
                    assert!(live.remove(&buffer.0).is_some(), "free of a live buffer");
                }
                EventKind::DeviceClose { device } => live.retain(|_, b| b.0 != device.0),
                _ => {}
            }
        }
        let reused = seen_addr.values().filter(|n| **n > 1).count();
        assert!(reused > 100, "addresses are reused ({reused})");
    }

    #[test]
    fn leak_site_buffers_are_never_freed_from_its_cycle_on() {
        let opts = SynthOptions {
            events: 40_000,
            seed: 2,
            cycles: 4,
            leak_site: Some(LeakSite {
                site: 7,
                from_cycle: 3,
            }),
            ..Default::default()
        };
        let (t, events, stats) = generate(&opts);
        let leak = SiteId(stats.leak_site_id.unwrap());
        assert!(!t.resolve(leak).is_empty());
        let labels: Vec<&str> = events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Marker { label } => Some(t.string(label)),
                _ => None,
            })
            .filter(|l| l.starts_with("cycle "))
            .collect();
        assert_eq!(labels, ["cycle 1", "cycle 2", "cycle 3", "cycle 4"]);
        let mut cycle = 0;
        let mut open: HashMap<u64, (u32, u64)> = HashMap::new();
        let mut leaked_bytes_per_cycle = vec![0u64; 4];
        for e in &events {
            match &e.kind {
                EventKind::Marker { label } if t.string(*label).starts_with("cycle ") => cycle += 1,
                EventKind::BufferAlloc {
                    buffer, site, size, ..
                } if *site == leak => {
                    open.insert(buffer.0, (cycle, *size));
                }
                EventKind::BufferFree { buffer, .. } => {
                    if let Some((c, _)) = open.remove(&buffer.0) {
                        assert!(c < 3, "a buffer of the leak site from cycle {c} was freed");
                    }
                }
                _ => {}
            }
        }
        for (c, size) in open.values() {
            assert!(*c >= 3);
            leaked_bytes_per_cycle[*c as usize - 1] += size;
        }
        assert!(stats.leaked_buffers > 0);
        assert_eq!(stats.leaked_buffers, open.len() as u64);
        assert_eq!(stats.leaked_bytes_per_cycle, leaked_bytes_per_cycle);
        assert_eq!(
            stats.leaked_bytes,
            leaked_bytes_per_cycle.iter().sum::<u64>()
        );
        assert_eq!(
            stats.buffers_allocated,
            stats.buffers_freed + stats.leaked_buffers
        );
    }

    #[test]
    fn reopen_closes_and_opens_devices_every_cycle() {
        let opts = SynthOptions {
            events: 20_000,
            cycles: 3,
            reopen_devices: true,
            ..Default::default()
        };
        let (_, _, stats) = generate(&opts);
        assert_eq!(stats.by_kind["device_open"], 24);
        assert_eq!(stats.by_kind["device_close"], 24);
    }
}
