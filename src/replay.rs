//! `synaptic-telemetry replay`: the same recorded events through the pipeline's
//! steps as configured (current) and with a candidate plugin or rule set, side by
//! side, and what differs: each step's verdicts per event (kept, dropped,
//! replaced, dead-lettered), the alerts that fire on event time, and the metrics.
//!
//! Both versions take each batch in lockstep and are compared batch by batch, so
//! memory stays at one batch however long the recording is; what is kept of the
//! differences is counts and the first `show` examples.
//!
//! The alerts step is not run as a step (its receivers would be notified): its
//! rules are run by [`Simulation`] on event time over the events that reach its
//! place in the pipeline.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::alert::notify::Policy;
use crate::alert::rule::{Rule, Tier};
use crate::alert::simulate::{AlertKey, Simulation, SimulationReport};
use crate::event::{Batch, Event, Position, SchemaMode};
use crate::step::{RunningStep, Service};
use crate::telemetry::Telemetry;

/// Events per batch through the steps.
pub const BATCH: usize = 500;
/// Changed field paths listed per verdict change.
const MAX_FIELDS: usize = 16;
/// Groups listed per rule whose alerts changed.
const MAX_GROUPS_SHOWN: usize = 8;
/// Nesting followed when listing changed fields.
const MAX_FIELD_DEPTH: usize = 4;

/// One version of the pipeline, built.
pub struct Version {
    pub steps: Vec<RunningStep>,
    /// The alerts step's place (the number of steps before it) and its rules.
    pub alerts: Option<AlertsAt>,
    pub telemetry: Arc<Telemetry>,
    pub services: Vec<Box<dyn Service>>,
    pub schema: SchemaMode,
}

pub struct AlertsAt {
    pub index: usize,
    pub rules: Vec<Rule>,
    pub policy: Policy,
    pub interval: std::time::Duration,
}

/// A recorded event: its bytes and where it was read (for examples).
pub struct Record {
    pub bytes: Bytes,
    pub origin: String,
}

/// How one step treated one event.
#[derive(Debug, Clone)]
enum Verdict {
    /// Passed unchanged: the event as it came (to name what a replacement by
    /// the other version changed).
    Kept(Bytes),
    Dropped,
    DeadLettered,
    /// Replaced: the event as it came and as it left.
    Replaced {
        input: Bytes,
        output: Bytes,
    },
    /// An earlier step took it out: this step never saw it.
    NotReached,
}

impl Verdict {
    fn name(&self) -> &'static str {
        match self {
            Verdict::Kept(_) => "kept",
            Verdict::Dropped => "dropped",
            Verdict::DeadLettered => "dead-lettered",
            Verdict::Replaced { .. } => "replaced",
            Verdict::NotReached => "not reached",
        }
    }
}

/// The differences found.
#[derive(Debug, Default)]
pub struct Diff {
    pub records: u64,
    pub invalid: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Per step: (current verdict → candidate verdict) → events.
    pub verdicts: BTreeMap<String, BTreeMap<(String, String), u64>>,
    /// Per step: field paths replaced differently → events.
    pub fields: BTreeMap<String, BTreeMap<String, u64>>,
    pub examples: Vec<String>,
    pub alerts_current: Option<SimulationReport>,
    pub alerts_candidate: Option<SimulationReport>,
    /// Metric series whose values differ: name{labels} → (current, candidate).
    pub metrics: Vec<(String, Option<f64>, Option<f64>)>,
}

impl Diff {
    /// Differences in verdicts, alerts and metrics: 0 means the candidate
    /// behaves as the current version on this input.
    pub fn changes(&self) -> u64 {
        let verdicts: u64 = self.verdicts.values().flat_map(|m| m.values()).sum();
        let alerts = self.alert_changes().len() as u64;
        verdicts + alerts + self.metrics.len() as u64
    }

    /// Alerts whose history differs: (key, fired with current, fired with candidate).
    pub fn alert_changes(&self) -> Vec<(AlertKey, u64, u64)> {
        let (Some(a), Some(b)) = (&self.alerts_current, &self.alerts_candidate) else { return Vec::new() };
        let mut keys: Vec<&AlertKey> = a.alerts.keys().chain(b.alerts.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| {
                let fired = |r: &SimulationReport| r.alerts.get(key).map_or(0, |h| h.fired);
                let (x, y) = (fired(a), fired(b));
                (x != y).then(|| (key.clone(), x, y))
            })
            .collect()
    }
}

