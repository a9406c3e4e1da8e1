//! Strict YAML decoding, shared by every config type: the position-marked YAML tree
//! (`yaml`), and decoding it into structs while collecting every error with its
//! `file:line:col` instead of stopping at the first.
//!
//! A leaf: it imports nothing else from the crate, so every component can decode its
//! own section without depending on the assembled config.

pub mod secret;
pub mod yaml;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Number, Value};

use yaml::{Key, Node, NodeKind, Pos};

/// One config problem, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ConfigError {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) message: String,
}

/// Collects errors for one file.
pub(crate) struct Diagnostics {
    file: String,
    errors: Vec<ConfigError>,
}

impl Diagnostics {
    pub(crate) fn new(file: impl Into<String>) -> Self {
        Diagnostics { file: file.into(), errors: Vec::new() }
    }

    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    /// Records an error found in another file (a file this one refers to).
    pub(crate) fn push(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors in file order, every secret in them masked: a message that
    /// quotes a bad value never shows a password.
    pub(crate) fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| (e.line, e.col));
        for error in &mut self.errors {
            if let Cow::Owned(masked) = secret::mask(&error.message) {
                error.message = masked;
            }
        }
        self.errors
    }

    /// Where `{file: path}` values are read from: the config file's directory.
    fn base_dir(&self) -> &std::path::Path {
        std::path::Path::new(&self.file).parent().unwrap_or(std::path::Path::new(""))
    }
}

/// A value that can be read from a YAML node. `None` means an error was recorded.
pub(crate) trait Decode: Sized {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self>;
}

/// Reads a mapping's keys one by one; `finish` reports every key nobody asked for.
pub(crate) struct MapReader<'a> {
    what: &'a str,
    pos: Pos,
    entries: &'a [(Key, Node)],
    asked: Vec<&'static str>,
}

impl<'a> MapReader<'a> {
    /// `what` names the section in messages ("source", "sink `archive`").
    pub(crate) fn new(node: &'a Node, what: &'a str, cx: &mut Diagnostics) -> Option<Self> {
        match &node.kind {
            NodeKind::Map(entries) => {
                // Hashed: a mapping with many keys costs linear time, not quadratic.
                let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
                for (key, _) in entries {
                    if !seen.insert(&key.name) {
                        cx.error(key.pos, format!("duplicate key `{}` in {what}", key.name));
                    }
                }
                Some(MapReader { what, pos: node.pos, entries, asked: Vec::new() })
            }
            _ if node.is_null() => Some(MapReader { what, pos: node.pos, entries: &[], asked: Vec::new() }),
            _ => {
                cx.error(node.pos, format!("{what} must be a mapping, got {}", node.describe()));
                None
            }
        }
    }

    pub(crate) fn pos(&self) -> Pos {
        self.pos
    }

    /// The node under `key`, if present and not null.
    pub(crate) fn node(&mut self, key: &'static str) -> Option<&'a Node> {
        self.asked.push(key);
        self.entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v).filter(|v| !v.is_null())
    }

    pub(crate) fn key_pos(&self, key: &str) -> Pos {
        self.entries.iter().find(|(k, _)| k.name == key).map_or(self.pos, |(k, _)| k.pos)
    }

