//! `filter`: keeps (or, with `action: drop`, drops) the events that match every
//! condition given:
//!
//! - `event_types`: globs, any of them (`task.*`, `security.*violation`);
//! - `components`: globs, any of them;
//! - `min_severity`: TRACE … FATAL;
//! - `tags`: a map of tag → glob, all of them;
//! - `where`: field predicates, all of them, each `{field: data.x, <test>}` with one
//!   test: `equals: value`, `in: [values]`, `range: {min, max}` (numbers, inclusive,
//!   either bound optional), `regex: pattern` (on the value as text).
//!
//! A predicate on a field the event does not have is false. Counts what it removed
//! as `filtered`.

use serde_json::Value;
use synaptic_plugin_sdk::field::{Finder, Scalar};
use synaptic_plugin_sdk::glob::Glob;
use synaptic_plugin_sdk::{host, Config, Event, Plugin, Severity, Verdict};

enum Test {
    Equals(Value),
    In(Vec<Value>),
    Range { min: Option<f64>, max: Option<f64> },
    Regex(regex::Regex),
}

struct Predicate {
    slot: usize,
    test: Test,
}

pub struct Filter {
    keep_matching: bool,
    event_types: Vec<Glob>,
    components: Vec<Glob>,
    min_severity: Option<Severity>,
    /// (slot of `tags.<name>`, glob)
    tags: Vec<(usize, Glob)>,
    predicates: Vec<Predicate>,
    paths: Vec<Vec<String>>,
    /// `paths` compiled for the per-event lookup, once the config is read.
    finder: Finder,
}

const EVENT_TYPE: usize = 0;
const COMPONENT: usize = 1;
const SEVERITY: usize = 2;

/// A JSON scalar from the config equals a field's value: numbers by value, strings
/// and booleans exactly.
fn equals(field: &Scalar<'_>, want: &Value) -> bool {
    match (field, want) {
        (Scalar::Text(s), Value::String(w)) => s == w,
        (Scalar::Bool(b), Value::Bool(w)) => b == w,
        (field, Value::Number(w)) => field.as_f64().is_some_and(|f| Some(f) == w.as_f64()),
        _ => false,
    }
}

impl Test {
    fn check(&self, field: &Scalar<'_>) -> bool {
        match self {
            Test::Equals(want) => equals(field, want),
            Test::In(wants) => wants.iter().any(|w| equals(field, w)),
            Test::Range { min, max } => field
                .as_f64()
                .is_some_and(|v| min.is_none_or(|min| v >= min) && max.is_none_or(|max| v <= max)),
            Test::Regex(regex) => regex.is_match(&field.text()),
        }
    }
}

fn globs(config: &Config, key: &str) -> Result<Vec<Glob>, String> {
    match config.get(key) {
        None => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![Glob::new(one)]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(Glob::new))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("config.{key}: expected a list of globs")),
        Some(other) => Err(format!("config.{key}: expected a list of globs, got {other}")),
    }
}

fn number(value: Option<&Value>, at: &str) -> Result<Option<f64>, String> {
    match value {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| format!("{at}: expected a number, got {v}")),
    }
}

impl Filter {
    fn slot(&mut self, path: &str) -> Result<usize, String> {
        let wanted: Vec<String> = path.split('.').map(str::to_string).collect();
        if let Some(i) = self.paths.iter().position(|p| *p == wanted) {
            return Ok(i);
        }
        if self.paths.len() == synaptic_plugin_sdk::field::MAX_PATHS {
            return Err(format!(
                "config: too many fields (at most {})",
                synaptic_plugin_sdk::field::MAX_PATHS
            ));
        }
        self.paths.push(wanted);
        Ok(self.paths.len() - 1)
    }

