//! YAML parsed into a small tree that remembers where every node and every map key came from.
//!
//! Why saphyr-parser's event parser: validation must point at the line and column of *every*
//! problem in a file, not only the first. serde_yaml is archived upstream; its maintained forks
//! (serde_yaml_ng, serde_norway) report a location only for the first error a deserializer hits.
//! saphyr-parser (the maintained successor of yaml-rust2's parser) is pure Rust and hands out a
//! span (line and column) with every parser event, which is exactly what this tree needs. The tree is then turned into `serde_json::Value`
//! and deserialized into the model, and any error's path is looked up here to find its location.
//!
//! Limits keep hostile input cheap: nesting deeper than [`MAX_DEPTH`] and alias expansion beyond
//! [`MAX_NODES`] nodes (more for a long file, in proportion to its length) are errors, not stack overflows or memory blow-ups.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

/// How deeply collections may nest.
pub const MAX_DEPTH: usize = 64;
/// How many nodes a file may expand to, aliases included, at the least; a longer file may hold
/// one node for every [`BYTES_PER_NODE`] bytes of its text.
pub const MAX_NODES: usize = 200_000;
/// Over [`MAX_NODES`], the bytes of text each further node needs: a deployment file written out
/// in full takes about ten bytes a node, so only aliases or dense flow lists (`[x,x,...]`, two
/// bytes a node) come near this bound.
pub const BYTES_PER_NODE: usize = 4;

/// A place in the source: 1-based line and column (in characters), and how many characters the
/// thing there spans on that line (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
    /// Width in characters on that line, at least 1.
    pub len: usize,
}

impl Span {
    fn at(mark: Marker, len: usize) -> Span {
        Span {
            line: mark.line(),
            col: mark.col() + 1,
            len: len.max(1),
        }
    }
}

/// One node of the located tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: NodeValue,
    /// Where it starts.
    pub span: Span,
}

/// A map key and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key as text (a non-text key is rendered as its YAML source).
    pub text: String,
    /// Where the key is.
    pub span: Span,
    /// Whether the key was a collection (such as the `{context.x}` of an unquoted `{{context.x}}`).
    pub complex: bool,
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `~`, `null` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number that fits JSON.
    Number(Number),
    /// Text.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in file order.
    Map(Vec<(Key, Node)>),
}

