//! Reading fields of an event's bytes without building its document: one forward
//! scan that steps over every value off the wanted paths (strings by their quotes,
//! containers by their brackets) and copies only what it finds. The host validated
//! the JSON, so the scan checks structure only as far as it walks; bytes that are
//! not JSON make it give up (`None` / `false`), never panic.

use std::borrow::Cow;

/// The value at `path` (`["data", "agent_id"]`) as text, when it is a string or a
/// number; `None` when absent, of another type, or the bytes are not JSON.
pub fn find_text(raw: &[u8], path: &[&str]) -> Option<String> {
    find_str(raw, path).map(Cow::into_owned)
}

/// Like [`find_text`], borrowing from `raw` when the string has no escapes.
pub fn find_str<'a>(raw: &'a [u8], path: &[&str]) -> Option<Cow<'a, str>> {
    let mut out = [None];
    if !find_many(raw, &[path], &mut out) {
        return None;
    }
    match out[0].take()? {
        Scalar::Text(text) => Some(text),
        Scalar::Bool(_) => None,
        number => Some(Cow::Owned(number.text().into_owned())),
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
/// or array, null, or beyond [`MAX_PATHS`]). When a key repeats, the last one wins.
/// False when the bytes are not JSON.
pub fn find_many<'a, P, S>(raw: &'a [u8], paths: &[P], out: &mut [Option<Scalar<'a>>]) -> bool
where
    P: AsRef<[S]>,
    S: AsRef<str>,
{
    out.iter_mut().for_each(|slot| *slot = None);
    let n = paths.len().min(out.len()).min(MAX_PATHS);
    let active = if n == MAX_PATHS { u64::MAX } else { (1u64 << n) - 1 };
    let mut scan = Scan { raw, at: 0 };
    scan.space();
    let found = if scan.peek() == Some(b'{') { scan.object(paths, 0, active, out) } else { scan.value() };
    found.is_some()
}

/// Whether the top-level object of `raw` has a key for which `wanted` is true.
/// Values are stepped over, not read; the walk stops at the first such key.
/// `None` when the bytes are not a JSON object.
pub fn any_top_level_key(raw: &[u8], mut wanted: impl FnMut(&[u8]) -> bool) -> Option<bool> {
    let mut scan = Scan { raw, at: 0 };
    scan.space();
    if scan.peek()? != b'{' {
        return None;
    }
    let mut found = false;
    let walked = scan.entries(|cursor, key| {
        if wanted(key) {
            found = true;
            // Stop the walk: the answer is known.
            return None;
        }
        cursor.value()
    });
    if found {
        return Some(true);
    }
    walked.map(|()| false)
}

/// The scalar whose JSON starts at `at` (after any whitespace), as [`Finder`]
/// reads it: `None` for null, an object or an array, and for bytes that are not a
/// JSON value there.
pub fn scalar_at(raw: &[u8], at: usize) -> Option<Scalar<'_>> {
    Scan { raw, at }.scalar().flatten()
}

/// Where the JSON value starting at `at` (after any whitespace) ends: the index
/// just past it. `None` when the bytes there are not a JSON value.
pub fn value_end(raw: &[u8], at: usize) -> Option<usize> {
    let mut scan = Scan { raw, at };
    scan.value()?;
    Some(scan.at)
}

/// For a string whose contents start at `start` (just after its opening quote):
/// the index of its closing quote, and whether it has escapes. `None` when it is
/// not closed.
pub fn string_end(raw: &[u8], start: usize) -> Option<(usize, bool)> {
    // Most keys and values are short: test 8 bytes at a time for a quote or a
    // backslash (the has-zero-byte trick; its lowest hit is exact) before paying
    // for a vectorized search's setup.
    let mut at = start;
    while at + 8 <= raw.len() && at < start + 32 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&raw[at..at + 8]);
        let word = u64::from_le_bytes(word);
        let hits = zero_bytes(word ^ QUOTES) | zero_bytes(word ^ BACKSLASHES);
        if hits != 0 {
            let hit = at + (hits.trailing_zeros() / 8) as usize;
            if raw[hit] == b'"' {
                return Some((hit, false));
            }
            break;
        }
        at += 8;
    }
    let mut end = start;
    let mut escaped = false;
    loop {
        end += memchr::memchr2(b'"', b'\\', raw.get(end..)?)?;
        if raw[end] == b'"' {
            return Some((end, escaped));
        }
        escaped = true;
        end += 2;
    }
}

