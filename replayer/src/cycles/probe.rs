//! The guess of `auto`'s (or plain `marker`'s) cycle rule from a trace's
//! beginning, which the replay then checks against the whole trace.

use super::{CycleRule, CycleScanner};
use crate::error::Result;
use crate::options::CycleMode;
use crate::source::{EventSource, Item};
use std::ops::ControlFlow;
use ttalloc_model::EventKind;

/// Events the rule is first guessed from.
pub(crate) const PROBE_EVENTS: u64 = 250_000;

/// The probe looks on for a repeated marker shape up to this share of the
/// trace (a third: three cycles of equal length are found, a cycle longer
/// than a third is a trace of at most two): at most a third of a trace
/// decompressed again where none repeats (10M synthetic events marked
/// twice, no repeat: 0.208 -> 0.223 s of replay), against a second replay
/// of the whole trace where one does.
const MARKER_LOOK_SHARE: u64 = 3;

/// The rule `mode` most likely means for the whole of `src`, from its
/// first [`PROBE_EVENTS`] events.
///
/// Where those hold markers but none of a label shape seen twice (and
/// nothing that outranks markers), the probe looks on, up to a third of
/// the trace, until a shape repeats: with cycles longer than the probe
/// (the 10M-event synthetic trace of 20 cycles marks "setup done", then
/// "cycle N" every 500,000 events) the guess was the first marker's shape
/// or an op, and the whole trace was replayed a second time once the check
/// found the repeated shape. The look skips op scopes and every buffer
/// event, so it costs little beside that second replay; where no shape
/// repeats, the guess is the one from the first events.
///
/// A device open at the probe's end with nothing else to cut at is taken
/// to close later (its life is the cycle) if the trace's last block closes
/// a device; else it most likely never closes (the program crashed, the
/// trace is truncated), which means no cycles.
pub(crate) fn guess_rule(src: &dyn EventSource, mode: &CycleMode) -> Result<CycleRule> {
    Ok(guess_rule_within(src, mode, PROBE_EVENTS)?.0)
}

/// [`guess_rule`] from the first `probe_events` events, and how many
/// events were scanned for it.
fn guess_rule_within(
    src: &dyn EventSource,
    mode: &CycleMode,
    probe_events: u64,
) -> Result<(CycleRule, u64)> {
    let interner = src.interner();
    // The probe keeps every top-level op of the prefix (1.5 MB of the
    // synthetic trace's): dropped before the replay, not held through it.
    let mut probe = CycleScanner::new();
    let mut first_guess = None;
    let mut settled = false;
    // The guess takes a device still open at the probe's end to close
    // later (`CycleScanner::guess_from_prefix`).
    let mut taken_to_close = false;
    let mut markers_checked = 0;
    let mut scanned = 0;
    let limit = probe_events.max(src.num_events() / MARKER_LOOK_SHARE);
    // The scanner skips buffer allocs and frees: blocks of nothing else
    // are not decoded for it.
    src.visit_prefix_non_buffer(limit, &mut |chunk| {
        probe.scan_chunk(chunk);
        scanned = chunk.first() + chunk.len() as u64;
        if scanned < probe_events {
            return Ok(ControlFlow::Continue(()));
        }
        if first_guess.is_none() {
            // Scanned whole: the rule itself, not a guess (a device still
            // open at the end is no cycle).
            let whole = scanned >= src.num_events();
            let guess = if whole {
                probe.rule(mode, interner)
            } else {
                probe.guess_from_prefix(mode, interner)
            };
            taken_to_close =
                guess == CycleRule::Device && probe.rule(mode, interner) == CycleRule::None;
            first_guess = Some(guess);
            if whole || !probe.marker_rule_unsettled(mode, interner) {
                return Ok(ControlFlow::Break(()));
            }
            // From here on only markers matter to the guess (two of a
            // shape outrank any op).
            probe.stop_keeping_ops();
            markers_checked = probe.markers_seen();
            return Ok(ControlFlow::Continue(()));
        }
        if probe.markers_seen() == markers_checked {
            return Ok(ControlFlow::Continue(()));
        }
        markers_checked = probe.markers_seen();
        settled = !probe.marker_rule_unsettled(mode, interner);
        Ok(if settled {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    let rule = match first_guess {
        // A trace whose last block closes no device most likely never
        // closed it (a program that crashed, a truncated trace): no
        // cycles. (The guess that it closes later made every such trace
        // replay twice.)
        Some(CycleRule::Device) if !settled && taken_to_close && !last_block_closes(src)? => {
            CycleRule::None
        }
        Some(guess) if !settled => guess,
        // Settled past the first events: the rule of everything scanned.
        Some(_) => probe.guess_from_prefix(mode, interner),
        // The whole trace is shorter than the probe: its rule.
        None => probe.rule(mode, interner),
    };
    Ok((rule, scanned))
}

/// Whether the last chunk of `src`'s events (a trace's last block)
/// closes a device.
fn last_block_closes(src: &dyn EventSource) -> Result<bool> {
    let mut closes = false;
    src.visit_last_non_buffer(&mut |chunk| {
        let _ = chunk.try_for_each_non_buffer_non_op(|_, item| {
            let e = match &item {
                Item::Event(e) => *e,
                Item::Light(e) | Item::Cb(e) => e,
                Item::Alloc(_) | Item::Free(_) => return Ok(()),
            };
            closes |= matches!(e.kind, EventKind::DeviceClose { .. });
            Ok::<(), ()>(())
        });
        Ok(())
    })?;
    Ok(closes)
}

#[cfg(test)]
mod tests;
