//! The metric families the metrics step maintains, and their Prometheus text
//! exposition. The step writes under one lock per batch; `/metrics` reads under the
//! same lock.
//!
//! Cardinality is bounded per family: once a family holds `max_series` label sets,
//! a new label set takes the place of the one observed longest ago, whose counts
//! are added to one overflow series whose labels all read `__overflow__` (a gauge's
//! last value is dropped). Totals stay exact (a sum over series still counts every
//! event), memory stays bounded, and label sets that arrived first — made-up values
//! among them — cannot keep later, busier ones out. Families whose series ids are
//! held elsewhere (keyed gauges) keep their first `max_series` label sets instead,
//! and send later ones to the overflow series. Both are counted on the pipeline's
//! own metrics.

use std::borrow::Cow;
use std::fmt::Write;

use crate::fields::{IdentityMap, KeyHash};

/// The label value of the overflow series.
pub(crate) const OVERFLOW: &str = "__overflow__";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FamilyKind {
    Counter,
    Gauge,
    Histogram,
}

impl FamilyKind {
    fn as_str(self) -> &'static str {
        match self {
            FamilyKind::Counter => "counter",
            FamilyKind::Gauge => "gauge",
            FamilyKind::Histogram => "histogram",
        }
    }
}

/// One series' numbers. Counts are `f64`: behind a sampler an event counts
/// `1 / sample_rate` times.
#[derive(Debug, Clone, Default)]
pub(crate) struct Values {
    /// Counter total or gauge value.
    pub(crate) value: f64,
    /// Histogram: per-bucket (not cumulative) counts, the last one being +Inf.
    pub(crate) buckets: Vec<f64>,
    pub(crate) sum: f64,
    pub(crate) count: f64,
}

#[derive(Debug)]
struct Series {
    labels: Box<[Box<str>]>,
    values: Values,
    /// The label set's identity (its key in `index`).
    identity: u128,
    /// The family's observation clock when it was last used.
    touched: u64,
}

pub(crate) struct Family {
    pub name: String,
    help: String,
    pub kind: FamilyKind,
    pub(crate) label_names: Vec<String>,
    /// Upper bounds of histogram buckets, without +Inf.
    bounds: Vec<f64>,
    max_series: usize,
    series: Vec<Series>,
    /// Label set's 128-bit identity (see `KeyHash`) → series: no label text is
    /// compared per observation.
    index: IdentityMap<u32>,
    overflow: Option<u32>,
    /// Whether a full family makes room by retiring its least recently used series.
    evicts: bool,
    /// Counts calls of `series`, for "least recently used".
    clock: u64,
}

/// What `series` did for a label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Existing,
    New,
    /// New, in the place of the least recently used series (folded into overflow).
    Evicted,
    /// Counted in the overflow series (a family that keeps its series).
    Overflow,
}

