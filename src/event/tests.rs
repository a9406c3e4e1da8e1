use super::*;

fn pos() -> Position {
    Position::Generator { seq: 1 }
}

fn decode(json: &str, mode: SchemaMode) -> Result<Event, Rejection> {
    Event::decode(Bytes::from(json.to_string()), pos(), mode).map_err(|r| r.rejection)
}

const GOOD_TASK: &str = r#"{"event_id":"e1","timestamp":1640995200000,"component":"scheduler","event_type":"task.completed","severity":"INFO","tags":{"env":"prod"},"data":{"task_id":"t1","agent_id":"a1","duration_ms":120,"success":true}}"#;

#[test]
fn valid_event_passes_through_byte_for_byte() {
    let event = decode(GOOD_TASK, SchemaMode::Strict).expect("valid");
    assert_eq!(event.kind(), EventKind::TaskCompleted);
    assert_eq!(event.severity(), Severity::Info);
    assert_eq!(event.timestamp_ms(), 1640995200000);
    assert_eq!(event.get("data.agent_id").and_then(Value::as_str), Some("a1"));
    assert_eq!(event.into_wire(), GOOD_TASK.as_bytes());
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let json = r#"{"event_id":"e1","timestamp":1,"component":"scheduler","event_type":"task.completed","severity":"INFO","data":{"task_id":"t1","duration_ms":"slow","success":true}}"#;
    let err = decode(json, SchemaMode::Strict).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("data.agent_id: required field is missing"), "{text}");
    assert!(text.contains("data.duration_ms: expected a number >= 0, got string \"slow\""), "{text}");
}

#[test]
fn nested_fields_and_enums_are_checked() {
    let json = r#"{"event_id":"e","timestamp":1,"component":"agent","event_type":"agent.lifecycle","severity":"INFO","data":{"agent_id":"a","agent_type":"code_worker","state_from":"idle","state_to":"dancing","resource_usage":{"cpu_percent":"high"}}}"#;
    let text = decode(json, SchemaMode::Strict).expect_err("invalid").to_string();
    assert!(text.contains("data.state_to: expected one of initializing"), "{text}");
    assert!(text.contains("data.resource_usage.cpu_percent: expected a number >= 0"), "{text}");
}

#[test]
fn lenient_mode_passes_with_a_warning_tag() {
    let json = r#"{"event_id":"e1","timestamp":1,"component":"swarm","event_type":"swarm.iteration","severity":"INFO","data":{"swarm_id":"s","algorithm":"pso","iteration":3,"convergence_score":1.5,"best_fitness":0.2}}"#;
    assert!(decode(json, SchemaMode::Strict).is_err());
    let event = decode(json, SchemaMode::Lenient).expect("lenient passes");
    let warning = event.get("tags.schema_warning").and_then(Value::as_str).unwrap_or("").to_string();
    assert!(warning.contains("data.convergence_score: expected a number from 0 to 1"), "{warning}");
    let out: Value = serde_json::from_slice(&event.into_wire()).expect("re-encoded JSON");
    assert_eq!(out["tags"]["schema_warning"], Value::String(warning));
}

#[test]
fn envelope_errors_always_reject_even_when_lenient() {
    let json = r#"{"event_id":"e1","timestamp":"yesterday","component":"swarm","event_type":"x.y","severity":"LOUD"}"#;
    let text = decode(json, SchemaMode::Lenient).expect_err("bad envelope").to_string();
    assert!(text.contains("timestamp: expected a number"), "{text}");
    assert!(text.contains("severity: expected one of TRACE"), "{text}");
}

#[test]
fn alias_is_canonicalized_and_original_kept() {
    let json = r#"{"event_id":"e","timestamp":1,"component":"mesh","event_type":"mesh.topology_change","severity":"INFO","data":{"change_type":"NODE_ADDED","node_id":"n1","node_count":4}}"#;
    let event = decode(json, SchemaMode::Strict).expect("valid alias");
    assert_eq!(event.kind(), EventKind::MeshTopologyChange);
    assert_eq!(event.event_type(), "mesh.topology.change");
    let out: Value = serde_json::from_slice(&event.into_wire()).expect("json");
    assert_eq!(out["tags"][ORIGINAL_TYPE_TAG], "mesh.topology_change");
    assert_eq!(out["event_type"], "mesh.topology.change");
}

#[test]
fn unknown_types_pass_without_data() {
    let json = r#"{"event_id":"e","timestamp":1,"component":"planner","event_type":"planner.replan","severity":"DEBUG"}"#;
    let event = decode(json, SchemaMode::Strict).expect("unknown passes");
    assert_eq!(event.kind(), EventKind::Unknown);
    assert_eq!(event.event_type(), "planner.replan");
}

#[test]
fn not_json_and_not_objects_are_rejected_with_reason() {
    assert!(matches!(decode("{\"event_id\":", SchemaMode::Strict), Err(Rejection::Json(_))));
    let err = decode("[1,2]", SchemaMode::Strict).expect_err("array");
    assert_eq!(err.to_string(), "event must be a JSON object, got an array");
}

