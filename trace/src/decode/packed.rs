//! Packed columns (FORMAT.md §5): a width byte and byte planes, decoded
//! whole in one vectorisable pass per width.

use super::{end, overrun, DecodeError};
use crate::codec::NEAR_CONSTANT;

mod deltas;
use crate::varint::Cursor;
pub(super) use deltas::column_deltas;

/// Decodes packed column `bytes` into `out`; it must hold exactly `n` values:
/// a width byte `w` (0–8) and `w` byte planes of `n` bytes, or nothing when
/// `n` is 0. Each plane is one vectorisable pass.
pub(super) fn column_values(
    bytes: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    match packed_as(bytes, n, what)? {
        Packed::Empty => out.clear(),
        Packed::NearConstant(rest) => near_constant(rest, n, what, out)?,
        // `gather` writes every value (nothing is zeroed first).
        Packed::Planes { w, planes } => gather(w, planes, n, out),
    }
    Ok(())
}

/// The one byte plane of packed column `bytes` of `n` values, when it is
/// stored as one (every value below 256, none near-constant): its values
/// read in place. Errors as [`column_values`]'s.
pub(super) fn one_byte_plane<'a>(
    bytes: &'a [u8],
    n: usize,
    what: &str,
) -> Result<Option<&'a [u8]>, DecodeError> {
    Ok(match packed_as(bytes, n, what)? {
        Packed::Planes { w: 1, planes } => Some(planes),
        _ => None,
    })
}

/// The width (1 to 4) and byte planes of packed column `bytes` of `n`
/// values, when it is stored as planes of 32-bit values; `None` for
/// another (0 or more than 4 bytes wide, near-constant, empty). Errors as
/// [`column_values`]'s.
pub(super) fn narrow_planes<'a>(
    bytes: &'a [u8],
    n: usize,
    what: &str,
) -> Result<Option<(usize, &'a [u8])>, DecodeError> {
    Ok(match packed_as(bytes, n, what)? {
        Packed::Planes {
            w: w @ 1..=4,
            planes,
        } => Some((w, planes)),
        _ => None,
    })
}

/// The one value of packed column `bytes` of `n` values (`n` > 0) when
/// every entry is it: a near-constant column without exceptions, or width
/// 0 (all 0). `None` otherwise, or for a malformed column (which
/// [`column_values`] then reports): a consumer can take the value rather
/// than read `n` copies of it back.
pub(super) fn constant_of(bytes: &[u8], n: usize, what: &str) -> Option<u64> {
    match packed_as(bytes, n, what).ok()? {
        Packed::Planes { w: 0, .. } => Some(0),
        Packed::NearConstant(rest) => {
            let mut only = None;
            near_constant_runs(rest, n, what, |common, run, exception| {
                only = (exception.is_none() && run == n).then_some(common);
            })
            .ok()?;
            only
        }
        _ => None,
    }
}

/// How a packed column of `n` values is stored (checked: planes of the
/// right length, a known width).
pub(super) enum Packed<'a> {
    /// No values (`n` is 0).
    Empty,
    /// 2.5: what follows the width byte of a near-constant column.
    NearConstant(&'a [u8]),
    /// `w` (0–8) byte planes of `n` bytes each.
    Planes { w: usize, planes: &'a [u8] },
}

/// Reads the width byte of packed column `bytes` of `n` values and checks
/// that its planes hold exactly `n` values.
pub(super) fn packed_as<'a>(
    bytes: &'a [u8],
    n: usize,
    what: &str,
) -> Result<Packed<'a>, DecodeError> {
    if n == 0 {
        return if bytes.is_empty() {
            Ok(Packed::Empty)
        } else {
            Err(format!("column {what} has bytes left after the last event"))
        };
    }
    let Some((&w, planes)) = bytes.split_first() else {
        return Err(format!("column {what} ends early"));
    };
    if w == NEAR_CONSTANT {
        return Ok(Packed::NearConstant(planes));
    }
    if w > 8 {
        return Err(format!("column {what} is {w} bytes wide (at most 8)"));
    }
    match planes.len().cmp(&(w as usize * n)) {
        std::cmp::Ordering::Equal => Ok(Packed::Planes {
            w: w as usize,
            planes,
        }),
        std::cmp::Ordering::Less => Err(format!("column {what} ends early")),
        std::cmp::Ordering::Greater => {
            Err(format!("column {what} has bytes left after the last event"))
        }
    }
}

