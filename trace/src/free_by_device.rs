//! Format 2.4's freed-buffer coding (FORMAT.md §5.1, FREE_BY_DEV and
//! FREE_FAR): a program frees a device's buffers roughly in the order it
//! allocated them on that device (outputs first in, first out;
//! intermediates right after their op), while its devices interleave in
//! the block. So a free names its buffer by the buffer's *ordinal among the
//! block's allocs on the free's device*, as the change from the ordinal
//! after the device's previous free; a buffer not allocated in the block
//! on that device is stored in a chain of its own.
//!
//! Measured on the 1M-event synthetic trace (8 devices): FREE_CHAIN (the
//! change from the previous free's id) 0.274 B/event, these columns 0.13.

use crate::varint::{unzigzag, zigzag};

mod code;
mod lanes;
mod near;
pub(crate) use near::{decode_free_devices, decode_free_devices_bytes};

/// Devices from this id on share slot 0 (writer and reader agree, so a
/// clash only costs compression).
const MAX_SLOTS: u32 = 1024;

#[inline(always)]
fn slot(device: u32) -> usize {
    if device < MAX_SLOTS {
        device as usize
    } else {
        0
    }
}

/// The FREE_BY_DEV value that sends a free to FREE_FAR.
pub(crate) const FAR: u64 = 0;

/// The writer's state for one block.
pub(crate) struct FreeEncoder {
    /// Buffer id -> (device slot, ordinal among the slot's allocs), for
    /// this block's allocs: a direct-mapped table (by the id's low bits)
    /// whose entries are valid for the block they were stamped in. An alloc
    /// that a later one pushed out is freed as FAR: a clash only costs
    /// compression, and no hashing or clearing costs time per event.
    allocated: Box<[AllocEntry]>,
    stamp: u32,
    /// Allocs per slot so far.
    count: Vec<u32>,
    /// Per slot, the ordinal after the previous free's.
    expected: Vec<u32>,
    prev_far: u64,
}

#[derive(Clone, Copy, Default)]
struct AllocEntry {
    buffer: u64,
    /// The block it was stamped in (`FreeEncoder::stamp`); 0 = never.
    stamp: u32,
    slot: u32,
    ord: u32,
}

impl Default for FreeEncoder {
    fn default() -> Self {
        FreeEncoder {
            allocated: vec![AllocEntry::default(); Self::ENTRIES].into_boxed_slice(),
            stamp: 1,
            count: Vec::new(),
            expected: Vec::new(),
            prev_far: 0,
        }
    }
}

impl FreeEncoder {
    const ENTRIES: usize = 1 << 16;

    #[inline(always)]
    fn entry(&mut self, buffer: u64) -> &mut AllocEntry {
        &mut self.allocated[(buffer as usize) & (Self::ENTRIES - 1)]
    }

    pub(crate) fn clear(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Stamps wrapped: forget every entry once in 2^32 blocks.
            self.allocated.fill(AllocEntry::default());
            self.stamp = 1;
        }
        self.count.clear();
        self.expected.clear();
        self.prev_far = 0;
    }

    #[inline]
    pub(crate) fn alloc(&mut self, device: u32, buffer: u64) {
        let s = slot(device);
        if s >= self.count.len() {
            self.count.resize(s + 1, 0);
            self.expected.resize(s + 1, 0);
        }
        let ord = self.count[s];
        self.count[s] += 1;
        let stamp = self.stamp;
        *self.entry(buffer) = AllocEntry {
            buffer,
            stamp,
            slot: s as u32,
            ord,
        };
    }

    /// The FREE_BY_DEV value of a free, and its FREE_FAR value when that is `FAR`.
    #[inline]
    pub(crate) fn free(&mut self, device: u32, buffer: u64) -> (u64, Option<u64>) {
        let s = slot(device);
        let stamp = self.stamp;
        let e = *self.entry(buffer);
        if e.stamp == stamp && e.buffer == buffer && e.slot as usize == s {
            let exp = &mut self.expected[s];
            let code = zigzag(e.ord as i64 - *exp as i64) + 1;
            *exp = e.ord + 1;
            (code, None)
        } else {
            let d = buffer.wrapping_sub(self.prev_far);
            self.prev_far = buffer;
            (FAR, Some(zigzag(d as i64)))
        }
    }
}

