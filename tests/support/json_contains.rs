//! "The actual JSON contains the expected JSON", for tests that compare a
//! command's `--json` output with an `expected.json` written by hand.
//! Included with `#[path = "support/json_contains.rs"] mod json_contains;`.

use serde_json::Value;

/// Checks that `actual` contains `expected`: every key of an object, arrays
/// element by element with the same length, a frame's `file` by suffix (the
/// recorded paths are absolute). Each difference is pushed onto `errors`
/// with its path from the root (`path` names the root, e.g. `""`).
pub fn contains(actual: &Value, expected: &Value, path: &str, errors: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match (a.get(k), ev.as_str()) {
                    (None, _) => errors.push(format!("{p}: missing")),
                    (Some(av), Some(suffix)) if k == "file" => {
                        if !av.as_str().is_some_and(|s| s.ends_with(suffix)) {
                            errors.push(format!("{p}: {av} does not end with '{suffix}'"));
                        }
                    }
                    (Some(av), _) => contains(av, ev, &p, errors),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                errors.push(format!(
                    "{path}: {} elements, expected {}: {actual}",
                    a.len(),
                    e.len()
                ));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                contains(av, ev, &format!("{path}[{i}]"), errors);
            }
        }
        _ if expected != actual => {
            errors.push(format!("{path}: got {actual}, expected {expected}"))
        }
        _ => {}
    }
}
