//! Phone numbers: the international form checked against the E.164 country
//! codes and each large numbering plan's lengths, and the national forms by the
//! shapes their plans write them in (France's pairs, Germany's and the UK's
//! trunk `0` and area code, Japan's dashes, India's 5-5 mobiles, Brazil's
//! `(11) 91234-5678`, North America's 3-3-4) — not any run of digit groups,
//! which lists of numbers, dates and versions also are.

use std::ops::Range;

/// Digits of a candidate, and the lengths of its groups of digits (split at any
/// separator or parenthesis).
struct Shape {
    digits: Vec<u8>,
    groups: Vec<usize>,
}

impl Shape {
    fn of(s: &str) -> Shape {
        let digits = s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
        let groups = s.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).map(str::len).collect();
        Shape { digits, groups }
    }

    fn number(&self, range: Range<usize>) -> u32 {
        self.digits[range].iter().fold(0, |acc, d| acc * 10 + u32::from(*d))
    }

    fn all_same(&self) -> bool {
        self.digits.windows(2).all(|w| w[0] == w[1])
    }

    /// `01-02-2026 10…` or `2026.11.30 …`: a date with something after it.
    fn has_date(&self, s: &str) -> bool {
        let groups: Vec<&str> = s.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
        let year = |g: &str| g.len() == 4 && (g.starts_with("19") || g.starts_with("20"));
        let small = |g: &str| g.len() <= 2 && g.parse::<u32>().is_ok_and(|v| (1..=31).contains(&v));
        groups
            .windows(3)
            .any(|w| (small(w[0]) && small(w[1]) && year(w[2])) || (year(w[0]) && small(w[1]) && small(w[2])))
    }
}

/// The E.164 country codes of one and two digits; every other code has three.
const SHORT_CODES: &[u32] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57,
    58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
];

/// Significant digits after the country code, by numbering plan (the others: 6 to 12).
fn national_lengths(code: u32) -> Range<usize> {
    match code {
        1 | 7 | 52 | 54 | 57 | 58 | 63 | 90 | 91 | 92 | 98 => 10..11,
        33 | 34 | 27 | 31 | 40 | 41 | 48 | 56 | 61 | 93 | 94 => 9..10,
        44 => 9..11,
        49 => 6..14,
        55 => 10..12,
        86 => 10..12,
        81 | 82 | 84 => 9..11,
        45 | 47 | 65 | 53 => 8..9,
        39 => 6..12,
        43 => 4..14,
        _ => 6..13,
    }
}

/// `+33 1 23 45 67 89`, `+44 (0)20 7946 0958`, `0049 30 12345678`: a country
/// code, and as many digits as its plan has (a `(0)` trunk prefix not counted).
pub fn international(s: &str) -> bool {
    // `00` and digits alone is as often a zero-padded number: it needs groups.
    if s.starts_with("00") && s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let rest = s.strip_prefix('+').or_else(|| s.strip_prefix("00")).unwrap_or(s);
    let without_trunk = rest.replacen("(0)", "", 1);
    let shape = Shape::of(&without_trunk);
    let n = shape.digits.len();
    if !(7..=15).contains(&n) || shape.all_same() || shape.has_date(s) {
        return false;
    }
    let code_len = if SHORT_CODES.contains(&shape.number(0..1)) {
        1
    } else if SHORT_CODES.contains(&shape.number(0..2)) {
        2
    } else {
        3
    };
    if n <= code_len {
        return false;
    }
    let code = shape.number(0..code_len);
    if code_len == 3 && (code.is_multiple_of(100) || shape.digits[0] == 0) {
        return false;
    }
    if code == 1 && !nanp(&shape.digits[1..]) {
        return false;
    }
    national_lengths(code).contains(&(n - code_len))
}

/// North America: a 10-digit number with an area code and an exchange that
/// start with 2–9.
fn nanp(d: &[u8]) -> bool {
    d.len() == 10 && d[0] >= 2 && d[3] >= 2
}

/// A number in one of the national shapes (see the module's doc).
pub fn national(s: &str) -> bool {
    let shape = Shape::of(s);
    let (d, g, n) = (&shape.digits, &shape.groups[..], shape.digits.len());
    if !(9..=12).contains(&n) || shape.all_same() || shape.has_date(s) || g.len() > 6 {
        return false;
    }
    if let Some(inner) = s.strip_prefix('(') {
        let area = inner.find(')').unwrap_or(0);
        return match (d[0], area) {
            // (030) 12345678, (020) 7946 0958, (022) 2345 6789, (03) 1234-5678
            (0, 3..=6) => (10..=12).contains(&n) && d[1] != 0,
            // (415) 555-0134
            (_, 3) => nanp(d),
            // (11) 91234-5678, (21) 3456-7890
            (_, 2) => d[0] != 0 && d[1] != 0 && (n == 10 || (n == 11 && d[2] == 9)),
            _ => false,
        };
    }
    match d[0] {
        0 if d[1] == 0 => false,
        0 if g.len() == 1 => mobile_with_trunk(d),
        // 01 23 45 67 89, 030 12345678, 020 7946 0958, 090-1234-5678, 0171 1234567
        0 => (2..=5).contains(&g[0]) && (10..=12).contains(&n) && g[1..].iter().all(|&x| x >= 2),
        // 1-800-555-0199, 1 415 555 0134
        1 => g.len() >= 2 && g[0] == 1 && nanp(&d[1..]) && g[1..] == [3, 3, 4],
        // 415-555-0134, 415.555.0134
        _ if g == [3, 3, 4] => nanp(d),
        // 98765 43210 (India's mobiles)
        6..=9 if g == [5, 5] => true,
        // 11 91234-5678 (Brazil, area code and a mobile)
        _ => g == [2, 5, 4] && d[1] != 0 && d[2] == 9,
    }
}

