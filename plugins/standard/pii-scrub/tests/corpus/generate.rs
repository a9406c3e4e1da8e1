//! The labelled corpus, generated: every positive is built the way real data is
//! (random names and domains, cards with real issuer prefixes and a computed Luhn
//! digit, IBANs with computed mod-97 check digits, tokens of the right alphabets),
//! every negative is a lookalike drawn the same way (UUIDs, hashes, trace and span
//! ids, timestamps, versions, 16-digit numbers that fail Luhn, agent ids), and each
//! is put into a random sentence in a random field. Nothing is picked by hand; the
//! seed fixes the file.

use serde_json::{json, Value};

pub const SEED: u64 = 0x5eed_0fc0_7905;
pub const PER_POSITIVE_KIND: usize = 150;
pub const PER_NEGATIVE_KIND: usize = 250;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        // SplitMix64: small, good enough, and the same everywhere.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn from(&mut self, alphabet: &str, n: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        (0..n).map(|_| *self.pick(&chars)).collect()
    }
    pub fn digits(&mut self, n: usize) -> String {
        self.from("0123456789", n)
    }
    pub fn hex(&mut self, n: usize) -> String {
        self.from("0123456789abcdef", n)
    }
}

pub const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
pub const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const FIRST: &[&str] = &[
    "jane",
    "john",
    "maria",
    "wei",
    "aisha",
    "oluwaseun",
    "lars",
    "priya",
    "diego",
    "yuki",
    "fatima",
    "noah",
];
const LAST: &[&str] = &[
    "doe", "smith", "garcia", "chen", "khan", "okafor", "nielsen", "patel", "lopez", "tanaka", "ali", "brown",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "acme.io",
    "uni.example.ac.uk",
    "example.co.jp",
    "startup.dev",
];
const HOSTS: &[&str] =
    &["internal.example.com", "db.acme.io", "10.0.0.5", "queue.example.net:5672", "git.example.org"];

fn email(r: &mut Rng) -> String {
    let (f, l) = (r.pick(FIRST), r.pick(LAST));
    let local = match r.below(5) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}{}", r.range(1, 99)),
        2 => format!("{}{l}", &f[..1]),
        3 => format!("{f}_{l}+alerts"),
        _ => format!("{}.{l}", f.to_uppercase()),
    };
    format!("{local}@{}", r.pick(DOMAINS))
}

fn ipv4(r: &mut Rng) -> String {
    format!("{}.{}.{}.{}", r.range(1, 223), r.below(256), r.below(256), r.range(1, 254))
}

fn ipv6(r: &mut Rng) -> String {
    let groups: Vec<String> = (0..8).map(|_| format!("{:x}", r.below(0x10000))).collect();
    match r.below(4) {
        0 => groups.join(":"),
        1 => format!("2001:db8::{}:{}", groups[6], groups[7]),
        2 => format!("fe80::{}:{}:{}:{}", groups[4], groups[5], groups[6], groups[7]),
        _ => format!("{}:{}:{}::{}", groups[0], groups[1], groups[2], groups[7]).replace("::0", "::1"),
    }
}

fn phone(r: &mut Rng) -> String {
    let area = r.range(201, 989);
    let ex = r.range(200, 999);
    let line = r.digits(4);
    match r.below(7) {
        0 => format!("+1 {area} {ex} {line}"),
        1 => format!("+1-{area}-{ex}-{line}"),
        2 => format!("({area}) {ex}-{line}"),
        3 => format!("{area}-{ex}-{line}"),
        4 => format!("+44 20 {} {}", r.range(7000, 8999), r.digits(4)),
        5 => format!("+49 30 {}", r.digits(8)),
        _ => format!("020 {} {}", r.range(7000, 8999), r.digits(4)),
    }
}

pub fn luhn_digit(body: &str) -> u32 {
    let sum: u32 = body
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
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
    (10 - sum % 10) % 10
}

/// A number with a real issuer prefix and the given Luhn validity.
fn card_number(r: &mut Rng, valid: bool) -> (String, usize) {
    let (prefix, len) = match r.below(5) {
        0 => ("4".to_string(), 16),
        1 => (format!("5{}", r.range(1, 5)), 16),
        2 => (format!("3{}", r.pick(&[4, 7])), 15),
        3 => ("6011".to_string(), 16),
        _ => (format!("22{}", r.range(21, 99)), 16),
    };
    let body = format!("{prefix}{}", r.digits(len - 1 - prefix.len()));
    let check = luhn_digit(&body);
    let digit = if valid { check } else { (check + 1 + r.below(9) as u32) % 10 };
    (format!("{body}{digit}"), len)
}

