//! Accumulation: the steady per-cycle growth of tracked live bytes after the
//! warm-up cycles, per device and buffer type.

use crate::cycle_log::CycleLog;
use crate::findings::{PerType, TYPES};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use ttalloc_model::{BufferType, DeviceId};

/// Growth of one device and buffer type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Growth {
    pub device: DeviceId,
    pub buffer_type: BufferType,
    /// Average growth per cycle after warm-up (floor).
    pub bytes_per_cycle: u64,
    /// First cycle after warm-up whose end shows more than the previous one.
    pub since_cycle: u32,
}

/// Per device and type, what the walk over the cycles has seen so far.
#[derive(Clone, Copy, Default)]
struct Track {
    /// Live bytes at the end of the cycle before (at the start of the first).
    before: u64,
    /// (position, bytes before it, index) of the first cycle after warm-up that grew.
    since: Option<(usize, u64, u32)>,
    /// Cycles from `since` on that ended with more than they began with.
    grew: usize,
}

/// Steady growth per device and type after `warmup` cycles; only positive
/// growth is returned, ordered by device then type.
///
/// Growth starts at the first cycle after warm-up whose end shows more live
/// bytes than the one before (`since_cycle`). From there to the last cycle
/// it must be steady — more at the end than before `since_cycle`, and an
/// increase in at least half of those cycles — so a cache that fills during
/// a few early cycles is not reported. `bytes_per_cycle` is the increase
/// from before `since_cycle` to the end, divided by those cycles (floor).
///
/// One walk over the cycles, keeping a few words per device and type.
pub fn growth(cycles: &CycleLog, warmup: usize) -> Vec<Growth> {
    let n = cycles.len();
    if n <= warmup {
        return Vec::new();
    }
    let mut tracks: BTreeMap<DeviceId, [Track; 4]> = BTreeMap::new();
    // Devices that ever appear at a cycle's end (a device absent from a
    // cycle's table holds 0 bytes there).
    let mut reported: BTreeSet<DeviceId> = BTreeSet::new();
    for (k, c) in cycles.iter().enumerate() {
        if k == 0 {
            for (d, t) in &c.live_before {
                let tr = tracks.entry(*d).or_default();
                for s in 0..4 {
                    tr[s].before = t[s];
                }
            }
        }
        for d in c.live_after.keys() {
            tracks.entry(*d).or_default();
            reported.insert(*d);
        }
        for (d, tr) in tracks.iter_mut() {
            let after = c.live_after.get(d).copied().unwrap_or([0; 4]);
            for (t, &now) in tr.iter_mut().zip(&after) {
                if k >= warmup && now > t.before {
                    t.since.get_or_insert((k, t.before, c.index));
                    t.grew += 1;
                }
                t.before = now;
            }
        }
    }
    let mut out = Vec::new();
    for d in reported {
        for (t, bt) in tracks[&d].iter().zip(TYPES) {
            let Some((since, start, since_cycle)) = t.since else {
                continue;
            };
            let end = t.before;
            let span = n - since;
            if end <= start || t.grew * 2 < span {
                continue;
            }
            out.push(Growth {
                device: d,
                buffer_type: bt,
                bytes_per_cycle: (end - start) / span as u64,
                since_cycle,
            });
        }
    }
    out
}

/// Growth summed over devices, per type.
pub fn total_per_type(g: &[Growth]) -> PerType {
    let mut t = [0; 4];
    for x in g {
        if let Some(s) = crate::findings::type_slot(x.buffer_type) {
            t[s] += x.bytes_per_cycle;
        }
    }
    t
}

/// "DRAM +36,864 B per cycle on each of devices 0–7, since cycle 2", one
/// line per (type, amount, first cycle) group.
pub fn describe(g: &[Growth]) -> Vec<String> {
    let mut groups: Vec<(BufferType, u64, u32, Vec<DeviceId>)> = Vec::new();
    for x in g {
        match groups.iter_mut().find(|(bt, b, s, _)| {
            *bt == x.buffer_type && *b == x.bytes_per_cycle && *s == x.since_cycle
        }) {
            Some(grp) => grp.3.push(x.device),
            None => groups.push((
                x.buffer_type,
                x.bytes_per_cycle,
                x.since_cycle,
                vec![x.device],
            )),
        }
    }
    groups.sort_by_key(|g| (g.0, g.3[0]));
    groups
        .into_iter()
        .map(|(bt, bytes, since, devs)| {
            let on = if devs.len() == 1 {
                format!("on device {}", devs[0])
            } else {
                format!("on each of devices {}", device_ranges(&devs))
            };
            format!(
                "{bt} +{} B per cycle {on}, since cycle {since}",
                thousands(bytes)
            )
        })
        .collect()
}

