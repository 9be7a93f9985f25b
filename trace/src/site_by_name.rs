//! Format 2.4's alloc-site coding (FORMAT.md §5.1, SITE_BY_NAME and
//! SITE_NEW): which call site allocates next depends mostly on the op that
//! runs (an op allocates from its own two or three sites), so each alloc's
//! site is coded as its place in a small move-to-front cache kept per op
//! name: the string id of the last OpBegin or Marker before the alloc in the
//! block. A site not in that cache is stored whole.
//!
//! Measured on the 1M-event synthetic trace: ALLOC_SITE 0.178 B/event,
//! these columns 0.069.

/// Per name slot (string id + 1 modulo `SLOTS`, 0 before the block's first
/// name; a clash only costs compression), the `WAYS` most recently used
/// distinct sites, most recent first; every entry is 0 at block start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SitesByName {
    slots: Box<[[u32; SitesByName::WAYS]]>,
}

impl Default for SitesByName {
    fn default() -> Self {
        SitesByName {
            slots: vec![[0; Self::WAYS]; Self::SLOTS].into_boxed_slice(),
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

    /// The reader's side: the site at `place` (< `WAYS`) of the slot's
    /// cache, which moves to the front.
    #[inline(always)]
    pub(crate) fn recent(&mut self, slot: usize, place: usize) -> u32 {
        let ways = &mut self.slots[slot];
        let site = ways[place];
        move_to_front(ways, place);
        site
    }

    /// The reader's side of `NEW`: `site` goes to the front.
    #[inline(always)]
    pub(crate) fn new_site(&mut self, slot: usize, site: u32) {
        let ways = &mut self.slots[slot];
        move_to_front(ways, Self::WAYS - 1);
        ways[0] = site;
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
    /// How many names precede each alloc of the block.
    pub(crate) name_before: Vec<u32>,
    /// SITE_NEW's values.
    pub(crate) new: Vec<u64>,
    pub(crate) cache: SitesByName,
}

/// Decodes the alloc sites of a 2.4 block into `out` (as u64 site ids):
/// `name_before[i]` is how many NAME entries (OpBegin, Marker) precede
/// alloc `i`, `names` the NAME column's values, `places` SITE_BY_NAME and
/// `new` SITE_NEW's values. Ids are checked by the caller.
pub(crate) fn decode_sites(
    name_before: &[u32],
    names: &[u64],
    places: &[u8],
    new: &[u64],
    cache: &mut SitesByName,
    out: &mut Vec<u64>,
) -> Result<(), String> {
    if places.len() != name_before.len() {
        return Err(format!(
            "column site places holds {} allocs, the kind column {}",
            places.len(),
            name_before.len()
        ));
    }
    let mut n_new = 0usize;
    let mut max_place = 0u8;
    for &p in places {
        n_new += (p == SitesByName::NEW) as usize;
        max_place = max_place.max(p);
    }
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
    cache.clear();
    out.clear();
    out.reserve(places.len());
    let mut new_sites = new.iter();
    for (&p, &k) in places.iter().zip(name_before) {
        // `k` counts NAME entries before the alloc: at most `names.len()`
        // (the caller built it from the same kind column).
        let name = (k as usize).checked_sub(1).map(|i| names[i] as u32);
        let slot = SitesByName::slot_of(name);
        let site = if p == SitesByName::NEW {
            // As many NEW places as new sites: counted above.
            let s = *new_sites.next().expect("one new site per NEW place") as u32;
            cache.new_site(slot, s);
            s
        } else {
            cache.recent(slot, p as usize)
        };
        out.push(site as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // NAME column: 7, 9, 7; allocs after 0, 1, 1, 1, 2, 3, 3, 3 names.
        let names = [7u64, 9, 7];
        let before = [0u32, 1, 1, 1, 2, 3, 3, 3];
        let mut out = Vec::new();
        decode_sites(
            &before,
            &names,
            &places,
            &new,
            &mut SitesByName::default(),
            &mut out,
        )
        .unwrap();
        let sites: Vec<u64> = allocs.iter().map(|&(_, s)| s as u64).collect();
        assert_eq!(out, sites);
    }

    #[test]
    fn malformed_places_are_named() {
        let mut c = SitesByName::default();
        let mut out = Vec::new();
        let err = |p: &[u8], n: &[u64], c: &mut SitesByName, out: &mut Vec<u64>| {
            decode_sites(&vec![0; p.len()], &[], p, n, c, out).unwrap_err()
        };
        assert!(err(&[5], &[], &mut c, &mut out).contains("site place 5 is out of range"));
        assert!(err(&[4, 4], &[3], &mut c, &mut out).contains("new sites holds 1 values"));
        assert!(decode_sites(&[0, 0], &[], &[0], &[], &mut c, &mut out)
            .unwrap_err()
            .contains("holds 1 allocs, the kind column 2"));
    }
}
