//! `consent`: the opt-out list. Events of a subject who opted out are dropped, or
//! pseudonymized (each identifying field replaced by an HMAC-SHA256 of its value),
//! before any plugin, metric or sink sees them: the step must come first in the
//! pipeline (`validate` refuses it anywhere else).
//!
//! The list is a text file, one subject per line as `FIELD=VALUE`
//! (`data.agent_id=agent-017`); blank lines and `#` comments are ignored. It is read
//! at start (a bad line stops the start, naming file and line) and again whenever
//! it changes (checked every second); a list that cannot be read then is reported
//! and the previous one stays in force, so a bad edit never lifts an opt-out.
//!
//! Counted on /metrics per step and action (`consent_events_total`), with the
//! number of subjects listed (`consent_subjects`) and of failed reloads
//! (`consent_reload_errors_total`); the subjects themselves are never named in
//! metrics or logs.
//!
//! Events that fail validation never reach a step; they are dead-lettered (the
//! dead-letter scrubber applies), not matched against the list.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use prometheus::{IntCounter, IntGauge};
use serde_json::Value;
use sha2::Sha256;
use synaptic_plugin_sdk::field::{Finder, Scalar};

use super::Step;
use crate::decode::secret::Secret;
use crate::decode::{one_of, Diagnostics, MapReader};
use crate::event::{Batch, Event};
use crate::fields::{is_subject_field, parse_subject};

/// How often the list file is checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAction {
    Drop,
    Pseudonymize,
}

#[derive(Debug, Clone)]
pub struct ConsentStepConfig {
    pub(crate) opt_out: PathBuf,
    pub(crate) action: ConsentAction,
    /// The HMAC key (pseudonymize only).
    pub(crate) hash_key: Option<Secret>,
    /// Fields replaced by their HMAC; by default the fields the list names.
    pub(crate) identifying: Vec<String>,
}

impl ConsentStepConfig {
    pub(crate) fn decode(map: &mut MapReader<'_>, base: &Path, cx: &mut Diagnostics) -> Option<Self> {
        let file: Option<String> = map.required("opt_out", cx);
        let action = match map.node("action") {
            Some(node) => one_of(
                node,
                &[("drop", ConsentAction::Drop), ("pseudonymize", ConsentAction::Pseudonymize)],
                cx,
            )?,
            None => ConsentAction::Drop,
        };
        let key_pos = map.key_pos("hash_key");
        let hash_key: Option<Secret> = map.optional("hash_key", cx);
        let identifying: Vec<String> = map.or("identifying", Vec::new(), cx);
        let pos = map.pos();
        for path in &identifying {
            if !is_subject_field(path) {
                cx.error(
                    map.key_pos("identifying"),
                    format!("consent: `{path}` is not a field under data, tags or context"),
                );
            }
        }
        if action == ConsentAction::Pseudonymize && hash_key.is_none() {
            cx.error(key_pos, "consent: action `pseudonymize` needs `hash_key` (say `${NAME}` to read it from the environment)");
        }
        let opt_out = base.join(file?);
        if let Err(problem) = OptOut::load(&opt_out) {
            cx.error(pos, format!("consent: {problem}"));
        }
        Some(ConsentStepConfig { opt_out, action, hash_key, identifying })
    }

    pub(crate) fn build(
        &self,
        name: &str,
        cx: &mut super::BuildContext,
    ) -> anyhow::Result<super::RunningStep> {
        let list = OptOut::load(&self.opt_out)
            .map_err(|problem| anyhow::anyhow!("consent step `{name}`: {problem}"))?;
        let telemetry = cx.telemetry();
        let events = telemetry.counter_vec(
            "consent_events_total",
            "Events of subjects on the opt-out list, per step and action",
            &["step", "action"],
        );
        let action = match self.action {
            ConsentAction::Drop => "dropped",
            ConsentAction::Pseudonymize => "pseudonymized",
        };
        let subjects = telemetry
            .gauge_vec("consent_subjects", "Subjects on the opt-out list", &["step"])
            .with_label_values(&[name]);
        let reload_errors = telemetry
            .counter_vec(
                "consent_reload_errors_total",
                "Opt-out list reloads that failed (the previous list stays)",
                &["step"],
            )
            .with_label_values(&[name]);
        subjects.set(list.len() as i64);
        let shared = Arc::new(Shared { list: RwLock::new(Arc::new(list)), subjects, reload_errors });
        watch(Arc::downgrade(&shared), self.opt_out.clone(), name.to_string());
        let step = ConsentStep {
            name: name.to_string(),
            action: self.action,
            key: self.hash_key.as_ref().map(|k| k.expose().as_bytes().to_vec()),
            identifying: self.identifying.clone(),
            shared,
            counted: events.with_label_values(&[name, action]),
        };
        Ok(super::RunningStep::new(Box::new(step), telemetry))
    }
}