    pub(crate) fn optional<T: Decode>(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<T> {
        self.node(key).and_then(|n| T::decode(n, cx))
    }

    /// Like `optional`, with a default when the key is absent (or invalid; the error
    /// is already recorded then, so the default never hides it).
    pub(crate) fn or<T: Decode>(&mut self, key: &'static str, default: T, cx: &mut Diagnostics) -> T {
        self.optional(key, cx).unwrap_or(default)
    }

    pub(crate) fn required<T: Decode>(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<T> {
        match self.node(key) {
            Some(n) => T::decode(n, cx),
            None => {
                cx.error(self.pos, format!("{} is missing required key `{key}`", self.what));
                None
            }
        }
    }

    /// Reports keys that were never asked for.
    pub(crate) fn finish(self, cx: &mut Diagnostics) {
        for (key, _) in self.entries {
            if !self.asked.contains(&key.name.as_str()) {
                cx.error(
                    key.pos,
                    format!(
                        "unknown key `{}` in {} (known keys: {})",
                        key.name,
                        self.what,
                        self.asked.join(", ")
                    ),
                );
            }
        }
    }
}

/// Largest file a `{file: path}` value may name.
const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// A scalar's text, with `${NAME}` replaced by the environment variable's value, or
/// the contents of the file a `{file: path}` mapping names (without the trailing
/// newline). Values from either place are secrets.
fn scalar<'n>(node: &'n Node, expected: &str, cx: &mut Diagnostics) -> Option<(Cow<'n, str>, bool)> {
    match &node.kind {
        NodeKind::Scalar { text, quoted } if text.contains("${") => {
            expand_env(text, node.pos, cx).map(|t| (Cow::Owned(t), *quoted))
        }
        NodeKind::Scalar { text, quoted } => Some((Cow::Borrowed(text.as_str()), *quoted)),
        NodeKind::Map(entries) if entries.len() == 1 && entries[0].0.name == "file" => {
            read_value_file(&entries[0].1, cx).map(|t| (Cow::Owned(t), true))
        }
        _ => {
            cx.error(node.pos, format!("expected {expected}, got {}", node.describe()));
            None
        }
    }
}

/// `text` with each `${NAME}` replaced; an unset variable is an error naming it.
fn expand_env(text: &str, pos: Pos, cx: &mut Diagnostics) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut ok = true;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            cx.error(pos, "`${` without a closing `}`");
            return None;
        };
        let name = &after[..end];
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match std::env::var(name) {
            Ok(value) if valid => {
                secret::register(&value);
                out.push_str(&value);
            }
            _ if !valid => {
                cx.error(pos, format!("`${{{name}}}` is not an environment variable name"));
                ok = false;
            }
            _ => {
                cx.error(pos, format!("environment variable `{name}` is not set"));
                ok = false;
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    ok.then_some(out)
}

/// The contents of the file `{file: path}` names, registered as a secret.
fn read_value_file(path_node: &Node, cx: &mut Diagnostics) -> Option<String> {
    let NodeKind::Scalar { text: path, .. } = &path_node.kind else {
        cx.error(path_node.pos, "`file:` must name a file");
        return None;
    };
    // The path itself may name its directory by a variable (`${SECRETS_DIR}/x`).
    let path = if path.contains("${") { expand_env(path, path_node.pos, cx)? } else { path.clone() };
    let full = cx.base_dir().join(&path);
    let read = std::fs::File::open(&full).and_then(|file| {
        use std::io::Read;
        let mut text = String::new();
        file.take(MAX_SECRET_FILE_BYTES + 1).read_to_string(&mut text)?;
        Ok(text)
    });
    match read {
        Ok(text) if text.len() as u64 > MAX_SECRET_FILE_BYTES => {
            cx.error(path_node.pos, format!("`{}` is larger than 64 KiB", full.display()));
            None
        }
        Ok(text) => {
            let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            secret::register(value);
            Some(value.to_string())
        }
        Err(e) => {
            cx.error(path_node.pos, format!("cannot read `{}`: {e}", full.display()));
            None
        }
    }
}

impl Decode for String {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        let text = scalar(node, "a string", cx)?.0.into_owned();
        // A URL's user-info is a credential wherever the URL is written.
        if text.contains("://") && text.contains('@') {
            secret::register_url_credentials(&text);
        }
        Some(text)
    }
}

/// A secret is a string that is never shown; one shorter than 4 characters is
/// refused (it could not be masked in messages, and is no secret).
impl Decode for secret::Secret {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        let value = secret::Secret::new(String::decode(node, cx)?);
        if value.is_weak() && !value.expose().is_empty() {
            cx.error(node.pos, "a secret must be at least 4 characters long");
            return None;
        }
        Some(value)
    }
}

impl Decode for bool {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        let (text, quoted) = scalar(node, "true or false", cx)?;
        match (text.as_ref(), quoted) {
            ("true", false) => Some(true),
            ("false", false) => Some(false),
            (other, _) => {
                cx.error(node.pos, format!("expected true or false, got `{other}`"));
                None
            }
        }
    }
}

macro_rules! decode_unsigned {
    ($($t:ty),*) => {$(
        impl Decode for $t {
            fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
                let (text, _) = scalar(node, "a whole number", cx)?;
                match text.replace('_', "").parse::<$t>() {
                    Ok(v) => Some(v),
                    Err(_) => {
                        cx.error(node.pos, format!(
                            "expected a whole number from 0 to {}, got `{text}`", <$t>::MAX));
                        None
                    }
                }
            }
        }
    )*};
}
decode_unsigned!(u16, u32, u64, usize);