/// Runs both versions over `records` and returns what differs.
pub async fn run(
    records: impl Iterator<Item = Record>,
    mut current: Version,
    mut candidate: Version,
    show: usize,
) -> anyhow::Result<Diff> {
    let mut diff = Diff::default();
    let (mut sim_current, mut sim_candidate) = (simulation_of(&current)?, simulation_of(&candidate)?);
    let mut pending: Vec<Record> = Vec::with_capacity(BATCH);
    let mut seq = 0u64;
    let mut records = records.peekable();
    while records.peek().is_some() {
        pending.clear();
        pending.extend(records.by_ref().take(BATCH));
        let mut events = Vec::with_capacity(pending.len());
        let mut origins = HashMap::with_capacity(pending.len());
        for record in &pending {
            diff.records += 1;
            let key = diff.records;
            match Event::decode(record.bytes.clone(), Position::Generator { seq: key }, current.schema) {
                Ok(event) => {
                    let ts = event.timestamp_ms();
                    diff.first_ms = Some(diff.first_ms.map_or(ts, |f| f.min(ts)));
                    diff.last_ms = Some(diff.last_ms.map_or(ts, |l| l.max(ts)));
                    origins.insert(key, record.origin.as_str());
                    events.push(event);
                }
                Err(_) => diff.invalid += 1,
            }
        }
        let a = pass(&mut current, sim_current.as_mut(), events.clone(), seq);
        let b = pass(&mut candidate, sim_candidate.as_mut(), events, seq);
        seq += 1;
        compare(&current, &a, &b, &origins, show, &mut diff);
    }
    diff.alerts_current = sim_current.map(Simulation::finish);
    diff.alerts_candidate = sim_candidate.map(Simulation::finish);
    diff.metrics = metric_deltas(&current.telemetry.render(), &candidate.telemetry.render());
    for version in [current, candidate] {
        for service in version.services {
            service.shutdown().await;
        }
    }
    Ok(diff)
}

/// The version's alert rules as a simulation, when it has an alerts step.
fn simulation_of(version: &Version) -> anyhow::Result<Option<Simulation>> {
    let Some(alerts) = &version.alerts else { return Ok(None) };
    let simulation = Simulation::new(alerts.rules.clone(), alerts.policy.clone(), alerts.interval)
        .map_err(|e| anyhow::anyhow!("the alert rules cannot be built: {e}"))?;
    Ok(Some(simulation))
}

/// Each step's verdict per event key, for one batch through one version.
type StepVerdicts = Vec<HashMap<u64, Verdict>>;

fn key_of(event: &Event) -> u64 {
    match event.position() {
        Position::Generator { seq } => *seq,
        _ => 0,
    }
}

fn pass(
    version: &mut Version,
    mut simulation: Option<&mut Simulation>,
    events: Vec<Event>,
    seq: u64,
) -> StepVerdicts {
    let mut batch = Batch { seq, events, ..Batch::default() };
    let mut out = Vec::with_capacity(version.steps.len());
    let alerts_at = version.alerts.as_ref().map(|a| a.index);
    // Each event's bytes are encoded once per step boundary: a step's output is
    // the next step's input.
    let mut before: HashMap<u64, Bytes> = batch.events.iter().map(|e| (key_of(e), wire_bytes(e))).collect();
    for (i, step) in version.steps.iter_mut().enumerate() {
        if alerts_at == Some(i) {
            if let Some(sim) = simulation.as_deref_mut() {
                sim.feed(&batch.events);
            }
        }
        let dead_before = batch.dead_letters.len();
        step.process(&mut batch);
        let after: HashMap<u64, Bytes> = batch.events.iter().map(|e| (key_of(e), wire_bytes(e))).collect();
        let mut verdicts: HashMap<u64, Verdict> = HashMap::with_capacity(before.len());
        for (key, output) in &after {
            let verdict = match before.get(key) {
                Some(input) if input == output => Verdict::Kept(output.clone()),
                Some(input) => Verdict::Replaced { input: input.clone(), output: output.clone() },
                None => Verdict::Replaced { input: Bytes::new(), output: output.clone() },
            };
            verdicts.insert(*key, verdict);
        }
        for dead in &batch.dead_letters[dead_before..] {
            if let Position::Generator { seq } = dead.position {
                verdicts.insert(seq, Verdict::DeadLettered);
            }
        }
        for key in before.keys() {
            verdicts.entry(*key).or_insert(Verdict::Dropped);
        }
        out.push(verdicts);
        before = after;
    }
    if alerts_at == Some(version.steps.len()) {
        if let Some(sim) = simulation {
            sim.feed(&batch.events);
        }
    }
    out
}

