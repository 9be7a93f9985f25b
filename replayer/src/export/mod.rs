//! `ttalloc export`: the analysis in other tools' formats — Chrome
//! trace-event JSON for Perfetto, collapsed stacks and flame-graph SVG.

pub mod folded;
pub mod perfetto;
pub mod svg;

/// What a flame graph weighs call sites by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Metric {
    /// Bytes still allocated at the end of the trace (every leak class).
    #[default]
    Leaked,
    /// Bytes resident at the highest peak of any device and buffer type.
    Peak,
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "leaked" => Ok(Metric::Leaked),
            "peak" => Ok(Metric::Peak),
            _ => Err(format!("unknown metric '{s}' (expected leaked or peak)")),
        }
    }
}
