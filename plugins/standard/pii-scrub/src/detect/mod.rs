//! The detectors: one multi-pattern regex finds candidates in a single pass
//! (leftmost first; at one position the earlier pattern wins), and each candidate is
//! confirmed by its form's check — Luhn and the issuer's number ranges for cards,
//! mod 97 and the registry length for IBANs, numbering plans for phones, a decoded
//! JSON header for JWTs, the SSA's rules for SSNs — which may also narrow it (only
//! the secret after `password=`, only the user:password of a URL) or widen it (a
//! phone's extension, a whole token after its prefix). A candidate that fails its
//! check is skipped and the search resumes one character later, so a failed
//! candidate never hides a real one.
//!
//! The search runs over the text's decoded view ([`crate::normalize`]): findings
//! are mapped back to the bytes as written.

mod checks;
mod phone;

use std::ops::Range;

use regex_automata::meta::Regex;
use regex_automata::Input;

use crate::normalize::View;
use checks::*;

/// What a detector finds; the name is the one used in config, counters and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PrivateKey,
    Jwt,
    UrlCredentials,
    Authorization,
    BearerToken,
    AwsAccessKey,
    AwsSecretKey,
    GithubToken,
    SlackToken,
    ApiKey,
    SessionCookie,
    Email,
    Iban,
    Card,
    Ssn,
    Ipv6,
    Ipv4,
    Phone,
}

