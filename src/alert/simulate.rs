//! A rule set run over recorded events on event time, off the pipeline: the
//! engine, the tiers' timing and inhibition as in a live run, with the
//! notifications kept instead of sent. `replay` compares two rule sets with it;
//! tests bound how many notifications an hour of traffic makes.

use std::collections::BTreeMap;
use std::time::Duration;

use super::clock::EventClock;
use super::engine::{Engine, EngineError};
use super::notify::{Dispatcher, Notification, Policy};
use super::rule::{Rule, Tier};
use crate::event::Event;

/// Groups per rule in a simulation, as the `alerts` step's default.
const MAX_GROUPS: usize = 1000;
/// Notifications a report keeps to show.
const MAX_KEPT: usize = 10_000;

/// What an alert (a rule and its group's labels) did over a simulation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AlertHistory {
    /// Evaluations at which it started firing.
    pub fired: u64,
    /// Times it resolved.
    pub resolved: u64,
    /// Whether it was firing at the end.
    pub firing_at_end: bool,
}

/// An alert's identity across two simulations: the rule, its tier and group labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct AlertKey {
    pub rule: String,
    pub tier: Tier,
    pub group: Vec<(String, String)>,
}

impl std::fmt::Display for AlertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self.group.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        write!(f, "{} [{}] {{{}}}", self.rule, self.tier.as_str(), labels.join(", "))
    }
}

#[derive(Debug, Default)]
pub struct SimulationReport {
    /// Notifications per tier (a warning group or a digest counts once).
    pub notifications: BTreeMap<Tier, u64>,
    pub alerts: BTreeMap<AlertKey, AlertHistory>,
    /// Evaluations made.
    pub evaluations: u64,
    /// Event time covered (first to last event), ms.
    pub span_ms: i64,
    /// The notifications, in order, up to `MAX_KEPT` (the counts above cover all).
    pub sent: Vec<Notification>,
}

pub struct Simulation {
    engine: Engine,
    dispatcher: Dispatcher,
    clock: EventClock,
    first_ms: Option<i64>,
    report: SimulationReport,
}

impl Simulation {
    pub fn new(rules: Vec<Rule>, policy: Policy, interval: Duration) -> Result<Simulation, EngineError> {
        Ok(Simulation {
            engine: Engine::new(rules, MAX_GROUPS)?,
            dispatcher: Dispatcher::new(policy),
            clock: EventClock::new(interval),
            first_ms: None,
            report: SimulationReport::default(),
        })
    }

    /// Feeds events in their order; the rules are evaluated at each interval of
    /// event time they cross.
    pub fn feed(&mut self, events: &[Event]) {
        if self.first_ms.is_none() {
            self.first_ms = events.first().map(Event::timestamp_ms);
        }
        let Simulation { engine, dispatcher, clock, report, .. } = self;
        let engine = std::cell::RefCell::new(engine);
        clock.advance(
            events,
            |run, now| engine.borrow_mut().feed(run, now),
            |tick| evaluate(&mut engine.borrow_mut(), dispatcher, report, tick, false),
        );
    }

    /// Judges what the last events hold, flushes held warnings and the digest,
    /// and reports.
    pub fn finish(mut self) -> SimulationReport {
        let Simulation { engine, dispatcher, clock, report, first_ms } = &mut self;
        if let Some(now) = clock.now_ms() {
            clock.tick_until(now, &mut |tick| evaluate(engine, dispatcher, report, tick, false));
            evaluate(engine, dispatcher, report, now, true);
            report.span_ms = now - first_ms.unwrap_or(now);
        }
        std::mem::take(&mut self.report)
    }
}

fn evaluate(
    engine: &mut Engine,
    dispatcher: &mut Dispatcher,
    report: &mut SimulationReport,
    now: i64,
    last: bool,
) {
    report.evaluations += 1;
    let evaluation = engine.evaluate(now);
    for alert in &evaluation.firing {
        let history = report.alerts.entry(key_of(alert)).or_default();
        if !history.firing_at_end {
            history.fired += 1;
            history.firing_at_end = true;
        }
    }
    for alert in &evaluation.resolved {
        let history = report.alerts.entry(key_of(alert)).or_default();
        history.resolved += 1;
        history.firing_at_end = false;
    }
    let mut out = dispatcher.step(evaluation, now);
    if last {
        out.extend(dispatcher.flush());
    }
    for notification in out {
        *report.notifications.entry(notification.tier).or_default() += 1;
        if report.sent.len() < MAX_KEPT {
            report.sent.push(notification);
        }
    }
}

fn key_of(alert: &super::engine::Alert) -> AlertKey {
    AlertKey { rule: alert.rule.clone(), tier: alert.tier, group: alert.group.clone() }
}