fn compare(
    current: &Version,
    a: &StepVerdicts,
    b: &StepVerdicts,
    origins: &HashMap<u64, &str>,
    show: usize,
    diff: &mut Diff,
) {
    for (i, step) in current.steps.iter().enumerate() {
        let (Some(va), Some(vb)) = (a.get(i), b.get(i)) else { continue };
        let mut keys: Vec<&u64> = va.keys().chain(vb.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let x = va.get(key).unwrap_or(&Verdict::NotReached);
            let y = vb.get(key).unwrap_or(&Verdict::NotReached);
            let changed = match (x, y) {
                // An earlier step treated it differently; that is where it counts.
                (Verdict::NotReached, _) | (_, Verdict::NotReached) => continue,
                (Verdict::Kept(_), Verdict::Kept(_))
                | (Verdict::Dropped, Verdict::Dropped)
                | (Verdict::DeadLettered, Verdict::DeadLettered) => continue,
                (Verdict::Replaced { output: p, .. }, Verdict::Replaced { output: q, .. }) if p == q => {
                    continue
                }
                // Both replaced, from different inputs (an earlier step differs):
                // the same if the step made the same edit.
                (
                    Verdict::Replaced { input: ia, output: oa },
                    Verdict::Replaced { input: ib, output: ob },
                ) => {
                    let (ea, eb) = (edit(ia, oa), edit(ib, ob));
                    if ea == eb {
                        continue;
                    }
                    let mut paths: Vec<String> = (ea.iter().filter(|e| !eb.contains(e)))
                        .chain(eb.iter().filter(|e| !ea.contains(e)))
                        .map(|(path, _)| path.clone())
                        .collect();
                    paths.sort();
                    paths.dedup();
                    paths
                }
                (Verdict::Kept(input), Verdict::Replaced { output, .. })
                | (Verdict::Replaced { input, output }, Verdict::Kept(_)) => changed_fields(input, output),
                _ => Vec::new(),
            };
            *diff
                .verdicts
                .entry(step.name().to_string())
                .or_default()
                .entry((x.name().into(), y.name().into()))
                .or_default() += 1;
            for field in &changed {
                *diff.fields.entry(step.name().to_string()).or_default().entry(field.clone()).or_default() +=
                    1;
            }
            if diff.examples.len() < show {
                let origin = origins.get(key).copied().unwrap_or("?");
                let fields = match changed.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", changed.join(", ")),
                };
                diff.examples.push(format!(
                    "{origin}: step `{}`: {} → {}{fields}",
                    step.name(),
                    x.name(),
                    y.name()
                ));
            }
        }
    }
}

/// The event as it is now (with any tags a step set), as bytes.
fn wire_bytes(event: &Event) -> Bytes {
    match event.wire() {
        std::borrow::Cow::Borrowed(_) => event.raw().clone(),
        std::borrow::Cow::Owned(bytes) => Bytes::from(bytes),
    }
}

/// What a step changed: each changed path with its new value (`null` when removed).
fn edit(input: &[u8], output: &[u8]) -> Vec<(String, Value)> {
    let Ok(after) = serde_json::from_slice::<Value>(output) else {
        return vec![("(not JSON)".into(), Value::Null)];
    };
    changed_fields(input, output)
        .into_iter()
        .map(|path| {
            let pointer = format!("/{}", path.replace('~', "~0").replace('/', "~1").replace('.', "/"));
            let value = after.pointer(&pointer).cloned().unwrap_or(Value::Null);
            (path, value)
        })
        .collect()
}