impl Family {
    pub(crate) fn new(
        name: &str,
        help: &str,
        kind: FamilyKind,
        label_names: Vec<String>,
        bounds: Vec<f64>,
        max_series: usize,
    ) -> Self {
        let mut family = Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            label_names,
            bounds,
            max_series,
            series: Vec::new(),
            index: IdentityMap::default(),
            overflow: None,
            evicts: true,
            clock: 0,
        };
        // A family without labels has exactly one series; show it from the start
        // (a counter at 0 says "nothing happened", absence says "not measured").
        if family.label_names.is_empty() {
            family.series(&[]);
        }
        family
    }

    /// Keeps the first `max_series` label sets instead of retiring old ones: for
    /// families whose series ids are held elsewhere (a keyed gauge's keys).
    pub(crate) fn keep_series(mut self) -> Self {
        self.evicts = false;
        self
    }

    fn empty_values(&self) -> Values {
        let buckets =
            if self.kind == FamilyKind::Histogram { vec![0.0; self.bounds.len() + 1] } else { Vec::new() };
        Values { buckets, ..Values::default() }
    }

    /// The series of a label set (values in `label_names` order), created when new.
    pub(crate) fn series(&mut self, labels: &[Cow<'_, str>]) -> (u32, Admission) {
        if labels.is_empty() && !self.series.is_empty() {
            return (0, Admission::Existing);
        }
        let mut identity = KeyHash::default();
        for label in labels {
            identity.add(label.as_bytes());
        }
        let identity = identity.finish();
        self.clock += 1;
        if let Some(&id) = self.index.get(&identity) {
            self.series[id as usize].touched = self.clock;
            return (id, Admission::Existing);
        }
        let live = self.series.len() - usize::from(self.overflow.is_some());
        let capped: Box<[Box<str>]> =
            labels.iter().map(|l| Box::from(crate::fields::cap_exported(l).as_ref())).collect();
        if live >= self.max_series && !self.label_names.is_empty() {
            let overflow = self.overflow_series();
            if !self.evicts {
                return (overflow, Admission::Overflow);
            }
            let oldest = (0..self.series.len())
                .filter(|&i| i != overflow as usize)
                .min_by_key(|&i| self.series[i].touched)
                .unwrap_or(overflow as usize);
            if oldest == overflow as usize {
                return (overflow, Admission::Overflow);
            }
            let fresh = Series { labels: capped, values: self.empty_values(), identity, touched: self.clock };
            let retired = std::mem::replace(&mut self.series[oldest], fresh);
            self.index.remove(&retired.identity);
            self.index.insert(identity, oldest as u32);
            self.fold_into(overflow, &retired.values);
            return (oldest as u32, Admission::Evicted);
        }
        let values = self.empty_values();
        self.series.push(Series { labels: capped, values, identity, touched: self.clock });
        let id = (self.series.len() - 1) as u32;
        self.index.insert(identity, id);
        (id, Admission::New)
    }

    /// The overflow series, created on first use.
    fn overflow_series(&mut self) -> u32 {
        if let Some(id) = self.overflow {
            return id;
        }
        let labels = vec![Box::<str>::from(OVERFLOW); self.label_names.len()].into_boxed_slice();
        let values = self.empty_values();
        self.series.push(Series { labels, values, identity: 0, touched: u64::MAX });
        let id = (self.series.len() - 1) as u32;
        self.overflow = Some(id);
        id
    }

    /// Adds a retired series' counts to the overflow series, so totals stay exact.
    /// A gauge's value is a level, not a count: it is not added.
    fn fold_into(&mut self, overflow: u32, retired: &Values) {
        if self.kind == FamilyKind::Gauge {
            return;
        }
        let target = &mut self.series[overflow as usize].values;
        target.value += retired.value;
        target.sum += retired.sum;
        target.count += retired.count;
        for (slot, add) in target.buckets.iter_mut().zip(&retired.buckets) {
            *slot += add;
        }
    }

    pub(crate) fn values_mut(&mut self, id: u32) -> &mut Values {
        &mut self.series[id as usize].values
    }

    pub(crate) fn observe(&mut self, id: u32, value: f64, weight: f64) {
        let Family { bounds, series, .. } = self;
        let values = &mut series[id as usize].values;
        let bucket = bounds.partition_point(|b| *b < value);
        if let Some(slot) = values.buckets.get_mut(bucket) {
            *slot += weight;
        }
        values.sum += value * weight;
        values.count += weight;
    }

    /// Appends the family in the Prometheus text format (0.0.4).
    pub(crate) fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        for series in &self.series {
            match self.kind {
                FamilyKind::Counter | FamilyKind::Gauge => {
                    out.push_str(&self.name);
                    self.write_labels(out, &series.labels, None);
                    let _ = writeln!(out, " {}", Number(series.values.value));
                }
                FamilyKind::Histogram => {
                    let mut cumulative = 0.0;
                    for (i, count) in series.values.buckets.iter().enumerate() {
                        cumulative += count;
                        let le =
                            self.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| Number(*b).to_string());
                        let _ = write!(out, "{}_bucket", self.name);
                        self.write_labels(out, &series.labels, Some(&le));
                        let _ = writeln!(out, " {}", Number(cumulative));
                    }
                    let _ = write!(out, "{}_sum", self.name);
                    self.write_labels(out, &series.labels, None);
                    let _ = writeln!(out, " {}", Number(series.values.sum));
                    let _ = write!(out, "{}_count", self.name);
                    self.write_labels(out, &series.labels, None);
                    let _ = writeln!(out, " {}", Number(series.values.count));
                }
            }
        }
    }

    fn write_labels(&self, out: &mut String, values: &[Box<str>], le: Option<&str>) {
        if values.is_empty() && le.is_none() {
            return;
        }
        out.push('{');
        let mut first = true;
        for (name, value) in self.label_names.iter().zip(values) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{name}=\"{}\"", escape_label(value));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{le}\"");
        }
        out.push('}');
    }
}

