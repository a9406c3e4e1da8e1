//! The evaluator: events feed per-rule, per-group state (`feed`, on the hot path);
//! `evaluate` (on a timer, off the hot path) turns that state into alerts that
//! move inactive → pending → firing → resolved.
//!
//! Per event the engine does what the metrics step does: the rules that can match
//! an event type are worked out once (a plan per type), their fields are read in
//! one scan, and each matching rule finds its group through a 128-bit hash of the
//! group's label values. A window's cost per event is one bucket update.

use std::collections::BTreeMap;

use synaptic_plugin_sdk::field::Scalar;

use super::rule::{Cond, Func, Rule, Tier};
use super::window::Window;
use crate::decode::{ConfigError, ConfigErrors};
use crate::event::{Event, EventKind};
use crate::fields::FieldRef;
use crate::fields::{scalar_text, FieldSlots, PlanCache, PlanCondition, Reader, Reads, Ref, MAX_PLAN_FIELDS};
use crate::fields::{IdentityMap, KeyHash};
use crate::glob::Glob;
use crate::route::Matcher;

/// Plans kept for event types the schema does not know.
/// The label value of a group field an event does not carry.
pub(crate) const MISSING_LABEL: &str = "unknown";

/// One alert, as the notifier and the receivers see it (and as a receiver's disk
/// outbox keeps it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub rule: String,
    pub tier: Tier,
    /// Identifies the alert: a hash of its labels.
    pub(crate) fingerprint: u128,
    /// `alertname`, `severity` (the tier), the group labels and the rule's labels.
    pub labels: BTreeMap<String, String>,
    /// The group labels alone (inhibition compares these).
    pub group: Vec<(String, String)>,
    pub annotations: BTreeMap<String, String>,
    /// JSON has no NaN: a value that is not a number is kept as `null`.
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// When the alert started firing (Unix ms).
    pub(crate) starts_at_ms: i64,
    /// Set once resolved.
    pub(crate) ends_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Inactive,
    Pending { since: i64 },
    Firing { since: i64, clear_since: Option<i64> },
}

#[derive(Debug, Clone)]
struct Group {
    labels: Vec<String>,
    window: Option<Window>,
    /// `baseline`: the longer window.
    long: Option<Window>,
    last_seen_ms: i64,
    /// `threshold`: the latest event's value and time.
    last_value: Option<(f64, i64)>,
    /// The condition's value at the last evaluation that had one: what a
    /// resolved notification reports when the value is gone by then (a stale
    /// reading, an emptied window).
    last_observed: f64,
    phase: Phase,
}

struct CompiledRule {
    rule: Rule,
    /// Component and severity filters (event types are settled by the plans).
    matcher: Option<Matcher>,
    groups: IdentityMap<Group>,
}

#[derive(Debug, Clone)]
struct RulePlan {
    rule: usize,
    conditions: Vec<PlanCondition>,
    group: Vec<Ref>,
    value: Option<Ref>,
    ratio_where: Vec<PlanCondition>,
}

#[derive(Debug, Clone, Default)]
struct KindPlan {
    reads: Reads,
    rules: Vec<RulePlan>,
}

/// What one evaluation found.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Every alert firing now.
    pub firing: Vec<Alert>,
    /// Alerts that stopped firing in this evaluation.
    pub(crate) resolved: Vec<Alert>,
    /// Alerts that became pending in this evaluation (for tests and logs).
    pub(crate) pending: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rules matching `{event_type}` read {fields} distinct fields, more than {max}: split the rules or read fewer fields")]
    TooManyFields { event_type: String, fields: usize, max: usize },
}

