//! The field language shared by the `metrics` step and the alert engine: field
//! paths and `where:` conditions (`lang`), 128-bit key identities and the maps
//! keyed by them (`key`), and reading a planned set of fields from an event.
//!
//! A consumer lists the fields it needs for one event type;
//! `FieldSlots` gives each a slot and groups them per section, so an event's
//! `data` (or `context`/`tags`) bytes are scanned once through a compiled
//! `Finder`, and conditions then test slots instead of searching again.

use std::borrow::Cow;

use synaptic_plugin_sdk::field::{Finder, Scalar};

mod key;
mod lang;
mod plans;

use crate::event::{Event, Section};

pub(crate) use key::{IdentityMap, KeyHash, LowBits};
pub use lang::Test;
pub(crate) use lang::{decode_conditions, field_ref, field_refs};
pub(crate) use lang::{parse_field, Condition, FieldRef, Literal};
pub(crate) use plans::PlanCache;

/// The longest text an event field puts into a metric label, an alert label or
/// annotation value, or a span attribute. Event text is unbounded; exported
/// labels are held in memory per series and sent on every scrape and
/// notification, so one long value must not cost megabytes each time.
pub(crate) const MAX_EXPORTED_TEXT: usize = 128;

/// `text` cut to [`MAX_EXPORTED_TEXT`] bytes: a prefix (at a character boundary),
/// `…`, and 8 hex digits of a hash of the whole, so that two long values that
/// share their prefix still read as different values.
pub(crate) fn cap_exported(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_EXPORTED_TEXT {
        return Cow::Borrowed(text);
    }
    // Room for `…` (3 bytes) and `#` with 8 hex digits.
    let mut end = MAX_EXPORTED_TEXT - 12;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut hash = KeyHash::default();
    hash.add(text.as_bytes());
    Cow::Owned(format!("{}…#{:08x}", &text[..end], hash.finish() as u32))
}

/// Fields one event type may read for one consumer.
pub(crate) const MAX_PLAN_FIELDS: usize = 12;

/// A field as a plan reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ref {
    Slot(u8),
    EventType,
    Component,
    Severity,
    EventId,
}

#[derive(Debug, Clone)]
pub(crate) struct PlanCondition {
    pub(crate) field: Ref,
    pub(crate) test: Test,
}

/// Resolves fields to the slots of one plan's reads.
pub(crate) struct FieldSlots {
    fields: Vec<(Section, Vec<String>)>,
}

impl FieldSlots {
    /// Every field in `data`, `context` or `tags` among `fields`, each once,
    /// grouped by section.
    pub(crate) fn new<'f>(fields: impl IntoIterator<Item = &'f FieldRef>) -> Self {
        let mut out: Vec<(Section, Vec<String>)> = fields
            .into_iter()
            .filter_map(|f| match f {
                FieldRef::In(section, path) => Some((*section, path.clone())),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| (a.0 as u8, &a.1).cmp(&(b.0 as u8, &b.1)));
        out.dedup();
        FieldSlots { fields: out }
    }

    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// The slot of a field; `None` past `MAX_PLAN_FIELDS` (checked at load by each
    /// consumer, so at run time such a field reads as absent).
    pub(crate) fn field(&self, f: &FieldRef) -> Option<Ref> {
        Some(match f {
            FieldRef::EventType => Ref::EventType,
            FieldRef::Component => Ref::Component,
            FieldRef::Severity => Ref::Severity,
            FieldRef::EventId => Ref::EventId,
            FieldRef::In(section, path) => {
                let i = self.fields.iter().position(|(s, p)| s == section && p == path)?;
                Ref::Slot(u8::try_from(i).ok().filter(|i| (*i as usize) < MAX_PLAN_FIELDS)?)
            }
        })
    }

    pub(crate) fn conditions(&self, conditions: &[Condition]) -> Option<Vec<PlanCondition>> {
        conditions
            .iter()
            .map(|c| Some(PlanCondition { field: self.field(&c.field)?, test: c.test.clone() }))
            .collect()
    }

    /// One read per section, with the section's first slot.
    pub(crate) fn reads(&self) -> Reads {
        let mut grouped: Vec<(Section, Vec<Vec<String>>, usize)> = Vec::new();
        for (i, (section, path)) in self.fields.iter().enumerate().take(MAX_PLAN_FIELDS) {
            match grouped.last_mut() {
                Some((s, paths, _)) if s == section => paths.push(path.clone()),
                _ => grouped.push((*section, vec![path.clone()], i)),
            }
        }
        Reads {
            sections: grouped
                .into_iter()
                .map(|(section, paths, first)| (section, Finder::new(&paths), first))
                .collect(),
            slots: self.fields.len().min(MAX_PLAN_FIELDS),
        }
    }
}

