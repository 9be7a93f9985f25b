//! Format 2.4's alloc-site coding (FORMAT.md §5.1, SITE_BY_NAME and
//! SITE_NEW): which call site allocates next depends mostly on the op that
//! runs (an op allocates from its own two or three sites), so each alloc's
//! site is coded as its place in a small move-to-front cache kept per op
//! name: the string id of the last OpBegin or Marker before the alloc in the
//! block. A site not in that cache is stored whole.
//!
//! Measured on the 1M-event synthetic trace: ALLOC_SITE 0.178 B/event,
//! these columns 0.069.

use crate::decode::KindWord;

/// Per name slot (string id + 1 modulo `SLOTS`, 0 before the block's first
/// name; a clash only costs compression), the `WAYS` most recently used
/// distinct sites, most recent first; every entry is 0 at block start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SitesByName {
    slots: Box<[[u32; SitesByName::WAYS]; SitesByName::SLOTS]>,
    /// The reader's: the byte offset in `slots` of the slot of each name
    /// of the block being decoded (`decode_sites`), after the slot of
    /// none's (`sites_fast` adds it to the table's address as it is: a
    /// slot number took a shift per alloc).
    name_slots: Vec<u32>,
}

impl Default for SitesByName {
    fn default() -> Self {
        SitesByName {
            slots: crate::site_flags::boxed_table([0; Self::WAYS]),
            name_slots: Vec::new(),
        }
    }
}

impl SitesByName {
    pub(crate) const WAYS: usize = 4;
    pub(crate) const SLOTS: usize = 1024;
    /// The SITE_BY_NAME byte of a site that is not in the cache.
    pub(crate) const NEW: u8 = Self::WAYS as u8;

    /// The cache slot of the name context: `name` is the string id of the
    /// last OpBegin or Marker before the alloc, `None` before the first.
    #[inline(always)]
    pub(crate) fn slot_of(name: Option<u32>) -> usize {
        name.map_or(0, |n| n as usize + 1) & (Self::SLOTS - 1)
    }

    /// Bytes per slot.
    const SLOT_BYTES: usize = std::mem::size_of::<[u32; Self::WAYS]>();

    /// The reader's `name_slots` entry of `name`: its slot's byte offset.
    #[inline(always)]
    fn slot_offset_of(name: Option<u32>) -> u32 {
        (Self::slot_of(name) * Self::SLOT_BYTES) as u32
    }

    pub(crate) fn clear(&mut self) {
        self.slots.fill([0; Self::WAYS]);
    }

    /// The writer's side: the place of `site` in the slot's cache, or
    /// `NEW`; the site is then first.
    #[inline]
    pub(crate) fn encode(&mut self, slot: usize, site: u32) -> u8 {
        let ways = &mut self.slots[slot];
        match ways.iter().position(|&s| s == site) {
            Some(i) => {
                move_to_front(ways, i);
                i as u8
            }
            None => {
                move_to_front(ways, Self::WAYS - 1);
                ways[0] = site;
                Self::NEW
            }
        }
    }
}

/// Moves entry `i` to the front, the ones before it one place back.
#[inline(always)]
fn move_to_front(ways: &mut [u32; SitesByName::WAYS], i: usize) {
    let v = ways[i];
    for j in (1..=i).rev() {
        ways[j] = ways[j - 1];
    }
    ways[0] = v;
}

/// The reader's buffers, kept between blocks.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct SiteScratch {
    /// SITE_NEW's values (and a slack slot).
    pub(crate) new: Vec<u64>,
    pub(crate) cache: SitesByName,
}

