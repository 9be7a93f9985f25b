//! Incremental intern-table records: the writer emits the entries added since
//! its last intern record; the reader appends them, keeping the writer's ids.

use crate::records::{ArchivedInternRec, FrameRec, InternRec, NodeRec};
use ttalloc_model::{Frame, FrameId, InternTables, SiteId, StackNode, StringId};

/// How many entries of each table have already been written.
#[derive(Clone, Copy, Debug)]
pub struct InternCursor {
    strings: usize,
    frames: usize,
    nodes: usize,
}

impl Default for InternCursor {
    fn default() -> Self {
        // String 0 ("") and stack node 0 (the root) exist in every table.
        InternCursor {
            strings: 1,
            frames: 0,
            nodes: 1,
        }
    }
}

impl InternCursor {
    /// The entries added since the last call, or `None` if there are none.
    pub fn delta(&mut self, t: &InternTables) -> Option<InternRec> {
        if t.num_strings() == self.strings
            && t.num_frames() == self.frames
            && t.num_sites() == self.nodes
        {
            return None;
        }
        let rec = InternRec {
            first_string: self.strings as u32,
            strings: t.strings_from(self.strings).map(str::to_owned).collect(),
            first_frame: self.frames as u32,
            frames: t
                .frames_from(self.frames)
                .iter()
                .map(|f| FrameRec {
                    function: f.function.0,
                    file: f.file.0,
                    line: f.line,
                })
                .collect(),
            first_node: self.nodes as u32,
            nodes: t
                .nodes_from(self.nodes)
                .iter()
                .map(|n| NodeRec {
                    parent: n.parent.0,
                    frame: n.frame.0,
                })
                .collect(),
        };
        *self = InternCursor {
            strings: t.num_strings(),
            frames: t.num_frames(),
            nodes: t.num_sites(),
        };
        Some(rec)
    }
}

/// Appends an archived intern record to `t`; every id it refers to must
/// already be defined (so a damaged record cannot create dangling sites).
pub fn apply(rec: &ArchivedInternRec, t: &mut InternTables) -> Result<(), String> {
    let expect = |what: &str, first: u32, have: usize| {
        if first as usize == have {
            Ok(())
        } else {
            Err(format!(
                "intern record starts its {what} at id {first} but {have} are defined"
            ))
        }
    };
    expect("strings", rec.first_string.to_native(), t.num_strings())?;
    expect("frames", rec.first_frame.to_native(), t.num_frames())?;
    expect("stack nodes", rec.first_node.to_native(), t.num_sites())?;
    for s in rec.strings.iter() {
        t.push_string(s.as_str());
    }
    for f in rec.frames.iter() {
        let frame = Frame {
            function: StringId(f.function.to_native()),
            file: StringId(f.file.to_native()),
            line: f.line.to_native(),
        };
        t.push_frame(frame)
            .map_err(|e| format!("intern record: {e}"))?;
    }
    for n in rec.nodes.iter() {
        let node = StackNode {
            parent: SiteId(n.parent.to_native()),
            frame: FrameId(n.frame.to_native()),
        };
        t.push_node(node)
            .map_err(|e| format!("intern record: {e}"))?;
    }
    Ok(())
}
