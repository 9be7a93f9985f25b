//! The writer's side of packed columns (FORMAT.md §5): a width byte and
//! byte planes; since 2.5 also the *near-constant* form, one value and the
//! few entries that differ from it (the reader's side is
//! `decode/packed.rs`).

use crate::varint;

/// Byte width of a packed column holding values up to `max` (0 when all are 0).
#[inline]
pub(crate) fn packed_width(max: u64) -> usize {
    (64 - max.leading_zeros() as usize).div_ceil(8)
}

/// Appends a packed column: the width byte, then one byte plane per width byte.
pub(crate) fn pack(vals: &[u64], out: &mut Vec<u8>) {
    let w = packed_width(vals.iter().copied().fold(0, u64::max));
    out.reserve(1 + w * vals.len());
    out.push(w as u8);
    for j in 0..w {
        out.extend(vals.iter().map(|&v| (v >> (8 * j)) as u8));
    }
}

/// The width byte of a near-constant packed column (2.5): above 8, so a
/// 2.4 reader rejects it (and reports the block damaged) rather than
/// misreading it.
pub(crate) const NEAR_CONSTANT: u8 = 0x80;

/// A column is stored near-constant when at most one value in this many
/// differs from the common one: an exception costs a few varint bytes, an
/// entry of a byte plane a fraction of a bit once zstd has it, so a
/// column with many exceptions would grow.
pub(crate) const ENTRIES_PER_EXCEPTION: usize = 256;

/// 2.5: appends `vals` as a near-constant column when at most one in
/// [`ENTRIES_PER_EXCEPTION`] of them differs from the middle one (`0x80`,
/// varint value, varint count of exceptions, then per exception varint
/// `index − next` and varint value, where `next` is the index after the
/// previous exception, 0 for the first), else as `pack` does. A block's
/// buffer ids, page sizes and circular-buffer flags and addresses repeat
/// one value but at the block's start: byte planes of them cost zstd
/// output, a checksum pass and a reader's gather pass for nothing.
pub(crate) fn pack_near_constant(vals: &[u64], out: &mut Vec<u8>) {
    let common = vals[vals.len() / 2];
    let limit = vals.len() / ENTRIES_PER_EXCEPTION;
    let differ = vals.iter().filter(|&&v| v != common).count();
    // (A column of zeros is smallest as width 0.)
    if differ > limit || (differ == 0 && common == 0) {
        return pack(vals, out);
    }
    out.push(NEAR_CONSTANT);
    varint::put(out, common);
    varint::put(out, differ as u64);
    let mut next = 0usize;
    for (i, &v) in vals.iter().enumerate() {
        if v != common {
            varint::put(out, (i - next) as u64);
            varint::put(out, v);
            next = i + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column of one value but its first: width byte 0x80, the value
    /// 2, one exception at index 0 (gap 0) of 300 (varint 0xac 0x02).
    #[test]
    fn a_column_of_one_value_but_the_first_is_stored_near_constant() {
        let mut vals = vec![2u64; 1000];
        vals[0] = 300;
        let mut out = Vec::new();
        pack_near_constant(&vals, &mut out);
        assert_eq!(out, [0x80, 2, 1, 0, 0xac, 0x02]);
    }

    /// Exceptions name their place by the gap from the one before: at 3
    /// and 10 (gap 10 − 4 = 6).
    #[test]
    fn exceptions_are_placed_by_the_gap_after_the_previous_one() {
        let mut vals = vec![7u64; 512];
        vals[3] = 1;
        vals[10] = 0;
        let mut out = Vec::new();
        pack_near_constant(&vals, &mut out);
        assert_eq!(out, [0x80, 7, 2, 3, 1, 6, 0]);
    }

    /// Three exceptions in 512 values (more than 2 = 512 / 256): packed
    /// as byte planes, as 2.4 did.
    #[test]
    fn a_column_with_more_exceptions_keeps_its_byte_planes() {
        let mut vals = vec![7u64; 512];
        for i in [1, 2, 3] {
            vals[i] = 300;
        }
        let (mut near, mut planes) = (Vec::new(), Vec::new());
        pack_near_constant(&vals, &mut near);
        pack(&vals, &mut planes);
        assert_eq!(near, planes);
        assert_eq!(near[0], 2);
    }
}
