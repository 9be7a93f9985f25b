//! The flame graph itself, drawn by inferno from the folded stacks.

use super::{folded, Metric};
use crate::analysis::Analysis;

/// An interactive SVG flame graph of `metric` (a note in place of the graph
/// when there are no bytes to show).
pub fn svg(a: &Analysis, metric: Metric, title: &str) -> std::io::Result<Vec<u8>> {
    let lines = folded::folded(a, metric);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_owned();
    opts.count_name = "bytes".to_owned();
    opts.name_type = "Site:".to_owned();
    opts.deterministic = true;
    opts.colors =
        inferno::flamegraph::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    let mut out = Vec::new();
    if lines.is_empty() {
        out.extend_from_slice(empty_svg(title).as_bytes());
        return Ok(out);
    }
    inferno::flamegraph::from_lines(&mut opts, lines.lines(), &mut out)?;
    Ok(out)
}

fn empty_svg(title: &str) -> String {
    let title = title.replace('&', "&amp;").replace('<', "&lt;");
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"600\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"25\" font-family=\"Verdana\" font-size=\"14\">{title}</text><text x=\"10\" y=\"48\" font-family=\"Verdana\" font-size=\"12\">no bytes to show</text></svg>\n"
    )
}
