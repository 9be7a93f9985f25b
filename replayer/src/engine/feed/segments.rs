//! The walk over a block's columns in the common case: no observer, op
//! scopes left out (no cycle rule follows them). The events between two
//! bounds of precomputed spans (a few thousand, often a whole block; with
//! an online rule, the whole block) form a segment that runs with no
//! per-event check of the bounds: only the event at a bound, and events
//! of the kinds the online rule looks at, take the general step.

use super::op_skip::GROUP;
use super::*;

impl Engine<'_> {
    /// [`Engine::walk_columns`] with `SKIP_OPS`, by segments: the same
    /// events, handled in the same order. `bounding`: the kinds the online
    /// rule looks at (bit per kind code). `EXT`: as [`Engine::alloc_at`].
    /// `CHECKED`: whether an alloc, free or circular buffer may lack its
    /// column entry; without `CHECKED`, the caller found that each of these
    /// columns holds an entry for every event of its kind in the block
    /// ([`KindCounts::fit`]).
    pub(super) fn walk_segments<const EXT: bool, const CHECKED: bool>(
        &mut self,
        mut online: Option<&mut OnlineCycles>,
        first: u64,
        c: &BlockColumns,
        bounding: u32,
        op_skip: &OpSkip,
    ) -> crate::Result<()> {
        let block_end = c.tags.len();
        let mut cursor = Cursor::default();
        // Events before this position are handled.
        let mut from = 0usize;
        // Bounds (their positions in the block) at or after this one are
        // not looked for any more: a bound on an op scope that has no
        // name left is stepped over, as the walk over every event does.
        let mut no_more_bounds = false;
        loop {
            let mark = self.next_start.min(self.cur_end);
            // Position of the next bound in this block, if any.
            let bound = match mark.checked_sub(first) {
                Some(p) if p < block_end as u64 && !no_more_bounds => Some(p as usize),
                _ => None,
            };
            let segment_from = from;
            let end = bound.unwrap_or(block_end);
            if from < end {
                self.run_segment::<EXT, CHECKED>(
                    online.as_deref_mut(),
                    first,
                    c,
                    bounding,
                    op_skip,
                    from..end,
                    &mut cursor,
                )?;
                if self.stopped {
                    return Ok(());
                }
                from = end;
            }
            let Some(p) = bound else { return Ok(()) };
            if p >= segment_from && op_skip.is_kept(p) {
                // The event at the bound is kept: the general step.
                from = p + 1;
                let item = match self.segment_item(c, op_skip, p, &mut cursor) {
                    Some(item) => item,
                    None => continue,
                };
                self.step::<false>(online.as_deref_mut(), first + p as u64, &item)?;
            } else if !self.skipped_op_step(
                online.as_deref_mut(),
                first,
                c,
                op_skip,
                first + p as u64,
            )? {
                no_more_bounds = true;
            }
            if self.stopped {
                return Ok(());
            }
        }
    }

    /// The kept events at positions `range` of a block (taken from the
    /// masks of `op_skip`), none at a span bound, each straight to its
    /// handler but those of the kinds the online rule looks at
    /// (`bounding`), which take the general step.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run_segment<const EXT: bool, const CHECKED: bool>(
        &mut self,
        mut online: Option<&mut OnlineCycles>,
        first: u64,
        c: &BlockColumns,
        bounding: u32,
        op_skip: &OpSkip,
        range: std::ops::Range<usize>,
        k: &mut Cursor,
    ) -> crate::Result<()> {
        let looks_at = |tag: u8| bounding & (1 << tag) != 0;
        let (first_group, last_group) = (range.start / GROUP, (range.end - 1) / GROUP);
        for group in first_group..=last_group {
            let mut kept = op_skip.kept_mask(group);
            if group == first_group {
                kept &= u64::MAX << (range.start % GROUP);
            }
            if group == last_group {
                kept &= u64::MAX >> (GROUP - 1 - (range.end - 1) % GROUP);
            }
            let base = group * GROUP;
            // The group's tags as an array, so that a kept event's tag is
            // read without a bounds check (a block's last, partial group is
            // copied into one: its masks have no bit past the block's end).
            let mut partial = [0u8; GROUP];
            let tags: &[u8; GROUP] = match c.tags.get(base..base + GROUP) {
                Some(whole) => whole.try_into().expect("a group of tags"),
                None => {
                    let rest = c.tags.get(base..).unwrap_or_default();
                    partial[..rest.len()].copy_from_slice(rest);
                    &partial
                }
            };
            while kept != 0 {
                let bit = kept.trailing_zeros() as usize % GROUP;
                kept &= kept - 1;
                let pos = base + bit;
                let ord = first + pos as u64;
                let tag = tags[bit];
                match tag {
                    ALLOC => {
                        if CHECKED && k.allocs >= c.allocs.len() {
                            continue;
                        }
                        if !CHECKED {
                            // SAFETY: without `CHECKED`, the block has no
                            // more allocs than `c.allocs` holds
                            // (`KindCounts::fit`), and `k.allocs` counts the
                            // allocs before this one (each is handled once,
                            // in order, here or by `segment_item`, from a
                            // cursor at 0 at the block's start): below that.
                            unsafe { std::hint::assert_unchecked(k.allocs < c.allocs.len()) };
                        }
                        let i = k.allocs;
                        k.allocs += 1;
                        if self.alloc_at::<EXT>(ord, &c.allocs, i)? {
                            return Ok(());
                        }
                    }
                    FREE => {
                        if !CHECKED {
                            // SAFETY: as for allocs, with frees.
                            unsafe { std::hint::assert_unchecked(k.frees < c.frees.len()) };
                        }
                        let Some(x) = c.frees.at(k.frees) else {
                            continue;
                        };
                        k.frees += 1;
                        self.free(ord, x.device(), x.buffer(), || x.site())?;
                    }
                    CB_ALLOC | CB_FREE_ALL if !looks_at(tag) => {
                        if !CHECKED {
                            // SAFETY: as for allocs, with circular-buffer
                            // events (both kinds count).
                            unsafe { std::hint::assert_unchecked(k.cbs < c.cbs.len()) };
                        }
                        let Some(cb) = c.cbs.get(k.cbs) else {
                            continue;
                        };
                        k.cbs += 1;
                        self.cb_col(ord, &cb)?;
                    }
                    _ => {
                        // Markers (op scopes are not kept), the other kinds,
                        // and kinds the online rule looks at: rare.
                        let Some(item) = self.segment_item(c, op_skip, pos, k) else {
                            continue;
                        };
                        match item {
                            Item::Event(e) if !looks_at(tag) => self.event(ord, e)?,
                            item => self.step::<false>(online.as_deref_mut(), ord, &item)?,
                        }
                        if self.stopped {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The kept event at `pos` as an item, its payload taken from the
    /// columns (`None` if they hold no payload for it: the walk over every
    /// event skips it too).
    fn segment_item<'c>(
        &self,
        c: &'c BlockColumns,
        op_skip: &OpSkip,
        pos: usize,
        k: &mut Cursor,
    ) -> Option<Item<'c>> {
        let tag = *c.tags.get(pos)?;
        Some(match tag {
            ALLOC => {
                let a = c.allocs.get(k.allocs)?;
                k.allocs += 1;
                Item::Alloc(a)
            }
            FREE => {
                let x = c.frees.get(k.frees)?;
                k.frees += 1;
                Item::Free(x)
            }
            OP_BEGIN | OP_END | MARKER => {
                let name = match tag {
                    OP_END => StringId::EMPTY,
                    _ => *c.names.get(op_skip.name_index(pos))?,
                };
                scope_item(c, pos, tag, name)
            }
            CB_ALLOC | CB_FREE_ALL => {
                let cb = c.cbs.get(k.cbs)?;
                k.cbs += 1;
                cb_item(c, pos, &cb)
            }
            t if t as usize >= EventTag::ALL.len() => return None,
            _ => {
                let (_, e) = c.others.get(k.others)?;
                k.others += 1;
                Item::Event(e)
            }
        })
    }
}

/// How many allocs, frees, circular buffers and other events of a block
/// were handled so far (the next one of each kind is at that index).
#[derive(Default)]
struct Cursor {
    allocs: usize,
    frees: usize,
    cbs: usize,
    others: usize,
}
