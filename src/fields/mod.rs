//! The field language shared by the `metrics` step and the alert engine: field
//! paths and `where:` conditions (`lang`), 128-bit key identities and the maps
//! keyed by them (`key`), and reading a planned set of fields from an event.
//!
//! A consumer lists the fields it needs for one event type;
//! `FieldSlots` gives each a slot and groups them per section, so an event's
//! `data` (or `context`/`tags`) bytes are scanned once through a compiled
//! `Finder`, and conditions then test slots instead of searching again.

use std::borrow::Cow;

use synaptic_plugin_sdk::field::{scalar_at, Finder, Scalar};

mod key;
mod lang;
mod plans;

use crate::event::{schema, Event, EventKind, Section, RECORDED_FIELDS};

/// The fields a data subject is named by (the consent list, deletion requests): a
/// field under `data`, `tags` or `context`, which a step may change (the envelope's
/// cached fields may not be).
pub(crate) fn is_subject_field(path: &str) -> bool {
    ["data.", "tags.", "context."].iter().any(|p| path.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

/// A subject written `FIELD=VALUE` (`data.agent_id=agent-017`): the field and the
/// value, trimmed; the error says what is wrong.
pub(crate) fn parse_subject(text: &str) -> Result<(&str, &str), String> {
    let Some((field, value)) = text.split_once('=') else {
        return Err("expected FIELD=VALUE (data.agent_id=agent-017)".to_string());
    };
    let (field, value) = (field.trim(), value.trim());
    if !is_subject_field(field) {
        return Err(format!("`{field}` is not a field under data, tags or context"));
    }
    if value.is_empty() {
        return Err("the value is empty".to_string());
    }
    Ok((field, value))
}

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

    /// The reads of a plan for `event_type`: one per section, with the section's
    /// first slot; and for a schema type, where validation recorded the places of
    /// `data`'s fields, reads that go straight to them.
    pub(crate) fn reads(&self, event_type: &str) -> Reads {
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
            data: DataReads::plan(event_type, &self.fields),
            slots: self.fields.len().min(MAX_PLAN_FIELDS),
        }
    }
}

/// The compiled reads of one plan: per section, a `Finder` and its first slot;
/// for `data`, the direct reads used when the event has its fields' places.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    sections: Vec<(Section, Finder, usize)>,
    data: Option<DataReads>,
    slots: usize,
}

impl Reads {
    /// Fills `slots` with the event's values (absent fields stay `None`).
    pub fn read<'e>(&self, event: &'e Event, slots: &mut [Option<Scalar<'e>>; MAX_PLAN_FIELDS]) -> usize {
        let data_read = self.data.as_ref().is_some_and(|data| data.read(event, slots));
        for (section, finder, first) in &self.sections {
            if data_read && *section == Section::Data {
                continue;
            }
            let end = (first + finder.paths().len()).min(MAX_PLAN_FIELDS);
            event.read_section(*section, finder, &mut slots[*first..end]);
        }
        self.slots
    }
}

/// A plan's `data` fields read through the places validation recorded: a schema
/// field straight from where its value starts, a path under a schema field by
/// scanning that value alone, and fields the schema does not define by scanning
/// `data` only when it has keys the schema does not define.
#[derive(Debug, Clone)]
struct DataReads {
    kind: EventKind,
    /// (slot, the field's place in the schema's list)
    direct: Vec<(usize, usize)>,
    /// (the schema field's place, the rest of the paths under it, first slot)
    nested: Vec<(usize, Finder, usize)>,
    /// Paths off the schema, and the slot of each.
    rest: Option<(Finder, Vec<usize>)>,
}

impl DataReads {
    fn plan(event_type: &str, fields: &[(Section, Vec<String>)]) -> Option<DataReads> {
        let (kind, _) = EventKind::from_event_type(event_type);
        if kind == EventKind::Unknown {
            return None;
        }
        let schema = schema::fields(kind);
        let mut direct = Vec::new();
        let mut nested: Vec<(usize, Vec<Vec<String>>, usize)> = Vec::new();
        let (mut rest, mut rest_slots) = (Vec::new(), Vec::new());
        for (slot, (section, path)) in fields.iter().enumerate().take(MAX_PLAN_FIELDS) {
            if *section != Section::Data {
                continue;
            }
            let (first, under) = path.split_first()?;
            let index = schema.iter().position(|f| f.name == first).filter(|i| *i < RECORDED_FIELDS);
            match (index, under) {
                (Some(index), []) => direct.push((slot, index)),
                // Paths are sorted: those under one field sit together, slots in a row.
                (Some(index), under) => match nested.last_mut() {
                    Some((at, paths, _)) if *at == index => paths.push(under.to_vec()),
                    _ => nested.push((index, vec![under.to_vec()], slot)),
                },
                (None, _) => {
                    rest.push(path.clone());
                    rest_slots.push(slot);
                }
            }
        }
        if direct.is_empty() && nested.is_empty() {
            return None;
        }
        Some(DataReads {
            kind,
            direct,
            nested: nested
                .into_iter()
                .map(|(index, paths, first)| (index, Finder::new(&paths), first))
                .collect(),
            rest: (!rest.is_empty()).then(|| (Finder::new(&rest), rest_slots)),
        })
    }

