//! The fast path of validation: one pass over the bytes that checks the envelope and
//! schema v1.0 without building a document. Strings stay where they are in the input
//! (borrowed), `data` is captured as raw JSON and checked against the same field
//! table as the precise path, and nothing is allocated for a valid event.
//!
//! It only answers "valid, and here is the header" or "not sure". On "not sure" the
//! caller runs the precise path (`Event::decode_slow`), which builds the document
//! and names every problem; so this never decides what an error message says, and a
//! valid event never pays for a tree it does not need.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::schema::{self, Field, FieldType};
use super::{EventKind, Severity};

/// A string of the header: a span of the raw bytes when it had no escapes.
#[derive(Debug, Clone)]
pub(crate) enum Text {
    Span(u32, u32),
    Owned(Box<str>),
    Static(&'static str),
}

impl Text {
    pub(crate) fn resolve<'a>(&'a self, raw: &'a [u8]) -> &'a str {
        match self {
            Text::Span(start, end) => raw
                .get(*start as usize..*end as usize)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            Text::Owned(s) => s,
            Text::Static(s) => s,
        }
    }

    fn from_cow(value: Cow<'_, str>, raw: &[u8]) -> Text {
        match value {
            Cow::Borrowed(s) => {
                let start = s.as_ptr() as usize - raw.as_ptr() as usize;
                Text::Span(start as u32, (start + s.len()) as u32)
            }
            Cow::Owned(s) => Text::Owned(s.into_boxed_str()),
        }
    }
}

/// What the envelope says, once validated.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) event_id: Text,
    pub(crate) component: Text,
    pub(crate) event_type: Text,
    pub kind: EventKind,
    /// The event_type was an alias, now `event_type` holds the canonical name.
    pub(crate) alias: bool,
    pub(crate) severity: Severity,
    pub(crate) timestamp_ms: i64,
    /// Where `data`, `context` and `tags` sit in the raw bytes, so steps that read a
    /// few fields scan only the object they need. `None` on the precise path.
    pub(crate) sections: Sections,
    /// The `sample_rate` a sampler stamped on the event, if any.
    pub(crate) sample_rate: Option<f64>,
    /// Where `data`'s schema fields are; recorded on the fast path.
    pub(crate) data_fields: FieldStarts,
}

/// How many of a type's `data` fields validation records the place of: every
/// type of schema v1.0 has fewer (a later field is found by scanning).
pub(crate) const RECORDED_FIELDS: usize = 12;

/// Where `data`'s schema fields are in the raw bytes, recorded while the fast
/// path checks them: a step that reads those fields (metrics, alerts) goes
/// straight to each value instead of scanning `data` again. Each start is the
/// byte just past the key's closing quote (the value follows after `:` and any
/// space); the index is the field's place in `schema::fields(kind)`; 0 means
/// absent (no key ends at byte 0).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FieldStarts {
    pub(crate) recorded: bool,
    /// `data` has keys besides the recorded fields (a reader of another field
    /// must scan; without them, any other field is known to be absent).
    pub(crate) others: bool,
    pub(crate) starts: [u32; RECORDED_FIELDS],
}

/// Byte ranges of the envelope's objects within the raw event.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sections {
    pub(crate) data: Option<(u32, u32)>,
    pub(crate) context: Option<(u32, u32)>,
    pub(crate) tags: Option<(u32, u32)>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    timestamp: Option<serde_json::Number>,
    #[serde(borrow)]
    component: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    severity: Option<Cow<'a, str>>,
    // A present `null` must not read as absent: the precise path rejects it.
    #[serde(borrow, default, deserialize_with = "present")]
    tags: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    context: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    sample_rate: Option<f64>,
}