pub struct Engine {
    rules: Vec<CompiledRule>,
    plans: PlanCache<KindPlan>,
    max_groups: usize,
    /// Groups refused because a rule already had `max_groups`.
    pub(crate) groups_refused: u64,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, max_groups: usize) -> Result<Engine, EngineError> {
        check_fields(&rules)?;
        Ok(Engine {
            plans: plans_of(&rules),
            rules: rules.into_iter().map(compile).collect(),
            max_groups,
            groups_refused: 0,
        })
    }

    /// Checks a rule set as `new` would, without building it.
    pub fn check(rules: &[Rule]) -> Result<(), EngineError> {
        check_fields(rules)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// Swaps in a new rule set. Rules whose definition did not change keep their
    /// groups (windows, pending and firing states); the others start afresh.
    /// Returns the alerts of removed or changed rules that were firing: they are
    /// resolved now, since nothing will evaluate them again.
    pub(crate) fn replace_rules(&mut self, rules: Vec<Rule>, now_ms: i64) -> Result<Vec<Alert>, EngineError> {
        check_fields(&rules)?;
        self.plans = plans_of(&rules);
        let mut old = std::mem::take(&mut self.rules);
        self.rules = rules
            .into_iter()
            .map(|rule| {
                let mut fresh = compile(rule);
                // An unchanged definition keeps its state, wherever it moved.
                if let Some(at) = old.iter().position(|o| o.rule.definition == fresh.rule.definition) {
                    fresh.groups = old.swap_remove(at).groups;
                }
                fresh
            })
            .collect();
        let mut resolved = Vec::new();
        for gone in old {
            for group in gone.groups.values() {
                if let Phase::Firing { since, .. } = group.phase {
                    let mut alert = make_alert(&gone.rule, group, since, group.last_observed);
                    alert.ends_at_ms = Some(now_ms);
                    resolved.push(alert);
                }
            }
        }
        Ok(resolved)
    }

    /// Feeds a batch's events; `now_ms` is the engine's clock (event times after it
    /// count as now: a producer's clock running ahead must not hide its events).
    pub fn feed(&mut self, events: &[Event], now_ms: i64) {
        let Engine { rules, plans, max_groups, groups_refused } = self;
        plans.each(events, |plan, event| feed_event(rules, *max_groups, groups_refused, plan, event, now_ms));
    }

    /// Evaluates every group of every rule at `now_ms`.
    pub fn evaluate(&mut self, now_ms: i64) -> Evaluation {
        let mut out = Evaluation::default();
        for compiled in &mut self.rules {
            let rule = &compiled.rule;
            let mut forget = Vec::new();
            for (id, group) in compiled.groups.iter_mut() {
                // An expected group nothing was heard from: silent since the
                // first evaluation.
                if group.last_seen_ms == i64::MIN {
                    group.last_seen_ms = now_ms;
                }
                let firing = matches!(group.phase, Phase::Firing { .. });
                let Observed { value, holds } = observe(&rule.condition, group, now_ms, firing);
                if let Some(v) = value {
                    group.last_observed = v;
                }
                // What notifications show: the value now, else the last one seen.
                let value = value.unwrap_or(group.last_observed);
                let for_ms = rule.for_.as_millis() as i64;
                let keep_ms = rule.keep_firing_for.as_millis() as i64;
                group.phase = match group.phase {
                    Phase::Inactive if holds && for_ms == 0 => {
                        Phase::Firing { since: now_ms, clear_since: None }
                    }
                    Phase::Inactive if holds => {
                        out.pending += 1;
                        Phase::Pending { since: now_ms }
                    }
                    Phase::Inactive => Phase::Inactive,
                    Phase::Pending { since } if holds && now_ms - since >= for_ms => {
                        Phase::Firing { since: now_ms, clear_since: None }
                    }
                    Phase::Pending { since } if holds => Phase::Pending { since },
                    Phase::Pending { .. } => Phase::Inactive,
                    Phase::Firing { since, .. } if holds => Phase::Firing { since, clear_since: None },
                    Phase::Firing { since, clear_since } => {
                        let cleared = clear_since.unwrap_or(now_ms);
                        if now_ms - cleared >= keep_ms {
                            let mut alert = make_alert(rule, group, since, value);
                            alert.ends_at_ms = Some(now_ms);
                            out.resolved.push(alert);
                            Phase::Inactive
                        } else {
                            Phase::Firing { since, clear_since: Some(cleared) }
                        }
                    }
                };
                match group.phase {
                    Phase::Firing { since, .. } => out.firing.push(make_alert(rule, group, since, value)),
                    Phase::Inactive if is_idle(&rule.condition, group, now_ms) => forget.push(*id),
                    _ => {}
                }
            }
            for id in forget {
                compiled.groups.remove(&id);
            }
        }
        out
    }

    /// Groups held, over all rules.
    #[cfg(test)]
    pub(crate) fn group_count(&self) -> usize {
        self.rules.iter().map(|r| r.groups.len()).sum()
    }
}