    fn predicate(&mut self, value: &Value, at: &str) -> Result<Predicate, String> {
        let Value::Object(map) = value else {
            return Err(format!("{at}: expected a map like {{field: data.x, equals: 1}}"));
        };
        let field = map
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{at}.field: required, a dotted path"))?;
        let tests: Vec<&String> = map.keys().filter(|k| *k != "field").collect();
        let [name] = tests.as_slice() else {
            return Err(format!("{at}: give exactly one of equals, in, range, regex"));
        };
        let arg = &map[name.as_str()];
        let test = match name.as_str() {
            "equals" => Test::Equals(arg.clone()),
            "in" => match arg {
                Value::Array(values) => Test::In(values.clone()),
                other => return Err(format!("{at}.in: expected a list, got {other}")),
            },
            "range" => {
                let Value::Object(bounds) = arg else {
                    return Err(format!("{at}.range: expected {{min, max}}"));
                };
                if let Some(extra) = bounds.keys().find(|k| *k != "min" && *k != "max") {
                    return Err(format!("{at}.range.{extra}: unknown key (expected min, max)"));
                }
                Test::Range {
                    min: number(bounds.get("min"), &format!("{at}.range.min"))?,
                    max: number(bounds.get("max"), &format!("{at}.range.max"))?,
                }
            }
            "regex" => {
                let pattern = arg.as_str().ok_or_else(|| format!("{at}.regex: expected a string"))?;
                Test::Regex(regex::Regex::new(pattern).map_err(|e| format!("{at}.regex: {e}"))?)
            }
            other => return Err(format!("{at}.{other}: unknown test (expected equals, in, range, regex)")),
        };
        Ok(Predicate { slot: self.slot(field)?, test })
    }

    fn matches(&self, slots: &[Option<Scalar<'_>>]) -> bool {
        let text = |i: usize| slots[i].as_ref().map(Scalar::text);
        let any = |globs: &[Glob], i: usize| {
            globs.is_empty() || text(i).is_some_and(|t| globs.iter().any(|g| g.matches(&t)))
        };
        any(&self.event_types, EVENT_TYPE)
            && any(&self.components, COMPONENT)
            && self
                .min_severity
                .is_none_or(|min| text(SEVERITY).and_then(|s| Severity::parse(&s)).is_some_and(|s| s >= min))
            && self.tags.iter().all(|(slot, glob)| text(*slot).is_some_and(|t| glob.matches(&t)))
            && self.predicates.iter().all(|p| slots[p.slot].as_ref().is_some_and(|field| p.test.check(field)))
    }
}

impl Filter {
    fn verdict<'a>(&self, raw: &'a [u8], slots: &mut [Option<Scalar<'a>>]) -> Verdict {
        // Bytes that are not JSON match nothing; the host validated them anyway.
        let matched = self.finder.find(raw, slots) && self.matches(slots);
        if matched == self.keep_matching {
            Verdict::Keep
        } else {
            Verdict::Drop
        }
    }
}

impl Plugin for Filter {
    fn init(config: &Config) -> Result<Self, String> {
        const KEYS: [&str; 6] = ["action", "event_types", "components", "min_severity", "tags", "where"];
        if let Some(key) = config.map().keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("config.{key}: unknown key (expected {})", KEYS.join(", ")));
        }
        let keep_matching = match config.str("action")? {
            None | Some("keep") => true,
            Some("drop") => false,
            Some(other) => return Err(format!("config.action: expected keep or drop, got {other:?}")),
        };
        let mut filter = Filter {
            keep_matching,
            event_types: globs(config, "event_types")?,
            components: globs(config, "components")?,
            min_severity: match config.str("min_severity")? {
                None => None,
                Some(text) => Some(Severity::parse(text).ok_or_else(|| {
                    format!("config.min_severity: expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL, got {text:?}")
                })?),
            },
            tags: Vec::new(),
            predicates: Vec::new(),
            paths: ["event_type", "component", "severity"].iter().map(|p| vec![p.to_string()]).collect(),
            finder: Finder::default(),
        };
        match config.get("tags") {
            None => {}
            Some(Value::Object(tags)) => {
                for (name, glob) in tags {
                    let glob = glob
                        .as_str()
                        .ok_or_else(|| format!("config.tags.{name}: expected a string (a glob)"))?;
                    let slot = filter.slot(&format!("tags.{name}"))?;
                    filter.tags.push((slot, Glob::new(glob)));
                }
            }
            Some(other) => return Err(format!("config.tags: expected a map of tag to glob, got {other}")),
        }
        match config.get("where") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let predicate = filter.predicate(item, &format!("config.where[{i}]"))?;
                    filter.predicates.push(predicate);
                }
            }
            Some(other) => return Err(format!("config.where: expected a list of predicates, got {other}")),
        }
        filter.finder = Finder::new(&filter.paths);
        Ok(filter)
    }

    fn process(&mut self, event: &Event<'_>) -> Verdict {
        let mut slots = vec![None; self.paths.len()];
        self.verdict(event.raw(), &mut slots)
    }

    fn process_batch<'a>(&mut self, events: &[Event<'a>], verdicts: &mut Vec<Verdict>) -> Result<(), String> {
        // One lookup buffer for the whole batch.
        let mut slots = vec![None; self.paths.len()];
        verdicts.extend(events.iter().map(|event| self.verdict(event.raw(), &mut slots)));
        let filtered = verdicts.iter().filter(|v| **v == Verdict::Drop).count() as u64;
        if filtered > 0 {
            host::count("filtered", filtered);
        }
        Ok(())
    }
}

