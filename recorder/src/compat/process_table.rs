//! The process outputs of one connection, by pid.
//!
//! Why not a plain hash map: a connection speaks for one process nearly
//! always (tt-metal opens one per process), and each message looks its
//! process up several times (to open it, to lend its ids to the registry,
//! to send each event). The last pid used is checked first, one compare;
//! a hash map is searched only when it is another one.

use super::output::ProcessOutput;
use foldhash::{HashMap, HashMapExt};

#[derive(Default)]
pub(super) struct ProcessTable {
    entries: Vec<(i32, Box<dyn ProcessOutput>)>,
    /// Where each pid is in `entries`.
    index: HashMap<i32, usize>,
    /// The entry found last (may be past the end once entries go).
    last: usize,
}

impl ProcessTable {
    pub(super) fn new() -> Self {
        ProcessTable {
            entries: Vec::new(),
            index: HashMap::new(),
            last: 0,
        }
    }

    /// Where `pid` is, for [`ProcessTable::at`] (until the next removal).
    pub(super) fn find(&mut self, pid: i32) -> Option<usize> {
        if self.entries.get(self.last).is_some_and(|(p, _)| *p == pid) {
            return Some(self.last);
        }
        let i = *self.index.get(&pid)?;
        self.last = i;
        Some(i)
    }

    /// The output at `i`, from [`ProcessTable::find`] or
    /// [`ProcessTable::insert`].
    pub(super) fn at(&mut self, i: usize) -> &mut Box<dyn ProcessOutput> {
        &mut self.entries[i].1
    }

    #[cfg(test)]
    fn get_mut(&mut self, pid: i32) -> Option<&mut Box<dyn ProcessOutput>> {
        let i = self.find(pid)?;
        Some(self.at(i))
    }

    /// Adds `pid`'s output (a pid already there keeps its own); returns
    /// where it is.
    pub(super) fn insert(&mut self, pid: i32, output: Box<dyn ProcessOutput>) -> usize {
        if let Some(i) = self.find(pid) {
            return i;
        }
        let i = self.entries.len();
        self.index.insert(pid, i);
        self.last = i;
        self.entries.push((pid, output));
        i
    }

    pub(super) fn remove(&mut self, pid: i32) -> Option<Box<dyn ProcessOutput>> {
        let i = self.index.remove(&pid)?;
        let (_, output) = self.entries.swap_remove(i);
        if let Some((moved, _)) = self.entries.get(i) {
            self.index.insert(*moved, i);
        }
        Some(output)
    }

    /// The pids, in the order they were added (as far as removals left it).
    pub(super) fn pids(&self) -> Vec<i32> {
        self.entries.iter().map(|(p, _)| *p).collect()
    }

    pub(super) fn outputs_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn ProcessOutput>> {
        self.entries.iter_mut().map(|(_, o)| o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_model::{BufferId, Event, ProgramId, StringId};

    /// An output that knows only its pid (returned as its buffer ids).
    struct Tagged(i32);

    impl ProcessOutput for Tagged {
        fn buffer_id(&mut self, _local: u64) -> BufferId {
            BufferId(self.0 as u64)
        }
        fn program_id(&mut self, _local: u64) -> ProgramId {
            ProgramId(0)
        }
        fn intern_string(&mut self, _s: &str) -> StringId {
            StringId::EMPTY
        }
        fn send(&mut self, _event: Event) -> Result<(), String> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn end(self: Box<Self>, _status: Option<i32>) {}
    }

    fn owner(t: &mut ProcessTable, pid: i32) -> Option<i32> {
        t.get_mut(pid).map(|o| o.buffer_id(0).get() as i32)
    }

    /// Against a plain list, through adds, repeats, lookups and removals
    /// (each removal moves the last entry into the hole).
    #[test]
    fn finds_each_pid_s_own_output_through_adds_and_removals() {
        let mut t = ProcessTable::new();
        let mut model: Vec<i32> = Vec::new();
        let mut x = 0x9e37_79b9u64;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pid = (x % 12) as i32;
            match (x >> 8) % 4 {
                0 => {
                    t.insert(pid, Box::new(Tagged(pid)));
                    if !model.contains(&pid) {
                        model.push(pid);
                    }
                }
                1 => {
                    let got = t.remove(pid).map(|mut o| o.buffer_id(0).get() as i32);
                    let want = model
                        .iter()
                        .position(|&p| p == pid)
                        .map(|i| model.swap_remove(i));
                    assert_eq!(got, want);
                }
                _ => {
                    assert_eq!(t.find(pid).is_some(), model.contains(&pid));
                    assert_eq!(owner(&mut t, pid), model.contains(&pid).then_some(pid));
                }
            }
            assert_eq!(t.pids(), model);
        }
        assert_eq!(t.outputs_mut().count(), model.len());
    }
}