/// A national number written without separators, after its trunk `0`: 10 or
/// 11 digits, the length of the plans with a trunk prefix (France's
/// `0612345678`, the UK's `07700900123`, Germany's `03012345678`, Japan's and
/// India's mobiles), or 12 for Germany's longest mobiles (015x–017x).
fn mobile_with_trunk(d: &[u8]) -> bool {
    let n = d.len();
    n == 10 || n == 11 || (n == 12 && d[1] == 1 && (5..=7).contains(&d[2]))
}

/// After a label (`phone:`, `tel.`, `mobile #`): any grouping, 7 to 15 digits.
/// The length of the number at the start of `s`.
pub fn labelled(s: &str) -> Option<usize> {
    let end = s.trim_end_matches(|c: char| !c.is_ascii_digit()).len();
    let number = &s[..end];
    let shape = Shape::of(number);
    let n = shape.digits.len();
    ((7..=15).contains(&n) && !shape.all_same() && !shape.has_date(number)).then_some(end)
}

/// A number among other numbers (`ports 7482 1139 65148 55068`, `142 252 520
/// 1026`): the word before or after it is a number too, so it is a list, not
/// a phone written on its own.
pub fn in_number_list(text: &str, span: &Range<usize>) -> bool {
    let before = text[..span.start].trim_end_matches([' ', ',']);
    let after = text[span.end..].trim_start_matches([' ', ',']);
    let separated_before = before.len() < span.start;
    let separated_after = after.len() < text.len() - span.end;
    (separated_before && before.ends_with(|c: char| c.is_ascii_digit()))
        || (separated_after && after.starts_with(|c: char| c.is_ascii_digit()))
}

/// The span widened over an extension written after the number: `x123`,
/// `ext. 123`, `extension 12`, `#12`, `;ext=12`.
pub fn with_extension(text: &str, span: Range<usize>) -> Range<usize> {
    let rest = &text[span.end..];
    let trimmed = rest.trim_start_matches([' ', ',']);
    let lower = trimmed.get(..trimmed.len().min(12)).unwrap_or("").to_ascii_lowercase();
    let marker = ["extension", "ext.", "ext", ";ext=", "x", "#"].iter().find(|m| lower.starts_with(**m));
    let Some(marker) = marker else { return span };
    let after = trimmed[marker.len()..].trim_start_matches([' ', '.', ':']);
    let digits = after.bytes().take(7).take_while(u8::is_ascii_digit).count();
    if !(1..=6).contains(&digits) || after[digits..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return span;
    }
    let end = text.len() - after.len() + digits;
    span.start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers_by_plan() {
        for ok in [
            "+1 415 555 0134",
            "+33 1 23 45 67 89",
            "+44 (0)20 7946 0958",
            "0049 30 12345678",
            "+81 3-1234-5678",
            "+55 11 91234-5678",
            "+91 98765 43210",
            "+353 1 234 5678",
        ] {
            assert!(international(ok), "{ok}");
        }
        for no in ["+1 115 555 0134", "+33 1 23", "0012345678901", "+44 1234"] {
            assert!(!international(no), "{no}");
        }
    }

    #[test]
    fn national_shapes() {
        for ok in [
            "01 23 45 67 89",
            "01.23.45.67.89",
            "030 12345678",
            "(030) 12345678",
            "020 7946 0958",
            "07700 900123",
            "03-1234-5678",
            "090-1234-5678",
            "98765 43210",
            "(11) 91234-5678",
            "(415) 555-0134",
            "415.555.0134",
            "1-800-555-0199",
            "0612345678",
            "(022) 2345 6789",
        ] {
            assert!(national(ok), "{ok}");
        }
        for no in
            ["142 252 520 1026", "01-02-2026 10", "12 5 3 0", "2026 11 30 12", "0000 000000", "123 456 789"]
        {
            assert!(!national(no), "{no}");
        }
    }

    #[test]
    fn extensions_go_with_the_number() {
        let text = "call 415-555-0134 ext. 204 now";
        assert_eq!(&text[with_extension(text, 5..17)], "415-555-0134 ext. 204");
        let text = "call 415-555-0134 x12b";
        assert_eq!(&text[with_extension(text, 5..17)], "415-555-0134");
    }
}