/// [`column_values`] as 32-bit values, when every one fits: widths up
/// to 4 bytes, or a near-constant column whose values fit; into `out`.
/// Returns false (`out` unspecified) when one does not, after the same
/// checks of the column as `column_values` (which then reads it whole).
pub(super) fn column_values_u32(
    bytes: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<u32>,
) -> Result<bool, DecodeError> {
    match packed_as(bytes, n, what)? {
        Packed::Empty => out.clear(),
        Packed::NearConstant(rest) => {
            out.clear();
            reserve_exact(out, n);
            let mut fits = true;
            near_constant_runs(rest, n, what, |common, run, exception| {
                // (The common value counts only where it is used.)
                fits &= (run == 0 || common >> 32 == 0) && exception.is_none_or(|v| v >> 32 == 0);
                out.resize(out.len() + run, common as u32);
                out.extend(exception.map(|v| v as u32));
            })?;
            return Ok(fits);
        }
        Packed::Planes { w, planes } if w <= 4 => gather_u32(w, planes, n, out),
        Packed::Planes { .. } => return Ok(false),
    }
    Ok(true)
}

/// [`gather`] into 32-bit values, for widths up to 4 (`w` above 4 reads
/// the first 4 planes only: callers do not pass one).
pub(super) fn gather_u32(w: usize, planes: &[u8], n: usize, out: &mut Vec<u32>) {
    debug_assert!(w <= 4);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { gather_u32_avx2(w, planes, n, out) };
        }
    }
    gather_u32_any(w, planes, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gather_u32_avx2(w: usize, planes: &[u8], n: usize, out: &mut Vec<u32>) {
    gather_u32_any(w, planes, n, out)
}

#[inline(always)]
fn gather_u32_any(w: usize, planes: &[u8], n: usize, out: &mut Vec<u32>) {
    match w {
        0 => {
            out.clear();
            reserve_exact(out, n);
            out.resize(n, 0);
        }
        1 => gather_w_u32::<1>(planes, n, out),
        2 => gather_w_u32::<2>(planes, n, out),
        3 => gather_w_u32::<3>(planes, n, out),
        _ => gather_w_u32::<4>(planes, n, out),
    }
}

/// [`gather_w`] into 32-bit values (`W` at most 4).
#[inline(always)]
fn gather_w_u32<const W: usize>(planes: &[u8], n: usize, out: &mut Vec<u32>) {
    let p: [&[u8]; W] = std::array::from_fn(|j| &planes[j * n..(j + 1) * n]);
    out.clear();
    reserve_exact(out, n);
    for (i, o) in out.spare_capacity_mut()[..n].iter_mut().enumerate() {
        let mut v = 0u32;
        for (j, plane) in p.iter().enumerate() {
            v |= (plane[i] as u32) << (8 * j);
        }
        o.write(v);
    }
    // SAFETY: the loop wrote the first `n` values (capacity reserved above).
    unsafe { out.set_len(n) };
}

/// 2.5: a near-constant column's `n` values (after its width byte): one
/// value and the entries that differ from it (`codec/packing.rs`); into
/// `out` (cleared first).
fn near_constant(
    bytes: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    out.clear();
    reserve_exact(out, n);
    near_constant_runs(bytes, n, what, |common, run, exception| {
        // (A fill the compiler vectorises: an extend by a repeating
        // iterator stored one value at a time.)
        out.resize(out.len() + run, common);
        out.extend(exception);
    })
}

/// Reads a near-constant column of `n` values (`bytes`: after its width
/// byte) as runs: calls `each(common, run, Some(v))` for every exception
/// `v`, with the `run` of common values before it, then `each(common,
/// run, None)` with the run after the last (the runs and exceptions add
/// up to `n` values, checked before each call).
pub(super) fn near_constant_runs(
    bytes: &[u8],
    n: usize,
    what: &str,
    mut each: impl FnMut(u64, usize, Option<u64>),
) -> Result<(), DecodeError> {
    let mut c = Cursor::new(bytes);
    let common = c.varint_long().map_err(overrun(what))?;
    let k = c.varint().map_err(overrun(what))?;
    if k > n as u64 {
        return Err(format!(
            "column {what} holds {k} exceptions among {n} values"
        ));
    }
    let mut next = 0u64;
    for _ in 0..k {
        let at = next.saturating_add(c.varint().map_err(overrun(what))?);
        let v = c.varint_long().map_err(overrun(what))?;
        if at >= n as u64 {
            return Err(format!(
                "column {what} places an exception at {at}, past its {n} values"
            ));
        }
        each(common, (at - next) as usize, Some(v));
        next = at + 1;
    }
    end(&c, what)?;
    each(common, n - next as usize, None);
    Ok(())
}

/// Appends `n` values to `out`: value `i` = byte `i` of each of the `w`
/// planes (`planes` is `w * n` bytes), little-endian. With AVX2 when the CPU has it (same code, wider
/// vectors: this is the reader's hottest loop after zstd).
pub(super) fn gather(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { gather_avx2(w, planes, n, out) };
        }
    }
    gather_any(w, planes, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gather_avx2(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    gather_any(w, planes, n, out)
}

#[inline(always)]
pub(super) fn gather_any(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    gather_map(w, planes, n, out, |v| v)
}

/// [`gather_any`] with `f` applied to each value.
#[inline(always)]
fn gather_map(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>, f: impl Fn(u64) -> u64) {
    match w {
        0 => {
            out.clear();
            reserve_exact(out, n);
            out.resize(n, f(0));
        }
        1 => gather_w::<1>(planes, n, out, f),
        2 => gather_w::<2>(planes, n, out, f),
        3 => gather_w::<3>(planes, n, out, f),
        4 => gather_w::<4>(planes, n, out, f),
        5 => gather_w::<5>(planes, n, out, f),
        6 => gather_w::<6>(planes, n, out, f),
        7 => gather_w::<7>(planes, n, out, f),
        _ => gather_w::<8>(planes, n, out, f),
    }
}

/// Room for `n` values and one more (callers push a slack slot), as
/// [`room_for`](super::room_for) says when the vector grows (cleared,
/// `out` is empty): not `Vec`'s doubling, as a pooled column grown by it
/// keeps an untouched tail, resident when the binary's allocator backs
/// decoded blocks with huge pages (cli/src/block_pages.rs). Replaced, not
/// grown: a cleared vector's old values are not copied.
#[inline(always)]
pub(super) fn reserve_exact<T>(out: &mut Vec<T>, n: usize) {
    debug_assert!(out.is_empty());
    if out.capacity() <= n {
        *out = Vec::new();
        out.reserve_exact(super::room_for(n + 1));
    }
}

/// One pass for a fixed width: every output word is written once (into
/// the vector's spare room: nothing is zeroed first).
#[inline(always)]
pub(super) fn gather_w<const W: usize>(
    planes: &[u8],
    n: usize,
    out: &mut Vec<u64>,
    f: impl Fn(u64) -> u64,
) {
    let p: [&[u8]; W] = std::array::from_fn(|j| &planes[j * n..(j + 1) * n]);
    out.clear();
    reserve_exact(out, n);
    for (i, o) in out.spare_capacity_mut()[..n].iter_mut().enumerate() {
        let mut v = 0u64;
        for (j, plane) in p.iter().enumerate() {
            v |= (plane[i] as u64) << (8 * j);
        }
        o.write(f(v));
    }
    // SAFETY: the loop wrote the first `n` values (capacity reserved above).
    unsafe { out.set_len(n) };
}

/// Checks that every value is below `limit` (one reduction, no branch per
/// value; with AVX2 when the CPU has it: without it there is no vector
/// compare of 64-bit values).
pub(super) fn all_below(vals: &[u64], limit: u32, what: &str) -> Result<(), DecodeError> {
    let max = max_of(vals);
    if vals.is_empty() || max < limit as u64 {
        return Ok(());
    }
    Err(format!(
        "{what} id {max} is not defined (only {limit} known)"
    ))
}

/// `all_below` of 32-bit values.
pub(super) fn all_below_u32(vals: &[u32], limit: u32, what: &str) -> Result<(), DecodeError> {
    let max = max_of_u32(vals);
    if vals.is_empty() || max < limit {
        return Ok(());
    }
    Err(format!(
        "{what} id {max} is not defined (only {limit} known)"
    ))
}

pub(super) fn max_of(vals: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { max_of_avx2(vals) };
        }
    }
    max_of_any(vals)
}

