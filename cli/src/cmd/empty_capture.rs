//! Why a recording captured nothing (issue 9): `record` says so in one line
//! instead of writing a silent, empty trace, and `--fail-on` fails on it.

use ttalloc_recorder::stats::LiveSnapshot;

/// The environment variable that turns the automatic ttnn capture off.
pub const TTNN_SWITCH: &str = "TTALLOC_TTNN";

/// One line saying why nothing device-related was captured, or `None` when
/// some device event was. `ttnn_switch` is the value of `TTALLOC_TTNN`.
pub fn reason(snap: &LiveSnapshot, ttnn_switch: Option<&str>) -> Option<String> {
    if !snap.devices.is_empty() {
        return None;
    }
    if snap.sources_total == 0 {
        let why = match ttnn_switch {
            Some("0") => format!(
                "{TTNN_SWITCH}=0 is set, which turns the ttnn capture off; unset it to record ttnn programs"
            ),
            _ => "the command never loaded ttnn or the ttalloc client (is it a Python program, run with the environment ttalloc record gives it?)".to_string(),
        };
        return Some(format!("nothing captured: no client connected: {why}"));
    }
    let n = snap.sources_total;
    Some(format!(
        "nothing captured: {n} process{} connected but none opened a device (ttnn imported but no device opened?)",
        if n == 1 { "" } else { "es" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_model::DeviceId;

    #[test]
    fn names_the_reason() {
        let mut snap = LiveSnapshot::default();
        let none = reason(&snap, None).unwrap();
        assert!(none.contains("no client connected"), "{none}");
        assert!(!none.contains("TTALLOC_TTNN"), "{none}");
        let off = reason(&snap, Some("0")).unwrap();
        assert!(
            off.contains("no client connected") && off.contains("TTALLOC_TTNN=0"),
            "{off}"
        );
        // TTALLOC_TTNN=1 is not the switch being off.
        assert!(!reason(&snap, Some("1")).unwrap().contains("TTALLOC_TTNN"));

        snap.sources_total = 2;
        let no_device = reason(&snap, Some("0")).unwrap();
        assert!(
            no_device.contains("2 processes connected but none opened a device"),
            "{no_device}"
        );

        snap.devices.insert(DeviceId(0), Default::default());
        assert_eq!(reason(&snap, None), None);
    }
}
