//! The forms corpus: every kind of PII and secret in the forms real data writes
//! it in — encodings and escapes (percent, HTML references, backslash escapes
//! left by encoders that ran twice, zero-width and soft-hyphen splits, `[at]`
//! obfuscation), national numbering plans, vendor token formats, labels — built
//! from the documented formats (each numbering plan, each vendor's prefix and
//! alphabet, the RFCs' address and URI syntax) with random values and computed
//! check digits; and hard lookalikes: ids, hashes, versions, ISINs, BICs, VAT
//! ids, barcodes, order numbers, durations. Each record is one value in a random
//! sentence; the seed fixes the file.

use super::generate::{luhn_digit, uuid, Rng, ALNUM, B64, B64URL, LOWER, SENTENCES, UPPER};
use serde_json::json;

pub const SEED: u64 = 0xf0_5eed_2026_1130;
pub const PER_FORM: usize = 100;
pub const PER_LOOKALIKE_FORM: usize = 120;

/// A generated value: the text put in the sentence and the part of it that
/// must not survive.
pub struct Value {
    pub text: String,
    pub secret: String,
}

fn same(s: String) -> Value {
    Value { text: s.clone(), secret: s }
}

fn labelled(text: String, secret: String) -> Value {
    Value { text, secret }
}

const FIRST: &[&str] =
    &["jane", "john", "maria", "wei", "aisha", "lars", "priya", "diego", "yuki", "fatima", "noah", "olga"];
const LAST: &[&str] = &[
    "doe", "smith", "garcia", "chen", "khan", "okafor", "nielsen", "patel", "lopez", "tanaka", "brown",
    "ivanova",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "acme.io",
    "uni.example.ac.uk",
    "example.co.jp",
    "startup.dev",
    "example.museum",
];

fn local(r: &mut Rng) -> String {
    let (f, l) = (r.pick(FIRST), r.pick(LAST));
    match r.below(4) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}{}", r.range(1, 99)),
        2 => format!("{}{l}", &f[..1]),
        _ => format!("{f}_{l}"),
    }
}

fn email(r: &mut Rng) -> String {
    format!("{}@{}", local(r), r.pick(DOMAINS))
}

/// Characters of `s` spelled as `spell` does, the rest as they are.
fn spell_each(s: &str, chars: &[char], spell: impl Fn(char) -> String) -> String {
    s.chars().map(|c| if chars.contains(&c) { spell(c) } else { c.to_string() }).collect()
}

/// `s` with `insert` put between two random characters, `n` times.
fn split_with(r: &mut Rng, s: &str, insert: &str, n: usize) -> String {
    let mut chars: Vec<String> = s.chars().map(String::from).collect();
    for _ in 0..n {
        let at = 1 + r.below(chars.len() as u64 - 1) as usize;
        chars[at] = format!("{insert}{}", chars[at]);
    }
    chars.concat()
}

fn b64_encode(bytes: &[u8], alphabet: &str, pad: bool) -> String {
    let table: Vec<char> = alphabet.chars().collect();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize]);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn b64url(s: &str) -> String {
    b64_encode(s.as_bytes(), B64URL, false)
}

// ---- email ----

fn email_form(r: &mut Rng, form: &str) -> Value {
    let e = email(r);
    match form {
        "plain" => same(e),
        "uppercase" => same(e.to_uppercase()),
        "plus_tag" => same(e.replacen('@', &format!("+{}@", r.from(LOWER, 5)), 1)),
        "mailto" => labelled(format!("mailto:{e}"), e),
        "percent" => {
            let enc = e.replace('@', "%40");
            labelled(format!("https://signup.portal.test/invite?email={enc}&ref=mail"), enc)
        }
        "percent_twice" => same(e.replace('@', "%2540")),
        "percent_all" => same(spell_each(&e, &['@', '.', '_'], |c| format!("%{:02X}", c as u32))),
        "html_decimal" => same(e.replace('@', "&#64;").replace('.', "&#46;")),
        "html_hex" => same(e.replace('@', "&#x40;")),
        "html_named" => same(e.replace('@', "&commat;").replace('.', "&period;")),
        "json_escaped" => same(e.replace('@', "\\u0040")),
        "python_escaped" => same(e.replace('@', "\\x40")),
        "zero_width" => same(split_with(r, &e, "\u{200B}", 2)),
        "soft_hyphen" => same(split_with(r, &e, "\u{00AD}", 2)),
        "word_joiner" => same(split_with(r, &e, "\u{2060}", 1)),
        "bracket_at" => same(e.replace('@', "[at]").replace('.', "[dot]")),
        "paren_at" => same(e.replace('@', "(at)").replace('.', "(dot)")),
        "brace_at" => same(e.replace('@', "{at}")),
        "spaced_at" => same(e.replace('@', " [at] ").replace('.', " [dot] ")),
        "upper_at" => same(e.replace('@', " (AT) ")),
        "quoted_local" => same(format!("\"{} {}\"@{}", r.pick(FIRST), r.pick(LAST), r.pick(DOMAINS))),
        "idn_local" => same(format!(
            "{}@{}",
            r.pick(&["josé", "zoë.müller", "søren", "françois", "đorđe", "ayşe"]),
            r.pick(DOMAINS)
        )),
        "idn_domain" => same(format!(
            "{}@{}",
            local(r),
            r.pick(&[
                "bücher.de",
                "münchen.example",
                "例え.jp",
                "пример.рф",
                "exämple.com",
                "xn--bcher-kva.de"
            ])
        )),
        "fullwidth_at" => same(e.replace('@', "＠")),
        _ => unreachable!("email form {form}"),
    }
}

// ---- IP addresses ----

fn octets(r: &mut Rng) -> [u64; 4] {
    [r.range(1, 223), r.below(256), r.below(256), r.range(1, 254)]
}

