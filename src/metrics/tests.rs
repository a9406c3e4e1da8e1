use super::SPEC_METRICS;
use super::*;
use crate::event::{Position, SchemaMode};
use bytes::Bytes;
use mapping::DEFAULT_PREFIX;

fn event(json: serde_json::Value) -> Event {
    let raw = Bytes::from(serde_json::to_vec(&json).expect("json"));
    Event::decode(raw, Position::Generator { seq: 0 }, SchemaMode::Strict).expect("valid event")
}

fn env(ts: i64, event_type: &str, severity: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"event_id": format!("e-{ts}"), "timestamp": ts, "component": "c",
        "event_type": event_type, "severity": severity, "data": data})
}

fn spec_step() -> MetricsStep {
    let mapping =
        Mapping::parse(SPEC_METRICS, "metrics.yaml", DEFAULT_PREFIX).expect("the spec mapping loads");
    MetricsStep::check(&mapping).expect("within limits");
    MetricsStep::new("metrics", mapping, &Telemetry::new())
}

fn run(step: &mut MetricsStep, events: Vec<serde_json::Value>) -> String {
    let mut batch = Batch { events: events.into_iter().map(event).collect(), ..Batch::default() };
    step.process(&mut batch);
    let mut out = String::new();
    step.families().render(&mut out);
    out
}

/// The value of one exposed series line, e.g. `codex_synaptic_agent_active{agent_type="x"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn lifecycle(ts: i64, agent: &str, to: &str) -> serde_json::Value {
    env(
        ts,
        "agent.lifecycle",
        "INFO",
        serde_json::json!({"agent_id": agent, "agent_type": "coder",
        "state_from": "idle", "state_to": to}),
    )
}

#[test]
fn active_agents_follow_lifecycle_transitions() {
    let mut step = spec_step();
    let out = run(
        &mut step,
        vec![lifecycle(1, "a1", "running"), lifecycle(2, "a2", "idle"), lifecycle(3, "a1", "busy")],
    );
    assert_eq!(sample(&out, "codex_synaptic_agent_active{agent_type=\"coder\"}"), Some(2.0), "{out}");
    let out = run(&mut step, vec![lifecycle(4, "a1", "offline"), lifecycle(5, "a3", "error")]);
    assert_eq!(sample(&out, "codex_synaptic_agent_active{agent_type=\"coder\"}"), Some(1.0), "{out}");
    // 30 minutes of silence from a2: forgotten once time moves on.
    let out = run(&mut step, vec![lifecycle(5 + 31 * 60_000, "a4", "running")]);
    assert_eq!(sample(&out, "codex_synaptic_agent_active{agent_type=\"coder\"}"), Some(1.0), "{out}");
}

#[test]
fn task_counters_take_types_from_lookups_and_scale_by_sample_rate() {
    let mut step = spec_step();
    let mut sampled = env(
        13,
        "task.completed",
        "INFO",
        serde_json::json!({"task_id": "t2", "agent_id": "a1",
        "duration_ms": 2500, "success": true}),
    );
    sampled["sample_rate"] = serde_json::json!(0.1);
    let out = run(
        &mut step,
        vec![
            lifecycle(10, "a1", "running"),
            env(
                11,
                "task.assigned",
                "INFO",
                serde_json::json!({"task_id": "t1", "agent_id": "a1",
                "task_type": "code_review", "priority": 1}),
            ),
            env(
                12,
                "task.completed",
                "ERROR",
                serde_json::json!({"task_id": "t1", "agent_id": "a1",
                "duration_ms": 250, "success": false, "error_message": "boom"}),
            ),
            env(
                12,
                "task.assigned",
                "INFO",
                serde_json::json!({"task_id": "t2", "agent_id": "a1",
                "task_type": "analysis", "priority": 1}),
            ),
            sampled,
        ],
    );
    let completed = "codex_synaptic_task_completed_total{agent_type=\"coder\",task_type=";
    assert_eq!(sample(&out, &format!("{completed}\"code_review\",success=\"false\"}}")), Some(1.0), "{out}");
    assert_eq!(sample(&out, &format!("{completed}\"analysis\",success=\"true\"}}")), Some(10.0), "{out}");
    assert_eq!(
        sample(&out, "codex_synaptic_task_failed_total{agent_type=\"coder\",error_type=\"unknown\"}"),
        Some(1.0)
    );
    // 0.25 s and 2.5 s (the latter ten times): buckets 0.5 → 1, 5 → 11.
    let bucket = |le: &str| {
        sample(
            &out,
            &format!(
                "codex_synaptic_task_execution_time_seconds_bucket{{task_type=\"code_review\",le=\"{le}\"}}"
            ),
        )
    };
    assert_eq!(bucket("0.1"), Some(0.0));
    assert_eq!(bucket("0.5"), Some(1.0));
    let analysis = |le: &str| {
        sample(
            &out,
            &format!(
                "codex_synaptic_task_execution_time_seconds_bucket{{task_type=\"analysis\",le=\"{le}\"}}"
            ),
        )
    };
    assert_eq!(analysis("1"), Some(0.0));
    assert_eq!(analysis("5"), Some(10.0));
    assert_eq!(
        sample(&out, "codex_synaptic_task_execution_time_seconds_sum{task_type=\"analysis\"}"),
        Some(25.0)
    );
}

