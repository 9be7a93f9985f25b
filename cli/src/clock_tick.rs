//! `--clock-tick` of `record` and `serve`: the clock resolution a recording
//! keeps (FORMAT.md §5.1, TS_UNIT). Timestamps are rounded down to it when
//! they are written; events keep their order.
//!
//! The default, 100 ns: the Python client stamps each event with
//! `time.time_ns()` after its call, 1–3 µs after the previous one, and where
//! in that window the stamp falls moves by hundreds of ns with the
//! interpreter; the digits below 100 ns are noise that cost most of a
//! trace's bytes (workload W, 1M events: timestamps 0.99 B/event at 1 ns,
//! 0.74 at 10 ns, 0.35 at 100 ns, 0.14 at 1 µs). `ttalloc cat` prints
//! microseconds and Perfetto draws in microseconds, so 100 ns changes
//! nothing either shows at a glance. `--clock-tick 1ns` keeps every digit.

use ttalloc_trace::MAX_CLOCK_TICK_NS;

pub const DEFAULT: &str = "100ns";

/// Parses `1ns`, `100ns`, `1us` (or `1µs`), `5ms`, `1s`: a whole number
/// and a unit, from 1 ns to 1 s.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{s}' has no unit (ns, us, ms or s), e.g. 100ns"))?;
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        other => {
            return Err(format!(
                "unit '{other}' of '{s}' is not one of ns, us, ms, s"
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' does not start with a whole number, e.g. 100ns"))?;
    match n.checked_mul(scale) {
        Some(ns) if (1..=MAX_CLOCK_TICK_NS).contains(&ns) => Ok(ns),
        _ => Err(format!("'{s}' is outside 1ns..1s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_parse_in_ns() {
        assert_eq!(parse("1ns"), Ok(1));
        assert_eq!(parse(DEFAULT), Ok(100));
        assert_eq!(parse("1us"), Ok(1_000));
        assert_eq!(parse("2µs"), Ok(2_000));
        assert_eq!(parse("5ms"), Ok(5_000_000));
        assert_eq!(parse("1s"), Ok(1_000_000_000));
        assert!(parse("100").unwrap_err().contains("no unit"));
        assert!(parse("us").unwrap_err().contains("whole number"));
        assert!(parse("3h").unwrap_err().contains("not one of"));
        assert!(parse("0ns").unwrap_err().contains("outside"));
        assert!(parse("2s").unwrap_err().contains("outside"));
        assert!(parse("99999999999999999999s")
            .unwrap_err()
            .contains("whole number"));
    }
}