impl Kind {
    pub const ALL: [Kind; 18] = [
        Kind::PrivateKey,
        Kind::Jwt,
        Kind::UrlCredentials,
        Kind::Authorization,
        Kind::BearerToken,
        Kind::AwsAccessKey,
        Kind::AwsSecretKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::ApiKey,
        Kind::SessionCookie,
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
            Kind::AwsSecretKey => "aws_secret_key",
            Kind::GithubToken => "github_token",
            Kind::SlackToken => "slack_token",
            Kind::ApiKey => "api_key",
            Kind::SessionCookie => "session_cookie",
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

/// Each pattern's shape, which decides its check; several forms report one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    PemPrivateKey,
    Jwt,
    UrlCredentials,
    /// `user:pw@tcp(host:3306)/db`: Go's MySQL driver.
    GoDsn,
    Authorization,
    Cookie,
    SessionPair,
    Bearer,
    AwsKeyId,
    AwsSecret,
    GithubToken,
    SlackToken,
    /// A vendor's key format, known by its prefix.
    PrefixedKey,
    Telegram,
    Mailchimp,
    /// `password=…`, `DB_PASSWORD=…`, `clientSecret: …`.
    LabelledSecret,
    QuotedEmail,
    Email,
    Iban,
    Track1,
    Track2,
    Card,
    LabelledSsn,
    Ssn,
    Ipv6,
    Ipv4,
    /// `pool-121-163-43-58.example.net`.
    DashedIpv4,
    TelUri,
    LabelledPhone,
    InternationalPhone,
    NationalPhone,
}

impl Form {
    /// Forms of digits and separators, which one number can read as several of.
    fn is_number(self) -> bool {
        matches!(
            self,
            Form::Iban
                | Form::Card
                | Form::Ssn
                | Form::Ipv4
                | Form::DashedIpv4
                | Form::InternationalPhone
                | Form::NationalPhone
        )
    }
}

/// ASCII word boundary: works in the lazy DFA on any input.
const B: &str = r"(?-u:\b)";

/// Labels whose value is a secret (`DB_PASSWORD=`, `client-secret:`), matched as
/// whole segments of a name split at `_`, `.` and `-`.
const SECRET_WORDS: &str = "password|passwd|passphrase|pass|pwd|secret|secrets|token|credentials?|signature|sig|(?:api|access|secret|private|signing|encryption|master|client|app|auth|license|session|account|storage|consumer|shared|webhook|sas)[_.-]?key|api[_-]?(?:token|secret)|x-amz-security-token";

/// Candidate patterns in priority order, each with its form and kind.
fn patterns() -> Vec<(Kind, Form, String)> {
    // Characters of a secret after a label or scheme.
    let secret = r#"[^\s"'<>,;&]"#;
    let token = r"[A-Za-z0-9._~+/=-]";
    use Form as F;
    use Kind as K;
    vec![
        (
            K::PrivateKey,
            F::PemPrivateKey,
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)"
                .into(),
        ),
        // Header (a JSON object: `{` is `e` then `w`…`z` in base64), then two more
        // parts (signed; the signature is empty with `alg: none`) or four (JWE).
        (K::Jwt, F::Jwt, format!(r"{B}e[w-z][A-Za-z0-9_-]{{4,}}={{0,2}}(?:\.[A-Za-z0-9_=-]*){{2,5}}")),
        (
            K::UrlCredentials,
            F::UrlCredentials,
            r#"[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s:/@"'<>]*:[^\s/"'<>]+@"#.into(),
        ),
        (
            K::UrlCredentials,
            F::GoDsn,
            format!(r#"{B}[A-Za-z0-9._-]{{1,64}}:[^\s@/"'<>]{{1,128}}@(?:tcp6?|udp|unix)\("#),
        ),
        (
            K::Authorization,
            F::Authorization,
            format!(
                r#"(?i:{B}(?:proxy-)?authorization)["']?\s*[:=]\s*["']?(?:(?i:bearer|basic|digest|token|negotiate|apikey|aws4-hmac-sha256|hmac)\s+)?{secret}+"#
            ),
        ),
        (K::SessionCookie, F::Cookie, format!(r#"(?i:{B}(?:set-)?cookie)["']?\s*[:=]\s*["']?[^\r\n"']+"#)),
        (
            K::SessionCookie,
            F::SessionPair,
            format!(
                r#"(?i:{B}_?(?:[a-z0-9]{{1,24}}[_.-]){{0,3}}(?:sess|session|sessid|sessionid|sid|jsessionid|phpsessid|sessiontoken|remember[_-]?(?:me|token)|connect\.sid)(?:[_.-](?:id|key|token))?)=[^\s;,"'&]+"#
            ),
        ),
        (K::BearerToken, F::Bearer, format!(r"(?i:{B}bearer)\s+[A-Za-z0-9._~+/-]+=*")),
        (
            K::AwsAccessKey,
            F::AwsKeyId,
            format!(r"{B}(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]+{B}"),
        ),
        (K::GithubToken, F::GithubToken, format!(r"{B}(?:gh[pousr]_[A-Za-z0-9]+|github_pat_[A-Za-z0-9_]+){B}")),
        (
            K::SlackToken,
            F::SlackToken,
            format!(r"{B}(?:xox[abposre]|xapp)[.-]{token}+|https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"),
        ),
        (
            K::ApiKey,
            F::PrefixedKey,
            format!(
                r"{B}(?:[sr]k_(?:live|test)_|whsec_|sk-|AIza|gl(?:pat|dt|rt|ptt|cbt|ft|imt|soat|agent)-|npm_|pypi-AgE|SG\.|hf_|shp(?:at|ss|ca|pa)_|dapi|do[opr]_v1_|sq0(?:atp|csp)-|ya29\.|1//0|hv[sbr]\.|dp\.(?:pt|st|sa|ct|scim|audit)\.|pul-|PMAK-|lin_api_|ntn_|AGE-SECRET-KEY-1|glc_|glsa_|sntry[su]_|NRAK-|figd_|pscale_(?:tkn|pw|oauth)_|sbp_|LTAI|ATATT3|key-){token}+"
            ),
        ),
        (K::ApiKey, F::Telegram, format!(r"{B}[0-9]{{8,10}}:AA[A-Za-z0-9_-]+")),
        (K::ApiKey, F::Mailchimp, format!(r"{B}[0-9a-f]{{32}}-us[0-9]{{1,2}}{B}")),
        (
            K::ApiKey,
            F::LabelledSecret,
            format!(
                r#"(?:(?i:{B}(?:[a-z0-9]{{1,24}}[_.-]){{0,4}}(?:{SECRET_WORDS})(?:[_.-][a-z0-9]{{1,24}}){{0,3}})|{B}[a-z][a-z0-9]*(?:Password|Passwd|Pwd|Pass|Secret|Token|ApiKey|Key|Credentials?))\\?["']?\s*[:=]>?\s*\\?["']?{secret}+"#
            ),
        ),
        // An AWS secret access key: 40 characters of base64, whole (the characters
        // around it, matched too, are not base64).
        (K::AwsSecretKey, F::AwsSecret, r"(?:\A|[^A-Za-z0-9+/])[A-Za-z0-9+/]{40}(?:\z|[^A-Za-z0-9+/=])".into()),
        (K::Email, F::QuotedEmail, r#""[^"\\\r\n]{1,64}"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}"#.into()),
        // The local part is bounded (64, as RFC 5321 bounds it): unbounded, a run
        // of letters, digits and dots kept a candidate alive to the text's end, and
        // every search over such a text read the rest of it.
        (
            K::Email,
            F::Email,
            r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]+)".into(),
        ),
        (K::Iban, F::Iban, format!(r"{B}[A-Za-z]{{2}}[0-9]{{2}}(?:[ -]?[A-Za-z0-9])+{B}")),
        (K::Card, F::Track1, r"%?B[0-9]{12,19}\^[^\^\r\n]{1,26}\^[0-9]{4}[0-9 ]*\??".into()),
        (K::Card, F::Track2, r";[0-9]{12,19}=[0-9]{4,}\??".into()),
        // Two digits first: a list of single digits (`1.2.3.4.…`) starts no candidate.
        (K::Card, F::Card, format!(r"{B}[0-9]{{2}}(?:[ .-]?[0-9]){{10,17}}{B}")),
        (
            K::Ssn,
            F::LabelledSsn,
            format!(
                r"(?i:{B}(?:ssn|ss#|ssan|social[ _-]?security(?:[ _-]?(?:number|num|nr|no))?|itin|taxpayer[ _-]?id(?:entification)?(?:[ _-]?(?:number|no))?)\.?)[\s#:=.-]{{0,4}}[0-9]{{3}}[ .-]?[0-9]{{2}}[ .-]?[0-9]{{4}}{B}"
            ),
        ),
        (K::Ssn, F::Ssn, format!(r"{B}[0-9]{{3}}[- .][0-9]{{2}}[- .][0-9]{{4}}{B}")),
        (
            K::Ipv6,
            F::Ipv6,
            format!(r"(?:{B}[0-9A-Fa-f]{{0,4}}|::)(?::[0-9A-Fa-f]{{0,4}}){{1,7}}(?:\.[0-9]{{1,3}}){{0,3}}"),
        ),
        (K::Ipv4, F::Ipv4, format!(r"{B}[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}{B}")),
        (K::Ipv4, F::DashedIpv4, format!(r"{B}[0-9]{{1,3}}(?:-[0-9]{{1,3}}){{3}}{B}")),
        (K::Phone, F::TelUri, format!(r"(?i:{B}(?:tel|callto|sms|fax):)\+?[0-9(][0-9 ().-]{{4,30}}(?:;[A-Za-z-]+=[A-Za-z0-9.+-]*)*")),
        (
            K::Phone,
            F::LabelledPhone,
            format!(
                r"(?i:{B}(?:phone|telephone|tel|mobile|mob|cell|cellphone|fax|whatsapp|contact|call|sms|ph)(?:[ _.-]?(?:no|num|number|nr|#))?\.?)[\s#:=.-]{{0,4}}\+?[0-9(][0-9 ().-]{{5,24}}[0-9]{B}"
            ),
        ),
        (
            K::Phone,
            F::InternationalPhone,
            format!(r"(?:\+|{B}00)[1-9][0-9]{{0,3}}(?:[ .\-/]{{0,2}}(?:\(0\)|\(?[0-9]{{1,6}}\)?)){{1,7}}"),
        ),
        (
            K::Phone,
            F::NationalPhone,
            format!(r"(?:\(0?[0-9]{{1,5}}\)[ .-]?|{B}[0-9]{{1,5}}[ .\-/]{{1,2}})(?:[0-9]{{1,8}}[ .\-/]{{1,2}}){{0,4}}[0-9]{{2,10}}{B}|{B}0[1-9][0-9]{{8,10}}{B}"),
        ),
    ]
}

/// A confirmed finding: which detector, and the bytes to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    pub span: Range<usize>,
}

/// Words, matched ignoring ASCII case at the start of a word (or a camel-case
/// hump: `clientSecret`), without which no label, scheme or key prefix detector
/// can fire: a string holding none of them (and none of the characters and digit
/// counts in [`Detectors::worth_scanning`]) is skipped. Labels of numbers come
/// second: they count only in text with 7 digits or more.
const KEYWORDS: &[&str] = &[
    // Labels of secrets, and the schemes and headers that carry them.
    "passw",
    "passphrase",
    "pass=",
    "pass:",
    "pass\"",
    "pwd",
    "secret",
    "token",
    "credential",
    "signature",
    "sig=",
    "key=",
    "key:",
    "key\"",
    "key'",
    "key\\",
    "key ",
    "key_",
    "key-",
    "authorization",
    "bearer",
    "cookie",
    "session",
    "sessid",
    "phpsessid",
    "jsessionid",
    "sid=",
    "remember",
    "-----begin",
    // JWT headers: `{"`, `{ "`, `{\n`, `{\r\n` in base64.
    "eyj",
    "eyi",
    "eya",
    "ewo",
    "ew0",
    // Vendor key prefixes.
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "whsec_",
    "sk-",
    "aiza",
    "glpat-",
    "gldt-",
    "glrt-",
    "glptt-",
    "glcbt-",
    "glft-",
    "glimt-",
    "glsoat-",
    "glagent-",
    "npm_",
    "pypi-",
    "sg.",
    "hf_",
    "shpat_",
    "shpss_",
    "shpca_",
    "shppa_",
    "dapi",
    "dop_v1_",
    "doo_v1_",
    "dor_v1_",
    "sq0",
    "ya29.",
    "1//0",
    "hvs.",
    "hvb.",
    "hvr.",
    "dp.",
    "pul-",
    "pmak-",
    "lin_api_",
    "ntn_",
    "age-secret-key-",
    "glc_",
    "glsa_",
    "sntry",
    "nrak-",
    "figd_",
    "pscale_",
    "sbp_",
    "ltai",
    "atatt3",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "xapp-",
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
    "@tcp(",
    "@tcp6(",
    "@udp(",
    "@unix(",
];

/// Labels of numbers: phones, SSNs and ITINs, Telegram's bot ids, Mailchimp's
/// data centres.
const NUMBER_KEYWORDS: &[&str] = &[
    "phone", "tel", "mobile", "mob", "cell", "fax", "whatsapp", "contact", "call", "sms", "ph", "ssn", "ss#",
    "ssan", "social", "itin", "taxpayer", "callto:", ":aa", "-us",
];

pub struct Detectors {
    regex: Regex,
    /// The forms made of digits and separators, each alone, in priority order:
    /// at one position the search reports only the first pattern's candidate,
    /// so where it fails its check the later ones are tried there, anchored (a
    /// card candidate must not hide the address or phone it also reads as).
    numeric: Vec<(Kind, Form, Regex)>,
    keywords: Keywords,
    forms: Vec<(Kind, Form)>,
    /// Indexed by `Kind as usize`: off detectors are found (so they still shadow
    /// lookalikes of other detectors) but not reported.
    enabled: [bool; Kind::ALL.len()],
}

impl Detectors {
    pub fn new(enabled: impl Fn(Kind) -> bool) -> Result<Detectors, String> {
        let patterns = patterns();
        let forms = patterns.iter().map(|(k, f, _)| (*k, *f)).collect();
        let sources: Vec<&str> = patterns.iter().map(|(_, _, p)| p.as_str()).collect();
        // Without literal prefilters: with this many patterns they cost more than
        // the lazy DFA they would spare (measured: 2.5x slower per event).
        let build = |sources: &[&str]| {
            Regex::builder()
                .configure(Regex::config().auto_prefilter(false).hybrid_cache_capacity(8 << 20))
                .build_many(sources)
                .map_err(|e| format!("detector patterns: {e}"))
        };
        let regex = build(&sources)?;
        let numeric = patterns
            .iter()
            .filter(|(_, f, _)| f.is_number())
            .map(|(k, f, p)| Ok((*k, *f, build(&[p.as_str()])?)))
            .collect::<Result<Vec<_>, String>>()?;
        let keywords = Keywords::new();
        let mut on = [false; Kind::ALL.len()];
        for kind in Kind::ALL {
            on[kind as usize] = enabled(kind);
        }
        Ok(Detectors { regex, numeric, keywords, forms, enabled: on })
    }

