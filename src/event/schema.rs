//! Schema v1.0: the `data` fields of every event type in both revisions of the spec.
//!
//! Which fields are required: the identifiers and the measurement each event exists to
//! carry. Fields the spec marks as conditional ("if failed", "for connections", "if
//! applicable") or descriptive extras are optional, but checked for type when present.
//! Fields the spec does not list are allowed, so newer emitters keep working.

use serde_json::{Map, Value};

use super::EventKind;

#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldType {
    Str,
    Bool,
    /// A number within `[min, max]`; `integer` demands a whole number.
    Num {
        min: f64,
        max: f64,
        integer: bool,
    },
    Enum(&'static [&'static str]),
    Object(&'static [Field]),
    AnyObject,
    Array,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub(crate) ty: FieldType,
    pub(crate) required: bool,
}

const fn req(name: &'static str, ty: FieldType) -> Field {
    Field { name, ty, required: true }
}
const fn opt(name: &'static str, ty: FieldType) -> Field {
    Field { name, ty, required: false }
}

const S: FieldType = FieldType::Str;
const B: FieldType = FieldType::Bool;
/// Any finite number.
const N: FieldType = FieldType::Num { min: f64::MIN, max: f64::MAX, integer: false };
/// Durations, sizes, counts of things: not negative.
const NONNEG: FieldType = FieldType::Num { min: 0.0, max: f64::MAX, integer: false };
const COUNT: FieldType = FieldType::Num { min: 0.0, max: f64::MAX, integer: true };

const AGENT_STATES: &[&str] =
    &["initializing", "running", "idle", "busy", "error", "shutting_down", "offline"];

const RESOURCE_USAGE: &[Field] =
    &[opt("cpu_percent", NONNEG), opt("memory_mb", NONNEG), opt("network_bytes", NONNEG)];

const AGENT_LIFECYCLE: &[Field] = &[
    req("agent_id", S),
    req("agent_type", S),
    req("state_from", FieldType::Enum(AGENT_STATES)),
    req("state_to", FieldType::Enum(AGENT_STATES)),
    opt("transition_reason", S),
    opt("resource_usage", FieldType::Object(RESOURCE_USAGE)),
];

const SWARM_ITERATION: &[Field] = &[
    req("swarm_id", S),
    req("algorithm", S),
    req("iteration", COUNT),
    req("convergence_score", FieldType::Num { min: 0.0, max: 1.0, integer: false }),
    req("best_fitness", N),
    opt("parameters", FieldType::AnyObject),
];

const CONSENSUS_PROPOSAL: &[Field] = &[
    req("proposal_id", S),
    req("proposal_type", S),
    req("votes_for", COUNT),
    req("votes_against", COUNT),
    req("quorum_reached", B),
    // A proposal still open has no decision time yet.
    opt("decision_time_ms", NONNEG),
];

/// Only `vote`, `reasoning` and `vote_weight` survive in the spec; the header with the
/// identifying fields was lost, so those are accepted but not demanded.
const CONSENSUS_VOTE: &[Field] = &[
    opt("proposal_id", S),
    opt("agent_id", S),
    req("vote", B),
    opt("reasoning", S),
    opt("vote_weight", NONNEG),
];

const CONSENSUS_DECISION: &[Field] = &[
    req("proposal_id", S),
    req("decision", FieldType::Enum(&["APPROVED", "REJECTED", "TIMEOUT"])),
    req("votes_for", COUNT),
    req("votes_against", COUNT),
    opt("vote_threshold", NONNEG),
    req("decision_time_ms", NONNEG),
];

const MEMORY_BRIDGE_SYNC: &[Field] = &[
    req("namespace", S),
    opt("sync_strategy", S),
    opt("conflicts_resolved", COUNT),
    req("sync_duration_ms", NONNEG),
    req("status", S),
];

/// The union of both revisions: revision 1 (`mesh.topology.change`) counts added and
/// removed connections, revision 2 (`mesh.topology_change`) reports totals. Revision 1
/// allowed any `change_type` text, so it is not held to revision 2's enum.
const MESH_TOPOLOGY_CHANGE: &[Field] = &[
    req("node_id", S),
    req("change_type", S),
    opt("connections_added", COUNT),
    opt("connections_removed", COUNT),
    opt("topology_health", N),
    opt("target_node_id", S),
    opt("node_count", COUNT),
    opt("connection_count", COUNT),
    opt("topology_hash", S),
];

const SECURITY_POLICY_VIOLATION: &[Field] = &[
    req("agent_id", S),
    req("policy_type", S),
    opt("violation_details", S),
    req("severity", S),
    opt("action_taken", S),
];

