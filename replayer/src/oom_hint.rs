//! What to do about an out-of-memory, in one line: the advice depends on
//! why the allocation did not fit (fragmentation or exhaustion), on how the
//! buffer spreads (a sharded buffer over a few cores needs more per core),
//! and on what the device carves from the same banks (L1_SMALL from L1,
//! the trace region from DRAM) — advice to shrink a carve-out of 0 B, or
//! to free "the L1 banks" when only a few cores were asked for, misleads.

use crate::accumulation::thousands;
use crate::findings::{OomContext, OomFinding};
use ttalloc_model::BufferType;

/// The hint for the first out-of-memory of a replay.
pub fn hint(o: &OomFinding) -> String {
    if o.fragmentation {
        return "fragmentation, not exhaustion: free the buffers that split the free space (see --bisect's minimal sites) or allocate the long-lived ones first".into();
    }
    let t = o.buffer_type.name();
    let Some(c) = o.context else {
        return format!("the {t} banks are full: free what is left behind");
    };
    let sharded = c.num_banks > 0 && c.device_banks > 0 && c.num_banks < c.device_banks;
    let full = if sharded {
        format!(
            "the buffer is sharded over {} of the {} {t} banks, so each must hold {} B: shard it over more cores (less per core) or free what is left behind",
            c.num_banks,
            c.device_banks,
            thousands(o.size.div_ceil(c.num_banks as u64)),
        )
    } else {
        format!("the {t} banks are full: free what is left behind")
    };
    match (o.buffer_type, carve_out(o.buffer_type, &c)) {
        (_, Some((name, key, bytes))) if bytes > 0 => format!(
            "{full}, or shrink {name} (now {} B per bank), which {t} shares its space with (e.g. --set {key}=...)",
            thousands(bytes)
        ),
        (BufferType::L1Small, _) => format!(
            "{full}, or give L1_SMALL more room (now {} B per bank; e.g. --set l1_small_size=...)",
            thousands(c.l1_small_size)
        ),
        (BufferType::Trace, _) => format!(
            "{full}, or give the trace region more room (now {} B per bank; e.g. --set trace_region_size=...)",
            thousands(c.trace_region_size)
        ),
        _ => full,
    }
}

/// The region carved from the same banks as `bt`: (name, config key, bytes per bank).
fn carve_out(bt: BufferType, c: &OomContext) -> Option<(&'static str, &'static str, u64)> {
    match bt {
        BufferType::L1 => Some(("L1_SMALL", "l1_small_size", c.l1_small_size)),
        BufferType::Dram => Some(("the trace region", "trace_region_size", c.trace_region_size)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_model::{DeviceId, SiteId};

    fn oom(bt: BufferType, size: u64, context: Option<OomContext>) -> OomFinding {
        OomFinding {
            event: 0,
            device: DeviceId(0),
            buffer_type: bt,
            size,
            message: String::new(),
            recorded_message: None,
            free_bytes: None,
            largest_free_block: None,
            fragmentation: false,
            site: SiteId::UNKNOWN,
            context,
        }
    }

    fn ctx(num_banks: u32, device_banks: u32, l1_small: u64, trace: u64) -> Option<OomContext> {
        Some(OomContext {
            num_banks,
            device_banks,
            l1_small_size: l1_small,
            trace_region_size: trace,
        })
    }

    #[test]
    fn no_advice_to_shrink_a_carve_out_of_nothing() {
        // An N150 opened with the defaults: L1_SMALL and the trace region are 0 B.
        let h = hint(&oom(BufferType::L1, 1 << 20, ctx(64, 64, 0, 0)));
        assert_eq!(h, "the L1 banks are full: free what is left behind");
        let h = hint(&oom(BufferType::Dram, 1 << 30, ctx(12, 12, 0, 0)));
        assert_eq!(h, "the DRAM banks are full: free what is left behind");
    }

    #[test]
    fn a_carve_out_that_is_there_is_named_with_its_size() {
        let h = hint(&oom(BufferType::L1, 1 << 20, ctx(64, 64, 32768, 0)));
        assert!(h.ends_with("or shrink L1_SMALL (now 32,768 B per bank), which L1 shares its space with (e.g. --set l1_small_size=...)"), "{h}");
        let h = hint(&oom(BufferType::Dram, 1 << 30, ctx(12, 12, 0, 33554432)));
        assert!(
            h.contains("shrink the trace region (now 33,554,432 B per bank)"),
            "{h}"
        );
    }

    #[test]
    fn a_buffer_sharded_over_a_few_cores_is_told_to_use_more() {
        // 4 of 64 cores, 2 MiB: 512 KiB per core.
        let h = hint(&oom(BufferType::L1, 2 << 20, ctx(4, 64, 0, 0)));
        assert_eq!(h, "the buffer is sharded over 4 of the 64 L1 banks, so each must hold 524,288 B: shard it over more cores (less per core) or free what is left behind");
    }

    #[test]
    fn l1_small_and_trace_are_told_to_grow() {
        let h = hint(&oom(BufferType::L1Small, 4096, ctx(1, 64, 0, 0)));
        assert!(
            h.ends_with(
                "or give L1_SMALL more room (now 0 B per bank; e.g. --set l1_small_size=...)"
            ),
            "{h}"
        );
        let h = hint(&oom(BufferType::Trace, 4096, ctx(12, 12, 0, 1 << 20)));
        assert!(h.ends_with("or give the trace region more room (now 1,048,576 B per bank; e.g. --set trace_region_size=...)"), "{h}");
    }

    #[test]
    fn fragmentation_comes_first() {
        let mut o = oom(BufferType::L1, 1 << 20, ctx(64, 64, 32768, 0));
        o.fragmentation = true;
        assert!(hint(&o).starts_with("fragmentation, not exhaustion"));
    }
}