    /// Every confirmed finding in `text`, in order, not overlapping, as spans of
    /// `text` as written (the search reads its decoded view). The work is bounded
    /// by [`scan_budget`]: the searches may read each byte a few times over (a
    /// candidate that fails its check is searched past again from its second
    /// character), never more. Returns where the search stopped when the budget
    /// ran out first: from there on, the text was not looked at, and the caller
    /// must not let it out as it is.
    pub fn find(&self, text: &str, found: &mut Vec<Found>) -> Option<usize> {
        let view = View::of(text);
        if !self.worth_scanning(&view.text) {
            return None;
        }
        let first = found.len();
        let stopped = self.find_in(&view.text, found);
        if view.is_decoded() {
            for f in &mut found[first..] {
                f.span = view.original(f.span.clone());
            }
        }
        stopped.map(|at| view.original_at(at))
    }

    fn find_in(&self, text: &str, found: &mut Vec<Found>) -> Option<usize> {
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
            let (mut kind, form) = self.forms[m.pattern().as_usize()];
            let mut confirmed = confirm(form, text, m.range());
            if confirmed.is_none() && form.is_number() {
                if let Some((k, span)) = self.number_after(form, text, m.start()) {
                    (kind, confirmed) = (k, Some(span));
                }
            }
            match confirmed {
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

    /// A finding of a numeric form after `failed` starting exactly at `start`.
    fn number_after(&self, failed: Form, text: &str, start: usize) -> Option<(Kind, Range<usize>)> {
        let input = Input::new(text).range(start..).anchored(regex_automata::Anchored::Yes);
        let later = self.numeric.iter().skip_while(|(_, f, _)| *f != failed).skip(1);
        later.into_iter().find_map(|(kind, form, regex)| {
            let m = regex.search(&input)?;
            Some((*kind, confirm(*form, text, m.range())?))
        })
    }

    /// Whether `text` (decoded) can hold anything at all: every detector needs
    /// one of an `@` (email, URL credentials), two colons (IPv6), a run of 8
    /// digits among number punctuation (phone, card, SSN), 4 digits and 3 dots
    /// or dashes in one (IPv4), a word starting `XX00` with `XX` a country that
    /// issues IBANs, a 40-character base64 run (AWS secret) or a keyword at the
    /// start of a word (labels of numbers only with 7 digits or more in the
    /// text). Most strings of an event — hex ids included, whose digits are
    /// split by letters — have none.
    ///
    /// One pass, each byte looked up once in [`BYTE_CLASSES`]: a letter inside a
    /// word, the most common byte, costs a lookup and two tests; keywords are
    /// looked up only where a word starts. (This runs on every string of every
    /// event, in WebAssembly: a second pass for the keywords cost as much again.)
    pub fn worth_scanning(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let mut colons = 0usize;
        let mut all_digits = 0usize;
        // Digits and dots of the current run of digits and number punctuation.
        let (mut digits, mut dots) = (0usize, 0usize);
        let mut base64_run = 0usize;
        let mut number_label = false;
        // Class of the byte before: none at the start, which starts a word.
        let mut before = 0u8;
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let class = BYTE_CLASSES[usize::from(b)];
            if class == LOWER && before & ALNUM != 0 {
                // Inside a word, the common case: the rest of its lower-case
                // letters at once. They start nothing (no word, no camel-case
                // hump), end a run of digits and extend a base64 run.
                let start = i;
                while bytes.get(i).is_some_and(|b| b.is_ascii_lowercase()) {
                    i += 1;
                }
                base64_run += i - start;
                if base64_run >= 40 {
                    return true;
                }
                (digits, dots) = (0, 0);
                before = LOWER;
                continue;
            }
            if class & BASE64 != 0 {
                base64_run += 1;
                if base64_run >= 40 {
                    return true;
                }
            } else {
                base64_run = 0;
            }
            // Where a keyword may start: a word (or a camel-case hump:
            // `clientSecret`), or one of the marks that start keywords anywhere.
            let keyword_may_start = if class & LETTER != 0 {
                before & ALNUM == 0 || (before & LOWER != 0 && class & UPPER != 0)
            } else if class & DIGIT != 0 {
                before & ALNUM == 0
            } else {
                class & MARK != 0
            };
            if class & DIGIT != 0 {
                digits += 1;
                all_digits += 1;
                if digits >= 8 || (dots >= 3 && digits >= 4) {
                    return true;
                }
            } else if class & NUMBER_PUNCT != 0 {
                dots += 1;
            } else if class & NUMBER_SPACE == 0 {
                if b == b'@' {
                    return true;
                }
                colons += usize::from(b == b':');
                (digits, dots) = (0, 0);
                if class & LETTER != 0 && before & ALNUM == 0 {
                    if let [a, c, b'0'..=b'9', b'0'..=b'9', ..] = bytes[i..] {
                        if c.is_ascii_alphabetic()
                            && iban_country(&[a.to_ascii_uppercase(), c.to_ascii_uppercase()])
                        {
                            return true;
                        }
                    }
                }
            }
            if keyword_may_start {
                match self.keywords.at(bytes, i) {
                    Some(Label::Secret) => return true,
                    Some(Label::Number) => number_label = true,
                    None => {}
                }
            }
            before = class;
            i += 1;
        }
        colons >= 2 || (number_label && all_digits >= 7)
    }
}

// Byte classes of `worth_scanning`'s one pass (bits of one byte).
const LOWER: u8 = 1;
const UPPER: u8 = 2;
const DIGIT: u8 = 4;
/// `+` and `/`: base64 beside letters and digits.
const BASE64_MARK: u8 = 8;
/// `.` and `-`: the dots of a dotted number.
const NUMBER_PUNCT: u8 = 16;
/// ` `, `(`, `)`, `/`, `+`: inside a number, neither ending it nor dots.
const NUMBER_SPACE: u8 = 32;
/// `-`, `:`, `@`: start keywords wherever they are (`-us`, `:AA`, `@tcp(`).
const MARK: u8 = 64;
const LETTER: u8 = LOWER | UPPER;
const ALNUM: u8 = LETTER | DIGIT;
const BASE64: u8 = ALNUM | BASE64_MARK;

static BYTE_CLASSES: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut classes = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        classes[b] = if byte.is_ascii_lowercase() {
            LOWER
        } else if byte.is_ascii_uppercase() {
            UPPER
        } else if byte.is_ascii_digit() {
            DIGIT
        } else {
            match byte {
                b'+' | b'/' => BASE64_MARK | NUMBER_SPACE,
                b' ' | b'(' | b')' => NUMBER_SPACE,
                b'.' => NUMBER_PUNCT,
                b'-' => NUMBER_PUNCT | MARK,
                b':' | b'@' => MARK,
                _ => 0,
            }
        };
        b += 1;
    }
    classes
}