impl Decode for f64 {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        let (text, _) = scalar(node, "a number", cx)?;
        match text.replace('_', "").parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                cx.error(node.pos, format!("expected a number, got `{text}`"));
                None
            }
        }
    }
}

impl Decode for Duration {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        let (text, _) = scalar(node, "a duration such as 500ms, 30s or 1h", cx)?;
        match humantime::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.error(
                    node.pos,
                    format!("expected a duration such as 500ms, 30s or 1h, got `{text}` ({e})"),
                );
                None
            }
        }
    }
}

/// A size in bytes, written `1048576`, `64KiB`, `100MiB`, `1GiB` (also kB/MB/GB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub u64);

impl ByteSize {
    pub(crate) fn parse(text: &str) -> Option<u64> {
        let text = text.trim().replace('_', "");
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return None,
        };
        n.checked_mul(mult)
    }
}

impl Decode for ByteSize {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        let (text, _) = scalar(node, "a size such as 64KiB or 100MiB", cx)?;
        match ByteSize::parse(&text) {
            Some(n) => Some(ByteSize(n)),
            None => {
                cx.error(node.pos, format!("expected a size such as 64KiB or 100MiB, got `{text}`"));
                None
            }
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        match &node.kind {
            NodeKind::Seq(items) => {
                let decoded: Vec<Option<T>> = items.iter().map(|n| T::decode(n, cx)).collect();
                decoded.into_iter().collect()
            }
            _ => {
                cx.error(node.pos, format!("expected a list, got {}", node.describe()));
                None
            }
        }
    }
}

/// A list that may also be written as a single item (`event_type: "task.*"`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OneOrMany<T>(pub Vec<T>);

impl<T: Decode> Decode for OneOrMany<T> {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        match &node.kind {
            NodeKind::Seq(_) => Vec::<T>::decode(node, cx).map(OneOrMany),
            _ => T::decode(node, cx).map(|v| OneOrMany(vec![v])),
        }
    }
}

impl Decode for BTreeMap<String, String> {
    fn decode(node: &Node, cx: &mut Diagnostics) -> Option<Self> {
        match &node.kind {
            NodeKind::Map(entries) => {
                let mut out = BTreeMap::new();
                let mut ok = true;
                for (key, value) in entries {
                    match String::decode(value, cx) {
                        Some(v) => {
                            // Header values and client properties carry credentials.
                            if is_sensitive_name(&key.name) {
                                secret::register(&v);
                            }
                            out.insert(key.name.clone(), v);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                cx.error(node.pos, format!("expected a mapping, got {}", node.describe()));
                None
            }
        }
    }
}

/// Keys whose values are credentials wherever they appear (headers, librdkafka
/// properties): `authorization`, `sasl.password`, `ssl.key.password`, `x-api-key`…
pub(crate) fn is_sensitive_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "password", "secret", "token", "api-key", "api_key", "apikey", "cookie"]
        .iter()
        .any(|word| name.contains(word))
}

/// Decodes a string that must be one of `choices`; the error lists them.
pub(crate) fn one_of<T: Copy>(node: &Node, choices: &[(&str, T)], cx: &mut Diagnostics) -> Option<T> {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let (text, _) = scalar(node, &format!("one of {}", names.join(", ")), cx)?;
    match choices.iter().find(|(n, _)| *n == text.as_ref()) {
        Some((_, v)) => Some(*v),
        None => {
            cx.error(node.pos, format!("expected one of {}, got `{text}`", names.join(", ")));
            None
        }
    }
}

/// The items of a list section; anything else is an error (`{what} must be a
/// list`) and reads as no items.
pub(crate) fn list_items<'n>(node: &'n Node, what: &str, cx: &mut Diagnostics) -> &'n [Node] {
    match &node.kind {
        NodeKind::Seq(items) => items,
        _ => {
            cx.error(node.pos, format!("{what} must be a list, got {}", node.describe()));
            &[]
        }
    }
}

