//! Reading one field of an event's bytes without building its document: the walk
//! skips every value off the path, and only the value found is copied.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The value at `path` (`["data", "agent_id"]`) as text, when it is a string or a
/// number; `None` when absent, of another type, or the bytes are not JSON.
pub fn find_text(raw: &[u8], path: &[&str]) -> Option<String> {
    find_str(raw, path).map(Cow::into_owned)
}

/// Like [`find_text`], borrowing from `raw` when the string has no escapes.
pub fn find_str<'a>(raw: &'a [u8], path: &[&str]) -> Option<Cow<'a, str>> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    Lookup(path).deserialize(&mut de).ok().flatten()
}

struct Lookup<'p>(&'p [&'p str]);

impl<'de> DeserializeSeed<'de> for Lookup<'_> {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lookup<'_> {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut found = None;
        while let Some(is_match) = map.next_key_seed(KeyIs(first))? {
            if is_match && found.is_none() {
                found = map.next_value_seed(Lookup(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then_some(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Cow::Owned(s.to_string())))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Cow::Owned(n.to_string())))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Cow::Owned(n.to_string())))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Cow::Owned(n.to_string())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Compares a key with the wanted one without allocating it.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{find_str, find_text};
    use std::borrow::Cow;

    #[test]
    fn finds_nested_strings_and_numbers_only() {
        let raw = br#"{"event_id":"e1","data":{"x":[1,{"agent_id":"no"}],"agent_id":"a-7","n":42,"b":true},"tags":{}}"#;
        assert_eq!(find_text(raw, &["data", "agent_id"]).as_deref(), Some("a-7"));
        assert_eq!(find_text(raw, &["data", "n"]).as_deref(), Some("42"));
        assert_eq!(find_text(raw, &["event_id"]).as_deref(), Some("e1"));
        assert_eq!(find_text(raw, &["data", "b"]), None);
        assert_eq!(find_text(raw, &["data", "missing"]), None);
        assert_eq!(find_text(raw, &["data"]), None);
        assert_eq!(find_text(b"not json", &["a"]), None);
        assert!(matches!(find_str(raw, &["event_id"]), Some(Cow::Borrowed("e1"))));
        assert_eq!(find_str(br#"{"a":"x\ny"}"#, &["a"]).as_deref(), Some("x\ny"));
    }
}