/// [`max_of`] with AVX2, which has no 64-bit max: while every value fits
/// 32 bits (ids, flags: nearly always) their max is that of their low
/// halves, eight 32-bit maxima at a time, and an OR of the values tells;
/// a value past 32 bits takes the exact fold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_of_avx2(vals: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let (mut any, mut max) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut quads = vals.chunks_exact(4);
    for q in &mut quads {
        // SAFETY: `q` is four values, 32 bytes.
        let v = unsafe { _mm256_loadu_si256(q.as_ptr() as *const __m256i) };
        any = _mm256_or_si256(any, v);
        max = _mm256_max_epu32(max, v);
    }
    let (mut ors, mut maxima) = ([0u64; 4], [0u32; 8]);
    // SAFETY: both arrays are 32 bytes.
    unsafe {
        _mm256_storeu_si256(ors.as_mut_ptr() as *mut __m256i, any);
        _mm256_storeu_si256(maxima.as_mut_ptr() as *mut __m256i, max);
    }
    if ors.iter().any(|&o| o >> 32 != 0) {
        return max_of_any(vals);
    }
    let rest = quads.remainder().iter().copied().fold(0u64, u64::max);
    maxima.iter().fold(rest, |m, &v| m.max(v as u64))
}

#[inline(always)]
fn max_of_any(vals: &[u64]) -> u64 {
    // Four partial maxima: the reduction vectorises without a serial chain.
    let mut m = [0u64; 4];
    let mut quads = vals.chunks_exact(4);
    for q in &mut quads {
        for (m, &v) in m.iter_mut().zip(q) {
            *m = (*m).max(v);
        }
    }
    let rest = quads.remainder().iter().copied().fold(0u64, u64::max);
    m.iter().copied().fold(rest, u64::max)
}

