//! Bisect: which cycle first leaves bytes behind after warm-up, which
//! allocation in it, and which call sites leave the most per cycle —
//! aggregated over the call tree so a shared caller shows its inclusive total.

use crate::cycle_log::CycleLog;
use crate::findings::FirstLeft;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::DfsPostOrder;
use ttalloc_model::hash::FastMap;
use ttalloc_model::{InternTables, SiteId};

/// One node of the call tree with what is left behind under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteRank {
    pub site: SiteId,
    /// Bytes per cycle left behind by allocations at this site or below it.
    pub bytes_per_cycle: u64,
    /// Bytes per cycle left behind by allocations at exactly this site.
    pub self_bytes_per_cycle: u64,
    /// Frames in the stack (1 = a top-level frame).
    pub depth: usize,
    /// Its innermost frame is the user's code, not a library's
    /// (`library_frames`): such sites rank first.
    pub user_code: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bisection {
    /// 1-based index of the first cycle after warm-up that leaves bytes behind.
    pub first_cycle: Option<u32>,
    /// Its first allocation still live at the cycle's end.
    pub first: Option<FirstLeft>,
    /// Bytes left behind per cycle after warm-up (average over those cycles).
    pub bytes_per_cycle: u64,
    pub sites: Vec<SiteRank>,
    /// The op (innermost `OpBegin` scope) `first` was allocated in, if any;
    /// filled in by the caller, which has the events (`bisect_op`).
    pub first_op: Option<String>,
}

/// The first cycle after `warmup` that leaves bytes behind (index into `cycles`).
///
/// The single replay already measured every cycle, so this is a lookup in
/// the per-cycle table.
pub fn first_leaking_cycle(cycles: &CycleLog, warmup: usize) -> Option<usize> {
    cycles
        .iter()
        .enumerate()
        .skip(warmup)
        .find(|(_, c)| c.left_behind_bytes > 0)
        .map(|(i, _)| i)
}

pub fn bisect(
    cycles: &CycleLog,
    warmup: usize,
    site_left: &[(SiteId, u64)],
    interner: &InternTables,
) -> Bisection {
    // One walk: the first cycle after warm-up that leaves bytes behind,
    // and the bytes every one of them leaves.
    let mut first = None;
    let mut total = 0u64;
    for c in cycles.iter().skip(warmup) {
        if first.is_none() && c.left_behind_bytes > 0 {
            first = Some((c.index, c.first_left));
        }
        total += c.left_behind_bytes;
    }
    let counted = cycles.len().saturating_sub(warmup).max(1) as u64;
    Bisection {
        first_cycle: first.map(|(index, _)| index),
        first: first.and_then(|(_, first_left)| first_left),
        bytes_per_cycle: total / counted,
        sites: rank_sites(site_left, counted, interner),
        first_op: None,
    }
}

