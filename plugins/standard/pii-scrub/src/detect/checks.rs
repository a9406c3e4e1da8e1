//! The checks that turn a candidate into a finding or reject it as a lookalike:
//! the real algorithms (Luhn, ISO 13616 mod 97, octet ranges) and the structure
//! of each format (a JWT's JSON header, a card's issuer ranges and grouping).

use std::net::Ipv6Addr;
use std::ops::Range;
use std::str::FromStr;

/// The longest candidate the checks of cards, phones and IBANs look at: the
/// longest real value with separators is well under it (an IBAN: 34 characters
/// and 8 spaces), and their prefix search is quadratic in it.
pub const MAX_CHECKED: usize = 64;

/// Characters of a PEM body and its header lines, after which a key without
/// its END line stops: the text after it is not the key.
pub fn private_key_len(s: &str) -> usize {
    if s.contains("-----END") {
        return s.len();
    }
    let header_end = s[5..].find("-----").map_or(s.len(), |i| i + 10);
    let mut end = header_end;
    for line in s[header_end..].split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let run = content.len() - content.trim_start_matches(|c: char| is_base64(c) || c == '=').len();
        let header_line = content.contains(": ") && content.len() < 128 && run < content.len();
        if content.trim().is_empty() || header_line || run == content.len() {
            end += line.len();
            continue;
        }
        // The key's last line, with the text after it on the same line.
        end += run;
        break;
    }
    end.min(s.len())
}

fn base64_value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

pub fn is_base64(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/'
}

/// The first bytes of base64 (either alphabet, padding ignored), at most `max`.
fn base64_prefix(s: &str, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(max);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes().take_while(|b| *b != b'=') {
        acc = (acc << 6) | base64_value(b)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
            if out.len() >= max {
                break;
            }
        }
    }
    Some(out)
}

/// The length of a JWS (3 parts, the signature empty with `alg: none`) or a
/// JWE (5 parts, the key empty with `dir`) at the start of `s`, whose header
/// decodes to a JSON object naming `alg` or `enc`. A trailing `.` that leaves
/// another count of parts is the sentence's.
pub fn jwt_len(s: &str) -> Option<usize> {
    let mut s = s;
    let mut parts = s.split('.').count();
    while !(parts == 3 || parts == 5) && s.ends_with('.') {
        s = &s[..s.len() - 1];
        parts -= 1;
    }
    let lens: Vec<usize> = s.split('.').map(str::len).collect();
    let ok = match lens[..] {
        [_, payload, _] => payload >= 4,
        [_, _, iv, ciphertext, tag] => iv >= 4 && ciphertext >= 4 && tag >= 4,
        _ => false,
    };
    if !ok {
        return None;
    }
    // Two JSON objects in base64 (`{"` is `eyJ`) and a signature: a JWT even
    // when the header does not decode (cut, or not quite base64).
    if let [header, payload, _] = lens[..] {
        if s.starts_with("eyJ") && s[header + 1..].starts_with("eyJ") && header >= 7 && payload >= 7 {
            return Some(s.len());
        }
    }
    let header = base64_prefix(&s[..lens[0]], 256).unwrap_or_default();
    let header = String::from_utf8_lossy(&header);
    let header = header.trim_start();
    (header.starts_with('{') && (header.contains("\"alg\"") || header.contains("\"enc\""))).then_some(s.len())
}

/// An AWS secret access key: 40 characters of base64 with upper- and
/// lower-case letters and a digit, and random: not a path of words
/// (`/Users/JaneDoe/…`) nor a CamelCase name, whose letters run in long
/// lower-case stretches that random text seldom has.
pub fn aws_secret(s: &str) -> bool {
    let has = |f: fn(&char) -> bool| s.chars().any(|c| f(&c));
    if !(has(char::is_ascii_uppercase) && has(char::is_ascii_lowercase) && has(char::is_ascii_digit)) {
        return false;
    }
    let segments: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
    let wordy = |p: &&str| {
        let letters = p.trim_end_matches(|c: char| c.is_ascii_digit());
        letters.len() >= 2 && letters.chars().all(|c| c.is_ascii_alphabetic())
    };
    if segments.len() >= 3 && segments.iter().all(wordy) {
        return false;
    }
    // Letters in lower-case runs of 4 or more: about 3 of 40 in random base64.
    let (mut run, mut in_long_runs) = (0usize, 0usize);
    for c in s.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_lowercase() {
            run += 1;
        } else {
            if run >= 4 {
                in_long_runs += run;
            }
            run = 0;
        }
    }
    in_long_runs < 16
}

