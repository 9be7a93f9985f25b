//! Rounding timestamps down to the writer's clock tick without a 64-bit
//! division per event.
//!
//! Why: a recording's times are nanoseconds since the epoch (about 2^61),
//! so `ts % tick` is a full 64-bit division, done for every event a
//! compat recording writes (its events are never on the tick). Times come
//! in order, close together: from the last rounded time (a multiple of the
//! tick) the gap to the next one fits in 32 bits, and its division is the
//! short one.

/// Rounds times down to multiples of `tick` (at least 1 ns, at most
/// `u32::MAX`), remembering the last result.
#[derive(Debug, Clone, Copy)]
pub(super) struct TickRounding {
    tick: u64,
    /// A multiple of `tick`: the last time returned.
    base: u64,
}

impl TickRounding {
    pub(super) fn new(tick: u64) -> Self {
        TickRounding {
            tick: tick.max(1),
            base: 0,
        }
    }

    /// `ts - ts % tick`.
    #[inline]
    pub(super) fn round(&mut self, ts: u64) -> u64 {
        let tick = self.tick;
        if tick == 1 {
            return ts;
        }
        let gap = ts.wrapping_sub(self.base);
        let rounded = if ts >= self.base && gap <= u32::MAX as u64 && tick <= u32::MAX as u64 {
            self.base + ((gap as u32) / (tick as u32)) as u64 * tick
        } else {
            ts - ts % tick
        };
        self.base = rounded;
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any sequence of times (in order, close, far apart, going back)
        /// rounds as the division would.
        #[test]
        fn rounds_as_the_division_does(
            tick in prop_oneof![Just(1u64), Just(100), Just(1_000), 1u64..=1_000_000_000],
            start in any::<u64>(),
            steps in proptest::collection::vec(
                prop_oneof![0u64..2_000, 0u64..=u32::MAX as u64 + 10, any::<u64>()],
                1..50,
            ),
            back in proptest::collection::vec(any::<bool>(), 50),
        ) {
            let mut r = TickRounding::new(tick);
            let mut ts = start;
            for (i, step) in steps.iter().enumerate() {
                ts = if back[i] { ts.wrapping_sub(*step) } else { ts.wrapping_add(*step) };
                prop_assert_eq!(r.round(ts), ts - ts % tick, "ts {} tick {}", ts, tick);
            }
        }
    }

    #[test]
    fn a_gap_of_exactly_four_gigaseconds_of_ticks_takes_the_long_way() {
        // base 0, gap u32::MAX + 1: the 32-bit path would truncate it.
        let mut r = TickRounding::new(100);
        let ts = u32::MAX as u64 + 1 + 57;
        assert_eq!(r.round(ts), ts - ts % 100);
        assert_eq!(r.round(ts + 1), ts - ts % 100);
    }

    #[test]
    fn a_time_past_the_wrap_of_the_last_one_is_not_taken_as_close() {
        // From a base near 2^64 a small time is a short wrapping gap away.
        let mut r = TickRounding::new(100);
        let high = u64::MAX - 5;
        assert_eq!(r.round(high), high - high % 100);
        assert_eq!(r.round(350), 300);
    }
}
