//! The detectors: one multi-pattern regex finds candidates in a single pass
//! (leftmost first; at one position the earlier pattern wins), and each candidate is
//! confirmed by its detector's check — Luhn for cards, mod 97 for IBANs, octet
//! ranges for IPv4, a real parse for IPv6, the SSA's rules for SSNs — which may also
//! narrow it (only the secret after `password=`, only the user:password of a URL).
//! A candidate that fails its check is skipped and the search resumes one character
//! later, so a failed candidate never hides a real one.

use std::net::Ipv6Addr;
use std::ops::Range;
use std::str::FromStr;

use aho_corasick::AhoCorasick;
use regex_automata::meta::Regex;
use regex_automata::Input;

/// What a detector finds; the name is the one used in config, counters and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PrivateKey,
    Jwt,
    UrlCredentials,
    Authorization,
    BearerToken,
    AwsAccessKey,
    GithubToken,
    SlackToken,
    ApiKey,
    Email,
    Iban,
    Card,
    Ssn,
    Ipv6,
    Ipv4,
    Phone,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::PrivateKey,
        Kind::Jwt,
        Kind::UrlCredentials,
        Kind::Authorization,
        Kind::BearerToken,
        Kind::AwsAccessKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::ApiKey,
        Kind::Email,
        Kind::Iban,
        Kind::Card,
        Kind::Ssn,
        Kind::Ipv6,
        Kind::Ipv4,
        Kind::Phone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::PrivateKey => "private_key",
            Kind::Jwt => "jwt",
            Kind::UrlCredentials => "url_credentials",
            Kind::Authorization => "authorization",
            Kind::BearerToken => "bearer_token",
            Kind::AwsAccessKey => "aws_access_key",
            Kind::GithubToken => "github_token",
            Kind::SlackToken => "slack_token",
            Kind::ApiKey => "api_key",
            Kind::Email => "email",
            Kind::Iban => "iban",
            Kind::Card => "card",
            Kind::Ssn => "ssn",
            Kind::Ipv6 => "ipv6",
            Kind::Ipv4 => "ipv4",
            Kind::Phone => "phone",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// ASCII word boundary: works in the lazy DFA on any input.
const B: &str = r"(?-u:\b)";

