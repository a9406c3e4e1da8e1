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

/// Calls `visit` for every string value (not key) in `raw`. Errors on input that
/// is not JSON (the host validated it, so this is only a guard).
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
    let walked = walker.value(visit);
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

    fn value(&mut self, visit: &mut dyn FnMut(StringValue<'_>)) -> Result<(), String> {
        self.space();
        match self.raw.get(self.at) {
            Some(b'{') => self.object(visit),
            Some(b'[') => self.array(visit),
            Some(b'"') => {
                let start = self.at;
                let text = self.string()?;
                visit(StringValue { span: start..self.at, path: &self.path, text });
                Ok(())
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
                Ok(())
            }
            None => Err("unexpected end".to_string()),
        }
    }

    fn object(&mut self, visit: &mut dyn FnMut(StringValue<'_>)) -> Result<(), String> {
        self.at += 1;
        self.space();
        if self.raw.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.space();
            let key = self.string()?;
            self.expect(b':')?;
            let parent = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&key);
            let wanted = parent > 0 || self.roots.is_none_or(|roots| roots.iter().any(|r| *r == key));
            if wanted {
                self.value(visit)?;
            } else {
                self.skip()?;
            }
            self.path.truncate(parent);
            self.space();
            match self.raw.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(format!("expected `,` or `}}` at byte {}", self.at)),
            }
        }
    }

    fn array(&mut self, visit: &mut dyn FnMut(StringValue<'_>)) -> Result<(), String> {
        self.at += 1;
        self.space();
        if self.raw.get(self.at) == Some(&b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value(visit)?;
            self.space();
            match self.raw.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(format!("expected `,` or `]` at byte {}", self.at)),
            }
        }
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
}
