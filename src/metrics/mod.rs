//! The `metrics` step: the spec's metrics derived from events, by a declarative
//! mapping (`mapping`), kept in bounded families (`store`) and served on `/metrics`.
//!
//! Per event the step does as little as it can: the metrics and lookups that can
//! match an event type are worked out once (a plan per type), the fields they read
//! are found in one scan of the event's `data` (or `context`/`tags`) bytes, and each
//! matching metric resolves its label set to a series through a hash of the values.
//! Behind a sampler, counts are scaled by `1 / sample_rate`, so a count is exact
//! wherever the step sits.

mod config;
mod lookup;
pub mod mapping;
pub mod names;
mod plan;
pub mod store;

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::IntCounter;
use synaptic_plugin_sdk::field::Scalar;

use crate::event::{Batch, Event, EventKind};
use crate::fields::{scalar_text, FieldSlots, PlanCache, Reader, Ref, MAX_PLAN_FIELDS};
use crate::route::Matcher;
use crate::step::Step;
use crate::telemetry::{MetricExport, Telemetry};

pub(crate) use config::MetricsStepConfig;
pub use config::SPEC_METRICS;
use lookup::LookupTable;
use mapping::{Case, LabelSource, Mapping, MetricKind};
use plan::{plan_fields, Plan, PlanLabel};
use store::{Admission, Family, FamilyKind};

/// The families, shared between the step (writer) and `/metrics` (reader).
pub struct MetricFamilies(Mutex<Vec<Family>>);

impl MetricFamilies {
    fn lock(&self) -> MutexGuard<'_, Vec<Family>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MetricExport for MetricFamilies {
    fn render(&self, out: &mut String) {
        for family in self.lock().iter() {
            family.render(out);
        }
    }
}

struct KeyEntry {
    series: u32,
    value: f64,
    last_ms: i64,
}

#[derive(Default)]
struct KeyedState {
    entries: crate::fields::IdentityMap<KeyEntry>,
    next_sweep_ms: i64,
}

/// Per-metric handles of `synaptic_telemetry_metric_problems_total`.
struct Problems {
    series_overflow: IntCounter,
    series_evicted: IntCounter,
    key_overflow: IntCounter,
    missing_value: IntCounter,
}

pub struct MetricsStep {
    name: String,
    families: Arc<MetricFamilies>,
    plans: PlanCache<Plan>,
    state: MetricsState,
}

/// What the step keeps between events: the mapping's compiled parts and the
/// tables learned from the stream.
struct MetricsState {
    mapping: Arc<Mapping>,
    matchers: Vec<Option<Matcher>>,
    lookup_matchers: Vec<Option<Matcher>>,
    forget_matchers: Vec<Option<Matcher>>,
    lookups: Vec<LookupTable>,
    keyed: Vec<KeyedState>,
    problems: Vec<Problems>,
}

impl MetricsStep {
    /// Builds the step and registers its families on `/metrics`.
    pub fn new(name: &str, mapping: Mapping, telemetry: &Telemetry) -> Self {
        let families: Vec<Family> = mapping
            .metrics
            .iter()
            .map(|m| {
                let (kind, bounds) = match &m.kind {
                    MetricKind::Counter => (FamilyKind::Counter, Vec::new()),
                    MetricKind::Gauge | MetricKind::KeyedGauge(_) => (FamilyKind::Gauge, Vec::new()),
                    MetricKind::Histogram(b) => (FamilyKind::Histogram, b.clone()),
                };
                let labels = m.labels.iter().map(|l| l.name.clone()).collect();
                let family = Family::new(&m.name, &m.help, kind, labels, bounds, m.max_series);
                // A keyed gauge's keys hold their series' ids: those stay put.
                match m.kind {
                    MetricKind::KeyedGauge(_) => family.keep_series(),
                    _ => family,
                }
            })
            .collect();
        let families = Arc::new(MetricFamilies(Mutex::new(families)));
        telemetry.add_export(families.clone());
        let problems = telemetry.counter_vec(
            "metric_problems_total",
            "Events the metrics step could not fully count: series_overflow (counted in the __overflow__ series), series_evicted (a new label set took the place of the least recently used one, whose counts went to __overflow__), key_overflow (a keyed gauge at max_keys), missing_value",
            &["metric", "problem"],
        );
        let problems = mapping
            .metrics
            .iter()
            .map(|m| {
                let counter = |problem: &str| problems.with_label_values(&[&m.name, problem]);
                Problems {
                    series_overflow: counter("series_overflow"),
                    series_evicted: counter("series_evicted"),
                    key_overflow: counter("key_overflow"),
                    missing_value: counter("missing_value"),
                }
            })
            .collect();
        let mapping = Arc::new(mapping);
        let planned = mapping.clone();
        MetricsStep {
            name: name.to_string(),
            families,
            plans: PlanCache::new(move |event_type| plan::build(&planned, event_type)),
            state: MetricsState {
                // The event type is decided by the plan; matchers keep only the rest.
                matchers: mapping.metrics.iter().map(|m| Matcher::apart_from_type(&m.matcher)).collect(),
                lookup_matchers: mapping
                    .lookups
                    .iter()
                    .map(|l| Matcher::apart_from_type(&l.matcher))
                    .collect(),
                forget_matchers: mapping
                    .lookups
                    .iter()
                    .map(|l| l.forget_on.as_ref().and_then(Matcher::apart_from_type))
                    .collect(),
                lookups: mapping.lookups.iter().map(|l| LookupTable::new(l.max_entries)).collect(),
                keyed: mapping.metrics.iter().map(|_| KeyedState::default()).collect(),
                problems,
                mapping,
            },
        }
    }

