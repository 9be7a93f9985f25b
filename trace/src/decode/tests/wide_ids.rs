//! Names and free sites are decoded as 32-bit ids; one past 32 bits is
//! named as undefined, as when they were decoded as 64-bit values.

use super::*;
use ttalloc_model::EventTag;

#[test]
fn names_and_free_sites_past_32_bits_are_named_as_undefined() {
    let big = (1u64 << 32) + 3;
    for (id, what, kinds) in [
        (
            col::NAME,
            "string id",
            [EventTag::OpBegin, EventTag::Marker],
        ),
        (col::FREE_SITE, "site id", [EventTag::BufferFree; 2]),
    ] {
        let mut rec = valid_block();
        let tags = &rec.columns.iter().find(|c| c.id == col::TAG).unwrap().bytes;
        let n = tags
            .iter()
            .filter(|&&t| kinds.iter().any(|&k| t == k as u8))
            .count();
        assert!(n > 0);
        // Every value `big`: five byte planes.
        let mut bytes = vec![5u8];
        for j in 0..5 {
            bytes.extend(std::iter::repeat_n((big >> (8 * j)) as u8, n));
        }
        rec.columns.iter_mut().find(|c| c.id == id).unwrap().bytes = bytes;
        let e = decode(&rec).unwrap_err();
        assert!(e.contains(&format!("{what} {big} is not defined")), "{e}");
    }
}
