use super::*;
use crate::engine::Engine;
use crate::minimize::resume::{ResumePoint, EVERY};
use ttalloc_corpora::synth::{generate, LeakSite, SynthOptions};
use ttalloc_trace::checkpoint::checkpoints_of;

/// 300,000 synthetic events (a leak from cycle 2 of 6): a subset of them
/// spans several of the oracle's chunks.
fn trace() -> (InternTables, Vec<Event>) {
    let (interner, events, _) = generate(&SynthOptions {
        events: 300_000,
        seed: 3,
        devices: 2,
        cycles: 6,
        leak_site: Some(LeakSite {
            site: 11,
            from_cycle: 2,
        }),
        reopen_devices: false,
    });
    (interner, events)
}

/// The subset, copied whole and fed from its first event: what the oracle's
/// replay must equal, whatever it copies at a time.
fn replayed_whole(o: &Oracle<'_>, events: &[Event], kept: &[u32]) -> Findings {
    let subset: Vec<Event> = kept.iter().map(|&i| events[i as usize].clone()).collect();
    let mut engine = Engine::new(o.setup());
    for (i, chunk) in subset.chunks(CHUNK).enumerate() {
        engine.feed((i * CHUNK) as u64, chunk).unwrap();
    }
    engine.finish()
}

/// A subset of most of the trace (every seventh event left out: frees of
/// allocs that are gone, ops without ends) replays, a chunk copied at a
/// time, to the findings of the subset fed whole; the count of events
/// replayed is the subset's.
#[test]
fn a_subset_replays_as_the_same_events_fed_whole() {
    let (interner, events) = trace();
    let opts = ReplayOptions::default();
    let target = Target::none();
    let mut o = Oracle::new(&events, &interner, &target, &opts, CycleRule::MarkerAll);
    let kept: Vec<u32> = (0..events.len() as u32).filter(|i| i % 7 != 3).collect();
    assert!(kept.len() > 3 * CHUNK, "the subset spans several chunks");
    let got = o.replay(&kept).unwrap();
    assert_eq!(got, replayed_whole(&o, &events, &kept));
    assert_eq!(o.events_replayed, kept.len() as u64);
    assert!(!got.leaks.is_empty() && got.unknown_frees > 0);
}

/// A subset that keeps everything before a checkpoint resumes there and
/// goes on through the rest in chunks: its leaks (the allocations left
/// live, by their ordinal in the subset) are those of the subset replayed
/// from its first event, and only the events after the checkpoint are
/// replayed.
#[test]
fn a_resumed_subset_leaves_the_same_buffers_behind() {
    let (interner, events) = trace();
    let opts = ReplayOptions::default();
    let target = Target::none();
    let mut o = Oracle::new(&events, &interner, &target, &opts, CycleRule::MarkerAll);
    let checkpoints = checkpoints_of(&events, EVERY, &interner).unwrap();
    let points: Vec<u64> = checkpoints.iter().map(|c| c.next_event).collect();
    let (_, known) = o.replay_all(&points).unwrap();
    let at = checkpoints[1].next_event as u32;
    let kept: Vec<u32> = (0..events.len() as u32)
        .filter(|&i| i < at || i % 5 != 2)
        .collect();
    o.resume_points = checkpoints
        .into_iter()
        .zip(known)
        .map(|(checkpoint, known)| ResumePoint { checkpoint, known })
        .filter(|p| p.at() <= at as u64)
        .collect();
    o.events_replayed = 0;
    let resumed = o.replay(&kept).unwrap();
    assert_eq!(o.resumed, 1);
    assert_eq!(o.events_replayed, (kept.len() - at as usize) as u64);
    let whole = replayed_whole(&o, &events, &kept);
    let leaked = |f: &Findings| f.leaks.iter().map(|l| l.event).collect::<Vec<_>>();
    assert!(!leaked(&whole).is_empty());
    assert_eq!(leaked(&resumed), leaked(&whole));
}

