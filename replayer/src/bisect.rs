//! Bisect: which cycle first leaves bytes behind after warm-up, which
//! allocation in it, and which call sites leave the most per cycle —
//! aggregated over the call tree so a shared caller shows its inclusive total.

use crate::findings::{CycleStats, FirstLeft};
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
}

/// The first cycle after `warmup` that leaves bytes behind (index into `cycles`).
///
/// The single replay already measured every cycle, so this is a lookup in
/// the per-cycle table.
pub fn first_leaking_cycle(cycles: &[CycleStats], warmup: usize) -> Option<usize> {
    (warmup..cycles.len()).find(|&i| cycles[i].left_behind_bytes > 0)
}

pub fn bisect(
    cycles: &[CycleStats],
    warmup: usize,
    site_left: &[(SiteId, u64)],
    interner: &InternTables,
) -> Bisection {
    let first = first_leaking_cycle(cycles, warmup);
    let counted = cycles.len().saturating_sub(warmup).max(1) as u64;
    let total: u64 = cycles
        .iter()
        .skip(warmup)
        .map(|c| c.left_behind_bytes)
        .sum();
    Bisection {
        first_cycle: first.map(|i| cycles[i].index),
        first: first.and_then(|i| cycles[i].first_left),
        bytes_per_cycle: total / counted,
        sites: rank_sites(site_left, counted, interner),
    }
}

/// Ranks every call-tree node by the bytes left behind at or below it.
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
            })
        })
        .collect();
    ranks.sort_by(|a, b| {
        b.bytes_per_cycle
            .cmp(&a.bytes_per_cycle)
            .then(b.depth.cmp(&a.depth))
            .then(a.site.cmp(&b.site))
    });
    ranks
}
