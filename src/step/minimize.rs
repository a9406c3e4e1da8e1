//! `minimize`: data minimization. Keeps, per event type, only the fields schema
//! v1.0 defines — the envelope (`event_id`, `timestamp`, `component`,
//! `event_type`, `severity`, `tags`, `context`, `data`, and the `sample_rate` a
//! sampler stamps) and the type's `data` fields — plus what `allow` names, and
//! counts what it removed per event type (never the fields' names or values).
//!
//! `allow` is a list of field globs for every type (`[data.debug_*]`), or a map
//! from event-type glob to such a list (`{"task.*": [data.queue], "*": [build]}`).
//! A glob names a top-level field (`build`) or a field of `data` (`data.queue`);
//! a field of `data` kept keeps everything under it. An event type the schema
//! does not know defines no `data` fields: its `data` is emptied unless `allow`
//! keeps some (minimization fails closed).
//!
//! Most events have nothing to remove, and for them the step reads no document:
//! validation has already noted whether `data` holds a key off the schema, and the
//! top-level keys are stepped over without reading their values.

use prometheus::IntCounterVec;
use serde_json::Value;

use super::Step;
use crate::decode::yaml::{Node, NodeKind};
use crate::decode::{Decode, Diagnostics, MapReader};
use crate::event::{schema, Batch, Event, EventKind};
use crate::glob::Glob;

/// The envelope's fields, which minimization always keeps.
const ENVELOPE: [&str; 9] = [
    "event_id",
    "timestamp",
    "component",
    "event_type",
    "severity",
    "tags",
    "context",
    "data",
    "sample_rate",
];

#[derive(Debug, Clone, Default)]
pub struct MinimizeStepConfig {
    /// (event-type glob, field globs kept besides the schema's).
    pub(crate) allow: Vec<(String, Vec<String>)>,
}

impl MinimizeStepConfig {
    pub(crate) fn build(&self, name: &str, cx: &mut super::BuildContext) -> super::RunningStep {
        let removed = cx.telemetry().counter_vec(
            "minimized_fields_total",
            "Fields removed by data minimization, per step and event type",
            &["step", "event_type"],
        );
        super::RunningStep::new(Box::new(MinimizeStep::new(name, &self.allow, removed)), cx.telemetry())
    }

    pub(crate) fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let Some(node) = map.node("allow") else { return Some(MinimizeStepConfig::default()) };
        let allow = match &node.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .map(|(key, globs)| Some((key.name.clone(), field_globs(globs, cx)?)))
                .collect::<Option<Vec<_>>>()?,
            _ => vec![("*".to_string(), field_globs(node, cx)?)],
        };
        Some(MinimizeStepConfig { allow })
    }
}

/// A list of field globs: top-level names or `data.` paths.
fn field_globs(node: &Node, cx: &mut Diagnostics) -> Option<Vec<String>> {
    let globs = Vec::<String>::decode(node, cx)?;
    for glob in &globs {
        if glob.is_empty() || glob.starts_with('.') || glob.ends_with('.') {
            cx.error(node.pos, format!("minimize: `{glob}` is not a field path (`name` or `data.name`)"));
            return None;
        }
    }
    Some(globs)
}

#[derive(Clone)]
pub(crate) struct MinimizeStep {
    name: String,
    /// (event-type glob, field globs): an event keeps a field when any pair whose
    /// type glob matches it names the field.
    allow: Vec<(Glob, Vec<Glob>)>,
    removed: IntCounterVec,
}

impl MinimizeStep {
    pub(crate) fn new(name: &str, allow: &[(String, Vec<String>)], removed: IntCounterVec) -> Self {
        let allow = allow
            .iter()
            .map(|(types, fields)| (Glob::new(types), fields.iter().map(|f| Glob::new(f)).collect()))
            .collect();
        MinimizeStep { name: name.to_string(), allow, removed }
    }

    fn allowed(&self, event_type: &str, path: &str) -> bool {
        self.allow
            .iter()
            .any(|(types, fields)| types.matches(event_type) && fields.iter().any(|f| f.matches(path)))
    }

    /// Whether a top-level key is kept.
    fn keeps_top(&self, event_type: &str, key: &str) -> bool {
        ENVELOPE.contains(&key) || self.allowed(event_type, key)
    }

    /// Whether a key of `data` is kept.
    fn keeps_data(&self, kind: EventKind, event_type: &str, key: &str) -> bool {
        schema::fields(kind).iter().any(|f| f.name == key) || self.allowed(event_type, &format!("data.{key}"))
    }

    /// Whether the event may have something to remove. Exact for an unchanged
    /// event whose validation recorded `data`'s keys; otherwise reads the document.
    fn may_remove(&self, event: &Event) -> bool {
        let event_type = event.event_type();
        let data_off_schema = match event.data_places() {
            Some(places) => places.has_others(),
            None => return true,
        };
        if data_off_schema {
            return true;
        }
        let top = synaptic_plugin_sdk::field::any_top_level_key(event.raw(), |key| {
            std::str::from_utf8(key).map_or(true, |key| !self.keeps_top(event_type, key))
        });
        // Bytes the walk cannot read (none, after validation) go the document way.
        top.unwrap_or(true)
    }

