//! `sample`: keeps a deterministic share of each kind of event, by the spec's
//! Sampling Strategies, and stamps each kept event with `sample_rate` so a
//! downstream count can be scaled back.
//!
//! The default table (first matching rule wins):
//!
//! | event_type        | rate  | key                              | also kept              |
//! |-------------------|-------|----------------------------------|------------------------|
//! | `agent.*`         | 1     |                                  |                        |
//! | `security.*`      | 1     |                                  |                        |
//! | `consensus.*`     | 1     |                                  |                        |
//! | `task.*`          | 0.1   | `data.task_id`                   | `data.success == false`|
//! | `mesh.*`          | 1     |                                  |                        |
//! | `swarm.iteration` | 0.01  | `data.swarm_id`, `data.iteration`|                        |
//! | `bridge.message`  | 0.001 | `event_id`                       |                        |
//! | anything else     | `default_rate` (1)                        |                        |
//!
//! Events at or above `always_keep` (ERROR) are always kept. An event is kept when
//! the hash of its key falls below the rate ([`synaptic_plugin_sdk::sampling`]):
//! every instance and every replay keeps the same events, and a task's assignment
//! and completion (same `task_id`) are kept or dropped together.
//!
//! Config: `rates` (event_type glob → rate, overriding the table's rate; an exact
//! name wins over a glob, a longer glob over a shorter), `rules` (a list of
//! `{event_type, rate, key, keep_failures}` replacing the table), `default_rate`,
//! `key` (the default key: a dotted path or a list of them), `always_keep`
//! (a severity, or `none`). A key part that is missing falls back to `event_id`.
//!
//! `sample_rate` is the product of every sampling the event went through: an event
//! that arrives with one has it multiplied.

use std::borrow::Cow;

use serde_json::{Map, Value};
use synaptic_plugin_sdk::field::{Finder, Scalar};
use synaptic_plugin_sdk::glob::Glob;
use synaptic_plugin_sdk::{sampling, Config, Event, Plugin, Severity, Verdict};

type Path = Vec<String>;

struct Rule {
    event_type: Glob,
    rate: f64,
    /// Slots (in the lookup list) of the key's parts.
    key: Vec<usize>,
    keep_failures: bool,
}

pub struct Sample {
    rules: Vec<Rule>,
    overrides: Vec<(Glob, f64)>,
    default_rate: f64,
    default_key: Vec<usize>,
    always_keep: Option<Severity>,
    /// Every field the decision reads, looked up in one pass per event.
    paths: Vec<Path>,
    /// `paths` compiled for the per-event lookup, once the config is read.
    finder: Finder,
    /// `"sample_rate":…,` per rate, written once.
    rate_fields: Vec<(u64, String)>,
}

const EVENT_TYPE: usize = 0;
const SEVERITY: usize = 1;
const EVENT_ID: usize = 2;
const SUCCESS: usize = 3;
const SAMPLE_RATE: usize = 4;
const FIXED: [&str; 5] = ["event_type", "severity", "event_id", "data.success", "sample_rate"];

fn path(text: &str) -> Path {
    text.split('.').map(str::to_string).collect()
}

/// The default table, from the spec's Sampling Strategies.
fn default_rules() -> Vec<(&'static str, f64, &'static [&'static str], bool)> {
    vec![
        ("agent.*", 1.0, &[], false),
        ("security.*", 1.0, &[], false),
        ("consensus.*", 1.0, &[], false),
        ("task.*", 0.1, &["data.task_id"], true),
        ("mesh.*", 1.0, &[], false),
        ("swarm.iteration", 0.01, &["data.swarm_id", "data.iteration"], false),
        ("bridge.message", 0.001, &[], false),
    ]
}

fn rate(value: &Value, at: &str) -> Result<f64, String> {
    match value.as_f64() {
        Some(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{at}: expected a rate between 0 and 1, got {value}")),
    }
}

fn key_paths(value: &Value, at: &str) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .filter(|parts| !parts.is_empty())
            .ok_or_else(|| format!("{at}: expected a list of field paths")),
        other => Err(format!("{at}: expected a field path or a list of them, got {other}")),
    }
}

impl Sample {
    /// The slot of `text` in the lookup list, adding it when new.
    fn slot(&mut self, text: &str) -> usize {
        let wanted = path(text);
        match self.paths.iter().position(|p| *p == wanted) {
            Some(i) => i,
            None => {
                self.paths.push(wanted);
                self.paths.len() - 1
            }
        }
    }