/// The minimum length of each well-known key format (prefix included), from
/// the vendors' documented formats.
pub fn prefixed_key_long_enough(s: &str) -> bool {
    const MIN: &[(&str, usize)] = &[
        ("sk_live_", 24),
        ("sk_test_", 24),
        ("rk_live_", 24),
        ("rk_test_", 24),
        ("whsec_", 30),
        ("sk-", 35),
        ("AIza", 39),
        ("gl", 26),
        ("npm_", 40),
        ("pypi-AgE", 60),
        ("SG.", 60),
        ("hf_", 34),
        ("shp", 38),
        ("dapi", 36),
        ("do", 70),
        ("sq0", 40),
        ("ya29.", 30),
        ("1//0", 40),
        ("hv", 28),
        ("dp.", 40),
        ("pul-", 44),
        ("PMAK-", 59),
        ("lin_api_", 48),
        ("ntn_", 40),
        ("AGE-SECRET-KEY-1", 70),
        ("glc_", 32),
        ("glsa_", 40),
        ("sntry", 40),
        ("NRAK-", 32),
        ("figd_", 40),
        ("pscale_", 40),
        ("sbp_", 44),
        ("LTAI", 16),
        ("ATATT3", 100),
        ("key-", 36),
    ];
    let min = MIN.iter().find(|(p, _)| s.starts_with(p)).map_or(40, |(_, n)| *n);
    if let Some(hex) = s.strip_prefix("key-") {
        // Mailgun: `key-` and 32 hex digits; other `key-…` words are not keys.
        return hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    s.len() >= min && s.bytes().any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// Where the value starts after `label: ` / `label="…`, skipping an auth scheme.
pub fn after_separator(s: &str) -> Option<usize> {
    let sep = s.find([':', '='])?;
    let rest = &s[sep + 1..];
    let value = rest
        .trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '>' || c == '\\');
    let mut start = s.len() - value.len();
    if let Some(space) = value.find(char::is_whitespace) {
        let scheme = &value[..space];
        if ["bearer", "basic", "digest", "token", "negotiate", "apikey", "aws4-hmac-sha256", "hmac"]
            .iter()
            .any(|w| scheme.eq_ignore_ascii_case(w))
        {
            start += space + (value[space..].len() - value[space..].trim_start().len());
        }
    }
    (start < s.len()).then_some(start)
}

/// Looks like a credential rather than a word: a digit, a symbol, or a capital
/// after the first character, and at least 6 characters.
pub fn tokenish(value: &str) -> bool {
    value.len() >= 6
        && (value.chars().any(|c| c.is_ascii_digit() || "._~+/=-!@#$%^*&?|:;,<>{}[]()".contains(c))
            || value.chars().skip(1).any(|c| c.is_ascii_uppercase()))
        && !is_placeholder(value)
}

/// Values that stand for a secret without being one.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    v.is_empty()
        || value.starts_with("${")
        || value.starts_with("{{")
        || value.starts_with("[REDACTED")
        || value.starts_with("[HMAC:")
        || value.chars().all(|c| c == '*' || c == 'x' || c == 'X' || c == '.')
        || ["<redacted>", "<hidden>", "redacted", "********"].iter().any(|p| value.eq_ignore_ascii_case(p))
}