/// A set of dotted paths compiled once and looked up in one pass per event, like
/// [`find_many`]. The wanted keys of each object level sit in a small table
/// compared by length first, so a key that is not wanted costs an integer
/// comparison or two instead of a byte comparison per path: the difference shows
/// when the same paths are read from every event of a stream.
#[derive(Debug, Clone, Default)]
pub struct Finder {
    paths: Vec<Vec<String>>,
    levels: Vec<Level>,
}

#[derive(Debug, Clone, Default)]
struct Level {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    key: Box<[u8]>,
    /// Paths (as bits of their index) that end at this key.
    slots: u64,
    /// The level of the keys under this one, when some path goes deeper.
    child: Option<u32>,
}

impl Finder {
    /// Compiles the paths (at most [`MAX_PATHS`]; more are ignored).
    pub fn new<P, S>(paths: &[P]) -> Finder
    where
        P: AsRef<[S]>,
        S: AsRef<str>,
    {
        let paths: Vec<Vec<String>> = paths
            .iter()
            .take(MAX_PATHS)
            .map(|p| p.as_ref().iter().map(|s| s.as_ref().to_string()).collect())
            .collect();
        let mut levels = vec![Level::default()];
        for (i, path) in paths.iter().enumerate() {
            let mut level = 0usize;
            for (depth, key) in path.iter().enumerate() {
                let last = depth + 1 == path.len();
                let position = levels[level].entries.iter().position(|e| e.key.as_ref() == key.as_bytes());
                let at = match position {
                    Some(at) => at,
                    None => {
                        let entry = Entry { key: key.as_bytes().into(), slots: 0, child: None };
                        levels[level].entries.push(entry);
                        levels[level].entries.len() - 1
                    }
                };
                if last {
                    levels[level].entries[at].slots |= 1 << i;
                } else {
                    let child = match levels[level].entries[at].child {
                        Some(child) => child as usize,
                        None => {
                            levels.push(Level::default());
                            let child = levels.len() - 1;
                            levels[level].entries[at].child = Some(child as u32);
                            child
                        }
                    };
                    level = child;
                }
            }
        }
        Finder { paths, levels }
    }

    /// The paths, in the order of `out`'s slots.
    pub fn paths(&self) -> &[Vec<String>] {
        &self.paths
    }

    /// Fills `out[i]` with the scalar at path `i` (`None` when absent, not a scalar,
    /// or null). When a key repeats, the last one wins. False when the bytes are not
    /// JSON.
    pub fn find<'a>(&self, raw: &'a [u8], out: &mut [Option<Scalar<'a>>]) -> bool {
        out.iter_mut().for_each(|slot| *slot = None);
        let mut scan = Scan { raw, at: 0 };
        scan.space();
        let found = if scan.peek() == Some(b'{') { scan.object_in(self, 0, out) } else { scan.value() };
        found.is_some()
    }
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const QUOTES: u64 = LOW_BITS * b'"' as u64;
const BACKSLASHES: u64 = LOW_BITS * b'\\' as u64;

/// The high bit of each zero byte of `word` (exact for the lowest zero byte).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS
}

