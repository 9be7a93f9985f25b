//! Candidates that keep the whole trace up to a checkpoint replay from it.
//!
//! A candidate subset that keeps every event before a checkpoint's
//! `next_event` drives the engine exactly as the original replay did up to
//! there, so its replay can start from the checkpoint (restored with the
//! model addresses the original replay had there) instead of event 0. Only
//! where that cannot change the verdict:
//! - a leak: every leaked allocation the target names that comes before the
//!   checkpoint is still held there (so the resumed replay sees it live, at
//!   its original ordinal — ordinals before the checkpoint are the same in
//!   the candidate and the original);
//! - an out-of-memory: the checkpoint is before the original's first one
//!   (so the candidate has none before it either).
//!
//! Other findings depend on history a checkpoint does not carry (cycles,
//! freed ids, first occurrences), and always replay from the start.

use super::target::{FindingKind, Target};
use crate::engine::ModelAddresses;
use crate::findings::Findings;
use ttalloc_model::EventKind;
use ttalloc_trace::Checkpoint;

/// In-memory checkpoints are taken every this many events.
pub const EVERY: usize = 65_536;

/// A checkpoint a candidate may start from, with what the model knew there.
pub struct ResumePoint {
    pub checkpoint: Checkpoint,
    pub known: ModelAddresses,
}

impl ResumePoint {
    pub fn at(&self) -> u64 {
        self.checkpoint.next_event
    }
}

/// The checkpoints usable for `target` (see the module doc), in order.
pub fn usable(
    points: Vec<(Checkpoint, ModelAddresses)>,
    target: &Target,
    original: &Findings,
) -> Vec<ResumePoint> {
    let keep = |cp: &Checkpoint| match target.kind {
        FindingKind::Leak => target
            .leaked_events
            .iter()
            .filter(|&&e| e < cp.next_event)
            .all(|&e| {
                cp.objects
                    .binary_search_by_key(&e, |(ord, _)| *ord)
                    .is_ok_and(|i| matches!(cp.objects[i].1.kind, EventKind::BufferAlloc { .. }))
            }),
        FindingKind::Oom => original
            .oom
            .as_ref()
            .is_some_and(|o| cp.next_event <= o.event),
        _ => false,
    };
    points
        .into_iter()
        .filter(|(cp, _)| keep(cp))
        .map(|(checkpoint, known)| ResumePoint { checkpoint, known })
        .collect()
}

/// The latest point `kept` (sorted original ordinals) keeps everything before.
pub fn latest_for<'p>(points: &'p [ResumePoint], kept: &[u32]) -> Option<&'p ResumePoint> {
    points.iter().rev().find(|p| {
        let at = p.at() as usize;
        at > 0 && kept.len() >= at && kept[at - 1] as usize == at - 1
    })
}

#[cfg(test)]
mod tests {
    use crate::minimize::{minimize_events, FindingKind, MinimizeOptions};
    use ttalloc_corpora::synth::{generate, LeakSite, SynthOptions};

    /// The same minimal trace with and without checkpoints, for fewer events
    /// replayed: the leak starts in cycle 2 of 6, so candidates keeping the
    /// first ~150k events start from a checkpoint.
    #[test]
    fn candidates_resumed_from_checkpoints_reach_the_same_minimal_trace() {
        let (interner, events, _) = generate(&SynthOptions {
            events: 400_000,
            seed: 7,
            devices: 2,
            cycles: 6,
            leak_site: Some(LeakSite {
                site: 11,
                from_cycle: 2,
            }),
            reopen_devices: false,
        });
        let run = |from_start| {
            let opts = MinimizeOptions {
                keep: Some(FindingKind::Leak),
                from_start,
                ..MinimizeOptions::default()
            };
            minimize_events(&events, &interner, &opts, None).unwrap()
        };
        let (plain, resumed) = (run(true), run(false));
        assert_eq!(resumed.kept, plain.kept);
        assert_eq!(resumed.finding, plain.finding);
        assert_eq!(resumed.replays, plain.replays);
        assert_eq!(plain.resumed_replays, 0);
        assert!(resumed.resumed_replays > 0);
        assert!(
            resumed.events_replayed < plain.events_replayed,
            "{} events replayed from checkpoints, {} from the start",
            resumed.events_replayed,
            plain.events_replayed
        );
    }
}