/// The paths whose values differ between two JSON documents (objects followed
/// `MAX_FIELD_DEPTH` deep; at most `MAX_FIELDS` listed).
pub(crate) fn changed_fields(a: &[u8], b: &[u8]) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::from_slice::<Value>(a), serde_json::from_slice::<Value>(b)) else {
        return vec!["(not JSON)".to_string()];
    };
    let mut out = Vec::new();
    // An explicit stack: nesting is bounded by MAX_FIELD_DEPTH, not by the input.
    let mut stack: Vec<(String, &Value, &Value, usize)> = vec![(String::new(), &a, &b, 0)];
    while let Some((path, x, y, depth)) = stack.pop() {
        if out.len() >= MAX_FIELDS {
            break;
        }
        match (x, y) {
            (Value::Object(p), Value::Object(q)) if depth < MAX_FIELD_DEPTH => {
                let mut names: Vec<&String> = p.keys().chain(q.keys()).collect();
                names.sort();
                names.dedup();
                for name in names.into_iter().rev() {
                    let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                    match (p.get(name), q.get(name)) {
                        (Some(u), Some(v)) if u == v => {}
                        (Some(u), Some(v)) => stack.push((child, u, v, depth + 1)),
                        _ => out.push(child),
                    }
                }
            }
            _ if x != y => out.push(if path.is_empty() { "(document)".to_string() } else { path }),
            _ => {}
        }
    }
    out.sort();
    out
}

/// Series whose values differ between two expositions. Timings (`*_seconds*`,
/// the share of a plugin's deadline used) and the process's own gauges are left
/// out: they differ between any two runs.
pub(crate) fn metric_deltas(a: &str, b: &str) -> Vec<(String, Option<f64>, Option<f64>)> {
    let parse = |text: &str| -> BTreeMap<String, f64> {
        (crate::telemetry::parse_exposition(text).into_iter())
            .filter(|s| !s.name.contains("_seconds") && !s.name.contains("deadline_ratio"))
            .filter(|s| !s.name.starts_with("process_"))
            .map(|s| {
                let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                let series = match labels.is_empty() {
                    true => s.name,
                    false => format!("{}{{{}}}", s.name, labels.join(",")),
                };
                (series, s.value)
            })
            .collect()
    };
    let (a, b) = (parse(a), parse(b));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let (x, y) = (a.get(n).copied(), b.get(n).copied());
            (x != y).then(|| (n.clone(), x, y))
        })
        .collect()
}

/// The report: what was replayed, then each kind of difference.
pub fn report(
    diff: &Diff,
    input: &str,
    current: &str,
    candidate: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let span = match (diff.first_ms, diff.last_ms) {
        (Some(f), Some(l)) => format!("; event time {} … {}", iso(f), iso(l)),
        _ => String::new(),
    };
    writeln!(out, "replayed {} events from {input} ({} invalid){span}", diff.records, diff.invalid)?;
    writeln!(out, "current:   {current}")?;
    writeln!(out, "candidate: {candidate}")?;
    writeln!(out)?;
    writeln!(out, "verdicts (current → candidate):")?;
    if diff.verdicts.is_empty() {
        writeln!(out, "  no event treated differently by any step")?;
    }
    for (step, changes) in &diff.verdicts {
        for ((x, y), n) in changes {
            writeln!(out, "  step {step}: {x} → {y}: {n}")?;
        }
        if let Some(fields) = diff.fields.get(step) {
            let list: Vec<String> = fields.iter().map(|(f, n)| format!("{f} ({n})")).collect();
            writeln!(out, "  step {step}: fields replaced differently: {}", list.join(", "))?;
        }
    }
    for example in &diff.examples {
        writeln!(out, "    {example}")?;
    }
    writeln!(out)?;
    match (&diff.alerts_current, &diff.alerts_candidate) {
        (Some(a), Some(b)) => {
            writeln!(
                out,
                "alerts (rules on event time, {} evaluations; fired with current → with candidate):",
                b.evaluations
            )?;
            let changes = diff.alert_changes();
            if changes.is_empty() {
                writeln!(out, "  the same alerts fire, as often")?;
            }
            // Per rule, its first groups; a rule that changed for hundreds of
            // groups is one line and a count.
            let mut shown_of_rule: BTreeMap<&str, usize> = BTreeMap::new();
            for (key, x, y) in &changes {
                let shown = shown_of_rule.entry(key.rule.as_str()).or_default();
                *shown += 1;
                if *shown > MAX_GROUPS_SHOWN {
                    continue;
                }
                let mark = match (x, y) {
                    (0, _) => "+",
                    (_, 0) => "-",
                    _ => "~",
                };
                writeln!(out, "  {mark} {key}: fired {x} → {y}")?;
            }
            for (rule, shown) in shown_of_rule {
                if shown > MAX_GROUPS_SHOWN {
                    writeln!(out, "  … {} more groups of {rule}", shown - MAX_GROUPS_SHOWN)?;
                }
            }
            for tier in [Tier::Critical, Tier::Warning, Tier::Info] {
                let n = |r: &SimulationReport| r.notifications.get(&tier).copied().unwrap_or(0);
                writeln!(out, "  {} notifications: {} → {}", tier.as_str(), n(a), n(b))?;
            }
        }
        _ => writeln!(out, "alerts: the pipeline has no alerts step")?,
    }
    writeln!(out)?;
    writeln!(out, "metrics (series that differ: current → candidate):")?;
    if diff.metrics.is_empty() {
        writeln!(out, "  none")?;
    }
    let shown = diff.metrics.len().min(40);
    for (series, x, y) in &diff.metrics[..shown] {
        let text = |v: &Option<f64>| v.map_or("absent".to_string(), crate::alert::engine::format_value);
        writeln!(out, "  {series}: {} → {}", text(x), text(y))?;
    }
    if diff.metrics.len() > shown {
        writeln!(out, "  … {} more", diff.metrics.len() - shown)?;
    }
    writeln!(out)?;
    writeln!(out, "{} difference(s)", diff.changes())?;
    Ok(())
}

