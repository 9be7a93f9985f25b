//! Each event's device span, as an index into the trace's spans (`NONE`:
//! of no device's span): two bytes an event while the trace has fewer
//! spans than a `u16` names, four from the span that does not fit (a
//! device opened 65,535 times). At four bytes always, the column was a
//! quarter of `minimize`'s memory on a 50M-event trace.

use super::NONE;

/// What a narrow entry holds for `NONE`.
const NARROW_NONE: u16 = u16::MAX;

#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) enum SpanColumn {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl Default for SpanColumn {
    fn default() -> Self {
        SpanColumn::Narrow(Vec::new())
    }
}

impl SpanColumn {
    /// Room for `events` narrow entries, if memory can be had for them.
    pub(super) fn try_reserve(&mut self, events: usize) -> bool {
        match self {
            SpanColumn::Narrow(v) => v.try_reserve_exact(events).is_ok(),
            SpanColumn::Wide(v) => v.try_reserve_exact(events).is_ok(),
        }
    }

    /// Appends an entry: span `s`, or `NONE`.
    #[inline]
    pub(super) fn push(&mut self, s: u32) {
        if let SpanColumn::Narrow(v) = self {
            match narrow(s) {
                Some(n) => return v.push(n),
                None => self.widen(),
            }
        }
        if let SpanColumn::Wide(v) = self {
            v.push(s);
        }
    }

    /// Sets entry `i` (one pushed) to span `s`, or `NONE`.
    #[inline]
    pub(super) fn set(&mut self, i: usize, s: u32) {
        if let SpanColumn::Narrow(v) = self {
            match narrow(s) {
                Some(n) => return v[i] = n,
                None => self.widen(),
            }
        }
        if let SpanColumn::Wide(v) = self {
            v[i] = s;
        }
    }

    /// Entry `i`: a span, or `NONE`.
    #[inline(always)]
    pub(super) fn get(&self, i: usize) -> u32 {
        match self {
            SpanColumn::Narrow(v) => match v[i] {
                NARROW_NONE => NONE,
                n => u32::from(n),
            },
            SpanColumn::Wide(v) => v[i],
        }
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        match self {
            SpanColumn::Narrow(v) => v.capacity(),
            SpanColumn::Wide(v) => v.capacity(),
        }
    }

    /// Every entry in four bytes from now on.
    #[cold]
    fn widen(&mut self) {
        if let SpanColumn::Narrow(v) = self {
            let wide = v
                .iter()
                .map(|&n| if n == NARROW_NONE { NONE } else { u32::from(n) })
                .collect();
            *self = SpanColumn::Wide(wide);
        }
    }
}

/// `s` in two bytes, if it fits.
#[inline(always)]
fn narrow(s: u32) -> Option<u16> {
    match s {
        NONE => Some(NARROW_NONE),
        s if s < u32::from(NARROW_NONE) => Some(s as u16),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries read back as written, spans and `NONE`, across the widening
    /// at the first span a `u16` cannot name.
    #[test]
    fn entries_read_back_across_the_widening() {
        let mut c = SpanColumn::default();
        let mut want = Vec::new();
        for s in (0..70_000u32)
            .step_by(7)
            .chain([NONE, 65_534, 65_535, NONE, 3])
        {
            c.push(s);
            want.push(s);
            if want.len() == 9_000 {
                assert!(matches!(c, SpanColumn::Narrow(_)));
            }
        }
        assert!(matches!(c, SpanColumn::Wide(_)));
        c.set(1, 65_600);
        want[1] = 65_600;
        let got: Vec<u32> = (0..want.len()).map(|i| c.get(i)).collect();
        assert_eq!(got, want);
        // The first span past the narrow entries' reach (the one whose
        // index is their `NONE`) widens the column, and reads back.
        let mut c = SpanColumn::default();
        c.push(65_534);
        assert!(matches!(c, SpanColumn::Narrow(_)));
        c.push(65_535);
        assert!(matches!(c, SpanColumn::Wide(_)));
        assert_eq!((c.get(0), c.get(1)), (65_534, 65_535));
        // Set past a narrow column's reach: widened too.
        let mut c = SpanColumn::default();
        c.push(NONE);
        c.push(2);
        c.set(0, 1 << 20);
        assert_eq!((c.get(0), c.get(1)), (1 << 20, 2));
    }
}
