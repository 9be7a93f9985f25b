//! Two traces analysed for `diff`: side by side when that is done sooner.

use super::{analyse_file, Analysis, AnalysisOptions};
use crate::error::ReplayError;
use crate::options::ReplayOptions;
use ttalloc_trace::TraceReader;

/// How two analyses share the threads a replay may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairPlan {
    /// One after the other, each as `opts` says (decoding ahead or not).
    InTurn,
    /// Both at once, each on a thread of its own, decoding ahead only
    /// with `decode_ahead` (four cores or more).
    SideBySide { decode_ahead: bool },
}

impl PairPlan {
    /// The plan for traces of `events` events with `opts`, on `cores` cores.
    ///
    /// Side by side, on two cores, each replay decodes on its own thread:
    /// it takes as long as the longer replay alone on one thread. In turn,
    /// each decodes ahead on a second thread and takes about 0.7 of its
    /// one-thread time (10M synthetic events: 0.13 s against 0.19 s), so
    /// both take 0.7 of their sum. Side by side is sooner unless the
    /// smaller trace is under about half the larger (and takes no more
    /// CPU: a one-thread replay takes the least). `--threads 1` keeps the
    /// replays on one thread, in turn.
    pub fn choose(events: [u64; 2], opts: &ReplayOptions, cores: usize) -> PairPlan {
        let (small, large) = (events[0].min(events[1]), events[0].max(events[1]));
        if opts.decode_ahead && cores >= 2 && small >= large / 2 {
            PairPlan::SideBySide {
                decode_ahead: cores >= 4,
            }
        } else {
            PairPlan::InTurn
        }
    }
}

/// Analyses `readers[0]` and `readers[1]` as [`PairPlan::choose`] says on
/// this machine, each as [`analyse_file`] does, their progress bars named
/// by `labels`; a failure comes with the index of the trace it is about
/// (the first one's, when both fail).
pub fn analyse_file_pair(
    readers: [&TraceReader; 2],
    labels: [&'static str; 2],
    opts: &ReplayOptions,
    aopts: &AnalysisOptions,
) -> Result<[Analysis; 2], (usize, ReplayError)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let events = readers.map(TraceReader::num_events);
    let plan = PairPlan::choose(events, opts, cores);
    let (decode_ahead, progress_group) = match plan {
        PairPlan::InTurn => (opts.decode_ahead, None),
        // Two bars at once: drawn as a group.
        PairPlan::SideBySide { decode_ahead } => (
            decode_ahead,
            opts.progress.then(indicatif::MultiProgress::new),
        ),
    };
    let side = |i: usize| ReplayOptions {
        decode_ahead,
        progress_group: progress_group.clone(),
        progress_label: Some(labels[i]),
        ..opts.clone()
    };
    let sides = [side(0), side(1)];
    let (first, second) = match plan {
        PairPlan::InTurn => {
            let first = analyse_file(readers[0], &sides[0], aopts).map_err(|e| (0, e))?;
            (first, analyse_file(readers[1], &sides[1], aopts))
        }
        PairPlan::SideBySide { .. } => {
            std::thread::scope(|scope| {
                let second = scope.spawn(|| analyse_file(readers[1], &sides[1], aopts));
                let first = analyse_file(readers[0], &sides[0], aopts);
                // A panic on the other thread is a panic here too.
                let second = second
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                Ok((first.map_err(|e| (0, e))?, second))
            })?
        }
    };
    Ok([first, second.map_err(|e| (1, e))?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_only_with_two_cores_and_traces_within_half_of_each_other() {
        let ahead = ReplayOptions::default();
        let one_thread = ReplayOptions {
            decode_ahead: false,
            ..ReplayOptions::default()
        };
        let side = |decode_ahead| PairPlan::SideBySide { decode_ahead };
        assert_eq!(PairPlan::choose([100, 100], &ahead, 2), side(false));
        assert_eq!(PairPlan::choose([50, 100], &ahead, 2), side(false));
        assert_eq!(PairPlan::choose([100, 50], &ahead, 2), side(false));
        assert_eq!(PairPlan::choose([100, 100], &ahead, 4), side(true));
        // The smaller under half the larger: in turn, each decoding ahead.
        assert_eq!(PairPlan::choose([49, 100], &ahead, 2), PairPlan::InTurn);
        assert_eq!(PairPlan::choose([100, 49], &ahead, 2), PairPlan::InTurn);
        // One core, or `--threads 1`: in turn.
        assert_eq!(PairPlan::choose([100, 100], &ahead, 1), PairPlan::InTurn);
        assert_eq!(
            PairPlan::choose([100, 100], &one_thread, 8),
            PairPlan::InTurn
        );
        assert_eq!(PairPlan::choose([0, 0], &ahead, 2), side(false));
    }
}
