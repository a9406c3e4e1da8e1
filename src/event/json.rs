//! The JSON both validation paths accept, and nothing else: RFC 8259 as serde_json
//! reads it into strings (valid UTF-8, paired surrogate escapes, finite numbers),
//! no object with the same key twice, and at most [`MAX_DEPTH`] levels of nesting.
//!
//! The fast path (`scan`) skips the parts of an event it does not need to look at;
//! skipping with serde_json's `IgnoredAny` or `RawValue` checks only the syntax, so
//! every input first goes through `guard`, one cheap pass over the bytes for the
//! rules above. The precise path builds its document with [`parse_document`], which
//! applies the same rules itself. An event that passes one path therefore passes the
//! other, and a document can always be built for it later.
//!
//! Duplicate keys are refused rather than resolved: an event forwarded as received
//! would show a consumer the first value while validation saw the last.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Levels of objects and arrays an event may have, the event itself included
/// (serde_json would stop at 128 on its own).
pub(crate) const MAX_DEPTH: usize = 64;

fn too_deep<E: de::Error>() -> E {
    E::custom(format_args!("nested deeper than {MAX_DEPTH} levels"))
}

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate key {key:?}"))
}

/// An object key, borrowed from the input when it has no escapes.
struct KeySeed;

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

/// Whether `raw` is one JSON value under the rules, building nothing: the
/// guard's pass, then serde_json's syntax (what the fast path does).
pub fn check_document(raw: &[u8]) -> Result<(), String> {
    super::guard::check(raw).map_err(|e| e.to_string())?;
    serde_json::from_slice::<IgnoredAny>(raw).map(drop).map_err(|e| e.to_string())
}

/// The precise path's document: serde_json's `Value`, built under the rules.
pub(crate) fn parse_document(raw: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = Building { depth: 0 }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Builds a value; `depth` is the number of objects and arrays it sits in.
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
