//! Synthetic codex-synaptic traffic: every event type of schema v1.0 in a realistic
//! mix, stable agent ids, tasks that are assigned and later succeed or fail,
//! consensus rounds (proposal, votes, decision), bursts of errors and security
//! violations, occasional PII in free-text fields, and a configurable share of
//! malformed events. The same seed always gives the same bytes.

use std::collections::VecDeque;

use serde_json::{json, Map, Value};

use super::rng::Rng;
use crate::source::GeneratorConfig;

const AGENT_TYPES: &[&str] = &[
    "code_worker",
    "consensus_coordinator",
    "memory_manager",
    "swarm_optimizer",
    "security_monitor",
    "researcher",
];
const AGENTS_PER_TYPE: usize = 8;
const TASK_TYPES: &[&str] =
    &["code_generation", "code_review", "test_execution", "refactoring", "documentation", "analysis"];
const ERROR_TYPES: &[&str] =
    &["timeout", "out_of_memory", "dependency_failed", "invalid_output", "tool_error"];
const AGENT_STATES: &[&str] =
    &["initializing", "running", "idle", "busy", "error", "shutting_down", "offline"];
const NAMESPACES: &[&str] = &["agents", "tasks", "swarm_state", "consensus_log", "embeddings"];

/// Free text that sometimes carries PII, so scrubbing has something to find.
const PII_SNIPPETS: &[&str] = &[
    "contact jane.doe@example.com for details",
    "reported by +1 415 555 0134",
    "client at 203.0.113.42 retried",
    "card 4111 1111 1111 1111 declined",
    "user ssn 078-05-1120 in payload",
    "token Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl leaked",
    "callback https://admin:hunter2@internal.example.com/hook",
    "IBAN GB82 WEST 1234 5698 7654 32 on invoice",
];

#[derive(Clone, Copy)]
enum Burst {
    Errors,
    Security,
}

struct PendingTask {
    task_id: String,
    agent: usize,
    task_type: &'static str,
    trace_id: String,
}

struct Proposal {
    id: String,
    votes_for: u64,
    votes_against: u64,
    votes_left: u64,
    trace_id: String,
}

struct Swarm {
    id: String,
    algorithm: &'static str,
    iteration: u64,
    convergence: f64,
}

/// Produces one event (a JSON line, without newline) per call.
pub struct Traffic {
    rng: Rng,
    config: GeneratorConfig,
    start_ms: i64,
    seq: u64,
    agent_states: Vec<&'static str>,
    tasks: VecDeque<PendingTask>,
    proposals: VecDeque<Proposal>,
    swarms: Vec<Swarm>,
    mesh_nodes: u64,
    mesh_connections: u64,
    burst: Option<(Burst, u32)>,
}

impl Traffic {
    pub fn new(config: &GeneratorConfig, now_ms: i64) -> Self {
        let mut rng = Rng::new(config.seed);
        let swarms = (0..4)
            .map(|i| Swarm {
                id: format!("swarm_{:03}", i + 1),
                algorithm: ["pso", "aco", "flocking"][i % 3],
                iteration: 0,
                convergence: rng.range_f64(0.05, 0.2),
            })
            .collect();
        Traffic {
            rng,
            config: config.clone(),
            start_ms: config.start_ms.unwrap_or(now_ms),
            seq: 0,
            agent_states: vec!["idle"; AGENT_TYPES.len() * AGENTS_PER_TYPE],
            tasks: VecDeque::new(),
            proposals: VecDeque::new(),
            swarms,
            mesh_nodes: 24,
            mesh_connections: 96,
            burst: None,
        }
    }

    /// How many events have been produced.
    pub fn produced(&self) -> u64 {
        self.seq
    }

    pub fn next_event(&mut self) -> Vec<u8> {
        let seq = self.seq;
        self.seq += 1;
        // Timestamps advance with the configured rate, so a replay of the same seed
        // has the same timestamps and an unthrottled run still looks like traffic.
        let step_ms = if self.config.rate > 0.0 { 1000.0 / self.config.rate } else { 1.0 };
        let ts = self.start_ms + (seq as f64 * step_ms) as i64;

        if self.config.malformed_ratio > 0.0 && self.rng.chance(self.config.malformed_ratio) {
            return self.malformed(ts);
        }
        let event = self.valid_event(ts);
        to_line(&event)
    }

