//! YAML with positions.
//!
//! Config files are parsed with `saphyr-parser`'s event stream (the parser under `saphyr`)
//! into a `serde_json::Value`, while every node's span is recorded under its JSON pointer.
//! JSON Schema errors name an instance path; the [`SpanIndex`] turns that path back into
//! `file:line:col`, pointing at the key for unknown keys and at the value otherwise.
//!
//! Building our own tree from events, instead of taking a library's document type, is what
//! lets us refuse what config files must not contain: anchors and aliases (config must be
//! explicit, and an alias bomb must never expand), custom tags, duplicate keys, several
//! documents in one file, complex keys and absurd nesting. Scalars are resolved by the YAML
//! 1.2 core schema, so `no` and `on` stay strings.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

use crate::diagnostic::{Code, Diagnostic, Span};

/// Nesting deeper than this is refused. The deepest real config is about six levels.
pub const MAX_DEPTH: usize = 64;

/// Where one node sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpans {
    /// The span of the key, when the node is a mapping value.
    pub key: Option<Span>,
    /// The span of the value itself. For a collection, it starts at its first token.
    pub value: Span,
}

/// JSON pointer (escaped as RFC 6901 says) to the node's spans.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    nodes: HashMap<String, NodeSpans>,
}

impl SpanIndex {
    /// The spans of the node at `pointer`, if there is one.
    pub fn get(&self, pointer: &str) -> Option<NodeSpans> {
        self.nodes.get(pointer).copied()
    }

    /// The span of the value at `pointer`, or of its nearest ancestor that exists.
    pub fn value_span(&self, pointer: &str) -> Option<Span> {
        self.nearest(pointer).map(|spans| spans.value)
    }

    /// The span of the key at `pointer` (falling back to the value, then to ancestors).
    pub fn key_span(&self, pointer: &str) -> Option<Span> {
        self.nearest(pointer)
            .map(|spans| spans.key.unwrap_or(spans.value))
    }

    fn nearest(&self, pointer: &str) -> Option<NodeSpans> {
        let mut current = pointer;
        loop {
            if let Some(spans) = self.nodes.get(current) {
                return Some(*spans);
            }
            match current.rfind('/') {
                Some(slash) => current = &current[..slash],
                None => return None,
            }
        }
    }
}

/// A parsed YAML file: the value and where each of its nodes came from.
#[derive(Debug, Clone)]
pub struct YamlDocument {
    pub value: Value,
    pub spans: SpanIndex,
}

/// Appends one escaped segment to a JSON pointer.
pub fn pointer_push(pointer: &str, segment: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + segment.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Parses `text` (the contents of `file`) into a located document, or says why not.
pub fn parse(file: &str, text: &str) -> Result<YamlDocument, Vec<Diagnostic>> {
    let tabs = tab_indentation(file, text);
    if !tabs.is_empty() {
        return Err(tabs);
    }
    let mut builder = Builder::new(file);
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => {
                if builder.event(event, span).is_break() {
                    break;
                }
            }
            Err(error) => {
                builder.syntax_error(&error, text);
                break;
            }
        }
    }
    builder.finish(text)
}

/// Tabs are not allowed in YAML indentation, and the parser's own message for them is
/// obscure, so they get a diagnostic of their own before parsing.
fn tab_indentation(file: &str, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let indentation = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(column) = line[..indentation].find('\t') {
            diagnostics.push(
                Diagnostic::error(
                    Code::YamlTab,
                    file,
                    Some(Span::point(index + 1, column + 1)),
                    "tab character used for indentation",
                )
                .with_help("YAML indents with spaces only; replace the tab with spaces"),
            );
        }
    }
    diagnostics
}

/// YAML's own type tags (`!!str`, `!!int`, ...) are harmless; anything else asks a loader
/// to construct something, which config never needs.
pub(crate) fn is_core_tag(tag: &saphyr_parser::Tag) -> bool {
    tag.is_yaml_core_schema()
        && matches!(
            tag.suffix.as_str(),
            "str" | "int" | "float" | "bool" | "null" | "map" | "seq"
        )
}

/// A parse error at the very end of the input points past the last line; move it to the
/// end of the last line that has text, which is where the reader should look.
fn clamp_to_text(span: Span, text: &str) -> Span {
    let lines: Vec<&str> = text.lines().collect();
    if span.start.line <= lines.len() {
        return span;
    }
    match lines.iter().rposition(|line| !line.trim().is_empty()) {
        Some(index) => Span::point(index + 1, lines[index].chars().count() + 1),
        None => span,
    }
}

