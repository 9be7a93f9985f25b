//! A decoder's output and scratch are reused block after block: what a
//! block decodes to must not depend on the blocks decoded before it into
//! the same arrays (page sizes shared by every alloc keep the previous
//! block's copies, `AllocColumns::page_fill`).

use super::*;
use crate::codec::ColumnLayout;

/// A 2.5 block of `sizes.len()` allocs (device 0, ids from `first_id`),
/// each of `pages[i]`'s page size (or none) and `sizes[i]` pages of it
/// (`sizes[i]` bytes when it has none or page size 0).
fn allocs_block(first_id: u64, pages: &[Option<u64>], sizes: &[u64]) -> BlockRec {
    let mut enc = BlockEncoder::new(ColumnLayout::V25);
    for (i, (&page, &units)) in pages.iter().zip(sizes).enumerate() {
        let p = page.unwrap_or(0).max(1);
        enc.push(&Event {
            ts: 1000 + i as u64,
            pid: Pid(1),
            kind: EventKind::BufferAlloc {
                device: DeviceId(0),
                buffer: BufferId(first_id + i as u64),
                buffer_type: BufferType::Dram,
                address: Some(0x10_0000 + i as u64 * 0x1000),
                size: units * p,
                page_size: page,
                layout: Layout::Interleaved,
                num_cores: None,
                per_bank_size: None,
                label: StringId::EMPTY,
                site: SiteId(3),
            },
        });
    }
    let count = enc.len();
    BlockRec {
        first_event: first_id,
        count,
        first_ts: 0,
        last_ts: 0,
        live: vec![],
        columns: enc.take_columns(),
    }
}

/// How one block of the sequence gives its allocs page sizes.
#[derive(Clone, Copy, Debug)]
enum PageSizes {
    /// The one page size every alloc shares.
    One(u64),
    /// Two sizes, alternating.
    Two(u64, u64),
    /// Every other alloc without one.
    SomeNone(u64),
    /// The one page size, made 2^62 (after encoding): sizes overflow.
    Overflowing(u64),
}

fn page_sizes() -> impl Strategy<Value = PageSizes> {
    let p = prop_oneof![Just(0u64), Just(1024u64), Just(2048), Just(4096)];
    prop_oneof![
        4 => p.clone().prop_map(PageSizes::One),
        1 => (p.clone(), p.clone()).prop_map(|(a, b)| PageSizes::Two(a, b)),
        1 => p.clone().prop_map(PageSizes::SomeNone),
        1 => p.prop_map(PageSizes::Overflowing),
    ]
}

proptest! {
    /// A sequence of blocks decoded into one output and scratch gives,
    /// block by block, what each decodes to into fresh ones (results and
    /// errors alike).
    #[test]
    fn a_block_decodes_alike_into_a_reused_output(
        blocks in proptest::collection::vec((page_sizes(), 0usize..300), 1..8),
    ) {
        let mut out = BlockColumns::default();
        let mut s = DecodeScratch::default();
        let mut first_id = 1u64;
        for (how, n) in blocks {
            let pages: Vec<Option<u64>> = (0..n)
                .map(|i| match how {
                    PageSizes::One(p) | PageSizes::Overflowing(p) => Some(p),
                    PageSizes::Two(a, b) => Some(if i % 2 == 0 { a } else { b }),
                    PageSizes::SomeNone(p) => (i % 2 == 0).then_some(p),
                })
                .collect();
            // At least 4 pages each: 2^62-byte pages overflow.
            let sizes: Vec<u64> = (0..n as u64).map(|i| 4 + i % 5).collect();
            let mut rec = allocs_block(first_id, &pages, &sizes);
            first_id += n as u64;
            let page = rec.columns.iter_mut().find(|c| c.id == col::PAGE);
            if let (PageSizes::Overflowing(_), Some(page)) = (how, page) {
                page.bytes.clear();
                crate::codec::pack_near_constant(&vec![1 << 62; n], &mut page.bytes);
            }
            // (The allocs: other arrays, such as the times' kind bases, are
            // kept from block to block where they do not count.)
            let fresh = decode(&rec).map(|b| b.allocs);
            let bytes = rkyv::to_bytes::<BoxedError>(&rec).unwrap();
            let archived =
                rkyv::access::<crate::records::ArchivedBlockRec, BoxedError>(&bytes).unwrap();
            let reused =
                decode_columns(archived, BlockTimes::InBlock, LIMITS, &mut s, &mut out).map(|_| out.allocs.clone());
            prop_assert_eq!(&reused, &fresh);
            if let Ok(allocs) = &fresh {
                let got: Vec<Option<u64>> = allocs.iter().map(|a| a.page_size).collect();
                prop_assert_eq!(got, pages);
            }
        }
    }
}
