//! The field and condition language shared by the metric mapping and the alert
//! rules: a field path (`data.agent_id`, `tags.env`, `severity`) and `where:`
//! conditions on fields. Parsed here, once; evaluated by [`super::Reader`] and
//! [`super::holds`].

use crate::decode::yaml::{Node, NodeKind};
use crate::decode::{Decode, Diagnostics, MapReader, OneOrMany};
use crate::event::Section;

/// Where a value is read from: an envelope field or a path inside one of its objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldRef {
    EventType,
    Component,
    Severity,
    EventId,
    In(Section, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub(crate) field: FieldRef,
    pub(crate) test: Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Equals(Literal),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    AtLeast(f64),
    AtMost(f64),
    Present(bool),
}

/// A value from the mapping, compared as text with strings and booleans and as a
/// number with numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub(crate) text: String,
    pub(crate) number: Option<f64>,
}

/// A field path: `data.agent_id`, `context.trace_id`, `tags.env`, or an envelope
/// field (`event_type`, `component`, `severity`, `event_id`).
pub(crate) fn parse_field(text: &str) -> Result<FieldRef, String> {
    let mut parts = text.split('.');
    let root = parts.next().unwrap_or("");
    let rest: Vec<String> = parts.map(str::to_string).collect();
    let section = match root {
        "data" => Section::Data,
        "context" => Section::Context,
        "tags" => Section::Tags,
        "event_type" | "component" | "severity" | "event_id" if rest.is_empty() => {
            return Ok(match root {
                "event_type" => FieldRef::EventType,
                "component" => FieldRef::Component,
                "severity" => FieldRef::Severity,
                _ => FieldRef::EventId,
            })
        }
        _ => {
            return Err(format!(
                "field `{text}` must start with data., context. or tags., or be event_type, component, severity or event_id"
            ))
        }
    };
    if rest.is_empty() || rest.iter().any(String::is_empty) {
        return Err(format!("field `{text}` needs a key after `{root}.`"));
    }
    Ok(FieldRef::In(section, rest))
}

pub(crate) fn field_ref(node: &Node, cx: &mut Diagnostics) -> Option<FieldRef> {
    let text = String::decode(node, cx)?;
    parse_field(&text).map_err(|e| cx.error(node.pos, e)).ok()
}

pub(crate) fn field_refs(node: &Node, cx: &mut Diagnostics) -> Option<Vec<FieldRef>> {
    let texts = OneOrMany::<String>::decode(node, cx)?.0;
    let refs: Vec<Option<FieldRef>> =
        texts.iter().map(|t| parse_field(t).map_err(|e| cx.error(node.pos, e)).ok()).collect();
    refs.into_iter().collect()
}

fn literal(node: &Node, cx: &mut Diagnostics) -> Option<Literal> {
    let text = String::decode(node, cx)?;
    let number = text.parse::<f64>().ok().filter(|n| n.is_finite());
    Some(Literal { text, number })
}

/// `where:` as a mapping of field → test; a bare value means `equals`.
pub(crate) fn decode_conditions(node: &Node, cx: &mut Diagnostics) -> Vec<Condition> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(node.pos, format!("expected a mapping of field: test, got {}", node.describe()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in entries {
        let field = match parse_field(&key.name) {
            Ok(f) => Some(f),
            Err(e) => {
                cx.error(key.pos, e);
                None
            }
        };
        let test = match &value.kind {
            NodeKind::Map(_) => {
                let what = format!("test of `{}`", key.name);
                let Some(mut map) = MapReader::new(value, &what, cx) else { continue };
                let mut tests = Vec::new();
                if let Some(l) = map.node("equals").and_then(|n| literal(n, cx)) {
                    tests.push(Test::Equals(l));
                }
                if let Some(n) = map.node("in") {
                    tests.extend(literals(n, cx).map(Test::In));
                }
                if let Some(n) = map.node("not_in") {
                    tests.extend(literals(n, cx).map(Test::NotIn));
                }
                tests.extend(map.optional::<f64>("at_least", cx).map(Test::AtLeast));
                tests.extend(map.optional::<f64>("at_most", cx).map(Test::AtMost));
                tests.extend(map.optional::<bool>("present", cx).map(Test::Present));
                if tests.len() != 1 {
                    cx.error(
                        value.pos,
                        format!("{what}: give exactly one of equals, in, not_in, at_least, at_most, present"),
                    );
                }
                map.finish(cx);
                tests.pop()
            }
            NodeKind::Seq(_) => {
                cx.error(value.pos, "a list here is ambiguous: write `{in: [...]}`");
                None
            }
            NodeKind::Scalar { .. } => literal(value, cx).map(Test::Equals),
        };
        if let (Some(field), Some(test)) = (field, test) {
            out.push(Condition { field, test });
        }
    }
    out
}

fn literals(node: &Node, cx: &mut Diagnostics) -> Option<Vec<Literal>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(node.pos, format!("expected a list, got {}", node.describe()));
        return None;
    };
    items.iter().map(|n| literal(n, cx)).collect()
}