fn point(marker: &Marker) -> Span {
    Span::point(marker.line(), marker.col() + 1)
}

fn span_of(span: saphyr_parser::Span) -> Span {
    Span {
        start: point(&span.start).start,
        end: point(&span.end).start,
    }
}

/// The key state of an open mapping.
enum PendingKey {
    /// The next node completed is a key.
    None,
    /// The next node completed is the value of this key.
    Key(String, Span),
    /// The next node completed is the value of a refused key: it is dropped.
    Discard,
}

enum Frame {
    Mapping {
        map: Map<String, Value>,
        pointer: String,
        start: Span,
        pending: PendingKey,
    },
    Sequence {
        items: Vec<Value>,
        pointer: String,
        start: Span,
    },
}

/// A node that has just been completed.
struct Node {
    value: Value,
    span: Span,
    /// The scalar's text when the node is a scalar (keys must be scalars).
    scalar: Option<String>,
}

struct Builder<'f> {
    file: &'f str,
    stack: Vec<Frame>,
    root: Option<Value>,
    root_is_empty_scalar: bool,
    documents: usize,
    spans: SpanIndex,
    diagnostics: Vec<Diagnostic>,
}

type Flow = std::ops::ControlFlow<()>;

impl<'f> Builder<'f> {
    fn new(file: &'f str) -> Self {
        Builder {
            file,
            stack: Vec::new(),
            root: None,
            root_is_empty_scalar: false,
            documents: 0,
            spans: SpanIndex::default(),
            diagnostics: Vec::new(),
        }
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(code, self.file, Some(span), message));
    }

    /// Takes one parser event: a scalar or alias completes a node, a collection's start
    /// opens a frame and its end completes it. Breaks on a second document or nesting
    /// too deep.
    fn event(&mut self, event: Event<'_>, raw_span: saphyr_parser::Span) -> Flow {
        let span = span_of(raw_span);
        let is_mapping = matches!(event, Event::MappingStart(..));
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    self.error(
                        Code::YamlMultipleDocuments,
                        span,
                        "a second YAML document starts here; each file holds exactly one",
                    );
                    return Flow::Break(());
                }
            }
            Event::Alias(_) => {
                self.error(
                    Code::YamlAlias,
                    span,
                    "YAML aliases (`*name`) are not allowed; write the value out in full",
                );
                self.complete(Node {
                    value: Value::Null,
                    span,
                    scalar: None,
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.check_anchor(anchor, span);
                self.scalar(text, style, tag, span);
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                self.check_anchor(anchor, span);
                return self.open(is_mapping, tag, span);
            }
            Event::MappingEnd | Event::SequenceEnd => self.close(span),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Flow::Continue(())
    }

    /// A scalar: a string when quoted or tagged `!!str`, otherwise YAML 1.2's core
    /// schema (`resolve_plain`). A tag outside the core schema is an error.
    fn scalar(
        &mut self,
        text: std::borrow::Cow<'_, str>,
        style: ScalarStyle,
        tag: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>,
        span: Span,
    ) {
        let mut is_str = style != ScalarStyle::Plain;
        if let Some(tag) = tag {
            if is_core_tag(&tag) {
                is_str |= tag.suffix == "str";
            } else {
                self.error(
                    Code::YamlTag,
                    span,
                    format!("YAML tag `{}{}` is not allowed", tag.handle, tag.suffix),
                );
            }
        }
        let value = if is_str {
            Value::String(text.to_string())
        } else {
            resolve_plain(&text)
        };
        if self.stack.is_empty() && style == ScalarStyle::Plain && text.is_empty() {
            self.root_is_empty_scalar = true;
        }
        self.complete(Node {
            value,
            span,
            scalar: Some(text.into_owned()),
        });
    }

    /// A mapping or sequence starts: a new frame, unless nesting is too deep.
    fn open(
        &mut self,
        is_mapping: bool,
        tag: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>,
        span: Span,
    ) -> Flow {
        if let Some(tag) = tag.filter(|t| !is_core_tag(t)) {
            self.error(
                Code::YamlTag,
                span,
                format!("YAML tag `{}{}` is not allowed", tag.handle, tag.suffix),
            );
        }
        if self.stack.len() >= MAX_DEPTH {
            self.error(
                Code::YamlTooDeep,
                span,
                format!("nesting deeper than {MAX_DEPTH} levels is not allowed"),
            );
            return Flow::Break(());
        }
        let pointer = self.child_pointer();
        self.stack.push(if is_mapping {
            Frame::Mapping {
                map: Map::new(),
                pointer,
                start: span,
                pending: PendingKey::None,
            }
        } else {
            Frame::Sequence {
                items: Vec::new(),
                pointer,
                start: span,
            }
        });
        Flow::Continue(())
    }

    /// A mapping or sequence ends at `end`: its frame becomes a node spanning from its
    /// start.
    fn close(&mut self, end: Span) {
        let (value, start) = match self.stack.pop() {
            Some(Frame::Mapping { map, start, .. }) => (Value::Object(map), start),
            Some(Frame::Sequence { items, start, .. }) => (Value::Array(items), start),
            None => return,
        };
        self.complete(Node {
            value,
            span: Span {
                start: start.start,
                end: end.end,
            },
            scalar: None,
        });
    }

    /// Reports a parse error. Two cases get a better place than the parser's: an alias
    /// to an undefined anchor is still an alias, and an unclosed `[` or `{` from an earlier
    /// line is where the mistake is, though the parser notices it lines later.
    fn syntax_error(&mut self, error: &saphyr_parser::ScanError, text: &str) {
        let at = clamp_to_text(point(error.marker()), text);
        if error.info().contains("unknown anchor") {
            self.error(
                Code::YamlAlias,
                at,
                "YAML aliases (`*name`) are not allowed, and this one names no anchor; write the value out in full",
            );
            return;
        }
        let open_flow = self.stack.iter().rev().find_map(|frame| {
            let start = match frame {
                Frame::Mapping { start, .. } | Frame::Sequence { start, .. } => *start,
            };
            let line = text.lines().nth(start.start.line.checked_sub(1)?)?;
            let opener = line.chars().nth(start.start.column.checked_sub(1)?)?;
            matches!(opener, '[' | '{').then_some((start, opener))
        });
        match open_flow {
            Some((start, opener)) if start.start.line < at.start.line => self.error(
                Code::YamlSyntax,
                Span::point(start.start.line, start.start.column),
                format!(
                    "YAML syntax error: this `{opener}` is never closed (the parser stopped at {}:{}: {})",
                    at.start.line,
                    at.start.column,
                    error.info()
                ),
            ),
            _ => self.error(
                Code::YamlSyntax,
                at,
                format!("YAML syntax error: {}", error.info()),
            ),
        }
    }

    fn check_anchor(&mut self, anchor: usize, span: Span) {
        if anchor != 0 {
            self.error(
                Code::YamlAnchor,
                span,
                "YAML anchors (`&name`) are not allowed; config must be written out explicitly",
            );
        }
    }

    /// The JSON pointer the next node will have.
    fn child_pointer(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Sequence { items, pointer, .. }) => {
                pointer_push(pointer, &items.len().to_string())
            }
            Some(Frame::Mapping {
                pointer, pending, ..
            }) => match pending {
                PendingKey::Key(key, _) => pointer_push(pointer, key),
                // A collection in key position or under a refused key: a pointer that no
                // escaped pointer can equal, so its spans never shadow real ones.
                PendingKey::None | PendingKey::Discard => format!("{pointer}/~k"),
            },
        }
    }

    fn complete(&mut self, node: Node) {
        let pointer = self.child_pointer();
        let Some(frame) = self.stack.last_mut() else {
            self.spans.nodes.insert(
                pointer,
                NodeSpans {
                    key: None,
                    value: node.span,
                },
            );
            self.root = Some(node.value);
            return;
        };
        match frame {
            Frame::Sequence { items, .. } => {
                items.push(node.value);
                self.spans.nodes.insert(
                    pointer,
                    NodeSpans {
                        key: None,
                        value: node.span,
                    },
                );
            }
            Frame::Mapping { map, pending, .. } => {
                match std::mem::replace(pending, PendingKey::None) {
                    PendingKey::None => match node.scalar {
                        Some(key) if map.contains_key(&key) => {
                            *pending = PendingKey::Discard;
                            self.error(
                                Code::YamlDuplicateKey,
                                node.span,
                                format!(
                                    "duplicate key `{key}`: it already appears in this mapping"
                                ),
                            );
                        }
                        Some(key) => *pending = PendingKey::Key(key, node.span),
                        None => {
                            *pending = PendingKey::Discard;
                            self.error(
                                Code::YamlComplexKey,
                                node.span,
                                "mapping keys must be plain strings",
                            );
                        }
                    },
                    PendingKey::Key(key, key_span) => {
                        map.insert(key, node.value);
                        self.spans.nodes.insert(
                            pointer,
                            NodeSpans {
                                key: Some(key_span),
                                value: node.span,
                            },
                        );
                    }
                    PendingKey::Discard => {}
                }
            }
        }
    }

    fn finish(self, text: &str) -> Result<YamlDocument, Vec<Diagnostic>> {
        if !self.diagnostics.is_empty() {
            return Err(self.diagnostics);
        }
        match self.root {
            Some(value) if !(value.is_null() && self.root_is_empty_scalar) => Ok(YamlDocument {
                value,
                spans: self.spans,
            }),
            _ => {
                let line = text.lines().count().max(1);
                Err(vec![Diagnostic::error(
                    Code::EmptyFile,
                    self.file,
                    Some(Span::point(line, 1)),
                    "the file is empty: it must hold one YAML document with `apiVersion` and `kind`",
                )])
            }
        }
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(number) = resolve_int(text) {
        return Value::Number(number);
    }
    if is_core_float(text)
        && let Ok(float) = text.parse::<f64>()
        && let Some(number) = Number::from_f64(float)
    {
        return Value::Number(number);
    }
    Value::String(text.to_string())
}