/// Cache keys of distinct subsets differ: all 4,096 subsets of 12 ordinals
/// (odd and even lengths, the last ordinal alone in its pair or not), and
/// subsets of a large set that differ in one place only.
#[test]
fn distinct_subsets_have_distinct_digests() {
    let mut seen = std::collections::HashSet::new();
    for mask in 0u32..1 << 12 {
        let kept: Vec<u32> = (0..12).filter(|b| mask & 1 << b != 0).collect();
        assert!(seen.insert(subset_digest(&kept)), "{kept:?}");
    }
    let big: Vec<u32> = (0..100_000).collect();
    for gone in [0, 1, 50_000, 99_998, 99_999] {
        let kept: Vec<u32> = big.iter().copied().filter(|&i| i != gone).collect();
        assert!(seen.insert(subset_digest(&kept)), "all but {gone}");
        let mut moved = kept.clone();
        moved[gone.min(99_997) as usize] += 100_000;
        assert!(seen.insert(subset_digest(&moved)), "one moved near {gone}");
    }
}

/// Units come in key order whatever order their keys first appear in, a
/// key seen again after another one joins its unit, and events without a
/// key form the base.
#[test]
fn units_are_grouped_by_key_in_key_order() {
    let keyed = [
        (0, Some(5)),
        (1, Some(5)),
        (2, None),
        (3, Some(1)),
        (4, Some(5)),
        (6, Some(9)),
        (7, Some(1)),
    ];
    let (base, units) = group_by(keyed);
    assert_eq!(base.iter().collect::<Vec<_>>(), vec![2]);
    let units: Vec<Vec<u32>> = units.iter().map(|u| u.iter().collect()).collect();
    assert_eq!(units, vec![vec![3, 7], vec![0, 1, 4], vec![6]]);
}

/// The digest of every event, not listed, is the digest of their list:
/// the search takes the trace as known to keep the finding by it.
#[test]
fn all_events_digest_as_their_list() {
    for n in [0u32, 1, 2, 3, 4, 5, 1000, 1001, 65_537] {
        let list: Vec<u32> = (0..n).collect();
        assert_eq!(all_digest(n), subset_digest(&list), "{n} events");
    }
}

/// Stage 1's units from the cycles' ends: the same events, units and
/// order as every event keyed by its cycle (the search's grouping before
/// the units came from the ends), for cycles in order and apart or not
/// (overlapping, out of order, reversed, past the trace's end: these must
/// not take the ends).
mod cycle_units_as_keyed_events {
    use super::*;
    use proptest::prelude::*;

    fn lists(g: (Unit, Vec<Unit>)) -> (Vec<u32>, Vec<Vec<u32>>) {
        (
            g.0.iter().collect(),
            g.1.iter().map(|u| u.iter().collect()).collect(),
        )
    }

    /// Cycles in order and apart: gaps and lengths from 0.
    fn apart() -> impl Strategy<Value = Vec<CycleSpan>> {
        proptest::collection::vec((0u64..5, 0u64..9), 0..12).prop_map(|steps| {
            let mut at = 0;
            steps
                .into_iter()
                .map(|(gap, len)| {
                    let start = at + gap;
                    at = start + len + 1;
                    CycleSpan {
                        start_event: start,
                        end_event: start + len,
                    }
                })
                .collect()
        })
    }

    fn any_spans() -> impl Strategy<Value = Vec<CycleSpan>> {
        proptest::collection::vec((0u64..60, 0u64..60), 0..8).prop_map(|v| {
            v.into_iter()
                .map(|(start_event, end_event)| CycleSpan {
                    start_event,
                    end_event,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn cycles_in_order_and_apart(cycles in apart(), events in 0u32..80) {
            prop_assert_eq!(lists(cycle_units(&cycles, events)), lists(cycles_keyed(&cycles, events)));
        }

        #[test]
        fn any_cycles(cycles in any_spans(), events in 0u32..80) {
            prop_assert_eq!(lists(cycle_units(&cycles, events)), lists(cycles_keyed(&cycles, events)));
        }
    }

    /// A trace's cycles take no walk over their events: each is a run.
    #[test]
    fn cycles_apart_are_runs() {
        let cycles = [(2, 4), (5, 5), (9, 20)].map(|(start_event, end_event)| CycleSpan {
            start_event,
            end_event,
        });
        let (base, units) = cycle_units(&cycles, 15);
        assert!(units.iter().all(|u| matches!(u, Unit::Run(..))));
        assert_eq!(
            lists((base, units)),
            (
                vec![0, 1, 6, 7, 8],
                vec![vec![2, 3, 4], vec![5], (9..15).collect()]
            )
        );
    }
}