fn card(r: &mut Rng) -> String {
    let (n, len) = card_number(r, true);
    let sep = *r.pick(&["", " ", "-"]);
    if sep.is_empty() {
        n
    } else if len == 15 {
        format!("{}{sep}{}{sep}{}", &n[..4], &n[4..10], &n[10..])
    } else {
        n.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(sep)
    }
}

fn ssn(r: &mut Rng) -> String {
    let area = loop {
        let a = r.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    format!("{area:03}-{:02}-{:04}", r.range(1, 99), r.range(1, 9999))
}

fn iban(r: &mut Rng) -> String {
    let (country, bban) = match r.below(5) {
        0 => ("GB", format!("{}{}", r.from(UPPER, 4), r.digits(14))),
        1 => ("DE", r.digits(18)),
        2 => ("FR", format!("{}{}{}", r.digits(10), r.from(ALNUM, 11).to_uppercase(), r.digits(2))),
        3 => ("NL", format!("{}{}", r.from(UPPER, 4), r.digits(10))),
        _ => ("ES", r.digits(20)),
    };
    let numeric: String = format!("{bban}{country}00")
        .chars()
        .map(|c| if c.is_ascii_digit() { c.to_string() } else { (c as u32 - 'A' as u32 + 10).to_string() })
        .collect();
    let remainder =
        numeric.chars().fold(0u64, |acc, c| (acc * 10 + u64::from(c.to_digit(10).unwrap_or(0))) % 97);
    let full = format!("{country}{:02}{bban}", 98 - remainder);
    if r.chance(0.5) {
        full.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        full
    }
}

fn b64url_json(r: &mut Rng, min: usize) -> String {
    // "eyJ" is base64 of `{"`: every JWT part that is JSON starts with it.
    let len = min + r.below(40) as usize;
    format!("eyJ{}", r.from(B64URL, len))
}

fn jwt(r: &mut Rng) -> String {
    format!("{}.{}.{}", b64url_json(r, 16), b64url_json(r, 30), r.from(B64URL, 43))
}

fn bearer(r: &mut Rng) -> String {
    let token = match r.below(3) {
        0 => r.from(B64URL, 32),
        1 => format!("{}.{}", r.from(ALNUM, 20), r.from(ALNUM, 12)),
        _ => format!("ya29.{}", r.from(B64URL, 40)),
    };
    format!("{} {token}", r.pick(&["Bearer", "bearer", "BEARER"]))
}

fn authorization(r: &mut Rng) -> (String, String) {
    let (scheme, cred) = match r.below(3) {
        0 => ("Basic", format!("{}=", r.from(B64, 23))),
        1 => ("Token", r.hex(40)),
        _ => ("Digest", format!("username={}", r.from(LOWER, 6))),
    };
    let label = *r.pick(&["Authorization: ", "authorization=", "Proxy-Authorization: "]);
    (format!("{label}{scheme} {cred}"), cred)
}

fn aws_key(r: &mut Rng) -> String {
    format!("{}{}", r.pick(&["AKIA", "ASIA", "AROA"]), r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
}

fn github(r: &mut Rng) -> String {
    if r.chance(0.8) {
        format!("{}_{}", r.pick(&["ghp", "gho", "ghs", "ghu", "ghr"]), r.from(ALNUM, 36))
    } else {
        format!("github_pat_{}_{}", r.from(ALNUM, 22), r.from(ALNUM, 59))
    }
}

fn slack(r: &mut Rng) -> String {
    if r.chance(0.8) {
        format!(
            "{}-{}-{}-{}",
            r.pick(&["xoxb", "xoxp", "xoxa"]),
            r.digits(12),
            r.digits(13),
            r.from(ALNUM, 24)
        )
    } else {
        format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            r.from(UPPER, 8),
            r.from(UPPER, 10),
            r.from(ALNUM, 24)
        )
    }
}

fn api_key(r: &mut Rng) -> (String, String) {
    match r.below(6) {
        0 => {
            let k = format!("sk_live_{}", r.from(ALNUM, 24));
            (k.clone(), k)
        }
        1 => {
            let k = format!("AIza{}", r.from(B64URL, 35));
            (k.clone(), k)
        }
        2 => {
            let k = format!("glpat-{}", r.from(B64URL, 20));
            (k.clone(), k)
        }
        3 => {
            let secret = format!("{}{}", r.from(ALNUM, 10), r.digits(3));
            (format!("{}={secret}", r.pick(&["api_key", "apiKey", "API-KEY", "client_secret"])), secret)
        }
        4 => {
            let secret = format!("{}{}!", r.from(LOWER, 7), r.digits(2));
            (format!("{}: {secret}", r.pick(&["password", "pwd", "Password"])), secret)
        }
        _ => {
            let k = format!("sk-proj-{}", r.from(B64URL, 48));
            (k.clone(), k)
        }
    }
}

fn private_key(r: &mut Rng) -> String {
    let kind = *r.pick(&["RSA ", "EC ", "", "OPENSSH "]);
    let lines: Vec<String> = (0..r.range(3, 8)).map(|_| r.from(B64, 64)).collect();
    format!("-----BEGIN {kind}PRIVATE KEY-----\n{}\n-----END {kind}PRIVATE KEY-----", lines.join("\n"))
}

fn url_credentials(r: &mut Rng) -> (String, String) {
    let user = r.pick(FIRST).to_string();
    let pass = format!("{}{}", r.from(ALNUM, 8), r.digits(2));
    let scheme = *r.pick(&["https", "postgres", "amqp", "redis", "mongodb+srv"]);
    (format!("{scheme}://{user}:{pass}@{}/x", r.pick(HOSTS)), format!("{user}:{pass}"))
}

/// One positive: (detector, text to embed, the secret that must disappear).
fn positive(r: &mut Rng, kind: &str) -> (String, String) {
    let same = |s: String| (s.clone(), s);
    match kind {
        "email" => same(email(r)),
        "ipv4" => same(ipv4(r)),
        "ipv6" => same(ipv6(r)),
        "phone" => same(phone(r)),
        "card" => same(card(r)),
        "ssn" => same(ssn(r)),
        "iban" => same(iban(r)),
        "jwt" => same(jwt(r)),
        "bearer_token" => {
            let b = bearer(r);
            let secret = b.split_once(' ').map(|(_, t)| t.to_string()).unwrap_or_default();
            (b, secret)
        }
        "authorization" => authorization(r),
        "aws_access_key" => same(aws_key(r)),
        "github_token" => same(github(r)),
        "slack_token" => same(slack(r)),
        "api_key" => api_key(r),
        "private_key" => same(private_key(r)),
        _ => url_credentials(r),
    }
}

pub const POSITIVE_KINDS: [&str; 16] = [
    "email",
    "ipv4",
    "ipv6",
    "phone",
    "card",
    "ssn",
    "iban",
    "jwt",
    "bearer_token",
    "authorization",
    "aws_access_key",
    "github_token",
    "slack_token",
    "api_key",
    "private_key",
    "url_credentials",
];

pub const NEGATIVE_KINDS: [&str; 10] = [
    "uuid",
    "hex_hash",
    "trace_id",
    "span_id",
    "timestamp",
    "version",
    "non_luhn_16",
    "agent_id",
    "task_id",
    "measurement",
];

pub fn uuid(r: &mut Rng) -> String {
    let h = r.hex(32);
    let v = if r.chance(0.5) { h } else { h.to_uppercase() };
    format!("{}-{}-4{}-{}-{}", &v[..8], &v[8..12], &v[13..16], &v[16..20], &v[20..])
}

fn negative(r: &mut Rng, kind: &str) -> String {
    match kind {
        "uuid" => uuid(r),
        "hex_hash" => match r.below(4) {
            0 => r.hex(32),
            1 => r.hex(40),
            2 => format!("sha256:{}", r.hex(64)),
            _ => r.hex(64),
        },
        "trace_id" => r.hex(32),
        "span_id" => r.hex(16),
        "timestamp" => {
            let (y, mo, d, h, mi, s) =
                (r.range(2020, 2030), r.range(1, 12), r.range(1, 28), r.below(24), r.below(60), r.below(60));
            match r.below(6) {
                0 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", r.below(1000)),
                1 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+{:02}:00", r.range(1, 11)),
                2 => format!("{}", 1_600_000_000_000 + r.below(300_000_000_000)),
                3 => format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
                4 => format!("{}", 1_600_000_000 + r.below(300_000_000)),
                _ => format!("{y}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
            }
        }
        "version" => {
            let (a, b, c) = (r.below(20), r.below(40), r.below(100));
            match r.below(6) {
                0 => format!("{a}.{b}.{c}"),
                1 => format!("v{a}.{b}.{c}"),
                2 => format!("{a}.{b}.{c}-rc.{}", r.range(1, 9)),
                3 => format!("{a}.{b}.{c}+build.{}", r.range(1, 9999)),
                4 => format!("v{a}.{b}.{c}.{}", r.below(300)),
                _ => format!("{a}.{b}.{}.{}", r.range(1000, 30000), r.range(1, 9999)),
            }
        }
        "non_luhn_16" => {
            let body = format!("{}{}", r.range(1, 9), r.digits(14));
            let wrong = (luhn_digit(&body) + 1 + r.below(9) as u32) % 10;
            format!("{body}{wrong}")
        }
        "agent_id" => match r.below(4) {
            0 => format!(
                "agent-{}-{}",
                r.pick(&["code_worker", "researcher", "security_monitor", "memory_manager"]),
                r.below(64)
            ),
            1 => format!("agent_{}", r.hex(8)),
            2 => format!("swarm-{}-node-{}", r.hex(6), r.below(512)),
            _ => format!("{}-{}", r.pick(&["mesh", "consensus", "bridge"]), r.range(1, 99999)),
        },
        "task_id" => match r.below(3) {
            0 => format!("task-{}", r.hex(10)),
            1 => format!("msg-{}", r.hex(12)),
            _ => format!("proposal-{}", r.range(1, 999_999)),
        },
        _ => match r.below(5) {
            0 => format!("{} ms", r.below(100_000)),
            1 => format!("{:.3}", r.below(10_000) as f64 / 7.0),
            2 => format!("{} bytes", r.below(1 << 30)),
            3 => format!("{}%", r.below(100)),
            _ => format!("{}/{}", r.below(1000), r.range(1000, 5000)),
        },
    }
}

pub const SENTENCES: &[&str] = &[
    "{} ",
    "error while contacting {}",
    "value={} (retrying)",
    "user reported: \"{}\" in ticket",
    "[{}] handled",
    "see {}; then retry",
    "payload field was {}.",
    "{}, then failed",
];

const FIELDS: &[&str] = &[
    "data.message",
    "data.error_message",
    "data.details.note",
    "context.client",
    "tags.owner",
    "data.items",
];

fn event(r: &mut Rng, i: usize, text: &str) -> Value {
    let sentence = r.pick(SENTENCES).replace("{}", text);
    let field = *r.pick(FIELDS);
    let mut event = json!({
        "event_id": uuid(r),
        "timestamp": 1_767_225_600_000u64 + i as u64,
        "component": "scheduler",
        "event_type": "task.completed",
        "severity": "ERROR",
        "tags": {"environment": "production"},
        "context": {"trace_id": r.hex(32), "span_id": r.hex(16)},
        "data": {"task_id": format!("task-{}", r.hex(10)), "agent_id": "agent-code_worker-3", "duration_ms": r.below(5000), "success": false},
    });
    let (root, rest) = field.split_once('.').unwrap_or(("data", "message"));
    let value = if rest == "items" { json!([{"text": sentence}]) } else { Value::String(sentence) };
    match rest.split_once('.') {
        Some((parent, child)) => event[root][parent] = json!({ child: value }),
        None => event[root][rest] = value,
    }
    event
}

/// The corpus, one JSON line per record: `{label, kind, secret, event}`, where
/// label is a detector for positives and `none` for lookalikes.
pub fn corpus() -> String {
    let mut r = Rng::new(SEED);
    let mut out = String::new();
    let mut i = 0;
    for kind in POSITIVE_KINDS {
        for _ in 0..PER_POSITIVE_KIND {
            let (text, secret) = positive(&mut r, kind);
            let record =
                json!({"label": kind, "kind": kind, "secret": secret, "event": event(&mut r, i, &text)});
            out.push_str(&record.to_string());
            out.push('\n');
            i += 1;
        }
    }
    for kind in NEGATIVE_KINDS {
        for _ in 0..PER_NEGATIVE_KIND {
            let text = negative(&mut r, kind);
            let record =
                json!({"label": "none", "kind": kind, "secret": text, "event": event(&mut r, i, &text)});
            out.push_str(&record.to_string());
            out.push('\n');
            i += 1;
        }
    }
    out
}
