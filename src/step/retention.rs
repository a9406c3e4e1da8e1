//! `retention`: gives every event its retention class in `tags.retention`, from a
//! table whose first matching row wins. Sinks and archives key their retention on
//! it. The default table is the spec's Retention Policies:
//!
//! | class    | events                                                  |
//! |----------|---------------------------------------------------------|
//! | `high`   | ERROR and FATAL of any type; `security.*`; `consensus.*` |
//! | `medium` | `task.*` (task execution); `mesh.*` (topology changes)  |
//! | `low`    | everything else (debug traces, routine operations)      |
//!
//! Config: `classes`, a list of `{class, match}` rows replacing the table (`match`
//! as a sink's: `event_type`, `component`, `min_severity`), and `default` (the
//! class of an event no row matches; `low`). Counted per class.

use prometheus::{IntCounter, IntCounterVec};
use serde_json::Value;

use super::Step;
use crate::decode::{list_items, Diagnostics, MapReader};
use crate::event::{Batch, Severity};
use crate::route::{decode_match, MatchConfig, Matcher};

/// The tag the class is written to.
pub(crate) const RETENTION_TAG: &str = "retention";

#[derive(Debug, Clone)]
pub struct RetentionStepConfig {
    pub(crate) classes: Vec<(String, MatchConfig)>,
    pub(crate) default: String,
}

/// The spec's table.
fn default_classes() -> Vec<(String, MatchConfig)> {
    let types = |globs: &[&str]| MatchConfig {
        event_type: globs.iter().map(|g| g.to_string()).collect(),
        ..MatchConfig::default()
    };
    vec![
        ("high".to_string(), MatchConfig { min_severity: Some(Severity::Error), ..MatchConfig::default() }),
        ("high".to_string(), types(&["security.*", "consensus.*"])),
        ("medium".to_string(), types(&["task.*", "mesh.*"])),
    ]
}

/// Class names end up in file and index names: short, lower case, no separators
/// other than `-` and `_`.
fn valid_class(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl RetentionStepConfig {
    pub(crate) fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let default_pos = map.key_pos("default");
        let default: String = map.or("default", "low".to_string(), cx);
        if !valid_class(&default) {
            cx.error(default_pos, format!("retention: class `{default}` must be 1-32 characters of a-z, 0-9, - and _, starting with a letter"));
        }
        let classes = match map.node("classes") {
            None => default_classes(),
            Some(node) => {
                let mut classes = Vec::new();
                for (i, item) in list_items(node, "classes", cx).iter().enumerate() {
                    let what = format!("retention class {}", i + 1);
                    let Some(mut row) = MapReader::new(item, &what, cx) else { continue };
                    let class_pos = row.key_pos("class");
                    let class: Option<String> = row.required("class", cx);
                    let matcher = match row.node("match") {
                        Some(node) => decode_match(node, cx),
                        None => {
                            cx.error(row.pos(), format!("{what} is missing required key `match`"));
                            None
                        }
                    };
                    row.finish(cx);
                    if let Some(class) = &class {
                        if !valid_class(class) {
                            cx.error(class_pos, format!("retention: class `{class}` must be 1-32 characters of a-z, 0-9, - and _, starting with a letter"));
                        }
                    }
                    classes.extend(class.zip(matcher));
                }
                classes
            }
        };
        Some(RetentionStepConfig { classes, default })
    }

    pub(crate) fn build(&self, name: &str, cx: &mut super::BuildContext) -> super::RunningStep {
        let counted = cx.telemetry().counter_vec(
            "retention_events_total",
            "Events given a retention class, per step and class",
            &["step", "class"],
        );
        super::RunningStep::new(Box::new(RetentionStep::new(name, self, counted)), cx.telemetry())
    }
}

#[derive(Clone)]
pub(crate) struct RetentionStep {
    name: String,
    /// Each row's class, its matcher, and its counter (resolved once, not per event).
    classes: Vec<(Value, Matcher, IntCounter)>,
    default: (Value, IntCounter),
}

impl RetentionStep {
    fn new(name: &str, config: &RetentionStepConfig, counted: IntCounterVec) -> Self {
        let counter = |class: &str| counted.with_label_values(&[name, class]);
        RetentionStep {
            name: name.to_string(),
            classes: config
                .classes
                .iter()
                .map(|(c, m)| (Value::String(c.clone()), Matcher::new(m), counter(c)))
                .collect(),
            default: (Value::String(config.default.clone()), counter(&config.default)),
        }
    }
}

impl Step for RetentionStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
        Ok(Some(Box::new(self.clone())))
    }

    fn process(&mut self, batch: &mut Batch) {
        for event in &mut batch.events {
            let (class, counter) = self
                .classes
                .iter()
                .find(|(_, m, _)| m.matches(event))
                .map_or((&self.default.0, &self.default.1), |(c, _, n)| (c, n));
            counter.inc();
            event.set_tag(RETENTION_TAG, class.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Position, SchemaMode};

    fn event(event_type: &str, severity: &str, data: &str) -> Event {
        let text = format!(
            r#"{{"event_id":"e","timestamp":1767225600000,"component":"c","event_type":"{event_type}","severity":"{severity}","data":{data}}}"#
        );
        Event::decode(bytes::Bytes::from(text), Position::Generator { seq: 0 }, SchemaMode::Lenient)
            .unwrap_or_else(|e| panic!("valid test event: {}", e.rejection))
    }

    #[test]
    fn the_default_table_is_the_specs() {
        let telemetry = crate::telemetry::Telemetry::new();
        let counted = telemetry.counter_vec("retention_events_total", "test", &["step", "class"]);
        let config = RetentionStepConfig { classes: default_classes(), default: "low".to_string() };
        let mut step = RetentionStep::new("retention", &config, counted.clone());
        let task = r#"{"task_id":"t","agent_id":"a","duration_ms":1,"success":true}"#;
        let mut batch = Batch {
            events: vec![
                event("task.completed", "INFO", task),
                event("task.completed", "ERROR", task),
                event("security.violation", "INFO", r#"{}"#),
                event("consensus.vote", "DEBUG", r#"{}"#),
                event("mesh.topology.change", "INFO", r#"{}"#),
                event("agent.lifecycle", "DEBUG", r#"{}"#),
                event("custom.thing", "WARN", r#"{}"#),
            ],
            ..Batch::default()
        };
        step.process(&mut batch);
        let classes: Vec<String> = batch
            .events
            .iter()
            .map(|e| e.get("tags.retention").and_then(Value::as_str).unwrap_or("none").to_string())
            .collect();
        assert_eq!(classes, ["medium", "high", "high", "high", "medium", "low", "low"]);
        assert_eq!(counted.with_label_values(&["retention", "high"]).get(), 3);
    }
}