/// One segment of a path into the tree, as serde and validation name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A map key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl Node {
    /// The node at `path`, if there is one.
    pub fn get(&self, path: &[PathSegment]) -> Option<&Node> {
        let mut node = self;
        for segment in path {
            node = match (segment, &node.value) {
                (PathSegment::Key(k), NodeValue::Map(entries)) => {
                    &entries.iter().find(|(key, _)| &key.text == k)?.1
                }
                (PathSegment::Index(i), NodeValue::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The key of the map entry at `path` (whose last segment must be a key), if there is one.
    pub fn key_at(&self, path: &[PathSegment]) -> Option<&Key> {
        let (last, parent) = path.split_last()?;
        let PathSegment::Key(wanted) = last else {
            return None;
        };
        match &self.get(parent)?.value {
            NodeValue::Map(entries) => entries
                .iter()
                .map(|(key, _)| key)
                .find(|key| &key.text == wanted),
            _ => None,
        }
    }

    /// The entries of a map node, or nothing.
    pub fn entries(&self) -> &[(Key, Node)] {
        match &self.value {
            NodeValue::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items of a sequence node, or nothing.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            NodeValue::Seq(items) => items,
            _ => &[],
        }
    }

    /// The value of a map entry.
    pub fn field(&self, name: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|(key, _)| key.text == name)
            .map(|(_, node)| node)
    }

    /// The text of a string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The same data as JSON.
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Number(n) => Value::Number(n.clone()),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                let mut map = Map::new();
                for (key, node) in entries {
                    map.insert(key.text.clone(), node.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// Why YAML could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What the parser said, in words.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// Parses one YAML document into a located tree. An empty document is a `Null` node. A key
/// repeated within one map is an error here; [`parse_lenient`] reports it and goes on.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let (tree, mut duplicates) = parse_lenient(text)?;
    match duplicates.is_empty() {
        true => Ok(tree),
        false => Err(duplicates.remove(0)),
    }
}

/// Parses like [`parse`], but a key repeated within one map keeps its first value and is
/// returned as a problem beside the tree, so the rest of the file can still be checked.
pub fn parse_lenient(text: &str) -> Result<(Node, Vec<YamlError>), YamlError> {
    let mut builder = TreeBuilder {
        max_nodes: MAX_NODES.max(text.len() / BYTES_PER_NODE),
        ..TreeBuilder::default()
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|err| YamlError {
            message: err.info().to_owned(),
            span: Span::at(*err.marker(), 1),
        })?;
        match builder.push(event, span.start)? {
            Flow::Continue => {}
            Flow::Done => break,
        }
    }
    let root = builder.root.unwrap_or(Node {
        value: NodeValue::Null,
        span: Span {
            line: 1,
            col: 1,
            len: 1,
        },
    });
    Ok((root, builder.duplicates))
}

enum Flow {
    Continue,
    Done,
}

/// A collection being built.
enum Open {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        /// Where each key of `entries` is, by its text, to find repeats at once.
        key_spans: HashMap<String, Span>,
        pending_key: Option<Key>,
        /// The pending key repeats an earlier one: its value is dropped.
        pending_is_duplicate: bool,
    },
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
    max_nodes: usize,
    documents: usize,
    duplicates: Vec<YamlError>,
}

impl TreeBuilder {
    fn push(&mut self, event: Event, mark: Marker) -> Result<Flow, YamlError> {
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(Flow::Done),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(YamlError {
                        message: "a deployment file holds one YAML document; found a second `---`"
                            .to_owned(),
                        span: Span::at(mark, 3),
                    });
                }
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(YamlError {
                        message: "this alias refers to no anchor".to_owned(),
                        span: Span::at(mark, 1),
                    });
                };
                self.count(count_nodes(&node), mark)?;
                let node = Node {
                    value: node.value,
                    span: Span::at(mark, 1),
                };
                self.add(node)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, mark)?;
                let len = scalar_width(&text, style);
                let empty = text.is_empty() && style == ScalarStyle::Plain;
                let value = resolve_scalar(text.into_owned(), style, tag.as_deref());
                // An empty value is marked at the token after it (often the next line): point
                // at what owns it instead, the map key or the list.
                let span = match (empty, self.stack.last()) {
                    (
                        true,
                        Some(Open::Map {
                            pending_key: Some(key),
                            ..
                        }),
                    ) => key.span,
                    (true, Some(Open::Seq { span, .. })) => *span,
                    _ => Span::at(mark, len),
                };
                let node = Node { value, span };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(mark)?;
                self.stack.push(Open::Seq {
                    span: Span::at(mark, 1),
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open(mark)?;
                self.stack.push(Open::Map {
                    span: Span::at(mark, 1),
                    anchor,
                    entries: Vec::new(),
                    key_spans: HashMap::new(),
                    pending_key: None,
                    pending_is_duplicate: false,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq {
                        span,
                        anchor,
                        items,
                    }) => (
                        Node {
                            value: NodeValue::Seq(items),
                            span,
                        },
                        anchor,
                    ),
                    Some(Open::Map {
                        span,
                        anchor,
                        entries,
                        ..
                    }) => {
                        // A block map's start event is marked at or after its first key; the
                        // first key is where a reader sees the map begin.
                        let span = match entries.first() {
                            Some((key, _))
                                if (key.span.line, key.span.col) <= (span.line, span.col) =>
                            {
                                key.span
                            }
                            _ => span,
                        };
                        (
                            Node {
                                value: NodeValue::Map(entries),
                                span,
                            },
                            anchor,
                        )
                    }
                    None => {
                        return Err(YamlError {
                            message: "unbalanced end of a collection".to_owned(),
                            span: Span::at(mark, 1),
                        });
                    }
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node)?;
            }
        }
        Ok(Flow::Continue)
    }

    fn open(&mut self, mark: Marker) -> Result<(), YamlError> {
        self.count(1, mark)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError {
                message: format!("collections nest more than {MAX_DEPTH} levels deep"),
                span: Span::at(mark, 1),
            });
        }
        Ok(())
    }

    fn count(&mut self, nodes: usize, mark: Marker) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > self.max_nodes {
            return Err(YamlError {
                message: format!(
                    "the file expands to more than {} values (aliases included)",
                    self.max_nodes
                ),
                span: Span::at(mark, 1),
            });
        }
        Ok(())
    }

    /// Adds a finished node to the collection being built, or makes it the root.
    fn add(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries,
                key_spans,
                pending_key,
                pending_is_duplicate,
                ..
            }) => match pending_key.take() {
                None => {
                    let key = key_of(&node);
                    *pending_is_duplicate = false;
                    if let Some(first) = key_spans.get(&key.text) {
                        self.duplicates.push(YamlError {
                            message: format!(
                                "the key `{}` appears twice in this map (first on line {})",
                                key.text, first.line
                            ),
                            span: key.span,
                        });
                        *pending_is_duplicate = true;
                    } else {
                        key_spans.insert(key.text.clone(), key.span);
                    }
                    *pending_key = Some(key);
                }
                Some(_) if *pending_is_duplicate => {}
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        NodeValue::Seq(items) => items.iter().map(count_nodes).sum(),
        NodeValue::Map(entries) => entries.iter().map(|(_, n)| 1 + count_nodes(n)).sum(),
        _ => 0,
    }
}