/// The compiled reads of one plan: per section, a `Finder` and its first slot.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    sections: Vec<(Section, Finder, usize)>,
    slots: usize,
}

impl Reads {
    /// Fills `slots` with the event's values (absent fields stay `None`).
    pub fn read<'e>(&self, event: &'e Event, slots: &mut [Option<Scalar<'e>>; MAX_PLAN_FIELDS]) -> usize {
        for (section, finder, first) in &self.sections {
            let end = (first + finder.paths().len()).min(MAX_PLAN_FIELDS);
            event.read_section(*section, finder, &mut slots[*first..end]);
        }
        self.slots
    }
}

/// An event with its planned fields read.
pub(crate) struct Reader<'e, 's> {
    pub(crate) event: &'e Event,
    pub(crate) slots: &'s [Option<Scalar<'e>>],
}

impl<'e> Reader<'e, '_> {
    pub(crate) fn get(&self, r: Ref) -> Option<Scalar<'e>> {
        match r {
            Ref::Slot(i) => self.slots.get(i as usize)?.clone(),
            Ref::EventType => Some(Scalar::Text(Cow::Borrowed(self.event.event_type()))),
            Ref::Component => Some(Scalar::Text(Cow::Borrowed(self.event.component()))),
            Ref::Severity => Some(Scalar::Text(Cow::Borrowed(self.event.severity().as_str()))),
            Ref::EventId => Some(Scalar::Text(Cow::Borrowed(self.event.event_id()))),
        }
    }

    /// Whether every condition holds.
    pub(crate) fn all(&self, conditions: &[PlanCondition]) -> bool {
        conditions.iter().all(|c| holds(&c.test, self.get(c.field)))
    }
}

/// A value as label text: strings as they are, numbers and booleans as JSON writes them.
pub(crate) fn scalar_text(value: Scalar<'_>) -> Cow<'_, str> {
    match value {
        Scalar::Text(t) => t,
        Scalar::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
        other => Cow::Owned(other.text().into_owned()),
    }
}

/// Whether a test holds for a value (absent fields pass only `not_in` and
/// `present: false`).
pub fn holds(test: &Test, value: Option<Scalar<'_>>) -> bool {
    let eq = |lit: &Literal, v: &Scalar<'_>| match v {
        Scalar::Text(t) => t.as_ref() == lit.text,
        Scalar::Bool(b) => lit.text == if *b { "true" } else { "false" },
        number => lit.number.is_some_and(|n| Some(n) == number.as_f64()),
    };
    match (test, value) {
        (Test::Present(want), v) => v.is_some() == *want,
        (_, None) => matches!(test, Test::NotIn(_)),
        (Test::Equals(lit), Some(v)) => eq(lit, &v),
        (Test::In(lits), Some(v)) => lits.iter().any(|l| eq(l, &v)),
        (Test::NotIn(lits), Some(v)) => !lits.iter().any(|l| eq(l, &v)),
        (Test::AtLeast(min), Some(v)) => v.as_f64().is_some_and(|n| n >= *min),
        (Test::AtMost(max), Some(v)) => v.as_f64().is_some_and(|n| n <= *max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_text_is_capped_and_stays_distinct() {
        assert_eq!(cap_exported("short"), "short");
        let long_a = format!("{}a", "é".repeat(100_000));
        let long_b = format!("{}b", "é".repeat(100_000));
        let (a, b) = (cap_exported(&long_a), cap_exported(&long_b));
        assert!(a.len() <= MAX_EXPORTED_TEXT && b.len() <= MAX_EXPORTED_TEXT, "{} {}", a.len(), b.len());
        assert_ne!(a, b);
        assert!(a.starts_with("éé") && a.contains('…'));
    }
}
