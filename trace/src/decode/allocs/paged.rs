//! The sizes and addresses of a block whose every alloc has a page size
//! above 0 and an address (nearly every block): in passes a vector unit runs
//! (sizes, slot numbers; the address deltas come unzigzagged from their
//! column's gather, `column_deltas`), and one scalar pass for what chains
//! from alloc to alloc (the previous address per slot). One loop
//! over all of it held too many arrays for the registers (stack reloads
//! each alloc) and no vector multiply could check a 64-bit overflow.

use crate::codec::AddrHistory;

/// Entries of the previous-address table `paged` takes: a power of two
/// above every (device, buffer type) slot `AddrHistory::index` names (for
/// any type code of 3 bits), so a slot number masked by it needs no bounds
/// check.
pub(in crate::decode) const ADDR_TABLE: usize = 8192;
const _: () = assert!(AddrHistory::SLOTS + 8 <= ADDR_TABLE);

/// The columns of a block whose every alloc has a page size above 0 (and
/// so a remainder) and an address: one entry per alloc each.
#[derive(Clone, Copy)]
pub(super) struct PagedRows<'a> {
    pub(super) flags: &'a [u8],
    pub(super) devices: &'a [u32],
    pub(super) pages: Pages<'a>,
    /// `None` where every remainder is 0.
    pub(super) size_rem: Option<&'a [u64]>,
}

/// The page sizes of [`PagedRows`].
#[derive(Clone, Copy)]
pub(in crate::decode) enum Pages<'a> {
    /// One per alloc.
    Each(&'a [u64]),
    /// One every alloc shares (a near-constant column without exceptions):
    /// not read back from an array of copies.
    All(u64),
}

crate::decode::fast_cpu_dispatch!(
    /// `any_fields` for a block whose every alloc has a page size above 0
    /// and an address (`rows`): sizes into `sizes` (units in), addresses into
    /// `addresses` from their deltas `addr` (unzigzagged already), with the
    /// previous address per (device, buffer type) in `slots`. Whether a
    /// size overflowed or a remainder is not below its page size.
    pub(super) fn paged => paged_any(
        rows: PagedRows,
        addr: &[u64],
        slots: &mut [u64; ADDR_TABLE],
        sizes: &mut [u64],
        addresses: &mut [u64],
    ) -> bool
);

/// Allocs per chunk of `paged`'s passes: each pass over a chunk finds the
/// next one's input still in L1 (8 KiB of sizes; a block's allocs, some
/// 18k, are past L1 in each of the block's arrays, so whole-block passes
/// read every array back from L2).
const CHUNK: usize = 1024;

#[inline(always)]
fn paged_any(
    rows: PagedRows,
    addr: &[u64],
    slots: &mut [u64; ADDR_TABLE],
    sizes: &mut [u64],
    addresses: &mut [u64],
) -> bool {
    // (Arrays shorter than `sizes` leave the rest as they are, as the
    // zips of the passes do.)
    let bad = match (rows.pages, rows.size_rem) {
        (Pages::Each(pages), Some(rems)) => by_chunks(sizes, |s, at| {
            sizes_of_pages(s, tail(pages, at), tail(rems, at))
        }),
        (Pages::Each(pages), None) => {
            by_chunks(sizes, |s, at| sizes_of_whole_pages(s, tail(pages, at)))
        }
        (Pages::All(p), Some(rems)) => {
            by_chunks(sizes, |s, at| sizes_of_one_page(s, p, tail(rems, at)))
        }
        (Pages::All(p), None) => by_chunks(sizes, |s, _| sizes_of_one_whole_page(s, p)),
    };
    // The chain: each address is its slot's previous one plus its delta;
    // the slot numbers of a chunk at a time, on the stack.
    let mut slot_of = [0u32; CHUNK];
    let chunks = rows
        .flags
        .chunks(CHUNK)
        .zip(rows.devices.chunks(CHUNK))
        .zip(addr.chunks(CHUNK))
        .zip(addresses.chunks_mut(CHUNK));
    for (((flags, devices), addr), addresses) in chunks {
        let n = slot_numbers(flags, devices, &mut slot_of);
        for ((&slot, &delta), address) in slot_of[..n].iter().zip(addr).zip(addresses.iter_mut()) {
            let prev = &mut slots[slot as usize & (ADDR_TABLE - 1)];
            *prev = prev.wrapping_add(delta);
            *address = *prev;
        }
    }
    bad
}