/// Ranks every call-tree node by the bytes left behind at or below it:
/// the user's frames before libraries' (a test runner's or a framework's
/// frames above every leak would otherwise outweigh each of them), then by
/// bytes, then the innermost first (a wrapper's caller and the wrapper tie).
pub fn rank_sites(
    site_left: &[(SiteId, u64)],
    cycles: u64,
    interner: &InternTables,
) -> Vec<SiteRank> {
    let mut graph: DiGraph<SiteId, ()> = DiGraph::new();
    let mut nodes: FastMap<SiteId, NodeIndex> = FastMap::default();
    let mut self_bytes: FastMap<SiteId, u64> = FastMap::default();
    let root = graph.add_node(SiteId::UNKNOWN);
    nodes.insert(SiteId::UNKNOWN, root);
    for &(site, bytes) in site_left {
        *self_bytes.entry(site).or_default() += bytes;
        // Add the site and its callers up to the first one already present.
        let mut cur = site;
        let mut child: Option<NodeIndex> = None;
        loop {
            let (idx, existed) = match nodes.get(&cur) {
                Some(&i) => (i, true),
                None => {
                    let i = graph.add_node(cur);
                    nodes.insert(cur, i);
                    (i, false)
                }
            };
            if let Some(c) = child {
                graph.add_edge(idx, c, ());
            }
            if existed {
                break;
            }
            child = Some(idx);
            cur = match interner.parent(cur) {
                Some(p) if p.0 < cur.0 => p,
                _ => SiteId::UNKNOWN,
            };
        }
    }
    // Inclusive totals, children before parents.
    let mut inclusive = vec![0u64; graph.node_count()];
    let mut dfs = DfsPostOrder::new(&graph, root);
    while let Some(n) = dfs.next(&graph) {
        let own = self_bytes.get(&graph[n]).copied().unwrap_or(0);
        let below: u64 = graph.neighbors(n).map(|c| inclusive[c.index()]).sum();
        inclusive[n.index()] = own + below;
    }
    let mut ranks: Vec<SiteRank> = graph
        .node_indices()
        .filter_map(|n| {
            let site = graph[n];
            let own = self_bytes.get(&site).copied().unwrap_or(0);
            // The root's inclusive total is everything: show only what has no site.
            let incl = if site == SiteId::UNKNOWN {
                own
            } else {
                inclusive[n.index()]
            };
            (incl > 0).then(|| SiteRank {
                site,
                bytes_per_cycle: incl / cycles,
                self_bytes_per_cycle: own / cycles,
                depth: interner.frame_ids(site).len(),
                user_code: crate::library_frames::is_user_site(interner, site),
            })
        })
        .collect();
    ranks.sort_by(|a, b| {
        b.user_code
            .cmp(&a.user_code)
            .then(b.bytes_per_cycle.cmp(&a.bytes_per_cycle))
            .then(b.depth.cmp(&a.depth))
            .then(a.site.cmp(&b.site))
    });
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "/venv/lib/python3.10/site-packages";

    fn function(it: &InternTables, r: &SiteRank) -> String {
        it.resolve(r.site)[0].function.clone()
    }

    #[test]
    fn a_library_wrapper_tying_with_its_user_caller_ranks_after_it() {
        // make_cache (user code) calls ttnn's Tensor.__init__, which allocates:
        // both frames hold the same 4 KiB per cycle.
        let mut it = InternTables::default();
        let site = it.intern_stack_str(&[
            ("Tensor.__init__", &format!("{LIB}/ttnn/tensor.py"), 10),
            ("make_cache", "/home/u/model.py", 20),
            ("main", "/home/u/model.py", 30),
        ]);
        let ranks = rank_sites(&[(site, 4096 * 3)], 3, &it);
        let order: Vec<String> = ranks.iter().map(|r| function(&it, r)).collect();
        // User frames first, innermost first among equal bytes; the wrapper last.
        assert_eq!(order, ["make_cache", "main", "Tensor.__init__"]);
        assert!(ranks[0].user_code && !ranks[2].user_code);
        assert!(ranks.iter().all(|r| r.bytes_per_cycle == 4096));
    }

    #[test]
    fn a_test_runners_frames_above_every_leak_rank_after_the_tests() {
        // Two tests leak 1 KiB and 3 KiB per cycle under pytest's frame,
        // which holds both (4 KiB) but is not the user's code.
        let mut it = InternTables::default();
        let runner = (
            "pytest_pyfunc_call",
            &*format!("{LIB}/_pytest/python.py"),
            187,
        );
        let a = it.intern_stack_str(&[("test_a", "/home/u/test_x.py", 5), runner]);
        let b = it.intern_stack_str(&[("test_b", "/home/u/test_x.py", 9), runner]);
        let ranks = rank_sites(&[(a, 1024), (b, 3072)], 1, &it);
        let order: Vec<(String, u64)> = ranks
            .iter()
            .map(|r| (function(&it, r), r.bytes_per_cycle))
            .collect();
        assert_eq!(
            order,
            [
                ("test_b".to_string(), 3072),
                ("test_a".to_string(), 1024),
                ("pytest_pyfunc_call".to_string(), 4096)
            ]
        );
    }
}