#[test]
fn every_known_type_has_a_schema_and_a_name() {
    for kind in EventKind::KNOWN {
        let name = kind.canonical_name().expect("known kinds have names");
        assert_eq!(EventKind::from_event_type(name), (kind, false));
        assert!(!schema::fields(kind).is_empty(), "{name}");
    }
}

#[test]
fn pretty_printed_input_is_reencoded_on_one_line() {
    let pretty = GOOD_TASK.replace(",\"", ",\n\"");
    let event = decode(&pretty, SchemaMode::Strict).expect("valid");
    assert!(!event.into_wire().contains(&b'\n'));
}

#[test]
fn dead_letter_keeps_non_utf8_bytes_exactly() {
    let raw = Bytes::from_static(b"\xff\xfe not json");
    let dl = DeadLetter::new(Stage::Decode, "invalid JSON".into(), pos(), raw);
    let mut out = Vec::new();
    dl.encode(&mut out);
    let record: Value = serde_json::from_slice(&out).expect("record is JSON");
    assert_eq!(record["raw_base64"], "//4gbm90IGpzb24=");
    assert_eq!(record["source"]["kind"], "generator");
    assert_eq!(record["stage"], "decode");
}

/// The fast path may only say "valid" when the precise path agrees, and must then
/// report the same header.
fn assert_paths_agree(raw: &[u8]) {
    if let Some(problem) = paths_disagree(raw) {
        panic!("{problem}: {}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn fast_and_precise_paths_agree_on_edge_cases() {
    let cases: &[&str] = &[
        GOOD_TASK,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"x","severity":"INFO","tags":null}"#,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"x","severity":"INFO","context":[1]}"#,
        r#"{"event_id":"e\"q\u00e9","timestamp":1.5,"component":"c\\d","event_type":"x","severity":"INFO"}"#,
        r#"{"event_id":"e","timestamp":-1,"component":"c","event_type":"x","severity":"INFO"}"#,
        r#"{"event_id":"","timestamp":1,"component":"c","event_type":"x","severity":"INFO"}"#,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"task.completed","severity":"INFO","data":{"task_id":"t","agent_id":"a","duration_ms":5,"success":true,"error_message":null}}"#,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"task.completed","severity":"INFO","data":{"task_id":"t","agent_id":null,"duration_ms":5,"success":true}}"#,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"task.completed","severity":"INFO","data":{"task_id":"t","agent_id":"a","duration_ms":5,"success":true,"success":1}}"#,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"task.assigned","severity":"INFO","data":{"task_id":"t","agent_id":"a","task_type":"x","priority":2.5}}"#,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"agent.lifecycle","severity":"INFO","data":{"agent_id":"a","agent_type":"w","state_from":"idle","state_to":"busy","resource_usage":{"cpu_percent":-1}}}"#,
        r#"{"event_id":"e","event_id":"f","timestamp":1,"component":"c","event_type":"x","severity":"INFO"}"#,
        r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"x","severity":"INFO"} trailing"#,
    ];
    for case in cases {
        assert_paths_agree(case.as_bytes());
    }
}

#[test]
fn a_valid_event_needs_no_document_until_asked() {
    let event = decode(GOOD_TASK, SchemaMode::Strict).expect("valid");
    assert!(event.doc.get().is_none(), "validation built no document");
    assert_eq!(event.event_id(), "e1");
    assert_eq!(event.get("data.duration_ms").and_then(Value::as_u64), Some(120));
}

const HEAD: &str = r#""event_id":"e","timestamp":1,"component":"c","severity":"INFO""#;

