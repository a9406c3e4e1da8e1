//! Routing: which sinks each event goes to, by each sink's `match`.

use crate::decode::yaml::Node;
use crate::decode::{one_of, Diagnostics, MapReader, OneOrMany};
use crate::event::{Event, Severity};
use crate::glob::Glob;

/// A `match` clause as written: which events a sink, a drop step, a metric or a
/// rule applies to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchConfig {
    /// Globs on the canonical event_type; empty means any.
    pub(crate) event_type: Vec<String>,
    /// Globs on the component; empty means any.
    pub(crate) component: Vec<String>,
    /// Only events at or above this severity.
    pub(crate) min_severity: Option<Severity>,
}

pub(crate) fn decode_match(node: &Node, cx: &mut Diagnostics) -> Option<MatchConfig> {
    let mut map = MapReader::new(node, "match", cx)?;
    let event_type = map.optional::<OneOrMany<String>>("event_type", cx).map(|v| v.0);
    let component = map.optional::<OneOrMany<String>>("component", cx).map(|v| v.0);
    let min_severity = map.node("min_severity").and_then(|n| {
        let choices: Vec<(&str, Severity)> = Severity::ALL.iter().map(|s| (s.as_str(), *s)).collect();
        one_of(n, &choices, cx)
    });
    map.finish(cx);
    Some(MatchConfig {
        event_type: event_type.unwrap_or_default(),
        component: component.unwrap_or_default(),
        min_severity,
    })
}

/// A compiled `match` clause: every given condition must hold; an empty list
/// means "any".
#[derive(Debug, Clone)]
pub struct Matcher {
    event_type: Vec<Glob>,
    component: Vec<Glob>,
    min_severity: Option<Severity>,
}

impl Matcher {
    pub(crate) fn new(config: &MatchConfig) -> Self {
        Matcher {
            event_type: config.event_type.iter().map(|g| Glob::new(g)).collect(),
            component: config.component.iter().map(|g| Glob::new(g)).collect(),
            min_severity: config.min_severity,
        }
    }

    /// The clause's conditions other than the event type (which a per-type plan
    /// has settled already); `None` when there are none.
    pub(crate) fn apart_from_type(config: &MatchConfig) -> Option<Matcher> {
        (!config.component.is_empty() || config.min_severity.is_some())
            .then(|| Matcher::new(&MatchConfig { event_type: Vec::new(), ..config.clone() }))
    }

    pub(crate) fn matches(&self, event: &Event) -> bool {
        self.min_severity.is_none_or(|min| event.severity() >= min)
            && (self.event_type.is_empty() || self.event_type.iter().any(|g| g.matches(event.event_type())))
            && (self.component.is_empty() || self.component.iter().any(|g| g.matches(event.component())))
    }
}

/// The events of a batch that go to one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Indices(Vec<u32>),
}

impl Selection {
    pub(crate) fn len(&self, batch_len: usize) -> usize {
        match self {
            Selection::All => batch_len,
            Selection::Indices(i) => i.len(),
        }
    }

    pub(crate) fn is_empty(&self, batch_len: usize) -> bool {
        self.len(batch_len) == 0
    }

    /// The selected items of `items`, in order.
    pub(crate) fn pick<'a, T>(&'a self, items: &'a [T]) -> Box<dyn Iterator<Item = &'a T> + 'a> {
        match self {
            Selection::All => Box::new(items.iter()),
            Selection::Indices(indices) => Box::new(indices.iter().filter_map(|&i| items.get(i as usize))),
        }
    }
}

/// Computes each sink's selection, and how many events no sink took.
pub fn route(events: &[Event], matchers: &[Option<Matcher>]) -> (Vec<Selection>, usize) {
    let mut taken = vec![false; events.len()];
    let selections = matchers
        .iter()
        .map(|matcher| match matcher {
            None => {
                taken.iter_mut().for_each(|t| *t = true);
                Selection::All
            }
            Some(m) => {
                let indices: Vec<u32> = events
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| m.matches(e))
                    .map(|(i, _)| {
                        taken[i] = true;
                        i as u32
                    })
                    .collect();
                if indices.len() == events.len() {
                    Selection::All
                } else {
                    Selection::Indices(indices)
                }
            }
        })
        .collect();
    let unrouted = taken.iter().filter(|t| !**t).count();
    (selections, unrouted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Position, SchemaMode};
    use bytes::Bytes;

    fn event(event_type: &str, severity: &str) -> Event {
        let json = format!(
            r#"{{"event_id":"e","timestamp":1,"component":"c","event_type":"{event_type}","severity":"{severity}"}}"#
        );
        Event::decode(Bytes::from(json), Position::Generator { seq: 0 }, SchemaMode::Strict).expect("valid")
    }

    #[test]
    fn sinks_get_what_they_match_and_the_rest_is_counted() {
        let events = vec![event("x.a", "INFO"), event("y.b", "ERROR"), event("z.c", "DEBUG")];
        let errors = Matcher::new(&MatchConfig { min_severity: Some(Severity::Warn), ..Default::default() });
        let xs = Matcher::new(&MatchConfig { event_type: vec!["x.*".into()], ..Default::default() });
        let (selections, unrouted) = route(&events, &[Some(errors), Some(xs)]);
        assert_eq!(selections, vec![Selection::Indices(vec![1]), Selection::Indices(vec![0])]);
        assert_eq!(unrouted, 1);
        let (selections, unrouted) = route(&events, &[None]);
        assert_eq!(selections, vec![Selection::All]);
        assert_eq!(unrouted, 0);
    }
}
