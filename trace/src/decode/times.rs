//! A decoded block's timestamps and pids, behind accessors
//! ([`BlockColumns::ts_at`](super::BlockColumns::ts_at),
//! [`BlockColumns::pid_at`](super::BlockColumns::pid_at) and their
//! whole-column iterators): a replay reads them only for the few events
//! that are neither buffer allocs nor frees, so the block keeps them in
//! whatever form is cheapest to write. Pids are kept as runs (one process
//! writes a whole block, nearly always).

use ttalloc_model::Pid;

/// Every event's pid, as runs of one pid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PidRuns {
    /// `(end, pid)` of the first run (`(0, 0)` while there is none): the
    /// run's events are those before position `end`. Kept apart so that
    /// [`PidRuns::at`] answers a block of one process (nearly every block)
    /// with a compare and a load.
    first: (u32, u32),
    /// `(end, pid)` of every later run, in order: a run's events end before
    /// position `end` and start where the run before it ended. Neighbouring
    /// runs have different pids (so equal blocks have equal runs).
    rest: Vec<(u32, u32)>,
}

impl PidRuns {
    pub(crate) fn clear(&mut self) {
        self.first = (0, 0);
        self.rest.clear();
    }

    /// Number of events the runs cover.
    pub(crate) fn len(&self) -> usize {
        self.rest.last().unwrap_or(&self.first).0 as usize
    }

    /// Appends `n` events of `pid` (no-op for `n == 0`).
    pub(crate) fn push(&mut self, pid: u32, n: usize) {
        if n == 0 {
            return;
        }
        let end = (self.len() + n) as u32;
        let last = self.rest.last_mut().unwrap_or(&mut self.first);
        if last.1 == pid || last.0 == 0 {
            *last = (end, pid);
        } else {
            self.rest.push((end, pid));
        }
    }

    /// The pid of event `pos` (0 past the end).
    #[inline]
    pub(crate) fn at(&self, pos: usize) -> u32 {
        if pos < self.first.0 as usize {
            self.first.1
        } else {
            self.later(pos)
        }
    }

    /// [`PidRuns::at`] past the first run.
    #[cold]
    #[inline(never)]
    fn later(&self, pos: usize) -> u32 {
        let i = self.rest.partition_point(|&(end, _)| end as usize <= pos);
        self.rest.get(i).map_or(0, |r| r.1)
    }

    /// The pid of every event, if one process wrote them all (and there are any).
    pub(crate) fn one(&self) -> Option<u32> {
        (self.first.0 > 0 && self.rest.is_empty()).then_some(self.first.1)
    }

    /// `(pid, events)` of every run, in order.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (Pid, usize)> + '_ {
        let mut start = 0u32;
        let first = Some(&self.first).filter(|r| r.0 > 0);
        first.into_iter().chain(&self.rest).map(move |&(end, pid)| {
            let n = end - start;
            start = end;
            (Pid(pid), n as usize)
        })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.rest.capacity() * std::mem::size_of::<(u32, u32)>()
    }
}

/// Every event's timestamp (ns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Times {
    /// Every event's timestamp, in order.
    pub(super) values: Vec<u64>,
}

impl Times {
    pub(crate) fn clear(&mut self) {
        self.values.clear();
    }

    /// The timestamp of event `pos` (0 past the end).
    #[inline]
    pub(crate) fn at(&self, pos: usize) -> u64 {
        self.values.get(pos).copied().unwrap_or(0)
    }

    /// Appends one event's timestamp (hand-built blocks).
    pub(crate) fn push(&mut self, ts: u64) {
        self.values.push(ts);
    }

    /// Every event's timestamp, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.values.iter().copied()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_runs_answer_each_position_and_merge_equal_neighbours() {
        let mut p = PidRuns::default();
        assert_eq!((p.len(), p.at(0), p.one()), (0, 0, None));
        p.push(7, 3);
        // One run: every position below 3 is 7's, and the block has one pid.
        assert_eq!((p.at(0), p.at(2), p.at(3), p.one()), (7, 7, 0, Some(7)));
        p.push(7, 2); // the same pid again: still one run, now of 5
        p.push(9, 0); // nothing
        assert_eq!((p.len(), p.one()), (5, Some(7)));
        p.push(9, 1);
        p.push(7, 2);
        // Runs 7 x5 (0..5), 9 x1 (5), 7 x2 (6..8).
        let at: Vec<u32> = (0..9).map(|i| p.at(i)).collect();
        assert_eq!(at, [7, 7, 7, 7, 7, 9, 7, 7, 0]);
        assert_eq!(p.one(), None);
        let runs: Vec<(Pid, usize)> = p.runs().collect();
        assert_eq!(runs, [(Pid(7), 5), (Pid(9), 1), (Pid(7), 2)]);
    }
}