synaptic_plugin_sdk::export_plugin!(Filter);

#[cfg(test)]
mod tests {
    use synaptic_plugin_sdk::{testing, Verdict};

    use super::Filter;

    const EVENTS: [&[u8]; 4] = [
        br#"{"event_type":"task.completed","component":"scheduler","severity":"INFO","tags":{"environment":"production"},"data":{"duration_ms":1200,"success":true,"agent_id":"agent-code_worker-3"}}"#,
        br#"{"event_type":"task.completed","component":"scheduler","severity":"ERROR","tags":{"environment":"staging"},"data":{"duration_ms":90,"success":false,"error_message":"timeout while running"}}"#,
        br#"{"event_type":"bridge.message","component":"bridge","severity":"DEBUG","tags":{"environment":"production"},"data":{"bridge_type":"MCP"}}"#,
        br#"{"event_type":"security.violation","component":"security","severity":"WARN","tags":{},"data":{"blocked":true}}"#,
    ];

    fn kept(config: &str) -> Vec<bool> {
        let verdicts = testing::run::<Filter>(config, &EVENTS).expect("runs");
        verdicts.iter().map(|v| *v == Verdict::Keep).collect()
    }

    #[test]
    fn each_condition_selects() {
        assert_eq!(kept(r#"{"event_types":["task.*"]}"#), [true, true, false, false]);
        assert_eq!(kept(r#"{"components":["bridge","sec*"]}"#), [false, false, true, true]);
        assert_eq!(kept(r#"{"min_severity":"WARN"}"#), [false, true, false, true]);
        assert_eq!(kept(r#"{"tags":{"environment":"prod*"}}"#), [true, false, true, false]);
        assert_eq!(
            kept(r#"{"where":[{"field":"data.success","equals":false}]}"#),
            [false, true, false, false]
        );
        assert_eq!(
            kept(r#"{"where":[{"field":"data.bridge_type","in":["A2A","MCP"]}]}"#),
            [false, false, true, false]
        );
        assert_eq!(
            kept(r#"{"where":[{"field":"data.duration_ms","range":{"min":100}}]}"#),
            [true, false, false, false]
        );
        assert_eq!(
            kept(r#"{"where":[{"field":"data.error_message","regex":"^time(out)?"}]}"#),
            [false, true, false, false]
        );
        assert_eq!(
            kept(r#"{"where":[{"field":"data.duration_ms","equals":1200.0}]}"#),
            [true, false, false, false]
        );
    }

    #[test]
    fn conditions_combine_and_drop_inverts() {
        let config =
            r#"{"event_types":["task.*"],"where":[{"field":"data.duration_ms","range":{"max":100}}]}"#;
        assert_eq!(kept(config), [false, true, false, false]);
        let before = testing::counters().get("filtered").copied().unwrap_or(0);
        let config = r#"{"action":"drop","min_severity":"WARN"}"#;
        assert_eq!(kept(config), [true, false, true, false]);
        assert_eq!(testing::counters().get("filtered").copied().unwrap_or(0) - before, 2);
    }

    #[test]
    fn bad_config_is_named() {
        for (config, needle) in [
            (r#"{"where":[{"field":"data.x","regex":"("}]}"#, "config.where[0].regex"),
            (r#"{"where":[{"field":"data.x","equals":1,"in":[1]}]}"#, "exactly one"),
            (r#"{"where":[{"field":"data.x","like":"a"}]}"#, "config.where[0].like: unknown test"),
            (r#"{"min_severity":"LOUD"}"#, "config.min_severity"),
            (r#"{"action":"keep-ish"}"#, "config.action"),
            (r#"{"types":["a"]}"#, "config.types: unknown key"),
        ] {
            let err = testing::run::<Filter>(config, &[]).err().unwrap_or_default();
            assert!(err.contains(needle), "{config}: {err}");
        }
    }
}