/// Loads the rules under `path` and checks them as `Engine::new` would; every
/// problem is a config error (the field limit's names the path).
pub fn load_checked(path: &std::path::Path) -> Result<Vec<Rule>, ConfigErrors> {
    let rules = super::rule::load(path)?;
    check_fields(&rules).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            message: e.to_string(),
        }])
    })?;
    Ok(rules)
}

fn check_fields(rules: &[Rule]) -> Result<(), EngineError> {
    for kind in EventKind::KNOWN {
        let Some(name) = kind.canonical_name() else { continue };
        let fields = FieldSlots::new(rule_fields(rules, name)).len();
        if fields > MAX_PLAN_FIELDS {
            return Err(EngineError::TooManyFields {
                event_type: name.to_string(),
                fields,
                max: MAX_PLAN_FIELDS,
            });
        }
    }
    Ok(())
}

fn compile(rule: Rule) -> CompiledRule {
    let filters = !rule.matcher.component.is_empty() || rule.matcher.min_severity.is_some();
    let matcher = filters.then(|| {
        // Event types are settled by the plan; only the other filters run per event.
        let mut m = rule.matcher.clone();
        m.event_type.clear();
        Matcher::new(&m)
    });
    let mut groups = IdentityMap::default();
    if let Cond::Absent { expect: Some(expected), .. } = &rule.condition {
        for values in expected {
            // Hashed as the event path hashes a group's label values.
            let mut hash = KeyHash::default();
            for value in values {
                hash.add(value.as_bytes());
            }
            let labels = values.iter().map(|v| crate::fields::cap_exported(v).into_owned()).collect();
            groups.insert(hash.finish(), new_group(&rule.condition, labels));
        }
    }
    CompiledRule { matcher, groups, rule }
}

/// Makes room for a new group in a full table: the group heard from longest ago
/// that is not pending or firing goes (its alert, if any, has resolved). False
/// when every group is pending or firing: then the new group is refused. So a
/// flood of made-up label values cannot keep a real group out for good.
fn evict_oldest_inactive(groups: &mut IdentityMap<Group>) -> bool {
    let oldest = groups
        .iter()
        .filter(|(_, g)| g.phase == Phase::Inactive)
        .min_by_key(|(_, g)| g.last_seen_ms)
        .map(|(id, _)| *id);
    oldest.is_some_and(|id| groups.remove(&id).is_some())
}

fn new_group(condition: &Cond, labels: Vec<String>) -> Group {
    let (window, long) = match condition {
        Cond::Aggregate(a) => {
            (Some(Window::new(a.window.as_millis() as i64, matches!(a.func, Func::Quantile(_)))), None)
        }
        Cond::Baseline { aggregate: a, over, .. } => {
            let samples = matches!(a.func, Func::Quantile(_));
            (
                Some(Window::new(a.window.as_millis() as i64, samples)),
                Some(Window::new(over.as_millis() as i64, samples)),
            )
        }
        _ => (None, None),
    };
    Group {
        labels,
        window,
        long,
        last_seen_ms: i64::MIN,
        last_value: None,
        last_observed: f64::NAN,
        phase: Phase::Inactive,
    }
}

/// A condition at one evaluation: its value, when there is one, and whether it
/// holds.
struct Observed {
    value: Option<f64>,
    holds: bool,
}

/// The condition's value and whether it holds; `firing` selects the clear level
/// of a rule with hysteresis.
fn observe(condition: &Cond, group: &Group, now_ms: i64, firing: bool) -> Observed {
    let none = Observed { value: None, holds: false };
    match condition {
        Cond::Threshold { cmp, stale_after, clear, .. } => match group.last_value {
            Some((v, at)) if now_ms - at < stale_after.as_millis() as i64 => {
                Observed { value: Some(v), holds: cmp.holds_while(v, firing, *clear) }
            }
            _ => none,
        },
        Cond::Absent { after, .. } => {
            // Only a silence is a value here: a resolved alert then reports how
            // long the silence lasted, not the moments since the last event.
            let silent_ms = now_ms.saturating_sub(group.last_seen_ms);
            let holds = silent_ms >= after.as_millis() as i64;
            Observed { value: holds.then_some(silent_ms as f64 / 1000.0), holds }
        }
        Cond::Aggregate(a) => match group.window.as_ref().and_then(|w| w.value(a.func, now_ms, a.min_events))
        {
            Some(v) => Observed { value: Some(v), holds: a.cmp.holds_while(v, firing, a.clear) },
            None => none,
        },
        Cond::Baseline { aggregate: a, factor, .. } => {
            let Some(short) = group.window.as_ref().and_then(|w| w.value(a.func, now_ms, a.min_events))
            else {
                return none;
            };
            // The baseline is the longer window before the recent one.
            let recent = a.window.as_millis() as i64;
            let long = group.long.as_ref().and_then(|w| w.value_before(a.func, now_ms, recent, a.min_events));
            match long {
                // Rates compare per second, so the windows' lengths do not matter.
                Some(long) if long > 0.0 => {
                    Observed { value: Some(short / long), holds: short > factor * long }
                }
                _ => none,
            }
        }
    }
}