fn iso(ms: i64) -> String {
    let d = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(d).to_string()
}

/// The lines of a JSON Lines file (or `-`, standard input) as records; a line
/// longer than `max_bytes` is passed as too long (an invalid record, counted)
/// without being held whole.
pub fn file_records(
    path: &std::path::Path,
    max_bytes: usize,
) -> anyhow::Result<impl Iterator<Item = Record>> {
    use anyhow::Context;
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = match path.to_str() {
        Some("-") => Box::new(std::io::BufReader::new(std::io::stdin())),
        _ => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
    };
    let name = path.display().to_string();
    let mut reader = reader;
    let mut line_no = 0u64;
    Ok(std::iter::from_fn(move || loop {
        let mut line = Vec::new();
        let read = std::io::Read::take(&mut reader, max_bytes as u64 + 1).read_until(b'\n', &mut line);
        match read {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        line_no += 1;
        let origin = format!("{name}:{line_no}");
        if line.last() != Some(&b'\n') && line.len() > max_bytes {
            // The rest of the long line is skipped a chunk at a time.
            loop {
                let mut rest = Vec::new();
                match std::io::Read::take(&mut reader, 1 << 16).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
            return Some(Record { bytes: Bytes::new(), origin });
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Some(Record { bytes: Bytes::from(line), origin });
    }))
}

/// `TOPIC:PARTITION:FROM-TO`: the records of one partition from offset FROM to
/// offset TO, both included.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaRange {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

impl std::str::FromStr for KafkaRange {
    type Err = String;

    fn from_str(text: &str) -> Result<KafkaRange, String> {
        let bad = || format!("`{text}`: expected TOPIC:PARTITION:FROM-TO (offsets, both included)");
        let (rest, range) = text.rsplit_once(':').ok_or_else(bad)?;
        let (topic, partition) = rest.rsplit_once(':').ok_or_else(bad)?;
        let (from, to) = range.split_once('-').ok_or_else(bad)?;
        let range = KafkaRange {
            topic: topic.to_string(),
            partition: partition.parse().map_err(|_| bad())?,
            from: from.parse().map_err(|_| bad())?,
            to: to.parse().map_err(|_| bad())?,
        };
        if range.topic.is_empty() || range.partition < 0 || range.from < 0 || range.to < range.from {
            return Err(bad());
        }
        Ok(range)
    }
}

/// Reads a partition's range from the brokers as records. The iterator ends at
/// TO, at the partition's end, or when nothing arrives for `wait`; `stopped`
/// then says why it ended before TO.
pub fn kafka_records(
    brokers: &str,
    range: &KafkaRange,
    wait: std::time::Duration,
    stopped: Arc<std::sync::Mutex<Option<String>>>,
) -> anyhow::Result<impl Iterator<Item = Record>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "synaptic-telemetry-replay")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| anyhow::anyhow!("connecting to {brokers}: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&range.topic, range.partition, Offset::Offset(range.from))
        .map_err(|e| anyhow::anyhow!("{}:{}: {e}", range.topic, range.partition))?;
    consumer
        .assign(&assignment)
        .map_err(|e| anyhow::anyhow!("assigning {}:{}: {e}", range.topic, range.partition))?;
    let range = range.clone();
    let mut done = false;
    let stop = move |why: String| {
        if let Ok(mut slot) = stopped.lock() {
            *slot = Some(why);
        }
    };
    Ok(std::iter::from_fn(move || {
        if done {
            return None;
        }
        match consumer.poll(wait) {
            None => {
                done = true;
                stop(format!("nothing arrived for {} s before offset {}", wait.as_secs(), range.to));
                None
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                done = true;
                stop(format!("the partition ended before offset {}", range.to));
                None
            }
            Some(Err(e)) => {
                done = true;
                stop(format!("reading {}:{}: {e}", range.topic, range.partition));
                None
            }
            Some(Ok(message)) => {
                let offset = message.offset();
                if offset >= range.to {
                    done = true;
                }
                if offset > range.to {
                    return None;
                }
                let origin = format!("{}:{}@{offset}", range.topic, range.partition);
                Some(Record { bytes: Bytes::copy_from_slice(message.payload().unwrap_or_default()), origin })
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_name_the_paths_that_differ() {
        let a = br#"{"a":1,"data":{"x":"p","y":{"z":1}},"tags":{}}"#;
        let b = br#"{"a":1,"data":{"x":"q","y":{"z":2}},"tags":{"k":"v"}}"#;
        assert_eq!(changed_fields(a, b), ["data.x", "data.y.z", "tags.k"]);
        assert_eq!(changed_fields(a, a), Vec::<String>::new());
        assert_eq!(changed_fields(a, b"not json"), ["(not JSON)"]);
    }

    #[test]
    fn changed_fields_stop_at_the_depth_and_count_limits() {
        let deep = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let other = format!("{}2{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        // serde_json refuses such nesting itself; what it parses is walked to depth 4.
        let fields = changed_fields(deep.as_bytes(), other.as_bytes());
        assert!(fields.len() <= 1, "{fields:?}");
        let wide_a: String =
            format!("{{{}}}", (0..100).map(|i| format!("\"f{i}\":1")).collect::<Vec<_>>().join(","));
        let wide_b: String =
            format!("{{{}}}", (0..100).map(|i| format!("\"f{i}\":2")).collect::<Vec<_>>().join(","));
        assert_eq!(changed_fields(wide_a.as_bytes(), wide_b.as_bytes()).len(), MAX_FIELDS);
        let nested_a = br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#;
        let nested_b = br#"{"a":{"b":{"c":{"d":{"e":2}}}}}"#;
        assert_eq!(changed_fields(nested_a, nested_b), ["a.b.c.d"]);
    }

    #[test]
    fn metric_deltas_list_changed_series_and_skip_timings() {
        let a = "# HELP x\nevents_total{type=\"a\"} 5\nevents_total{type=\"b\"} 1\nstep_seconds_sum 0.5\n";
        let b = "events_total{type=\"a\"} 4\nevents_total{type=\"c\"} 2\nstep_seconds_sum 0.9\nevents_total{type=\"b\"} 1\n";
        assert_eq!(
            metric_deltas(a, b),
            [
                ("events_total{type=\"a\"}".to_string(), Some(5.0), Some(4.0)),
                ("events_total{type=\"c\"}".to_string(), None, Some(2.0)),
            ]
        );
    }

    #[test]
    fn kafka_ranges_parse_strictly() {
        let r: KafkaRange = "codex.events:3:100-250".parse().expect("valid");
        assert_eq!(r, KafkaRange { topic: "codex.events".into(), partition: 3, from: 100, to: 250 });
        for bad in ["t:0:5", "t:0:9-5", ":0:1-2", "t:-1:1-2", "t:x:1-2", "t:0:a-b"] {
            assert!(bad.parse::<KafkaRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_records_skip_blank_lines_and_pass_long_lines_as_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.jsonl");
        let long = "x".repeat(300_000);
        std::fs::write(&path, format!("{{\"a\":1}}\n\n{long}\n{{\"b\":2}}\r\n")).expect("write");
        let records: Vec<Record> = file_records(&path, 1000).expect("open").collect();
        let texts: Vec<&[u8]> = records.iter().map(|r| r.bytes.as_ref()).collect();
        assert_eq!(texts, [&b"{\"a\":1}"[..], b"", b"{\"b\":2}"]);
        assert!(records[2].origin.ends_with("in.jsonl:4"), "{}", records[2].origin);
    }
}
