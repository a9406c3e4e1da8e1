//! Events as Rhai values and back: a direct conversion from the JSON bytes to a
//! Rhai map (borrowing keys, one allocation per string value: twice as fast as
//! going through Rhai's own serde support), and the checks that tell whether the
//! map a script returned is still the event that came in.

use std::borrow::Cow;
use std::fmt;

use rhai::{Dynamic, ImmutableString};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The event's bytes as a Rhai value (a map for an event).
pub(crate) fn from_json(raw: &[u8]) -> serde_json::Result<Dynamic> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = RhaiValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct RhaiValue;

impl<'de> DeserializeSeed<'de> for RhaiValue {
    type Value = Dynamic;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Dynamic, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RhaiValue {
    type Value = Dynamic;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Dynamic, E> {
        Ok(Dynamic::from_bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Dynamic, E> {
        Ok(Dynamic::from_int(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Dynamic, E> {
        // Past i64, as serde_json's own f64 would hold it.
        Ok(i64::try_from(n).map_or_else(|_| Dynamic::from_float(n as f64), Dynamic::from_int))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Dynamic, E> {
        Ok(Dynamic::from_float(n))
    }
    fn visit_str<E>(self, s: &str) -> Result<Dynamic, E> {
        Ok(Dynamic::from(ImmutableString::from(s)))
    }
    fn visit_unit<E>(self) -> Result<Dynamic, E> {
        Ok(Dynamic::UNIT)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dynamic, A::Error> {
        let mut array = rhai::Array::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(RhaiValue)? {
            array.push(item);
        }
        Ok(Dynamic::from_array(array))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Dynamic, A::Error> {
        let mut map = rhai::Map::new();
        while let Some(key) = entries.next_key_seed(KeyName)? {
            let value = entries.next_value_seed(RhaiValue)?;
            map.insert(key.as_ref().into(), value);
        }
        Ok(Dynamic::from_map(map))
    }
}

/// An object key, borrowed from the bytes when it has no escapes (Rhai stores
/// short keys inline, so no `String` is made on the way).
struct KeyName;

impl<'de> DeserializeSeed<'de> for KeyName {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyName {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }
    fn visit_str<E>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

/// Whether the map has a top-level field whose quoted name appears nowhere in
/// `raw`: then it cannot be the event that came in. (A name that needs escaping
/// also counts as new, which costs only a re-encoding.)
pub(crate) fn has_new_field(value: &Dynamic, raw: &[u8]) -> bool {
    let Ok(map) = value.as_map_ref() else { return false };
    map.keys().any(|key| {
        let key = key.as_bytes();
        let quoted_at =
            |at: usize| at > 0 && raw.get(at - 1) == Some(&b'"') && raw.get(at + key.len()) == Some(&b'"');
        !memchr::memmem::find_iter(raw, key).any(quoted_at)
    })
}

/// Whether a script's value equals a JSON document, compared in place.
pub(crate) fn same_value(value: &Dynamic, json: &Value) -> bool {
    match json {
        Value::Null => value.is_unit(),
        Value::Bool(b) => value.as_bool() == Ok(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => value.as_int() == Ok(i),
            None => n.as_f64().is_some_and(|f| value.as_float() == Ok(f)),
        },
        Value::String(s) => value.as_immutable_string_ref().is_ok_and(|v| v.as_str() == s),
        Value::Array(items) => value.as_array_ref().is_ok_and(|array| {
            array.len() == items.len() && array.iter().zip(items).all(|(v, j)| same_value(v, j))
        }),
        Value::Object(fields) => value.as_map_ref().is_ok_and(|map| {
            map.len() == fields.len()
                && fields.iter().all(|(k, j)| map.get(k.as_str()).is_some_and(|v| same_value(v, j)))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_json_type_and_compares_back() {
        let raw = br#"{"s":"x\"y","i":-3,"u":18446744073709551615,"f":0.5,"b":true,"n":null,"a":[1,"two",{"k":[]}],"o":{"k":"v"}}"#;
        let value = from_json(raw).expect("converts");
        let json: Value = serde_json::from_slice(raw).expect("JSON");
        assert!(same_value(&value, &json));
        let map = value.as_map_ref().expect("a map");
        assert_eq!(map["s"].clone().into_string().expect("string"), "x\"y");
        assert_eq!(map["i"].as_int(), Ok(-3));
        assert_eq!(map["u"].as_float(), Ok(18446744073709551615.0));
        assert!(map["n"].is_unit());
        drop(map);
        let mut changed = value.clone();
        changed.as_map_mut().expect("a map").insert("i".into(), Dynamic::from_int(4));
        assert!(!same_value(&changed, &json));
        assert!(!has_new_field(&changed, raw), "same names");
        changed.as_map_mut().expect("a map").insert("stamp".into(), Dynamic::from_int(1));
        assert!(has_new_field(&changed, raw));
        assert!(from_json(b"{\"a\":1} x").is_err());
    }
}