/// Candidate patterns in priority order, each with the detector it belongs to.
fn patterns() -> Vec<(Kind, String)> {
    // Characters of a secret after a label or scheme.
    let secret = r#"[^\s"'<>,;&]"#;
    vec![
        (
            Kind::PrivateKey,
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z ]*PRIVATE KEY-----|\z)".into(),
        ),
        (Kind::Jwt, format!(r"{B}eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")),
        (Kind::UrlCredentials, r#"[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s:/@"'<>]+:[^\s/@"'<>]+@"#.into()),
        (
            Kind::Authorization,
            format!(
                r#"(?i:{B}(?:proxy-)?authorization)["']?\s*[:=]\s*["']?(?:(?i:bearer|basic|digest|token|negotiate|apikey)\s+)?{secret}+"#
            ),
        ),
        (Kind::BearerToken, format!(r"(?i:{B}bearer)\s+[A-Za-z0-9._~+/=-]+")),
        (
            Kind::AwsAccessKey,
            format!(r"{B}(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]+{B}"),
        ),
        (Kind::GithubToken, format!(r"{B}(?:gh[pousr]_[A-Za-z0-9]+|github_pat_[A-Za-z0-9_]+){B}")),
        (
            Kind::SlackToken,
            format!(r"{B}(?:xox[abposre]-[A-Za-z0-9-]+|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+)"),
        ),
        (
            Kind::ApiKey,
            format!(
                r"{B}(?:[sr]k_live_[A-Za-z0-9]+|sk-(?:proj-|ant-)?[A-Za-z0-9_-]+|AIza[0-9A-Za-z_-]+|glpat-[A-Za-z0-9_-]+|npm_[A-Za-z0-9]+){B}"
            ),
        ),
        (
            Kind::ApiKey,
            format!(
                r#"(?i:{B}(?:api[_-]?key|api[_-]?token|api[_-]?secret|secret[_-]?key|client[_-]?secret|access[_-]?token|refresh[_-]?token|auth[_-]?token|private[_-]?token|password|passwd|pwd|secret|token))["']?\s*[:=]\s*["']?{secret}+"#
            ),
        ),
        // The local part is bounded (64, as RFC 5321 bounds it): unbounded, a run
        // of letters, digits and dots kept a candidate alive to the text's end, and
        // every search over such a text read the rest of it.
        (
            Kind::Email,
            format!(
                r"{B}[A-Za-z0-9._%+-]{{1,64}}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{{2,24}}{B}"
            ),
        ),
        (Kind::Iban, format!(r"{B}[A-Z]{{2}}[0-9]{{2}}(?:[ ]?[A-Z0-9])+{B}")),
        (Kind::Card, format!(r"{B}[0-9](?:[ -]?[0-9]){{12,18}}{B}")),
        (Kind::Ssn, format!(r"{B}[0-9]{{3}}([- ])[0-9]{{2}}[- ][0-9]{{4}}{B}")),
        (
            Kind::Ipv6,
            format!(r"{B}[0-9A-Fa-f]{{0,4}}(?::[0-9A-Fa-f]{{0,4}}){{2,7}}(?:\.[0-9]{{1,3}}){{0,3}}"),
        ),
        (Kind::Ipv4, format!(r"{B}[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}{B}")),
        (Kind::Phone, format!(r"\+[1-9][0-9]{{0,3}}(?:[ .-]?\(?[0-9]{{1,5}}\)?){{1,5}}{B}")),
        (Kind::Phone, format!(r"(?:\([0-9]{{3}}\)[ ]?|{B}[0-9]{{3}}[-. ])[0-9]{{3}}[-. ][0-9]{{4}}{B}")),
        (Kind::Phone, format!(r"{B}0[0-9]{{1,4}}[ /-][0-9]{{3,8}}(?:[ -][0-9]{{2,4}})?{B}")),
    ]
}

/// A confirmed finding: which detector, and the bytes to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    pub span: Range<usize>,
}

/// Words, matched ignoring ASCII case, without which no label, scheme or key
/// prefix detector can fire: a string holding none of them (and none of the
/// characters and digit counts in [`Detectors::worth_scanning`]) is skipped.
const KEYWORDS: &[&str] = &[
    "-----begin",
    "eyj",
    "authorization",
    "bearer",
    "key",
    "token",
    "secret",
    "passw",
    "pwd",
    "sk_live_",
    "rk_live_",
    "sk-",
    "aiza",
    "glpat-",
    "npm_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "hooks.slack.com",
    "akia",
    "asia",
    "abia",
    "acca",
    "agpa",
    "aida",
    "aipa",
    "anpa",
    "anva",
    "aroa",
    "apka",
    "asca",
];

pub struct Detectors {
    regex: Regex,
    keywords: AhoCorasick,
    kinds: Vec<Kind>,
    /// Indexed by `Kind as usize`: off detectors are found (so they still shadow
    /// lookalikes of other detectors) but not reported.
    enabled: [bool; Kind::ALL.len()],
}

impl Detectors {
    pub fn new(enabled: impl Fn(Kind) -> bool) -> Result<Detectors, String> {
        let patterns = patterns();
        let kinds = patterns.iter().map(|(k, _)| *k).collect();
        let sources: Vec<&str> = patterns.iter().map(|(_, p)| p.as_str()).collect();
        // Without literal prefilters: with this many patterns they cost more than
        // the lazy DFA they would spare (measured: 2.5x slower per event).
        let regex = Regex::builder()
            .configure(Regex::config().auto_prefilter(false))
            .build_many(&sources)
            .map_err(|e| format!("detector patterns: {e}"))?;
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(KEYWORDS)
            .map_err(|e| format!("detector keywords: {e}"))?;
        let mut on = [false; Kind::ALL.len()];
        for kind in Kind::ALL {
            on[kind as usize] = enabled(kind);
        }
        Ok(Detectors { regex, keywords, kinds, enabled: on })
    }

