//! Looking at a free list without changing it: the block at an address,
//! the lowest allocated address, the largest free block, every block, and
//! the invariant check the property tests run.

use super::{FreeList, Span, NIL};

impl FreeList {
    /// The block (free or allocated) containing `address`: the last block
    /// starting at or before it, found through the bucket bitmap in O(1)
    /// (plus a scan of one bucket) however many buckets back it starts.
    pub fn block_at(&self, address: u64) -> Option<Span> {
        if address < self.base || address >= self.end() {
            return None;
        }
        let mut b = self.bucket_of(address);
        // The last bucket at or before `b` holding a block start at or
        // before `address` (in `b` itself the first start may lie above it).
        let mut i = loop {
            b = self.starts.last_at_or_before(b)?;
            let f = self.bucket_first[b];
            if f != NIL && self.blocks[f as usize].addr <= address {
                break f;
            }
            b = b.checked_sub(1)?;
        };
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
    pub fn lowest_allocated(&self) -> Option<u64> {
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
        if self.free_blocks == 0 {
            return None;
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
        let units = self.tree.max();
        let b = self.tree.first(units)?;
        let want = units as u64 * self.alignment;
        let end = self.bucket_end(b);
        let mut i = self.bucket_first[b];
        while i != NIL {
            let blk = &self.blocks[i as usize];
            if blk.addr >= end {
                break;
            }
            if !blk.allocated && blk.size == want {
                return Some((blk.addr, blk.size));
            }
            i = blk.next;
        }
        None
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
        let mut i = self.head;
        std::iter::from_fn(move || {
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
        })
    }

    /// Checks every internal invariant (for tests): blocks tile the range,
    /// no two free blocks touch, counters, the allocation index, the bucket
    /// heads and the tree agree with the block list.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut at = self.base;
        let mut prev_free = false;
        let mut free_blocks = 0;
        let mut allocated = 0;
        let mut n_alloc = 0;
        let mut leaf = vec![0u32; self.bucket_first.len()];
        let mut first = vec![NIL; self.bucket_first.len()];
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
            let bk = self.bucket_of(b.addr);
            if first[bk] == NIL {
                first[bk] = i;
            }
            if b.allocated {
                allocated += b.size;
                n_alloc += 1;
                if self.find_allocated(b.addr) != Some(i) {
                    return Err(format!(
                        "allocated block at {} not found by address",
                        b.addr
                    ));
                }
                prev_free = false;
            } else {
                if prev_free {
                    return Err(format!("two free blocks touch at {}", b.addr));
                }
                free_blocks += 1;
                leaf[bk] = leaf[bk].max(self.units(b.size));
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
        if first != self.bucket_first {
            return Err("bucket heads disagree".into());
        }
        for (b, &f) in first.iter().enumerate() {
            if self.starts.contains(b) != (f != NIL) {
                return Err(format!("bucket bitmap disagrees at bucket {b}"));
            }
        }
        self.tree.check()?;
        for (b, &v) in leaf.iter().enumerate() {
            if self.tree.get(b) != v {
                return Err(format!(
                    "tree leaf {b} is {} but should be {v}",
                    self.tree.get(b)
                ));
            }
        }
        Ok(())
    }
}
