//! Coded timestamps are kept as 32-bit codes; a block whose gaps need
//! wider ones (a pause of minutes in nanoseconds) keeps plain times: both
//! give every event its time.

use super::*;

/// A block of op scopes whose gaps are small, or small but for one of
/// `pause` ns.
fn block(layout: crate::codec::ColumnLayout, pause: u64) -> (BlockRec, Vec<u64>) {
    let mut enc = BlockEncoder::new(layout);
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut times = Vec::new();
    for i in 0..150u64 {
        ts += 100 + 37 * (i % 11) + if i == 90 { pause } else { 0 };
        let kind = if i % 2 == 0 {
            EventKind::OpBegin { name: StringId(3) }
        } else {
            EventKind::OpEnd
        };
        enc.push(&Event {
            ts,
            pid: Pid(9),
            kind,
        });
        times.push(ts);
    }
    let first_ts = enc.first_ts();
    let rec = BlockRec {
        first_event: 0,
        count: enc.len(),
        first_ts,
        last_ts: ts,
        live: vec![],
        columns: enc.take_columns(),
    };
    (rec, times)
}

#[test]
fn narrow_and_wide_codes_give_every_event_its_time() {
    use crate::codec::ColumnLayout::{V23, V24, V25};
    for layout in [V23, V24, V25] {
        for pause in [0, 1 << 20, 1 << 40, u64::MAX / 4] {
            let (rec, want) = block(layout, pause);
            // The pauses past 32 bits take the plain times.
            let ts_col = rec
                .columns
                .iter()
                .find(|c| c.id == col::TS_KIND || c.id == col::TS_TICKS);
            assert_eq!(ts_col.unwrap().bytes[0] > 4, pause >= 1 << 40, "{layout:?}");
            let cols = decode(&rec).unwrap();
            let mut got = Vec::new();
            cols.for_each_event(|_, e| got.push(e.ts));
            assert_eq!(got, want, "{layout:?}, pause {pause}");
            assert_eq!(cols.timestamps().collect::<Vec<_>>(), want);
            for p in (0..want.len()).rev() {
                assert_eq!(
                    cols.ts_at(p),
                    want[p],
                    "{layout:?}, pause {pause}, event {p}"
                );
            }
        }
    }
}