const SECURITY_VIOLATION: &[Field] = &[
    req("violation_type", FieldType::Enum(&["UNAUTHORIZED_ACCESS", "RESOURCE_LIMIT", "INVALID_INPUT"])),
    opt("source_agent", S),
    req("resource", S),
    opt("attempted_action", S),
    opt("policy_violated", S),
    req("blocked", B),
    req("severity", FieldType::Enum(&["LOW", "MEDIUM", "HIGH", "CRITICAL"])),
];

const TASK_EXECUTION: &[Field] = &[
    req("task_id", S),
    req("agent_id", S),
    req("task_type", S),
    req("duration_ms", NONNEG),
    req("success", B),
    opt("error_type", S),
    opt("resource_usage", FieldType::AnyObject),
];

const TASK_ASSIGNED: &[Field] = &[
    req("task_id", S),
    req("agent_id", S),
    req("task_type", S),
    req("priority", FieldType::Num { min: 1.0, max: 10.0, integer: true }),
    opt("estimated_duration_ms", NONNEG),
    opt("dependencies", FieldType::Array),
];

const TASK_COMPLETED: &[Field] = &[
    req("task_id", S),
    req("agent_id", S),
    req("duration_ms", NONNEG),
    opt("result_size_bytes", COUNT),
    req("success", B),
    opt("error_message", S),
];

const BRIDGE_MESSAGE: &[Field] = &[
    req("bridge_type", FieldType::Enum(&["MCP", "A2A"])),
    req("direction", FieldType::Enum(&["INBOUND", "OUTBOUND"])),
    req("message_id", S),
    opt("source", S),
    opt("destination", S),
    opt("message_type", S),
    opt("payload_size_bytes", COUNT),
    opt("processing_time_ms", NONNEG),
];

/// The `data` fields of a known event type.
pub fn fields(kind: EventKind) -> &'static [Field] {
    use EventKind::*;
    match kind {
        AgentLifecycle => AGENT_LIFECYCLE,
        SwarmIteration => SWARM_ITERATION,
        ConsensusProposal => CONSENSUS_PROPOSAL,
        ConsensusVote => CONSENSUS_VOTE,
        ConsensusDecision => CONSENSUS_DECISION,
        MemoryBridgeSync => MEMORY_BRIDGE_SYNC,
        MeshTopologyChange => MESH_TOPOLOGY_CHANGE,
        SecurityPolicyViolation => SECURITY_POLICY_VIOLATION,
        SecurityViolation => SECURITY_VIOLATION,
        TaskExecution => TASK_EXECUTION,
        TaskAssigned => TASK_ASSIGNED,
        TaskCompleted => TASK_COMPLETED,
        BridgeMessage => BRIDGE_MESSAGE,
        Unknown => &[],
    }
}

/// Checks `data` against `fields`, appending one message per problem, each naming the
/// field by its path (`data.resource_usage.cpu_percent`).
pub(crate) fn check_object(
    path: &str,
    obj: &Map<String, Value>,
    fields: &[Field],
    problems: &mut Vec<String>,
) {
    for field in fields {
        match obj.get(field.name) {
            None | Some(Value::Null) => {
                if field.required {
                    problems.push(format!("{path}.{}: required field is missing", field.name));
                }
            }
            Some(value) => check_value(path, field, value, problems),
        }
    }
}

fn check_value(path: &str, field: &Field, value: &Value, problems: &mut Vec<String>) {
    let mut wrong = |expected: &str| {
        problems.push(format!("{path}.{}: expected {expected}, got {}", field.name, describe(value)));
    };
    match field.ty {
        FieldType::Str => {
            if !value.is_string() {
                wrong("a string")
            }
        }
        FieldType::Bool => {
            if !value.is_boolean() {
                wrong("true or false")
            }
        }
        FieldType::Num { min, max, integer } => {
            let noun = if integer { "a whole number" } else { "a number" };
            let expected = match (min == f64::MIN, max == f64::MAX) {
                (true, true) => noun.to_string(),
                (false, true) => format!("{noun} >= {min}"),
                _ => format!("{noun} from {min} to {max}"),
            };
            match value.as_f64() {
                Some(n) if (integer && n.fract() != 0.0) || n < min || n > max => wrong(&expected),
                None => wrong(&expected),
                Some(_) => {}
            }
        }
        FieldType::Enum(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => {}
            _ => wrong(&format!("one of {}", choices.join(", "))),
        },
        FieldType::Object(inner) => match value.as_object() {
            Some(obj) => check_object(&format!("{path}.{}", field.name), obj, inner, problems),
            None => wrong("an object"),
        },
        FieldType::AnyObject => {
            if !value.is_object() {
                wrong("an object")
            }
        }
        FieldType::Array => {
            if !value.is_array() {
                wrong("an array")
            }
        }
    }
}

/// "string \"abc\"", "number 3", … short enough for a dead-letter reason.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            let cut: String = s.chars().take(40).collect();
            format!("string \"{cut}…\"")
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