/// `sizes` in chunks of `CHUNK`, each with its first index, through `pass`;
/// whether `pass` said bad of any.
#[inline(always)]
fn by_chunks(sizes: &mut [u64], mut pass: impl FnMut(&mut [u64], usize) -> bool) -> bool {
    let mut bad = false;
    for (k, chunk) in sizes.chunks_mut(CHUNK).enumerate() {
        bad |= pass(chunk, k * CHUNK);
    }
    bad
}

/// `values` from `at` on (empty past their end).
#[inline(always)]
fn tail(values: &[u64], at: usize) -> &[u64] {
    values.get(at..).unwrap_or(&[])
}

/// Bits above the low 32 of a value: where none of a block's units, page
/// sizes and remainders has one, `units * page + rem` fits in 64 bits
/// (`(2^32 - 1)^2 + 2^32 - 1 < 2^64`) and the product is one 32x32-bit
/// multiply (which vector units have; no 64-bit one with its overflow).
const HIGH: u64 = !(u32::MAX as u64);

/// `sizes[i] = sizes[i] * pages[i] + rems[i]`; whether one overflowed or a
/// remainder is not below its page size.
#[inline(always)]
fn sizes_of_pages(sizes: &mut [u64], pages: &[u64], rems: &[u64]) -> bool {
    let mut high = 0u64;
    for ((&s, &p), &r) in sizes.iter().zip(pages).zip(rems) {
        high |= s | p | r;
    }
    if high & HIGH != 0 {
        return exact_sizes(sizes, pages.iter().copied(), rems.iter().copied());
    }
    let mut bad = 0u64;
    for ((s, &p), &r) in sizes.iter_mut().zip(pages).zip(rems) {
        bad |= (r >= p) as u64;
        *s = (*s & !HIGH) * (p & !HIGH) + r;
    }
    bad != 0
}

/// [`sizes_of_pages`] with every remainder 0.
#[inline(always)]
fn sizes_of_whole_pages(sizes: &mut [u64], pages: &[u64]) -> bool {
    let mut high = 0u64;
    for (&s, &p) in sizes.iter().zip(pages) {
        high |= s | p;
    }
    if high & HIGH != 0 {
        return exact_sizes(sizes, pages.iter().copied(), std::iter::repeat(0));
    }
    let mut bad = 0u64;
    for (s, &p) in sizes.iter_mut().zip(pages) {
        bad |= (p == 0) as u64;
        *s = (*s & !HIGH) * (p & !HIGH);
    }
    bad != 0
}

/// [`sizes_of_pages`] with every page size `p`.
#[inline(always)]
fn sizes_of_one_page(sizes: &mut [u64], p: u64, rems: &[u64]) -> bool {
    let mut high = p;
    for (&s, &r) in sizes.iter().zip(rems) {
        high |= s | r;
    }
    if high & HIGH != 0 {
        return exact_sizes(sizes, std::iter::repeat(p), rems.iter().copied());
    }
    let mut bad = 0u64;
    for (s, &r) in sizes.iter_mut().zip(rems) {
        bad |= (r >= p) as u64;
        *s = (*s & !HIGH) * p + r;
    }
    bad != 0
}

/// [`sizes_of_whole_pages`] with every page size `p`.
#[inline(always)]
fn sizes_of_one_whole_page(sizes: &mut [u64], p: u64) -> bool {
    let mut high = p;
    for &s in sizes.iter() {
        high |= s;
    }
    if high & HIGH != 0 {
        return exact_sizes(sizes, std::iter::repeat(p), std::iter::repeat(0));
    }
    for s in sizes.iter_mut() {
        *s = (*s & !HIGH) * p;
    }
    p == 0 && !sizes.is_empty()
}

/// [`sizes_of_pages`] for values of any width (each multiply checked).
#[inline(never)]
fn exact_sizes(
    sizes: &mut [u64],
    pages: impl Iterator<Item = u64>,
    rems: impl Iterator<Item = u64>,
) -> bool {
    let mut bad = false;
    for ((s, p), rem) in sizes.iter_mut().zip(pages).zip(rems) {
        let (whole, o1) = s.overflowing_mul(p);
        let (total, o2) = whole.overflowing_add(rem);
        bad |= o1 | o2 | (rem >= p);
        *s = total;
    }
    bad
}

