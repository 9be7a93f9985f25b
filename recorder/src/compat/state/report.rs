//! What the registry prints in the original server's words: DUMP_REMAINING's
//! table and the periodic statistics block.

use super::{BufferEntry, Registry};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use ttalloc_model::BufferType;

/// Live buffers of one device by type number: (address, entry).
type ByType<'a> = BTreeMap<u8, Vec<(u64, &'a BufferEntry)>>;

impl Registry {
    /// What DUMP_REMAINING prints, in the original server's words.
    pub fn dump_remaining(&self) -> Vec<String> {
        let mut out = vec![
            "╔══════════════════════════════════════════════════════════════╗".to_owned(),
            "║           REMAINING ALLOCATED BUFFERS                       ║".to_owned(),
            "╚══════════════════════════════════════════════════════════════╝".to_owned(),
            format!("Total tracked allocations: {}", self.buffers.len()),
        ];
        if self.buffers.is_empty() {
            out.push("✓ No buffers remaining - perfect cleanup!".to_owned());
            return out;
        }
        let mut by_device: BTreeMap<i32, ByType<'_>> = BTreeMap::new();
        for (&(dev, addr), e) in &self.buffers {
            by_device
                .entry(dev)
                .or_default()
                .entry(e.buffer_type as u8)
                .or_default()
                .push((addr, e));
        }
        for (dev, types) in by_device {
            out.push(format!("Device {dev}:"));
            for (bt, mut bufs) in types {
                bufs.sort_by_key(|(a, _)| *a);
                let total = bufs.iter().fold(0u64, |t, (_, e)| t.saturating_add(e.size));
                let name = BufferType::from_u8(bt).map(|b| b.name()).unwrap_or("?");
                out.push(format!(
                    "  {name}: {} buffers, {} MB total",
                    bufs.len(),
                    fmt_g(total as f64 / (1024.0 * 1024.0))
                ));
                if bufs.len() <= 10 {
                    for (addr, e) in bufs {
                        out.push(format!(
                            "    - Buffer {addr:#x}: {} KB (PID {}, ref_count={})",
                            fmt_g(e.size as f64 / 1024.0),
                            e.owner.pid,
                            e.refs
                        ));
                    }
                }
            }
        }
        out.push(format!("Total remaining buffers: {}", self.buffers.len()));
        out
    }

    /// The original server's 10-second statistics block.
    pub fn statistics(&self) -> String {
        let mut s = String::from("\n📊 Current Statistics:\n");
        for (dev, c) in &self.devices {
            let total = [c.dram, c.l1, c.l1_small, c.trace]
                .into_iter()
                .fold(0u64, u64::saturating_add);
            if total > 0 || c.num_buffers > 0 {
                let _ = writeln!(s, "  Device {dev}:");
                let _ = writeln!(s, "    Buffers: {}", c.num_buffers);
                let _ = writeln!(
                    s,
                    "    DRAM: {} bytes ({} KB)",
                    c.dram,
                    fmt_g(c.dram as f64 / 1024.0)
                );
                let _ = writeln!(
                    s,
                    "    L1: {} bytes ({} KB)",
                    c.l1,
                    fmt_g(c.l1 as f64 / 1024.0)
                );
                let _ = writeln!(s, "    Total: {total} bytes");
            }
        }
        let _ = writeln!(s, "  Active allocations: {}", self.buffers.len());
        s
    }
}

/// Formats like C++ `std::cout << double` (`%g`, 6 significant digits).
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        let s = format!("{:.5e}", v);
        // 1.50000e7 -> 1.5e+07
        let (mant, e) = s.split_once('e').unwrap();
        let mant = mant.trim_end_matches('0').trim_end_matches('.');
        let e: i32 = e.parse().unwrap();
        return format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}