    fn agent_id(&self, agent: usize) -> String {
        format!("agent-{:03}", agent + 1)
    }

    fn agent_type(agent: usize) -> &'static str {
        AGENT_TYPES[agent / AGENTS_PER_TYPE]
    }

    fn random_agent(&mut self) -> usize {
        self.rng.below((AGENT_TYPES.len() * AGENTS_PER_TYPE) as u64) as usize
    }

    fn free_text(&mut self, plain: &str) -> String {
        if self.rng.chance(0.05) {
            format!("{plain}; {}", self.rng.pick(PII_SNIPPETS))
        } else {
            plain.to_string()
        }
    }

    /// The envelope; `trace` is the trace the event belongs to: `Some(None)` starts
    /// a new one, `None` means the event is not part of a trace (no `context`).
    fn envelope(
        &mut self,
        ts: i64,
        component: &str,
        event_type: &str,
        severity: &str,
        trace: Option<Option<&str>>,
        data: Value,
    ) -> Value {
        let mut event = json!({
            "event_id": self.rng.uuid(),
            "timestamp": ts,
            "component": component,
            "event_type": event_type,
            "severity": severity,
            "tags": {"environment": "production", "version": "1.0.0"},
            "data": data,
        });
        if let Some(trace) = trace {
            let trace_id = trace.map_or_else(|| self.rng.hex(32), str::to_string);
            event["context"] = json!({"trace_id": trace_id, "span_id": self.rng.hex(16)});
        }
        event
    }

    fn valid_event(&mut self, ts: i64) -> Value {
        if self.burst.is_none() && self.rng.chance(0.0005) {
            let kind = if self.rng.chance(0.5) { Burst::Errors } else { Burst::Security };
            self.burst = Some((kind, 20 + self.rng.below(60) as u32));
        }
        if let Some((kind, left)) = self.burst {
            self.burst = (left > 1).then_some((kind, left - 1));
            if self.rng.chance(0.7) {
                return match kind {
                    Burst::Errors => self.task_finished(ts, Some(false)),
                    Burst::Security => self.security_violation(ts),
                };
            }
        }
        match self.rng.below(100) {
            0..=21 => self.bridge_message(ts),
            22..=39 => self.swarm_iteration(ts),
            40..=49 => self.task_assigned(ts),
            50..=66 => self.task_finished(ts, None),
            67..=75 => self.agent_lifecycle(ts),
            76..=79 => self.mesh_change(ts),
            80..=90 => self.consensus(ts),
            91..=95 => self.memory_sync(ts),
            96 => self.security_violation(ts),
            97 => self.policy_violation(ts),
            _ => self.health_report(ts),
        }
    }

    fn bridge_message(&mut self, ts: i64) -> Value {
        let bridge = self.rng.pick(&["MCP", "A2A"]);
        let inbound = self.rng.chance(0.5);
        let (a, b) = (self.random_agent(), self.random_agent());
        let data = json!({
            "bridge_type": bridge,
            "direction": if inbound { "INBOUND" } else { "OUTBOUND" },
            "message_id": format!("msg-{}", self.rng.hex(12)),
            "source": self.agent_id(a),
            "destination": self.agent_id(b),
            "message_type": self.rng.pick(&["tools/call", "tools/list", "task/delegate", "result/report"]),
            "payload_size_bytes": 200 + self.rng.below(16_000),
            "processing_time_ms": self.rng.duration_ms(8.0),
        });
        let sev = if self.rng.chance(0.3) { "DEBUG" } else { "INFO" };
        self.envelope(ts, "bridge", "bridge.message", sev, Some(None), data)
    }

    fn swarm_iteration(&mut self, ts: i64) -> Value {
        let i = self.rng.below(self.swarms.len() as u64) as usize;
        let step = self.rng.range_f64(0.0, 0.01);
        let next_run = format!("swarm_{}", self.rng.hex(8));
        let swarm = &mut self.swarms[i];
        if swarm.convergence >= 0.99 {
            // The last iteration converged (and said so): the optimizer starts a new
            // run, under a new id, so that (swarm_id, iteration) names one iteration
            // of one run.
            swarm.id = next_run;
            swarm.iteration = 0;
            swarm.convergence = 0.1;
        }
        swarm.iteration += 1;
        swarm.convergence = (swarm.convergence + step).min(1.0);
        let (id, algorithm, iteration, convergence) =
            (swarm.id.clone(), swarm.algorithm, swarm.iteration, swarm.convergence);
        let data = json!({
            "swarm_id": id,
            "algorithm": algorithm,
            "iteration": iteration,
            "convergence_score": (convergence * 1000.0).round() / 1000.0,
            "best_fitness": (self.rng.range_f64(0.5, 5.0) * (1.0 - convergence) * 1000.0).round() / 1000.0,
            "parameters": {"particles": 64, "inertia": 0.72},
        });
        self.envelope(ts, "swarm", "swarm.iteration", "DEBUG", None, data)
    }

    fn task_assigned(&mut self, ts: i64) -> Value {
        let agent = self.random_agent();
        let task = PendingTask {
            task_id: format!("task-{}", self.rng.hex(10)),
            agent,
            task_type: self.rng.pick(TASK_TYPES),
            trace_id: self.rng.hex(32),
        };
        let deps: Vec<String> =
            self.tasks.iter().rev().take(self.rng.below(3) as usize).map(|t| t.task_id.clone()).collect();
        let data = json!({
            "task_id": task.task_id,
            "agent_id": self.agent_id(agent),
            "task_type": task.task_type,
            "priority": 1 + self.rng.below(10),
            "estimated_duration_ms": 500 + self.rng.below(20_000),
            "dependencies": deps,
        });
        let trace = task.trace_id.clone();
        self.tasks.push_back(task);
        if self.tasks.len() > 256 {
            self.tasks.pop_front();
        }
        self.envelope(ts, "scheduler", "task.assigned", "INFO", Some(Some(&trace)), data)
    }

    /// A task.completed or task.execution for a pending task (or a fresh one).
    fn task_finished(&mut self, ts: i64, forced: Option<bool>) -> Value {
        let task = match self.tasks.pop_front() {
            Some(t) => t,
            None => PendingTask {
                task_id: format!("task-{}", self.rng.hex(10)),
                agent: self.random_agent(),
                task_type: self.rng.pick(TASK_TYPES),
                trace_id: self.rng.hex(32),
            },
        };
        let success = forced.unwrap_or_else(|| self.rng.chance(0.93));
        let duration = self.rng.duration_ms(1800.0);
        let agent_id = self.agent_id(task.agent);
        let sev = if success { "INFO" } else { "ERROR" };
        if self.rng.chance(0.5) {
            let mut data = json!({
                "task_id": task.task_id,
                "agent_id": agent_id,
                "duration_ms": duration,
                "result_size_bytes": if success { self.rng.below(50_000) } else { 0 },
                "success": success,
            });
            if !success {
                let error = self.rng.pick(ERROR_TYPES);
                data["error_message"] =
                    Value::String(self.free_text(&format!("{error} while running {}", task.task_type)));
            }
            self.envelope(ts, "scheduler", "task.completed", sev, Some(Some(&task.trace_id)), data)
        } else {
            let mut data = json!({
                "task_id": task.task_id,
                "agent_id": agent_id,
                "task_type": task.task_type,
                "duration_ms": duration,
                "success": success,
                "resource_usage": {"cpu_percent": (self.rng.range_f64(2.0, 90.0) * 10.0).round() / 10.0, "memory_mb": 64 + self.rng.below(900)},
            });
            if !success {
                data["error_type"] = Value::String((self.rng.pick(ERROR_TYPES)).to_string());
            }
            self.envelope(ts, "task_scheduler", "task.execution", sev, Some(Some(&task.trace_id)), data)
        }
    }

    fn agent_lifecycle(&mut self, ts: i64) -> Value {
        let agent = self.random_agent();
        let from = self.agent_states[agent];
        let to = loop {
            let s = self.rng.pick(AGENT_STATES);
            if s != from {
                break s;
            }
        };
        self.agent_states[agent] = to;
        let reason = match to {
            "busy" | "running" => "task_assigned",
            "idle" => "task_finished",
            "error" => "health_check_failed",
            "offline" | "shutting_down" => "scale_in",
            _ => "restart",
        };
        let data = json!({
            "agent_id": self.agent_id(agent),
            "agent_type": Self::agent_type(agent),
            "state_from": from,
            "state_to": to,
            "transition_reason": self.free_text(reason),
            "resource_usage": {
                "cpu_percent": (self.rng.range_f64(1.0, 99.0) * 10.0).round() / 10.0,
                "memory_mb": 64 + self.rng.below(2000),
                "network_bytes": self.rng.below(5_000_000),
            },
        });
        let sev = if to == "error" { "ERROR" } else { "INFO" };
        self.envelope(ts, "agent", "agent.lifecycle", sev, None, data)
    }

    fn mesh_change(&mut self, ts: i64) -> Value {
        let node = format!("node-{:03}", self.rng.below(64));
        let change = self.rng.pick(&["NODE_ADDED", "NODE_REMOVED", "CONNECTION_ADDED", "CONNECTION_REMOVED"]);
        match change {
            "NODE_ADDED" => self.mesh_nodes += 1,
            "NODE_REMOVED" => self.mesh_nodes = self.mesh_nodes.saturating_sub(1).max(1),
            "CONNECTION_ADDED" => self.mesh_connections += 1,
            _ => self.mesh_connections = self.mesh_connections.saturating_sub(1),
        }
        // Both revisions of the spec are in use: half the emitters send the alias.
        if self.rng.chance(0.5) {
            let data = json!({
                "node_id": node,
                "change_type": change,
                "connections_added": u64::from(change == "CONNECTION_ADDED"),
                "connections_removed": u64::from(change == "CONNECTION_REMOVED"),
                "topology_health": (self.rng.range_f64(0.7, 1.0) * 100.0).round() / 100.0,
            });
            self.envelope(ts, "neural_mesh", "mesh.topology.change", "INFO", None, data)
        } else {
            let data = json!({
                "change_type": change,
                "node_id": node,
                "target_node_id": format!("node-{:03}", self.rng.below(64)),
                "node_count": self.mesh_nodes,
                "connection_count": self.mesh_connections,
                "topology_hash": self.rng.hex(16),
            });
            self.envelope(ts, "mesh", "mesh.topology_change", "INFO", None, data)
        }
    }

    fn consensus(&mut self, ts: i64) -> Value {
        let open = self.proposals.front().map(|p| p.votes_left);
        match open {
            None => {
                let p = Proposal {
                    id: format!("proposal-{}", self.rng.hex(8)),
                    votes_for: 0,
                    votes_against: 0,
                    votes_left: 3 + self.rng.below(5),
                    trace_id: self.rng.hex(32),
                };
                let data = json!({
                    "proposal_id": p.id,
                    "proposal_type": self.rng.pick(&["resource_allocation", "task_priority", "agent_scaling", "policy_update"]),
                    "votes_for": 0,
                    "votes_against": 0,
                    "quorum_reached": false,
                });
                let trace = p.trace_id.clone();
                self.proposals.push_back(p);
                self.envelope(ts, "consensus", "consensus.proposal", "INFO", Some(Some(&trace)), data)
            }
            Some(left) if left > 0 => {
                let voter = self.random_agent();
                let vote = self.rng.chance(0.7);
                let reasoning =
                    self.free_text(if vote { "benefit outweighs cost" } else { "insufficient capacity" });
                let weight = self.rng.pick(&[1.0, 1.0, 1.5, 2.0]);
                let Some(p) = self.proposals.front_mut() else { return json!({}) };
                p.votes_left -= 1;
                if vote {
                    p.votes_for += 1
                } else {
                    p.votes_against += 1
                }
                let (id, trace) = (p.id.clone(), p.trace_id.clone());
                let data = json!({
                    "proposal_id": id,
                    "agent_id": self.agent_id(voter),
                    "vote": vote,
                    "reasoning": reasoning,
                    "vote_weight": weight,
                });
                self.envelope(ts, "consensus", "consensus.vote", "INFO", Some(Some(&trace)), data)
            }
            Some(_) => {
                let Some(p) = self.proposals.pop_front() else { return json!({}) };
                let threshold = (p.votes_for + p.votes_against) / 2 + 1;
                let timeout = self.rng.chance(0.05);
                let decision = if timeout {
                    "TIMEOUT"
                } else if p.votes_for >= threshold {
                    "APPROVED"
                } else {
                    "REJECTED"
                };
                let time = if timeout { 30_000.0 } else { self.rng.duration_ms(900.0) };
                let data = json!({
                    "proposal_id": p.id,
                    "decision": decision,
                    "votes_for": p.votes_for,
                    "votes_against": p.votes_against,
                    "vote_threshold": threshold,
                    "decision_time_ms": time,
                });
                let sev = if timeout { "WARN" } else { "INFO" };
                self.envelope(ts, "consensus", "consensus.decision", sev, Some(Some(&p.trace_id)), data)
            }
        }
    }

    fn memory_sync(&mut self, ts: i64) -> Value {
        let ok = self.rng.chance(0.96);
        let data = json!({
            "namespace": self.rng.pick(NAMESPACES),
            "sync_strategy": self.rng.pick(&["last_write_wins", "vector_clock", "merge"]),
            "conflicts_resolved": self.rng.below(5),
            "sync_duration_ms": self.rng.duration_ms(40.0),
            "status": if ok { "success" } else { "failure" },
        });
        self.envelope(
            ts,
            "memory_bridge",
            "memory.bridge.sync",
            if ok { "INFO" } else { "ERROR" },
            Some(None),
            data,
        )
    }

    fn security_violation(&mut self, ts: i64) -> Value {
        let agent = self.random_agent();
        let sev = self.rng.pick(&["LOW", "MEDIUM", "MEDIUM", "HIGH", "CRITICAL"]);
        let blocked = self.rng.chance(0.9);
        let data = json!({
            "violation_type": self.rng.pick(&["UNAUTHORIZED_ACCESS", "RESOURCE_LIMIT", "INVALID_INPUT"]),
            "source_agent": self.agent_id(agent),
            "resource": self.rng.pick(&["/memory/embeddings", "/tasks/queue", "/secrets/vault", "/mesh/admin"]),
            "attempted_action": self.rng.pick(&["read", "write", "delete", "escalate"]),
            "policy_violated": self.rng.pick(&["least_privilege", "rate_limit", "input_schema"]),
            "blocked": blocked,
            "severity": sev,
        });
        let level = match (sev, blocked) {
            ("CRITICAL", _) | (_, false) => "FATAL",
            ("HIGH", _) => "ERROR",
            _ => "WARN",
        };
        self.envelope(ts, "security", "security.violation", level, None, data)
    }

    fn policy_violation(&mut self, ts: i64) -> Value {
        let agent = self.random_agent();
        let details = self.free_text("attempted to call a tool outside its allowlist");
        let data = json!({
            "agent_id": self.agent_id(agent),
            "policy_type": self.rng.pick(&["tool_allowlist", "data_egress", "rate_limit"]),
            "violation_details": details,
            "severity": self.rng.pick(&["low", "medium", "high"]),
            "action_taken": self.rng.pick(&["blocked", "logged", "agent_suspended"]),
        });
        self.envelope(ts, "security", "security.policy.violation", "WARN", None, data)
    }

    /// A type the schema does not know (a newer emitter's heartbeat): passed on.
    fn health_report(&mut self, ts: i64) -> Value {
        let component =
            self.rng.pick(&["agent", "neural_mesh", "swarm", "consensus", "memory_bridge", "scheduler"]);
        let data = json!({
            "cpu_percent": (self.rng.range_f64(5.0, 97.0) * 10.0).round() / 10.0,
            "memory_used_mb": 512 + self.rng.below(15_000),
            "disk_free_gb": 5 + self.rng.below(400),
            "uptime_s": self.seq,
        });
        self.envelope(ts, component, "system.health", "DEBUG", None, data)
    }

    /// A deliberately broken event, one of several kinds of breakage.
    fn malformed(&mut self, ts: i64) -> Vec<u8> {
        let mut good = self.valid_event(ts);
        match self.rng.below(6) {
            0 => {
                // Truncated JSON, as from a writer that died mid-line.
                let bytes = to_line(&good);
                let cut = bytes.len() / 2;
                bytes[..cut].to_vec()
            }
            1 => {
                remove_key(&mut good, "timestamp");
                to_line(&good)
            }
            2 => {
                good["severity"] = Value::String("LOUD".into());
                to_line(&good)
            }
            3 => {
                // A required data field of the wrong type.
                if let Some(Value::Object(data)) = good.get_mut("data") {
                    if let Some(key) = data.keys().next().cloned() {
                        data.insert(key, json!([1, 2, 3]));
                    }
                }
                to_line(&good)
            }
            4 => b"[\"not\", \"an\", \"object\"]".to_vec(),
            _ => {
                let mut bytes = b"{\"event_id\":\"".to_vec();
                bytes.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
                bytes
            }
        }
    }
}