/// A map key as text; collections become their compact JSON so they can be reported.
fn key_of(node: &Node) -> Key {
    let (text, complex) = match &node.value {
        NodeValue::String(s) => (s.clone(), false),
        NodeValue::Null => ("null".to_owned(), false),
        NodeValue::Bool(b) => (b.to_string(), false),
        NodeValue::Number(n) => (n.to_string(), false),
        NodeValue::Seq(_) | NodeValue::Map(_) => (node.to_json().to_string(), true),
    };
    Key {
        text,
        span: node.span,
        complex,
    }
}

/// How wide a scalar is on its first line, quotes included.
fn scalar_width(text: &str, style: ScalarStyle) -> usize {
    let first_line = text.lines().next().unwrap_or("").chars().count();
    match style {
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => first_line + 2,
        ScalarStyle::Literal | ScalarStyle::Folded => 1,
        ScalarStyle::Plain => first_line,
    }
}

/// YAML 1.2 core schema: plain scalars may be null, booleans or numbers; quoted ones are text.
fn resolve_scalar(text: String, style: ScalarStyle, tag: Option<&Tag>) -> NodeValue {
    if let Some(tag) = tag
        && tag.handle == "tag:yaml.org,2002:"
        && tag.suffix == "str"
    {
        return NodeValue::String(text);
    }
    if style != ScalarStyle::Plain {
        return NodeValue::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_integer(&text) {
        return NodeValue::Number(n);
    }
    if text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return NodeValue::Number(n);
    }
    NodeValue::String(text)
}