/// A cursor over JSON bytes. Every method returns `None` on bytes that are not JSON.
struct Scan<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.raw.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The string at the cursor without its quotes, and whether it has escapes.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let (end, escaped) = string_end(self.raw, start)?;
        self.at = end + 1;
        Some((&self.raw[start..end], escaped))
    }

    /// Steps over the value at the cursor.
    fn value(&mut self) -> Option<()> {
        self.space();
        match self.peek()? {
            b'"' => self.string().map(drop),
            open @ (b'{' | b'[') => {
                // Inside well-formed JSON the other kind of bracket is balanced on its
                // own, so only this kind and the quotes need finding.
                let close = if open == b'{' { b'}' } else { b']' };
                let mut depth = 0usize;
                loop {
                    self.at += memchr::memchr3(b'"', open, close, self.raw.get(self.at..)?)?;
                    match self.raw[self.at] {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b if b == open => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                    }
                    self.at += 1;
                }
            }
            _ => self.literal().map(drop),
        }
    }

    /// A number, `true`, `false` or `null`: up to the next delimiter.
    fn literal(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        while self.peek().is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.raw[start..self.at])
    }

    /// The scalar at the cursor; `Ok(None)` for null, objects and arrays.
    fn scalar(&mut self) -> Option<Option<Scalar<'a>>> {
        self.space();
        match self.peek()? {
            b'"' => {
                let (bytes, escaped) = self.string()?;
                Some(Some(Scalar::Text(text(bytes, escaped)?)))
            }
            b'{' | b'[' => self.value().map(|()| None),
            _ => {
                let bytes = self.literal()?;
                if let Some(n) = small_integer(bytes) {
                    return Some(Some(Scalar::Int(n)));
                }
                let literal = std::str::from_utf8(bytes).ok()?;
                Some(match literal {
                    "true" => Some(Scalar::Bool(true)),
                    "false" => Some(Scalar::Bool(false)),
                    "null" => None,
                    number if number.contains(['.', 'e', 'E']) => Some(Scalar::Float(number.parse().ok()?)),
                    number => Some(match number.parse::<i64>() {
                        Ok(n) => Scalar::Int(n),
                        Err(_) => Scalar::Float(number.parse().ok()?),
                    }),
                })
            }
        }
    }

    /// Walks the object at the cursor: for each entry, `on_entry` gets the key
    /// (decoded only if it has escapes) with the cursor at the value, and must
    /// consume the value. Both field walks below share it.
    fn entries(&mut self, mut on_entry: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.space();
            let (key, escaped) = self.string()?;
            // Keys are compared as bytes; only one with escapes is decoded first.
            let decoded;
            let key: &[u8] = if escaped {
                decoded = text(key, true)?;
                decoded.as_bytes()
            } else {
                key
            };
            self.eat(b':')?;
            self.space();
            on_entry(self, key)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Walks the object at the cursor with the keys of `finder`'s `level`.
    fn object_in(&mut self, finder: &Finder, level: usize, out: &mut [Option<Scalar<'a>>]) -> Option<()> {
        let entries = &finder.levels.get(level)?.entries;
        self.entries(|cursor, key| {
            let entry = entries.iter().find(|e| e.key.len() == key.len() && e.key.as_ref() == key);
            match entry {
                Some(Entry { child: Some(child), .. }) if cursor.peek()? == b'{' => {
                    cursor.object_in(finder, *child as usize, out)
                }
                Some(Entry { slots, .. }) if *slots != 0 => {
                    let value = cursor.scalar()?;
                    // Usually one path ends here: visit the set bits only.
                    let mut bits = *slots;
                    while bits != 0 {
                        let i = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        if let Some(slot) = out.get_mut(i) {
                            if bits == 0 {
                                *slot = value;
                                break;
                            }
                            slot.clone_from(&value);
                        }
                    }
                    Some(())
                }
                _ => cursor.value(),
            }
        })
    }

    /// Walks the object at the cursor, filling `out` for the `active` paths, which
    /// agree with the keys walked so far up to `depth`.
    fn object<P, S>(
        &mut self,
        paths: &[P],
        depth: usize,
        active: u64,
        out: &mut [Option<Scalar<'a>>],
    ) -> Option<()>
    where
        P: AsRef<[S]>,
        S: AsRef<str>,
    {
        self.entries(|cursor, key| {
            let (mut here, mut deeper) = (0u64, 0u64);
            for (i, path) in paths.iter().enumerate().take(MAX_PATHS) {
                let path = path.as_ref();
                if active & (1 << i) != 0 && path.get(depth).is_some_and(|p| p.as_ref().as_bytes() == key) {
                    if path.len() == depth + 1 {
                        here |= 1 << i;
                    } else {
                        deeper |= 1 << i;
                    }
                }
            }
            if deeper != 0 && cursor.peek()? == b'{' {
                cursor.object(paths, depth + 1, deeper, out)
            } else if here != 0 {
                let value = cursor.scalar()?;
                for (i, slot) in out.iter_mut().enumerate().take(MAX_PATHS) {
                    if here & (1 << i) != 0 {
                        slot.clone_from(&value);
                    }
                }
                Some(())
            } else {
                cursor.value()
            }
        })
    }
}

/// An integer of up to 18 digits (an optional minus sign first), read without the
/// general number parser: counts and sizes are most of what fields hold.
fn small_integer(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 18 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some(if negative { -n } else { n })
}

/// A string's text: borrowed when it has no escapes, decoded when it has.
fn text(bytes: &[u8], escaped: bool) -> Option<Cow<'_, str>> {
    if !escaped {
        return std::str::from_utf8(bytes).ok().map(Cow::Borrowed);
    }
    let mut quoted = Vec::with_capacity(bytes.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(bytes);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_top_level_key_steps_over_values_and_stops_at_the_first_hit() {
        let raw = br#"{"a":{"x":1,"y":"}"},"b":[1,{"c":2}],"d":"e"}"#;
        assert_eq!(super::any_top_level_key(raw, |k| k == b"d"), Some(true));
        assert_eq!(
            super::any_top_level_key(raw, |k| k == b"x" || k == b"c"),
            Some(false),
            "nested keys are not top-level"
        );
        assert_eq!(
            super::any_top_level_key(br#"{"a\u0062":1}"#, |k| k == b"ab"),
            Some(true),
            "escaped keys decoded"
        );
        assert_eq!(super::any_top_level_key(b"[1]", |_| true), None);
        assert_eq!(super::any_top_level_key(br#"{"a":"#, |_| false), None);
        assert_eq!(super::any_top_level_key(b"{}", |_| true), Some(false));
    }

    use super::{find_str, find_text};
    use std::borrow::Cow;

    #[test]
    fn string_ends_are_found_wherever_the_quote_or_escape_falls() {
        use super::string_end;
        // The reference: the first quote not escaped, and whether any escape came first.
        fn reference(raw: &[u8], start: usize) -> Option<(usize, bool)> {
            let (mut i, mut escaped) = (start, false);
            while i < raw.len() {
                match raw[i] {
                    b'"' => return Some((i, escaped)),
                    b'\\' => {
                        escaped = true;
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
            None
        }
        for len in 0..48 {
            for special in [None, Some(b'\\')] {
                for at in 0..len.max(1) {
                    let mut raw: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if let Some(byte) = special {
                        if at + 1 < len {
                            raw[at] = byte;
                        }
                    }
                    raw.push(b'"');
                    raw.extend_from_slice(b",\"x\":1}");
                    for start in [0, 1.min(len)] {
                        assert_eq!(
                            string_end(&raw, start),
                            reference(&raw, start),
                            "len {len} at {at} start {start}"
                        );
                    }
                    let unterminated = &raw[..len];
                    assert_eq!(string_end(unterminated, 0), reference(unterminated, 0), "unterminated {len}");
                }
            }
        }
    }

    #[test]
    fn integers_take_the_short_path_and_agree_with_the_parser() {
        use super::small_integer;
        for text in ["0", "7", "-7", "123456789012345678", "-123456789012345678"] {
            assert_eq!(small_integer(text.as_bytes()), text.parse().ok(), "{text}");
        }
        for text in ["", "-", "01", "1.5", "1e3", "1234567890123456789", "12a", "--1"] {
            assert_eq!(small_integer(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn a_finder_reads_what_find_many_reads() {
        use super::{find_many, Finder, Scalar};
        let raw =
            br#"{"a":1,"data":{"n":42,"o":{"x":1,"y":"z"},"n":43,"s":"a\"b","\u0074":true},"o":{"x":2}}"#;
        let paths: [&[&str]; 8] = [
            &["a"],
            &["data", "n"],
            &["data", "o", "x"],
            &["data", "o", "y"],
            &["data", "s"],
            &["data", "t"],
            &["data", "o"],
            &["nope", "x"],
        ];
        let finder = Finder::new(&paths);
        let mut fast = vec![None; paths.len()];
        let mut slow = vec![None; paths.len()];
        assert!(finder.find(raw, &mut fast));
        assert!(find_many(raw, &paths, &mut slow));
        assert_eq!(fast, slow);
        assert_eq!(fast[1], Some(Scalar::Int(43)), "the last of a repeated key wins");
        assert_eq!(fast[2], Some(Scalar::Int(1)));
        assert_eq!(fast[5], Some(Scalar::Bool(true)), "an escaped key is decoded");
        assert_eq!(fast[6], None, "an object is not a scalar");
        assert!(!finder.find(b"{\"a\":", &mut fast));
    }

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
    fn steps_over_tricky_values() {
        use super::{find_many, Scalar};
        let raw = br#" { "a" : [ "]}", {"b":"\\\""} , [[]] ] , "d" : { "e" : 1e3 , "e" : -7 } , "s" : "x" , "f" : "no" } "#;
        let paths: [&[&str]; 4] = [&["d", "e"], &["s"], &["a", "b"], &["s", "deeper"]];
        let mut out = vec![None; paths.len()];
        assert!(find_many(raw, &paths, &mut out));
        assert_eq!(out[0], Some(Scalar::Int(-7)), "the last of repeated keys wins");
        assert_eq!(out[1], Some(Scalar::Text(Cow::Borrowed("x"))));
        assert_eq!(out[2], None, "arrays are not walked into");
        assert_eq!(out[3], None);
        for broken in [&b"{\"a\":"[..], b"{\"a\" 1}", b"{\"a\":\"x", b"[", b"{\"a\":[1,2}"] {
            assert!(!find_many(broken, &paths, &mut out) || out.iter().all(Option::is_none), "{broken:?}");
        }
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
