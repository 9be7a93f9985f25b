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

use crate::decode::KindWord;
use crate::varint::{unzigzag, zigzag};

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

crate::decode::fast_cpu_dispatch!(
/// The reader's side of FREE_DEV_NEAR: every free's device (into `out`)
/// from `codes` (its values, one per free) and the device of the latest
/// alloc before it in the block (`alloc_devices`, in event order), 0 when
/// none. `words` are the block's kind words: the allocs before a free are
/// those of earlier words and the ones below its bit.
pub(crate) fn decode_free_devices => decode_free_devices_any(
    words: &[KindWord],
    alloc_devices: &[u32],
    codes: &[u64],
    out: &mut Vec<u32>,
) -> Result<(), String>);

#[inline(always)]
fn decode_free_devices_any(
    words: &[KindWord],
    alloc_devices: &[u32],
    codes: &[u64],
    out: &mut Vec<u32>,
) -> Result<(), String> {
    let n_free: usize = words.iter().map(|w| w.free.count_ones() as usize).sum();
    let n_alloc: usize = words.iter().map(|w| w.alloc.count_ones() as usize).sum();
    if codes.len() != n_free || alloc_devices.len() != n_alloc {
        return Err("free devices do not match the kind column".into());
    }
    // Overwritten whole: only growth is zeroed.
    crate::decode::overwrite_len(out, n_free);
    let out = &mut out[..n_free];
    let (mut ka, mut kf) = (0usize, 0usize);
    for w in words {
        let mut m = w.free;
        while m != 0 {
            let bit = m.trailing_zeros();
            m &= m - 1;
            // At most `n_alloc` allocs precede it (the same kind words).
            let k = ka + (w.alloc & ((1u64 << bit) - 1)).count_ones() as usize;
            // (None before the block's first alloc: `k - 1` wraps.)
            let prev = alloc_devices.get(k.wrapping_sub(1)).copied().unwrap_or(0);
            debug_assert!(kf < n_free);
            // SAFETY: `kf` counts the free bits before this one of the
            // words whose free bits number `n_free` = `codes.len()` =
            // `out.len()` (checked above): it is below both lengths.
            unsafe {
                let code = *codes.get_unchecked(kf);
                *out.get_unchecked_mut(kf) = prev.wrapping_add(unzigzag(code) as u32);
            }
            kf += 1;
        }
        ka += w.alloc.count_ones() as usize;
    }
    Ok(())
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
    slots: Box<[SlotState; MAX_SLOTS as usize]>,
    /// The block's alloc ids grouped by device slot, in event order.
    ids: Vec<u64>,
}

impl Default for FreeIdScratch {
    fn default() -> Self {
        FreeIdScratch {
            slots: Box::new([SlotState::default(); MAX_SLOTS as usize]),
            ids: Vec::new(),
        }
    }
}

/// One device slot's allocs in the block: where they start in
/// `FreeIdScratch::ids`, how many, and the ordinal after the previous
/// free's (while grouping: where the next alloc goes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SlotState {
    start: u32,
    count: u32,
    next: u32,
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
    let n_far = count_far(codes);
    if far.len() != n_far {
        return Err(format!(
            "column far frees holds {} values, the free ordinals say {n_far}",
            far.len()
        ));
    }
    // The block's allocs grouped by device slot, in event order.
    let slots = &mut s.slots[..];
    slots.fill(SlotState::default());
    for &d in alloc_devices {
        slots[slot(d)].count += 1;
    }
    let mut at = 0u32;
    for st in slots.iter_mut() {
        st.start = at;
        st.next = at;
        at += st.count;
    }
    // Overwritten whole (a permutation of the alloc ids): only growth is zeroed.
    crate::decode::overwrite_len(&mut s.ids, alloc_ids.len());
    let ids = &mut s.ids[..alloc_ids.len()];
    // Each slot's `start..start + count` lies in `0..at` (its start is the
    // counts of the slots before it) and `at` is the allocs' count.
    if alloc_devices.len() != ids.len() {
        return Err("alloc devices and alloc buffers differ in number".into());
    }
    debug_assert_eq!(at as usize, alloc_devices.len());
    for (&d, &id) in alloc_devices.iter().zip(alloc_ids) {
        let st = &mut slots[slot(d)];
        debug_assert!((st.next as usize) < ids.len());
        // SAFETY: `next` stays in the slot's `start..start + count`, below
        // `at` = `ids.len()` (checked above): the slot has `count` allocs,
        // and each moves it one on.
        unsafe { *ids.get_unchecked_mut(st.next as usize) = id };
        st.next += 1;
    }
    // From here `next` is the ordinal after each slot's previous free.
    for st in slots.iter_mut() {
        st.next = 0;
    }
    // Overwritten whole: only growth is zeroed.
    crate::decode::overwrite_len(out, codes.len());
    let ids = &s.ids[..];
    let mut far_vals = far.iter();
    let mut prev_far = 0u64;
    for ((&code, &d), o) in codes.iter().zip(free_devices).zip(out.iter_mut()) {
        if code == FAR {
            // As many FAR codes as far values: counted above.
            let v = *far_vals.next().expect("one far value per FAR code");
            prev_far = prev_far.wrapping_add(unzigzag(v) as u64);
            *o = prev_far;
            continue;
        }
        let st = &mut slots[slot(d)];
        let ord = (st.next as u64).wrapping_add(unzigzag(code - 1) as u64);
        // One unsigned compare: a negative ordinal is out of range too.
        if ord >= st.count as u64 {
            return Err(format!(
                "a free names the alloc at ordinal {} of device {d}, which has {} in the block",
                ord as i64, st.count
            ));
        }
        st.next = ord as u32 + 1;
        debug_assert!(((st.start + ord as u32) as usize) < ids.len());
        // SAFETY: `ord < count` (checked above), so the index lies in the
        // slot's `start..start + count`, below `ids.len()` (checked where
        // the ids were grouped).
        *o = unsafe { *ids.get_unchecked((st.start + ord as u32) as usize) };
    }
    Ok(())
}

crate::decode::fast_cpu_dispatch!(
    /// How many FREE_BY_DEV values are `FAR`.
    pub(crate) fn count_far => count_far_any(codes: &[u64]) -> usize
);

#[inline(always)]
fn count_far_any(codes: &[u64]) -> usize {
    codes.iter().map(|&c| (c == FAR) as usize).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_free_s_device_is_the_latest_alloc_s_plus_its_change() {
        use ttalloc_model::EventTag::{BufferAlloc as A, BufferFree as F, OpEnd as E};
        // free (no alloc before: 0 + 2), alloc on 5, free (5 + 0), alloc on 3,
        // op end, free (3 - 1), free (3 + 0); after 60 op ends, so the
        // events straddle two kind words.
        let mut tags = vec![E as u8; 60];
        tags.extend([F, A, F, A, E, F, F].map(|t| t as u8));
        let codes = [zigzag(2), 0, zigzag(-1), 0];
        let mut words = Vec::new();
        crate::decode::kind_words(&tags, &mut words);
        let mut out = Vec::new();
        decode_free_devices(&words, &[5, 3], &codes, &mut out).unwrap();
        assert_eq!(out, [2, 5, 2, 3]);
        assert!(decode_free_devices(&words, &[5], &codes, &mut out).is_err());
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
