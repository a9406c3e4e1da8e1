use super::*;

fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, "c.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str =
    "source: {type: generator}\nsinks:\n  - {name: out, type: stdout}\ndead_letter: {type: stdout}\n";

#[test]
fn the_embedded_demo_config_is_valid() {
    let config = Config::parse(crate::DEMO_CONFIG, "demo.yaml").expect("demo config parses");
    assert_eq!(config.pipeline.len(), 2);
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
        errs.iter().any(|e| e.contains("c.yaml:2:25: expected one of stdout, file, kafka, got `kafkaa`")),
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
