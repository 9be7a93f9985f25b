//! The set of buffer ids freed so far (to tell a double free from a free of
//! an id never allocated), in about one bit per id.

use ttalloc_model::hash::FastMap;

/// Ids that were freed once, to tell a double free from an unknown one.
/// Ids come in dense runs (the recorder numbers buffers per connection), so
/// they are kept in 64 Ki-id pages: a short sorted list while sparse, a
/// bitmap once dense — about one bit per freed id on real traces. The last
/// page used is remembered: consecutive ids skip the hash lookup.
#[derive(Default)]
pub struct FreedSet {
    index: FastMap<u64, usize>,
    pages: Vec<Page>,
    /// (page key, index in `pages`) of the last page used.
    last: Option<(u64, usize)>,
}

enum Page {
    Sparse(Vec<u16>),
    Dense(Box<[u64; 1024]>),
}

/// A sparse page turns into a bitmap (8 KiB) past this many ids (1 KiB).
const SPARSE_MAX: usize = 512;

impl FreedSet {
    #[inline]
    fn page_index(&mut self, key: u64, create: bool) -> Option<usize> {
        if let Some((k, i)) = self.last {
            if k == key {
                return Some(i);
            }
        }
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None if create => {
                self.pages.push(Page::Sparse(Vec::new()));
                self.index.insert(key, self.pages.len() - 1);
                self.pages.len() - 1
            }
            None => return None,
        };
        self.last = Some((key, i));
        Some(i)
    }

    pub fn insert(&mut self, id: u64) {
        let low = (id & 0xffff) as u16;
        let i = self.page_index(id >> 16, true).expect("created");
        let page = &mut self.pages[i];
        match page {
            Page::Sparse(v) => {
                if let Err(pos) = v.binary_search(&low) {
                    if v.len() < SPARSE_MAX {
                        v.insert(pos, low);
                    } else {
                        let mut bits = Box::new([0u64; 1024]);
                        for &x in v.iter().chain(std::iter::once(&low)) {
                            bits[x as usize / 64] |= 1 << (x % 64);
                        }
                        *page = Page::Dense(bits);
                    }
                }
            }
            Page::Dense(bits) => bits[low as usize / 64] |= 1 << (low % 64),
        }
    }

    /// Inserts id `first + i` for every bit `i` of `bits` (bit `i % 64` of
    /// word `i / 64`). `first` is a multiple of 64 and the ids share a page.
    pub fn insert_bits(&mut self, first: u64, bits: &[u64]) {
        debug_assert!(
            first.is_multiple_of(64) && (first & 0xffff) + 64 * bits.len() as u64 <= 1 << 16
        );
        let count: usize = bits.iter().map(|b| b.count_ones() as usize).sum();
        if count == 0 {
            return;
        }
        let i = self.page_index(first >> 16, true).expect("created");
        let page = &mut self.pages[i];
        if let Page::Sparse(v) = page {
            if v.len() + count <= SPARSE_MAX {
                for (w, &word) in bits.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        self.insert(first + 64 * w as u64 + word.trailing_zeros() as u64);
                        word &= word - 1;
                    }
                }
                return;
            }
            let mut dense = Box::new([0u64; 1024]);
            for &x in v.iter() {
                dense[x as usize / 64] |= 1 << (x % 64);
            }
            *page = Page::Dense(dense);
        }
        let Page::Dense(dense) = page else {
            unreachable!("made dense above")
        };
        let at = (first & 0xffff) as usize / 64;
        for (d, &word) in dense[at..at + bits.len()].iter_mut().zip(bits) {
            *d |= word;
        }
    }

    pub fn remove(&mut self, id: u64) {
        let low = (id & 0xffff) as u16;
        let Some(i) = self.page_index(id >> 16, false) else {
            return;
        };
        match &mut self.pages[i] {
            Page::Sparse(v) => {
                if let Ok(pos) = v.binary_search(&low) {
                    v.remove(pos);
                }
            }
            Page::Dense(bits) => bits[low as usize / 64] &= !(1 << (low % 64)),
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        let low = (id & 0xffff) as u16;
        match self.index.get(&(id >> 16)).map(|&i| &self.pages[i]) {
            Some(Page::Sparse(v)) => v.binary_search(&low).is_ok(),
            Some(Page::Dense(bits)) => bits[low as usize / 64] & (1 << (low % 64)) != 0,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FreedSet;

    #[test]
    fn sparse_and_dense_pages_agree_with_a_plain_set() {
        let mut f = FreedSet::default();
        let mut reference = std::collections::HashSet::new();
        // Dense run in one page (turns into a bitmap), scattered ids, high namespaces.
        let ids: Vec<u64> = (0..2000u64)
            .chain((0..300).map(|i| i * 7919 + (1 << 40)))
            .chain([u64::MAX, 65535, 65536])
            .collect();
        for &id in &ids {
            f.insert(id);
            reference.insert(id);
        }
        for &id in ids.iter().step_by(3) {
            f.remove(id);
            reference.remove(&id);
        }
        // The same ids again in bulk, 512 at a time: 0..512 (~341 ids: a
        // sparse page), 512..1024 (turns it dense), a sparse one at 2^40.
        let mut bulk = FreedSet::default();
        for chunk in (0..2048u64).step_by(512).chain([1 << 40]) {
            let bits: Vec<u64> = (0..8u64)
                .map(|w| {
                    (0..64u64)
                        .filter(|b| reference.contains(&(chunk + 64 * w + b)))
                        .fold(0, |word, b| word | 1 << b)
                })
                .collect();
            bulk.insert_bits(chunk, &bits);
        }
        for &id in &ids {
            if !(id < 2048 || (1 << 40..(1 << 40) + 512).contains(&id)) && reference.contains(&id) {
                bulk.insert(id);
            }
        }
        for probe in (0..3000u64)
            .chain(ids.iter().copied())
            .chain([1 << 40, 12345 << 20])
        {
            assert_eq!(f.contains(probe), reference.contains(&probe), "id {probe}");
            assert_eq!(
                bulk.contains(probe),
                reference.contains(&probe),
                "bulk {probe}"
            );
        }
    }
}
