//! Looking at a free list without changing it: the block at an address,
//! the lowest allocated address, the largest free block, every block, and
//! the invariant check the property tests run.

use super::{FreeList, Span, NIL};

impl FreeList {
    /// The block (free or allocated) containing `address`: the last block
    /// starting at or before it. Compact: the free block before it or a
    /// scan of the allocated ones; bucketed: found through the bucket bitmap
    /// in O(1) (plus a scan of one bucket) however many buckets back it starts.
    pub fn block_at(&self, address: u64) -> Option<Span> {
        if address < self.base || address >= self.end() {
            return None;
        }
        if self.compact {
            return self.compact_block_at(address);
        }
        let mut i = self.bucketed_first_at_or_before(address)?;
        loop {
            let blk = &self.blocks[i as usize];
            if address < blk.addr + blk.size {
                return Some(Span {
                    address: blk.addr,
                    size: blk.size,
                    allocated: blk.allocated,
                });
            }
            i = blk.next;
            if i == NIL {
                return None;
            }
        }
    }

    /// The size reserved at `address`, if a block is allocated there.
    pub fn allocated_size(&self, address: u64) -> Option<u64> {
        self.find_allocated(address)
            .map(|i| self.blocks[i as usize].size)
    }

    /// The lowest allocated address (tt-metal's `lowest_occupied_address`).
    #[inline]
    pub fn lowest_allocated(&self) -> Option<u64> {
        if self.compact {
            return self.compact_lowest_allocated();
        }
        if self.head == NIL {
            return None;
        }
        let h = &self.blocks[self.head as usize];
        if h.allocated {
            return Some(h.addr);
        }
        // Free neighbours always merge, so the block after a free head is allocated.
        (h.next != NIL).then(|| self.blocks[h.next as usize].addr)
    }

    /// The largest free block as `(address, size)`; the lowest address wins ties.
    pub fn largest_free(&self) -> Option<(u64, u64)> {
        if self.num_free_blocks() == 0 {
            return None;
        }
        if self.compact {
            return self.compact_largest();
        }
        if self.off_grid {
            let mut best: Option<(u64, u64)> = None;
            for s in self.blocks() {
                if !s.allocated && best.is_none_or(|(_, sz)| s.size > sz) {
                    best = Some((s.address, s.size));
                }
            }
            return best;
        }
        let b = &self.blocks[self.bucketed_largest()? as usize];
        Some((b.addr, b.size))
    }

    /// The addresses of every largest free block (tt-metal's
    /// `largest_free_block_addrs`), in address order. A scan: diagnostics only.
    pub fn largest_free_addresses(&self) -> Vec<u64> {
        let Some((_, size)) = self.largest_free() else {
            return Vec::new();
        };
        self.blocks()
            .filter(|b| !b.allocated && b.size == size)
            .map(|b| b.address)
            .collect()
    }

    /// Every block in address order.
    pub fn blocks(&self) -> impl Iterator<Item = Span> + '_ {
        // Compact lists keep no links: their blocks are sorted here.
        let compact = self.compact.then(|| self.compact_spans().into_iter());
        let mut i = if self.compact { NIL } else { self.head };
        let linked = std::iter::from_fn(move || {
            if i == NIL {
                return None;
            }
            let b = &self.blocks[i as usize];
            i = b.next;
            Some(Span {
                address: b.addr,
                size: b.size,
                allocated: b.allocated,
            })
        });
        compact.into_iter().flatten().chain(linked)
    }

    /// Checks every internal invariant (for tests): blocks tile the range,
    /// no two free blocks touch, counters, the allocation index, the bucket
    /// heads and the tree agree with the block list.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.compact {
            return self.check_compact();
        }
        let mut at = self.base;
        let mut prev_free = false;
        let mut free_blocks = 0;
        let mut allocated = 0;
        let mut n_alloc = 0;
        let mut i = self.head;
        let mut prev = NIL;
        while i != NIL {
            let b = &self.blocks[i as usize];
            if b.prev != prev {
                return Err(format!("block at {} has a bad prev link", b.addr));
            }
            if b.addr != at || b.size == 0 {
                return Err(format!("gap or empty block at {} (expected {at})", b.addr));
            }
            if b.allocated {
                allocated += b.size;
                n_alloc += 1;
                prev_free = false;
            } else {
                if prev_free {
                    return Err(format!("two free blocks touch at {}", b.addr));
                }
                free_blocks += 1;
                prev_free = true;
            }
            at = b.addr + b.size;
            prev = i;
            i = b.next;
        }
        if at != self.end() && self.size > 0 {
            return Err(format!("blocks end at {at}, range ends at {}", self.end()));
        }
        if allocated != self.allocated_bytes || n_alloc != self.num_allocated {
            return Err("allocated counters disagree".into());
        }
        if free_blocks != self.free_blocks {
            return Err("free block counter disagrees".into());
        }
        self.check_buckets()
    }
}