/// The last word of a label that makes it name data about a secret, not the
/// secret: `token_type`, `password_expires_at`, `next_token`, `secret_name`.
pub fn label_names_metadata(label: &str) -> bool {
    const META: &[&str] = &[
        "type",
        "types",
        "kind",
        "name",
        "names",
        "id",
        "ids",
        "length",
        "len",
        "count",
        "expires",
        "expiry",
        "expiration",
        "expired",
        "in",
        "at",
        "ttl",
        "age",
        "url",
        "uri",
        "endpoint",
        "path",
        "file",
        "policy",
        "enabled",
        "required",
        "format",
        "version",
        "hint",
        "strength",
        "rotation",
        "reset",
        "changed",
        "updated",
        "created",
        "ref",
        "arn",
        "provider",
        "source",
        "env",
        "header",
        "prefix",
        "scope",
        "scopes",
        "field",
        "param",
        "algorithm",
        "alg",
        "limit",
        "size",
        "valid",
        "present",
        "set",
        "manager",
        "store",
        "vault",
    ];
    const CURSORS: &[&str] = &["next", "page", "continuation", "cursor", "sync", "pagination", "start"];
    let label = label.trim_end_matches(|c: char| c == '"' || c == '\'' || c == '\\' || c.is_whitespace());
    let words: Vec<String> = split_words(label);
    let last = words.last().map(String::as_str).unwrap_or("");
    let first = words.first().map(String::as_str).unwrap_or("");
    META.contains(&last) || (CURSORS.contains(&first) && words.len() > 1)
}

/// Whether a label names a password (its last word), whose value is secret
/// whatever it looks like.
pub fn label_names_password(label: &str) -> bool {
    let label = label.trim_end_matches(|c: char| c == '"' || c == '\'' || c == '\\' || c.is_whitespace());
    split_words(label)
        .last()
        .is_some_and(|w| ["password", "passwd", "passphrase", "pass", "pwd"].contains(&w.as_str()))
}

