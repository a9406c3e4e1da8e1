//! The text the detectors read: a value hidden by an encoding is found in its
//! decoded form, while the redaction applies to the text as written.
//!
//! [`View::of`] decodes, in one pass: percent-encoding (`jane%40example.com`, and
//! doubly encoded `%2540`), HTML character references (`&#64;`, `&#x40;`,
//! `&commat;`, and `&amp;#64;`), backslash escapes left in text by encoders that
//! ran twice (`\u0040`, `\x40`, `\u{40}`, `\/`), `[at]`/`(dot)`/`{at}`
//! obfuscation, and maps look-alike characters to ASCII: invisible characters
//! (zero-width, soft hyphen, BOM) are removed, the other spaces (no-break, narrow,
//! thin) become a space, Unicode dashes a `-`, full-width forms their ASCII
//! letters. Within a token that holds an `@`, any other non-ASCII letter or digit
//! reads as `a`, so that internationalised addresses match the ASCII patterns.
//!
//! Each byte of the view remembers where the character it came from starts in
//! the original, so a finding in the view maps back to the original bytes that
//! spell it, encoded or not: nothing of the value survives.

use std::borrow::Cow;

/// The decoded text and, for each of its bytes, where its source starts in the
/// original; `origin[text.len()]` is the original's length.
pub struct View<'a> {
    pub text: Cow<'a, str>,
    origin: Vec<u32>,
}

impl<'a> View<'a> {
    /// The view of `original`: borrowed as it is when nothing in it decodes.
    pub fn of(original: &'a str) -> View<'a> {
        // Offsets are kept in 32 bits; events are far smaller (the host caps them).
        if original.len() >= u32::MAX as usize || !needs_decoding(original.as_bytes()) {
            return View { text: Cow::Borrowed(original), origin: Vec::new() };
        }
        let mut builder = Builder {
            text: String::with_capacity(original.len()),
            origin: Vec::with_capacity(original.len() + 1),
        };
        decode(original, &mut builder);
        let Builder { mut text, mut origin } = builder;
        if text.contains('@') && !text.is_ascii() {
            (text, origin) = ascii_letters_near_at(&text, &origin);
        }
        if text == original {
            return View { text: Cow::Borrowed(original), origin: Vec::new() };
        }
        origin.push(original.len() as u32);
        View { text: Cow::Owned(text), origin }
    }

    /// Whether the view differs from the original (offsets need mapping).
    pub fn is_decoded(&self) -> bool {
        !self.origin.is_empty()
    }

    /// The original bytes a range of the view (on character boundaries) came from.
    pub fn original(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        if self.origin.is_empty() {
            return range;
        }
        let at = |i: usize| self.origin[i.min(self.origin.len() - 1)] as usize;
        at(range.start)..at(range.end)
    }

    /// Where a position of the view (a character boundary) is in the original.
    pub fn original_at(&self, at: usize) -> usize {
        self.original(at..at).start
    }
}

/// Whether any byte can start something [`decode`] changes: most text has none,
/// and then the view is the text itself, at the cost of this one pass.
fn needs_decoding(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'%' => bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
        b'&' => bytes.get(i + 1).is_some_and(|&c| c == b'#' || c.is_ascii_alphabetic()),
        b'\\' => bytes.get(i + 1).is_some_and(|&c| matches!(c, b'u' | b'x' | b'/' | b'@' | b'.' | b'"')),
        b'[' | b'(' | b'{' | b'<' => obfuscation(&bytes[i..]).is_some(),
        0x80.. => true,
        _ => false,
    })
}

struct Builder {
    text: String,
    origin: Vec<u32>,
}

impl Builder {
    /// Appends the character that the original's bytes from `source` spell,
    /// after mapping look-alikes; removed characters append nothing.
    fn push(&mut self, c: char, source: usize) {
        let Some(c) = fold(c) else { return };
        self.text.push(c);
        let width = c.len_utf8();
        self.origin.extend(std::iter::repeat_n(source as u32, width));
    }
}

