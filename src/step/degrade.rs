//! `degrade`: graceful degradation under pressure. While a sink's buffer is fuller
//! than `buffer_fill`, or the Kafka consumer lag is above `consumer_lag`, events of
//! the low-priority types in `rates` are sampled down (the spec's high-volume types
//! first) and each kept one gets its `sample_rate` multiplied by the rate, so a
//! metrics step after this one still counts exactly after scaling. Security and
//! consensus events and anything at ERROR or above are never sampled down, whatever
//! `rates` says. The rates return when the pressure clears.
//!
//! The decision hashes the event id with a salt of its own, so it is independent of
//! a sampler's (the product of the two rates is the share kept), and the same on
//! every instance and every replay. Pressure is read from the pipeline's own
//! metrics at most once per `check_interval`; each change is logged once and shown
//! as `degraded` (0 or 1) on /metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use synaptic_plugin_sdk::sampling;

use super::{BuildContext, RunningStep, Step};
use crate::decode::yaml::NodeKind;
use crate::decode::{Diagnostics, MapReader};
use crate::event::{Batch, Event, Severity};
use crate::glob::Glob;
use crate::telemetry::Telemetry;

/// Types sampled down under pressure by default, and their rates: the spec's
/// high-volume types hardest, routine task traffic by half.
const DEFAULT_RATES: [(&str, f64); 4] =
    [("bridge.message", 0.1), ("swarm.iteration", 0.1), ("mesh.heartbeat", 0.1), ("task.*", 0.5)];
/// Never sampled down (besides ERROR and above).
const PROTECTED: [&str; 2] = ["security.*", "consensus.*"];
const SALT: &str = "degrade:";

#[derive(Debug, Clone)]
pub struct DegradeStepConfig {
    /// Pressure when any sink's buffer is fuller than this share.
    pub(crate) buffer_fill: f64,
    /// Pressure when the Kafka consumer lag (all partitions) is above this.
    pub(crate) consumer_lag: Option<u64>,
    pub(crate) rates: Vec<(String, f64)>,
    pub(crate) check_interval: Duration,
}

impl DegradeStepConfig {
    pub(crate) fn decode(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<Self> {
        let buffer_fill = map.or("buffer_fill", 0.8, cx);
        if !(0.0..=1.0).contains(&buffer_fill) {
            cx.error(map.key_pos("buffer_fill"), format!("{what}: buffer_fill must be between 0 and 1"));
        }
        let consumer_lag = match map.node("consumer_lag") {
            Some(n) if matches!(&n.kind, NodeKind::Scalar { text, .. } if text == "none") => None,
            Some(_) => map.optional::<u64>("consumer_lag", cx),
            None => Some(100_000),
        };
        let rates = match map.node("rates") {
            None => DEFAULT_RATES.iter().map(|(t, r)| (t.to_string(), *r)).collect(),
            Some(node) => {
                let NodeKind::Map(entries) = &node.kind else {
                    cx.error(node.pos, format!("{what}: rates must map event types to rates"));
                    return None;
                };
                let mut rates = Vec::new();
                for (key, value) in entries {
                    match crate::decode::Decode::decode(value, cx) {
                        Some(rate) if (0.0..=1.0).contains(&rate) => rates.push((key.name.clone(), rate)),
                        Some(_) => cx.error(
                            value.pos,
                            format!("{what}: the rate of `{}` must be between 0 and 1", key.name),
                        ),
                        None => {}
                    }
                }
                rates
            }
        };
        let check_interval = map.or("check_interval", Duration::from_secs(1), cx);
        Some(DegradeStepConfig { buffer_fill, consumer_lag, rates, check_interval })
    }

    pub(crate) fn build(&self, name: &str, cx: &mut BuildContext) -> RunningStep {
        let telemetry = cx.telemetry().clone();
        let active = telemetry.gauge("degraded", "1 while the degrade step samples low-priority events down");
        let step = DegradeStep {
            name: name.to_string(),
            rates: self.rates.iter().map(|(t, r)| (Glob::new(t), *r)).collect(),
            protected: PROTECTED.iter().map(|t| Glob::new(t)).collect(),
            buffer_fill_percent: (self.buffer_fill * 100.0).round() as i64,
            consumer_lag: self.consumer_lag,
            check_interval: self.check_interval,
            last_check: None,
            under_pressure: false,
            active,
            telemetry,
        };
        RunningStep::new(Box::new(step), cx.telemetry())
    }
}

pub(crate) struct DegradeStep {
    name: String,
    rates: Vec<(Glob, f64)>,
    protected: Vec<Glob>,
    buffer_fill_percent: i64,
    consumer_lag: Option<u64>,
    check_interval: Duration,
    last_check: Option<Instant>,
    under_pressure: bool,
    active: IntGauge,
    telemetry: Arc<Telemetry>,
}

impl DegradeStep {
    /// Re-reads the pressure when the last reading is older than the interval.
    fn check(&mut self) {
        if self.last_check.is_some_and(|at| at.elapsed() < self.check_interval) {
            return;
        }
        self.last_check = Some(Instant::now());
        let fullest =
            self.telemetry.nonzero_gauges("buffer_fill_percent", "sink").into_iter().max_by_key(|(_, v)| *v);
        let lag: i64 =
            self.telemetry.nonzero_gauges("kafka_consumer_lag", "partition").iter().map(|(_, v)| *v).sum();
        let full = fullest.as_ref().filter(|(_, fill)| *fill >= self.buffer_fill_percent);
        let lagging = self.consumer_lag.is_some_and(|bound| lag > 0 && lag as u64 > bound);
        let pressure = full.is_some() || lagging;
        if pressure != self.under_pressure {
            self.under_pressure = pressure;
            self.active.set(i64::from(pressure));
            match (pressure, full) {
                (true, Some((sink, fill))) => {
                    tracing::warn!(step = %self.name, sink = %sink, fill_percent = fill, lag, "under pressure: sampling low-priority events down")
                }
                (true, None) => {
                    tracing::warn!(step = %self.name, lag, "under pressure (consumer lag): sampling low-priority events down")
                }
                (false, _) => tracing::info!(step = %self.name, "pressure cleared: sampling rates restored"),
            }
        }
    }

    /// The rate this event is sampled at under pressure (1: kept whole).
    fn rate(&self, event: &Event) -> f64 {
        let event_type = event.event_type();
        if event.severity() >= Severity::Error || self.protected.iter().any(|g| g.matches(event_type)) {
            return 1.0;
        }
        self.rates.iter().find(|(g, _)| g.matches(event_type)).map_or(1.0, |(_, r)| *r)
    }
}

impl Step for DegradeStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, batch: &mut Batch) {
        self.check();
        if !self.under_pressure {
            return;
        }
        let before = batch.events.len();
        let mut key = String::new();
        batch.events.retain_mut(|event| {
            let rate = self.rate(event);
            if rate >= 1.0 {
                return true;
            }
            key.clear();
            key.push_str(SALT);
            key.push_str(event.event_id());
            if !sampling::keep(&key, rate) {
                return false;
            }
            let stamped = event.sample_rate().filter(|r| *r > 0.0 && *r <= 1.0).unwrap_or(1.0) * rate;
            event.set_sample_rate(stamped);
            true
        });
        batch.dropped += before - batch.events.len();
    }
}

#[cfg(test)]
mod tests;