/// The subjects who opted out: per field path, the values.
#[derive(Debug, Default)]
struct OptOut {
    by_field: Vec<(String, HashSet<String>)>,
    finder: Finder,
}

impl OptOut {
    fn load(path: &Path) -> Result<OptOut, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut by_field: HashMap<String, HashSet<String>> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{}:{}", path.display(), index + 1);
            let (field, value) = parse_subject(line).map_err(|e| format!("{at}: {e}"))?;
            by_field.entry(field.to_string()).or_default().insert(value.to_string());
        }
        let mut by_field: Vec<(String, HashSet<String>)> = by_field.into_iter().collect();
        by_field.sort_by(|a, b| a.0.cmp(&b.0));
        let paths: Vec<Vec<&str>> = by_field.iter().map(|(f, _)| f.split('.').collect()).collect();
        Ok(OptOut { finder: Finder::new(&paths), by_field })
    }

    fn len(&self) -> usize {
        self.by_field.iter().map(|(_, values)| values.len()).sum()
    }

    fn fields(&self) -> BTreeSet<&str> {
        self.by_field.iter().map(|(f, _)| f.as_str()).collect()
    }

    /// Whether the event belongs to a listed subject.
    fn covers(&self, event: &Event) -> bool {
        if self.by_field.is_empty() {
            return false;
        }
        let wire = event.wire();
        let mut found: Vec<Option<Scalar<'_>>> = vec![None; self.by_field.len()];
        // The event's bytes are JSON (validated, or the re-encoding of a document).
        if !self.finder.find(&wire, &mut found) {
            return false;
        }
        found.iter().zip(&self.by_field).any(|(value, (_, values))| {
            value
                .as_ref()
                .is_some_and(|v| !matches!(v, Scalar::Bool(_)) && values.contains(v.text().as_ref()))
        })
    }
}

/// Replaces the value at a dotted path, if the event has it.
fn replace_at(doc: &mut serde_json::Map<String, Value>, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut map = doc;
    for part in parts {
        match map.get_mut(part) {
            Some(Value::Object(inner)) => map = inner,
            _ => return,
        }
    }
    if let Some(slot) = map.get_mut(last) {
        *slot = value;
    }
}

struct Shared {
    list: RwLock<Arc<OptOut>>,
    subjects: IntGauge,
    reload_errors: IntCounter,
}