/// A label's words, lower-cased: split at `_`, `.`, `-` and camel humps.
fn split_words(label: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in label.chars() {
        if matches!(c, '_' | '.' | '-' | ' ') {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The longest prefix, ending at the candidate's end or before one of its
/// separators, that passes `valid` (a trailing group may belong to the next token).
pub fn longest_prefix(s: &str, valid: fn(&str) -> bool) -> Option<usize> {
    if valid(s) {
        return Some(s.len());
    }
    let mut end = s.len();
    while let Some(sep) = s[..end].rfind([' ', '-', '.', '/']) {
        let candidate = s[..sep].trim_end_matches([' ', '-', '.', '/', '(', ')']);
        if !candidate.is_empty() && valid(candidate) {
            return Some(candidate.len());
        }
        end = sep;
    }
    None
}

pub fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.chars().filter_map(|c| c.to_digit(10))
}

pub fn luhn(s: &str) -> bool {
    let mut sum = 0;
    let mut count = 0;
    for (i, d) in s.bytes().rev().filter(u8::is_ascii_digit).map(|b| u32::from(b - b'0')).enumerate() {
        sum += if i % 2 == 1 { (d * 2) / 10 + (d * 2) % 10 } else { d };
        count += 1;
    }
    count > 0 && sum.is_multiple_of(10)
}

/// Issuer number ranges (IIN prefixes) and the lengths each issues, from the
/// networks' published ranges: Visa, Mastercard, Amex, Discover, JCB, Diners,
/// UnionPay, Maestro, Mir, RuPay, Verve, Troy.
fn issuer_length_ok(d: &[u8]) -> bool {
    let n = d.len();
    let prefix = |k: usize| d.iter().take(k).fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    match p1 {
        4 => matches!(n, 13 | 16 | 19),
        5 => match p2 {
            51..=55 => n == 16,
            50 | 56..=59 => (12..=19).contains(&n),
            _ => false,
        },
        2 => {
            ((2221..=2720).contains(&p4) && n == 16)
                || ((2200..=2204).contains(&p4) && (16..=19).contains(&n))
        }
        3 => {
            (14..=19).contains(&n)
                && match p2 {
                    34 | 37 => n == 15,
                    36 | 38 | 39 => (14..=19).contains(&n),
                    30 => (300..=305).contains(&p3) || p4 == 3095,
                    35 => (3528..=3589).contains(&p4) && (16..=19).contains(&n),
                    _ => false,
                }
        }
        6 => {
            (12..=19).contains(&n)
                && (p2 == 60
                    || p2 == 62
                    || p2 == 65
                    || (644..=649).contains(&p3)
                    || p4 == 6011
                    || (63..=69).contains(&p2)
                    || (650002..=650027).contains(&p6))
        }
        8 => matches!(p2, 81 | 82) && n == 16,
        9 => p4 == 9792 && n == 16,
        _ => false,
    }
}

/// A primary account number written as digits only.
pub fn valid_pan(s: &str) -> bool {
    let d: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    d.len() == s.len() && issuer_length_ok(&d) && luhn(s)
}

/// A payment card number as written: 12–19 digits in groups (any of space, `-`
/// and `.` between them, mixed; the usual 4-4-4-4 and 4-6-5 or irregular ones
/// of 3 to 8 digits), an issuer's range and length, and a Luhn check digit.
pub fn valid_card(s: &str) -> bool {
    // Called for every prefix of every candidate: the digits go in an array,
    // not an allocation.
    let mut digits = [0u8; 19];
    let mut n = 0;
    for b in s.bytes().filter(u8::is_ascii_digit) {
        if n == digits.len() {
            return false;
        }
        digits[n] = b;
        n += 1;
    }
    let d = &digits[..n];
    if n < 12 {
        return false;
    }
    let groups: Vec<usize> = s.split([' ', '-', '.']).filter(|g| !g.is_empty()).map(str::len).collect();
    // 12 or 13 digits in one run are more often a barcode (EAN-13) or an id
    // than a Maestro or an old Visa card.
    if groups.len() == 1 && d.len() < 14 {
        return false;
    }
    if groups.len() > 1 {
        let (last, body) = groups.split_last().unwrap_or((&0, &[]));
        if !body.iter().all(|g| (3..=8).contains(g)) || *last > 8 || groups.len() > 6 {
            return false;
        }
    }
    issuer_length_ok(d) && luhn(s)
}

/// A card number candidate in its text: not part of a decimal or a signed
/// number, not a measurement; a trailing `=YYMM…` (track 2 data written
/// without its sentinels) goes with it.
pub fn card(text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let before = text[..span.start].chars().next_back();
    if before == Some('+')
        || decimal_point_before(text, span.start)
        || decimal_point_after(text, span.end)
        || unit_after(text, span.end)
    {
        return None;
    }
    let s = &text[span.clone()];
    let n = longest_prefix(&s[..s.len().min(MAX_CHECKED)], valid_card)?;
    // Irregular groups among other numbers are a list (`ports 44412 8830 38770
    // 24656`); a card written as cards are (4-4-4-4, 4-6-5) is one even with
    // its security code after it.
    let groups: Vec<usize> = s[..n].split([' ', '-', '.']).map(str::len).collect();
    let regular = matches!(groups[..], [4, 4, 4, 4] | [4, 6, 5] | [4, 6, 4] | [4, 4, 4, 4, 3] | [_]);
    // Four or more irregular groups are a list too (`ports 30011 54204 56523 3217`).
    if !regular && (groups.len() >= 4 || super::phone::in_number_list(text, &(span.start..span.start + n))) {
        return None;
    }
    let mut end = span.start + n;
    let after = &text[end..];
    if let Some(rest) = after.strip_prefix('=') {
        let extra = rest.bytes().take_while(u8::is_ascii_digit).count();
        if extra >= 4 {
            end += 1 + extra + usize::from(rest[extra..].starts_with('?'));
        }
    }
    Some(span.start..end)
}

/// `3.` right before: the candidate is the fraction of a decimal number.
fn decimal_point_before(text: &str, start: usize) -> bool {
    text[..start].ends_with('.') && text[..start - 1].ends_with(|c: char| c.is_ascii_digit())
}

/// `.5` right after: the candidate is the integer part of a decimal number.
fn decimal_point_after(text: &str, end: usize) -> bool {
    text[end..].starts_with('.') && text[end + 1..].starts_with(|c: char| c.is_ascii_digit())
}

/// A unit right after the number (`142 252 520 1026 ms`): a measurement.
pub fn unit_after(text: &str, end: usize) -> bool {
    const UNITS: &[&str] = &[
        "ms", "s", "sec", "secs", "seconds", "us", "µs", "ns", "min", "mins", "h", "b", "kb", "mb", "gb",
        "tb", "kib", "mib", "gib", "bytes", "%", "px", "rpm", "hz", "khz", "mhz", "ops", "req", "rps", "qps",
        "events", "items", "rows", "tokens",
    ];
    let rest = text[end..].trim_start_matches(' ');
    let word_len = rest.find(|c: char| !(c.is_alphanumeric() || c == '%' || c == 'µ')).unwrap_or(rest.len());
    let word = &rest[..word_len];
    !word.is_empty() && UNITS.iter().any(|u| word.eq_ignore_ascii_case(u))
}

/// A version label right before a dotted quad (`.NET Version=12.5.3.0`,
/// `build 10.2.0.1`, `Chrome/120.0.6099.109`): a version, not an address.
pub fn version_label_before(text: &str, start: usize) -> bool {
    const LABELS: &[&str] = &[
        "version",
        "ver",
        "v",
        "release",
        "build",
        "rev",
        "revision",
        "firmware",
        "fw",
        "sdk",
        "runtime",
        "assemblyversion",
        "fileversion",
        "productversion",
        "kernel",
        "os",
        "agent",
    ];
    let head = &text[..start];
    if head.ends_with('/') && head[..head.len() - 1].ends_with(|c: char| c.is_ascii_alphabetic()) {
        return true;
    }
    let head = head.trim_end_matches([' ', '=', ':', '"', '\'']);
    // After the last character that is not a letter, whatever its width.
    let word_start = head
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &head[word_start..];
    head.len() + 4 >= start && LABELS.iter().any(|l| word.eq_ignore_ascii_case(l))
}

/// The area, group and serial rules of US SSNs, and the ranges of ITINs (area
/// 9xx, group 50–65, 70–88, 90–92, 94–99).
pub fn valid_ssn_digits(s: &str) -> bool {
    let d: Vec<u32> = digits(s).collect();
    if d.len() != 9 {
        return false;
    }
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    if area >= 900 {
        return matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99);
    }
    area != 0 && area != 666 && group != 0 && serial != 0
}

/// Registry lengths of the countries that issue IBANs (SWIFT's IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// Whether two upper-case letters are a country that issues IBANs.
pub fn iban_country(code: &[u8; 2]) -> bool {
    IBAN_LENGTHS.iter().any(|(c, _)| *c == code)
}

/// An IBAN in any case, compact or grouped: the country's registered length and
/// ISO 13616's mod-97 check.
pub fn valid_iban(s: &str) -> bool {
    let compact: Vec<u8> =
        s.bytes().filter(|b| *b != b' ' && *b != b'-').map(|b| b.to_ascii_uppercase()).collect();
    let Some(country) = compact.get(..2) else { return false };
    match IBAN_LENGTHS.iter().find(|(c, _)| c[..] == *country) {
        Some((_, len)) if *len == compact.len() => {}
        _ => return false,
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder: u32 = 0;
    for &b in rearranged {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}

pub fn valid_ipv4(s: &str) -> bool {
    valid_octets(s, '.')
}

/// Four octets joined by `sep` (`.`, or `-` in host names), each 0–255 without
/// a leading zero.
pub fn valid_octets(s: &str, sep: char) -> bool {
    s.split(sep).all(|octet| {
        !octet.is_empty()
            && (octet == "0" || !octet.starts_with('0'))
            && octet.parse::<u16>().is_ok_and(|v| v <= 255)
    })
}

/// A real IPv6 address, not `std::vector` or a timestamp: it parses, and it has at
/// least three groups or a first group of three or more hex digits (`fe80::1`).
pub fn valid_ipv6(s: &str) -> bool {
    if Ipv6Addr::from_str(s).is_err() {
        return false;
    }
    if s.to_ascii_lowercase().starts_with("::ffff:") && s.contains('.') {
        return true;
    }
    let groups: Vec<&str> = s.split(':').filter(|g| !g.is_empty()).collect();
    groups.len() >= 3 || groups.first().is_some_and(|g| g.len() >= 3 && !s.starts_with(':'))
}