/// The reader's buffers, kept between blocks.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct FreeColumnsScratch {
    /// FREE_DEV_NEAR's values.
    pub(crate) dev_codes: Vec<u64>,
    /// FREE_BY_DEV's and FREE_FAR's values.
    pub(crate) codes: Vec<u64>,
    pub(crate) far: Vec<u64>,
    pub(crate) scratch: FreeIdScratch,
}

/// The reader's scratch, kept between blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FreeIdScratch {
    /// Per device slot, the block's allocs on it: how many, and where
    /// they start in `ids`.
    count: Box<[u32; MAX_SLOTS as usize]>,
    start: Box<[u32; MAX_SLOTS as usize]>,
    /// Per device slot: while grouping, where its next alloc goes in
    /// `ids`; then the ordinal after its previous free's.
    next: Box<[u32; MAX_SLOTS as usize]>,
    /// The block's alloc ids grouped by device slot, in event order.
    ids: Vec<u64>,
    /// Each alloc's device slot.
    alloc_slots: Vec<u32>,
    /// Each free's device slot (`FAR_SLOT` for a far free) and the change
    /// of its ordinal from the one after its slot's previous free.
    free_slots: Vec<u32>,
    deltas: Vec<u64>,
}

impl Default for FreeIdScratch {
    fn default() -> Self {
        FreeIdScratch {
            count: Box::new([0; MAX_SLOTS as usize]),
            start: Box::new([0; MAX_SLOTS as usize]),
            next: Box::new([0; MAX_SLOTS as usize]),
            ids: Vec::new(),
            alloc_slots: Vec::new(),
            free_slots: Vec::new(),
            deltas: Vec::new(),
        }
    }
}

/// The slot `free_steps` gives a far free (no device slot is this high).
const FAR_SLOT: u32 = u32::MAX;

/// A slot (below `MAX_SLOTS`, a power of two) as an index the compiler
/// sees is in bounds of a slot table.
#[inline(always)]
fn index(slot: u32) -> usize {
    (slot & (MAX_SLOTS - 1)) as usize
}

crate::decode::fast_cpu_dispatch!(
    /// Each device's slot, into `out` (a loop the compiler vectorises:
    /// the grouping loops then index their tables with it directly).
    fn slots_of => slots_of_any(devices: &[u32], out: &mut [u32]) -> ()
);

#[inline(always)]
fn slots_of_any(devices: &[u32], out: &mut [u32]) {
    for (o, &d) in out.iter_mut().zip(devices) {
        *o = slot(d) as u32;
    }
}

crate::decode::fast_cpu_dispatch!(
    /// Each free's slot (`FAR_SLOT` when its FREE_BY_DEV value is `FAR`)
    /// and ordinal change (`unzigzag(code - 1)`), from `codes` and the
    /// frees' `devices`; returns how many are far. A loop the compiler
    /// vectorises, apart from the serial walk over the slots' states.
    fn free_steps => free_steps_any(
        codes: &[u64],
        devices: &[u32],
        slots: &mut [u32],
        deltas: &mut [u64],
    ) -> usize
);

#[inline(always)]
fn free_steps_any(codes: &[u64], devices: &[u32], slots: &mut [u32], deltas: &mut [u64]) -> usize {
    let mut n_far = 0usize;
    let rows = codes
        .iter()
        .zip(devices)
        .zip(slots.iter_mut())
        .zip(deltas.iter_mut());
    for (((&c, &d), sl), dl) in rows {
        let far = c == FAR;
        n_far += far as usize;
        *sl = if far { FAR_SLOT } else { slot(d) as u32 };
        *dl = unzigzag(c.wrapping_sub(1)) as u64;
    }
    n_far
}

