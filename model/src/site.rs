//! Interned strings, frames and call stacks (heaptrack/memray style): a frame
//! `{function, file, line}` is stored once, a stack is a node of a prefix tree
//! `(parent, frame)`, and events carry only the stack's `SiteId`.
//!
//! Tables are append-only, so a writer can emit "everything from index N on"
//! incrementally and a reader can rebuild identical ids by appending in order.

use crate::ids::{FrameId, SiteId, StringId};
use std::collections::HashMap;

/// An interned frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub function: StringId,
    pub file: StringId,
    pub line: u32,
}

/// A node of the stack prefix tree: the stack `parent` with `frame` called
/// from it (one level deeper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackNode {
    pub parent: SiteId,
    pub frame: FrameId,
}

/// A frame with its strings resolved, as reports show it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ResolvedFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// Error for a definition that refers to something not (yet) defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DanglingRef {
    pub what: &'static str,
    pub id: u32,
    pub limit: u32,
}

impl std::fmt::Display for DanglingRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} id {} is not defined (only {} known)",
            self.what, self.id, self.limit
        )
    }
}

impl std::error::Error for DanglingRef {}

/// The three intern tables of a trace (or of one client connection).
#[derive(Clone, Debug)]
pub struct InternTables {
    strings: Vec<Box<str>>,
    string_index: HashMap<Box<str>, StringId>,
    frames: Vec<Frame>,
    frame_index: HashMap<Frame, FrameId>,
    /// `stacks[0]` is the root (the empty stack, `SiteId::UNKNOWN`); its node is a placeholder.
    stacks: Vec<StackNode>,
    stack_index: HashMap<StackNode, SiteId>,
}

impl Default for InternTables {
    fn default() -> Self {
        Self::new()
    }
}

impl InternTables {
    pub fn new() -> Self {
        let mut t = InternTables {
            strings: Vec::new(),
            string_index: HashMap::new(),
            frames: Vec::new(),
            frame_index: HashMap::new(),
            stacks: vec![StackNode {
                parent: SiteId::UNKNOWN,
                frame: FrameId(u32::MAX),
            }],
            stack_index: HashMap::new(),
        };
        let empty = t.intern_string("");
        debug_assert_eq!(empty, StringId::EMPTY);
        t
    }

    // ---- interning (dedups) ----

    pub fn intern_string(&mut self, s: &str) -> StringId {
        if let Some(&id) = self.string_index.get(s) {
            return id;
        }
        let id = StringId(self.strings.len() as u32);
        let boxed: Box<str> = s.into();
        self.strings.push(boxed.clone());
        self.string_index.insert(boxed, id);
        id
    }

    /// Interns a frame whose strings are already interned here.
    pub fn intern_frame(&mut self, frame: Frame) -> FrameId {
        if let Some(&id) = self.frame_index.get(&frame) {
            return id;
        }
        let id = FrameId(self.frames.len() as u32);
        self.frames.push(frame);
        self.frame_index.insert(frame, id);
        id
    }

    pub fn intern_frame_str(&mut self, function: &str, file: &str, line: u32) -> FrameId {
        let function = self.intern_string(function);
        let file = self.intern_string(file);
        self.intern_frame(Frame {
            function,
            file,
            line,
        })
    }

    /// Interns the stack one level deeper than `parent`.
    pub fn intern_node(&mut self, node: StackNode) -> SiteId {
        if let Some(&id) = self.stack_index.get(&node) {
            return id;
        }
        let id = SiteId(self.stacks.len() as u32);
        self.stacks.push(node);
        self.stack_index.insert(node, id);
        id
    }

    /// Interns a whole stack given innermost frame first (the allocating
    /// function first, `<module>` last), as tracebacks are read.
    pub fn intern_stack(&mut self, frames_innermost_first: &[FrameId]) -> SiteId {
        let mut site = SiteId::UNKNOWN;
        for &frame in frames_innermost_first.iter().rev() {
            site = self.intern_node(StackNode {
                parent: site,
                frame,
            });
        }
        site
    }

    /// Convenience: interns `(function, file, line)` triples, innermost first.
    pub fn intern_stack_str(&mut self, frames_innermost_first: &[(&str, &str, u32)]) -> SiteId {
        let ids: Vec<FrameId> = frames_innermost_first
            .iter()
            .map(|&(func, file, line)| self.intern_frame_str(func, file, line))
            .collect();
        self.intern_stack(&ids)
    }

    // ---- appending definitions read back from a file (ids are positional) ----

    /// Appends a string as the next id without dedup (a reader rebuilding a
    /// writer's table must keep the writer's ids even if a string repeats).
    pub fn push_string(&mut self, s: &str) -> StringId {
        let id = StringId(self.strings.len() as u32);
        let boxed: Box<str> = s.into();
        self.string_index.entry(boxed.clone()).or_insert(id);
        self.strings.push(boxed);
        id
    }

    pub fn push_frame(&mut self, frame: Frame) -> Result<FrameId, DanglingRef> {
        self.check_string(frame.function)?;
        self.check_string(frame.file)?;
        let id = FrameId(self.frames.len() as u32);
        self.frames.push(frame);
        self.frame_index.entry(frame).or_insert(id);
        Ok(id)
    }

