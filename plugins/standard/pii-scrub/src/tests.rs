use serde_json::Value;
use synaptic_plugin_sdk::{testing, Verdict};

use super::PiiScrub;

const EVENT: &str = r#"{"event_id":"550e8400-e29b-41d4-a716-446655440000","timestamp":1767225600000,"component":"scheduler","event_type":"task.completed","severity":"ERROR","tags":{"environment":"production","owner":"ops@example.com"},"context":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","client":"203.0.113.42"},"data":{"agent_id":"agent-code_worker-3","error_message":"card 4111 1111 1111 1111 declined for jane.doe@example.com","attempts":[{"note":"call +1 415 555 0134"}],"password":"hunter2","duration_ms":1500}}"#;

fn scrub(config: &str, event: &str) -> Value {
    let verdicts = testing::run::<PiiScrub>(config, &[event.as_bytes()]).expect("runs");
    match &verdicts[0] {
        Verdict::Replace(bytes) => serde_json::from_slice(bytes).expect("the scrubbed event is JSON"),
        other => panic!("expected a replacement, got {other:?}"),
    }
}

#[test]
fn redacts_every_finding_in_data_context_and_tags_and_nothing_else() {
    let doc = scrub("", EVENT);
    assert_eq!(doc["data"]["error_message"], "card [REDACTED:card] declined for [REDACTED:email]");
    assert_eq!(doc["data"]["attempts"][0]["note"], "call [REDACTED:phone]");
    assert_eq!(doc["data"]["password"], "[REDACTED:field]", "denied by name");
    assert_eq!(doc["tags"]["owner"], "[REDACTED:email]");
    assert_eq!(doc["context"]["client"], "[REDACTED:ipv4]");
    assert_eq!(doc["context"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(doc["data"]["agent_id"], "agent-code_worker-3");
    assert_eq!(doc["event_id"], "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(doc["data"]["duration_ms"], 1500);
}

#[test]
fn untouched_bytes_stay_as_they_were() {
    let verdicts = testing::run::<PiiScrub>("", &[EVENT.as_bytes()]).expect("runs");
    let Verdict::Replace(bytes) = &verdicts[0] else { panic!("replaced") };
    let out = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(
        out.starts_with(r#"{"event_id":"550e8400-e29b-41d4-a716-446655440000","timestamp":1767225600000,"#),
        "{out}"
    );
    assert!(out.ends_with(r#""password":"[REDACTED:field]","duration_ms":1500}}"#), "{out}");
    let clean = r#"{"event_id":"e","timestamp":1,"component":"c","event_type":"t","severity":"INFO","tags":{},"data":{"agent_id":"agent-7","v":"1.2.3"}}"#;
    assert_eq!(testing::run::<PiiScrub>("", &[clean.as_bytes()]).expect("runs"), vec![Verdict::Keep]);
}

#[test]
fn mask_and_hash_modes() {
    let config = r#"{"detectors":{"card":"mask","email":"hash","phone":"off"},"hash_key":"k1"}"#;
    let doc = scrub(config, EVENT);
    let message = doc["data"]["error_message"].as_str().expect("text");
    assert!(message.starts_with("card **** **** **** 1111 declined for [HMAC:email:"), "{message}");
    assert_eq!(doc["data"]["attempts"][0]["note"], "call +1 415 555 0134", "phone is off");
    // The same address (any case) hashes alike; another key hashes differently.
    let upper = EVENT.replace("jane.doe@example.com", "Jane.Doe@Example.com");
    assert_eq!(scrub(config, &upper)["data"]["error_message"], doc["data"]["error_message"]);
    let other = scrub(&config.replace("k1", "k2"), EVENT);
    assert_ne!(other["data"]["error_message"], doc["data"]["error_message"]);
}

#[test]
fn allow_and_deny_lists() {
    let config = r#"{"fields":{"allow":["tags.owner"],"deny":["data.attempts"]}}"#;
    let doc = scrub(config, EVENT);
    assert_eq!(doc["tags"]["owner"], "ops@example.com");
    assert_eq!(doc["data"]["attempts"][0]["note"], "[REDACTED:field]");
    assert_eq!(doc["data"]["password"], "[REDACTED:field]", "the lists add to the defaults");
    let config = r#"{"fields":{"deny":["data.attempts"],"defaults":false}}"#;
    assert_eq!(scrub(config, EVENT)["data"]["password"], "hunter2", "defaults off");
}

#[test]
fn counts_per_detector() {
    let before = testing::counters();
    scrub("", EVENT);
    let after = testing::counters();
    let delta = |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    assert_eq!(
        (delta("card"), delta("email"), delta("phone"), delta("ipv4"), delta("field")),
        (1, 2, 1, 1, 1)
    );
}

#[test]
fn bad_config_is_named() {
    for (config, needle) in [
        (r#"{"detectors":{"emails":"redact"}}"#, "config.detectors.emails: unknown detector"),
        (r#"{"detectors":{"email":"shred"}}"#, "config.detectors.email"),
        (r#"{"mode":"hash"}"#, "needs a key"),
        (r#"{"hash_key_env":"SYNAPTIC_NO_SUCH_VARIABLE"}"#, "SYNAPTIC_NO_SUCH_VARIABLE"),
        (r#"{"fields":{"only":[]}}"#, "config.fields.only"),
    ] {
        let err = testing::run::<PiiScrub>(config, &[]).err().unwrap_or_default();
        assert!(err.contains(needle), "{config}: {err}");
    }
}

/// Inputs whose candidates fail their checks one after another, each making the
/// next search start one character later: the detectors' work would grow with
/// the square of the length without a bound.
fn adversarial(len: usize) -> Vec<String> {
    let repeat = |unit: &str| unit.repeat(len / unit.len());
    vec![
        repeat("1.2.3.4."),
        repeat("123.456."),
        repeat("0123456789"),
        repeat("GB12 "),
        repeat("pwd:x("),
        repeat("a@b."),
        repeat("+1 (555) "),
        repeat("eyJa.eyJb."),
    ]
}

#[test]
fn adversarial_text_ends_scrubbed_and_the_unscanned_rest_is_replaced() {
    let config = synaptic_plugin_sdk::Config::parse("{}").expect("config");
    let mut scrub = <PiiScrub as synaptic_plugin_sdk::Plugin>::init(&config).expect("init");
    let mut cut_short = 0;
    for text in adversarial(200_000) {
        let event = serde_json::json!({ "data": { "m": text, "tail": "mail jane.doe@example.com" } });
        let raw = serde_json::to_vec(&event).expect("json");
        let out = scrub.scrub_event(&raw).expect("walks");
        let out: Value = serde_json::from_slice(&out.unwrap_or(raw)).expect("json");
        let scrubbed = out["data"]["m"].as_str().expect("text");
        // Either every candidate was checked, or the rest from where the work ran
        // out is gone; and the other field is scrubbed all the same.
        if scrubbed.ends_with("[REDACTED:unscanned]") {
            cut_short += 1;
            assert!(scrubbed.len() < text.len(), "the unscanned tail is not kept");
        }
        assert_eq!(out["data"]["tail"], "mail [REDACTED:email]");
    }
    // `GB12 GB12 …` runs out of work (and `pwd:x(pwd:x(…`, whose replaced tail the
    // next pass then takes as a labelled secret); the others are checked whole.
    assert!(cut_short >= 1, "the work bound was reached");
    // Ordinary long text is scanned to its end.
    let prose = "the task finished after retrying twice; see run 42 for details. ".repeat(3000);
    let mut found = Vec::new();
    assert_eq!(scrub.detectors.find(&prose, &mut found), None);
}

#[test]
fn the_work_budget_is_linear_in_the_text() {
    use crate::detect::scan_budget;
    assert_eq!(scan_budget(0), 4096);
    assert_eq!(scan_budget(100_000), 1_204_096);
    assert_eq!(scan_budget(usize::MAX), usize::MAX, "saturates instead of overflowing");
}

#[test]
fn the_search_resumes_where_a_narrowed_finding_ends() {
    // Found by the fuzzer: the phone candidate ran into the digits of the address
    // after it, its check narrowed it to `+44 20 7946`, and the search resumed
    // after the whole candidate, leaving the address unscrubbed.
    let doc = scrub("", r#"{"data":{"m":"call +44 20 7946 09518446@example.com now"}}"#);
    let text = doc["data"]["m"].as_str().expect("text");
    assert!(!text.contains("example.com"), "{text}");
    assert!(text.contains("[REDACTED:email]"), "{text}");
}

#[test]
fn a_candidate_rejected_for_a_finding_after_it_is_caught_on_the_next_pass() {
    // Found by the fuzzer: the phone number was rejected as the start of a dotted
    // number whose tail was an e-mail address; once that is replaced, the phone
    // number stands alone and must not be left.
    let doc = scrub("", r#"{"data":{"m":"call +44 20 7946 01.7.8.9.10.11.12oe@example.com now"}}"#);
    let text = doc["data"]["m"].as_str().expect("text");
    assert!(!text.contains("7946") && !text.contains("example.com"), "{text}");
}