/// Envelope keys in the spec's order, as emitters write them (a JSON map has no
/// order of its own); then anything else.
const ENVELOPE_ORDER: [&str; 8] =
    ["event_id", "timestamp", "component", "event_type", "severity", "tags", "context", "data"];

fn to_line(event: &Value) -> Vec<u8> {
    let Value::Object(map) = event else {
        return serde_json::to_vec(event).unwrap_or_default();
    };
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    let rest = map.keys().map(String::as_str).filter(|k| !ENVELOPE_ORDER.contains(k));
    for key in ENVELOPE_ORDER.into_iter().chain(rest) {
        let Some(value) = map.get(key) else { continue };
        if out.len() > 1 {
            out.push(b',');
        }
        // Strings and JSON values always serialize.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.push(b'}');
    out
}

fn remove_key(value: &mut Value, key: &str) {
    if let Value::Object(map) = value {
        let _: Option<Value> = Map::remove(map, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Position, SchemaMode};
    use std::collections::HashMap;

    fn config(malformed_ratio: f64) -> GeneratorConfig {
        GeneratorConfig { rate: 0.0, total: 0, seed: 7, malformed_ratio, start_ms: Some(1_767_225_600_000) }
    }

    #[test]
    fn same_seed_same_bytes() {
        let mut a = Traffic::new(&config(0.01), 0);
        let mut b = Traffic::new(&config(0.01), 0);
        for _ in 0..2000 {
            assert_eq!(a.next_event(), b.next_event());
        }
    }

    #[test]
    fn valid_traffic_covers_every_type_and_passes_the_schema() {
        let mut t = Traffic::new(&config(0.0), 0);
        let mut kinds: HashMap<EventKind, usize> = HashMap::new();
        let mut total_bytes = 0;
        let n = 20_000;
        for seq in 0..n {
            let line = t.next_event();
            total_bytes += line.len();
            let event = Event::decode(line.clone().into(), Position::Generator { seq }, SchemaMode::Strict)
                .unwrap_or_else(|e| {
                    panic!("generated event invalid: {e}: {}", String::from_utf8_lossy(&line))
                });
            *kinds.entry(event.kind()).or_default() += 1;
        }
        for kind in EventKind::KNOWN {
            assert!(kinds.get(&kind).copied().unwrap_or(0) > 10, "{kind:?} too rare: {kinds:?}");
        }
        assert!(kinds.get(&EventKind::Unknown).copied().unwrap_or(0) > 0);
        let mean = total_bytes / n as usize;
        assert!((380..=460).contains(&mean), "mean event size {mean} bytes");
    }

    #[test]
    fn malformed_share_is_close_to_the_ratio_and_all_rejected() {
        let mut t = Traffic::new(&config(0.05), 0);
        let mut rejected = 0;
        let n = 20_000;
        for seq in 0..n {
            let line = t.next_event();
            if Event::decode(line.into(), Position::Generator { seq }, SchemaMode::Strict).is_err() {
                rejected += 1;
            }
        }
        let share = rejected as f64 / n as f64;
        assert!((0.04..0.06).contains(&share), "malformed share {share}");
    }

    // The event decoder's two paths, on the traffic this generator makes.
    #[test]
    fn fast_and_precise_paths_agree_on_generated_traffic() {
        let config =
            GeneratorConfig { rate: 0.0, total: 0, seed: 3, malformed_ratio: 0.1, start_ms: Some(1) };
        let mut traffic = Traffic::new(&config, 0);
        let mut fast = 0;
        for _ in 0..20_000 {
            let line = traffic.next_event();
            fast += usize::from(crate::event::takes_fast_path(&line));
            if let Some(problem) = crate::event::paths_disagree(&line) {
                panic!("{problem}: {}", String::from_utf8_lossy(&line));
            }
        }
        assert!(fast > 17_000, "the fast path takes the valid events: {fast}");
    }
}