    pub fn push_node(&mut self, node: StackNode) -> Result<SiteId, DanglingRef> {
        self.check_site(node.parent)?;
        if node.frame.index() >= self.frames.len() {
            return Err(DanglingRef {
                what: "frame",
                id: node.frame.0,
                limit: self.frames.len() as u32,
            });
        }
        let id = SiteId(self.stacks.len() as u32);
        self.stacks.push(node);
        self.stack_index.entry(node).or_insert(id);
        Ok(id)
    }

    pub fn check_string(&self, id: StringId) -> Result<(), DanglingRef> {
        if id.index() < self.strings.len() {
            Ok(())
        } else {
            Err(DanglingRef {
                what: "string",
                id: id.0,
                limit: self.strings.len() as u32,
            })
        }
    }

    pub fn check_site(&self, id: SiteId) -> Result<(), DanglingRef> {
        if id.index() < self.stacks.len() {
            Ok(())
        } else {
            Err(DanglingRef {
                what: "site",
                id: id.0,
                limit: self.stacks.len() as u32,
            })
        }
    }

    // ---- lookups ----

    /// The string, or "" for an id that is not defined.
    pub fn string(&self, id: StringId) -> &str {
        self.strings.get(id.index()).map(|s| &**s).unwrap_or("")
    }

    pub fn frame(&self, id: FrameId) -> Option<Frame> {
        self.frames.get(id.index()).copied()
    }

    /// The node of a non-root site.
    pub fn node(&self, id: SiteId) -> Option<StackNode> {
        if id == SiteId::UNKNOWN {
            None
        } else {
            self.stacks.get(id.index()).copied()
        }
    }

    /// The caller's site (one frame shallower); `None` for the root.
    pub fn parent(&self, id: SiteId) -> Option<SiteId> {
        self.node(id).map(|n| n.parent)
    }

    /// The frames of a site, innermost first.
    pub fn frame_ids(&self, mut id: SiteId) -> Vec<FrameId> {
        let mut out = Vec::new();
        // Parents always have smaller ids, so this terminates even on bad input.
        while let Some(node) = self.node(id) {
            out.push(node.frame);
            if node.parent.0 >= id.0 {
                break;
            }
            id = node.parent;
        }
        out
    }

    /// The frames of a site with their strings, innermost first.
    pub fn resolve(&self, id: SiteId) -> Vec<ResolvedFrame> {
        self.frame_ids(id)
            .into_iter()
            .filter_map(|f| self.frame(f))
            .map(|f| ResolvedFrame {
                function: self.string(f.function).to_owned(),
                file: self.string(f.file).to_owned(),
                line: f.line,
            })
            .collect()
    }

    pub fn num_strings(&self) -> usize {
        self.strings.len()
    }
    pub fn num_frames(&self) -> usize {
        self.frames.len()
    }
    /// Number of stack nodes including the root.
    pub fn num_sites(&self) -> usize {
        self.stacks.len()
    }

    /// Strings from id `from` on (for incremental writing).
    pub fn strings_from(&self, from: usize) -> impl Iterator<Item = &str> {
        self.strings[from.min(self.strings.len())..]
            .iter()
            .map(|s| &**s)
    }
    pub fn frames_from(&self, from: usize) -> &[Frame] {
        &self.frames[from.min(self.frames.len())..]
    }
    /// Stack nodes from id `from` on; `from` is at least 1 (the root is implicit).
    pub fn nodes_from(&self, from: usize) -> &[StackNode] {
        &self.stacks[from.clamp(1, self.stacks.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_share_prefixes_and_resolve_innermost_first() {
        let mut t = InternTables::new();
        let a = t.intern_stack_str(&[
            ("alloc", "buf.py", 10),
            ("run", "test.py", 5),
            ("<module>", "test.py", 1),
        ]);
        let b = t.intern_stack_str(&[
            ("free", "buf.py", 20),
            ("run", "test.py", 5),
            ("<module>", "test.py", 1),
        ]);
        let a2 = t.intern_stack_str(&[
            ("alloc", "buf.py", 10),
            ("run", "test.py", 5),
            ("<module>", "test.py", 1),
        ]);
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(t.parent(a), t.parent(b));
        // root + <module> + run + alloc + free
        assert_eq!(t.num_sites(), 5);
        let r = t.resolve(a);
        assert_eq!(r[0].function, "alloc");
        assert_eq!(r[2].function, "<module>");
        assert!(t.resolve(SiteId::UNKNOWN).is_empty());
    }

    #[test]
    fn pushing_rebuilds_identical_ids() {
        let mut w = InternTables::new();
        let s = w.intern_stack_str(&[("f", "a.py", 1), ("g", "b.py", 2)]);
        let mut r = InternTables::new();
        for st in w.strings_from(1) {
            r.push_string(st);
        }
        for f in w.frames_from(0) {
            r.push_frame(*f).unwrap();
        }
        for n in w.nodes_from(1) {
            r.push_node(*n).unwrap();
        }
        assert_eq!(r.resolve(s), w.resolve(s));
        assert!(r
            .push_node(StackNode {
                parent: SiteId(99),
                frame: FrameId(0)
            })
            .is_err());
        assert!(r
            .push_frame(Frame {
                function: StringId(1000),
                file: StringId(0),
                line: 1
            })
            .is_err());
    }
}