/// Resolves the buffer ids of a 2.4 block's frees into `out`: `codes` are
/// FREE_BY_DEV's values, `far` FREE_FAR's; allocs and frees as decoded.
pub(crate) fn decode_free_ids(
    alloc_devices: &[u32],
    alloc_ids: &[u64],
    free_devices: &[u32],
    codes: &[u64],
    far: &[u64],
    s: &mut FreeIdScratch,
    out: &mut Vec<u64>,
) -> Result<(), String> {
    if alloc_devices.len() != alloc_ids.len() {
        return Err("alloc devices and alloc buffers differ in number".into());
    }
    if free_devices.len() != codes.len() {
        return Err("free devices and free ordinals differ in number".into());
    }
    // Overwritten whole: only growth is zeroed.
    crate::decode::overwrite_len(out, codes.len());
    if lanes::resolve(
        alloc_devices,
        alloc_ids,
        free_devices,
        codes,
        far,
        &mut s.ids,
        out,
    ) {
        return Ok(());
    }
    by_tables(alloc_devices, alloc_ids, free_devices, codes, far, s, out)
}

/// [`decode_free_ids`] with the codes as FREE_BY_DEV's one byte plane
/// (`wide`: scratch for them as `u64`s, where the lanes path declines).
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_free_ids_bytes(
    alloc_devices: &[u32],
    alloc_ids: &[u64],
    free_devices: &[u32],
    codes: &[u8],
    far: &[u64],
    s: &mut FreeIdScratch,
    wide: &mut Vec<u64>,
    out: &mut Vec<u64>,
) -> Result<(), String> {
    if alloc_devices.len() == alloc_ids.len() && free_devices.len() == codes.len() {
        crate::decode::overwrite_len(out, codes.len());
        if lanes::resolve(
            alloc_devices,
            alloc_ids,
            free_devices,
            codes,
            far,
            &mut s.ids,
            out,
        ) {
            return Ok(());
        }
    }
    // (Rare: devices of 8 and more, or a malformed block, whose error
    // the tables name.)
    wide.clear();
    wide.extend(codes.iter().map(|&c| c as u64));
    decode_free_ids(alloc_devices, alloc_ids, free_devices, wide, far, s, out)
}

/// [`decode_free_ids`] for any block, with each device slot's counters in
/// tables (`s`); `out` is as long as `codes`, and the lengths are checked.
pub(super) fn by_tables(
    alloc_devices: &[u32],
    alloc_ids: &[u64],
    free_devices: &[u32],
    codes: &[u64],
    far: &[u64],
    s: &mut FreeIdScratch,
    out: &mut [u64],
) -> Result<(), String> {
    let (n_alloc, n_free) = (alloc_ids.len(), codes.len());
    // Slots and ordinal changes first, in vector passes.
    crate::decode::overwrite_len(&mut s.alloc_slots, n_alloc);
    slots_of(alloc_devices, &mut s.alloc_slots);
    crate::decode::overwrite_len(&mut s.free_slots, n_free);
    crate::decode::overwrite_len(&mut s.deltas, n_free);
    let n_far = free_steps(codes, free_devices, &mut s.free_slots, &mut s.deltas);
    if far.len() != n_far {
        return Err(format!(
            "column far frees holds {} values, the free ordinals say {n_far}",
            far.len()
        ));
    }
    // The block's allocs grouped by device slot, in event order.
    let (count, start, next) = (&mut *s.count, &mut *s.start, &mut *s.next);
    count.fill(0);
    for &sl in &s.alloc_slots {
        count[index(sl)] += 1;
    }
    let mut at = 0u32;
    for ((st, nx), &c) in start.iter_mut().zip(next.iter_mut()).zip(count.iter()) {
        *st = at;
        *nx = at;
        at += c;
    }
    // Overwritten whole (a permutation of the alloc ids): only growth is zeroed.
    crate::decode::overwrite_len(&mut s.ids, n_alloc);
    let ids = &mut s.ids[..n_alloc];
    // Each slot's `start..start + count` lies in `0..at` (its start is the
    // counts of the slots before it), and `at` is the allocs' count.
    debug_assert_eq!(at as usize, n_alloc);
    for (&sl, &id) in s.alloc_slots.iter().zip(alloc_ids) {
        let nx = &mut next[index(sl)];
        debug_assert!((*nx as usize) < ids.len());
        // SAFETY: `next` stays in the slot's `start..start + count`, below
        // `at` = `ids.len()`: the slot has `count` allocs, and each moves
        // it one on.
        unsafe { *ids.get_unchecked_mut(*nx as usize) = id };
        *nx += 1;
    }
    // From here `next` is the ordinal after each slot's previous free.
    next.fill(0);
    let ids = &s.ids[..];
    let mut far_vals = far.iter();
    let mut prev_far = 0u64;
    let rows = s.free_slots.iter().zip(&s.deltas).zip(out.iter_mut());
    for (i, ((&sl, &delta), o)) in rows.enumerate() {
        if sl == FAR_SLOT {
            // As many far slots as far values: counted above.
            let v = *far_vals.next().expect("one far value per FAR code");
            prev_far = prev_far.wrapping_add(unzigzag(v) as u64);
            *o = prev_far;
            continue;
        }
        let k = index(sl);
        let ord = (next[k] as u64).wrapping_add(delta);
        // One unsigned compare: a negative ordinal is out of range too.
        if ord >= count[k] as u64 {
            return Err(format!(
                "a free names the alloc at ordinal {} of device {}, which has {} in the block",
                ord as i64, free_devices[i], count[k]
            ));
        }
        next[k] = ord as u32 + 1;
        debug_assert!(((start[k] + ord as u32) as usize) < ids.len());
        // SAFETY: `ord < count` (checked above), so the index lies in the
        // slot's `start..start + count`, below `ids.len()` (see where the
        // ids were grouped).
        *o = unsafe { *ids.get_unchecked((start[k] + ord as u32) as usize) };
    }
    Ok(())
}

