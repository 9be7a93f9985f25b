//! The block table as a list: entries taken from and given back to the
//! spare chain, blocks linked in address order, split by an allocation and
//! merged when freed. Both modes (compact and bucketed) carve and join
//! blocks through these.

use super::*;

impl FreeList {
    #[inline(always)]
    pub(super) fn new_block(&mut self, addr: u64, size: u64, allocated: bool) -> u32 {
        if let Some(e) = self.blocks.get_mut(self.spare as usize) {
            let i = self.spare;
            self.spare = e.next;
            // Field by field: the entry keeps its generation. Whatever
            // allocates it here holds no payload (see `held.rs`).
            e.addr = addr;
            e.size = size;
            e.prev = NIL;
            e.next = NIL;
            e.allocated = allocated;
            e.held = false;
            i
        } else {
            self.blocks.push(Block {
                addr,
                size,
                prev: NIL,
                next: NIL,
                generation: 0,
                allocated,
                held: false,
                payload: Payload::NONE,
            });
            (self.blocks.len() - 1) as u32
        }
    }

    #[inline]
    pub(super) fn link_after(&mut self, p: u32, n: u32) {
        let next = self.blocks[p as usize].next;
        self.blocks[n as usize].prev = p;
        self.blocks[n as usize].next = next;
        if next != NIL {
            self.blocks[next as usize].prev = n;
        }
        self.blocks[p as usize].next = n;
    }

    #[inline]
    pub(super) fn unlink(&mut self, i: u32) {
        let Block { prev, next, .. } = self.blocks[i as usize];
        if prev != NIL {
            self.blocks[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.blocks[next as usize].prev = prev;
        }
        self.release_block(i);
    }

    /// Entry `i` (unlinked, or never linked) is unused now; if it held
    /// an allocation, that allocation's holders go stale.
    #[inline(always)]
    pub(super) fn release_block(&mut self, i: u32) {
        let b = &mut self.blocks[i as usize];
        b.generation = b.generation.wrapping_add(u32::from(b.allocated));
        b.allocated = false;
        b.next = self.spare;
        self.spare = i;
    }

    /// Free block `n` (right after free block `into`) joins `into`.
    #[inline]
    pub(super) fn merge_into(&mut self, into: u32, n: u32) {
        self.blocks[into as usize].size += self.blocks[n as usize].size;
        self.unlink(n);
        self.free_blocks -= 1;
    }

    /// Carves `alloc` bytes at `offset` out of free block `i`: returns the
    /// allocated block and the free remainder above it (`NIL` if none). The
    /// part below `offset`, if any, stays free as block `i`.
    #[inline]
    pub(super) fn split(&mut self, i: u32, alloc: u64, offset: u64) -> (u32, u32) {
        let Block {
            addr: orig_addr,
            size: orig_size,
            ..
        } = self.blocks[i as usize];
        let mut cur = i;
        if offset > 0 {
            self.blocks[i as usize].size = offset;
            let r = self.new_block(orig_addr + offset, orig_size - offset, false);
            self.link_after(i, r);
            self.free_blocks += 1;
            cur = r;
        }
        let Block { addr, size, .. } = self.blocks[cur as usize];
        let mut rest = NIL;
        if size > alloc {
            rest = self.new_block(addr + alloc, size - alloc, false);
            self.link_after(cur, rest);
            self.blocks[cur as usize].size = alloc;
            self.free_blocks += 1;
        }
        let b = &mut self.blocks[cur as usize];
        b.allocated = true;
        // An allocation without a payload, until `hold` gives it one.
        b.held = false;
        self.free_blocks -= 1;
        self.num_allocated += 1;
        self.allocated_bytes += alloc;
        (cur, rest)
    }
}