fn ip_form(r: &mut Rng, form: &str) -> Value {
    let o = octets(r);
    let dotted = format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]);
    let dashed = format!("{}-{}-{}-{}", o[0], o[1], o[2], o[3]);
    match form {
        "plain" => same(dotted),
        "port" => labelled(format!("{dotted}:{}", r.range(1024, 65535)), dotted),
        "cidr" => labelled(format!("{dotted}/{}", r.range(8, 32)), dotted),
        "reverse_dns_pool" => {
            labelled(format!("pool-{dashed}.{}.example.net", r.pick(&["nycmny", "bstnma", "lsanca"])), dashed)
        }
        "ec2_host" => labelled(format!("ip-{dashed}.ec2.internal"), dashed),
        "dashed_host" => labelled(format!("{dashed}.static.isp-example.com"), dashed),
        "in_addr_arpa" => {
            let rev = format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0]);
            labelled(format!("{rev}.in-addr.arpa"), rev)
        }
        "forwarded_for" => labelled(format!("X-Forwarded-For: {dotted}, 10.0.0.1"), dotted),
        "ipv6_full" => same((0..8).map(|_| format!("{:x}", r.below(0x10000))).collect::<Vec<_>>().join(":")),
        "ipv6_compressed" => same(format!(
            "2001:db8:{:x}::{:x}:{:x}",
            r.below(0x10000),
            r.range(1, 0xffff),
            r.range(1, 0xffff)
        )),
        "ipv6_link_local" => same(format!(
            "fe80::{:x}:{:x}:{:x}:{:x}",
            r.range(1, 0xffff),
            r.below(0x10000),
            r.below(0x10000),
            r.range(1, 0xffff)
        )),
        "ipv6_mapped" => same(format!("::ffff:{dotted}")),
        "ipv6_bracket_port" => {
            let ip = format!("2001:db8::{:x}:{:x}", r.range(1, 0xffff), r.range(1, 0xffff));
            labelled(format!("[{ip}]:{}", r.range(1024, 65535)), ip)
        }
        "ipv6_upper" => same(format!("2001:DB8:{:X}::{:X}", r.range(1, 0xffff), r.range(1, 0xffff))),
        _ => unreachable!("ip form {form}"),
    }
}

// ---- phones ----

fn nanp(r: &mut Rng) -> (u64, u64, String) {
    (r.range(201, 989), r.range(200, 999), r.digits(4))
}

fn phone_form(r: &mut Rng, form: &str) -> Value {
    let d = |r: &mut Rng, n: usize| r.digits(n);
    let pairs = |r: &mut Rng, sep: &str| (0..4).map(|_| r.digits(2)).collect::<Vec<_>>().join(sep);
    match form {
        "us_e164" => {
            let (a, e, l) = nanp(r);
            same(format!("+1 {a} {e} {l}"))
        }
        "us_paren" => {
            let (a, e, l) = nanp(r);
            same(format!("({a}) {e}-{l}"))
        }
        "us_dash" => {
            let (a, e, l) = nanp(r);
            same(format!("{a}-{e}-{l}"))
        }
        "us_dot" => {
            let (a, e, l) = nanp(r);
            same(format!("{a}.{e}.{l}"))
        }
        "us_one_prefix" => {
            let (a, e, l) = nanp(r);
            same(format!("1-{a}-{e}-{l}"))
        }
        "us_extension" => {
            let (a, e, l) = nanp(r);
            let ext = r.range(10, 9999);
            same(format!("{a}-{e}-{l} {} {ext}", r.pick(&["ext.", "x", "ext", "extension"])))
        }
        "labelled_ten_digits" => {
            let (a, e, l) = nanp(r);
            let n = format!("{a}{e}{l}");
            labelled(
                format!("{}{n}", r.pick(&["phone: ", "Phone=", "tel. ", "mobile ", "cell: ", "call "])),
                n,
            )
        }
        "tel_uri" => {
            let (a, e, l) = nanp(r);
            let n = format!("+1-{a}-{e}-{l}");
            labelled(format!("<a href=\"tel:{n}\">call</a>"), n)
        }
        "fr_pairs" => same(format!("0{} {}", r.range(1, 9), pairs(r, " "))),
        "fr_dots" => same(format!("0{}.{}", r.range(1, 9), pairs(r, "."))),
        "fr_compact" => same(format!("0{}{}", r.range(1, 7), d(r, 8))),
        "fr_intl" => same(format!("+33 {} {}", r.range(1, 9), pairs(r, " "))),
        "fr_intl_trunk" => same(format!("+33 (0){} {}", r.range(1, 9), pairs(r, " "))),
        "fr_00" => same(format!("0033 {} {}", r.range(1, 9), pairs(r, " "))),
        "de_area" => same(format!("0{} {}", r.pick(&["30", "40", "89", "221", "69", "711"]), d(r, 7))),
        "de_paren" => same(format!("(0{}) {}", r.pick(&["30", "40", "89", "221"]), d(r, 7))),
        "de_slash" => same(format!("0{}/{}", r.pick(&["30", "40", "89", "221"]), d(r, 7))),
        "de_mobile" => same(format!("01{}{} {}", r.range(5, 7), r.below(10), d(r, 7))),
        "de_compact" => same(format!("0{}{}", r.pick(&["30", "40", "89", "151", "171"]), d(r, 8))),
        "de_intl" => same(format!("+49 {} {}", r.pick(&["30", "40", "89", "221", "151", "171"]), d(r, 7))),
        "uk_london" => same(format!("020 {} {}", r.range(7000, 8999), d(r, 4))),
        "uk_mobile" => same(format!("07{} {}", d(r, 3), d(r, 6))),
        "uk_intl_trunk" => same(format!("+44 (0)20 {} {}", r.range(7000, 8999), d(r, 4))),
        "uk_00" => same(format!("0044 20 {} {}", r.range(7000, 8999), d(r, 4))),
        "jp_land" => same(format!("0{}-{}-{}", r.range(3, 6), d(r, 4), d(r, 4))),
        "jp_mobile" => same(format!("0{}0-{}-{}", r.pick(&[7, 8, 9]), d(r, 4), d(r, 4))),
        "jp_intl" => same(format!("+81 {}-{}-{}", r.range(3, 6), d(r, 4), d(r, 4))),
        "br_mobile" => same(format!("({}) 9{}-{}", r.pick(BR_AREAS), d(r, 4), d(r, 4))),
        "br_land" => same(format!("({}) {}{}-{}", r.pick(BR_AREAS), r.range(2, 5), d(r, 3), d(r, 4))),
        "br_intl" => same(format!("+55 {} 9{}-{}", r.pick(BR_AREAS), d(r, 4), d(r, 4))),
        "in_mobile" => same(format!("{}{} {}", r.range(6, 9), d(r, 4), d(r, 5))),
        "in_intl" => same(format!("+91 {}{} {}", r.range(6, 9), d(r, 4), d(r, 5))),
        "in_land" => same(format!("(0{}) {} {}", r.pick(&["22", "11", "80", "44"]), d(r, 4), d(r, 4))),
        _ => unreachable!("phone form {form}"),
    }
}

