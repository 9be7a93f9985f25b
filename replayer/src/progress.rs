//! Progress bars of long passes over a trace (drawn on a terminal only:
//! indicatif draws nothing when stderr is not one).

use crate::options::ReplayOptions;
use crate::source::EventSource;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// Passes over fewer events show no bar (they take well under a second).
pub const PROGRESS_MIN_EVENTS: u64 = 2_000_000;

/// A bar counting `total` events, named `message`.
pub fn events_bar(total: u64, message: String) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {human_pos}/{human_len} events ({rate}, {eta})",
    )
    .map(|s| {
        // indicatif's own `per_sec` prints "44,552,723.9706/s".
        s.progress_chars("=> ").with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}M/s", state.per_sec() / 1e6);
            },
        )
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message);
    bar
}

/// The bar of a replay pass over `src` doing `what`, if `opts` wants one
/// and the pass is long; named by `opts.progress_label`, in
/// `opts.progress_group`.
pub(crate) fn progress(
    src: &dyn EventSource,
    opts: &ReplayOptions,
    what: &str,
) -> Option<ProgressBar> {
    if !opts.progress || src.num_events() < PROGRESS_MIN_EVENTS {
        return None;
    }
    let message = match opts.progress_label {
        Some(label) => format!("{label}: {what}"),
        None => what.to_owned(),
    };
    let bar = events_bar(src.num_events(), message);
    Some(match &opts.progress_group {
        Some(group) => group.add(bar),
        None => bar,
    })
}