fn resolve_int(text: &str) -> Option<Number> {
    let parsed = if let Some(octal) = text.strip_prefix("0o") {
        i64::from_str_radix(octal, 8).ok()
    } else if let Some(hex) = text.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else {
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<i64>().ok()
    };
    parsed.map(Number::from)
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        Some(fraction) => {
            digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty())
        }
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<(&'static str, usize, usize)> {
        match parse("f.yaml", text) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics
                .iter()
                .map(|d| {
                    let span = d.span.expect("span");
                    (d.code.as_str(), span.start.line, span.start.column)
                })
                .collect(),
        }
    }

    #[test]
    fn records_key_and_value_positions() {
        let doc = parse("f.yaml", "a: 1\nlist:\n  - x: yes\n    y: \"2\"\n").unwrap();
        assert_eq!(
            doc.value,
            serde_json::json!({"a": 1, "list": [{"x": "yes", "y": "2"}]})
        );
        let y = doc.spans.get("/list/0/y").unwrap();
        assert_eq!(y.key.unwrap().start.line, 4);
        assert_eq!(y.key.unwrap().start.column, 5);
        assert_eq!(y.value.start.column, 8);
        // A missing node falls back to its nearest ancestor.
        assert_eq!(doc.spans.value_span("/list/0/zzz").unwrap().start.line, 3);
    }

    #[test]
    fn escapes_pointer_segments() {
        let doc = parse("f.yaml", "\"a/b~c\": 1\n").unwrap();
        assert!(doc.spans.get("/a~1b~0c").is_some());
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let doc = parse(
            "f.yaml",
            "[~, null, true, False, 12, -3, 0x1f, 0o17, 1.5, .5, 1e3, no, on, '1', 1.2.3]",
        )
        .unwrap();
        assert_eq!(
            doc.value,
            serde_json::json!([
                null, null, true, false, 12, -3, 31, 15, 1.5, 0.5, 1000.0, "no", "on", "1", "1.2.3"
            ])
        );
    }

    #[test]
    fn refuses_what_config_must_not_contain() {
        assert_eq!(codes("a: 1\na: 2\n"), vec![("yaml-duplicate-key", 2, 1)]);
        assert_eq!(
            codes("a: &x 1\nb: *x\n"),
            vec![("yaml-anchor", 1, 4), ("yaml-alias", 2, 4)]
        );
        assert_eq!(codes("a: !custom 1\n"), vec![("yaml-tag", 1, 4)]);
        assert_eq!(codes("? [a]\n: 1\n"), vec![("yaml-complex-key", 1, 3)]);
        assert_eq!(
            codes("a: 1\n---\nb: 2\n"),
            vec![("yaml-multiple-documents", 2, 1)]
        );
        assert_eq!(codes("a:\n\tb: 1\n"), vec![("yaml-tab", 2, 1)]);
        assert_eq!(codes(""), vec![("empty-file", 1, 1)]);
        assert_eq!(codes("# only a comment\n"), vec![("empty-file", 1, 1)]);
        assert_eq!(codes("a: [1, 2\n")[0].0, "yaml-syntax");
        let deep = "[".repeat(200);
        assert_eq!(codes(&deep)[0].0, "yaml-too-deep");
    }

    #[test]
    fn an_alias_bomb_is_refused_without_expanding() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..30 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        let diagnostics = parse("bomb.yaml", &text).unwrap_err();
        assert!(
            diagnostics
                .iter()
                .all(|d| matches!(d.code, Code::YamlAnchor | Code::YamlAlias))
        );
    }
}
