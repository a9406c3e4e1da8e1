//! `pii_scrub`: finds personal data and secrets in every string under `data`,
//! `context` and `tags` and replaces them, leaving the rest of the event byte for
//! byte as it came.
//!
//! Detectors (config and counter names): `email`, `ipv4`, `ipv6`, `phone` (E.164
//! and national formats), `card` (Luhn-checked, issuer ranges, any grouping,
//! track data), `ssn` (US, and ITINs), `iban` (registry length and mod-97
//! checked), `jwt`, `bearer_token`, `authorization`, `aws_access_key`,
//! `aws_secret_key`, `github_token`, `slack_token`, `api_key` (vendor key
//! prefixes, and `password=…`/`DB_PASSWORD=…`/`api_key: …` labelled values),
//! `session_cookie`, `private_key` (PEM and PGP), `url_credentials` (the
//! user:password of a URL or a Go DSN). Strings are read through a decoded view
//! (percent-encoding, HTML references, backslash escapes, `[at]`, invisible and
//! look-alike characters: see `normalize`); findings are replaced in the text as
//! written.
//!
//! Config:
//! - `mode`: what every detector does unless `detectors` says otherwise —
//!   `redact` (`[REDACTED:email]`, the default), `mask` (all but the last four
//!   letters or digits become `*`), `hash` (`[HMAC:email:…]`, HMAC-SHA256 of the
//!   normalized value, so the same address hashes the same everywhere and joins
//!   still work), or `off`.
//! - `detectors`: `{email: hash, card: mask, phone: off}`.
//! - `hash_key` or `hash_key_env` (an environment variable, which the step must
//!   grant with `allow: {env: [NAME]}`): the HMAC key; required when any mode is
//!   `hash`.
//! - `fields.allow`: path globs never scanned (`data.agent_id`); `fields.deny`:
//!   path globs always replaced whole, with `deny_mode` (default `redact`, shown as
//!   `[REDACTED:field]`). Both add to the defaults — allowed: the schema's trace
//!   and span ids; denied: fields named like secrets (`*.password`, `*.api_key`,
//!   `*.authorization`, …) — unless `fields.defaults: false`. A glob matches a
//!   field or any field under it.
//! - `scan`: the top-level objects walked (default `[data, context, tags]`).
//!
//! Counts every finding per detector (`email`, `card`, …, `field`).

mod detect;
mod json;
mod normalize;

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use synaptic_plugin_sdk::glob::Glob;
use synaptic_plugin_sdk::{host, Config, Event, Plugin, Verdict};

pub use detect::{Detectors, Found, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Redact,
    Mask,
    Hash,
    Off,
}

impl Mode {
    fn parse(text: &str, at: &str) -> Result<Mode, String> {
        match text {
            "redact" => Ok(Mode::Redact),
            "mask" => Ok(Mode::Mask),
            "hash" => Ok(Mode::Hash),
            "off" => Ok(Mode::Off),
            other => Err(format!("{at}: expected redact, mask, hash or off, got {other:?}")),
        }
    }
}

/// The schema's ids: hex that can look like anything.
const DEFAULT_ALLOW: [&str; 3] = ["context.trace_id", "context.span_id", "context.parent_span_id"];

const DEFAULT_DENY: [&str; 11] = [
    "*.password",
    "*.passwd",
    "*.secret",
    "*.api_key",
    "*.apikey",
    "*.access_token",
    "*.refresh_token",
    "*.client_secret",
    "*.private_key",
    "*.authorization",
    "*.cookie",
];

/// Passes of the detectors over one text at most (see `PiiScrub::settle`).
const MAX_PASSES: usize = 4;

/// Counter slot of whole fields replaced by `fields.deny`.
const FIELD: usize = Kind::ALL.len();
/// Counter slot of texts whose end the detectors could not reach within their
/// work bound (replaced from there on).
const UNSCANNED: usize = FIELD + 1;

pub struct PiiScrub {
    detectors: Detectors,
    modes: [Mode; Kind::ALL.len()],
    roots: Vec<String>,
    allow: Vec<Glob>,
    deny: Vec<Glob>,
    deny_mode: Mode,
    /// What to do with the strings at each path seen, so globs run once per path
    /// rather than once per event.
    /// (foldhash: randomly seeded like std's hasher, and cheaper on these short
    /// keys: the plugin measured 10% faster per event)
    decisions: HashMap<String, Decision, foldhash::fast::RandomState>,
    key: Option<Vec<u8>>,
    counts: [u64; Kind::ALL.len() + 2],
    /// Scratch space of the walk and the detectors, kept from event to event.
    found: Vec<Found>,
    path: String,
    /// Walk every top-level field, not only `roots` (see [`PiiScrub::everywhere`]).
    everywhere: bool,
}