/// Decodes the alloc sites of a 2.4 block into `out` (one per alloc):
/// `words` are the block's kind words (which events are allocs and which
/// names), `names` the NAME column's values (one per name bit), `places`
/// SITE_BY_NAME and `new` SITE_NEW's values (`new` gets a slack slot).
/// Ids are checked by the caller.
pub(crate) fn decode_sites(
    words: &[KindWord],
    names: &[u32],
    places: &[u8],
    new: &mut Vec<u64>,
    cache: &mut SitesByName,
    out: &mut Vec<u32>,
) -> Result<(), String> {
    let n_alloc: usize = words.iter().map(|w| w.alloc.count_ones() as usize).sum();
    if places.len() != n_alloc {
        return Err(format!(
            "column site places holds {} allocs, the kind column {n_alloc}",
            places.len(),
        ));
    }
    let (n_new, max_place) = new_and_max(places);
    if max_place > SitesByName::NEW {
        return Err(format!(
            "site place {max_place} is out of range (0 to {})",
            SitesByName::NEW
        ));
    }
    if new.len() != n_new {
        return Err(format!(
            "column new sites holds {} values, the site places say {n_new}",
            new.len()
        ));
    }
    if let Some(&s) = new.iter().find(|&&s| s > u32::MAX as u64) {
        return Err(format!("site id {s} is not defined"));
    }
    if names.len()
        != words
            .iter()
            .map(|w| w.name.count_ones() as usize)
            .sum::<usize>()
    {
        return Err("the name column does not match the kind column".into());
    }
    // The name slot of an alloc after `k` names is at `name_slots[k]`.
    let name_slots = &mut cache.name_slots;
    name_slots.clear();
    name_slots.push(SitesByName::slot_offset_of(None));
    name_slots.extend(names.iter().map(|&n| SitesByName::slot_offset_of(Some(n))));
    new.push(0);
    cache.clear();
    // Overwritten whole: only growth is zeroed.
    crate::decode::overwrite_len(out, n_alloc);
    // SAFETY (both calls): `sites_loop`'s bounds hold by the checks above:
    // a place per alloc bit and as many sites in `out`, a name slot per
    // name bit and one for none, a `new` value per NEW place and a slack
    // slot.
    #[cfg(target_arch = "x86_64")]
    if crate::decode::fast_cpu() {
        // SAFETY: also, the CPU has every feature `sites_fast` is compiled for.
        unsafe { sites_fast(words, places, new, cache, out) };
        new.pop();
        return Ok(());
    }
    unsafe { sites_loop(words, places, new, cache, out) };
    new.pop();
    Ok(())
}

crate::decode::fast_cpu_dispatch!(
    /// How many places are NEW, and the largest place.
    pub(crate) fn new_and_max => new_and_max_any(places: &[u8]) -> (usize, u8)
);

/// (A loop the compiler vectorises: byte counters, summed every 255.)
#[inline(always)]
fn new_and_max_any(places: &[u8]) -> (usize, u8) {
    let (mut n_new, mut max_place) = (0usize, 0u8);
    for chunk in places.chunks(255) {
        let (mut new, mut max) = (0u8, 0u8);
        for &p in chunk {
            new += (p == SitesByName::NEW) as u8;
            max = max.max(p);
        }
        n_new += new as usize;
        max_place = max_place.max(max);
    }
    (n_new, max_place)
}

/// `sites_loop` with AVX2 and the bit instructions: each alloc's slot
/// moves by one byte shuffle in a register (its place's row), and only a
/// new site (rare) takes a branch, to blend it in.
///
/// # Safety
///
/// The CPU has those features, and `sites_loop`'s bounds hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn sites_fast(
    words: &[KindWord],
    places: &[u8],
    new: &[u64],
    cache: &mut SitesByName,
    out: &mut [u32],
) {
    use std::arch::x86_64::{
        __m128i, _mm_blend_epi32, _mm_cvtsi128_si32, _mm_cvtsi32_si128, _mm_loadu_si128,
        _mm_storeu_si128,
    };
    let (name_slots, slots) = (&cache.name_slots[..], &mut *cache.slots);
    let base = slots.as_mut_ptr() as *mut __m128i;
    let (mut ka, mut kn, mut k_new) = (0usize, 0usize, 0usize);
    // The bounds below hold as in `sites_loop` (`# Safety`); a name slot's
    // offset is below the table's bytes (`slot_of` masks the slot) and a
    // place at most `NEW`.
    for w in words {
        let mut m = w.alloc;
        while m != 0 {
            let bit = m.trailing_zeros();
            m &= m - 1;
            let k = kn + (w.name & ((1u64 << bit) - 1)).count_ones() as usize;
            debug_assert!(k < name_slots.len() && ka < places.len() && k_new < new.len());
            // SAFETY: `k < name_slots.len()`, `ka < places.len()` and
            // `k_new < new.len()` (see `sites_loop`); the name slot is
            // a slot below `SLOTS`, the table's length, and `p <= NEW < 8`.
            unsafe {
                let (offset, p) = (*name_slots.get_unchecked(k), *places.get_unchecked(ka));
                debug_assert!(
                    (offset as usize) < SitesByName::SLOTS * SitesByName::SLOT_BYTES
                        && (offset as usize).is_multiple_of(SitesByName::SLOT_BYTES)
                        && p <= SitesByName::NEW
                );
                let slot = base.byte_add(offset as usize);
                // Every place one shuffle (NEW's moves the entries back);
                // a NEW place (rare: its branch is predicted) then puts
                // the new site first.
                let mut ways = crate::decode::mtf::mtf_u32_shuffle(_mm_loadu_si128(slot), p);
                if p == SitesByName::NEW {
                    let s = *new.get_unchecked(k_new) as u32;
                    k_new += 1;
                    ways = _mm_blend_epi32::<1>(ways, _mm_cvtsi32_si128(s as i32));
                }
                _mm_storeu_si128(slot, ways);
                *out.get_unchecked_mut(ka) = _mm_cvtsi128_si32(ways) as u32;
            }
            ka += 1;
        }
        kn += w.name.count_ones() as usize;
    }
}

