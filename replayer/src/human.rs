//! The human rendering of a [`Report`]: like a compiler diagnostic — the
//! finding, then the call site's frames, then a one-line hint — and a summary.

use crate::accumulation::{self, thousands, Growth};
use crate::findings::{LeakClass, ObjectKind};
use crate::report::{LeakOut, Report, Site};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use ttalloc_model::units::plural;
use ttalloc_model::ResolvedFrame;

impl Report {
    /// The human rendering: one diagnostic per finding, then a summary.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        self.render_leaks(&mut out);
        self.render_tests(&mut out);
        self.render_growth(&mut out);
        self.render_oom(&mut out);
        self.render_frees(&mut out);
        self.render_cb_and_divergence(&mut out);
        self.render_bisect(&mut out);
        self.render_summary(&mut out);
        out
    }

    fn render_leaks(&self, out: &mut String) {
        if self.leaks_total > self.leaks.len() as u64 {
            let _ = writeln!(
                out,
                "note: {} leaked objects in all; the first {} (by allocation) are shown\n",
                thousands(self.leaks_total),
                thousands(self.leaks.len() as u64)
            );
        }
        // One diagnostic per (class, site, object kind), in order of first event.
        let mut groups: Vec<(LeakClass, ObjectKind, &Site, Vec<&LeakOut>)> = Vec::new();
        for l in &self.leaks {
            match groups
                .iter_mut()
                .find(|g| g.0 == l.class && g.1 == l.object && *g.2 == l.site)
            {
                Some(g) => g.3.push(l),
                None => groups.push((l.class, l.object, &l.site, vec![l])),
            }
        }
        for (class, object, site, leaks) in groups {
            let n = leaks.len();
            let noun = match (object, n) {
                (ObjectKind::Buffer, 1) => "buffer",
                (ObjectKind::Buffer, _) => "buffers",
                (ObjectKind::Program, 1) => "program",
                (ObjectKind::Program, _) => "programs",
                (ObjectKind::Trace, 1) => "trace",
                (ObjectKind::Trace, _) => "traces",
            };
            let (code, what, hint) = match class {
                LeakClass::OutlivedDevice => (
                    "outlived-device",
                    "outlived their device",
                    "tt-metal's deallocate_all() releases these at device close without a tracking call; deallocate them (or report the free) before closing the device",
                ),
                LeakClass::LeftBehind => (
                    "left-behind",
                    "left behind by their cycle and never freed",
                    "each repetition allocates these and nothing frees them; find the owner that should deallocate (a cache, a captured runtime argument, a path like mark_as_deallocated that skips tracking)",
                ),
                LeakClass::NeverFreed => (
                    "never-freed",
                    "never freed",
                    "still live when the trace ended; free them before exit or close the device",
                ),
            };
            let mut by_type: BTreeMap<&str, (u64, Vec<u32>)> = BTreeMap::new();
            for l in &leaks {
                let e = by_type.entry(&l.buffer_type).or_default();
                e.0 += l.size;
                e.1.push(l.device);
            }
            let amounts: Vec<String> = by_type
                .iter()
                .map(|(bt, (bytes, devs))| {
                    let ids: Vec<ttalloc_model::DeviceId> =
                        devs.iter().map(|&d| d.into()).collect();
                    let plural = if accumulation::device_ranges(&ids).contains([',', '–']) {
                        "s"
                    } else {
                        ""
                    };
                    format!(
                        "{} B {bt} on device{plural} {}",
                        thousands(*bytes),
                        accumulation::device_ranges(&ids)
                    )
                })
                .collect();
            let first = leaks[0];
            // Past the listing cap a group's count is of the listed leaks only:
            // say so instead of presenting it as the total.
            let listed = if self.leaks_total > self.leaks.len() as u64 {
                format!(
                    " (among the first {} listed of {} leaked objects)",
                    thousands(self.leaks.len() as u64),
                    thousands(self.leaks_total)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "warning[{code}]: {} {noun} {what}{listed}: {}",
                thousands(n as u64),
                amounts.join(", ")
            );
            let cycle = first
                .cycle
                .map(|c| format!(" (cycle {c})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  --> first allocated at event {}{cycle}, {}, {} B",
                first.event,
                first.name,
                thousands(first.size)
            );
            render_site(out, site);
            let _ = writeln!(out, "   = hint: {hint}\n");
        }
    }

    fn render_growth(&self, out: &mut String) {
        if self.growth.is_empty() {
            if !self.cycles.is_empty() && self.warmup >= self.cycles.len() {
                let _ = writeln!(
                    out,
                    "note: growth was not analysed: the warm-up of {} excludes all {} of the trace (use a smaller --warmup)\n",
                    plural(self.warmup as u64, "cycle"),
                    plural(self.cycles.len() as u64, "cycle")
                );
            }
            return;
        }
        let g: Vec<Growth> = self
            .growth
            .iter()
            .map(|g| Growth {
                device: g.device.into(),
                buffer_type: g.buffer_type.parse().expect("a type name we wrote"),
                bytes_per_cycle: g.bytes_per_cycle,
                since_cycle: g.since_cycle,
            })
            .collect();
        for line in accumulation::describe(&g) {
            let _ = writeln!(out, "warning[growth]: {line}");
        }
        let _ = writeln!(
            out,
            "   = note: {} cycles delimited by {}, the first {} excluded as warm-up",
            self.cycles.len(),
            self.cycle_kind,
            self.warmup
        );
        let _ = writeln!(
            out,
            "   = hint: run with --bisect to find the call site that first leaves bytes behind\n"
        );
    }

    fn render_oom(&self, out: &mut String) {
        let Some(o) = &self.oom else { return };
        let _ = writeln!(out, "error[out-of-memory]: {}", o.message);
        let _ = writeln!(
            out,
            "  --> event {}, device {}, {} {} B{}",
            o.event,
            o.device,
            o.buffer_type,
            thousands(o.size),
            if self.ooms > 1 {
                format!(" (first of {} allocations that did not fit)", self.ooms)
            } else {
                String::new()
            }
        );
        render_site(out, &o.site);
        match (&o.recorded_message, o.message_matches) {
            (Some(_), Some(true)) => {
                let _ = writeln!(
                    out,
                    "   = note: tt-metal's message was the same, byte for byte"
                );
            }
            (Some(recorded), _) => {
                let _ = writeln!(
                    out,
                    "warning[oom-message]: the model's message differs from tt-metal's\n   = tt-metal: {recorded}\n   = model:    {}",
                    o.model_message
                );
            }
            _ => {}
        }
        if let (Some(free), Some(largest)) = (o.free_bytes, o.largest_free_block) {
            let _ = writeln!(
                out,
                "   = note: {} B free per bank, largest free block {} B",
                thousands(free),
                thousands(largest)
            );
        }
        let _ = writeln!(out, "   = hint: {}\n", o.hint);
    }

    fn render_frees(&self, out: &mut String) {
        if let Some(b) = &self.first_unknown_free {
            let _ = writeln!(
                out,
                "warning[unknown-free]: {} deallocation(s) for unknown buffers (allocated before tracking started?)",
                self.unknown_frees
            );
            let _ = writeln!(
                out,
                "  --> first at event {}, device {}, {}",
                b.event, b.device, b.name
            );
            render_site(out, &b.site);
            let _ = writeln!(out, "   = hint: start recording before the buffers are created, or check the buffer ids the client sends\n");
        }
        if let Some(b) = &self.first_double_free {
            let _ = writeln!(
                out,
                "error[double-free]: {} buffer(s) freed twice",
                self.double_frees
            );
            let _ = writeln!(
                out,
                "  --> first at event {}, device {}, {}",
                b.event, b.device, b.name
            );
            render_site(out, &b.site);
            let _ = writeln!(
                out,
                "   = hint: the second free is the bug: the owner released it already\n"
            );
        }
    }

    fn render_cb_and_divergence(&self, out: &mut String) {
        if let Some(c) = &self.first_cb_clash {
            let _ = writeln!(out, "error[cb-clash]: {}", c.message);
            let _ = writeln!(
                out,
                "  --> event {}, device {} ({} clash(es) in all)",
                c.event, c.device, self.cb_clashes
            );
            render_site(out, &c.site);
            let _ = writeln!(out, "   = hint: the program's static circular buffers grow into L1 buffers; shrink the CBs or allocate the L1 buffers elsewhere\n");
        }
        if let Some(d) = &self.first_divergence {
            let model = d
                .model
                .map_or("no address (could not place it)".to_string(), |m| {
                    format!("{m:#x}")
                });
            let _ = writeln!(
                out,
                "warning[divergence]: {} allocation(s) placed differently from the recording",
                self.divergences
            );
            let _ = writeln!(
                out,
                "  --> first at event {}, device {}, {}: recorded address {:#x}, model {model}",
                d.event, d.device, d.name, d.recorded
            );
            let _ = writeln!(out, "   = hint: the device config differs from the hardware's (try --arch or --set), or the model is off\n");
        }
        if let Some(r) = &self.first_placed_refusal {
            let _ = writeln!(
                out,
                "warning[divergence]: the model placed {} allocation(s) tt-metal refused",
                self.placed_refusals
            );
            let _ = writeln!(
                out,
                "  --> first at event {}, device {}, {} {} B: the model put it at {:#x}; tt-metal said: {}",
                r.event,
                r.device,
                r.buffer_type,
                thousands(r.size),
                r.model_address,
                r.recorded_message
            );
            render_site(out, &r.site);
            let _ = writeln!(out, "   = hint: the model had more room than the device: a device config that differs from the hardware's (try --arch or --set), or allocations the recording missed\n");
        }
    }

    /// With test cycles: each test that left device memory behind, by type.
    fn render_tests(&self, out: &mut String) {
        if self.cycle_kind != "test" {
            return;
        }
        let mut leaking = 0;
        for c in self.cycles.iter().filter(|c| c.left_behind_bytes > 0) {
            leaking += 1;
            let l = &c.left_behind;
            let parts: Vec<String> = [
                ("DRAM", l.dram),
                ("L1", l.l1),
                ("L1_SMALL", l.l1_small),
                ("TRACE", l.trace),
            ]
            .iter()
            .filter(|(_, b)| *b > 0)
            .map(|(n, b)| format!("{} B {n}", thousands(*b)))
            .collect();
            let _ = writeln!(
                out,
                "warning[test-leak]: {} left {} behind (cycle {}, {} buffer(s))",
                c.name.as_deref().unwrap_or("?"),
                parts.join(" + "),
                c.index,
                c.left_behind_buffers
            );
        }
        let _ = writeln!(
            out,
            "note: {} test(s), {leaking} left device memory behind\n",
            self.cycles.len()
        );
    }

    fn render_bisect(&self, out: &mut String) {
        let Some(b) = &self.bisect else { return };
        match (b.first_cycle, b.first_event) {
            (Some(c), Some(e)) => {
                let what = match (&b.first_cycle_name, self.cycle_kind.as_str()) {
                    (Some(name), "test") => format!("test {name} (cycle {c}) is the first"),
                    (Some(name), _) => format!("cycle {c} ({name}) is the first"),
                    (None, _) => format!("cycle {c} is the first"),
                };
                let _ = writeln!(
                    out,
                    "note[bisect]: {what} after warm-up to leave bytes behind ({} B per cycle after warm-up)",
                    thousands(b.bytes_per_cycle)
                );
                let _ = writeln!(
                    out,
                    "  --> its first allocation still live at the cycle's end: event {e}, device {}, {}{}",
                    b.first_device.unwrap_or_default(),
                    b.first_buffer_name.as_deref().unwrap_or("buffer ?"),
                    b.first_op
                        .as_deref()
                        .map(|op| format!(", in op {op}"))
                        .unwrap_or_default(),
                );
                if let Some(site) = &b.site {
                    render_site(out, site);
                }
            }
            _ => {
                let _ = writeln!(
                    out,
                    "note[bisect]: no cycle after warm-up leaves bytes behind"
                );
            }
        }
        if !b.sites.is_empty() {
            let _ = writeln!(
                out,
                "   = sites by bytes left behind per cycle (inclusive of callees; your code first, then libraries'):"
            );
            for r in b.sites.iter().take(10) {
                let name = r
                    .site
                    .frames
                    .first()
                    .map_or("<no call site>".to_string(), frame_text);
                let library = if r.user_code || r.site.frames.is_empty() {
                    ""
                } else {
                    "  (library)"
                };
                let _ = writeln!(
                    out,
                    "       {:>14} B  {name}{library}",
                    thousands(r.bytes_per_cycle)
                );
            }
        }
        if let Some(m) = &b.minimal_sites {
            let _ = writeln!(
                out,
                "note[ddmin]: releasing the buffers of these {} site(s) at the end of their cycle makes the {} disappear ({} replays):",
                m.sites.len(),
                if m.failure == "oom" { "out-of-memory" } else { "growth" },
                m.replays
            );
            for s in &m.sites {
                render_site(out, s);
            }
        }
        out.push('\n');
    }

    fn render_summary(&self, out: &mut String) {
        let devs: Vec<ttalloc_model::DeviceId> = self.devices.iter().map(|&d| d.into()).collect();
        let _ = writeln!(
            out,
            "replayed {} events on {} device(s) ({}); {} cycle(s) by {}",
            thousands(self.events),
            self.devices.len(),
            if devs.is_empty() {
                "none".into()
            } else {
                accumulation::device_ranges(&devs)
            },
            self.cycles.len(),
            self.cycle_kind
        );
        for (dev, p) in &self.peak {
            let parts: Vec<String> = [
                ("DRAM", p.dram),
                ("L1", p.l1),
                ("L1_SMALL", p.l1_small),
                ("TRACE", p.trace),
            ]
            .iter()
            .filter(|(_, b)| *b > 0)
            .map(|(n, b)| {
                let ev = self.peak_events.get(dev).map(|e| match *n {
                    "DRAM" => e.dram,
                    "L1" => e.l1,
                    "L1_SMALL" => e.l1_small,
                    _ => e.trace,
                });
                format!("{n} {} B (event {})", thousands(*b), ev.unwrap_or_default())
            })
            .collect();
            if !parts.is_empty() {
                let _ = writeln!(out, "  peak on device {dev}: {}", parts.join(", "));
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  note: {w}");
        }
        if let Some(r) = &self.first_rejection {
            let _ = writeln!(
                out,
                "  note: the model refused {} allocation(s), first: {r}",
                self.rejected_allocs
            );
        }
        if let Some(t) = &self.truncated {
            let _ = writeln!(
                out,
                "  note: the trace is truncated ({t}); replayed what was recovered"
            );
        }
        if !self.has_findings() {
            let _ = writeln!(
                out,
                "no findings: nothing left behind, no growth, no out-of-memory, no bad frees"
            );
        }
    }
}

fn frame_text(f: &ResolvedFrame) -> String {
    format!("{} ({}:{})", f.function, f.file, f.line)
}

/// The site's frames, innermost first, like a traceback read bottom-up.
fn render_site(out: &mut String, site: &Site) {
    let _ = writeln!(out, "   |");
    if site.frames.is_empty() {
        let _ = writeln!(out, "   | <no call site recorded>");
    }
    // Runs of library frames (a test runner's, the stdlib's) say little:
    // past the innermost frame, a run of two or more is one line.
    let library = |f: &ResolvedFrame| crate::library_frames::is_library_file(&f.file);
    let mut i = 0;
    while i < site.frames.len() {
        let f = &site.frames[i];
        if i == 0 {
            let _ = writeln!(out, "   | at {}", frame_text(f));
            i += 1;
            continue;
        }
        let run = site.frames[i..].iter().take_while(|f| library(f)).count();
        if run >= 2 {
            let _ = writeln!(
                out,
                "   |   called from {run} library frames (--json lists them)"
            );
            i += run;
        } else {
            let _ = writeln!(out, "   |   called from {}", frame_text(f));
            i += 1;
        }
    }
    let _ = writeln!(out, "   |");
}
