use std::time::Duration;

use super::*;
use crate::plugin::{Grants, OnError};

fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, "c.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str =
    "source: {type: generator}\nsinks:\n  - {name: out, type: stdout}\ndead_letter: {type: stdout}\n";

/// A directory holding empty files with the demo's plugin names: the config checks
/// that plugin files exist, not what is in them.
fn fake_plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("plugins")).expect("plugins dir");
    for name in ["pii_scrub.wasm", "sample.wasm", "filter.rhai", "stamp.wasm"] {
        std::fs::write(dir.path().join("plugins").join(name), b"").expect("plugin file");
    }
    // The demo's alerts step loads the default rule pack from beside its plugins.
    std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
    let pack = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for name in ["critical.yaml", "warning.yaml", "info.yaml"] {
        std::fs::copy(pack.join(name), dir.path().join("rules").join(name)).expect("copy a rule file");
    }
    dir
}

#[test]
fn the_embedded_demo_config_is_valid() {
    let dir = fake_plugin_dir();
    let config =
        Config::parse_relative_to(crate::DEMO_CONFIG, "demo.yaml", dir.path()).expect("demo config parses");
    assert_eq!(config.pipeline.len(), 10);
    let StepKind::Minimize(minimize) = &config.pipeline[0].kind else { panic!("first step minimizes") };
    assert_eq!(minimize.allow, [("system.health".to_string(), vec!["data.*".to_string()])]);
    let StepKind::Plugin(scrub) = &config.pipeline[2].kind else { panic!("third step is a plugin") };
    assert_eq!(scrub.path, dir.path().join("plugins/pii_scrub.wasm"));
    assert_eq!(scrub.config.get("mode"), Some(&serde_json::json!("redact")));
    assert_eq!(scrub.deadline, Duration::from_millis(200));
    assert_eq!(scrub.memory, 32 << 20);
    let StepKind::Metrics(metrics) = &config.pipeline[3].kind else { panic!("fourth step is metrics") };
    assert_eq!(metrics.mapping.metrics.len(), 32, "the built-in mapping: the spec's 31 and events.total");
    let StepKind::Traces(traces) = &config.pipeline[4].kind else { panic!("fifth step is traces") };
    assert_eq!(traces.sampling_rate, 0.1);
    let StepKind::Alerts(alerts) = &config.pipeline[5].kind else { panic!("sixth step is alerts") };
    assert_eq!(alerts.rules.len(), 20, "the default rule pack");
    assert_eq!(alerts.receivers.len(), 1);
    let StepKind::Plugin(filter) = &config.pipeline[7].kind else { panic!("eighth step is a plugin") };
    assert_eq!(filter.path, dir.path().join("plugins/filter.rhai"));
    assert_eq!(filter.config.get("min_severity"), Some(&serde_json::json!("INFO")));
    assert_eq!(config.sinks.len(), 2);
    assert!(matches!(config.source, SourceConfig::Generator(ref g) if g.rate == 200.0));
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let config = Config::parse(MINIMAL, "c.yaml").expect("valid");
    assert_eq!(config.batch.max_events, 512);
    assert_eq!(config.limits.max_in_flight_batches, 16);
    assert_eq!(config.server.listen.port(), 9090);
    assert_eq!(config.schema, SchemaMode::Strict);
}

#[test]
fn every_error_is_reported_at_once_with_positions() {
    let text = "\
schema: sloppy
source:
  type: generator
  rate: fast
batch:
  max_events: 10
  lingr: 5ms
sinks:
  - name: out
    type: stdout
    match:
      min_severity: LOUD
dead_letter: {type: stdout}
";
    let errs = errors(text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs[0].starts_with("c.yaml:1:9: expected one of strict, lenient, got `sloppy`"), "{}", errs[0]);
    assert!(errs[1].starts_with("c.yaml:4:9: expected a number, got `fast`"), "{}", errs[1]);
    assert!(errs[2].starts_with("c.yaml:7:3: unknown key `lingr` in batch"), "{}", errs[2]);
    assert!(errs[3].starts_with("c.yaml:12:21: expected one of TRACE"), "{}", errs[3]);
}

#[test]
fn missing_sections_and_types_are_named() {
    let errs = errors("sinks: []\n");
    assert!(errs.iter().any(|e| e.contains("missing required key `source`")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("missing required key `dead_letter`")), "{errs:#?}");
    let errs = errors("source: {rate: 3}\nsinks: [{name: a, type: kafkaa}]\ndead_letter: {type: stdout}\n");
    assert!(errs.iter().any(|e| e.contains("source is missing required key `type`")), "{errs:#?}");
    assert!(
        errs.iter().any(|e| e.contains(
            "c.yaml:2:25: expected one of stdout, file, kafka, otlp, influxdb, http, elasticsearch, got `kafkaa`"
        )),
        "{errs:#?}"
    );
}