/// What happens to a string, decided by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Allowed.
    Leave,
    /// Denied: replaced whole.
    Replace,
    /// Run the detectors.
    Scan,
}

/// Paths remembered; events with ever-new keys (ids as keys) clear it when full.
const DECISIONS_MAX: usize = 4096;

fn strings(value: Option<&Value>, at: &str) -> Result<Option<Vec<String>>, String> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| format!("{at}: expected a list of strings")),
        Some(other) => Err(format!("{at}: expected a list of strings, got {other}")),
    }
}

/// Whether the glob matches the field at `path` or one of the fields it is under.
fn covers(globs: &[Glob], path: &str) -> bool {
    let mut path = path;
    loop {
        if globs.iter().any(|g| g.matches(path)) {
            return true;
        }
        match path.rfind('.') {
            Some(dot) => path = &path[..dot],
            None => return false,
        }
    }
}

impl PiiScrub {
    fn replacement(&self, kind: Option<Kind>, mode: Mode, value: &str) -> String {
        let name = kind.map_or("field", Kind::name);
        match mode {
            Mode::Redact | Mode::Off => format!("[REDACTED:{name}]"),
            Mode::Mask => mask(value),
            Mode::Hash => {
                let normalized = kind.map_or_else(|| value.to_string(), |k| normalize(k, value));
                let mut mac = match Hmac::<Sha256>::new_from_slice(self.key.as_deref().unwrap_or_default()) {
                    Ok(mac) => mac,
                    // HMAC takes keys of any length; this cannot happen.
                    Err(_) => return format!("[REDACTED:{name}]"),
                };
                mac.update(normalized.as_bytes());
                let digest = mac.finalize().into_bytes();
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("[HMAC:{name}:{hex}]")
            }
        }
    }

    /// The scrubbed text, or `None` when nothing in it needs scrubbing.
    fn scrub(&mut self, path: &str, text: &str) -> Option<String> {
        match self.decision(path) {
            Decision::Leave => return None,
            Decision::Replace => {
                self.counts[FIELD] += 1;
                return Some(self.replacement(None, self.deny_mode, text));
            }
            Decision::Scan => {}
        }
        let first = self.scrub_pass(text)?;
        Some(self.settle(first))
    }

    /// One pass of the detectors over `text`, counting its findings: the rewritten
    /// text, or `None` when they found nothing.
    fn scrub_pass(&mut self, text: &str) -> Option<String> {
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        let stopped = self.detectors.find(text, &mut found);
        let scrubbed = (!found.is_empty() || stopped.is_some()).then(|| self.rewrite(text, &found, stopped));
        self.found = found;
        scrubbed
    }

    /// Passes over an already scrubbed text until nothing changes. A check can
    /// reject a candidate for what follows it (a phone number running into a
    /// dotted number) when what follows is itself a finding, replaced in the same
    /// pass: the next pass then sees the candidate alone. At most
    /// [`MAX_PASSES`] passes; text that still changes is replaced whole.
    fn settle(&mut self, mut text: String) -> String {
        for _ in 1..MAX_PASSES {
            // A pass that changes nothing (it may re-read a replacement such as
            // `[REDACTED:url_credentials]`) must not count anything either.
            let counted = self.counts;
            match self.scrub_pass(&text) {
                Some(again) if again != text => text = again,
                _ => {
                    self.counts = counted;
                    return text;
                }
            }
        }
        self.counts[UNSCANNED] += 1;
        "[REDACTED:unscanned]".to_string()
    }