/// Reloads the list when the file changes, until the step is gone.
fn watch(shared: Weak<Shared>, path: PathBuf, step: String) {
    let stamp = |path: &Path| {
        std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    let mut last = stamp(&path);
    let thread_step = step.clone();
    let spawned = std::thread::Builder::new().name(format!("consent-{step}")).spawn(move || loop {
        let step = &thread_step;
        std::thread::sleep(RELOAD_EVERY);
        let Some(shared) = shared.upgrade() else { return };
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match OptOut::load(&path) {
            Ok(list) => {
                shared.subjects.set(list.len() as i64);
                tracing::info!(step = %step, subjects = list.len(), "opt-out list reloaded");
                if let Ok(mut current) = shared.list.write() {
                    *current = Arc::new(list);
                }
            }
            Err(problem) => {
                shared.reload_errors.inc();
                tracing::error!(step = %step, %problem, "opt-out list not reloaded: the previous list stays in force");
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(step = %step, error = %e, "cannot watch the opt-out list: changes need a restart");
    }
}

pub(crate) struct ConsentStep {
    name: String,
    action: ConsentAction,
    key: Option<Vec<u8>>,
    identifying: Vec<String>,
    shared: Arc<Shared>,
    counted: IntCounter,
}

impl ConsentStep {
    fn pseudonym(&self, value: &str) -> String {
        let key = self.key.as_deref().unwrap_or_default();
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            // HMAC takes keys of any length.
            return "pseudonym".to_string();
        };
        mac.update(value.as_bytes());
        format!("pseudonym:{}", hex::encode(&mac.finalize().into_bytes()[..16]))
    }

    fn pseudonymize(&self, event: &mut Event, fields: &BTreeSet<&str>) {
        let paths: BTreeSet<&str> = if self.identifying.is_empty() {
            fields.clone()
        } else {
            self.identifying.iter().map(String::as_str).collect()
        };
        let replacements: Vec<(&str, String)> = paths
            .iter()
            .filter_map(|path| {
                let text = match event.get(path)? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some((*path, self.pseudonym(&text)))
            })
            .collect();
        let doc = event.doc_mut();
        for (path, pseudonym) in replacements {
            replace_at(doc, path, Value::String(pseudonym));
        }
    }
}

impl Step for ConsentStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn fork(&self) -> anyhow::Result<Option<Box<dyn Step>>> {
        Ok(Some(Box::new(ConsentStep {
            name: self.name.clone(),
            action: self.action,
            key: self.key.clone(),
            identifying: self.identifying.clone(),
            shared: Arc::clone(&self.shared),
            counted: self.counted.clone(),
        })))
    }

    fn process(&mut self, batch: &mut Batch) {
        // One read of the list per batch: a reload applies from the next batch on.
        let list = match self.shared.list.read() {
            Ok(list) => Arc::clone(&list),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let covered: Vec<bool> = batch.events.iter().map(|e| list.covers(e)).collect();
        let hits = covered.iter().filter(|c| **c).count();
        if hits == 0 {
            return;
        }
        self.counted.inc_by(hits as u64);
        match self.action {
            ConsentAction::Drop => {
                let mut covered = covered.into_iter();
                batch.events.retain(|_| !covered.next().unwrap_or(false));
                batch.dropped += hits;
            }
            ConsentAction::Pseudonymize => {
                let fields = list.fields();
                for (event, covered) in batch.events.iter_mut().zip(covered) {
                    if covered {
                        self.pseudonymize(event, &fields);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Position, SchemaMode};
    use crate::telemetry::Telemetry;

    fn event(agent: &str, note: &str) -> Event {
        let text = format!(
            r#"{{"event_id":"e-{note}","timestamp":1767225600000,"component":"scheduler","event_type":"task.completed","severity":"INFO","tags":{{"owner":"{agent}"}},"data":{{"task_id":"t1","agent_id":"{agent}","duration_ms":5,"success":true,"error_message":"{note}"}}}}"#
        );
        Event::decode(bytes::Bytes::from(text), Position::Generator { seq: 0 }, SchemaMode::Strict)
            .unwrap_or_else(|e| panic!("valid test event: {}", e.rejection))
    }

    fn config(dir: &Path, action: ConsentAction, list: &str, identifying: &[&str]) -> ConsentStepConfig {
        let path = dir.join("opt-out.txt");
        std::fs::write(&path, list).expect("write the list");
        ConsentStepConfig {
            opt_out: path,
            action,
            hash_key: Some(Secret::new("consent-test-key".to_string())),
            identifying: identifying.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn build(config: &ConsentStepConfig, telemetry: &Arc<Telemetry>) -> super::super::RunningStep {
        let mut cx = super::super::BuildContext::new(Arc::clone(telemetry), SchemaMode::Strict);
        config.build("consent", &mut cx).expect("builds")
    }

    fn counted(telemetry: &Telemetry, action: &str) -> u64 {
        telemetry
            .counter_vec("consent_events_total", "", &["step", "action"])
            .with_label_values(&["consent", action])
            .get()
    }

    #[test]
    fn drops_the_events_of_listed_subjects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let telemetry = Arc::new(Telemetry::new());
        let list = "# opted out\n\ndata.agent_id=agent-017\ntags.owner = team-x\n";
        let mut step = build(&config(dir.path(), ConsentAction::Drop, list, &[]), &telemetry);
        let mut batch = Batch {
            events: vec![
                event("agent-001", "ok"),
                event("agent-017", "x"),
                event("team-x", "y"),
                event("agent-0170", "z"),
            ],
            ..Batch::default()
        };
        step.process(&mut batch);
        let ids: Vec<&str> = batch.events.iter().map(Event::event_id).collect();
        assert_eq!(ids, ["e-ok", "e-z"]);
        assert_eq!(batch.dropped, 2);
        assert_eq!(counted(&telemetry, "dropped"), 2);
        let metrics = telemetry.render();
        assert!(!metrics.contains("agent-017") && !metrics.contains("team-x"), "subjects are never named");
    }

    #[test]
    fn pseudonymizes_the_identifying_fields_the_same_way_every_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let telemetry = Arc::new(Telemetry::new());
        let config = config(
            dir.path(),
            ConsentAction::Pseudonymize,
            "data.agent_id=agent-017\n",
            &["data.agent_id", "tags.owner"],
        );
        let mut step = build(&config, &telemetry);
        let mut batch = Batch {
            events: vec![event("agent-017", "a"), event("agent-017", "b"), event("agent-002", "c")],
            ..Batch::default()
        };
        step.process(&mut batch);
        let out: Vec<Value> =
            batch.events.into_iter().map(|e| serde_json::from_slice(&e.into_wire()).expect("json")).collect();
        assert_eq!(out.len(), 3, "pseudonymized events stay");
        let pseudonym = out[0]["data"]["agent_id"].as_str().expect("a string").to_string();
        assert!(
            pseudonym.starts_with("pseudonym:") && pseudonym.len() == "pseudonym:".len() + 32,
            "{pseudonym}"
        );
        assert_eq!(out[1]["data"]["agent_id"], pseudonym.as_str(), "one subject, one pseudonym");
        assert_eq!(out[0]["tags"]["owner"], pseudonym.as_str(), "every identifying field");
        assert_eq!(out[2]["data"]["agent_id"], "agent-002");
        assert!(!out[0].to_string().contains("agent-017"), "{}", out[0]);
        assert_eq!(counted(&telemetry, "pseudonymized"), 2);
    }

    #[test]
    fn a_changed_list_applies_and_a_broken_one_keeps_the_previous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let telemetry = Arc::new(Telemetry::new());
        let config = config(dir.path(), ConsentAction::Drop, "data.agent_id=agent-017\n", &[]);
        let mut step = build(&config, &telemetry);
        let run = |step: &mut super::super::RunningStep, agent: &str| {
            let mut batch = Batch { events: vec![event(agent, "n")], ..Batch::default() };
            step.process(&mut batch);
            batch.events.is_empty()
        };
        assert!(!run(&mut step, "agent-020"));
        std::fs::write(&config.opt_out, "data.agent_id=agent-017\ndata.agent_id=agent-020\n").expect("edit");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !run(&mut step, "agent-020") {
            assert!(std::time::Instant::now() < deadline, "the edited list was not picked up within 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let errors = || {
            telemetry
                .counter_vec("consent_reload_errors_total", "", &["step"])
                .with_label_values(&["consent"])
                .get()
        };
        std::fs::write(&config.opt_out, "data.agent_id=agent-017\nthis line is broken\n").expect("break it");
        while errors() == 0 {
            assert!(
                std::time::Instant::now() < deadline + Duration::from_secs(5),
                "the broken list was not reported"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(run(&mut step, "agent-020"), "the previous list stays in force");
    }

    #[test]
    fn a_bad_list_is_named_with_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("list.txt");
        std::fs::write(&path, "data.agent_id=a\nsecret\n").expect("write");
        let problem = OptOut::load(&path).expect_err("refused");
        assert!(problem.ends_with("list.txt:2: expected FIELD=VALUE (data.agent_id=agent-017)"), "{problem}");
        std::fs::write(&path, "event_id=e1\n").expect("write");
        assert!(OptOut::load(&path)
            .expect_err("refused")
            .contains("not a field under data, tags or context"));
    }
}