fn parse_integer(text: &str) -> Option<Number> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (oct, 8)
    } else if let Some(positive) = text.strip_prefix('+') {
        // One sign only: `+-5` and `++5` are text.
        if positive.starts_with(['+', '-']) {
            return None;
        }
        (positive, 10)
    } else {
        (text, 10)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) && radix != 10 {
        return None;
    }
    if let Ok(n) = i64::from_str_radix(digits, radix) {
        return Some(Number::from(n));
    }
    if radix == 10 && !digits.starts_with('-') {
        return u64::from_str_radix(digits, radix).ok().map(Number::from);
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(s: &str) -> PathSegment {
        PathSegment::Key(s.to_owned())
    }

    #[test]
    fn an_integer_has_one_sign_at_most() {
        let tree = parse("a: +5\nb: -5\nc: +-5\nd: ++5\ne: -+5\n").unwrap();
        let value = |k: &str| tree.get(&[key(k)]).unwrap().value.clone();
        assert_eq!(value("a"), NodeValue::Number(5.into()));
        assert_eq!(value("b"), NodeValue::Number((-5).into()));
        for text in ["c", "d", "e"] {
            assert!(
                matches!(value(text), NodeValue::String(_)),
                "{text}: {:?}",
                value(text)
            );
        }
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let tree = parse("a:\n  b: [1, two]\n  c: 'x'\n").unwrap();
        let b = tree.get(&[key("a"), key("b")]).unwrap();
        assert_eq!((b.span.line, b.span.col), (2, 6));
        let two = tree
            .get(&[key("a"), key("b"), PathSegment::Index(1)])
            .unwrap();
        assert_eq!(
            two.span,
            Span {
                line: 2,
                col: 10,
                len: 3
            }
        );
        let c_key = tree.key_at(&[key("a"), key("c")]).unwrap();
        assert_eq!(
            c_key.span,
            Span {
                line: 3,
                col: 3,
                len: 1
            }
        );
        let c = tree.get(&[key("a"), key("c")]).unwrap();
        assert_eq!(
            c.span,
            Span {
                line: 3,
                col: 6,
                len: 3
            }
        );
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let tree =
            parse("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: v1\ng: 0x10\nh: !!str 3\n").unwrap();
        assert_eq!(
            tree.to_json(),
            serde_json::json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": "1", "f": "v1", "g": 16, "h": "3"})
        );
    }

    #[test]
    fn aliases_are_expanded_and_bounded() {
        let tree = parse("a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(
            tree.to_json(),
            serde_json::json!({"a": {"k": "v"}, "b": {"k": "v"}})
        );
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse(&bomb).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err}");
    }

    #[test]
    fn a_long_file_may_hold_nodes_in_proportion_to_its_length() {
        let long = "- value-of-a-line\n".repeat(MAX_NODES + 1);
        let tree = parse(&long).unwrap();
        assert!(matches!(&tree.value, NodeValue::Seq(items) if items.len() == MAX_NODES + 1));
        // Short items are not enough: aliases and tiny scalars stay under the fixed bound.
        let dense = format!("[{}]", "x,".repeat(MAX_NODES * 3 / 2));
        let err = parse(&dense).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let text = "[".repeat(1000);
        let err = parse(&text).unwrap_err();
        // yaml-rust2 stops first with its own limit; either way it is an error, not a crash.
        assert!(
            err.message.contains("nest more than") || err.message.contains("recursion limit"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.span.line, 3);
        assert!(err.message.contains("first on line 1"), "{err}");
        let (tree, duplicates) = parse_lenient("a: 1\nb: {c: 1, c: [2]}\na: 3\n").unwrap();
        assert_eq!(tree.to_json(), serde_json::json!({"a": 1, "b": {"c": 1}}));
        let places: Vec<(usize, usize)> = duplicates
            .iter()
            .map(|d| (d.span.line, d.span.col))
            .collect();
        assert_eq!(places, [(2, 11), (3, 1)]);
    }

    #[test]
    fn unquoted_template_parses_as_a_nested_flow_map() {
        let tree = parse("value: {{context.environment}}\n").unwrap();
        let value = tree.get(&[key("value")]).unwrap();
        let NodeValue::Map(entries) = &value.value else {
            panic!("expected a map, got {value:?}");
        };
        assert!(entries[0].0.complex);
        assert_eq!((value.span.line, value.span.col), (1, 8));
    }
}