// ---- cards ----

/// Brazil's area codes (DDD): none ends in 0.
const BR_AREAS: &[u64] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41, 42, 43, 44, 45,
    46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71, 73, 74, 75, 77, 79, 81, 82, 83,
    84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99,
];

/// A number in an issuer's range, of its length, with a Luhn check digit.
fn pan(r: &mut Rng, issuer: &str) -> String {
    let (prefix, len) = match issuer {
        "visa" => ("4".to_string(), 16),
        "visa19" => ("4".to_string(), 19),
        "mastercard" => (format!("5{}", r.range(1, 5)), 16),
        "mastercard2" => (format!("{}", r.range(2221, 2720)), 16),
        "amex" => (format!("3{}", r.pick(&[4, 7])), 15),
        "discover" => ("6011".to_string(), 16),
        "jcb" => (format!("{}", r.range(3528, 3589)), 16),
        "diners" => (format!("30{}", r.range(0, 5)), 14),
        "unionpay" => ("62".to_string(), 19),
        _ => ("4".to_string(), 16),
    };
    let body = format!("{prefix}{}", r.digits(len - 1 - prefix.len()));
    format!("{body}{}", luhn_digit(&body))
}

fn groups(n: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for &s in sizes {
        if at >= n.len() {
            break;
        }
        let end = (at + s).min(n.len());
        out.push(&n[at..end]);
        at = end;
    }
    if at < n.len() {
        out.push(&n[at..]);
    }
    out.join(sep)
}

fn card_form(r: &mut Rng, form: &str) -> Value {
    let issuer = *r.pick(&["visa", "mastercard", "mastercard2", "discover", "jcb"]);
    let n = pan(r, issuer);
    match form {
        "compact" => same(n),
        "spaced" => same(groups(&n, &[4, 4, 4, 4], " ")),
        "dashed" => same(groups(&n, &[4, 4, 4, 4], "-")),
        "dotted" => same(groups(&n, &[4, 4, 4, 4], ".")),
        "mixed_separators" => {
            let g: Vec<&str> = (0..4).map(|i| &n[i * 4..i * 4 + 4]).collect();
            let seps: Vec<&str> = (0..3).map(|_| *r.pick(&[" ", "-", "."])).collect();
            same(format!("{}{}{}{}{}{}{}", g[0], seps[0], g[1], seps[1], g[2], seps[2], g[3]))
        }
        "nbsp" => same(groups(&n, &[4, 4, 4, 4], "\u{00A0}")),
        "narrow_nbsp" => same(groups(&n, &[4, 4, 4, 4], "\u{202F}")),
        "irregular" => {
            let sizes = r.pick(&[[4, 6, 6], [6, 4, 6], [5, 5, 6], [8, 8, 0], [3, 5, 8]]);
            same(groups(&n, sizes, " "))
        }
        "amex" => same(groups(&pan(r, "amex"), &[4, 6, 5], " ")),
        "diners" => same(groups(&pan(r, "diners"), &[4, 6, 4], " ")),
        "nineteen_digits" => {
            let issuer = *r.pick(&["visa19", "unionpay"]);
            same(groups(&pan(r, issuer), &[4, 4, 4, 4], " "))
        }
        "zero_width" => same(split_with(r, &n, "\u{200B}", 2)),
        "track1" => {
            let (f, l) = (r.pick(FIRST).to_uppercase(), r.pick(LAST).to_uppercase());
            same(format!("%B{n}^{l}/{f}^{}{}{}?", r.range(26, 32), r.range(10, 12), r.digits(14)))
        }
        "track2" => same(format!(";{n}={}{}{}?", r.range(26, 32), r.range(10, 12), r.digits(12))),
        _ => unreachable!("card form {form}"),
    }
}

// ---- identifiers ----