/// Every alloc's previous-address slot (`AddrHistory::index` of its device
/// and buffer type code) into `out`; how many (at most `CHUNK`).
#[inline(always)]
fn slot_numbers(flags: &[u8], devices: &[u32], out: &mut [u32; CHUNK]) -> usize {
    let n = flags.len().min(devices.len()).min(CHUNK);
    for ((&f, &d), o) in flags.iter().zip(devices).zip(out.iter_mut()) {
        *o = AddrHistory::index(d, f & 7) as u32;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varint::unzigzag;
    use proptest::prelude::*;

    /// The loop `paged` replaced: one alloc after the other, every
    /// multiply and add checked.
    fn reference(
        rows: PagedRows,
        addr: &[u64],
        sizes: &mut [u64],
        addresses: &mut [u64],
    ) -> (bool, Vec<u64>) {
        let mut slots = vec![0u64; AddrHistory::SLOTS + 8];
        let rems: Vec<u64> = match rows.size_rem {
            Some(r) => r.to_vec(),
            None => vec![0; sizes.len()],
        };
        let mut bad = false;
        for i in 0..sizes.len() {
            let p = match rows.pages {
                Pages::Each(pages) => pages[i],
                Pages::All(p) => p,
            };
            let rem = rems[i];
            let (whole, o1) = sizes[i].overflowing_mul(p);
            let (total, o2) = whole.overflowing_add(rem);
            bad |= o1 | o2 | (rem >= p);
            sizes[i] = total;
            let slot = &mut slots[AddrHistory::index(rows.devices[i], rows.flags[i] & 7)];
            *slot = slot.wrapping_add(unzigzag(addr[i]) as u64);
            addresses[i] = *slot;
        }
        (bad, slots)
    }

    /// Values mostly small (the fast path), some of any width.
    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![8 => 0u64..5000, 1 => any::<u64>(), 1 => 0u64..(1 << 33)]
    }

    fn row() -> impl Strategy<Value = (u8, u32, u64, u64, u64, u64)> {
        (
            any::<u8>(),
            prop_oneof![4 => 0u32..6, 1 => any::<u32>()],
            value(),
            value(),
            value(),
            any::<u64>(),
        )
    }

    proptest! {
        #[test]
        fn paged_matches_the_alloc_by_alloc_loop(
            // (Past `CHUNK` too: the passes go chunk by chunk.)
            rows in prop_oneof![
                3 => proptest::collection::vec(row(), 0..300),
                1 => proptest::collection::vec(row(), CHUNK - 10..3 * CHUNK + 10),
            ],
            with_rems in any::<bool>(),
            // Every alloc's page size this one (a near-constant column
            // without exceptions), given as one value or as copies.
            one_page in proptest::option::of(prop_oneof![1 => Just(0), 4 => value()]),
            as_one in any::<bool>(),
            // Every value below 2^32 (the vector path; one wide value
            // anywhere takes the checked one).
            narrow in any::<bool>(),
        ) {
            let cut = |v: u64| if narrow { v & u32::MAX as u64 } else { v };
            let one_page = one_page.map(cut);
            let flags: Vec<u8> = rows.iter().map(|r| r.0).collect();
            let devices: Vec<u32> = rows.iter().map(|r| r.1).collect();
            let units: Vec<u64> = rows.iter().map(|r| cut(r.2)).collect();
            let pages: Vec<u64> = rows.iter().map(|r| one_page.unwrap_or(cut(r.3))).collect();
            let rems: Vec<u64> = rows.iter().map(|r| cut(r.4)).collect();
            let addr: Vec<u64> = rows.iter().map(|r| r.5).collect();
            let rows = PagedRows {
                flags: &flags,
                devices: &devices,
                pages: Pages::Each(&pages),
                size_rem: with_rems.then_some(&rems[..]),
            };
            // The reference reads the copies; `paged` may take the value.
            let given = match one_page {
                Some(p) if as_one => PagedRows { pages: Pages::All(p), ..rows },
                _ => rows,
            };
            let n = units.len();
            let (mut want_sizes, mut want_addresses) = (units.clone(), vec![0; n]);
            let (want_bad, want_slots) =
                reference(rows, &addr, &mut want_sizes, &mut want_addresses);
            let mut slots = Box::new([0u64; ADDR_TABLE]);
            // (`paged` takes the deltas unzigzagged: `column_deltas`.)
            let deltas: Vec<u64> = addr.iter().map(|&a| unzigzag(a) as u64).collect();
            let (mut sizes, mut addresses) = (units, vec![0; n]);
            let bad = paged(given, &deltas, &mut slots, &mut sizes, &mut addresses);
            prop_assert_eq!(bad, want_bad);
            prop_assert_eq!(sizes, want_sizes);
            prop_assert_eq!(addresses, want_addresses);
            prop_assert_eq!(&slots[..want_slots.len()], &want_slots[..]);
        }
    }
}