    /// Every confirmed finding in `text`, in order, not overlapping. The work is
    /// bounded by [`scan_budget`]: the searches may read each byte a few times
    /// over (a candidate that fails its check is searched past again from its
    /// second character), never more. Returns where the search stopped when the
    /// budget ran out first: from there on, the text was not looked at, and the
    /// caller must not let it out as it is.
    pub fn find(&self, text: &str, found: &mut Vec<Found>) -> Option<usize> {
        let mut at = 0;
        let mut budget = scan_budget(text.len());
        while at < text.len() {
            let m = self.regex.search(&Input::new(text).range(at..));
            let scanned = m.as_ref().map_or(text.len(), |m| m.end()) - at;
            budget = match budget.checked_sub(scanned.max(1)) {
                Some(left) => left,
                None => return Some(at),
            };
            let Some(m) = m else { break };
            let kind = self.kinds[m.pattern().as_usize()];
            match confirm(kind, text, m.range()) {
                Some(span) => {
                    // Resume where the confirmed value ends, not where the candidate
                    // did: a check may narrow it (a phone number's digits that
                    // belong to an address after it), and what follows must still
                    // be searched.
                    at = next_char(text, span.end.max(m.start() + 1) - 1);
                    if self.enabled[kind as usize] {
                        found.push(Found { kind, span });
                    }
                }
                None => at = next_char(text, m.start()),
            }
        }
        None
    }

    /// Whether `text` can hold anything at all: every detector needs one of an
    /// `@` (email, URL credentials), two colons (IPv6), a run of 8 digits among
    /// number punctuation (phone, card, SSN), 4 digits and 3 dots in one (IPv4),
    /// `XX00` (IBAN) or a keyword. Most strings of an event — hex ids included,
    /// whose digits are split by letters — have none, and this costs one pass.
    pub fn worth_scanning(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let mut colons = 0usize;
        // Digits and dots of the current run of digits and number punctuation.
        let (mut digits, mut dots) = (0usize, 0usize);
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    digits += 1;
                    if digits >= 8 || (dots >= 3 && digits >= 4) {
                        return true;
                    }
                }
                b'.' => dots += 1,
                b' ' | b'-' | b'(' | b')' | b'/' | b'+' => {}
                b'@' => return true,
                _ => {
                    colons += usize::from(b == b':');
                    if let [b'A'..=b'Z', b'A'..=b'Z', b'0'..=b'9', b'0'..=b'9', ..] = bytes[i..] {
                        return true;
                    }
                    (digits, dots) = (0, 0);
                }
            }
        }
        colons >= 2 || self.keywords.is_match(text)
    }
}

/// Bytes the searches over a text of `len` bytes may read in all: 8 passes over
/// it, and 4 KiB for short texts. Real text needs about one pass; only input made
/// of candidates that fail their checks one after another (`pwd:x(pwd:x(…`,
/// `AB12 AB12 …`) gets near it.
pub fn scan_budget(len: usize) -> usize {
    len.saturating_mul(8).saturating_add(4096)
}

/// The longest candidate the checks of cards, phones and IBANs look at: the
/// longest real value with separators is well under it (an IBAN: 34 characters
/// and 8 spaces), and their prefix search is quadratic in it.
const MAX_CHECKED: usize = 64;

fn next_char(text: &str, at: usize) -> usize {
    let mut next = at + 1;
    while next < text.len() && !text.is_char_boundary(next) {
        next += 1;
    }
    next
}

