//! The registry of the pipeline's own metrics and their exposition on `/metrics`.
//!
//! It knows no component: each one registers its families here when it is built
//! (`synaptic_telemetry_` is prefixed to every name) and keeps the handles it
//! resolves, once, not per event. A family registered twice — every step asks for
//! `step_events_total` — is the same family. Families rendered by their owner (the
//! metrics step's) are added as exports.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

const PREFIX: &str = "synaptic_telemetry";

#[derive(Default)]
pub struct Telemetry {
    registry: Registry,
    /// Every family registered so far, by full name, for the second registration.
    families: Mutex<HashMap<String, Box<dyn Any + Send>>>,
    exports: Mutex<Vec<Arc<dyn MetricExport>>>,
}

/// Metric families rendered in the Prometheus text format by their owner.
pub(crate) trait MetricExport: Send + Sync {
    fn render(&self, out: &mut String);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Telemetry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The family called `name` (without the prefix): the one registered before, or
    /// a new one made by `make` from the full name. Names and types are fixed in the
    /// code, so a clash (the same name with another type) is a programming error.
    fn family<C>(&self, name: &str, make: impl FnOnce(String) -> prometheus::Result<C>) -> C
    where
        C: Collector + Clone + Send + 'static,
    {
        let full = format!("{PREFIX}_{name}");
        let mut families = lock(&self.families);
        if let Some(existing) = families.get(&full) {
            match existing.downcast_ref::<C>() {
                Some(family) => return family.clone(),
                None => unreachable!("metric {full} registered twice with different types"),
            }
        }
        let family =
            make(full.clone()).unwrap_or_else(|e| unreachable!("static metric definition {full}: {e}"));
        if let Err(e) = self.registry.register(Box::new(family.clone())) {
            unreachable!("metric registration {full}: {e}");
        }
        families.insert(full, Box::new(family.clone()));
        family
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.family(name, |full| IntCounter::with_opts(Opts::new(full, help)))
    }

    pub(crate) fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.family(name, |full| IntCounterVec::new(Opts::new(full, help), labels))
    }

    pub(crate) fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.family(name, |full| IntGauge::with_opts(Opts::new(full, help)))
    }

    pub(crate) fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.family(name, |full| IntGaugeVec::new(Opts::new(full, help), labels))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        self.family(name, |full| {
            Histogram::with_opts(HistogramOpts::new(full, help).buckets(buckets.to_vec()))
        })
    }

    pub(crate) fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> HistogramVec {
        self.family(name, |full| {
            HistogramVec::new(HistogramOpts::new(full, help).buckets(buckets.to_vec()), labels)
        })
    }

    /// The non-zero values of the gauge family `name` (without the prefix), by the
    /// value of its `label`: for `/ready`'s list of degraded sinks and the degrade
    /// step's pressure. Reads that family alone, not the whole registry.
    pub(crate) fn nonzero_gauges(&self, name: &str, label: &str) -> Vec<(String, i64)> {
        let full = format!("{PREFIX}_{name}");
        let family = lock(&self.families).get(&full).and_then(|f| f.downcast_ref::<IntGaugeVec>().cloned());
        let Some(family) = family else { return Vec::new() };
        let mut out = Vec::new();
        for metric in family.collect().iter().flat_map(|f| f.get_metric()) {
            let value = metric.get_gauge().get_value() as i64;
            let key = metric.get_label().iter().find(|l| l.name() == label).map(|l| l.value().to_string());
            if let (Some(key), true) = (key, value != 0) {
                out.push((key, value));
            }
        }
        out
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8(out).unwrap_or_default();
        for export in lock(&self.exports).iter() {
            export.render(&mut text);
        }
        text
    }

    /// Adds metrics rendered by someone else (the metrics step's families) to
    /// `/metrics`.
    pub(crate) fn add_export(&self, export: Arc<dyn MetricExport>) {
        lock(&self.exports).push(export);
    }
}

/// One series of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (what `/metrics` serves). Lines it cannot
/// read are skipped; label values are taken as written (escapes kept).
pub fn parse_exposition(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap_or(rest))),
            None => (head, BTreeMap::new()),
        };
        out.push(Series { name: name.to_string(), labels, value });
    }
    out
}

/// `a="x",b="y"`: quoted values may hold commas and escaped quotes.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let bytes = after.as_bytes();
        let mut end = 0;
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        labels.insert(name.trim_start_matches(',').trim().to_string(), after[..end].to_string());
        rest = after.get(end + 1..).unwrap_or("");
    }
    labels
}
