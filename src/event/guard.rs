//! The rules of [`super::json`] that skipping a value does not check, in one pass
//! over the bytes: UTF-8 everywhere, paired surrogate escapes, finite numbers, at
//! most [`MAX_DEPTH`] levels, and no key twice in an object. The syntax itself is
//! left to serde_json, which both validation paths run after this; this pass only
//! has to be at least as strict as the document builder on these rules, and never
//! fail to finish: it keeps no recursion and no state beyond one frame per level.
//!
//! Strings are stepped over 8 bytes at a time and with `memchr`, so the pass costs
//! a fraction of a parse.

use std::collections::HashSet;
use std::fmt;

use super::json::MAX_DEPTH;

/// Why an input breaks the rules, and where (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuardError {
    pub(crate) what: Problem,
    pub(crate) at: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    NotUtf8,
    UnpairedSurrogate,
    NumberOutOfRange,
    TooDeep,
    DuplicateKey(String),
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.what {
            Problem::NotUtf8 => write!(f, "not UTF-8"),
            Problem::UnpairedSurrogate => write!(f, "unpaired surrogate in a \\u escape"),
            Problem::NumberOutOfRange => write!(f, "number out of range"),
            Problem::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            Problem::DuplicateKey(key) => write!(f, "duplicate key {key:?}"),
        }?;
        write!(f, " at byte {}", self.at)
    }
}

/// Keys of an object compared in place; past this many, hashed.
const FEW_KEYS: usize = 16;

/// A key seen in an open object: a range of the input when it has no escapes,
/// else a range of the scratch's decoded keys.
#[derive(Clone, Copy)]
struct KeyRef {
    decoded: bool,
    start: u32,
    end: u32,
}

/// An open object or array.
#[derive(Clone, Copy)]
struct Frame {
    object: bool,
    /// Objects: where their keys start in `keys`.
    first_key: usize,
    /// Objects with many keys: their slot in `many`.
    hashed: Option<usize>,
}

/// Buffers kept from one event to the next on each thread, so a check allocates
/// nothing once warm.
#[derive(Default)]
struct Scratch {
    frames: Vec<Frame>,
    keys: Vec<KeyRef>,
    /// Keys that had escapes, decoded, back to back.
    decoded: Vec<u8>,
    /// Hashed keys of objects with many of them.
    many: Vec<HashSet<Vec<u8>>>,
}

impl Scratch {
    fn clear(&mut self) {
        self.frames.clear();
        self.keys.clear();
        self.decoded.clear();
        self.many.clear();
    }

    fn text<'s>(&'s self, raw: &'s [u8], key: KeyRef) -> &'s [u8] {
        let range = key.start as usize..key.end as usize;
        match key.decoded {
            false => &raw[range],
            true => &self.decoded[range],
        }
    }

    /// Adds a key to the innermost object; false when it already has it.
    fn insert_key(&mut self, raw: &[u8], key: KeyRef) -> bool {
        let Some(frame) = self.frames.last().copied() else { return true };
        if let Some(slot) = frame.hashed {
            let text = self.text(raw, key).to_vec();
            return self.many[slot].insert(text);
        }
        let text = self.text(raw, key);
        if self.keys[frame.first_key..].iter().any(|k| self.text(raw, *k) == text) {
            return false;
        }
        self.keys.push(key);
        if self.keys.len() - frame.first_key > FEW_KEYS {
            let set: HashSet<Vec<u8>> =
                self.keys[frame.first_key..].iter().map(|k| self.text(raw, *k).to_vec()).collect();
            self.keys.truncate(frame.first_key);
            self.many.push(set);
            if let Some(last) = self.frames.last_mut() {
                last.hashed = Some(self.many.len() - 1);
            }
        }
        true
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Checks `raw` against the rules; the first problem found, with its offset.
pub fn check(raw: &[u8]) -> Result<(), GuardError> {
    if let Err(e) = std::str::from_utf8(raw) {
        return Err(GuardError { what: Problem::NotUtf8, at: e.valid_up_to() });
    }
    // Offsets are kept as u32; larger inputs are refused by size long before.
    if raw.len() > u32::MAX as usize {
        return Ok(());
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            check_with(raw, &mut scratch)
        }
        Err(_) => check_with(raw, &mut Scratch::default()),
    })
}