    /// Removes what is not kept; the number of fields removed.
    fn minimize(&self, event: &mut Event) -> usize {
        let kind = event.kind();
        let event_type = event.event_type().to_string();
        let doc = event.doc();
        let top_removed: Vec<String> =
            doc.keys().filter(|k| !self.keeps_top(&event_type, k)).cloned().collect();
        let data_removed: Vec<String> = match doc.get("data") {
            Some(Value::Object(data)) => {
                data.keys().filter(|k| !self.keeps_data(kind, &event_type, k)).cloned().collect()
            }
            _ => Vec::new(),
        };
        let removed = top_removed.len() + data_removed.len();
        if removed == 0 {
            return 0;
        }
        let doc = event.doc_mut();
        for key in &top_removed {
            doc.remove(key);
        }
        if let Some(Value::Object(data)) = doc.get_mut("data") {
            for key in &data_removed {
                data.remove(key);
            }
        }
        removed
    }
}

impl Step for MinimizeStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
        Ok(Some(Box::new(self.clone())))
    }

    fn process(&mut self, batch: &mut Batch) {
        for event in &mut batch.events {
            if !self.may_remove(event) {
                continue;
            }
            let removed = self.minimize(event);
            if removed > 0 {
                let label = event.kind().canonical_name().unwrap_or("unknown");
                self.removed.with_label_values(&[&self.name, label]).inc_by(removed as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Position, SchemaMode};

    fn step(allow: &[(&str, &[&str])]) -> (MinimizeStep, IntCounterVec) {
        let telemetry = crate::telemetry::Telemetry::new();
        let removed = telemetry.counter_vec("minimized_fields_total", "test", &["step", "event_type"]);
        let allow: Vec<(String, Vec<String>)> =
            allow.iter().map(|(t, f)| (t.to_string(), f.iter().map(|s| s.to_string()).collect())).collect();
        (MinimizeStep::new("minimize", &allow, removed.clone()), removed)
    }

    fn event(text: &str, mode: SchemaMode) -> Event {
        Event::decode(bytes::Bytes::from(text.to_string()), Position::Generator { seq: 0 }, mode)
            .unwrap_or_else(|e| panic!("valid test event: {}", e.rejection))
    }

    fn run(step: &mut MinimizeStep, events: Vec<Event>) -> Vec<Value> {
        let mut batch = Batch { events, ..Batch::default() };
        step.process(&mut batch);
        batch.events.into_iter().map(|e| serde_json::from_slice(&e.into_wire()).expect("json")).collect()
    }

    const CLEAN: &str = r#"{"event_id":"e1","timestamp":1767225600000,"component":"scheduler","event_type":"task.completed","severity":"INFO","tags":{"env":"prod"},"context":{"trace_id":"t"},"data":{"task_id":"t1","agent_id":"a1","duration_ms":5,"success":true}}"#;

    #[test]
    fn removes_fields_off_the_schema_and_keeps_the_allowed_ones() {
        let (mut step, removed) = step(&[("task.*", &["data.queue", "build"])]);
        let extra = r#"{"event_id":"e2","timestamp":1767225600000,"component":"scheduler","event_type":"task.completed","severity":"INFO","user_email":"jane@example.com","build":"b7","data":{"task_id":"t1","agent_id":"a1","duration_ms":5,"success":true,"customer":{"name":"Jane"},"queue":"q1"}}"#;
        let out = run(&mut step, vec![event(CLEAN, SchemaMode::Strict), event(extra, SchemaMode::Strict)]);
        assert_eq!(out[0], serde_json::from_str::<Value>(CLEAN).expect("json"), "a clean event is untouched");
        assert!(out[1].get("user_email").is_none(), "{}", out[1]);
        assert!(out[1]["data"].get("customer").is_none(), "{}", out[1]);
        assert_eq!(out[1]["build"], "b7");
        assert_eq!(out[1]["data"]["queue"], "q1");
        assert_eq!(out[1]["data"]["task_id"], "t1");
        assert_eq!(removed.with_label_values(&["minimize", "task.completed"]).get(), 2);
    }

    #[test]
    fn a_clean_event_is_not_rewritten() {
        let (mut step, removed) = step(&[]);
        let mut batch = Batch { events: vec![event(CLEAN, SchemaMode::Strict)], ..Batch::default() };
        step.process(&mut batch);
        assert_eq!(batch.events[0].wire().as_ref(), CLEAN.as_bytes(), "the bytes as they came");
        assert_eq!(removed.with_label_values(&["minimize", "task.completed"]).get(), 0);
    }

    #[test]
    fn an_unknown_type_keeps_no_data_unless_allowed() {
        let text = r#"{"event_id":"e3","timestamp":1767225600000,"component":"x","event_type":"custom.thing","severity":"INFO","data":{"a":1,"b":{"c":2}}}"#;
        let (mut closed, removed) = step(&[]);
        let out = run(&mut closed, vec![event(text, SchemaMode::Lenient)]);
        assert_eq!(out[0]["data"], serde_json::json!({}));
        assert_eq!(removed.with_label_values(&["minimize", "unknown"]).get(), 2);
        let (mut open, _) = step(&[("custom.*", &["data.b"])]);
        let out = run(&mut open, vec![event(text, SchemaMode::Lenient)]);
        assert_eq!(out[0]["data"], serde_json::json!({"b": {"c": 2}}));
    }

    #[test]
    fn a_changed_event_is_minimized_from_its_document() {
        let (mut step, _) = step(&[]);
        let mut changed = event(CLEAN, SchemaMode::Strict);
        changed.doc_mut().insert("added_later".to_string(), Value::from("x"));
        if let Some(Value::Object(data)) = changed.doc_mut().get_mut("data") {
            data.insert("note".to_string(), Value::from("y"));
        }
        let out = run(&mut step, vec![changed]);
        assert!(out[0].get("added_later").is_none() && out[0]["data"].get("note").is_none(), "{}", out[0]);
    }
}