/// Records `name` of a list item (a step, a sink), with an error when it was seen
/// before.
pub(crate) fn check_unique_name(
    names: &mut Vec<String>,
    name: &str,
    pos: Pos,
    what: &str,
    cx: &mut Diagnostics,
) {
    if names.iter().any(|n| n == name) {
        cx.error(pos, format!("{what} name `{name}` is used twice"));
    }
    names.push(name.to_string());
}

/// All problems of one config file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// One problem with a whole file (it could not be read), without a position.
    pub(crate) fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError { file: file.into(), line: 0, col: 0, message: message.into() }])
    }
}

/// Parses one strict YAML document and decodes it, with every error of both stages.
pub(crate) fn parse_document<T>(
    text: &str,
    file: &str,
    decode: impl FnOnce(&Node, &mut Diagnostics) -> Option<T>,
) -> Result<T, ConfigErrors> {
    let root = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: e.line,
            col: e.col,
            message: format!("YAML syntax error: {}", e.message),
        }])
    })?;
    let mut cx = Diagnostics::new(file);
    match decode(&root, &mut cx) {
        Some(value) if !cx.has_errors() => Ok(value),
        _ => Err(ConfigErrors(cx.into_errors())),
    }
}

/// A YAML subtree as JSON, with `${NAME}` and `{file: path}` values resolved like
/// everywhere else in the config (they become strings), and the values of
/// credential-named keys (`hash_key`, `password`, `token`…) registered as secrets.
pub(crate) fn to_json_resolved(node: &Node, cx: &mut Diagnostics) -> Value {
    match &node.kind {
        NodeKind::Map(entries) if entries.len() == 1 && entries[0].0.name == "file" => {
            scalar(node, "a value", cx)
                .map(|(text, _)| Value::String(text.into_owned()))
                .unwrap_or(Value::Null)
        }
        NodeKind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let value = to_json_resolved(v, cx);
                    if let (true, Value::String(text)) =
                        (is_sensitive_name(&k.name) || k.name.ends_with("key"), &value)
                    {
                        secret::register(text);
                    }
                    (k.name.clone(), value)
                })
                .collect(),
        ),
        NodeKind::Seq(items) => Value::Array(items.iter().map(|item| to_json_resolved(item, cx)).collect()),
        NodeKind::Scalar { text, .. } if text.contains("${") => {
            expand_env(text, node.pos, cx).map(Value::String).unwrap_or(Value::Null)
        }
        NodeKind::Scalar { .. } => to_json(node),
    }
}

/// A YAML subtree as JSON: plain scalars become booleans, numbers or null where they
/// read as such; quoted scalars stay strings.
pub(crate) fn to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Map(entries) => {
            Value::Object(entries.iter().map(|(k, v)| (k.name.clone(), to_json(v))).collect())
        }
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Scalar { text, quoted: true } => Value::String(text.clone()),
        NodeKind::Scalar { .. } if node.is_null() => Value::Null,
        NodeKind::Scalar { text, quoted: false } => match text.as_str() {
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ => {
                if let Ok(n) = text.parse::<i64>() {
                    Value::Number(n.into())
                } else if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                    Value::Number(n)
                } else {
                    Value::String(text.clone())
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::yaml::parse;
    use super::*;

    #[test]
    fn collects_every_error_with_positions() {
        let doc = parse("rate: fast\nseed: 7\ncolour: red\nlinger: soon\n").expect("yaml");
        let mut cx = Diagnostics::new("t.yaml");
        let mut map = MapReader::new(&doc, "source", &mut cx).expect("map");
        let _rate: Option<u64> = map.optional("rate", &mut cx);
        let _seed: Option<u64> = map.optional("seed", &mut cx);
        let _linger: Option<Duration> = map.optional("linger", &mut cx);
        let _name: Option<String> = map.required("name", &mut cx);
        map.finish(&mut cx);
        let errors: Vec<String> = cx.into_errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("t.yaml:1:1: source is missing required key `name`"));
        assert!(errors[1].starts_with("t.yaml:1:7: expected a whole number"));
        assert!(errors[2].starts_with("t.yaml:3:1: unknown key `colour`"));
        assert!(errors[3].starts_with("t.yaml:4:9: expected a duration"));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(ByteSize::parse("64KiB"), Some(65536));
        assert_eq!(ByteSize::parse("100MiB"), Some(100 << 20));
        assert_eq!(ByteSize::parse("12"), Some(12));
        assert_eq!(ByteSize::parse("12 parsecs"), None);
    }
}