/// What a keyword labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// A secret, a scheme or a key prefix: the text is worth scanning.
    Secret,
    /// A number (phone, SSN, …): worth scanning only with enough digits.
    Number,
}

/// The keywords, looked up by their first two bytes (lower-cased) at each
/// place a word starts: a handful of lookups per string, where a multi-pattern
/// automaton would read every byte through a table (and in WebAssembly, without
/// the SIMD prefilters that make that cheap natively).
struct Keywords {
    /// (first two bytes, keyword, what it labels), sorted.
    entries: Vec<([u8; 2], &'static [u8], Label)>,
    /// One bit per pair of first bytes that starts a keyword: most words are
    /// ruled out by one lookup.
    pairs: Box<[u64; 1024]>,
    /// For each word of `pairs`, how many bits are set in the words before it:
    /// a pair's rank among the pairs, found in constant time.
    ranks: Box<[u16; 1024]>,
    /// By rank: the range of `entries` with that pair.
    spans: Vec<(u16, u16)>,
}

impl Keywords {
    fn new() -> Keywords {
        let mut entries: Vec<([u8; 2], &'static [u8], Label)> = KEYWORDS
            .iter()
            .map(|k| (k, Label::Secret))
            .chain(NUMBER_KEYWORDS.iter().map(|k| (k, Label::Number)))
            .map(|(k, label)| ([k.as_bytes()[0], k.as_bytes()[1]], k.as_bytes(), label))
            .collect();
        // Sorted by pair, the pairs' order is their bits' order in `pairs`.
        entries.sort_by_key(|(key, word, _)| (*key, *word));
        let mut pairs = Box::new([0u64; 1024]);
        let mut spans: Vec<(u16, u16)> = Vec::new();
        for (i, (key, _, _)) in entries.iter().enumerate() {
            let bit = Keywords::bit(*key);
            let index = u16::try_from(i).unwrap_or(u16::MAX);
            if pairs[bit >> 6] & (1 << (bit & 63)) == 0 {
                pairs[bit >> 6] |= 1 << (bit & 63);
                spans.push((index, index + 1));
            } else if let Some(last) = spans.last_mut() {
                last.1 = index + 1;
            }
        }
        let mut ranks = Box::new([0u16; 1024]);
        let mut set = 0u16;
        for (rank, word) in ranks.iter_mut().zip(pairs.iter()) {
            *rank = set;
            set += word.count_ones() as u16;
        }
        Keywords { entries, pairs, ranks, spans }
    }

    fn bit(key: [u8; 2]) -> usize {
        usize::from(key[0]) << 8 | usize::from(key[1])
    }

    /// The keyword starting at `at` of `text`, ignoring ASCII case: a label of a
    /// secret when there is one, else of a number.
    fn at(&self, text: &[u8], at: usize) -> Option<Label> {
        let [first, second] = [text[at], *text.get(at + 1)?];
        let bit = Keywords::bit([first.to_ascii_lowercase(), second.to_ascii_lowercase()]);
        let word = self.pairs[bit >> 6];
        let below = 1u64 << (bit & 63);
        if word & below == 0 {
            return None;
        }
        let rank = usize::from(self.ranks[bit >> 6]) + (word & (below - 1)).count_ones() as usize;
        let (start, end) = self.spans[rank];
        let mut found = None;
        for (_, word, label) in &self.entries[usize::from(start)..usize::from(end)] {
            if text.get(at..at + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word)) {
                if *label == Label::Secret {
                    return Some(Label::Secret);
                }
                found = Some(Label::Number);
            }
        }
        found
    }
}

/// Bytes the searches over a text of `len` bytes may read in all: 12 passes over
/// it, and 4 KiB for short texts. Real text needs about one pass, a list of
/// numbers a few (each number may start a phone candidate up to six groups
/// long); only input made of candidates that fail their checks one after another
/// (`pwd:x(pwd:x(…`, `AB12 AB12 …`) gets near it.
pub fn scan_budget(len: usize) -> usize {
    len.saturating_mul(12).saturating_add(4096)
}

fn next_char(text: &str, at: usize) -> usize {
    let mut next = at + 1;
    while next < text.len() && !text.is_char_boundary(next) {
        next += 1;
    }
    next
}

/// The form's check: the span to replace, or `None` for a lookalike.
fn confirm(form: Form, text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let s = &text[span.clone()];
    let before = text[..span.start].chars().next_back();
    let shift = |r: Range<usize>| span.start + r.start..span.start + r.end;
    match form {
        Form::PemPrivateKey => Some(shift(0..private_key_len(s))),
        Form::Jwt => jwt_len(s).map(|n| shift(0..n)),
        Form::AwsKeyId => (s.len() == 20).then_some(span),
        Form::AwsSecret => {
            let start = s.chars().next().filter(|c| !is_base64(*c)).map_or(0, char::len_utf8);
            let secret = &s[start..start + 40];
            aws_secret(secret).then(|| shift(start..start + 40))
        }
        Form::GithubToken => {
            let ok = match s.strip_prefix("github_pat_") {
                Some(rest) => (22..=255).contains(&rest.len()),
                None => (36..=255).contains(&(s.len() - 4)),
            };
            ok.then_some(span)
        }
        Form::SlackToken => {
            let s = s.trim_end_matches(['.', '-', '=']);
            // A token: `xoxb-` and 10 more; a webhook: its services URL (33) and 20 more.
            let min = if s.starts_with("https://") { 53 } else { 15 };
            (s.len() >= min).then(|| shift(0..s.len()))
        }
        Form::PrefixedKey => {
            // A sentence's full stop is not the key's; `-`, `_` and `=` can be.
            let s = s.trim_end_matches('.');
            prefixed_key_long_enough(s).then(|| shift(0..s.len()))
        }
        Form::Telegram => (s.len() >= 44).then_some(span),
        Form::Mailchimp => Some(span),
        Form::UrlCredentials => {
            let start = s.find("://")? + 3;
            Some(shift(start..s.len() - 1))
        }
        Form::GoDsn => Some(shift(0..s.rfind('@')?)),
        Form::Authorization => {
            let value = after_separator(s)?;
            (s.len() - value >= 6).then(|| shift(value..s.len()))
        }
        Form::Cookie => {
            let value = after_separator(s)?;
            let cookie = s[value..].trim_end();
            (cookie.len() >= 8).then(|| shift(value..value + cookie.len()))
        }
        Form::SessionPair => {
            let value = s.find('=')? + 1;
            (s.len() - value >= 8 && tokenish(&s[value..])).then(|| shift(value..s.len()))
        }
        Form::Bearer => {
            let token_start = s.find(char::is_whitespace)?;
            let token = s[token_start..].trim_start();
            // `token_type=Bearer expires_in=3600`: what follows is a field, not a token.
            let next = text[span.end..].chars().next();
            let field_follows = next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            (token.len() >= 8 && tokenish(token) && !field_follows)
                .then(|| shift(s.len() - token.len()..s.len()))
        }
        Form::LabelledSecret => labelled_secret(text, span.clone()),
        Form::QuotedEmail | Form::Email => Some(span),
        Form::Iban => longest_prefix(&s[..s.len().min(MAX_CHECKED)], valid_iban).map(|n| shift(0..n)),
        Form::Track1 => {
            let pan_start = usize::from(s.starts_with('%')) + 1;
            let pan = &s[pan_start..s.find('^')?];
            valid_pan(pan).then(|| shift(0..s.trim_end().len()))
        }
        Form::Track2 => {
            let pan = &s[1..s.find('=')?];
            valid_pan(pan).then_some(span)
        }
        Form::Card => card(text, span),
        Form::LabelledSsn => {
            let number =
                s.len() - s.bytes().rev().position(|b| !(b.is_ascii_digit() || b" .-".contains(&b)))?;
            let number = number + s[number..].find(|c: char| c.is_ascii_digit())?;
            valid_ssn_digits(&s[number..]).then(|| shift(number..s.len()))
        }
        Form::Ssn => {
            let b = s.as_bytes();
            // One separator, used twice; dotted ones only after a label (a date
            // or version reads the same).
            (b[3] == b[6] && b[3] != b'.' && valid_ssn_digits(s)).then_some(span)
        }
        Form::Ipv6 => {
            let end = s.trim_end_matches(['.', ':']).len();
            let candidate = &s[..end];
            let next = text[span.start + end..].chars().next();
            (valid_ipv6(candidate) && !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| shift(0..end))
        }
        Form::Ipv4 => {
            // Part of a dotted version (v1.2.3.4, 1.2.3.4.5) or a longer number.
            let continues = text[span.end..].starts_with(['.', '-'])
                && text[span.end + 1..].starts_with(|c: char| c.is_ascii_digit());
            if matches!(before, Some('v' | 'V' | '.' | '-' | '_'))
                || continues
                || version_label_before(text, span.start)
            {
                return None;
            }
            valid_ipv4(s).then_some(span)
        }
        Form::DashedIpv4 => {
            // Only in a host name: `ip-10-0-0-5`, `121-163-43-58.static.example`.
            let after = &text[span.end..];
            let host_after =
                after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            let host_before = text[..span.start].ends_with('-')
                && text[..span.start - 1].ends_with(|c: char| c.is_ascii_alphanumeric());
            let continues = after.starts_with('-') || (after.starts_with('.') && !host_after);
            ((host_after || host_before) && !continues && valid_octets(s, '-')).then_some(span)
        }
        Form::TelUri => {
            let number = s.find(':')? + 1;
            let digits =
                s[number..].split(';').next().unwrap_or("").bytes().filter(u8::is_ascii_digit).count();
            (6..=15).contains(&digits).then(|| shift(number..s.trim_end().len()))
        }
        Form::LabelledPhone => {
            let number = s.find(|c: char| c.is_ascii_digit() || c == '+' || c == '(').filter(|&i| {
                // The label's own `#` or `:` ends before the number.
                s[i..].bytes().filter(u8::is_ascii_digit).count() >= 7
            })?;
            let end = phone::labelled(&s[number..])?;
            Some(phone::with_extension(text, shift(number..number + end)))
        }
        Form::InternationalPhone | Form::NationalPhone => {
            let continues = text[span.end..].starts_with(['.', ':'])
                && text[span.end + 1..].starts_with(|c: char| c.is_ascii_digit());
            if matches!(before, Some('.' | '-' | '/' | ':' | '_')) || continues || unit_after(text, span.end)
            {
                return None;
            }
            let checked = &s[..s.len().min(MAX_CHECKED)];
            let valid = if form == Form::InternationalPhone { phone::international } else { phone::national };
            let n = longest_prefix(checked, valid)?;
            let found = shift(0..n);
            if form == Form::NationalPhone && !s.starts_with('(') && phone::in_number_list(text, &found) {
                return None;
            }
            Some(phone::with_extension(text, found))
        }
    }
}

/// A labelled secret (`password=…`): only the value, and only one that looks
/// like a secret; a quoted value runs to its closing quote. A label naming data
/// about the secret (`token_type`, `password_expires`) is not one.
fn labelled_secret(text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let s = &text[span.clone()];
    let sep = s.find([':', '='])?;
    if label_names_metadata(&s[..sep]) {
        return None;
    }
    let value = after_separator(s)?;
    let quote = s[..value]
        .trim_end_matches(char::is_whitespace)
        .chars()
        .next_back()
        .filter(|c| *c == '"' || *c == '\'');
    let start = span.start + value;
    let end = match quote {
        // Up to the closing quote (unescaped), within 256 bytes; else the run.
        Some(q) => text[start..]
            .char_indices()
            .take(256)
            .find(|&(i, c)| c == q && !text[..start + i].ends_with('\\'))
            .map_or(span.end, |(i, _)| start + i),
        None => span.end,
    };
    let end = start + text[start..end].trim_end_matches('\\').len();
    let value = &text[start..end];
    // A quoted password is one whatever it looks like (`"correct horse battery"`).
    let passphrase =
        quote.is_some() && label_names_password(&s[..sep]) && value.len() >= 4 && !is_placeholder(value);
    (end > start && (tokenish(value) || passphrase)).then_some(start..end)
}

#[cfg(test)]
mod tests;