crate::decode::fast_cpu_dispatch!(
    /// How many FREE_BY_DEV values are `FAR`.
    pub(crate) fn count_far => count_far_any(codes: &[u64]) -> usize
);

crate::decode::fast_cpu_dispatch!(
    /// [`count_far`] of FREE_BY_DEV's one byte plane.
    pub(crate) fn count_far_bytes => count_far_bytes_any(codes: &[u8]) -> usize
);

#[inline(always)]
fn count_far_any(codes: &[u64]) -> usize {
    codes.iter().map(|&c| (c == FAR) as usize).sum()
}

/// (A loop the compiler vectorises: byte counters, summed every 255.)
#[inline(always)]
fn count_far_bytes_any(codes: &[u8]) -> usize {
    codes
        .chunks(255)
        .map(|chunk| chunk.iter().fold(0u8, |n, &c| n + (c == FAR as u8) as u8) as usize)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block's free columns as the writer codes them: the allocs' and
    /// frees' devices (mapped by `dev`) and ids, the frees' codes and the
    /// far values.
    pub(super) struct EncodedBlock {
        pub(super) alloc_devices: Vec<u32>,
        pub(super) alloc_ids: Vec<u64>,
        pub(super) free_devices: Vec<u32>,
        pub(super) codes: Vec<u64>,
        pub(super) far: Vec<u64>,
    }

    /// (device, buffer id) pairs.
    pub(super) type Pairs = Vec<(u32, u64)>;

    /// A block of allocs on `devices` (alloc `i` has id `1000 + i`) and
    /// frees of them picked by `picks` (any order, some twice), with a free
    /// of a buffer never allocated (far) every `far_every` frees (none
    /// when 0): (device, id) pairs.
    pub(super) fn picked_frees(
        devices: &[u32],
        picks: &[proptest::sample::Index],
        far_every: usize,
    ) -> (Pairs, Pairs) {
        let allocs: Vec<(u32, u64)> = devices
            .iter()
            .enumerate()
            .map(|(i, &d)| (d, 1000 + i as u64))
            .collect();
        let frees = picks
            .iter()
            .enumerate()
            .map(|(k, p)| {
                if far_every > 0 && k % far_every == far_every - 1 {
                    (0, 7)
                } else {
                    allocs[p.index(allocs.len())]
                }
            })
            .collect();
        (allocs, frees)
    }

    impl EncodedBlock {
        pub(super) fn encode(
            allocs: &[(u32, u64)],
            frees: &[(u32, u64)],
            dev: impl Fn(u32) -> u32,
        ) -> Self {
            let mut w = FreeEncoder::default();
            for &(d, b) in allocs {
                w.alloc(dev(d), b);
            }
            let (mut codes, mut far) = (Vec::new(), Vec::new());
            for &(d, b) in frees {
                let (c, f) = w.free(dev(d), b);
                codes.push(c);
                far.extend(f);
            }
            EncodedBlock {
                alloc_devices: allocs.iter().map(|a| dev(a.0)).collect(),
                alloc_ids: allocs.iter().map(|a| a.1).collect(),
                free_devices: frees.iter().map(|f| dev(f.0)).collect(),
                codes,
                far,
            }
        }
    }

    #[test]
    fn frees_in_each_device_s_alloc_order_cost_one_and_others_go_far() {
        // Allocs: id 10 on dev 0, 11 on dev 1, 12 on dev 0, 13 on dev 1, 14 on dev 0.
        let allocs = [(0u32, 10u64), (1, 11), (0, 12), (1, 13), (0, 14)];
        let mut w = FreeEncoder::default();
        for &(d, b) in &allocs {
            w.alloc(d, b);
        }
        // Frees: 10 (dev 0 ord 0, expected 0: code zigzag(0)+1 = 1), 12 (ord 1,
        // expected 1: 1), 11 (dev 1 ord 0: 1), 14 (dev 0 ord 2: 1), 13 on dev 0
        // (allocated on dev 1: far, zigzag(13) = 26), 99 (never allocated:
        // far, zigzag(99 - 13) = 172), 13 on dev 1 again (ord 1, expected 1: 1),
        // 12 on dev 0 again (ord 1, expected 3: zigzag(-2)+1 = 4).
        let frees = [
            (0u32, 10u64),
            (0, 12),
            (1, 11),
            (0, 14),
            (0, 13),
            (5, 99),
            (1, 13),
            (0, 12),
        ];
        let (mut codes, mut far) = (Vec::new(), Vec::new());
        for &(d, b) in &frees {
            let (c, f) = w.free(d, b);
            codes.push(c);
            far.extend(f);
        }
        assert_eq!(codes, [1, 1, 1, 1, FAR, FAR, 1, 4]);
        assert_eq!(far, [26, 172]);
        let (ad, ai): (Vec<u32>, Vec<u64>) = allocs.iter().copied().unzip();
        let fd: Vec<u32> = frees.iter().map(|f| f.0).collect();
        let mut out = Vec::new();
        let mut s = FreeIdScratch::default();
        decode_free_ids(&ad, &ai, &fd, &codes, &far, &mut s, &mut out).unwrap();
        assert_eq!(out, frees.iter().map(|f| f.1).collect::<Vec<_>>());
    }

    proptest::proptest! {
        /// Whatever the writer codes (frees of this block's allocs in any
        /// order, again, on another device, never allocated; devices past
        /// the slots sharing slot 0), the reader resolves every free's id.
        #[test]
        fn decoded_free_ids_are_the_encoded_ones(
            allocs in proptest::collection::vec((0u32..6, 0u64..40), 0..60),
            frees in proptest::collection::vec((0u32..6, 0u64..48), 0..60),
        ) {
            // Devices 4 and 5 stand for ids past the slots (1024, 1030).
            let dev = |d: u32| if d < 4 { d } else { MAX_SLOTS + (d - 4) * 6 };
            let EncodedBlock { alloc_devices: ad, alloc_ids: ai, free_devices: fd, codes, far } =
                EncodedBlock::encode(&allocs, &frees, dev);
            let (mut s, mut out) = (FreeIdScratch::default(), Vec::new());
            // Twice with the same scratch: nothing of a block leaks into the next.
            for _ in 0..2 {
                decode_free_ids(&ad, &ai, &fd, &codes, &far, &mut s, &mut out).unwrap();
                proptest::prop_assert_eq!(&out, &frees.iter().map(|f| f.1).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn an_ordinal_outside_the_device_s_allocs_is_named() {
        let mut s = FreeIdScratch::default();
        let mut out = Vec::new();
        // One alloc on dev 2; a free of ordinal 1 (code zigzag(1)+1 = 3).
        let err = decode_free_ids(&[2], &[7], &[2], &[3], &[], &mut s, &mut out).unwrap_err();
        assert!(err.contains("ordinal 1 of device 2, which has 1"), "{err}");
        let err = decode_free_ids(&[2], &[7], &[2], &[FAR], &[], &mut s, &mut out).unwrap_err();
        assert!(err.contains("far frees holds 0 values"), "{err}");
    }
}