/// Look-alike characters mapped to what they look like; `None` for invisible ones.
fn fold(c: char) -> Option<char> {
    Some(match c {
        '\u{00AD}'
        | '\u{034F}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}' => return None,
        '\u{00A0}' | '\u{1680}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => ' ',
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => '-',
        '\u{FE6B}' => '@',
        '\u{2024}' | '\u{3002}' | '\u{FF61}' => '.',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    })
}

/// Decodes `original` into `out`, one source unit at a time; each unit is at
/// least one byte, so this ends after at most `original.len()` units.
fn decode(original: &str, out: &mut Builder) {
    let bytes = original.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let decoded = match bytes[at] {
            b'%' => percent(bytes, at),
            b'&' => entity(original, at),
            b'\\' => backslash(original, at),
            b'[' | b'(' | b'{' | b'<' => obfuscation(&bytes[at..]).map(|(c, len)| {
                // `jane [at] example`: the spaces around belong to the token.
                let mut start = at;
                while out.text.ends_with(' ') && start > 0 && bytes[start - 1] == b' ' {
                    out.text.pop();
                    out.origin.pop();
                    start -= 1;
                }
                let mut end = at + len;
                while bytes.get(end) == Some(&b' ') {
                    end += 1;
                }
                out.push(c, start);
                (None, end - at)
            }),
            _ => None,
        };
        match decoded {
            Some((Some(c), len)) => {
                out.push(c, at);
                at += len;
            }
            Some((None, len)) => at += len,
            None => {
                let c = original[at..].chars().next().unwrap_or('\u{FFFD}');
                out.push(c, at);
                at += c.len_utf8();
            }
        }
    }
}

/// The (character, source length) a unit decodes to; `None` when it is literal.
type Unit = Option<(Option<char>, usize)>;

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn hex_byte(bytes: &[u8], at: usize) -> Option<u8> {
    let (hi, lo) = (hex_value(*bytes.get(at)?)?, hex_value(*bytes.get(at + 1)?)?);
    Some((hi * 16 + lo) as u8)
}