#[test]
fn duplicate_sink_names_are_rejected() {
    let errs = errors("source: {type: generator}\nsinks:\n  - {name: a, type: stdout}\n  - {name: a, type: stdout}\ndead_letter: {type: stdout}\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("sink name `a` is used twice"));
}

#[test]
fn referenced_files_are_checked() {
    let errs = errors("source: {type: file, path: /nonexistent/in.jsonl}\nsinks: [{name: a, type: file, path: /proc/version/x.jsonl}]\ndead_letter: {type: stdout}\n");
    assert!(
        errs.iter().any(|e| e.contains("input file `/nonexistent/in.jsonl` does not exist")),
        "{errs:#?}"
    );
    assert!(errs.iter().any(|e| e.contains("is not a directory")), "{errs:#?}");
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let errs = errors("source: {type: generator\nsinks: []\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("c.yaml:"), "{}", errs[0]);
    assert!(errs[0].contains("YAML syntax error"), "{}", errs[0]);
}

#[test]
fn plugin_steps_are_checked_with_positions() {
    let dir = fake_plugin_dir();
    let text = format!(
        "source: {{type: generator}}\n\
         plugins: {{dir: {plugins}, max_memory: 32MiB, rollback_failures: 20}}\n\
         pipeline:\n\
         \x20 - {{type: plugin, file: stamp.wasm, memory: 64MiB, on_error: ignore}}\n\
         \x20 - {{type: plugin, file: nothere.wasm}}\n\
         \x20 - {{type: plugin, file: script.lua, allow: {{network: yes, files: true}}}}\n\
         sinks:\n  - {{name: out, type: stdout}}\ndead_letter: {{type: stdout}}\n",
        plugins = dir.path().join("plugins").display()
    );
    let errors = errors(&text);
    let expect = [
        "c.yaml:2:",
        "rollback_failures must be from 1 to rollback_window",
        "c.yaml:4:38: memory is over plugins.max_memory",
        "c.yaml:4:63: expected one of dead_letter, pass, got `ignore`",
        "c.yaml:5:",
        "nothere.wasm` does not exist",
        "c.yaml:6:",
        "must be a WebAssembly component (.wasm) or a Rhai script (.rhai)",
        "c.yaml:6:55: expected true or false, got `yes`",
        "c.yaml:6:60: unknown key `files` in allow (known keys: env, clock, network, dirs)",
    ];
    for wanted in expect {
        assert!(errors.iter().any(|e| e.contains(wanted)), "no error with {wanted:?} in {errors:#?}");
    }
}

#[test]
fn plugin_config_maps_become_json_with_types() {
    let dir = fake_plugin_dir();
    let text = format!(
        "source: {{type: generator}}\n\
         plugins: {{dir: {plugins}}}\n\
         pipeline:\n\
         \x20 - type: plugin\n\
         \x20   file: stamp.wasm\n\
         \x20   config: {{rate: 0.1, n: 3, on: true, name: x, quoted: \"3\", list: [1, a], none: null}}\n\
         sinks:\n  - {{name: out, type: stdout}}\ndead_letter: {{type: stdout}}\n",
        plugins = dir.path().join("plugins").display()
    );
    let config = Config::parse(&text, "c.yaml").expect("valid");
    assert_eq!(config.pipeline[0].name, "stamp", "a plugin step is named after its file");
    let StepKind::Plugin(plugin) = &config.pipeline[0].kind else { panic!("a plugin step") };
    assert_eq!(
        serde_json::Value::Object(plugin.config.clone()),
        serde_json::json!({"rate": 0.1, "n": 3, "on": true, "name": "x", "quoted": "3", "list": [1, "a"], "none": null})
    );
    assert_eq!(plugin.on_error, OnError::DeadLetter);
    assert_eq!(plugin.allow, Grants::default(), "nothing granted by default");
}

#[test]
fn a_dead_letter_sink_that_takes_only_spans_is_refused() {
    let errs = errors(
        "source: {type: generator}\nsinks: [{name: out, type: stdout}]\n\
         dead_letter: {type: otlp, endpoint: \"http://127.0.0.1:4317\"}\n",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "c.yaml:3:14: dead_letter cannot be an otlp sink: it receives the traces step's spans"
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn the_consent_step_must_come_first_and_its_list_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("opt-out.txt"), "data.agent_id=agent-017\n").expect("list");
    std::fs::write(dir.path().join("bad.txt"), "data.agent_id=agent-017\nnonsense\n").expect("list");
    let with = |pipeline: &str| {
        let text = format!("{MINIMAL}pipeline:\n{pipeline}");
        match Config::parse_relative_to(&text, "c.yaml", dir.path()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }
    };
    assert_eq!(
        with("  - {type: consent, opt_out: opt-out.txt}\n  - {type: minimize}\n"),
        Vec::<String>::new()
    );
    let late = with("  - {type: minimize}\n  - {type: consent, opt_out: opt-out.txt}\n");
    assert!(
        late.iter()
            .any(|e| e.contains("c.yaml:7:5") && e.contains("the consent step must be the first step")),
        "{late:?}"
    );
    let bad = with("  - {type: consent, opt_out: bad.txt}\n");
    assert!(bad.iter().any(|e| e.contains("bad.txt:2: expected FIELD=VALUE")), "{bad:?}");
    let keyless = with("  - {type: consent, opt_out: opt-out.txt, action: pseudonymize}\n");
    assert!(keyless.iter().any(|e| e.contains("needs `hash_key`")), "{keyless:?}");
    let minimize = with("  - {type: minimize, allow: {\"task.*\": [data.queue], \"*\": [.bad]}}\n");
    assert!(minimize.iter().any(|e| e.contains("`.bad` is not a field path")), "{minimize:?}");
}

#[test]
fn influxdb_rollups_are_checked() {
    let with = |sink: &str| {
        errors(&format!("source: {{type: generator}}\nsinks:\n  - {sink}\ndead_letter: {{type: stdout}}\n"))
    };
    assert_eq!(
        with("{name: i, type: influxdb, url: \"http://127.0.0.1:8086\", rollups: {}}"),
        Vec::<String>::new()
    );
    let both = with(
        "{name: i, type: influxdb, url: \"http://127.0.0.1:8086\", rollups: {}, retention_policy: autogen}",
    );
    assert!(both.iter().any(|e| e.contains("remove `retention_policy`")), "{both:?}");
    let short =
        with("{name: i, type: influxdb, url: \"http://127.0.0.1:8086\", rollups: {raw: 1d, hourly: 90m}}");
    assert!(short.iter().any(|e| e.contains("`hourly` must be a whole number of hours")), "{short:?}");
    assert!(short.iter().any(|e| e.contains("`raw` must be at least 2d")), "{short:?}");
    let unknown = with("{name: i, type: influxdb, url: \"http://127.0.0.1:8086\", rollups: {weekly: 7d}}");
    assert!(unknown.iter().any(|e| e.contains("unknown key `weekly`")), "{unknown:?}");
}

#[test]
fn file_sink_templates_and_deletion_are_checked() {
    let with = |sink: &str| {
        errors(&format!("source: {{type: generator}}\nsinks:\n  - {sink}\ndead_letter: {{type: stdout}}\n"))
    };
    let ok = "{name: a, type: file, path: \"out/{retention}/e-{date}.jsonl\", delete_after: {high: 90d, \"*\": 7d}}";
    assert_eq!(with(ok), Vec::<String>::new());
    let unknown = with("{name: a, type: file, path: \"out/{region}.jsonl\"}");
    assert!(unknown.iter().any(|e| e.contains("unknown placeholder `{region}`")), "{unknown:?}");
    let undated = with("{name: a, type: file, path: \"out/{retention}.jsonl\", delete_after: {low: 7d}}");
    assert!(undated.iter().any(|e| e.contains("`delete_after` needs `{date}`")), "{undated:?}");
    let bad_age = with("{name: a, type: file, path: \"out/{date}.jsonl\", delete_after: {low: soon}}");
    assert!(bad_age.iter().any(|e| e.contains("delete_after.low: `soon` is not a duration")), "{bad_age:?}");
}

#[test]
fn elasticsearch_sinks_are_checked() {
    let with = |sink: &str| {
        errors(&format!("source: {{type: generator}}\nsinks:\n  - {sink}\ndead_letter: {{type: stdout}}\n"))
    };
    let ok = "{name: s, type: elasticsearch, url: \"http://127.0.0.1:9200\", auth: {api_key: a2V5OnNlY3JldA==}, delete_after: {low: 7d}}";
    assert_eq!(with(ok), Vec::<String>::new());
    let upper =
        with("{name: s, type: elasticsearch, url: \"http://127.0.0.1:9200\", index: \"Codex-{date}\"}");
    assert!(upper.iter().any(|e| e.contains("lower-case letters")), "{upper:?}");
    let undated = with("{name: s, type: elasticsearch, url: \"http://127.0.0.1:9200\", index: \"codex-{retention}\", delete_after: {low: 7d}}");
    assert!(undated.iter().any(|e| e.contains("`delete_after` needs `{date}`")), "{undated:?}");
    let two = with("{name: s, type: elasticsearch, url: \"http://127.0.0.1:9200\", auth: {api_key: abcd1234, bearer: abcd1234}}");
    assert!(two.iter().any(|e| e.contains("takes one of `bearer`, `api_key`")), "{two:?}");
}

#[test]
fn kafka_topics_take_only_the_retention_placeholder() {
    let with = |topic: &str| {
        errors(&format!(
            "source: {{type: generator}}\nsinks:\n  - {{name: k, type: kafka, brokers: \"127.0.0.1:9092\", topic: \"{topic}\"}}\ndead_letter: {{type: stdout}}\n"
        ))
    };
    assert_eq!(with("events-{retention}"), Vec::<String>::new());
    assert!(with("events-{date}").iter().any(|e| e.contains("the only placeholder is {retention}")));
    assert!(with("events/x").iter().any(|e| e.contains("letters, digits")));
}