/// The detector's check: the span to replace, or `None` for a lookalike.
fn confirm(kind: Kind, text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let s = &text[span.clone()];
    // These patterns match ASCII only, so any cut is at a character boundary.
    let checked = &s[..s.len().min(MAX_CHECKED)];
    let before = text[..span.start].chars().next_back();
    let shift = |r: Range<usize>| span.start + r.start..span.start + r.end;
    match kind {
        Kind::PrivateKey => Some(span),
        // Lengths live here, not in the patterns: large counted repetitions blow up
        // the automaton that all patterns share.
        // The header and payload are `eyJ` and at least 4 more; the signature at least 4.
        Kind::Jwt => {
            let parts: Vec<usize> = s.split('.').map(str::len).collect();
            matches!(parts[..], [header, payload, signature] if header >= 7 && payload >= 7 && signature >= 4)
                .then_some(span)
        }
        Kind::AwsAccessKey => (s.len() == 20).then_some(span),
        Kind::GithubToken => {
            let ok = match s.strip_prefix("github_pat_") {
                Some(rest) => (22..=255).contains(&rest.len()),
                None => (36..=255).contains(&(s.len() - 4)),
            };
            ok.then_some(span)
        }
        Kind::SlackToken => {
            // A token: `xoxb-` and 10 more; a webhook: its services URL (33) and 20 more.
            let min = if s.starts_with("https://") { 53 } else { 15 };
            (s.len() >= min).then_some(span)
        }
        Kind::UrlCredentials => {
            let start = s.find("://")? + 3;
            Some(shift(start..s.len() - 1))
        }
        Kind::Authorization => {
            let value = after_separator(s)?;
            (s.len() - value >= 6).then(|| shift(value..s.len()))
        }
        Kind::BearerToken => {
            let token_start = s.find(char::is_whitespace)?;
            let token = s[token_start..].trim_start();
            (token.len() >= 8 && tokenish(token)).then(|| shift(s.len() - token.len()..s.len()))
        }
        Kind::ApiKey => match after_separator(s) {
            // A labelled value (`password=…`): only values that look like secrets.
            Some(value) => tokenish(&s[value..]).then(|| shift(value..s.len())),
            None => prefixed_key_long_enough(s).then_some(span),
        },
        Kind::Email => Some(span),
        Kind::Iban => longest_prefix(checked, valid_iban).map(|n| shift(0..n)),
        Kind::Card => {
            if before == Some('+')
                || decimal_point_before(text, span.start)
                || decimal_point_after(text, span.end)
            {
                return None;
            }
            longest_prefix(checked, valid_card).map(|n| shift(0..n))
        }
        Kind::Ssn => valid_ssn(s).then_some(span),
        Kind::Ipv6 => {
            let end = s.trim_end_matches(['.', ':']).len();
            let candidate = &s[..end];
            let next = text[span.start + end..].chars().next();
            (valid_ipv6(candidate) && !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| shift(0..end))
        }
        Kind::Ipv4 => {
            // Part of a dotted version (v1.2.3.4, 1.2.3.4.5) or a longer number.
            let continues = text[span.end..].starts_with(['.', '-'])
                && text[span.end + 1..].starts_with(|c: char| c.is_ascii_digit());
            if matches!(before, Some('v' | 'V' | '.' | '-' | '_')) || continues {
                return None;
            }
            valid_ipv4(s).then_some(span)
        }
        Kind::Phone => {
            let continues = text[span.end..].starts_with(['.', ':'])
                && text[span.end + 1..].starts_with(|c: char| c.is_ascii_digit());
            if matches!(before, Some('.' | '-' | '/' | ':')) || continues {
                return None;
            }
            longest_prefix(checked, valid_phone).map(|n| shift(0..n))
        }
    }
}

/// `3.` right before: the candidate is the fraction of a decimal number.
fn decimal_point_before(text: &str, start: usize) -> bool {
    text[..start].ends_with('.') && text[..start - 1].ends_with(|c: char| c.is_ascii_digit())
}