fn ssn_digits(r: &mut Rng) -> (String, String, String) {
    let area = loop {
        let a = r.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    (format!("{area:03}"), format!("{:02}", r.range(1, 99)), format!("{:04}", r.range(1, 9999)))
}

fn itin_digits(r: &mut Rng) -> (String, String, String) {
    let group = *r.pick(&[50, 57, 65, 70, 78, 88, 90, 92, 94, 99]);
    (format!("9{:02}", r.below(100)), format!("{group:02}"), format!("{:04}", r.range(1, 9999)))
}

fn ssn_form(r: &mut Rng, form: &str) -> Value {
    let (a, g, s) = ssn_digits(r);
    match form {
        "dashed" => same(format!("{a}-{g}-{s}")),
        "spaced" => same(format!("{a} {g} {s}")),
        "labelled_hash" => labelled(format!("SSN#{a}{g}{s}"), format!("{a}{g}{s}")),
        "labelled_colon" => {
            labelled(format!("{}{a}{g}{s}", r.pick(&["SSN: ", "ssn=", "SSN ", "ss# "])), format!("{a}{g}{s}"))
        }
        "labelled_words" => labelled(
            format!(
                "{} {a}{g}{s}",
                r.pick(&["social security number", "Social Security No.", "social security #"])
            ),
            format!("{a}{g}{s}"),
        ),
        "itin_dashed" => {
            let (a, g, s) = itin_digits(r);
            same(format!("{a}-{g}-{s}"))
        }
        "itin_labelled" => {
            let (a, g, s) = itin_digits(r);
            labelled(format!("ITIN {a}{g}{s}"), format!("{a}{g}{s}"))
        }
        _ => unreachable!("ssn form {form}"),
    }
}

const IBAN_COUNTRIES: &[(&str, usize, &str)] = &[
    ("DE", 18, "n"),
    ("GB", 18, "a4n14"),
    ("FR", 23, "n10c11n2"),
    ("NL", 14, "a4n10"),
    ("ES", 20, "n"),
    ("IT", 23, "a1n10c12"),
    ("BE", 12, "n"),
    ("CH", 17, "n"),
    ("PL", 24, "n"),
    ("SE", 20, "n"),
    ("AT", 16, "n"),
    ("IE", 18, "a4n14"),
    ("PT", 21, "n"),
    ("NO", 11, "n"),
    ("BR", 25, "n23a1c1"),
    ("SA", 20, "n2c18"),
];

fn bban(r: &mut Rng, len: usize, shape: &str) -> String {
    if shape == "n" {
        return r.digits(len);
    }
    let mut out = String::new();
    let mut chars = shape.chars().peekable();
    while let Some(kind) = chars.next() {
        let mut count = String::new();
        while let Some(c) = chars.peek().filter(|c| c.is_ascii_digit()) {
            count.push(*c);
            chars.next();
        }
        let n: usize = count.parse().unwrap_or(1);
        out.push_str(&match kind {
            'a' => r.from(UPPER, n),
            'c' => r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", n),
            _ => r.digits(n),
        });
    }
    out
}

fn iban(r: &mut Rng) -> String {
    let (country, len, shape) = *r.pick(IBAN_COUNTRIES);
    let bban = bban(r, len, shape);
    let numeric: String = format!("{bban}{country}00")
        .chars()
        .map(|c| if c.is_ascii_digit() { c.to_string() } else { (c as u32 - 'A' as u32 + 10).to_string() })
        .collect();
    let remainder =
        numeric.chars().fold(0u64, |acc, c| (acc * 10 + u64::from(c.to_digit(10).unwrap_or(0))) % 97);
    format!("{country}{:02}{bban}", 98 - remainder)
}

fn iban_form(r: &mut Rng, form: &str) -> Value {
    let i = iban(r);
    let spaced = |s: &str| groups(s, &[4; 9], " ");
    match form {
        "compact" => same(i),
        "spaced" => same(spaced(&i)),
        "lower_compact" => same(i.to_lowercase()),
        "lower_spaced" => same(spaced(&i.to_lowercase())),
        "labelled" => labelled(format!("IBAN: {}", spaced(&i)), spaced(&i)),
        _ => unreachable!("iban form {form}"),
    }
}

// ---- tokens ----

fn jwt_form(r: &mut Rng, form: &str) -> Value {
    let claims =
        format!("{{\"sub\":\"{}\",\"iat\":{}}}", r.digits(10), r.range(1_600_000_000, 1_900_000_000));
    let payload = b64url(&claims);
    let sig = r.from(B64URL, 43);
    match form {
        "hs256" => same(format!("{}.{payload}.{sig}", b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"))),
        "rs256_kid" => same(format!(
            "{}.{payload}.{}",
            b64url(&format!("{{\"alg\":\"RS256\",\"kid\":\"{}\"}}", r.hex(8))),
            r.from(B64URL, 342)
        )),
        "alg_none" => same(format!("{}.{payload}.", b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}"))),
        "spaced_header" => {
            same(format!("{}.{payload}.{sig}", b64url("{ \"alg\": \"HS256\", \"typ\": \"JWT\" }")))
        }
        "newline_header" => same(format!("{}.{payload}.{sig}", b64url("{\n  \"alg\": \"ES256\"\n}"))),
        "padded" => same(format!(
            "{}.{}.{sig}",
            b64_encode(b"{\"alg\":\"HS512\"}", B64URL, true),
            b64_encode(claims.as_bytes(), B64URL, true)
        )),
        "jwe_dir" => same(format!(
            "{}..{}.{}.{}",
            b64url("{\"alg\":\"dir\",\"enc\":\"A256GCM\"}"),
            r.from(B64URL, 16),
            r.from(B64URL, 60),
            r.from(B64URL, 22)
        )),
        "jwe_rsa" => same(format!(
            "{}.{}.{}.{}.{}",
            b64url("{\"alg\":\"RSA-OAEP-256\",\"enc\":\"A128GCM\"}"),
            r.from(B64URL, 342),
            r.from(B64URL, 16),
            r.from(B64URL, 80),
            r.from(B64URL, 22)
        )),
        _ => unreachable!("jwt form {form}"),
    }
}

fn secret_form(r: &mut Rng, kind: &str, form: &str) -> Value {
    match (kind, form) {
        ("bearer_token", "opaque") => {
            let t = r.from(B64URL, 32);
            labelled(format!("Bearer {t}"), t)
        }
        ("bearer_token", "google") => {
            let t = format!("ya29.{}", r.from(B64URL, 60));
            labelled(format!("bearer {t}"), t)
        }
        ("bearer_token", "dotted") => {
            let t = format!("{}.{}", r.from(ALNUM, 24), r.from(ALNUM, 16));
            labelled(format!("BEARER {t}"), t)
        }
        ("authorization", "basic") => {
            let c = b64_encode(format!("{}:{}", r.pick(FIRST), r.from(ALNUM, 12)).as_bytes(), B64, true);
            labelled(format!("Authorization: Basic {c}"), c)
        }
        ("authorization", "token") => {
            let c = r.hex(40);
            labelled(format!("authorization=Token {c}"), c)
        }
        ("authorization", "proxy") => {
            let c = r.from(B64URL, 40);
            labelled(format!("Proxy-Authorization: Bearer {c}"), c)
        }
        ("authorization", "aws_sigv4") => {
            let key = format!("AKIA{}", r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
            let signature = r.hex(64);
            let header = format!("Credential={key}/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={signature}");
            // The secrets are the key id and the signature; the rest is protocol.
            labelled(format!("Authorization: AWS4-HMAC-SHA256 {header}"), signature)
        }
        ("aws_access_key", "akia") => same(format!("AKIA{}", r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))),
        ("aws_access_key", "asia") => same(format!("ASIA{}", r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))),
        ("aws_secret_key", "env") => {
            let s = r.from(B64, 40);
            labelled(format!("AWS_SECRET_ACCESS_KEY={s}"), s)
        }
        ("aws_secret_key", "json") => {
            let s = r.from(B64, 40);
            labelled(
                format!("{{\"AccessKeyId\": \"ASIA{}\", \"SecretAccessKey\": \"{s}\"}}", r.from(UPPER, 16)),
                s,
            )
        }
        ("aws_secret_key", "ini") => {
            let s = r.from(B64, 40);
            labelled(format!("aws_secret_access_key = {s}"), s)
        }
        ("aws_secret_key", "bare") => same(r.from(B64, 40)),
        ("github_token", "classic") => {
            same(format!("{}_{}", r.pick(&["ghp", "gho", "ghs", "ghu", "ghr"]), r.from(ALNUM, 36)))
        }
        ("github_token", "fine_grained") => {
            same(format!("github_pat_{}_{}", r.from(ALNUM, 22), r.from(ALNUM, 59)))
        }
        ("slack_token", "bot") => {
            same(format!("xoxb-{}-{}-{}", r.digits(12), r.digits(13), r.from(ALNUM, 24)))
        }
        ("slack_token", "user") => {
            same(format!("xoxp-{}-{}-{}-{}", r.digits(12), r.digits(12), r.digits(13), r.hex(32)))
        }
        ("slack_token", "refresh") => same(format!("xoxe-1-{}", r.from(ALNUM, 140))),
        ("slack_token", "rotating") => same(format!("xoxe.xoxp-1-{}", r.from(B64URL, 150))),
        ("slack_token", "app") => {
            same(format!("xapp-1-A{}-{}-{}", r.from(UPPER, 10), r.digits(13), r.hex(64)))
        }
        ("slack_token", "webhook") => same(format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            r.from(UPPER, 8),
            r.from(UPPER, 10),
            r.from(ALNUM, 24)
        )),
        ("api_key", "stripe") => {
            same(format!("{}_{}", r.pick(&["sk_live", "sk_test", "rk_live"]), r.from(ALNUM, 99)))
        }
        ("api_key", "stripe_webhook") => same(format!("whsec_{}", r.from(ALNUM, 32))),
        ("api_key", "openai") => same(format!("sk-proj-{}", r.from(B64URL, 156))),
        ("api_key", "anthropic") => same(format!("sk-ant-api03-{}AA", r.from(B64URL, 93))),
        ("api_key", "google") => same(format!("AIza{}", r.from(B64URL, 35))),
        ("api_key", "gitlab") => same(format!("glpat-{}", r.from(B64URL, 20))),
        ("api_key", "npm") => same(format!("npm_{}", r.from(ALNUM, 36))),
        ("api_key", "sendgrid") => same(format!("SG.{}.{}", r.from(B64URL, 22), r.from(B64URL, 43))),
        ("api_key", "pypi") => same(format!("pypi-AgEIcHlwaS5vcmc{}", r.from(B64URL, 150))),
        ("api_key", "huggingface") => same(format!("hf_{}", r.from(ALNUM, 34))),
        ("api_key", "shopify") => same(format!("{}_{}", r.pick(&["shpat", "shpss", "shpca"]), r.hex(32))),
        ("api_key", "mailgun") => same(format!("key-{}", r.hex(32))),
        ("api_key", "digitalocean") => same(format!("dop_v1_{}", r.hex(64))),
        ("api_key", "vault") => same(format!("hvs.{}", r.from(ALNUM, 90))),
        ("api_key", "telegram") => same(format!("{}:AA{}", r.digits(10), r.from(B64URL, 33))),
        ("api_key", "mailchimp") => same(format!("{}-us{}", r.hex(32), r.range(1, 21))),
        ("api_key", "env_password") => {
            let s = format!("{}{}{}", r.from(ALNUM, 10), r.pick(&["!", "#", "%", "_", "-"]), r.digits(2));
            labelled(
                format!(
                    "{}={s}",
                    r.pick(&[
                        "DB_PASSWORD",
                        "MYSQL_ROOT_PASSWORD",
                        "REDIS_PASS",
                        "SMTP_PASSWORD",
                        "POSTGRES_PASSWORD"
                    ])
                ),
                s,
            )
        }
        ("api_key", "env_secret") => {
            let s = r.from(ALNUM, 32);
            labelled(
                format!(
                    "{}={s}",
                    r.pick(&[
                        "OAUTH_CLIENT_SECRET",
                        "JWT_SECRET",
                        "SECRET_KEY_BASE",
                        "APP_SECRET",
                        "SESSION_SECRET"
                    ])
                ),
                s,
            )
        }
        ("api_key", "env_token") => {
            let s = r.from(ALNUM, 40);
            labelled(
                format!(
                    "{}={s}",
                    r.pick(&[
                        "GITHUB_TOKEN",
                        "NPM_TOKEN",
                        "SLACK_BOT_TOKEN",
                        "DATADOG_API_KEY",
                        "SENTRY_AUTH_TOKEN"
                    ])
                ),
                s,
            )
        }
        ("api_key", "json_password") => {
            let s = format!("{}{}", r.from(ALNUM, 12), r.digits(2));
            labelled(format!("{{\"user\": \"{}\", \"password\": \"{s}\"}}", r.pick(FIRST)), s)
        }
        ("api_key", "camel_case") => {
            let s = r.from(ALNUM, 24);
            labelled(
                format!(
                    "{}: {s}",
                    r.pick(&["clientSecret", "apiKey", "accessToken", "dbPassword", "signingKey"])
                ),
                s,
            )
        }
        ("api_key", "query_param") => {
            let s = format!("{}%21{}", r.from(ALNUM, 8), r.digits(3));
            labelled(format!("GET /login?user={}&password={s}&next=/", r.pick(FIRST)), s)
        }
        ("api_key", "header") => {
            let s = r.from(ALNUM, 32);
            labelled(format!("{}: {s}", r.pick(&["X-API-Key", "x-api-key", "Api-Key", "X-Auth-Token"])), s)
        }
        ("session_cookie", "cookie_header") => {
            let s = r.hex(32);
            labelled(format!("Cookie: session={s}; theme=dark"), format!("session={s}"))
        }
        ("session_cookie", "set_cookie") => {
            let s = r.from(ALNUM, 32).to_uppercase();
            labelled(format!("Set-Cookie: JSESSIONID={s}; Path=/; HttpOnly"), s)
        }
        ("session_cookie", "php") => {
            let s = r.from("abcdefghijklmnopqrstuv0123456789", 26);
            labelled(format!("PHPSESSID={s}"), s)
        }
        ("session_cookie", "express") => {
            let s = format!("s%3A{}.{}", r.from(B64URL, 32), r.from(B64URL, 43));
            labelled(format!("connect.sid={s}"), s)
        }
        ("session_cookie", "framework") => {
            let s = r.from(B64, 48);
            labelled(
                format!(
                    "{}={s}",
                    r.pick(&[
                        "laravel_session",
                        "_myapp_session",
                        "ASP.NET_SessionId",
                        "sessionid",
                        "_session_id"
                    ])
                ),
                s,
            )
        }
        ("private_key", pem) => {
            let (begin, end) = match pem {
                "rsa" => ("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"),
                "ec" => ("-----BEGIN EC PRIVATE KEY-----", "-----END EC PRIVATE KEY-----"),
                "pkcs8" => ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----"),
                "encrypted" => {
                    ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "-----END ENCRYPTED PRIVATE KEY-----")
                }
                "openssh" => ("-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"),
                "pgp" => ("-----BEGIN PGP PRIVATE KEY BLOCK-----", "-----END PGP PRIVATE KEY BLOCK-----"),
                _ => ("-----BEGIN PRIVATE KEY-----", ""),
            };
            let lines: Vec<String> = (0..r.range(3, 8)).map(|_| r.from(B64, 64)).collect();
            let body = if pem == "pgp" {
                format!("\nVersion: GnuPG v2\n\n{}\n={}", lines.join("\n"), r.from(B64, 4))
            } else {
                lines.join("\n")
            };
            if end.is_empty() {
                // Truncated: no END line; the body must go, the sentence after stays.
                same(format!("{begin}\n{body}"))
            } else {
                same(format!("{begin}\n{body}\n{end}"))
            }
        }
        ("url_credentials", form) => {
            let user = r.pick(FIRST).to_string();
            let pass = format!("{}{}", r.from(ALNUM, 8), r.digits(2));
            match form {
                "https" => labelled(
                    format!("https://{user}:{pass}@internal.example.com/x"),
                    format!("{user}:{pass}"),
                ),
                "postgres" => labelled(
                    format!("postgres://{user}:{pass}@db.acme.io:5432/orders"),
                    format!("{user}:{pass}"),
                ),
                "amqp" => labelled(
                    format!("amqp://{user}:{pass}@queue.example.net:5672/"),
                    format!("{user}:{pass}"),
                ),
                "redis_no_user" => labelled(format!("redis://:{pass}@cache:6379/0"), format!(":{pass}")),
                "mongodb_srv" => labelled(
                    format!("mongodb+srv://{user}:{pass}@cluster0.example.mongodb.net/db"),
                    format!("{user}:{pass}"),
                ),
                "percent_encoded" => {
                    let p = format!("{}%40{}%23", r.from(ALNUM, 5), r.digits(3));
                    labelled(format!("postgresql://{user}:{p}@10.1.2.3/app"), format!("{user}:{p}"))
                }
                "go_dsn_tcp" => labelled(
                    format!("{user}:{pass}@tcp(mysql.internal:3306)/orders?parseTime=true"),
                    format!("{user}:{pass}"),
                ),
                "go_dsn_unix" => labelled(
                    format!("{user}:{pass}@unix(/var/run/mysqld.sock)/orders"),
                    format!("{user}:{pass}"),
                ),
                _ => unreachable!("url form {form}"),
            }
        }
        _ => unreachable!("{kind} form {form}"),
    }
}

/// Every kind with its forms, as the corpus holds them.
pub const POSITIVE_FORMS: &[(&str, &[&str])] = &[
    (
        "email",
        &[
            "plain",
            "uppercase",
            "plus_tag",
            "mailto",
            "percent",
            "percent_twice",
            "percent_all",
            "html_decimal",
            "html_hex",
            "html_named",
            "json_escaped",
            "python_escaped",
            "zero_width",
            "soft_hyphen",
            "word_joiner",
            "bracket_at",
            "paren_at",
            "brace_at",
            "spaced_at",
            "upper_at",
            "quoted_local",
            "idn_local",
            "idn_domain",
            "fullwidth_at",
        ],
    ),
    (
        "ipv4",
        &[
            "plain",
            "port",
            "cidr",
            "reverse_dns_pool",
            "ec2_host",
            "dashed_host",
            "in_addr_arpa",
            "forwarded_for",
        ],
    ),
    (
        "ipv6",
        &[
            "ipv6_full",
            "ipv6_compressed",
            "ipv6_link_local",
            "ipv6_mapped",
            "ipv6_bracket_port",
            "ipv6_upper",
        ],
    ),
    (
        "phone",
        &[
            "us_e164",
            "us_paren",
            "us_dash",
            "us_dot",
            "us_one_prefix",
            "us_extension",
            "labelled_ten_digits",
            "tel_uri",
            "fr_pairs",
            "fr_dots",
            "fr_compact",
            "fr_intl",
            "fr_intl_trunk",
            "fr_00",
            "de_area",
            "de_paren",
            "de_slash",
            "de_mobile",
            "de_compact",
            "de_intl",
            "uk_london",
            "uk_mobile",
            "uk_intl_trunk",
            "uk_00",
            "jp_land",
            "jp_mobile",
            "jp_intl",
            "br_mobile",
            "br_land",
            "br_intl",
            "in_mobile",
            "in_intl",
            "in_land",
        ],
    ),
    (
        "card",
        &[
            "compact",
            "spaced",
            "dashed",
            "dotted",
            "mixed_separators",
            "nbsp",
            "narrow_nbsp",
            "irregular",
            "amex",
            "diners",
            "nineteen_digits",
            "zero_width",
            "track1",
            "track2",
        ],
    ),
    (
        "ssn",
        &[
            "dashed",
            "spaced",
            "labelled_hash",
            "labelled_colon",
            "labelled_words",
            "itin_dashed",
            "itin_labelled",
        ],
    ),
    ("iban", &["compact", "spaced", "lower_compact", "lower_spaced", "labelled"]),
    (
        "jwt",
        &[
            "hs256",
            "rs256_kid",
            "alg_none",
            "spaced_header",
            "newline_header",
            "padded",
            "jwe_dir",
            "jwe_rsa",
        ],
    ),
    ("bearer_token", &["opaque", "google", "dotted"]),
    ("authorization", &["basic", "token", "proxy", "aws_sigv4"]),
    ("aws_access_key", &["akia", "asia"]),
    ("aws_secret_key", &["env", "json", "ini", "bare"]),
    ("github_token", &["classic", "fine_grained"]),
    ("slack_token", &["bot", "user", "refresh", "rotating", "app", "webhook"]),
    (
        "api_key",
        &[
            "stripe",
            "stripe_webhook",
            "openai",
            "anthropic",
            "google",
            "gitlab",
            "npm",
            "sendgrid",
            "pypi",
            "huggingface",
            "shopify",
            "mailgun",
            "digitalocean",
            "vault",
            "telegram",
            "mailchimp",
            "env_password",
            "env_secret",
            "env_token",
            "json_password",
            "camel_case",
            "query_param",
            "header",
        ],
    ),
    ("session_cookie", &["cookie_header", "set_cookie", "php", "express", "framework"]),
    ("private_key", &["rsa", "ec", "pkcs8", "encrypted", "openssh", "pgp", "truncated"]),
    (
        "url_credentials",
        &[
            "https",
            "postgres",
            "amqp",
            "redis_no_user",
            "mongodb_srv",
            "percent_encoded",
            "go_dsn_tcp",
            "go_dsn_unix",
        ],
    ),
];

fn positive(r: &mut Rng, kind: &str, form: &str) -> Value {
    match kind {
        "email" => email_form(r, form),
        "ipv4" | "ipv6" => ip_form(r, form),
        "phone" => phone_form(r, form),
        "card" => card_form(r, form),
        "ssn" => ssn_form(r, form),
        "iban" => iban_form(r, form),
        "jwt" => jwt_form(r, form),
        _ => secret_form(r, kind, form),
    }
}

// ---- lookalikes ----

/// ISIN: country, 9 alphanumerics, and its check digit (Luhn over the digits
/// the letters expand to).
fn isin(r: &mut Rng) -> String {
    let body = format!(
        "{}{}",
        r.pick(&["US", "DE", "GB", "FR", "JP", "CH"]),
        r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 9)
    );
    let digits: String = body.chars().map(|c| c.to_digit(36).unwrap_or(0).to_string()).collect();
    format!("{body}{}", luhn_digit(&digits))
}