/// "0–7", "0, 2, 4–5".
pub fn device_ranges(devs: &[DeviceId]) -> String {
    let mut ids: Vec<u32> = devs.iter().map(|d| d.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}–{}", ids[i], ids[j])
        } else {
            ids[i].to_string()
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// 36864 -> "36,864" (the one formatter every command uses).
pub use ttalloc_model::units::thousands;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_device_ranges() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(36864), "36,864");
        assert_eq!(thousands(1234567), "1,234,567");
        let d = |v: &[u32]| v.iter().map(|&x| DeviceId(x)).collect::<Vec<_>>();
        assert_eq!(device_ranges(&d(&[0, 1, 2, 3, 4, 5, 6, 7])), "0–7");
        assert_eq!(device_ranges(&d(&[4, 0, 2, 5])), "0, 2, 4–5");
        assert_eq!(device_ranges(&d(&[3])), "3");
    }

    /// The definition, read literally over a slice (the walk must agree).
    fn growth_by_definition(cycles: &[crate::findings::CycleStats], warmup: usize) -> Vec<Growth> {
        let n = cycles.len();
        if n <= warmup {
            return Vec::new();
        }
        let live =
            |m: &BTreeMap<DeviceId, PerType>, d: DeviceId, s: usize| m.get(&d).map_or(0, |t| t[s]);
        let devices: BTreeSet<DeviceId> = cycles
            .iter()
            .flat_map(|c| c.live_after.keys().copied())
            .collect();
        let mut out = Vec::new();
        for d in devices {
            for (slot, bt) in TYPES.iter().enumerate() {
                let after = |k: usize| live(&cycles[k].live_after, d, slot);
                let before = |k: usize| {
                    if k == 0 {
                        live(&cycles[0].live_before, d, slot)
                    } else {
                        after(k - 1)
                    }
                };
                let Some(since) = (warmup..n).find(|&k| after(k) > before(k)) else {
                    continue;
                };
                let (start, end) = (before(since), after(n - 1));
                let span = n - since;
                let grew = (since..n).filter(|&k| after(k) > before(k)).count();
                if end <= start || grew * 2 < span {
                    continue;
                }
                out.push(Growth {
                    device: d,
                    buffer_type: *bt,
                    bytes_per_cycle: (end - start) / span as u64,
                    since_cycle: cycles[since].index,
                });
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn the_walk_agrees_with_the_definition(
            tables in proptest::collection::vec(
                proptest::collection::btree_map(0u32..3, proptest::array::uniform4(0u64..5), 0..3),
                1..30,
            ),
            first in proptest::collection::btree_map(0u32..3, proptest::array::uniform4(0u64..5), 0..3),
            warmup in 0usize..4,
        ) {
            let table = |m: &BTreeMap<u32, PerType>| -> BTreeMap<DeviceId, PerType> {
                m.iter().map(|(d, t)| (DeviceId::new(*d), *t)).collect()
            };
            let cycles: Vec<crate::findings::CycleStats> = tables
                .iter()
                .enumerate()
                .map(|(i, after)| crate::findings::CycleStats {
                    index: i as u32 + 1,
                    span: crate::cycles::CycleSpan { start_event: i as u64 * 10, end_event: i as u64 * 10 + 9 },
                    live_before: if i == 0 { table(&first) } else { table(&tables[i - 1]) },
                    live_after: table(after),
                    left_behind_bytes: 0,
                    left_behind_buffers: 0,
                    left_behind: [0; 4],
                    first_left: None,
                    label: None,
                    peak: BTreeMap::new(),
                })
                .collect();
            let log: CycleLog = cycles.iter().cloned().collect();
            proptest::prop_assert_eq!(growth(&log, warmup), growth_by_definition(&cycles, warmup));
        }
    }
}
