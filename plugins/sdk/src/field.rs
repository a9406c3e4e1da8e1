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
/// A key, borrowed when it has no escapes (serde's own `Cow` always copies).
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

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

/// A scalar field value, borrowed from the event where it had no escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar<'_> {
    /// The value as text: strings as they are, numbers and booleans as JSON writes them.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Text(s) => Cow::Borrowed(s.as_ref()),
            Scalar::Int(n) => Cow::Owned(n.to_string()),
            Scalar::Float(f) => Cow::Owned(f.to_string()),
            Scalar::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(n) => Some(*n as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// The most paths [`find_many`] looks up in one pass.
pub const MAX_PATHS: usize = 64;

/// Looks up several dotted paths (`["data", "task_id"]`) in one pass over the
/// event: `out[i]` gets the scalar at `paths[i]`, or stays `None` (absent, an object
/// or array, null, or beyond [`MAX_PATHS`]). False when the bytes are not JSON.
pub fn find_many<'a, P, S>(raw: &'a [u8], paths: &[P], out: &mut [Option<Scalar<'a>>]) -> bool
where
    P: AsRef<[S]>,
    S: AsRef<str>,
{
    out.iter_mut().for_each(|slot| *slot = None);
    let n = paths.len().min(out.len()).min(MAX_PATHS);
    let active = if n == MAX_PATHS { u64::MAX } else { (1u64 << n) - 1 };
    let mut de = serde_json::Deserializer::from_slice(raw);
    Many { paths, _segment: std::marker::PhantomData, depth: 0, active, out }.deserialize(&mut de).is_ok()
}

struct Many<'p, 'o, 'a, P, S> {
    paths: &'p [P],
    _segment: std::marker::PhantomData<S>,
    depth: usize,
    /// Bit i: `paths[i]` agrees with the keys walked so far.
    active: u64,
    out: &'o mut [Option<Scalar<'a>>],
}

impl<'de, P: AsRef<[S]>, S: AsRef<str>> DeserializeSeed<'de> for Many<'_, '_, 'de, P, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, P: AsRef<[S]>, S: AsRef<str>> Many<'_, '_, 'de, P, S> {
    /// Stores `value` for every path that ends here.
    fn set(self, value: Scalar<'de>) {
        for (i, path) in self.paths.iter().enumerate().take(MAX_PATHS) {
            if self.active & (1 << i) != 0 && path.as_ref().len() == self.depth {
                self.out[i] = Some(value.clone());
            }
        }
    }
}

impl<'de, P: AsRef<[S]>, S: AsRef<str>> Visitor<'de> for Many<'_, '_, 'de, P, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Many { paths, depth, active, out, .. } = self;
        while let Some(key) = map.next_key_seed(KeyText)? {
            let mut next = 0u64;
            for (i, path) in paths.iter().enumerate().take(MAX_PATHS) {
                if active & (1 << i) != 0 && path.as_ref().get(depth).map(AsRef::as_ref) == Some(key.as_ref())
                {
                    next |= 1 << i;
                }
            }
            if next == 0 {
                map.next_value::<IgnoredAny>()?;
            } else {
                let _segment = std::marker::PhantomData;
                map.next_value_seed(Many {
                    paths,
                    _segment,
                    depth: depth + 1,
                    active: next,
                    out: &mut *out,
                })?;
            }
        }
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<(), E> {
        self.set(Scalar::Text(Cow::Borrowed(s)));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.set(Scalar::Text(Cow::Owned(s.to_string())));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.set(i64::try_from(n).map_or(Scalar::Float(n as f64), Scalar::Int));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.set(Scalar::Int(n));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        self.set(Scalar::Float(n));
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        self.set(Scalar::Bool(b));
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{find_str, find_text};
    use std::borrow::Cow;

    #[test]
    fn finds_many_paths_in_one_pass() {
        use super::{find_many, Scalar};
        let raw = br#"{"event_id":"e1","data":{"n":42,"f":0.5,"ok":false,"s":"a\"b","o":{"x":1}},"tags":{"k":"v"}}"#;
        let paths: [&[&str]; 8] = [
            &["event_id"],
            &["data", "n"],
            &["data", "f"],
            &["data", "ok"],
            &["data", "s"],
            &["data", "o"],
            &["tags", "k"],
            &["missing"],
        ];
        let mut out = vec![None; paths.len()];
        assert!(find_many(raw, &paths, &mut out));
        assert_eq!(out[0], Some(Scalar::Text(Cow::Borrowed("e1"))));
        assert_eq!(out[1], Some(Scalar::Int(42)));
        assert_eq!(out[2], Some(Scalar::Float(0.5)));
        assert_eq!(out[3], Some(Scalar::Bool(false)));
        assert_eq!(out[4].as_ref().map(|s| s.text().into_owned()).as_deref(), Some("a\"b"));
        assert_eq!(out[5], None);
        assert_eq!(out[6].as_ref().map(|s| s.text().into_owned()).as_deref(), Some("v"));
        assert_eq!(out[7], None);
        assert!(!find_many(b"{", &paths, &mut out));
    }

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