/// An inactive group with nothing left in its windows can be dropped; `absent`
/// groups are kept, since their silence is what the rule watches.
fn is_idle(condition: &Cond, group: &Group, now_ms: i64) -> bool {
    match condition {
        Cond::Absent { .. } => false,
        Cond::Threshold { stale_after, .. } => {
            group.last_value.is_none_or(|(_, at)| now_ms - at >= stale_after.as_millis() as i64)
        }
        Cond::Aggregate(_) | Cond::Baseline { .. } => {
            group.long.as_ref().or(group.window.as_ref()).is_none_or(|w| w.is_empty(now_ms))
        }
    }
}

fn make_alert(rule: &Rule, group: &Group, since: i64, value: f64) -> Alert {
    let group_labels: Vec<(String, String)> =
        rule.group_by.iter().map(|(name, _)| name.clone()).zip(group.labels.iter().cloned()).collect();
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), rule.name.clone());
    labels.insert("severity".to_string(), rule.tier.as_str().to_string());
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.extend(group_labels.iter().cloned());
    let mut hash = KeyHash::default();
    for (k, v) in &labels {
        hash.add(k.as_bytes());
        hash.add(v.as_bytes());
    }
    let threshold = match &rule.condition {
        Cond::Threshold { cmp, .. } => Some(cmp.threshold()),
        Cond::Aggregate(a) => Some(a.cmp.threshold()),
        Cond::Baseline { factor, .. } => Some(*factor),
        Cond::Absent { after, .. } => Some(after.as_secs_f64()),
    };
    let annotations = (rule.annotations.iter())
        .map(|(name, template)| {
            let text = template.render(|var| match var {
                "value" => Some(format_value(value)),
                "threshold" => threshold.map(format_value),
                "rule" => Some(rule.name.clone()),
                "tier" => Some(rule.tier.as_str().to_string()),
                other => labels.get(other).cloned(),
            });
            (name.clone(), text)
        })
        .collect();
    Alert {
        rule: rule.name.clone(),
        tier: rule.tier,
        fingerprint: hash.finish(),
        labels,
        group: group_labels,
        annotations,
        value,
        starts_at_ms: since,
        ends_at_ms: None,
    }
}

/// Whole numbers without decimals, others with up to three.
pub(crate) fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Every field the rules that can match `event_type` read.
fn rule_fields<'r>(rules: &'r [Rule], event_type: &str) -> Vec<&'r FieldRef> {
    let mut fields = Vec::new();
    for rule in rules.iter().filter(|r| type_matches(r, event_type)) {
        fields.extend(rule.conditions.iter().map(|c| &c.field));
        fields.extend(rule.group_by.iter().map(|(_, f)| f));
        match &rule.condition {
            Cond::Threshold { field, .. } => fields.push(field),
            Cond::Aggregate(a) | Cond::Baseline { aggregate: a, .. } => {
                fields.extend(a.field.iter());
                fields.extend(a.ratio_where.iter().map(|c| &c.field));
            }
            Cond::Absent { .. } => {}
        }
    }
    fields
}

fn type_matches(rule: &Rule, event_type: &str) -> bool {
    rule.matcher.event_type.is_empty()
        || rule.matcher.event_type.iter().any(|g| Glob::new(g).matches(event_type))
}

/// The per-event-type plans of a rule set (a snapshot: a new rule set gets new ones).
fn plans_of(rules: &[Rule]) -> PlanCache<KindPlan> {
    let rules = rules.to_vec();
    PlanCache::new(move |event_type| plan_for(&rules, event_type))
}