    /// Fills the `data` slots; false (and the caller scans) when the event has no
    /// recorded places.
    fn read<'e>(&self, event: &'e Event, slots: &mut [Option<Scalar<'e>>; MAX_PLAN_FIELDS]) -> bool {
        let Some(places) = event.data_places().filter(|_| event.kind() == self.kind) else {
            return false;
        };
        let raw = event.raw();
        for &(slot, index) in &self.direct {
            slots[slot] = places.value_at(index).and_then(|at| scalar_at(raw, at));
        }
        for (index, finder, first) in &self.nested {
            let out = &mut slots[*first..(first + finder.paths().len()).min(MAX_PLAN_FIELDS)];
            match places.value_at(*index).and_then(|at| raw.get(at..)) {
                Some(value) => {
                    finder.find(value, out);
                }
                None => out.fill(None),
            }
        }
        if let Some((finder, targets)) = &self.rest {
            if !places.has_others() {
                // Validation saw every key of `data`: none of these is there.
                targets.iter().for_each(|slot| slots[*slot] = None);
                return true;
            }
            let mut found: [Option<Scalar<'e>>; MAX_PLAN_FIELDS] = Default::default();
            let n = targets.len().min(MAX_PLAN_FIELDS);
            event.read_section(Section::Data, finder, &mut found[..n]);
            for (value, slot) in found.iter_mut().zip(targets) {
                slots[*slot] = value.take();
            }
        }
        true
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
    use crate::event::{Position, SchemaMode};
    use crate::source::traffic::Traffic;
    use crate::source::GeneratorConfig;

    /// Reads every field of `event_type`'s schema, a path under each object field
    /// and two off the schema, both ways: straight from the places validation
    /// recorded, and by scanning `data` (the way for events without them).
    fn both_ways(event: &Event, counted: &mut [usize; 2]) {
        let kind = event.kind();
        let mut paths: Vec<Vec<String>> =
            schema::fields(kind).iter().map(|f| vec![f.name.to_string()]).collect();
        for nested in
            [["resource_usage", "cpu_percent"], ["parameters", "particles"], ["resource_usage", "x"]]
        {
            paths.push(nested.iter().map(|s| s.to_string()).collect());
        }
        paths.push(vec!["task_type".into()]);
        paths.push(vec!["not_in_schema".into()]);
        let refs: Vec<FieldRef> = paths.into_iter().map(|p| FieldRef::In(Section::Data, p)).collect();
        for chunk in refs.chunks(MAX_PLAN_FIELDS) {
            let slots = FieldSlots::new(chunk);
            let direct = slots.reads(event.event_type());
            let scanning = Reads { data: None, ..direct.clone() };
            let (mut a, mut b): (
                [Option<Scalar<'_>>; MAX_PLAN_FIELDS],
                [Option<Scalar<'_>>; MAX_PLAN_FIELDS],
            ) = Default::default();
            direct.read(event, &mut a);
            scanning.read(event, &mut b);
            assert_eq!(a, b, "{}", String::from_utf8_lossy(event.raw()));
            let took = direct.data.as_ref().is_some_and(|d| d.read(event, &mut Default::default()));
            counted[usize::from(took)] += 1;
        }
    }

    #[test]
    fn recorded_places_read_the_same_values_as_a_scan() {
        let config = GeneratorConfig {
            rate: 1000.0,
            total: 0,
            seed: 7,
            malformed_ratio: 0.0,
            start_ms: Some(1_767_225_600_000),
        };
        let mut traffic = Traffic::new(&config, 0);
        let mut counted = [0usize; 2];
        for seq in 0..20_000 {
            let raw = bytes::Bytes::from(traffic.next_event());
            let Ok(event) = Event::decode(raw, Position::Generator { seq }, SchemaMode::Strict) else {
                continue;
            };
            both_ways(&event, &mut counted);
        }
        assert!(counted[1] > 15_000, "the recorded places were used: {counted:?}");

        // Input shapes the generator does not make: nulls, escapes, a surrogate
        // pair, spaces, number forms, a deeper object holding a wanted key, a
        // field off the schema, keys written with escapes. (Repeated keys and
        // lone surrogates never get this far: the guard rejects them.)
        let data = [
            r#"{"agent_id":"a","agent_type":"w\u00e9","state_from":"idle","state_to":"busy","resource_usage":{"cpu_percent":2.5e1,"memory_mb":1}}"#,
            r#"{ "agent_id" : "a\ud83d\ude00z\n" , "agent_type":"x","state_from":"idle","state_to":"busy","transition_reason":null,"resource_usage": { "memory_mb" : -0.0 } }"#,
            r#"{"agent_id":"a","agent_type":"t","state_from":"idle","state_to":"busy","task_type":"off \"schema\"","resource_usage":null}"#,
            r#"{"agent_id":"a","agent_type":"t","state_from":"idle","state_to":"busy","resource_usage":{"cpu_percent":12.50,"nested":{"cpu_percent":9}}}"#,
            r#"{"agent\u005fid":"a","agent_type":"t","state_from":"idle","state_to":"busy","x\u0041":1}"#,
        ];
        let before = counted;
        for (i, data) in data.iter().enumerate() {
            let raw = format!(
                r#"{{"event_id":"e{i}","timestamp":1,"component":"c","event_type":"agent.lifecycle","severity":"INFO","data":{data}}}"#
            );
            let event =
                Event::decode(raw.into_bytes().into(), Position::Generator { seq: 0 }, SchemaMode::Strict)
                    .unwrap_or_else(|e| panic!("valid: {e}: {data}"));
            both_ways(&event, &mut counted);
        }
        assert!(counted[1] > before[1], "crafted events took the recorded places: {counted:?}");
    }

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
