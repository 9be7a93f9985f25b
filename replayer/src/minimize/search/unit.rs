//! A structural unit of the search: the events of one cycle, process,
//! device or call site, in order.
//!
//! A cycle's events are consecutive ordinals, and so are a lone process's:
//! kept as a list, the units of the first reduction of a 10M-event trace
//! were every ordinal again (4 bytes an event, 65 MB as their lists grew),
//! beside the set they partition. A unit stays a run of ordinals, two
//! numbers, until an ordinal breaks it.

/// The events of a unit, in rising order.
#[derive(Clone, Debug)]
pub(crate) enum Unit {
    /// Ordinals `start..end` (empty when equal).
    Run(u32, u32),
    List(Vec<u32>),
}

impl Default for Unit {
    fn default() -> Unit {
        Unit::Run(0, 0)
    }
}

impl Unit {
    /// No events yet.
    pub(crate) fn new() -> Unit {
        Unit::default()
    }

    /// Event `i` alone.
    pub(crate) fn one(i: u32) -> Unit {
        let mut u = Unit::new();
        u.push(i);
        u
    }

    /// Appends event `i`, above every event of the unit.
    pub(crate) fn push(&mut self, i: u32) {
        match self {
            // (`u32::MAX` ends no run: no ordinal is that high, see
            // `too_many`, but a run could not hold it.)
            Unit::Run(start, end) if start == end && i < u32::MAX => (*start, *end) = (i, i + 1),
            Unit::Run(_, end) if *end == i && i < u32::MAX => *end = i + 1,
            Unit::Run(start, end) => {
                let mut list: Vec<u32> = (*start..*end).collect();
                list.push(i);
                *self = Unit::List(list);
            }
            Unit::List(list) => list.push(i),
        }
    }

    /// The unit's events, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let (run, list) = match self {
            Unit::Run(start, end) => (*start..*end, &[][..]),
            Unit::List(list) => (0..0, &list[..]),
        };
        run.chain(list.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A unit holds what was pushed, in order, whether it stays a run
        /// or becomes a list.
        #[test]
        fn holds_what_was_pushed(steps in proptest::collection::vec(1u32..4, 0..200), from in 0u32..10) {
            let mut unit = Unit::new();
            let mut pushed = Vec::new();
            let mut i = from;
            for step in steps {
                unit.push(i);
                pushed.push(i);
                i += step;
            }
            prop_assert_eq!(unit.iter().collect::<Vec<_>>(), pushed);
        }
    }

    #[test]
    fn consecutive_events_stay_a_run_and_a_gap_makes_a_list() {
        let mut unit = Unit::new();
        for i in 5..1000 {
            unit.push(i);
        }
        assert!(matches!(unit, Unit::Run(5, 1000)));
        unit.push(1001);
        assert!(matches!(&unit, Unit::List(l) if l.len() == 996));
        assert_eq!(unit.iter().last(), Some(1001));
        // The highest ordinal a u32 names cannot end a run.
        let mut top = Unit::one(u32::MAX);
        assert_eq!(top.iter().collect::<Vec<_>>(), vec![u32::MAX]);
        top = Unit::one(u32::MAX - 1);
        top.push(u32::MAX);
        assert_eq!(top.iter().collect::<Vec<_>>(), vec![u32::MAX - 1, u32::MAX]);
    }
}