/// The loop of `decode_sites` on CPUs without AVX2 (and the reference
/// of `sites_fast`'s tests).
///
/// # Safety
///
/// The bounds `decode_sites` checks hold: one place per alloc bit of
/// `words` and as many entries in `out`, each place at most `NEW`; one
/// entry of `cache.name_slots` per name bit and one for none; one `new`
/// value per NEW place and a slack slot. The loop reads and writes
/// without a bounds check each (a check each was a fifth of it).
#[inline(always)]
unsafe fn sites_loop(
    words: &[KindWord],
    places: &[u8],
    new: &[u64],
    cache: &mut SitesByName,
    out: &mut [u32],
) {
    let (mut ka, mut kn, mut k_new) = (0usize, 0usize, 0usize);
    let (name_slots, slots) = (&cache.name_slots[..], &mut *cache.slots);
    // The indices below are in bounds by the function's contract: the
    // words' alloc bits number `places.len()` = `out.len()`, so `ka` stays
    // below it; their name bits number `name_slots.len() - 1`, and `k`
    // counts the names before an alloc, at most that; `k_new` counts the
    // NEW places before one, at most `new.len() - 1`.
    for w in words {
        let mut m = w.alloc;
        while m != 0 {
            let bit = m.trailing_zeros();
            m &= m - 1;
            // Names before this alloc: those of earlier words and the ones
            // below its bit.
            let k = kn + (w.name & ((1u64 << bit) - 1)).count_ones() as usize;
            debug_assert!(k < name_slots.len() && ka < places.len() && k_new < new.len());
            // SAFETY: `k < name_slots.len()` and `ka < places.len()` (see
            // above the loop, and `# Safety`).
            let (offset, p) = unsafe { (*name_slots.get_unchecked(k), *places.get_unchecked(ka)) };
            let slot = &mut slots[offset as usize / SitesByName::SLOT_BYTES];
            // SAFETY: `k_new` counts the NEW places before this one, at
            // most their count, `new.len() - 1` (`# Safety`).
            let s = unsafe { *new.get_unchecked(k_new) } as u32;
            k_new += (p == SitesByName::NEW) as usize;
            let site = crate::decode::mtf::mtf_u32(slot, p, s);
            // SAFETY: `ka < places.len() = out.len()` (`# Safety`).
            unsafe { *out.get_unchecked_mut(ka) = site };
            ka += 1;
        }
        kn += w.name.count_ones() as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::kind_words;
    use proptest::strategy::Strategy;
    use ttalloc_model::EventTag::{BufferAlloc as A, OpBegin as B, OpEnd as E};

    #[test]
    fn the_writer_s_places_decode_to_the_same_sites() {
        // Allocs: before any name (slot 0), then under name 7, then name 9,
        // then name 7 again: its cache still holds its sites.
        let allocs: [(Option<u32>, u32); 8] = [
            (None, 5),
            (Some(7), 11),
            (Some(7), 12),
            (Some(7), 11),
            (Some(9), 11),
            (Some(7), 12),
            (Some(7), 13),
            (Some(7), 11),
        ];
        let mut w = SitesByName::default();
        let mut places = Vec::new();
        let mut new = Vec::new();
        for &(name, site) in &allocs {
            let p = w.encode(SitesByName::slot_of(name), site);
            places.push(p);
            if p == SitesByName::NEW {
                new.push(site as u64);
            }
        }
        // Name 7's cache: [11] -> 12 new [12, 11] -> 11 at 1 [11, 12];
        // name 9: 11 new; name 7: 12 at 1 [12, 11], 13 new [13, 12, 11], 11 at 2.
        assert_eq!(places, [4, 4, 4, 1, 4, 1, 4, 2]);
        assert_eq!(new, [5, 11, 12, 11, 13]);
        // NAME column: 7, 9, 7; the kinds: an alloc, begin 7, three allocs,
        // an op end, begin 9, an alloc, begin 7, three allocs; 70 op ends
        // first so the allocs straddle two kind words.
        let names = [7u32, 9, 7];
        let mut tags = vec![E as u8; 70];
        tags.extend([A, B, A, A, A, E, B, A, B, A, A, A].map(|t| t as u8));
        let mut words = Vec::new();
        kind_words(&tags, &mut words);
        let mut out = Vec::new();
        decode_sites(
            &words,
            &names,
            &places,
            &mut new,
            &mut SitesByName::default(),
            &mut out,
        )
        .unwrap();
        let sites: Vec<u32> = allocs.iter().map(|&(_, s)| s).collect();
        assert_eq!(out, sites);
    }

    /// `new_and_max`, `decode_sites` and `sites_loop` (the portable loop,
    /// set up as `decode_sites` does) of the writer's places for `events`
    /// (`Ok(site)`: an alloc; `Err(Some(name))`: an op begin, `Err(None)`:
    /// an op end), against the sites it coded.
    fn both_loops(events: &[Result<u32, Option<u32>>]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let mut w = SitesByName::default();
        let (mut tags, mut names, mut places, mut new, mut sites) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut name = None;
        for e in events {
            match *e {
                Ok(site) => {
                    tags.push(A as u8);
                    let p = w.encode(SitesByName::slot_of(name), site);
                    places.push(p);
                    if p == SitesByName::NEW {
                        new.push(site as u64);
                    }
                    sites.push(site);
                }
                Err(Some(n)) => {
                    tags.push(B as u8);
                    names.push(n);
                    name = Some(n);
                }
                Err(None) => tags.push(E as u8),
            }
        }
        let mut words = Vec::new();
        kind_words(&tags, &mut words);
        let mut fast = Vec::new();
        let mut cache = SitesByName::default();
        decode_sites(
            &words,
            &names,
            &places,
            &mut new.clone(),
            &mut cache,
            &mut fast,
        )
        .unwrap();
        cache.clear();
        cache.name_slots.clear();
        cache.name_slots.push(SitesByName::slot_offset_of(None));
        cache
            .name_slots
            .extend(names.iter().map(|&n| SitesByName::slot_offset_of(Some(n))));
        new.push(0);
        let mut portable = vec![0; places.len()];
        // SAFETY: the bounds `decode_sites` checked (on the same columns) hold.
        unsafe { sites_loop(&words, &places, &new, &mut cache, &mut portable) };
        (fast, portable, sites)
    }

    proptest::proptest! {
        /// Both loops give the writer's sites: allocs under names whose
        /// slots clash (ids 1024 apart), sites that come back, new ones
        /// (more than the ways), allocs before any name.
        #[test]
        fn both_loops_decode_the_writer_s_sites(
            events in proptest::collection::vec(
                proptest::prop_oneof![
                    6 => (0u32..7).prop_map(Ok),
                    1 => (0u32..3, 0u32..3).prop_map(|(n, k)| Err(Some(n + 1024 * k))),
                    1 => proptest::strategy::Just(Err(None)),
                ],
                0..400,
            ),
        ) {
            let (fast, portable, sites) = both_loops(&events);
            proptest::prop_assert_eq!(&fast, &sites);
            proptest::prop_assert_eq!(&portable, &sites);
        }
    }

    #[test]
    fn malformed_places_are_named() {
        let mut c = SitesByName::default();
        let mut out = Vec::new();
        let mut err = |p: &[u8], mut n: Vec<u64>| {
            let mut words = Vec::new();
            kind_words(&vec![A as u8; p.len()], &mut words);
            decode_sites(&words, &[], p, &mut n, &mut c, &mut out).unwrap_err()
        };
        assert!(err(&[5], vec![]).contains("site place 5 is out of range"));
        assert!(err(&[4, 4], vec![3]).contains("new sites holds 1 values"));
        let mut words = Vec::new();
        kind_words(&[A as u8, A as u8], &mut words);
        assert!(
            decode_sites(&words, &[], &[0], &mut vec![], &mut c, &mut out)
                .unwrap_err()
                .contains("holds 1 allocs, the kind column 2")
        );
    }
}