fn ean13(r: &mut Rng) -> String {
    let body = format!("{}{}", r.pick(&["400", "500", "590", "690", "871", "978"]), r.digits(9));
    let sum: u32 = body
        .chars()
        .enumerate()
        .map(|(i, c)| c.to_digit(10).unwrap_or(0) * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

pub const LOOKALIKE_FORMS: &[(&str, &[&str])] = &[
    (
        "ids",
        &[
            "uuid",
            "trace_id",
            "span_id",
            "git_sha",
            "short_sha",
            "docker_digest",
            "k8s_pod",
            "agent_id",
            "request_id",
            "ulid",
        ],
    ),
    (
        "numbers",
        &[
            "order_number",
            "padded_id",
            "invoice",
            "durations",
            "measurements",
            "byte_counts",
            "epoch_ms",
            "epoch_s",
            "thousands",
            "ean13",
            "port_list",
            "percentages",
            "coordinates",
        ],
    ),
    ("versions", &["semver", "four_part", "dotnet_version", "user_agent", "kernel", "build_number"]),
    ("finance", &["isin", "bic", "vat_id", "non_luhn_card", "iban_bad_check", "amount"]),
    ("dates", &["iso", "iso_ms", "dotted_date", "slashed_date", "compact", "with_time"]),
    (
        "text",
        &[
            "token_type",
            "page_token",
            "password_prose",
            "secret_prose",
            "key_names",
            "email_words",
            "hex_color",
            "file_path",
            "base64_blob",
            "mac_address",
            "cpu_time",
            "camel_identifier",
        ],
    ),
];

fn lookalike(r: &mut Rng, form: &str) -> String {
    match form {
        "uuid" => uuid(r),
        "trace_id" => r.hex(32),
        "span_id" => r.hex(16),
        "git_sha" => format!("commit {}", r.hex(40)),
        "short_sha" => {
            let n = r.range(7, 12) as usize;
            format!("fixed in {}", r.hex(n))
        }
        "docker_digest" => format!("image@sha256:{}", r.hex(64)),
        "k8s_pod" => format!(
            "api-{}-{}",
            r.from("bcdfghjklmnpqrstvwxz2456789", 10),
            r.from("bcdfghjklmnpqrstvwxz2456789", 5)
        ),
        "agent_id" => {
            format!("agent-{}-{}", r.pick(&["code_worker", "researcher", "memory_manager"]), r.below(64))
        }
        "request_id" => format!("req_{}", r.from(ALNUM, 24)),
        "ulid" => r.from("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 26),
        "order_number" => format!(
            "order {}-{}-{:06}",
            r.pick(&["ORD", "PO", "SO"]),
            r.range(2020, 2030),
            r.below(1_000_000)
        ),
        "padded_id" => {
            let n = r.range(8, 11) as usize;
            format!("record 00{}", r.digits(n))
        }
        "invoice" => {
            let n = r.range(8, 12) as usize;
            format!("invoice INV{}", r.digits(n))
        }
        "durations" => format!(
            "{} {} {} {} ms",
            r.range(100, 999),
            r.range(100, 999),
            r.range(100, 999),
            r.range(1000, 9999)
        ),
        "measurements" => {
            format!("latency p50={} p99={} max={} ms", r.below(500), r.range(500, 5000), r.range(5000, 99999))
        }
        "byte_counts" => {
            format!("{} {} {} bytes", r.range(1000, 99999), r.range(1000, 99999), r.range(100000, 9_999_999))
        }
        "epoch_ms" => format!("{}", 1_600_000_000_000 + r.below(300_000_000_000)),
        "epoch_s" => format!("{}", 1_600_000_000 + r.below(300_000_000)),
        "thousands" => {
            format!("{},{:03},{:03},{:03}", r.range(1, 999), r.below(1000), r.below(1000), r.below(1000))
        }
        "ean13" => format!("SKU {}", ean13(r)),
        "port_list" => format!(
            "ports {} {} {} {}",
            r.range(1024, 65535),
            r.range(1024, 65535),
            r.range(1024, 65535),
            r.range(1024, 65535)
        ),
        "percentages" => format!(
            "{}.{}% {}.{}% {}.{}%",
            r.below(100),
            r.below(10),
            r.below(100),
            r.below(10),
            r.below(100),
            r.below(10)
        ),
        "coordinates" => format!("{}.{} {}.{}", r.range(10, 89), r.digits(6), r.range(10, 179), r.digits(6)),
        "semver" => format!("v{}.{}.{}-rc.{}", r.below(20), r.below(40), r.below(100), r.range(1, 9)),
        "four_part" => {
            format!("{}.{}.{}.{}", r.range(1, 20), r.below(10), r.range(1000, 30000), r.range(1, 9999))
        }
        "dotnet_version" => {
            format!(".NET Version={}.{}.{}.{}", r.range(4, 12), r.below(10), r.below(10), r.below(10))
        }
        "user_agent" => format!(
            "Mozilla/5.0 Chrome/{}.0.{}.{} Safari/537.36",
            r.range(100, 131),
            r.range(1000, 6999),
            r.range(10, 199)
        ),
        "kernel" => {
            format!("kernel {}.{}.{}-{}-generic", r.range(4, 6), r.below(20), r.below(200), r.range(10, 120))
        }
        "build_number" => {
            format!("build {}.{}.{}.{}", r.range(1, 30), r.below(10), r.below(100), r.range(1, 200))
        }
        "isin" => format!("ISIN {}", isin(r)),
        "bic" => format!(
            "BIC {}{}{}{}",
            r.from(UPPER, 4),
            r.pick(&["DE", "FR", "GB", "NL"]),
            r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 2),
            if r.chance(0.5) { r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 3) } else { String::new() }
        ),
        "vat_id" => match r.below(4) {
            0 => format!("VAT DE{}", r.digits(9)),
            1 => format!("VAT FR{}{}", r.from("ABCDEFGHJKLMNPRSTUVWXYZ0123456789", 2), r.digits(9)),
            2 => format!("VAT GB{}", r.digits(9)),
            _ => format!("VAT NL{}B{:02}", r.digits(9), r.range(1, 99)),
        },
        "non_luhn_card" => {
            let body = format!("4{}", r.digits(14));
            let wrong = (luhn_digit(&body) + 1 + r.below(9) as u32) % 10;
            format!("{body}{wrong}")
        }
        "iban_bad_check" => {
            // A German IBAN with any check digits but the right ones.
            let bban = r.digits(18);
            let numeric = format!("{bban}131400");
            let right = 98
                - numeric
                    .chars()
                    .fold(0u64, |acc, c| (acc * 10 + u64::from(c.to_digit(10).unwrap_or(0))) % 97);
            let wrong = (right + r.range(1, 96)) % 97;
            format!("DE{wrong:02}{bban}")
        }
        "amount" => format!("total {}.{:02} EUR", r.range(1000, 999_999), r.below(100)),
        "iso" | "iso_ms" | "dotted_date" | "slashed_date" | "compact" | "with_time" => {
            let [y, mo, d, h, mi, sec, ms] = [
                r.range(2020, 2030),
                r.range(1, 12),
                r.range(1, 28),
                r.below(24),
                r.below(60),
                r.below(60),
                r.below(1000),
            ];
            match form {
                "iso" => format!("{y}-{mo:02}-{d:02}"),
                "iso_ms" => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{ms:03}Z"),
                "dotted_date" => format!("{d:02}.{mo:02}.{y} {h:02}:{mi:02}"),
                "slashed_date" => format!("{mo:02}/{d:02}/{y} {h:02}:{mi:02}:{sec:02}"),
                "compact" => format!("{y}{mo:02}{d:02}{h:02}{mi:02}{sec:02}"),
                _ => format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02},{ms:03}"),
            }
        }
        "token_type" => format!("token_type=Bearer expires_in={} scope=read", r.range(300, 86400)),
        "page_token" => format!("next_page_token={} page_size={}", r.from(ALNUM, 12), r.range(10, 100)),
        "password_prose" => format!(
            "password {} for user",
            r.pick(&["reset requested", "changed successfully", "expired", "policy updated"])
        ),
        "secret_prose" => format!(
            "secret rotation {} at step {}",
            r.pick(&["scheduled", "completed", "pending"]),
            r.range(1, 9)
        ),
        "key_names" => format!(
            "missing config key {}",
            r.pick(&["api_key", "client_secret", "db_password", "auth_token"])
        ),
        "email_words" => format!("sent to {} at {} o'clock", r.pick(FIRST), r.range(1, 12)),
        "hex_color" => format!("color #{} border #{}", r.hex(6), r.hex(6)),
        "file_path" => format!(
            "/var/lib/{}/{}/{}.log",
            r.pick(&["app", "worker", "mesh"]),
            r.range(2020, 2030),
            r.hex(8)
        ),
        "base64_blob" => format!("payload {}==", r.from(B64, 42)),
        "mac_address" => (0..6).map(|_| r.hex(2)).collect::<Vec<_>>().join(":"),
        "cpu_time" => format!("user {}.{}s sys {}.{}s", r.below(100), r.digits(3), r.below(100), r.digits(3)),
        "camel_identifier" => format!(
            "{}{}{}{}",
            r.pick(&["Abstract", "Default", "Cached"]),
            r.pick(&["Request", "Session", "Message"]),
            r.pick(&["Handler", "Factory", "Processor"]),
            r.pick(&["Impl2024Version", "Provider1Strategy", "Adapter9Bridge"])
        ),
        _ => unreachable!("lookalike {form}"),
    }
}

