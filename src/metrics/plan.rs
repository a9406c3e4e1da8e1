//! Plans: for one event type, which fields the metrics step reads (grouped per
//! section, each once, through a compiled `Finder`), which lookups it learns or
//! forgets, and which metrics it updates, with every field resolved to a slot.
//! Built once per event type, so the per-event work is only the reading.

use super::mapping::{LabelSource, Mapping, MetricKind};
use crate::fields::FieldRef;
use crate::fields::{FieldSlots, PlanCondition, Reads, Ref};
use crate::glob::Glob;

#[derive(Debug, Clone)]
pub(super) enum PlanLabel {
    Const,
    Field { fields: Vec<Ref>, lookup: Option<(usize, Ref)> },
}

#[derive(Debug, Clone)]
pub(super) struct PlanMetric {
    pub(super) metric: usize,
    pub(super) conditions: Vec<PlanCondition>,
    pub(super) labels: Vec<PlanLabel>,
    pub(super) value: Option<(Ref, Option<Ref>)>,
    pub(super) key: Vec<Ref>,
    pub(super) remove_when: Vec<PlanCondition>,
}

#[derive(Debug, Clone)]
pub(super) struct PlanLookup {
    pub(super) lookup: usize,
    pub(super) key: Ref,
    /// Learned from this event type (the value's field), or only forgotten.
    pub(super) learn: Option<Ref>,
    pub(super) forget: bool,
}

/// What one event type needs: the fields to read per section, then the lookups to
/// learn and the metrics to update.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    pub(super) reads: Reads,
    pub(super) lookups: Vec<PlanLookup>,
    pub(super) metrics: Vec<PlanMetric>,
}

/// The plan of one event type: what to read, learn and update.
pub(super) fn build(mapping: &Mapping, event_type: &str) -> Plan {
    let matches = |m: &crate::route::MatchConfig| type_matches(m, event_type);
    let builder = FieldSlots::new(plan_fields(mapping, event_type));
    let lookups = (mapping.lookups.iter().enumerate())
        .filter_map(|(i, l)| {
            let learn = matches(&l.matcher);
            let forget = l.forget_on.as_ref().is_some_and(matches);
            let learn = match learn {
                true => Some(builder.field(&l.value)?),
                false => None,
            };
            (learn.is_some() || forget)
                .then(|| builder.field(&l.key).map(|key| PlanLookup { lookup: i, key, learn, forget }))?
        })
        .collect();
    let metrics = (mapping.metrics.iter().enumerate())
        .filter(|(_, m)| matches(&m.matcher))
        .filter_map(|(i, m)| {
            let conditions = builder.conditions(&m.conditions)?;
            let labels = m
                .labels
                .iter()
                .map(|l| match &l.source {
                    LabelSource::Const(_) => Some(PlanLabel::Const),
                    LabelSource::Field { fields, lookup } => Some(PlanLabel::Field {
                        fields: fields.iter().map(|f| builder.field(f)).collect::<Option<Vec<_>>>()?,
                        lookup: match lookup {
                            Some((l, key)) => Some((*l, builder.field(key)?)),
                            None => None,
                        },
                    }),
                })
                .collect::<Option<Vec<_>>>()?;
            let value = match &m.value {
                Some(v) => Some((
                    builder.field(&v.field)?,
                    match &v.times {
                        Some(t) => Some(builder.field(t)?),
                        None => None,
                    },
                )),
                None => None,
            };
            let (key, remove_when) = match &m.kind {
                MetricKind::KeyedGauge(k) => (
                    k.key.iter().map(|f| builder.field(f)).collect::<Option<Vec<_>>>()?,
                    builder.conditions(&k.remove_when)?,
                ),
                _ => (Vec::new(), Vec::new()),
            };
            Some(PlanMetric { metric: i, conditions, labels, value, key, remove_when })
        })
        .collect();
    Plan { reads: builder.reads(event_type), lookups, metrics }
}

/// Every field the lookups and metrics that can match `event_type` read.
pub(super) fn plan_fields<'m>(mapping: &'m Mapping, event_type: &str) -> Vec<&'m FieldRef> {
    let mut fields: Vec<&FieldRef> = Vec::new();
    for l in &mapping.lookups {
        if type_matches(&l.matcher, event_type) {
            fields.push(&l.key);
            fields.push(&l.value);
        } else if l.forget_on.as_ref().is_some_and(|f| type_matches(f, event_type)) {
            fields.push(&l.key);
        }
    }
    for m in mapping.metrics.iter().filter(|m| type_matches(&m.matcher, event_type)) {
        fields.extend(m.conditions.iter().map(|c| &c.field));
        for l in &m.labels {
            if let LabelSource::Field { fields: label_fields, lookup } = &l.source {
                fields.extend(label_fields.iter());
                fields.extend(lookup.iter().map(|(_, k)| k));
            }
        }
        if let Some(v) = &m.value {
            fields.push(&v.field);
            fields.extend(v.times.iter());
        }
        if let MetricKind::KeyedGauge(k) = &m.kind {
            fields.extend(k.key.iter());
            fields.extend(k.remove_when.iter().map(|c| &c.field));
        }
    }
    fields
}

pub(super) fn type_matches(m: &crate::route::MatchConfig, event_type: &str) -> bool {
    m.event_type.is_empty() || m.event_type.iter().any(|g| Glob::new(g).matches(event_type))
}