/// `%40`, `%2540` (encoded twice), and `%C3%A9` (a UTF-8 sequence).
fn percent(bytes: &[u8], at: usize) -> Unit {
    let mut len = 3;
    let mut first = hex_byte(bytes, at + 1)?;
    if first == b'%' && bytes.get(at + 3).is_some_and(u8::is_ascii_hexdigit) {
        if let Some(inner) = hex_byte(bytes, at + 3) {
            first = inner;
            len = 5;
        }
    }
    if first < 0x80 {
        return Some((Some(first as char), len));
    }
    let width = match first {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let mut utf8 = [first, 0, 0, 0];
    for slot in utf8.iter_mut().take(width).skip(1) {
        if bytes.get(at + len) != Some(&b'%') {
            return None;
        }
        *slot = hex_byte(bytes, at + len + 1)?;
        len += 3;
    }
    let c = std::str::from_utf8(&utf8[..width]).ok()?.chars().next()?;
    Some((Some(c), len))
}

/// Named references that spell PII punctuation or hide it; the numeric forms
/// cover every other character.
const ENTITIES: &[(&str, char)] = &[
    ("amp", '&'),
    ("commat", '@'),
    ("period", '.'),
    ("dot", '.'),
    ("colon", ':'),
    ("sol", '/'),
    ("plus", '+'),
    ("hyphen", '-'),
    ("dash", '-'),
    ("minus", '-'),
    ("lowbar", '_'),
    ("num", '#'),
    ("quot", '"'),
    ("apos", '\''),
    ("lt", '<'),
    ("gt", '>'),
    ("nbsp", ' '),
    ("shy", '\u{AD}'),
    ("lpar", '('),
    ("rpar", ')'),
    ("equals", '='),
    ("percnt", '%'),
];

/// `&#64;`, `&#x40;` (the `;` optional, as browsers read it), `&commat;`; and one
/// more level when the first decodes to `&` (`&amp;#64;`).
fn entity(text: &str, at: usize) -> Unit {
    let (c, len) = one_entity(text, at)?;
    if c == '&' {
        if let Some((inner, inner_len)) =
            one_entity(text, at + len - 1).filter(|_| text[at..].starts_with("&amp;"))
        {
            // `&amp;` then `#64;`: the inner reference starts at its `#`, read as
            // if its `&` were the one `&amp;` decoded to.
            return Some((Some(inner), len - 1 + inner_len));
        }
    }
    Some((Some(c), len))
}

fn one_entity(text: &str, at: usize) -> Option<(char, usize)> {
    let rest = text.get(at + 1..)?;
    let rest_bytes = rest.as_bytes();
    if let Some(number) = rest.strip_prefix('#') {
        let (radix, digits_at) = match number.as_bytes().first() {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits =
            rest_bytes[digits_at..].iter().take(8).take_while(|b| (**b as char).is_digit(radix)).count();
        if digits == 0 {
            return None;
        }
        let code = u32::from_str_radix(&rest[digits_at..digits_at + digits], radix).ok()?;
        let c = char::from_u32(code)?;
        let semicolon = usize::from(rest_bytes.get(digits_at + digits) == Some(&b';'));
        return Some((c, 1 + digits_at + digits + semicolon));
    }
    let name_len = rest_bytes.iter().take(8).take_while(|b| b.is_ascii_alphabetic()).count();
    if rest_bytes.get(name_len) != Some(&b';') {
        return None;
    }
    let name = &rest[..name_len];
    let (_, c) = ENTITIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    Some((*c, 1 + name_len + 1))
}

/// `\u0040` (and a surrogate pair), `\u{40}`, `\x40`, and `\/`, `\@`, `\.`, `\"`.
fn backslash(text: &str, at: usize) -> Unit {
    let bytes = text.as_bytes();
    match *bytes.get(at + 1)? {
        b'/' => Some((Some('/'), 2)),
        b'@' => Some((Some('@'), 2)),
        b'.' => Some((Some('.'), 2)),
        b'"' => Some((Some('"'), 2)),
        b'x' => Some((Some(hex_byte(bytes, at + 2).filter(|b| *b < 0x80)? as char), 4)),
        b'u' if bytes.get(at + 2) == Some(&b'{') => {
            let digits = bytes[at + 3..].iter().take(6).take_while(|b| b.is_ascii_hexdigit()).count();
            if digits == 0 || bytes.get(at + 3 + digits) != Some(&b'}') {
                return None;
            }
            let code = u32::from_str_radix(&text[at + 3..at + 3 + digits], 16).ok()?;
            Some((Some(char::from_u32(code)?), 4 + digits))
        }
        b'u' => {
            let unit = u16::from_str_radix(text.get(at + 2..at + 6)?, 16).ok()?;
            if (0xD800..0xDC00).contains(&unit) {
                let low = text.get(at + 6..at + 12).filter(|s| s.starts_with("\\u"))?;
                let low = u16::from_str_radix(&low[2..], 16).ok().filter(|l| (0xDC00..0xE000).contains(l))?;
                let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                return Some((Some(char::from_u32(code)?), 12));
            }
            Some((Some(char::from_u32(u32::from(unit))?), 6))
        }
        _ => None,
    }
}

/// `[at]`, `(at)`, `{at}`, `<at>`, `[dot]`… with spaces inside allowed, in any
/// case: the character meant and the bytes spelling it.
fn obfuscation(bytes: &[u8]) -> Option<(char, usize)> {
    let close = match bytes.first()? {
        b'[' => b']',
        b'(' => b')',
        b'{' => b'}',
        b'<' => b'>',
        _ => return None,
    };
    let mut at = 1;
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    let word_len = bytes[at..].iter().take(4).take_while(|b| b.is_ascii_alphabetic()).count();
    let word = &bytes[at..at + word_len];
    let c = if word.eq_ignore_ascii_case(b"at") {
        '@'
    } else if word.eq_ignore_ascii_case(b"dot") {
        '.'
    } else {
        return None;
    };
    at += word_len;
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    (bytes.get(at) == Some(&close)).then_some((c, at + 1))
}

/// Characters that end a token for the address mapping below.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ',' | ';' | '(' | ')' | '[' | ']' | '/' | '\\')
}

/// `text` with every non-ASCII letter or digit of a token holding an `@` read
/// as `a`: internationalised local parts and domains (`josé@bücher.de`) then
/// match the ASCII address pattern. Other tokens keep their letters, so digits
/// next to, say, Japanese text still start at a word boundary.
fn ascii_letters_near_at(text: &str, origin: &[u32]) -> (String, Vec<u32>) {
    let mut out = String::with_capacity(text.len());
    let mut out_origin = Vec::with_capacity(origin.len());
    let mut token_start = 0;
    let flush = |token: &str, start: usize, out: &mut String, out_origin: &mut Vec<u32>| {
        let has_at = token.contains('@');
        for (i, c) in token.char_indices() {
            let c = if has_at && !c.is_ascii() && c.is_alphanumeric() { 'a' } else { c };
            out.push(c);
            out_origin.resize(out.len(), origin[start + i]);
        }
    };
    for (i, c) in text.char_indices() {
        if ends_token(c) {
            flush(&text[token_start..i], token_start, &mut out, &mut out_origin);
            out.push(c);
            out_origin.resize(out.len(), origin[i]);
            token_start = i + c.len_utf8();
        }
    }
    flush(&text[token_start..], token_start, &mut out, &mut out_origin);
    (out, out_origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(s: &str) -> String {
        View::of(s).text.into_owned()
    }

    #[test]
    fn decodes_each_encoding() {
        assert_eq!(decoded("q=jane%40example.com&x=1"), "q=jane@example.com&x=1");
        assert_eq!(decoded("jane%2540example.com"), "jane@example.com");
        assert_eq!(decoded("caf%C3%A9 100%"), "café 100%");
        assert_eq!(decoded("jane&#64;example&#x2E;com &commat; &amp;#64;"), "jane@example.com @ @");
        assert_eq!(decoded(r"jane\u0040example.com \x40 \u{40} a\/b"), "jane@example.com @ @ a/b");
        assert_eq!(decoded("jane [at] example (dot) com {AT} x"), "jane@example.com@x");
        assert_eq!(decoded("41\u{200B}11\u{00AD}1\u{00A0}2\u{2013}3\u{FF13}"), "41111 2-33");
    }

    #[test]
    fn maps_findings_back_to_the_bytes_as_written() {
        let original = "mail jane%40example.com now";
        let view = View::of(original);
        let found = view.text.find("jane@example.com").expect("decoded");
        let range = view.original(found..found + "jane@example.com".len());
        assert_eq!(&original[range], "jane%40example.com");
        let original = "x jöse@bücher.de y";
        let view = View::of(original);
        assert_eq!(view.text, "x jaase@baacher.de y".replace("aa", "a"));
        let range = view.original(2..view.text.len() - 2);
        assert_eq!(&original[range], "jöse@bücher.de");
    }

    #[test]
    fn leaves_text_without_encodings_borrowed() {
        for s in ["plain text 100% done", "a & b", "(at least) [dotted]", "C:\\Windows"] {
            assert!(!View::of(s).is_decoded(), "{s}");
        }
    }

    #[test]
    fn never_panics_on_cut_sequences() {
        for s in [
            "%",
            "%4",
            "%C3",
            "%C3%",
            "%F0%9F%98",
            "&#",
            "&#x",
            "&#99999999;",
            "\\u",
            "\\uD800",
            "\\u{",
            "[at",
        ] {
            let _ = View::of(s);
        }
    }
}
