//! The event stream: ops, buffers, cycles, device reopen and the epilogue.

use std::collections::{HashMap, VecDeque};
use ttalloc_model::{
    event::join_argv, Arch, BufferId, BufferType, DeviceId, Event, EventKind, EventTag,
    InternTables, Pid, ProgramId, SiteId, StringId, TraceId,
};

use super::layout::{wormhole_config, Device, DRAM_BANKS, L1_BANKS, L1_BASE};
use super::rng::Rng;
use super::vocabulary::{alloc_sites, free_sites, SiteSpec, OPS};
use super::{SynthOptions, SynthStats, PID, START_TS, TILE_PAGE};

struct LiveBuf {
    device: u32,
    buffer_type: BufferType,
    address: u64,
    per_bank: u64,
    size: u64,
    leaked: bool,
    cycle: u32,
}

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
        let sites = alloc_sites(&mut rng, t);
        let free_sites = free_sites(t);
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
                per_bank_size: None,
                label: StringId::EMPTY,
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