fn plan_for(rules: &[Rule], event_type: &str) -> KindPlan {
    let slots = FieldSlots::new(rule_fields(rules, event_type));
    let plans = (rules.iter().enumerate())
        .filter(|(_, r)| type_matches(r, event_type))
        .filter_map(|(i, rule)| {
            let value = match &rule.condition {
                Cond::Threshold { field, .. } => Some(slots.field(field)?),
                Cond::Aggregate(a) | Cond::Baseline { aggregate: a, .. } => match &a.field {
                    Some(f) => Some(slots.field(f)?),
                    None => None,
                },
                Cond::Absent { .. } => None,
            };
            let ratio_where = match &rule.condition {
                Cond::Aggregate(a) | Cond::Baseline { aggregate: a, .. } => {
                    slots.conditions(&a.ratio_where)?
                }
                _ => Vec::new(),
            };
            Some(RulePlan {
                rule: i,
                conditions: slots.conditions(&rule.conditions)?,
                group: rule.group_by.iter().map(|(_, f)| slots.field(f)).collect::<Option<Vec<_>>>()?,
                value,
                ratio_where,
            })
        })
        .collect();
    KindPlan { reads: slots.reads(event_type), rules: plans }
}

/// One event into the groups of the rules its plan names.
fn feed_event(
    rules: &mut [CompiledRule],
    max_groups: usize,
    groups_refused: &mut u64,
    plan: &KindPlan,
    event: &Event,
    now_ms: i64,
) {
    if plan.rules.is_empty() {
        return;
    }
    let mut slots: [Option<Scalar<'_>>; MAX_PLAN_FIELDS] = Default::default();
    let used = plan.reads.read(event, &mut slots);
    let read = Reader { event, slots: &slots[..used] };
    let ts = event.timestamp_ms().min(now_ms);
    let weight = event.sample_weight();
    for rp in &plan.rules {
        let compiled = &mut rules[rp.rule];
        if compiled.matcher.as_ref().is_some_and(|m| !m.matches(event)) || !read.all(&rp.conditions) {
            continue;
        }
        let mut hash = KeyHash::default();
        for r in &rp.group {
            match read.get(*r) {
                Some(v) => hash.add(scalar_text(v).as_bytes()),
                None => hash.add(MISSING_LABEL.as_bytes()),
            }
        }
        let id = hash.finish();
        let group = match compiled.groups.get_mut(&id) {
            Some(g) => g,
            None => {
                // An `absent` rule with a list watches only the groups it lists.
                if matches!(compiled.rule.condition, Cond::Absent { expect: Some(_), .. }) {
                    continue;
                }
                if compiled.groups.len() >= max_groups && !evict_oldest_inactive(&mut compiled.groups) {
                    *groups_refused += 1;
                    continue;
                }
                let labels = (rp.group.iter())
                    .map(|r| {
                        read.get(*r).map_or_else(
                            || MISSING_LABEL.to_string(),
                            |v| crate::fields::cap_exported(&scalar_text(v)).into_owned(),
                        )
                    })
                    .collect();
                compiled.groups.entry(id).or_insert(new_group(&compiled.rule.condition, labels))
            }
        };
        group.last_seen_ms = group.last_seen_ms.max(ts);
        let value = rp.value.and_then(|r| read.get(r)).and_then(|v| v.as_f64());
        match &compiled.rule.condition {
            Cond::Threshold { .. } => {
                if let Some(v) = value {
                    if group.last_value.is_none_or(|(_, at)| ts >= at) {
                        group.last_value = Some((v, ts));
                    }
                }
            }
            Cond::Absent { .. } => {}
            Cond::Aggregate(_) | Cond::Baseline { .. } => {
                let matching = !rp.ratio_where.is_empty() && read.all(&rp.ratio_where);
                if let Some(w) = group.window.as_mut() {
                    w.add(ts, now_ms, weight, matching, value);
                }
                if let Some(w) = group.long.as_mut() {
                    w.add(ts, now_ms, weight, matching, value);
                }
            }
        }
    }
}

/// `f64` to JSON and back with NaN (and the infinities) as `null`.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        match value.is_finite() {
            true => s.serialize_f64(*value),
            false => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