    /// `text` with each finding replaced, counting them. From `stopped` on (where
    /// the detectors' work ran out), the text is replaced whole: it was not
    /// looked at.
    fn rewrite(&mut self, text: &str, found: &[Found], stopped: Option<usize>) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for f in found {
            self.counts[f.kind as usize] += 1;
            out.push_str(&text[last..f.span.start]);
            out.push_str(&self.replacement(Some(f.kind), self.modes[f.kind as usize], &text[f.span.clone()]));
            last = f.span.end;
        }
        match stopped {
            Some(at) => {
                self.counts[UNSCANNED] += 1;
                if at > last {
                    out.push_str(&text[last..at]);
                }
                out.push_str("[REDACTED:unscanned]");
            }
            None => out.push_str(&text[last..]),
        }
        out
    }

    fn decision(&mut self, path: &str) -> Decision {
        if let Some(decision) = self.decisions.get(path) {
            return *decision;
        }
        // Only strings under `scan` get here: the walk skips the other fields.
        let decision = if covers(&self.allow, path) {
            Decision::Leave
        } else if covers(&self.deny, path) {
            Decision::Replace
        } else {
            Decision::Scan
        };
        if self.decisions.len() >= DECISIONS_MAX {
            self.decisions.clear();
        }
        self.decisions.insert(path.to_string(), decision);
        decision
    }

    /// The same scrubber walking every field of a document, the envelope's
    /// included: for input that failed validation, whose PII may be anywhere.
    pub fn everywhere(mut self) -> Self {
        self.everywhere = true;
        self
    }

    /// Any text, with every finding replaced: for input that is not a JSON
    /// document. JSON string escapes are decoded first (`\u0040` is an `@` to a
    /// reader), so the result is the readable text, scrubbed, not the bytes.
    /// Field allow and deny lists do not apply: there are no fields.
    pub fn scrub_text(&mut self, text: &str) -> String {
        let text = unescape_json(text);
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        let stopped = self.detectors.find(&text, &mut found);
        let scrubbed = self.rewrite(&text, &found, stopped);
        self.found = found;
        self.settle(scrubbed)
    }

    /// The event with its findings replaced, or `None` to keep it as it is.
    /// An error when the event cannot be walked to its end (not JSON, not UTF-8,
    /// a lone surrogate, nested too deep): then it is not known to be clean, and
    /// must not be kept.
    pub fn scrub_event(&mut self, raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        // The walk borrows the roots and the path buffer while `scrub` needs all of
        // `self`.
        let roots = std::mem::take(&mut self.roots);
        let mut path = std::mem::take(&mut self.path);
        let roots_walked = (!self.everywhere).then_some(roots.as_slice());
        let walked = json::strings_under(raw, roots_walked, &mut path, &mut |s| {
            if let Some(new) = self.scrub(s.path, &s.text) {
                edits.push((s.span, serde_json::to_string(&new).unwrap_or_else(|_| "\"[REDACTED]\"".into())));
            }
        });
        self.roots = roots;
        self.path = path;
        walked?;
        if edits.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut last = 0;
        for (span, quoted) in edits {
            out.extend_from_slice(&raw[last..span.start]);
            out.extend_from_slice(quoted.as_bytes());
            last = span.end;
        }
        out.extend_from_slice(&raw[last..]);
        Ok(Some(out))
    }
}

