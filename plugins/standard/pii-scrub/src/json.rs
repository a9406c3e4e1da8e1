//! A minimal walk over a JSON document that reports every string value with its
//! byte span and dotted path, so the scrubber can rewrite just those bytes and leave
//! the rest of the event exactly as it came (key order, number formatting).

use std::borrow::Cow;
use std::ops::Range;

/// A string value: where its quoted form sits in the document, its path (object
/// keys joined by dots; array positions are not part of it), and its text.
pub struct StringValue<'a> {
    pub span: Range<usize>,
    pub path: &'a str,
    pub text: Cow<'a, str>,
}

/// Objects and arrays the walk goes into, the event itself included. The host
/// refuses events nested deeper (64 levels); this is the plugin's own bound, so
/// that no input can make the walk's memory grow without limit.
pub const MAX_DEPTH: usize = 64;

/// Calls `visit` for every string value (not key) in `raw`. Errors on input that
/// is not JSON, or nested deeper than [`MAX_DEPTH`]: the caller must then treat
/// the event as not scrubbed.
#[cfg(test)]
pub fn strings(raw: &[u8], visit: &mut dyn FnMut(StringValue<'_>)) -> Result<(), String> {
    strings_under(raw, None, &mut String::new(), visit)
}

/// Like [`strings`], walking only the top-level fields named in `roots` (all when
/// `None`); the others are stepped over without looking at their strings. `path`
/// is scratch space, passed in so that its allocation is reused.
pub fn strings_under(
    raw: &[u8],
    roots: Option<&[String]>,
    path: &mut String,
    visit: &mut dyn FnMut(StringValue<'_>),
) -> Result<(), String> {
    // Validated once here, so each string is a slice of it, not checked again.
    let text = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    path.clear();
    let mut walker = Walker { text, raw, at: 0, path: std::mem::take(path), roots };
    let walked = walker.walk(visit);
    *path = std::mem::take(&mut walker.path);
    walked?;
    walker.space();
    if walker.at != raw.len() {
        return Err(format!("trailing bytes at {}", walker.at));
    }
    Ok(())
}

struct Walker<'a> {
    text: &'a str,
    /// `text` as bytes.
    raw: &'a [u8],
    at: usize,
    path: String,
    roots: Option<&'a [String]>,
}

/// An object or array the walk is inside of.
enum Open {
    /// An object, with the length of the path at its start (its members' paths are
    /// cut back to it).
    Object(usize),
    Array,
}

impl<'a> Walker<'a> {
    fn space(&mut self) {
        while self.raw.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.space();
        if self.raw.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", byte as char, self.at))
        }
    }

    /// The whole value at `at`, with an explicit stack of the open objects and
    /// arrays: the depth of the input never becomes the depth of the call stack.
    fn walk(&mut self, visit: &mut dyn FnMut(StringValue<'_>)) -> Result<(), String> {
        let mut open: Vec<Open> = Vec::new();
        let mut value_next = true;
        loop {
            if value_next {
                self.space();
                match self.raw.get(self.at) {
                    Some(&bracket @ (b'{' | b'[')) => {
                        self.at += 1;
                        self.space();
                        let close = if bracket == b'{' { b'}' } else { b']' };
                        if self.raw.get(self.at) == Some(&close) {
                            self.at += 1;
                        } else {
                            if open.len() >= MAX_DEPTH {
                                return Err(format!(
                                    "nested deeper than {MAX_DEPTH} levels at byte {}",
                                    self.at
                                ));
                            }
                            if bracket == b'{' {
                                open.push(Open::Object(self.path.len()));
                                value_next = self.member(open.len())?;
                            } else {
                                open.push(Open::Array);
                            }
                            continue;
                        }
                    }
                    Some(b'"') => {
                        let start = self.at;
                        let text = self.string()?;
                        visit(StringValue { span: start..self.at, path: &self.path, text });
                    }
                    Some(_) => {
                        // A number or a literal: up to the next delimiter.
                        while self
                            .raw
                            .get(self.at)
                            .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                        {
                            self.at += 1;
                        }
                    }
                    None => return Err("unexpected end".to_string()),
                }
            }
            // A value has ended: what follows continues or closes its container.
            self.space();
            let next = self.raw.get(self.at).copied();
            match open.last() {
                None => return Ok(()),
                Some(&Open::Object(start)) => {
                    self.path.truncate(start);
                    match next {
                        Some(b',') => {
                            self.at += 1;
                            value_next = self.member(open.len())?;
                        }
                        Some(b'}') => {
                            self.at += 1;
                            open.pop();
                            value_next = false;
                        }
                        _ => return Err(format!("expected `,` or `}}` at byte {}", self.at)),
                    }
                }
                Some(Open::Array) => match next {
                    Some(b',') => {
                        self.at += 1;
                        value_next = true;
                    }
                    Some(b']') => {
                        self.at += 1;
                        open.pop();
                        value_next = false;
                    }
                    _ => return Err(format!("expected `,` or `]` at byte {}", self.at)),
                },
            }
        }
    }

    /// Reads the `"key":` of a member of the object at `depth` and extends the
    /// path with it. Whether its value is to be walked: a top-level field outside
    /// `roots` is stepped over here instead.
    fn member(&mut self, depth: usize) -> Result<bool, String> {
        self.space();
        let key = self.string()?;
        self.expect(b':')?;
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(&key);
        let wanted = depth > 1 || self.roots.is_none_or(|roots| roots.iter().any(|r| *r == key));
        if !wanted {
            self.skip()?;
        }
        Ok(wanted)
    }

    /// Steps over the value at `at` without visiting it.
    fn skip(&mut self) -> Result<(), String> {
        self.at = synaptic_plugin_sdk::field::value_end(self.raw, self.at)
            .ok_or_else(|| format!("expected a JSON value at byte {}", self.at))?;
        Ok(())
    }

    /// A quoted string at `at`; borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        if self.raw.get(self.at) != Some(&b'"') {
            return Err(format!("expected a string at byte {}", self.at));
        }
        let start = self.at + 1;
        let (end, escaped) = synaptic_plugin_sdk::field::string_end(self.raw, start)
            .ok_or_else(|| format!("unterminated string at byte {}", self.at))?;
        self.at = end + 1;
        if escaped {
            let quoted = &self.raw[start - 1..=end];
            serde_json::from_slice::<String>(quoted).map(Cow::Owned).map_err(|e| e.to_string())
        } else {
            // Both ends are at quotes, which are ASCII: character boundaries.
            self.text.get(start..end).map(Cow::Borrowed).ok_or_else(|| "string is not UTF-8".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strings;

    #[test]
    fn reports_strings_with_paths_and_spans() {
        let raw = br#"{"a":"x","b":{"c":["y",1,{"d":"z\n"}],"e":true,"f":null},"g":-1.5e3}"#;
        let mut seen = Vec::new();
        strings(raw, &mut |s| seen.push((s.path.to_string(), s.text.into_owned(), s.span))).expect("walks");
        let paths: Vec<(&str, &str)> = seen.iter().map(|(p, t, _)| (p.as_str(), t.as_str())).collect();
        assert_eq!(paths, [("a", "x"), ("b.c", "y"), ("b.c.d", "z\n")]);
        assert_eq!(&raw[seen[0].2.clone()], br#""x""#);
        assert!(strings(br#"{"a":"#, &mut |_| {}).is_err());
    }

    #[test]
    fn skipped_roots_and_empty_containers_keep_the_walk_in_step() {
        let raw = br#"{"skip":{"x":"no"},"data":{"e":{},"f":[],"g":[[],{"h":"yes"}]},"last":"no"}"#;
        let mut seen = Vec::new();
        let roots = ["data".to_string()];
        super::strings_under(raw, Some(&roots), &mut String::new(), &mut |s| {
            seen.push((s.path.to_string(), s.text.into_owned()))
        })
        .expect("walks");
        assert_eq!(seen, [("data.g.h".to_string(), "yes".to_string())]);
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let ok = format!("{}\"s\"{}", "[".repeat(super::MAX_DEPTH), "]".repeat(super::MAX_DEPTH));
        let mut n = 0;
        strings(ok.as_bytes(), &mut |_| n += 1).expect("at the limit");
        assert_eq!(n, 1);
        for depth in [super::MAX_DEPTH + 1, 100_000] {
            let deep = format!("{}\"s\"{}", "[".repeat(depth), "]".repeat(depth));
            let err = strings(deep.as_bytes(), &mut |_| {}).expect_err("too deep");
            assert!(err.contains("nested deeper than 64 levels"), "{err}");
        }
    }

    #[test]
    fn lone_surrogates_and_broken_escapes_are_errors() {
        for raw in [&br#"{"a":"\ud800","b":"x@example.com"}"#[..], br#"{"a":"\udc00x"}"#, br#"{"a":"\q"}"#] {
            assert!(strings(raw, &mut |_| {}).is_err(), "{}", String::from_utf8_lossy(raw));
        }
    }
}
