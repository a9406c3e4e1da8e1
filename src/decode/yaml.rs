//! A YAML document as a tree whose every node knows its line and column.
//!
//! serde-based YAML loaders stop at the first problem and lose positions once a value
//! is deserialized; strict config needs both "all errors at once" and "file:line:col"
//! for each of them, so the config is first loaded into this tree and then decoded by
//! hand (see `decode.rs`).

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Line and column, both 1-based, as editors show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos { line: m.line(), col: m.col() + 1 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar's text; `quoted` scalars are always strings, plain ones may be
    /// numbers, booleans or null.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys keep their own positions so "unknown key" points at the key.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub(crate) pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub(crate) pos: Pos,
}

impl Node {
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, quoted: false } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short name of the node's shape, for "expected X, got Y" messages.
    pub(crate) fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) message: String,
}

/// Levels of mappings and lists a document may have. Config and rules need a
/// handful; the bound keeps every walk of the tree (decoding, dropping it) within
/// a small stack whatever the file holds.
pub(crate) const MAX_DEPTH: usize = 32;

/// Parses one YAML document. An empty document is an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    // Events are pulled one by one rather than through `Parser::load`, which
    // recurses once per level of nesting.
    loop {
        let (event, mark) = parser.next_token().map_err(|e| SyntaxError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        match event {
            Event::StreamEnd | Event::DocumentEnd => break,
            Event::StreamStart | Event::DocumentStart | Event::Nothing => {}
            event => builder.on_event(event, mark),
        }
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
    }
    Ok(builder.root.unwrap_or(Node { kind: NodeKind::Map(Vec::new()), pos: Pos { line: 1, col: 1 } }))
}

/// Open containers while the event stream is read.
enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Key, Node)>, Option<Key>),
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    /// Levels opened past [`MAX_DEPTH`]: counted, never built.
    too_deep: usize,
}

impl TreeBuilder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending_key)) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => match node.kind {
                    NodeKind::Scalar { text, .. } => *pending_key = Some(Key { name: text, pos: node.pos }),
                    _ => self.fail(node.pos, "a mapping key must be a plain string"),
                },
            },
        }
    }

    fn fail(&mut self, pos: Pos, message: &str) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { line: pos.line, col: pos.col, message: message.into() });
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(&mark);
        match ev {
            Event::Scalar(..) if self.too_deep > 0 => {}
            Event::Scalar(text, style, _, _) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_value(Node { kind: NodeKind::Scalar { text, quoted }, pos });
            }
            Event::SequenceStart(..) | Event::MappingStart(..)
                if self.too_deep > 0 || self.stack.len() >= MAX_DEPTH =>
            {
                if self.too_deep == 0 {
                    self.fail(pos, &format!("nested deeper than {MAX_DEPTH} levels"));
                }
                self.too_deep += 1;
            }
            Event::SequenceEnd | Event::MappingEnd if self.too_deep > 0 => self.too_deep -= 1,
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(pos, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Map(pos, Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(pos, items)) => Node { kind: NodeKind::Seq(items), pos },
                    Some(Frame::Map(pos, entries, _)) => {
                        // A block mapping's start event is marked after its first
                        // key; the first key is where a reader sees the mapping begin.
                        let first = entries.first().map_or(pos, |(k, _)| k.pos);
                        let pos = if (first.line, first.col) < (pos.line, pos.col) { first } else { pos };
                        Node { kind: NodeKind::Map(entries), pos }
                    }
                    None => return,
                };
                self.push_value(node);
            }
            Event::Alias(_) => self.fail(pos, "YAML aliases are not supported in this file"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_point_at_keys_and_values() {
        let doc = parse("a: 1\nb:\n  - x\n  - 'y'\n").expect("valid yaml");
        let NodeKind::Map(entries) = &doc.kind else { panic!("root is a map") };
        assert_eq!(entries[0].0.name, "a");
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 4 });
        let NodeKind::Seq(items) = &entries[1].1.kind else { panic!("b is a list") };
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert!(matches!(&items[1].kind, NodeKind::Scalar { quoted: true, .. }));
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed list");
        assert!(err.line >= 1 && err.col >= 1, "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_at_its_position_not_a_crash() {
        let ok = format!("a: {}1{}\n", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        parse(&ok).expect("at the limit");
        let flow = |depth: usize| format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        let err = parse(&flow(MAX_DEPTH)).expect_err("too deep");
        assert_eq!((err.line, err.message.as_str()), (1, "nested deeper than 32 levels"));
        // Past 255 flow levels the YAML scanner stops first, with its own message.
        let err = parse(&flow(100_000)).expect_err("too deep");
        assert_eq!((err.line, err.message.as_str()), (1, "recursion limit exceeded"));
        // Block style: `- - - - …` on one line, 200 KB of it.
        let block = format!("{}x\n", "- ".repeat(100_000));
        let err = parse(&block).expect_err("too deep");
        assert!(err.message.contains("nested deeper than 32 levels"), "{err}");
    }

    #[test]
    fn empty_document_is_an_empty_map() {
        let doc = parse("").expect("empty is fine");
        assert_eq!(doc.kind, NodeKind::Map(Vec::new()));
    }
}