fn max_of_u32(vals: &[u32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { max_of_u32_avx2(vals) };
        }
    }
    vals.iter().copied().fold(0, u32::max)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_of_u32_avx2(vals: &[u32]) -> u32 {
    vals.iter().copied().fold(0, u32::max)
}

#[cfg(test)]
mod tests {
    use super::column_values;
    use proptest::prelude::*;

    proptest! {
        /// The largest value, whether all fit 32 bits or not.
        #[test]
        fn max_of_is_the_largest_value(
            small in proptest::collection::vec(0u64..1 << 32, 0..40),
            big in proptest::option::of((any::<u64>(), any::<prop::sample::Index>())),
        ) {
            let mut vals = small;
            if let Some((v, at)) = big {
                vals.insert(at.index(vals.len() + 1), v);
            }
            let want = vals.iter().copied().max().unwrap_or(0);
            prop_assert_eq!(super::max_of(&vals), want);
        }
    }

    proptest! {
        /// `constant_of` names a column's one value exactly when every
        /// value decodes to it: columns written whole or near-constant
        /// (with and without exceptions), of one value or several.
        #[test]
        fn constant_of_is_the_one_value_the_column_decodes_to(
            common in prop_oneof![Just(0u64), 1u64..300, any::<u64>()],
            n in 1usize..1200,
            others in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..4),
            near in any::<bool>(),
        ) {
            let mut vals = vec![common; n];
            for (at, v) in others {
                vals[at.index(n)] = v;
            }
            let mut bytes = Vec::new();
            if near {
                crate::codec::pack_near_constant(&vals, &mut bytes);
            } else {
                crate::codec::pack(&vals, &mut bytes);
            }
            let mut all = Vec::new();
            column_values(&bytes, n, "x", &mut all).unwrap();
            let one = super::constant_of(&bytes, n, "x");
            if let Some(c) = one {
                prop_assert!(all.iter().all(|&v| v == c));
            }
            // Every near-constant or width-0 column of one value is seen as one.
            let alike = all.iter().all(|&v| v == all[0]);
            if alike && (near || all[0] == 0) {
                prop_assert_eq!(one, Some(all[0]));
            }
            // Malformed columns are not (their decode reports them).
            prop_assert_eq!(super::constant_of(&bytes[..bytes.len() - 1], n, "x"), None);
        }
    }

    proptest! {
        /// The 32-bit decode of any column (planes of widths 0 to 8, or
        /// near-constant with values that fit or not) is the 64-bit one
        /// whenever it says the values fit, and says so whenever they do.
        #[test]
        fn u32_values_are_the_u64_ones_when_they_fit(
            vals in proptest::collection::vec(any::<u64>(), 1..70),
            w in 0usize..=8,
            near in any::<bool>(),
            common in prop_oneof![0u64..300, any::<u64>()],
        ) {
            let n = vals.len();
            let mut bytes = Vec::new();
            if near {
                // Common value, then every third value as an exception.
                let put = |b: &mut Vec<u8>, mut v: u64| loop {
                    let byte = (v & 0x7f) as u8;
                    v >>= 7;
                    if v == 0 {
                        b.push(byte);
                        break;
                    }
                    b.push(byte | 0x80);
                };
                bytes.push(crate::codec::NEAR_CONSTANT);
                put(&mut bytes, common);
                let exceptions: Vec<(usize, u64)> =
                    vals.iter().copied().enumerate().filter(|(i, _)| i % 3 == 0).collect();
                put(&mut bytes, exceptions.len() as u64);
                let mut next = 0;
                for (at, v) in exceptions {
                    put(&mut bytes, (at - next) as u64);
                    put(&mut bytes, v >> (8 * (8 - w.max(1))));
                    next = at + 1;
                }
            } else {
                bytes.push(w as u8);
                for j in 0..w {
                    bytes.extend(vals.iter().map(|&v| (v >> (8 * j)) as u8));
                }
            }
            let mut wide = Vec::new();
            column_values(&bytes, n, "x", &mut wide).unwrap();
            let mut narrow = vec![3u32; 2];
            let fits = super::column_values_u32(&bytes, n, "x", &mut narrow).unwrap();
            prop_assert_eq!(fits, wide.iter().all(|&v| v >> 32 == 0));
            if fits {
                prop_assert_eq!(narrow.iter().map(|&v| v as u64).collect::<Vec<_>>(), wide);
            }
        }
    }

    fn decode(bytes: &[u8], n: usize) -> Result<Vec<u64>, String> {
        let mut out = vec![9; 3];
        column_values(bytes, n, "page size", &mut out).map(|()| out)
    }

    /// 2 everywhere but value 0 (300: varint 0xac 0x02) and value 4 (gap 3
    /// after the first exception's next, 1).
    #[test]
    fn a_near_constant_column_is_its_value_but_at_the_exceptions() {
        let got = decode(&[0x80, 2, 2, 0, 0xac, 0x02, 3, 7], 6).unwrap();
        assert_eq!(got, [300, 2, 2, 2, 7, 2]);
    }

    #[test]
    fn a_near_constant_column_without_exceptions_is_one_value() {
        assert_eq!(decode(&[0x80, 5, 0], 4).unwrap(), [5; 4]);
    }

    #[test]
    fn an_exception_past_the_last_value_is_an_error() {
        let e = decode(&[0x80, 2, 1, 4, 7], 4).unwrap_err();
        assert_eq!(
            e,
            "column page size places an exception at 4, past its 4 values"
        );
    }

    #[test]
    fn more_exceptions_than_values_is_an_error() {
        let e = decode(&[0x80, 2, 5, 0, 1], 4).unwrap_err();
        assert_eq!(e, "column page size holds 5 exceptions among 4 values");
    }

    #[test]
    fn a_near_constant_column_must_end_with_its_last_exception() {
        let e = decode(&[0x80, 2, 1, 0, 7, 0], 4).unwrap_err();
        assert!(e.contains("bytes left"), "{e}");
        let e = decode(&[0x80, 2, 2, 0, 7], 4).unwrap_err();
        assert!(e.contains("ends early"), "{e}");
    }

    /// Widths 9 to 0x7f and above 0x80 stay errors (a 2.4 reader rejects
    /// 0x80 the same way).
    #[test]
    fn other_widths_above_8_are_errors() {
        for w in [9u8, 0x7f, 0x81, 0xff] {
            let e = decode(&[w, 0], 1).unwrap_err();
            assert!(e.contains("bytes wide"), "{w}: {e}");
        }
    }
}
