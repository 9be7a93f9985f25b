//! Format 2.6: a block and its times record each hold only their own
//! columns, and are of the same events; anything else is an error.

use super::*;
use crate::records::{ArchivedTimesRec, TimesRec};

/// `block` decoded with `times` as its times record.
fn decode_apart(block: &BlockRec, times: &TimesRec) -> Result<BlockColumns, DecodeError> {
    let b = rkyv::to_bytes::<BoxedError>(block).unwrap();
    let t = rkyv::to_bytes::<BoxedError>(times).unwrap();
    let block = rkyv::access::<crate::records::ArchivedBlockRec, BoxedError>(&b).unwrap();
    let times = rkyv::access::<ArchivedTimesRec, BoxedError>(&t).unwrap();
    let mut out = BlockColumns::default();
    decode_columns(
        block,
        BlockTimes::Apart(times),
        LIMITS,
        &mut DecodeScratch::default(),
        &mut out,
    )
    .map(|_| out)
}

/// `valid_block` split as a 2.6 writer splits it.
fn split() -> (BlockRec, TimesRec) {
    let mut block = valid_block();
    let (time, rest) = std::mem::take(&mut block.columns)
        .into_iter()
        .partition(|c| col::is_time(c.id));
    block.columns = rest;
    let times = TimesRec {
        first_event: block.first_event,
        count: block.count,
        columns: time,
    };
    (block, times)
}

#[test]
fn a_block_apart_from_its_times_decodes_as_one_block() {
    let (block, times) = split();
    assert!(!times.columns.is_empty());
    assert_eq!(
        decode_apart(&block, &times).unwrap(),
        decode(&valid_block()).unwrap()
    );
}

#[test]
fn a_time_column_in_the_wrong_record_is_an_error() {
    let (mut block, mut times) = split();
    block.columns.push(times.columns[0].clone());
    let err = decode_apart(&block, &times).unwrap_err();
    assert!(err.contains("block holds time column"), "{err}");

    block.columns.pop();
    let other = block
        .columns
        .iter()
        .find(|c| c.id == col::NAME)
        .unwrap()
        .clone();
    times.columns.push(other);
    let err = decode_apart(&block, &times).unwrap_err();
    assert!(
        err.contains("times record holds column 13, not a time column"),
        "{err}"
    );
}

#[test]
fn times_of_other_events_are_an_error() {
    for (first, count) in [(1, 0), (0, 1)] {
        let (block, mut times) = split();
        times.first_event += first;
        times.count += count;
        let err = decode_apart(&block, &times).unwrap_err();
        assert!(err.contains("times record is of events"), "{err}");
    }
}
