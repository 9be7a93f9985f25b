//! Format 2.3's timestamp coding (FORMAT.md §5.1, TS_KIND and TS_BASE): the
//! gap before an event depends on its kind (a free follows its op's work
//! sooner than the next alloc does), so each gap is stored as its distance
//! from the block's median gap of that kind. The kinds' gap distributions then
//! overlap around 0 instead of sitting side by side, and the byte planes zstd
//! codes are narrower. A reader adds the base back with one table lookup
//! per event (no walk per kind).
//!
//! Measured on workload W (1M events, Python client, 10 ns clock): TS_REL
//! 0.989 B/event, TS_KIND 0.889; on the 1M-event synthetic trace (uniform
//! random gaps) 1.579 → 1.570.

use crate::varint::{self, unzigzag, zigzag, Cursor};

/// The block's base gap per kind code: the median of its events' gaps (as
/// wrapping i64), 0 for kinds without events.
#[derive(Clone, Debug)]
pub(crate) struct KindBases {
    pub(crate) base: [u64; 256],
}

impl Default for KindBases {
    fn default() -> Self {
        KindBases { base: [0; 256] }
    }
}

impl KindBases {
    /// The writer's side: the median gap of each kind among `gaps` (event
    /// `i` has kind `tags[i]`); `scratch` is reused between blocks.
    pub(crate) fn medians(tags: &[u8], gaps: &[u64], scratch: &mut Vec<i64>) -> KindBases {
        // Counting sort by kind, then one selection per kind.
        let mut count = [0usize; 256];
        for &t in tags {
            count[t as usize] += 1;
        }
        let mut start = [0usize; 256];
        let mut at = 0;
        for k in 0..256 {
            start[k] = at;
            at += count[k];
        }
        scratch.clear();
        scratch.resize(gaps.len(), 0);
        let mut next = start;
        for (&t, &g) in tags.iter().zip(gaps) {
            scratch[next[t as usize]] = g as i64;
            next[t as usize] += 1;
        }
        let mut out = KindBases::default();
        for k in 0..256 {
            if count[k] > 0 {
                let group = &mut scratch[start[k]..start[k] + count[k]];
                let mid = group.len() / 2;
                out.base[k] = *group.select_nth_unstable(mid).1 as u64;
            }
        }
        out
    }

    /// Writes the TS_BASE column: varint `n`, then `n` pairs (kind code
    /// byte, varint zigzag(base)) in increasing kind order, for every kind
    /// whose base is not 0. Nothing when every base is 0.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let n = self.base.iter().filter(|&&b| b != 0).count();
        if n == 0 {
            return;
        }
        varint::put(out, n as u64);
        for (k, &b) in self.base.iter().enumerate() {
            if b != 0 {
                out.push(k as u8);
                varint::put(out, zigzag(b as i64));
            }
        }
    }

    /// The reader's side: parses a TS_BASE column (empty: every base 0).
    pub(crate) fn read(bytes: &[u8]) -> Result<KindBases, String> {
        let mut out = KindBases::default();
        if bytes.is_empty() {
            return Ok(out);
        }
        let bad = |_| "column ts base ends early or holds a malformed varint".to_string();
        let mut c = Cursor::new(bytes);
        let n = c.varint().map_err(bad)?;
        if n == 0 || n > 256 {
            return Err(format!("column ts base lists {n} kinds (1 to 256)"));
        }
        let mut prev: Option<u8> = None;
        for _ in 0..n {
            let k = c.byte().map_err(bad)?;
            if prev.is_some_and(|p| k <= p) {
                return Err(format!(
                    "column ts base lists kind {k} out of order (kinds must increase)"
                ));
            }
            prev = Some(k);
            out.base[k as usize] = unzigzag(c.varint().map_err(bad)?) as u64;
        }
        if !c.is_at_end() {
            return Err("column ts base has bytes left after its last kind".into());
        }
        Ok(out)
    }
}

/// The reader's side of TS_UNIT (2.4): the block's clock tick in ns, 1
/// when the column is absent; one varint, at least 2 when present.
pub(crate) fn read_unit(bytes: &[u8]) -> Result<u64, String> {
    if bytes.is_empty() {
        return Ok(1);
    }
    let mut c = Cursor::new(bytes);
    let unit = c
        .varint()
        .map_err(|_| "column ts unit holds a malformed varint".to_string())?;
    if unit < 2 || !c.is_at_end() {
        return Err(format!(
            "column ts unit must hold one tick of at least 2 ns, not {unit} ({} bytes)",
            bytes.len()
        ));
    }
    Ok(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_s_base_is_its_median_gap_and_survives_the_column() {
        // Kind 4: gaps 10, 30, 20 (median 20); kind 5: 7, 5 (the upper of
        // two: 7); kind 13: one gap of 0 (base 0, not listed); kind 12: a
        // step back of 3 ns (wrapping), median −3.
        let tags = [4, 5, 4, 13, 4, 5, 12];
        let gaps = [10, 7, 30, 0, 20, 5, 3u64.wrapping_neg()];
        let mut scratch = Vec::new();
        let b = KindBases::medians(&tags, &gaps, &mut scratch);
        assert_eq!((b.base[4], b.base[5], b.base[13]), (20, 7, 0));
        assert_eq!(b.base[12] as i64, -3);
        assert_eq!(b.base.iter().filter(|&&x| x != 0).count(), 3);
        let mut col = Vec::new();
        b.write(&mut col);
        // n = 3; kind 4: zigzag(20) = 40; kind 5: 14; kind 12: zigzag(−3) = 5.
        assert_eq!(col, [3, 4, 40, 5, 14, 12, 5]);
        assert_eq!(KindBases::read(&col).unwrap().base, b.base);
        let none = KindBases::default();
        let mut empty = Vec::new();
        none.write(&mut empty);
        assert!(empty.is_empty());
        assert_eq!(KindBases::read(&empty).unwrap().base, [0; 256]);
    }

    #[test]
    fn the_unit_column_is_one_tick_of_at_least_2_ns() {
        assert_eq!(read_unit(&[]).unwrap(), 1);
        // 1000 = 0xe8 0x07 as a varint.
        assert_eq!(read_unit(&[0xe8, 0x07]).unwrap(), 1000);
        assert!(read_unit(&[1]).unwrap_err().contains("not 1"));
        assert!(read_unit(&[5, 5]).unwrap_err().contains("2 bytes"));
        assert!(read_unit(&[0x80]).unwrap_err().contains("malformed"));
    }

    #[test]
    fn a_malformed_base_column_is_named() {
        let err = |b: &[u8]| KindBases::read(b).unwrap_err();
        assert!(err(&[0]).contains("lists 0 kinds"));
        assert!(err(&[2, 5, 2, 4, 2]).contains("kind 4 out of order"));
        assert!(err(&[2, 5, 2, 5, 2]).contains("kind 5 out of order"));
        assert!(err(&[1, 5]).contains("ends early"));
        assert!(err(&[1, 5, 2, 9]).contains("bytes left"));
    }
}
