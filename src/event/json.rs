//! The JSON both validation paths accept, and nothing else: RFC 8259 as serde_json
//! reads it into strings (valid UTF-8, paired surrogate escapes, finite numbers),
//! no object with the same key twice, and at most [`MAX_DEPTH`] levels of nesting.
//!
//! The fast path (`scan`) skips the parts of an event it does not need to look at;
//! skipping with serde_json's `IgnoredAny` or `RawValue` checks only the syntax, so
//! those parts are walked with [`Checked`] instead, which applies every rule above
//! without building anything. The precise path builds its document with
//! [`parse_document`], which applies the same rules. An event that passes one path
//! therefore passes the other, and a document can always be built for it later.
//!
//! Duplicate keys are refused rather than resolved: an event forwarded as received
//! would show a consumer the first value while validation saw the last.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Levels of objects and arrays an event may have, the event itself included.
/// serde_json stops at 128 on its own; this is lower so that a part of an event
/// checked on its own can never pass where the whole event would not.
pub const MAX_DEPTH: usize = 64;

fn too_deep<E: de::Error>() -> E {
    E::custom(format_args!("nested deeper than {MAX_DEPTH} levels"))
}

/// The keys of one object seen so far: a few compared in place, many hashed, so a
/// wide object costs linear time.
pub(super) struct KeySet<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

/// Past this many keys an object's keys are hashed.
const FEW_KEYS: usize = 16;

impl<'de> KeySet<'de> {
    pub(super) fn new() -> Self {
        KeySet { few: Vec::new(), many: None }
    }

    /// Adds a key; an error naming it when the object already has it.
    pub(super) fn insert<E: de::Error>(&mut self, key: Cow<'de, str>) -> Result<(), E> {
        if let Some(many) = &mut self.many {
            if many.contains(key.as_ref()) {
                return Err(duplicate(&key));
            }
            many.insert(key);
            return Ok(());
        }
        if self.few.contains(&key) {
            return Err(duplicate(&key));
        }
        self.few.push(key);
        if self.few.len() > FEW_KEYS {
            self.many = Some(self.few.drain(..).collect());
        }
        Ok(())
    }
}

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate key {key:?}"))
}

/// An object key, borrowed from the input when it has no escapes.
pub(super) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

/// Walks any value applying every rule, building nothing. `depth` is the number of
/// objects and arrays the value sits in.
#[derive(Clone, Copy)]
pub(super) struct Checked {
    pub depth: usize,
}

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    // serde_json hands strings over only once they are valid UTF-8 with paired
    // surrogates.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        let mut keys = KeySet::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            keys.insert(key)?;
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

impl Checked {
    /// The seed for the values inside a container at this depth.
    pub(super) fn enter<E: de::Error>(self) -> Result<Checked, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(Checked { depth })
    }
}

/// Whether `raw` is one JSON value under the rules, building nothing.
pub fn check_document(raw: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    Checked { depth: 0 }.deserialize(&mut de)?;
    de.end()
}

/// The precise path's document: serde_json's `Value`, built under the same rules
/// as [`Checked`] applies.
pub fn parse_document(raw: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = Building { depth: 0 }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Builds a value; `depth` as in [`Checked`].
#[derive(Clone, Copy)]
struct Building {
    depth: usize,
}

impl Building {
    fn enter<E: de::Error>(self) -> Result<Building, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(Building { depth })
    }
}

impl<'de> DeserializeSeed<'de> for Building {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Building {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        // serde_json refuses non-finite numbers before they get here.
        Number::from_f64(n).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if object.contains_key(key.as_ref()) {
                return Err(duplicate(&key));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key.into_owned(), value);
        }
        Ok(Value::Object(object))
    }
}