/// A sample value as the text format writes it: whole numbers without a fraction.
struct Number(f64);

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
            write!(f, "{}", v as i64)
        } else {
            write!(f, "{v}")
        }
    }
}

fn escape_label(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

fn escape_help(help: &str) -> Cow<'_, str> {
    if !help.contains(['\\', '\n']) {
        return Cow::Borrowed(help);
    }
    Cow::Owned(help.replace('\\', "\\\\").replace('\n', "\\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(values: &[&'a str]) -> Vec<Cow<'a, str>> {
        values.iter().map(|v| Cow::Borrowed(*v)).collect()
    }

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let mut f =
            Family::new("x_seconds", "X", FamilyKind::Histogram, vec!["k".into()], vec![0.1, 1.0], 10);
        let (id, _) = f.series(&labels(&["a"]));
        for v in [0.05, 0.1, 0.5, 2.0] {
            f.observe(id, v, 1.0);
        }
        let mut out = String::new();
        f.render(&mut out);
        assert_eq!(
            out,
            "# HELP x_seconds X\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{k=\"a\",le=\"0.1\"} 2\nx_seconds_bucket{k=\"a\",le=\"1\"} 3\n\
             x_seconds_bucket{k=\"a\",le=\"+Inf\"} 4\nx_seconds_sum{k=\"a\"} 2.65\nx_seconds_count{k=\"a\"} 4\n"
        );
    }

    #[test]
    fn series_beyond_the_bound_fold_into_one_overflow_series() {
        let mut f = Family::new("n_total", "N", FamilyKind::Counter, vec!["id".into()], vec![], 3);
        let mut admissions = Vec::new();
        for i in 0..10 {
            let value = i.to_string();
            let (id, admission) = f.series(&[Cow::Borrowed(value.as_str())]);
            f.values_mut(id).value += 1.0;
            admissions.push(admission);
        }
        assert_eq!(admissions.iter().filter(|a| **a == Admission::New).count(), 3);
        assert_eq!(admissions.iter().filter(|a| **a == Admission::Evicted).count(), 7);
        assert_eq!(f.series.len(), 4, "3 series plus the overflow one");
        let total: f64 = f.series.iter().map(|s| s.values.value).sum();
        assert_eq!(total, 10.0, "every event still counted");
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.contains("n_total{id=\"__overflow__\"} 7\n"), "{out}");
        assert!(out.contains("n_total{id=\"9\"} 1\n"), "the newest label sets have places: {out}");
    }

    #[test]
    fn made_up_label_sets_that_came_first_do_not_keep_a_busy_one_out() {
        let mut f = Family::new("h_seconds", "H", FamilyKind::Histogram, vec!["id".into()], vec![1.0], 3);
        let observe = |f: &mut Family, id: &str| {
            let (series, _) = f.series(&[Cow::Borrowed(id)]);
            f.observe(series, 0.5, 1.0);
        };
        for i in 0..3 {
            observe(&mut f, &format!("spoof{i}"));
        }
        for i in 3..500 {
            observe(&mut f, "real");
            observe(&mut f, &format!("spoof{i}"));
        }
        let mut out = String::new();
        f.render(&mut out);
        assert!(
            out.contains("h_seconds_count{id=\"real\"} 497\n"),
            "the busy series kept every count: {out}"
        );
        let count: f64 = f.series.iter().map(|s| s.values.count).sum();
        assert_eq!(count, 997.0, "totals exact");
    }

    #[test]
    fn a_family_that_keeps_its_series_sends_later_ones_to_overflow() {
        let mut f = Family::new("g", "G", FamilyKind::Gauge, vec!["k".into()], vec![], 2).keep_series();
        let admissions: Vec<Admission> =
            ["a", "b", "c", "a"].iter().map(|k| f.series(&[Cow::Borrowed(*k)]).1).collect();
        assert_eq!(admissions, [Admission::New, Admission::New, Admission::Overflow, Admission::Existing]);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut f = Family::new("e", "h\\elp\nx", FamilyKind::Gauge, vec!["v".into()], vec![], 10);
        let (id, _) = f.series(&labels(&["a\"b\\c\nd"]));
        f.values_mut(id).value = 0.25;
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.contains("# HELP e h\\\\elp\\nx\n"), "{out}");
        assert!(out.contains("e{v=\"a\\\"b\\\\c\\nd\"} 0.25\n"), "{out}");
    }
}