/// An event of type `event_type` with `rest` appended to its envelope.
fn event_with(event_type: &str, rest: &str) -> String {
    format!(r#"{{{HEAD},"event_type":"{event_type}"{rest}}}"#)
}

const TASK_DATA: &str = r#""task_id":"t","agent_id":"a","duration_ms":5,"success":true"#;

/// What both paths skip or only glance at: unknown top-level fields, `tags`,
/// `context`, an unknown type's `data`, a known type's free-form and unlisted
/// fields. Every rule must hold there too.
fn hiding_places(value: &str) -> Vec<String> {
    vec![
        event_with("x.y", &format!(r#","extra":{value}"#)),
        event_with("x.y", &format!(r#","tags":{{"k":{value}}}"#)),
        event_with("x.y", &format!(r#","context":{{"k":[{value}]}}"#)),
        event_with("x.y", &format!(r#","data":{{"k":{value}}}"#)),
        event_with("task.completed", &format!(r#","data":{{{TASK_DATA},"unlisted":{value}}}"#)),
        event_with(
            "swarm.iteration",
            &format!(
                r#","data":{{"swarm_id":"s","algorithm":"pso","iteration":1,"convergence_score":0.5,"best_fitness":1,"parameters":{{"p":{value}}}}}"#
            ),
        ),
    ]
}

#[test]
fn what_the_precise_path_cannot_read_is_rejected_wherever_it_hides() {
    let deep = format!("{}1{}", "[".repeat(json::MAX_DEPTH), "]".repeat(json::MAX_DEPTH));
    let bad: [(&str, &str); 5] = [
        ("1e400", "number out of range"),
        ("-1e999", "number out of range"),
        (r#""\ud800 alone""#, "escape"),
        (r#""\udc00""#, "surrogate"),
        (&deep, "nested deeper than 64 levels"),
    ];
    for (value, reason) in bad {
        for raw in hiding_places(value) {
            assert_paths_agree(raw.as_bytes());
            let err = decode(&raw, SchemaMode::Lenient).expect_err(&raw).to_string();
            assert!(err.starts_with("invalid JSON: ") && err.contains(reason), "{raw}: {err}");
        }
    }
    // Invalid UTF-8 inside a skipped string.
    for raw in hiding_places("\"caf\u{e9}\"") {
        let mut bytes = raw.into_bytes();
        let at = bytes.iter().position(|&b| b == 0xc3).expect("é");
        bytes[at] = 0xff;
        assert_paths_agree(&bytes);
        let err = Event::decode(Bytes::from(bytes), pos(), SchemaMode::Lenient).expect_err("not UTF-8");
        assert!(matches!(err.rejection, Rejection::Json(_)), "{}", err.rejection);
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted_and_its_document_built() {
    // The event is level 1 and `data` level 2: 62 more levels fit.
    let inner = json::MAX_DEPTH - 2;
    let value = format!("{}1{}", "[".repeat(inner), "]".repeat(inner));
    for raw in hiding_places(&value).into_iter().skip(3).take(2) {
        assert_paths_agree(raw.as_bytes());
        let event = decode(&raw, SchemaMode::Strict).expect(&raw);
        assert!(!event.doc().is_empty());
    }
}

#[test]
fn an_accepted_event_always_has_its_document_so_a_step_cannot_empty_it() {
    // Before, such events passed the fast path and a `tag` step turned them into
    // `{"tags":{…}}`; now they are rejected, and every accepted event keeps its fields.
    for raw in hiding_places("1e400") {
        assert!(decode(&raw, SchemaMode::Strict).is_err());
    }
    for raw in hiding_places("1e300") {
        let mut event = decode(&raw, SchemaMode::Strict).expect(&raw);
        event.set_tag("pipeline", Value::String("p".into()));
        let out: Value = serde_json::from_slice(&event.into_wire()).expect("JSON");
        assert_eq!(out["event_id"], "e", "{raw}");
        assert_eq!(out["tags"]["pipeline"], "p");
    }
}

#[test]
fn duplicate_keys_are_rejected_at_every_level_with_their_name() {
    let cases = [
        (event_with("x.y", r#","severity":"FATAL""#), "severity"),
        (event_with("x.y", r#","x":1,"x":2"#), "x"),
        (event_with("x.y", r#","tags":{"a":1,"a":2}"#), "a"),
        (event_with("x.y", r#","tags":{"a":1,"\u0061":2}"#), "a"),
        (
            event_with("task.completed", &format!(r#","data":{{{TASK_DATA},"duration_ms":"slow"}}"#)),
            "duration_ms",
        ),
        (event_with("task.completed", &format!(r#","data":{{{TASK_DATA},"u":1,"u":1}}"#)), "u"),
        (event_with("x.y", r#","data":{"a":[{"b":{"c":1,"c":1}}]}"#), "c"),
    ];
    for (raw, key) in cases {
        assert_paths_agree(raw.as_bytes());
        let err = decode(&raw, SchemaMode::Lenient).expect_err(&raw).to_string();
        assert!(err.contains(&format!("duplicate key \"{key}\"")), "{raw}: {err}");
    }
    // Many keys: hashed, still found, and distinct keys are fine.
    let keys: String = (0..500).map(|i| format!(r#","k{i}":{i}"#)).collect();
    assert!(decode(&event_with("x.y", &format!(r#","data":{{"z":0{keys}}}"#)), SchemaMode::Strict).is_ok());
    let raw = event_with("x.y", &format!(r#","data":{{"z":0{keys},"k250":1}}"#));
    assert!(decode(&raw, SchemaMode::Strict).expect_err("dup").to_string().contains("\"k250\""));
}

#[test]
fn deep_input_far_past_the_limit_is_rejected_without_recursing() {
    for depth in [1_000, 100_000] {
        let raw = event_with("x.y", &format!(r#","data":{{"a":{}}}"#, "[".repeat(depth)));
        let err = decode(&raw, SchemaMode::Strict).expect_err("deep").to_string();
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        let raw = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(decode(&raw, SchemaMode::Strict).is_err());
    }
}