/// Text with JSON's string escapes decoded where they are well formed; the rest,
/// a lone surrogate included (as U+FFFD), is left readable.
fn unescape_json(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\\') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let hex = |s: &str| s.get(2..6).and_then(|h| u16::from_str_radix(h, 16).ok());
        let simple = match rest.as_bytes().get(1) {
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'n') => Some('\n'),
            Some(b't') => Some('\t'),
            Some(b'r') => Some('\r'),
            Some(b'b' | b'f') => Some(' '),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = &rest[2..];
            continue;
        }
        match (rest.as_bytes().get(1), hex(rest)) {
            (Some(b'u'), Some(high @ 0xD800..=0xDBFF)) => {
                let low = rest.get(6..8).filter(|s| *s == "\\u").and_then(|_| hex(&rest[6..]));
                match low {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        let code = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        rest = &rest[12..];
                    }
                    _ => {
                        out.push('\u{FFFD}');
                        rest = &rest[6..];
                    }
                }
            }
            (Some(b'u'), Some(unit)) => {
                out.push(char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}'));
                rest = &rest[6..];
            }
            _ => {
                out.push('\\');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// All but the last four letters or digits become `*`; separators stay.
fn mask(value: &str) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen + 4 > total {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

/// The canonical form hashed, so that one value written two ways hashes the same.
fn normalize(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Email => value.to_ascii_lowercase(),
        Kind::Card | Kind::Ssn => value.chars().filter(char::is_ascii_digit).collect(),
        Kind::Phone => {
            let digits: String = value.chars().filter(char::is_ascii_digit).collect();
            if value.starts_with('+') {
                format!("+{digits}")
            } else {
                digits
            }
        }
        Kind::Iban => value.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase(),
        Kind::Ipv6 => {
            value.parse::<std::net::Ipv6Addr>().map_or_else(|_| value.to_ascii_lowercase(), |a| a.to_string())
        }
        _ => value.to_string(),
    }
}

impl Plugin for PiiScrub {
    fn init(config: &Config) -> Result<Self, String> {
        const KEYS: [&str; 7] =
            ["mode", "detectors", "fields", "deny_mode", "scan", "hash_key", "hash_key_env"];
        if let Some(key) = config.map().keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("config.{key}: unknown key (expected {})", KEYS.join(", ")));
        }
        let default_mode = match config.str("mode")? {
            Some(text) => Mode::parse(text, "config.mode")?,
            None => Mode::Redact,
        };
        let mut modes = [default_mode; Kind::ALL.len()];
        match config.get("detectors") {
            None => {}
            Some(Value::Object(map)) => {
                for (name, mode) in map {
                    let at = format!("config.detectors.{name}");
                    let kind = Kind::parse(name).ok_or_else(|| {
                        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                        format!("{at}: unknown detector (expected one of {})", names.join(", "))
                    })?;
                    let mode =
                        mode.as_str().ok_or_else(|| format!("{at}: expected redact, mask, hash or off"))?;
                    modes[kind as usize] = Mode::parse(mode, &at)?;
                }
            }
            Some(other) => {
                return Err(format!("config.detectors: expected a map of detector to mode, got {other}"))
            }
        }
        let deny_mode = match config.str("deny_mode")? {
            Some(text) => Mode::parse(text, "config.deny_mode")?,
            None => Mode::Redact,
        };
        let (mut allow, mut deny, mut defaults) = (Vec::new(), Vec::new(), true);
        match config.get("fields") {
            None => {}
            Some(Value::Object(fields)) => {
                if let Some(key) =
                    fields.keys().find(|k| !["allow", "deny", "defaults"].contains(&k.as_str()))
                {
                    return Err(format!("config.fields.{key}: unknown key (expected allow, deny, defaults)"));
                }
                allow = strings(fields.get("allow"), "config.fields.allow")?.unwrap_or_default();
                deny = strings(fields.get("deny"), "config.fields.deny")?.unwrap_or_default();
                defaults = match fields.get("defaults") {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(format!("config.fields.defaults: expected true or false, got {other}"))
                    }
                };
            }
            Some(other) => {
                return Err(format!("config.fields: expected {{allow, deny, defaults}}, got {other}"))
            }
        }
        if defaults {
            allow.extend(DEFAULT_ALLOW.iter().map(|g| g.to_string()));
            deny.extend(DEFAULT_DENY.iter().map(|g| g.to_string()));
        }
        let roots = strings(config.get("scan"), "config.scan")?
            .unwrap_or_else(|| ["data", "context", "tags"].iter().map(|s| s.to_string()).collect());
        let key = match (config.str("hash_key")?, config.str("hash_key_env")?) {
            (Some(key), _) => Some(key.as_bytes().to_vec()),
            (None, Some(var)) => Some(
                std::env::var(var)
                    .map_err(|_| format!("config.hash_key_env: environment variable {var} is not set (or not granted with allow.env)"))?
                    .into_bytes(),
            ),
            (None, None) => None,
        };
        if key.as_ref().is_some_and(Vec::is_empty) {
            return Err("config.hash_key: the key is empty".to_string());
        }
        let hashing = modes.contains(&Mode::Hash) || deny_mode == Mode::Hash;
        if hashing && key.is_none() {
            return Err("config: mode hash needs a key: hash_key, or hash_key_env naming a granted variable"
                .to_string());
        }
        let deny = deny.iter().map(|g| Glob::new(g)).collect();
        let detectors = Detectors::new(|kind| modes[kind as usize] != Mode::Off)?;
        Ok(PiiScrub {
            detectors,
            modes,
            roots,
            allow: allow.iter().map(|g| Glob::new(g)).collect(),
            deny,
            deny_mode,
            decisions: HashMap::default(),
            key,
            counts: [0; Kind::ALL.len() + 2],
            found: Vec::new(),
            path: String::new(),
            everywhere: false,
        })
    }

    /// One event on its own. An event that cannot be scrubbed is dropped here, as
    /// the single-event form has no way to fail; the pipeline calls
    /// [`Plugin::process_batch`], which fails instead.
    fn process(&mut self, event: &Event<'_>) -> Verdict {
        match self.scrub_event(event.raw()) {
            Ok(Some(bytes)) => Verdict::Replace(bytes),
            Ok(None) => Verdict::Keep,
            Err(_) => Verdict::Drop,
        }
    }

    /// Fails closed: one event that cannot be walked to its end fails the batch,
    /// naming it, so that nothing unscrubbed is kept. The host then retries the
    /// rest of the batch without it and dead-letters it with its text scrubbed.
    fn process_batch(&mut self, events: &[Event<'_>], verdicts: &mut Vec<Verdict>) -> Result<(), String> {
        for (i, event) in events.iter().enumerate() {
            let verdict = match self.scrub_event(event.raw()) {
                Ok(Some(bytes)) => Verdict::Replace(bytes),
                Ok(None) => Verdict::Keep,
                Err(e) => {
                    self.counts = [0; Kind::ALL.len() + 2];
                    return Err(format!("event {i} cannot be scrubbed: {e}"));
                }
            };
            verdicts.push(verdict);
        }
        for (i, count) in self.counts.iter_mut().enumerate() {
            if *count > 0 {
                let name = match i {
                    FIELD => "field",
                    UNSCANNED => "unscanned",
                    _ => Kind::ALL.get(i).map_or("field", |k| k.name()),
                };
                host::count(name, *count);
                *count = 0;
            }
        }
        Ok(())
    }
}

synaptic_plugin_sdk::export_plugin!(PiiScrub);

#[cfg(test)]
mod tests;