    /// The families this step maintains (tests and benchmarks render them).
    pub fn families(&self) -> Arc<MetricFamilies> {
        self.families.clone()
    }

    /// Checks that every event type's plan stays within the field limit; run at
    /// load so a mapping that reads too much is rejected before it runs.
    pub fn check(mapping: &Mapping) -> Result<(), String> {
        for kind in EventKind::KNOWN {
            let Some(name) = kind.canonical_name() else { continue };
            let fields = FieldSlots::new(plan_fields(mapping, name)).len();
            if fields > MAX_PLAN_FIELDS {
                return Err(format!(
                    "metrics and lookups for `{name}` read {fields} distinct fields, more than {MAX_PLAN_FIELDS}"
                ));
            }
        }
        Ok(())
    }
}

impl MetricsState {
    fn apply(&mut self, plan: &Plan, event: &Event, families: &mut [Family]) {
        if plan.lookups.is_empty() && plan.metrics.is_empty() {
            return;
        }
        let mut slots: [Option<Scalar<'_>>; MAX_PLAN_FIELDS] = Default::default();
        let used = plan.reads.read(event, &mut slots);
        let read = Reader { event, slots: &slots[..used] };

        for l in &plan.lookups {
            let Some(value) = l.learn else { continue };
            if self.lookup_matchers[l.lookup].as_ref().is_some_and(|m| !m.matches(event)) {
                continue;
            }
            if let (Some(key), Some(value)) = (read.get(l.key), read.get(value)) {
                self.lookups[l.lookup].learn(&key.text(), &value.text());
            }
        }

        let mut memo = Memo::new();
        let weight = event.sample_weight();
        for pm in &plan.metrics {
            let m = pm.metric;
            if self.matchers[m].as_ref().is_some_and(|matcher| !matcher.matches(event)) {
                continue;
            }
            if !read.all(&pm.conditions) {
                continue;
            }
            let def = &self.mapping.metrics[m];
            let value = match pm.value {
                Some((field, times)) => {
                    let base = read.get(field).and_then(|v| v.as_f64());
                    let factor = match times {
                        Some(t) => read.get(t).and_then(|v| v.as_f64()),
                        None => Some(1.0),
                    };
                    let scale = def.value.as_ref().map_or(1.0, |v| v.scale);
                    match (base, factor) {
                        (Some(b), Some(f)) if (b * f * scale).is_finite() => Some(b * f * scale),
                        _ => {
                            self.problems[m].missing_value.inc();
                            continue;
                        }
                    }
                }
                None => None,
            };
            let family = &mut families[m];
            let mut value_of =
                |i: usize| label_value(&def.labels[i], &pm.labels[i], &read, &self.lookups, &mut memo);
            // Most metrics have at most two labels: no array of eight to fill and drop.
            let (series, admission) = match def.labels.len().min(pm.labels.len()) {
                0 => family.series(&[]),
                1 => family.series(&[value_of(0)]),
                2 => family.series(&[value_of(0), value_of(1)]),
                n => {
                    let mut labels: [Cow<'_, str>; mapping::MAX_LABELS] = Default::default();
                    for (i, slot) in labels.iter_mut().enumerate().take(n) {
                        *slot = value_of(i);
                    }
                    family.series(&labels[..n.min(mapping::MAX_LABELS)])
                }
            };
            match admission {
                Admission::Overflow => self.problems[m].series_overflow.inc(),
                Admission::Evicted => self.problems[m].series_evicted.inc(),
                Admission::Existing | Admission::New => {}
            }
            match &def.kind {
                MetricKind::Counter => family.values_mut(series).value += value.unwrap_or(1.0) * weight,
                MetricKind::Gauge => {
                    if let Some(v) = value {
                        family.values_mut(series).value = v;
                    }
                }
                MetricKind::Histogram(_) => {
                    if let Some(v) = value {
                        family.observe(series, v, weight);
                    }
                }
                MetricKind::KeyedGauge(k) => {
                    let remove = !pm.remove_when.is_empty() && read.all(&pm.remove_when);
                    let Some(key) = key_identity(&pm.key, &read) else {
                        self.problems[m].missing_value.inc();
                        continue;
                    };
                    let state = &mut self.keyed[m];
                    let now = event.timestamp_ms();
                    if remove {
                        if let Some(old) = state.entries.remove(&key) {
                            family.values_mut(old.series).value -= old.value;
                        }
                    } else {
                        let contribution = value.unwrap_or(1.0);
                        let full = state.entries.len() >= k.max_keys;
                        match state.entries.get_mut(&key) {
                            Some(entry) => {
                                family.values_mut(entry.series).value -= entry.value;
                                family.values_mut(series).value += contribution;
                                entry.series = series;
                                entry.value = contribution;
                                entry.last_ms = entry.last_ms.max(now);
                            }
                            None if full => self.problems[m].key_overflow.inc(),
                            None => {
                                family.values_mut(series).value += contribution;
                                let entry = KeyEntry { series, value: contribution, last_ms: now };
                                state.entries.insert(key, entry);
                            }
                        }
                    }
                    if let Some(expire) = k.expire_after {
                        expire_keys(state, family, now, expire.as_millis() as i64);
                    }
                }
            }
        }
        for l in plan.lookups.iter().filter(|l| l.forget) {
            if self.forget_matchers[l.lookup].as_ref().is_some_and(|m| !m.matches(event)) {
                continue;
            }
            if let Some(key) = read.get(l.key) {
                self.lookups[l.lookup].forget(&key.text());
            }
        }
    }
}

/// Removes keys not refreshed within `expire_ms` of the newest event time; swept
/// a few times per expiry period, not per event.
fn expire_keys(state: &mut KeyedState, family: &mut Family, now: i64, expire_ms: i64) {
    if now < state.next_sweep_ms {
        return;
    }
    state.next_sweep_ms = now + (expire_ms / 4).max(1);
    let cutoff = now - expire_ms;
    state.entries.retain(|_, entry| {
        let keep = entry.last_ms >= cutoff;
        if !keep {
            family.values_mut(entry.series).value -= entry.value;
        }
        keep
    });
}

/// The identity of a keyed gauge's key (one field, or several in order).
fn key_identity(key: &[Ref], read: &Reader<'_, '_>) -> Option<u128> {
    let mut hash = crate::fields::KeyHash::default();
    for r in key {
        hash.add(scalar_text(read.get(*r)?).as_bytes());
    }
    Some(hash.finish())
}

/// Lookups already made for the current event: several metrics often label by
/// the same lookup (agent_type of the same agent_id).
struct Memo<'l> {
    entries: [(usize, Ref, Option<&'l str>); 4],
    len: usize,
}

impl<'l> Memo<'l> {
    fn new() -> Self {
        Memo { entries: [(usize::MAX, Ref::EventId, None); 4], len: 0 }
    }

    fn lookup(
        &mut self,
        table: usize,
        key: Ref,
        read: &Reader<'_, '_>,
        lookups: &'l [LookupTable],
    ) -> Option<&'l str> {
        if let Some((_, _, found)) =
            self.entries[..self.len].iter().find(|(t, k, _)| *t == table && *k == key)
        {
            return *found;
        }
        let found = read.get(key).map(scalar_text).and_then(|k| lookups.get(table)?.get(&k));
        if self.len < self.entries.len() {
            self.entries[self.len] = (table, key, found);
            self.len += 1;
        }
        found
    }
}

fn label_value<'a>(
    label: &'a mapping::LabelDef,
    plan: &PlanLabel,
    read: &Reader<'a, '_>,
    lookups: &'a [LookupTable],
    memo: &mut Memo<'a>,
) -> Cow<'a, str> {
    let raw: Option<Cow<'a, str>> = match (&label.source, plan) {
        (LabelSource::Const(value), _) => return Cow::Borrowed(value),
        (_, PlanLabel::Field { fields, lookup }) => {
            fields.iter().find_map(|f| read.get(*f)).map(scalar_text).or_else(|| {
                let (table, key) = (*lookup)?;
                memo.lookup(table, key, read, lookups).map(Cow::Borrowed)
            })
        }
        _ => None,
    };
    let Some(value) = raw else { return Cow::Borrowed(&label.default) };
    let value = match label.map.get(value.as_ref()) {
        Some(mapped) => Cow::Borrowed(mapped.as_str()),
        None => value,
    };
    match label.case {
        Case::Upper if value.chars().any(|c| c.is_lowercase()) => Cow::Owned(value.to_uppercase()),
        Case::Lower if value.chars().any(|c| c.is_uppercase()) => Cow::Owned(value.to_lowercase()),
        _ => value,
    }
}

impl Step for MetricsStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, batch: &mut Batch) {
        let mut families = self.families.lock();
        let state = &mut self.state;
        self.plans.each(&batch.events, |plan, event| state.apply(plan, event, &mut families));
    }
}

#[cfg(test)]
mod tests;