    fn slots(&mut self, parts: &[String]) -> Result<Vec<usize>, String> {
        let slots: Vec<usize> = parts.iter().map(|p| self.slot(p)).collect();
        if self.paths.len() > synaptic_plugin_sdk::field::MAX_PATHS {
            return Err("config: too many distinct key fields".to_string());
        }
        Ok(slots)
    }

    fn rule_from(&mut self, value: &Value, at: &str) -> Result<Rule, String> {
        let Value::Object(map) = value else { return Err(format!("{at}: expected a map")) };
        for key in map.keys() {
            if !["event_type", "rate", "key", "keep_failures"].contains(&key.as_str()) {
                return Err(format!(
                    "{at}.{key}: unknown key (expected event_type, rate, key, keep_failures)"
                ));
            }
        }
        let event_type = map
            .get("event_type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{at}.event_type: required, a glob like `task.*`"))?;
        let rate =
            rate(map.get("rate").ok_or_else(|| format!("{at}.rate: required"))?, &format!("{at}.rate"))?;
        let key = match map.get("key") {
            Some(value) => {
                let parts = key_paths(value, &format!("{at}.key"))?;
                self.slots(&parts)?
            }
            None => Vec::new(),
        };
        let keep_failures = match map.get("keep_failures") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("{at}.keep_failures: expected true or false, got {other}")),
        };
        Ok(Rule { event_type: Glob::new(event_type), rate, key, keep_failures })
    }

    /// The decision for one event: `Some(rate)` to keep it with that rate.
    fn decide(&self, raw: &[u8], slots: &[Option<Scalar<'_>>]) -> Option<f64> {
        let text = |i: usize| slots[i].as_ref().map(Scalar::text);
        let event_type = text(EVENT_TYPE).unwrap_or(Cow::Borrowed(""));
        let severity = text(SEVERITY).and_then(|s| Severity::parse(&s));
        if let (Some(floor), Some(severity)) = (self.always_keep, severity) {
            if severity >= floor {
                return Some(1.0);
            }
        }
        let rule = self.rules.iter().find(|r| r.event_type.matches(&event_type));
        if rule.is_some_and(|r| r.keep_failures) && slots[SUCCESS] == Some(Scalar::Bool(false)) {
            return Some(1.0);
        }
        let rate = self
            .overrides
            .iter()
            .find(|(glob, _)| glob.matches(&event_type))
            .map(|(_, rate)| *rate)
            .or(rule.map(|r| r.rate))
            .unwrap_or(self.default_rate);
        if rate >= 1.0 {
            return Some(1.0);
        }
        let key_slots = match rule {
            Some(r) if !r.key.is_empty() => &r.key,
            _ => &self.default_key,
        };
        let parts: Option<Vec<Cow<'_, str>>> = key_slots.iter().map(|&i| text(i)).collect();
        let key = match parts {
            Some(parts) => parts.join(":"),
            None => match text(EVENT_ID) {
                Some(id) => id.into_owned(),
                None => String::from_utf8_lossy(raw).into_owned(),
            },
        };
        sampling::keep(&key, rate).then_some(rate)
    }
}

/// Appends `"sample_rate":<rate>,` as serde_json writes the f64 (`1.0`, `0.001`),
/// as a re-encoded event would have it. The few rates a config has are written once.
fn push_rate_field(out: &mut Vec<u8>, rate: f64, written: &mut Vec<(u64, String)>) {
    match written.iter().find(|(bits, _)| *bits == rate.to_bits()) {
        Some((_, field)) => out.extend_from_slice(field.as_bytes()),
        None => {
            let field = format!("\"sample_rate\":{},", Value::from(rate));
            out.extend_from_slice(field.as_bytes());
            if written.len() < 64 {
                written.push((rate.to_bits(), field));
            }
        }
    }
}

