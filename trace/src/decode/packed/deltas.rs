//! A column of zigzag deltas unpacked as the deltas (`unzigzag` of each
//! value) in the gather's own pass: no pass over the stored values
//! written only to be read back and unzigzagged.

use super::{gather_map, near_constant, packed_as, Packed};
use crate::decode::DecodeError;
use crate::varint::unzigzag;

/// [`column_values`](super::column_values) unzigzagged (`unzigzag(v) as
/// u64` each): in the gather's own pass where the column is stored as
/// planes.
pub(in crate::decode) fn column_deltas(
    bytes: &[u8],
    n: usize,
    what: &str,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    match packed_as(bytes, n, what)? {
        Packed::Empty => out.clear(),
        Packed::NearConstant(rest) => {
            near_constant(rest, n, what, out)?;
            for v in out.iter_mut() {
                *v = unzigzag(*v) as u64;
            }
        }
        Packed::Planes { w, planes } => gather_deltas(w, planes, n, out),
    }
    Ok(())
}

/// [`gather`](super::gather), each value unzigzagged before it is
/// written.
fn gather_deltas(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { gather_deltas_avx2(w, planes, n, out) };
        }
    }
    gather_map(w, planes, n, out, |v| unzigzag(v) as u64)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gather_deltas_avx2(w: usize, planes: &[u8], n: usize, out: &mut Vec<u64>) {
    gather_map(w, planes, n, out, |v| unzigzag(v) as u64)
}

#[cfg(test)]
mod tests {
    use super::super::column_values;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The deltas are the unzigzagged values, for columns of every
        /// width, near-constant ones (with exceptions or not) and
        /// malformed ones (the same error).
        #[test]
        fn column_deltas_are_the_unzigzagged_values(
            vals in proptest::collection::vec(any::<u64>(), 1..1200),
            shift in 0u32..=64,
            near in any::<bool>(),
            cut in any::<bool>(),
        ) {
            // Values of every width; near-constant: one value but every
            // 256th (as many exceptions as the writer allows).
            let common = vals[0].checked_shr(shift).unwrap_or(0);
            let vals: Vec<u64> = vals
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let v = v.checked_shr(shift).unwrap_or(0);
                    if near && i % 256 != 255 { common } else { v }
                })
                .collect();
            let mut bytes = Vec::new();
            if near {
                crate::codec::pack_near_constant(&vals, &mut bytes);
            } else {
                crate::codec::pack(&vals, &mut bytes);
            }
            if cut {
                bytes.pop();
            }
            let n = vals.len();
            let (mut plain, mut deltas) = (Vec::new(), vec![7u64; 5]);
            let want = column_values(&bytes, n, "x", &mut plain)
                .map(|()| plain.iter().map(|&v| unzigzag(v) as u64).collect::<Vec<_>>());
            let got = column_deltas(&bytes, n, "x", &mut deltas).map(|()| deltas);
            prop_assert_eq!(got, want);
        }
    }
}