fn check_with(raw: &[u8], scratch: &mut Scratch) -> Result<(), GuardError> {
    let fail = |what, at| Err(GuardError { what, at });
    // Inside an object, the next string is a key (after `{` or `,`).
    let mut key_next = false;
    let mut at = 0;
    while at < raw.len() {
        match raw[at] {
            b'"' => {
                let start = at + 1;
                let (end, escaped) = match synaptic_plugin_sdk::field::string_end(raw, start) {
                    Some(found) => found,
                    // Unterminated: a syntax error serde_json reports.
                    None => return Ok(()),
                };
                if escaped {
                    check_escapes(&raw[start..end]).map_err(|offset| GuardError {
                        what: Problem::UnpairedSurrogate,
                        at: start + offset,
                    })?;
                }
                if key_next {
                    key_next = false;
                    let key = match escaped {
                        false => KeyRef { decoded: false, start: start as u32, end: end as u32 },
                        true => match serde_json::from_slice::<String>(&raw[at..=end]) {
                            Ok(text) => {
                                let from = scratch.decoded.len() as u32;
                                scratch.decoded.extend_from_slice(text.as_bytes());
                                KeyRef { decoded: true, start: from, end: scratch.decoded.len() as u32 }
                            }
                            Err(_) => return Ok(()),
                        },
                    };
                    if !scratch.insert_key(raw, key) {
                        let name = String::from_utf8_lossy(scratch.text(raw, key)).into_owned();
                        return fail(Problem::DuplicateKey(name), at);
                    }
                }
                at = end + 1;
            }
            open @ (b'{' | b'[') => {
                if scratch.frames.len() >= MAX_DEPTH {
                    return fail(Problem::TooDeep, at);
                }
                let object = open == b'{';
                scratch.frames.push(Frame { object, first_key: scratch.keys.len(), hashed: None });
                key_next = object;
                at += 1;
            }
            b'}' | b']' => {
                if let Some(frame) = scratch.frames.pop() {
                    scratch.keys.truncate(frame.first_key);
                }
                key_next = false;
                at += 1;
            }
            b',' => {
                key_next = scratch.frames.last().is_some_and(|f| f.object);
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                // Digits before a `.` or an exponent: without an exponent, a number
                // leaves f64's range only with more than 308 of them.
                let (mut whole_digits, mut fraction, mut exponent) = (0usize, false, false);
                while let Some(&b) = raw.get(at) {
                    match b {
                        b'0'..=b'9' => whole_digits += usize::from(!fraction && !exponent),
                        b'.' => fraction = true,
                        b'+' | b'-' => {}
                        b'e' | b'E' => exponent = true,
                        _ => break,
                    }
                    at += 1;
                }
                // serde_json itself decides, so the limit is exactly its own.
                let token = &raw[start..at];
                if (exponent || whole_digits > 300)
                    && serde_json::from_slice::<serde_json::Number>(token).is_err()
                    && is_number_syntax(token)
                {
                    return fail(Problem::NumberOutOfRange, start);
                }
            }
            _ => at += 1,
        }
    }
    Ok(())
}

/// Whether `token` is a JSON number by its grammar, whatever its size.
fn is_number_syntax(token: &[u8]) -> bool {
    let mut s = token.strip_prefix(b"-").unwrap_or(token);
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = digits(s);
    if n == 0 || (n > 1 && s[0] == b'0') {
        return false;
    }
    s = &s[n..];
    if let Some(rest) = s.strip_prefix(b".") {
        let n = digits(rest);
        if n == 0 {
            return false;
        }
        s = &rest[n..];
    }
    if let Some(rest) = s.strip_prefix(b"e").or_else(|| s.strip_prefix(b"E")) {
        let rest = rest.strip_prefix(b"+").or_else(|| rest.strip_prefix(b"-")).unwrap_or(rest);
        let n = digits(rest);
        if n == 0 {
            return false;
        }
        s = &rest[n..];
    }
    s.is_empty()
}