/// The range a borrowed raw value occupies within `raw`.
fn span_of(value: Option<&RawValue>, raw: &[u8]) -> Option<(u32, u32)> {
    let text = value?.get();
    let start = (text.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
    (start + text.len() <= raw.len()).then_some((start as u32, (start + text.len()) as u32))
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The header of a valid event, or `None` when the precise path must look.
/// Raw inputs over 4 GiB cannot be spans; they take the precise path too.
pub fn scan(raw: &[u8]) -> Option<Header> {
    if raw.len() > u32::MAX as usize {
        return None;
    }
    let envelope: Envelope<'_> = serde_json::from_slice(raw).ok()?;
    let non_empty = |s: &Option<Cow<'_, str>>| s.as_ref().is_some_and(|s| !s.is_empty());
    if !(non_empty(&envelope.event_id) && non_empty(&envelope.component) && non_empty(&envelope.event_type)) {
        return None;
    }
    let timestamp = envelope.timestamp?;
    let timestamp_ms = timestamp.as_i64().or_else(|| timestamp.as_f64().map(|f| f as i64))?;
    if timestamp_ms < 0 {
        return None;
    }
    let severity = Severity::parse(envelope.severity.as_deref()?)?;
    let is_object = |v: &Option<&RawValue>| v.is_none_or(|v| v.get().starts_with('{'));
    if !is_object(&envelope.tags) || !is_object(&envelope.context) {
        return None;
    }
    let event_type = envelope.event_type?;
    let (kind, alias) = EventKind::from_event_type(&event_type);
    let mut data_fields = FieldStarts::default();
    if kind != EventKind::Unknown {
        let data = envelope.data?;
        let (offset, _) = span_of(Some(data), raw)?;
        let text = data.get();
        let mut record =
            Record { fields: &mut data_fields, text_at: text.as_ptr() as usize, offset, lost: false };
        let mut de = serde_json::Deserializer::from_str(text);
        ObjectCheck { fields: schema::fields(kind), record: Some(&mut record) }.deserialize(&mut de).ok()?;
        data_fields.recorded = !record.lost;
    }
    let event_type = match (alias, kind.canonical_name()) {
        (true, Some(name)) => Text::Static(name),
        _ => Text::from_cow(event_type, raw),
    };
    let sections = Sections {
        data: span_of(envelope.data, raw),
        context: span_of(envelope.context, raw),
        tags: span_of(envelope.tags, raw),
    };
    Some(Header {
        event_id: Text::from_cow(envelope.event_id?, raw),
        component: Text::from_cow(envelope.component?, raw),
        event_type,
        kind,
        alias,
        severity,
        timestamp_ms,
        sections,
        sample_rate: envelope.sample_rate,
        data_fields,
    })
}

/// Checks that a value is an object whose fields satisfy the table; at the top
/// of `data`, also records where each field's key ends.
struct ObjectCheck<'r, 'f> {
    fields: &'static [Field],
    record: Option<&'r mut Record<'f>>,
}

/// Where to note the places of `data`'s fields: the address of the text being
/// checked, and the offset of that text in the raw event.
struct Record<'r> {
    fields: &'r mut FieldStarts,
    text_at: usize,
    offset: u32,
    /// A schema key whose place is unknown (written with escapes, so the parser
    /// handed over a decoded copy): nothing recorded can be trusted.
    lost: bool,
}

impl Record<'_> {
    /// `key_end` is the address just past the key's text, when it was borrowed.
    fn note(&mut self, index: Option<usize>, key_end: Option<usize>) {
        let Some(index) = index.filter(|i| *i < RECORDED_FIELDS) else {
            self.fields.others = true;
            return;
        };
        // Past the closing quote, which sits right after the borrowed text.
        let within = key_end.and_then(|end| (end + 1).checked_sub(self.text_at));
        let at = within.and_then(|w| u32::try_from(w).ok()).and_then(|w| w.checked_add(self.offset));
        match at {
            Some(at) => self.fields.starts[index] = at,
            None => self.lost = true,
        }
    }
}

impl<'de> DeserializeSeed<'de> for ObjectCheck<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectCheck<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let fields = self.fields;
        let mut seen: u64 = 0;
        while let Some((index, key_end)) = map.next_key_seed(FieldIndex(fields))? {
            if let Some(record) = self.record.as_mut() {
                record.note(index, key_end);
            }
            match index {
                Some(i) => {
                    if map.next_value_seed(ValueCheck(fields[i].ty))? {
                        seen |= 1 << i;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let missing = fields.iter().enumerate().any(|(i, f)| f.required && seen & (1 << i) == 0);
        if missing {
            return Err(de::Error::custom("required field missing"));
        }
        Ok(())
    }
}

/// A key's position in the field table, without allocating the key; and, when
/// the key is borrowed from the input (no escapes), the address just past it.
struct FieldIndex(&'static [Field]);

type KeyFound = (Option<usize>, Option<usize>);

impl<'de> DeserializeSeed<'de> for FieldIndex {
    type Value = KeyFound;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeyFound, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldIndex {
    type Value = KeyFound;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<KeyFound, E> {
        let index = self.0.iter().position(|f| f.name == key);
        Ok((index, Some(key.as_ptr() as usize + key.len())))
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<KeyFound, E> {
        Ok((self.0.iter().position(|f| f.name == key), None))
    }
}

/// Checks one value's type; answers whether it was present (not null).
struct ValueCheck(FieldType);

impl<'de> DeserializeSeed<'de> for ValueCheck {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueCheck {
    fn number<E: de::Error>(&self, n: f64) -> Result<bool, E> {
        match self.0 {
            FieldType::Num { min, max, integer }
                if n >= min && n <= max && !(integer && n.fract() != 0.0) =>
            {
                Ok(true)
            }
            _ => Err(E::custom("wrong number")),
        }
    }
}

impl<'de> Visitor<'de> for ValueCheck {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        match self.0 {
            FieldType::Bool => Ok(true),
            _ => Err(E::custom("unexpected boolean")),
        }
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<bool, E> {
        self.number(n as f64)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<bool, E> {
        self.number(n as f64)
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<bool, E> {
        self.number(n)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        match self.0 {
            FieldType::Str => Ok(true),
            FieldType::Enum(choices) if choices.contains(&s) => Ok(true),
            _ => Err(E::custom("unexpected string")),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        match self.0 {
            FieldType::Object(inner) => {
                ObjectCheck { fields: inner, record: None }.visit_map(map).map(|()| true)
            }
            FieldType::AnyObject => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(true)
            }
            _ => Err(de::Error::custom("unexpected object")),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        match self.0 {
            FieldType::Array => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(true)
            }
            _ => Err(de::Error::custom("unexpected array")),
        }
    }
}