/// The first corpus's sentences, and one that puts the value before a line break.
fn sentence(r: &mut Rng) -> &'static str {
    let i = r.below(SENTENCES.len() as u64 + 1) as usize;
    SENTENCES.get(i).copied().unwrap_or("{}\nnext line of the log")
}

/// The corpus, one JSON line per record: `{label, form, secret, text}`, where
/// label is a detector for positives and `none` for lookalikes (whose `form`
/// names the lookalike and `secret` is the whole text).
pub fn corpus() -> String {
    let mut r = Rng::new(SEED);
    let mut out = String::new();
    for (kind, forms) in POSITIVE_FORMS {
        for form in *forms {
            for _ in 0..PER_FORM {
                let value = positive(&mut r, kind, form);
                let text = sentence(&mut r).replace("{}", &value.text);
                let record = json!({"label": kind, "form": form, "secret": value.secret, "text": text});
                out.push_str(&record.to_string());
                out.push('\n');
            }
        }
    }
    for (group, forms) in LOOKALIKE_FORMS {
        for form in *forms {
            for _ in 0..PER_LOOKALIKE_FORM {
                let value = lookalike(&mut r, form);
                let text = sentence(&mut r).replace("{}", &value);
                let record = json!({"label": "none", "form": format!("{group}.{form}"), "secret": value, "text": text});
                out.push_str(&record.to_string());
                out.push('\n');
            }
        }
    }
    out
}