/// Checks the `\u` escapes of a string's contents as serde_json does when it
/// reads a string: a high surrogate must be followed at once by a low one, and a
/// low one must not stand alone. The offset of an unpaired one.
fn check_escapes(text: &[u8]) -> Result<(), usize> {
    let hex = |at: usize| -> Option<u16> {
        let digits = text.get(at..at + 4)?;
        let digits = std::str::from_utf8(digits).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u16::from_str_radix(digits, 16).ok()
    };
    let mut at = 0;
    // `at` can step past the end over a broken escape: then there is nothing left.
    while let Some(found) = text.get(at..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        at += found;
        if text.get(at + 1) != Some(&b'u') {
            at += 2;
            continue;
        }
        match hex(at + 2) {
            Some(0xDC00..=0xDFFF) => return Err(at),
            Some(0xD800..=0xDBFF) => {
                let paired =
                    text.get(at + 6..at + 8) == Some(b"\\u") && matches!(hex(at + 8), Some(0xDC00..=0xDFFF));
                if !paired {
                    return Err(at);
                }
                at += 12;
            }
            // A bad escape is a syntax error serde_json reports.
            _ => at += 6,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(raw: &str) -> Option<Problem> {
        check(raw.as_bytes()).err().map(|e| e.what)
    }

    #[test]
    fn each_rule_is_found_inside_strings_numbers_and_containers() {
        assert_eq!(problem(r#"{"a":"\ud800"}"#), Some(Problem::UnpairedSurrogate));
        assert_eq!(problem(r#"{"a":"\udc00"}"#), Some(Problem::UnpairedSurrogate));
        assert_eq!(problem(r#"{"a":"\ud800\u0041"}"#), Some(Problem::UnpairedSurrogate));
        assert_eq!(problem(r#"{"a":"\ud83d\ude00 \\ud800"}"#), None, "a pair, and an escaped backslash");
        assert_eq!(problem(r#"{"a":[1e400]}"#), Some(Problem::NumberOutOfRange));
        assert_eq!(problem(r#"{"a":-1E+999}"#), Some(Problem::NumberOutOfRange));
        assert_eq!(problem(r#"{"a":1e-400,"b":1.7976931348623157e308}"#), None);
        assert_eq!(problem(&format!(r#"{{"a":{}}}"#, "9".repeat(400))), Some(Problem::NumberOutOfRange));
        assert_eq!(problem(r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#), None, "same key, other objects");
        assert_eq!(problem(r#"{"a":1,"b":2,"a":3}"#), Some(Problem::DuplicateKey("a".into())));
        assert_eq!(problem(r#"{"a":1,"\u0061":3}"#), Some(Problem::DuplicateKey("a".into())));
        assert_eq!(problem(r#"{"k":"a","x":"a"}"#), None, "values are not keys");
        let depth = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(problem(&depth(MAX_DEPTH)), None);
        assert_eq!(problem(&depth(MAX_DEPTH + 1)), Some(Problem::TooDeep));
        assert_eq!(check(b"{\"a\":\"\xff\"}").map_err(|e| e.what), Err(Problem::NotUtf8));
        let many: String = (0..100).map(|i| format!(r#""k{i}":{i},"#)).collect();
        assert_eq!(problem(&format!("{{{many}\"z\":0}}")), None);
        assert_eq!(problem(&format!("{{{many}\"k7\":0}}")), Some(Problem::DuplicateKey("k7".into())));
    }

    #[test]
    fn what_is_not_json_is_left_to_the_parser_without_a_panic() {
        for raw in [
            "",
            "\"",
            "{\"a",
            "{\"a\":\"\\u12",
            "]]]}}}",
            "-",
            "1e",
            "{,,,\"a\"\"a\"}",
            "\\u",
            "{\"\\ux\":1}",
        ] {
            let _ = check(raw.as_bytes());
        }
    }
}