/// The event with `sample_rate` set: inserted after the opening brace (no parse),
/// or multiplied into the one it carries.
fn stamp(raw: &[u8], rate: f64, carried: Option<f64>, written: &mut Vec<(u64, String)>) -> Verdict {
    match carried {
        None => {
            let Some(brace) = raw.iter().position(|&b| b == b'{') else { return Verdict::Keep };
            let mut out = Vec::with_capacity(raw.len() + 24);
            out.extend_from_slice(&raw[..=brace]);
            push_rate_field(&mut out, rate, written);
            out.extend_from_slice(&raw[brace + 1..]);
            Verdict::Replace(out)
        }
        Some(carried) => {
            let Ok(mut doc) = serde_json::from_slice::<Map<String, Value>>(raw) else { return Verdict::Keep };
            doc.insert("sample_rate".into(), Value::from(carried * rate));
            Verdict::replace_json(&doc)
        }
    }
}

impl Sample {
    fn verdict<'a>(&mut self, raw: &'a [u8], slots: &mut [Option<Scalar<'a>>]) -> Verdict {
        if !self.finder.find(raw, slots) {
            // Not JSON: not the sampler's business (the host validated it).
            return Verdict::Keep;
        }
        let carried = slots[SAMPLE_RATE].as_ref().and_then(Scalar::as_f64);
        match self.decide(raw, slots) {
            Some(rate) => stamp(raw, rate, carried, &mut self.rate_fields),
            None => Verdict::Drop,
        }
    }
}

impl Plugin for Sample {
    fn init(config: &Config) -> Result<Self, String> {
        for key in config.map().keys() {
            if !["rates", "rules", "default_rate", "key", "always_keep"].contains(&key.as_str()) {
                return Err(format!(
                    "config.{key}: unknown key (expected rates, rules, default_rate, key, always_keep)"
                ));
            }
        }
        let mut sample = Sample {
            rules: Vec::new(),
            overrides: Vec::new(),
            default_rate: 1.0,
            default_key: Vec::new(),
            always_keep: Some(Severity::Error),
            paths: FIXED.iter().map(|p| path(p)).collect(),
            finder: Finder::default(),
            rate_fields: Vec::new(),
        };
        let default_key = match config.get("key") {
            Some(value) => key_paths(value, "config.key")?,
            None => vec!["event_id".to_string()],
        };
        sample.default_key = sample.slots(&default_key)?;
        if let Some(value) = config.get("default_rate") {
            sample.default_rate = rate(value, "config.default_rate")?;
        }
        sample.always_keep = match config.str("always_keep")? {
            None => Some(Severity::Error),
            Some("none") => None,
            Some(text) => Some(Severity::parse(text).ok_or_else(|| {
                format!("config.always_keep: expected TRACE … FATAL or none, got {text:?}")
            })?),
        };
        sample.rules = match config.get("rules") {
            Some(Value::Array(rules)) => rules
                .iter()
                .enumerate()
                .map(|(i, rule)| sample.rule_from(rule, &format!("config.rules[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("config.rules: expected a list, got {other}")),
            None => {
                let mut rules = Vec::new();
                for (glob, rate, key, keep_failures) in default_rules() {
                    let parts: Vec<String> = key.iter().map(|k| k.to_string()).collect();
                    let key = sample.slots(&parts)?;
                    rules.push(Rule { event_type: Glob::new(glob), rate, key, keep_failures });
                }
                rules
            }
        };
        match config.get("rates") {
            None => {}
            Some(Value::Object(rates)) => {
                for (glob, value) in rates {
                    sample.overrides.push((Glob::new(glob), rate(value, &format!("config.rates.{glob}"))?));
                }
                // An exact name before any glob, then the most specific glob first.
                sample.overrides.sort_by_key(|(glob, _)| {
                    (glob.as_str().contains(['*', '?']), std::cmp::Reverse(glob.as_str().len()))
                });
            }
            Some(other) => {
                return Err(format!("config.rates: expected a map of event_type to rate, got {other}"))
            }
        }
        sample.finder = Finder::new(&sample.paths);
        Ok(sample)
    }

    fn process(&mut self, event: &Event<'_>) -> Verdict {
        let mut slots = vec![None; self.paths.len()];
        self.verdict(event.raw(), &mut slots)
    }

    fn process_batch<'a>(&mut self, events: &[Event<'a>], verdicts: &mut Vec<Verdict>) -> Result<(), String> {
        // One lookup buffer for the whole batch.
        let mut slots = vec![None; self.paths.len()];
        verdicts.extend(events.iter().map(|event| self.verdict(event.raw(), &mut slots)));
        Ok(())
    }
}

synaptic_plugin_sdk::export_plugin!(Sample);

#[cfg(test)]
mod tests;