/// `.5` right after: the candidate is the integer part of a decimal number.
fn decimal_point_after(text: &str, end: usize) -> bool {
    text[end..].starts_with('.') && text[end + 1..].starts_with(|c: char| c.is_ascii_digit())
}

/// The minimum length of each well-known key format (prefix included).
fn prefixed_key_long_enough(s: &str) -> bool {
    let min = if s.starts_with("sk_live_") || s.starts_with("rk_live_") {
        24
    } else if s.starts_with("sk-") {
        35
    } else if s.starts_with("AIza") {
        39
    } else if s.starts_with("glpat-") {
        26
    } else {
        40 // npm_
    };
    s.len() >= min
}

/// Where the value starts after `label: ` / `label="…`, skipping an auth scheme.
fn after_separator(s: &str) -> Option<usize> {
    let sep = s.find([':', '='])?;
    let rest = &s[sep + 1..];
    let value = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
    let mut start = s.len() - value.len();
    if let Some(space) = value.find(char::is_whitespace) {
        let scheme = &value[..space];
        if ["bearer", "basic", "digest", "token", "negotiate", "apikey"]
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
fn tokenish(value: &str) -> bool {
    value.len() >= 6
        && (value.chars().any(|c| c.is_ascii_digit() || "._~+/=-!@#$%^*".contains(c))
            || value.chars().skip(1).any(|c| c.is_ascii_uppercase()))
}

/// The longest prefix, ending at the candidate's end or before one of its
/// separators, that passes `valid` (a trailing group may belong to the next token).
fn longest_prefix(s: &str, valid: fn(&str) -> bool) -> Option<usize> {
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

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.chars().filter_map(|c| c.to_digit(10))
}

pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = digits(s).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A payment card: 13–19 digits, one kind of separator used consistently (groups
/// of 4, or Amex's 4-6-5), an issuer prefix, and a Luhn check digit.
fn valid_card(s: &str) -> bool {
    let n = digits(s).count();
    if !(13..=19).contains(&n) {
        return false;
    }
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if let Some(&first) = seps.first() {
        if seps.iter().any(|&c| c != first) {
            return false;
        }
        let groups: Vec<usize> = s.split(first).map(str::len).collect();
        let grouped_by_four = groups[..groups.len() - 1].iter().all(|&g| g == 4)
            && (1..=4).contains(groups.last().unwrap_or(&0));
        if !(grouped_by_four || groups == [4, 6, 5] || groups == [4, 6, 4]) {
            return false;
        }
    }
    let issuer = matches!(s.as_bytes().first(), Some(b'2'..=b'6'));
    issuer && luhn(s)
}

fn valid_ssn(s: &str) -> bool {
    let d: Vec<u32> = digits(s).collect();
    if d.len() != 9 || s.as_bytes()[3] != s.as_bytes()[6] {
        return false;
    }
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Registry lengths of the countries that issue IBANs (SWIFT's IBAN registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// An IBAN: the country's registered length and ISO 13616's mod-97 check.
pub fn valid_iban(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    let Some(country) = compact.get(..2).and_then(|c| std::str::from_utf8(c).ok()) else { return false };
    match IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
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

fn valid_ipv4(s: &str) -> bool {
    s.split('.').all(|octet| {
        !octet.is_empty()
            && (octet == "0" || !octet.starts_with('0'))
            && octet.parse::<u16>().is_ok_and(|v| v <= 255)
    })
}

/// A real IPv6 address, not `std::vector` or a timestamp: it parses, and it has at
/// least three groups or a first group of three or more hex digits (`fe80::1`).
fn valid_ipv6(s: &str) -> bool {
    if Ipv6Addr::from_str(s).is_err() {
        return false;
    }
    let groups: Vec<&str> = s.split(':').filter(|g| !g.is_empty()).collect();
    groups.len() >= 3 || groups.first().is_some_and(|g| g.len() >= 3 && !s.starts_with(':'))
}

/// A phone number: 8–15 digits with a leading `+` (E.164), or 9–11 in a national
/// format; not a date or a run of identical digits.
fn valid_phone(s: &str) -> bool {
    let n = digits(s).count();
    let ok_len = if s.starts_with('+') { (8..=15).contains(&n) } else { (9..=11).contains(&n) };
    let first = digits(s).next();
    ok_len && !digits(s).all(|d| Some(d) == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String)> {
        let detectors = Detectors::new(|_| true).expect("patterns compile");
        let mut found = Vec::new();
        detectors.find(text, &mut found);
        found.into_iter().map(|f| (f.kind, text[f.span].to_string())).collect()
    }

    #[test]
    fn finds_each_kind_and_narrows_to_the_secret() {
        let cases = [
            ("mail jane.doe@example.com now", Kind::Email, "jane.doe@example.com"),
            ("from 203.0.113.42 retried", Kind::Ipv4, "203.0.113.42"),
            ("peer 2001:db8::8a2e:370:7334 up", Kind::Ipv6, "2001:db8::8a2e:370:7334"),
            ("call +1 415 555 0134.", Kind::Phone, "+1 415 555 0134"),
            ("call (415) 555-0134", Kind::Phone, "(415) 555-0134"),
            ("card 4111 1111 1111 1111 declined", Kind::Card, "4111 1111 1111 1111"),
            ("ssn 078-05-1120 in", Kind::Ssn, "078-05-1120"),
            ("IBAN GB82 WEST 1234 5698 7654 32 on", Kind::Iban, "GB82 WEST 1234 5698 7654 32"),
            ("IBAN DE89370400440532013000 FOR X", Kind::Iban, "DE89370400440532013000"),
            ("key AKIAIOSFODNN7EXAMPLE used", Kind::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
            ("https://admin:hunter2@internal.example.com/x", Kind::UrlCredentials, "admin:hunter2"),
            ("Authorization: Basic dXNlcjpwYXNz", Kind::Authorization, "dXNlcjpwYXNz"),
            ("token Bearer abc.def-123456 leaked", Kind::BearerToken, "abc.def-123456"),
            ("password=hunter22 set", Kind::ApiKey, "hunter22"),
        ];
        for (text, kind, secret) in cases {
            assert_eq!(kinds(text), vec![(kind, secret.to_string())], "{text}");
        }
    }

    #[test]
    fn leaves_lookalikes_alone() {
        for text in [
            "550e8400-e29b-41d4-a716-446655440000",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
            "at 2026-11-26T04:33:14.123Z and 1767225600000",
            "version 1.4.2, v2.0.1-rc.1, 10.0.22621.2428",
            "4111 1111 1111 1112",
            "agent-code_worker-3 and agent_researcher_7",
            "std::vector::new and 04:33:14 and 00:1A:2B:3C:4D:5E",
            "secret: deployment pending",
        ] {
            assert_eq!(kinds(text), vec![], "{text}");
        }
    }

    #[test]
    fn formats_shorter_than_their_minimum_are_not_secrets() {
        for text in [
            "Authorization: abc",
            "eyJab.eyJabcd.sig1",
            "xoxb-12345",
            "https://hooks.slack.com/services/T00/B00",
        ] {
            assert_eq!(kinds(text), vec![], "{text}");
        }
        assert_eq!(kinds("Authorization: abcdef").len(), 1);
        assert_eq!(kinds("https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXX").len(), 1);
    }

    #[test]
    fn checks_are_the_real_algorithms() {
        assert!(luhn("79927398713"));
        assert!(!luhn("79927398710"));
        assert!(valid_iban("GB82WEST12345698765432"));
        assert!(!valid_iban("GB82WEST12345698765433"));
        assert!(!valid_ssn("666-12-3456") && !valid_ssn("123-00-4567") && valid_ssn("123-45-6789"));
    }
}