#[test]
fn pending_proposals_open_and_close() {
    let mut step = spec_step();
    let proposal = |ts, id: &str| {
        env(
            ts,
            "consensus.proposal",
            "INFO",
            serde_json::json!({"proposal_id": id, "proposal_type": "x",
            "votes_for": 0, "votes_against": 0, "quorum_reached": false}),
        )
    };
    let decision = |ts, id: &str| {
        env(
            ts,
            "consensus.decision",
            "INFO",
            serde_json::json!({"proposal_id": id, "decision": "APPROVED",
            "votes_for": 3, "votes_against": 1, "decision_time_ms": 750}),
        )
    };
    let out =
        run(&mut step, vec![proposal(1, "p1"), proposal(2, "p2"), decision(3, "p1"), decision(4, "p9")]);
    assert_eq!(sample(&out, "codex_synaptic_consensus_proposals_pending"), Some(1.0), "{out}");
    assert_eq!(
        sample(&out, "codex_synaptic_consensus_decision_time_seconds_bucket{decision=\"APPROVED\",le=\"1\"}"),
        Some(2.0)
    );
}

#[test]
fn label_sets_beyond_the_bound_retire_the_oldest_into_overflow() {
    let text = "metrics:\n  - name: by_agent_total\n    type: counter\n    help: h\n    max_series: 2\n    \
                match: {event_type: agent.lifecycle}\n    labels: {agent: data.agent_id}\n";
    let mapping = Mapping::parse(text, "m.yaml", "").expect("mapping");
    let telemetry = Telemetry::new();
    let mut step = MetricsStep::new("metrics", mapping, &telemetry);
    let events = (0..5).map(|i| lifecycle(i, &format!("a{i}"), "running")).collect();
    let out = run(&mut step, events);
    // The two newest agents hold the places; the three before them were retired
    // into the overflow series, so the total is still 5.
    assert_eq!(sample(&out, "by_agent_total{agent=\"__overflow__\"}"), Some(3.0), "{out}");
    assert_eq!(sample(&out, "by_agent_total{agent=\"a4\"}"), Some(1.0), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("by_agent_total{")).count(), 3);
    assert!(telemetry.render().contains(
        "synaptic_telemetry_metric_problems_total{metric=\"by_agent_total\",problem=\"series_evicted\"} 3"
    ));
}

#[test]
fn missing_values_are_counted_not_guessed() {
    let text = "metrics:\n  - name: sync_seconds\n    type: gauge\n    help: h\n    \
                match: {event_type: system.health}\n    value: data.lag\n";
    let mapping = Mapping::parse(text, "m.yaml", "").expect("mapping");
    let telemetry = Telemetry::new();
    let mut step = MetricsStep::new("metrics", mapping, &telemetry);
    let out = run(&mut step, vec![env(1, "system.health", "INFO", serde_json::json!({"lag": "soon"}))]);
    assert_eq!(sample(&out, "sync_seconds"), Some(0.0));
    assert!(telemetry.render().contains("metric=\"sync_seconds\",problem=\"missing_value\"} 1"));
}
