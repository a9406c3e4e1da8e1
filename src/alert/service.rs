//! The running alert engine: the `alerts` step feeds events into the engine; an
//! evaluation task evaluates it on a timer and hands notifications to the
//! receivers' tasks; a watcher reloads the rules when their files change.
//!
//! Reload works as for plugins: the new set is read and checked on the watcher's
//! thread, off the hot path; an invalid set is logged with every error (file:line:col)
//! and the rules in service keep running; a valid one is swapped in at the next
//! evaluation, keeping the state of the rules that did not change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::clock::EventClock;
use super::config::{AlertMetrics, AlertsConfig, ClockMode};
use super::engine::{load_checked, Engine, Evaluation};
use super::notify::{Dispatcher, Notification};
use super::receiver::{ReceiverCounters, ReceiverTask};
use super::rule::{self, Rule, Tier};
use crate::event::Batch;
use crate::plugin::watch::Watcher;
use crate::step::{Service, Step};
use crate::telemetry::Telemetry;

/// How long the rules must be quiet after a change before they are read.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);
/// Rules are also re-read this often, in case a change notification is missed.
const RELOAD_POLL: Duration = Duration::from_secs(2);

type SharedEngine = Arc<Mutex<Engine>>;

fn lock(engine: &SharedEngine) -> MutexGuard<'_, Engine> {
    // A panic while holding the lock leaves state that is still usable counts.
    engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct AlertService {
    engine: SharedEngine,
    evaluator_state: SharedEvaluator,
    /// `clock: event`: the clock the step advances; `None` on the wall clock.
    event_clock: Option<Arc<Mutex<EventClock>>>,
    stop: CancellationToken,
    evaluator: JoinHandle<()>,
    receivers: Vec<JoinHandle<()>>,
    _watcher: Option<Watcher>,
    flush_timeout: Duration,
}

impl AlertService {
    /// Starts the receivers, the evaluation task and (if enabled) the rule watcher.
    /// Must run inside the Tokio runtime.
    pub(crate) fn start(config: &AlertsConfig, telemetry: &Telemetry) -> anyhow::Result<AlertService> {
        let metrics = AlertMetrics::register(telemetry);
        let engine =
            Engine::new(config.rules.clone(), config.max_groups).context("building the alert rules")?;
        tracing::info!(rules = config.rules.len(), path = %config.rules_path.display(), "alert rules loaded");
        let engine = Arc::new(Mutex::new(engine));
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for (name, receiver, delivery) in &config.receivers {
            let (tx, rx) = mpsc::unbounded_channel();
            let counters = ReceiverCounters {
                sent: metrics.notifications.with_label_values(&[name, "sent"]),
                retries: metrics.notifications.with_label_values(&[name, "retried"]),
                circuit: telemetry
                    .gauge_vec(
                        "receiver_circuit_state",
                        "Circuit breaker state by alert receiver: 0 closed, 1 open, 2 half-open",
                        &["receiver"],
                    )
                    .with_label_values(&[name]),
            };
            let task = ReceiverTask::new(name, receiver, delivery, rx, counters)
                .with_context(|| format!("starting alert receiver `{name}`"))?;
            receivers.push(tokio::spawn(task.run()));
            senders.push(tx);
        }
        let (reload_tx, reload_rx) = std::sync::mpsc::channel::<Vec<Rule>>();
        let watcher = match config.reload {
            true => Some(watch_rules(&config.rules_path, reload_tx, metrics.clone())?),
            false => None,
        };
        let stop = CancellationToken::new();
        let evaluation = Arc::new(Mutex::new(Evaluator {
            engine: engine.clone(),
            dispatcher: Dispatcher::new(config.policy.clone()),
            senders,
            reloads: reload_rx,
            metrics,
            inhibited_reported: 0,
            refused_reported: 0,
        }));
        let event_clock = match config.clock {
            ClockMode::Wall => None,
            ClockMode::Event => Some(Arc::new(Mutex::new(EventClock::new(config.evaluation_interval)))),
        };
        let evaluator = tokio::spawn(run_evaluator(
            evaluation.clone(),
            event_clock.clone(),
            config.evaluation_interval,
            stop.clone(),
        ));
        Ok(AlertService {
            engine,
            evaluator_state: evaluation,
            event_clock,
            stop,
            evaluator,
            receivers,
            _watcher: watcher,
            flush_timeout: config.flush_timeout,
        })
    }

    /// The pipeline step that feeds this engine.
    pub(crate) fn step(&self, name: &str) -> AlertStep {
        AlertStep {
            name: name.to_string(),
            engine: self.engine.clone(),
            event_time: self.event_clock.clone().map(|clock| (clock, self.evaluator_state.clone())),
        }
    }

    /// Evaluates one last time, sends what is held (warnings, the digest) and
    /// gives the receivers `flush_timeout` to deliver.
    pub(crate) async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.evaluator.await;
        let deliver = async {
            for r in self.receivers {
                let _ = r.await;
            }
        };
        if tokio::time::timeout(self.flush_timeout, deliver).await.is_err() {
            tracing::error!(timeout = ?self.flush_timeout, "alert receivers did not deliver everything before the flush timeout");
        }
    }
}

impl Service for AlertService {
    fn shutdown(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(AlertService::shutdown(*self))
    }
}

struct Evaluator {
    engine: SharedEngine,
    dispatcher: Dispatcher,
    senders: Vec<mpsc::UnboundedSender<Arc<Notification>>>,
    reloads: std::sync::mpsc::Receiver<Vec<Rule>>,
    metrics: AlertMetrics,
    inhibited_reported: u64,
    refused_reported: u64,
}

type SharedEvaluator = Arc<Mutex<Evaluator>>;

fn lock_evaluator(evaluator: &SharedEvaluator) -> MutexGuard<'_, Evaluator> {
    evaluator.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On the wall clock, evaluates every `interval`; on event time the step
/// evaluates as the events' clock crosses each interval, and this task only
/// makes the last evaluation, at the last event's time, when the run stops.
async fn run_evaluator(
    evaluator: SharedEvaluator,
    event_clock: Option<Arc<Mutex<EventClock>>>,
    interval: Duration,
    stop: CancellationToken,
) {
    match &event_clock {
        None => {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => lock_evaluator(&evaluator).round(crate::clock::now_ms(), false),
                    _ = stop.cancelled() => break,
                }
            }
            lock_evaluator(&evaluator).round(crate::clock::now_ms(), true);
        }
        Some(clock) => {
            stop.cancelled().await;
            let mut clock = clock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut evaluator = lock_evaluator(&evaluator);
            if let Some(now) = clock.now_ms() {
                clock.tick_until(now, &mut |tick| evaluator.round(tick, false));
            }
            // No event at all: nothing to judge, only what is held to send.
            let last = clock.now_ms().unwrap_or_else(crate::clock::now_ms);
            evaluator.round(last, true);
        }
    }
}

impl Evaluator {
    fn round(&mut self, now: i64, last: bool) {
        let mut retired = Vec::new();
        while let Ok(rules) = self.reloads.try_recv() {
            let count = rules.len();
            match lock(&self.engine).replace_rules(rules, now) {
                Ok(gone) => {
                    retired.extend(gone);
                    self.metrics.reloads.with_label_values(&["applied"]).inc();
                    tracing::info!(rules = count, "alert rules reloaded");
                    crate::audit::record(
                        "local",
                        "rules.reloaded",
                        "alert rules",
                        "ok",
                        serde_json::json!({"rules": count}),
                    );
                }
                Err(e) => {
                    self.metrics.reloads.with_label_values(&["rejected"]).inc();
                    tracing::error!(error = %e, "alert rules rejected; the rules in service keep running");
                    crate::audit::record(
                        "local",
                        "rules.rejected",
                        "alert rules",
                        "rejected",
                        serde_json::json!({"error": e.to_string()}),
                    );
                }
            }
        }
        let (mut evaluation, refused) = {
            let mut engine = lock(&self.engine);
            (engine.evaluate(now), engine.groups_refused)
        };
        evaluation.resolved.extend(retired);
        self.metrics.groups_refused.inc_by(refused.saturating_sub(self.refused_reported));
        self.refused_reported = refused;
        self.report_firing(&evaluation);
        super::board::publish(&evaluation.firing, now);
        let mut out = self.dispatcher.step(evaluation, now);
        if last {
            out.extend(self.dispatcher.flush());
        }
        self.metrics
            .inhibited
            .inc_by(self.dispatcher.inhibited_total.saturating_sub(self.inhibited_reported));
        self.inhibited_reported = self.dispatcher.inhibited_total;
        for notification in out {
            let notification = Arc::new(notification);
            for tx in &self.senders {
                // A receiver task only ends after its sender is dropped.
                let _ = tx.send(notification.clone());
            }
        }
    }

    fn report_firing(&self, evaluation: &Evaluation) {
        for tier in [Tier::Critical, Tier::Warning, Tier::Info] {
            let n = evaluation.firing.iter().filter(|a| a.tier == tier).count();
            self.metrics.firing.with_label_values(&[tier.as_str()]).set(n as i64);
        }
    }
}

/// Watches the rules; a changed, valid set goes to the evaluator.
fn watch_rules(
    path: &Path,
    updates: std::sync::mpsc::Sender<Vec<Rule>>,
    metrics: AlertMetrics,
) -> anyhow::Result<Watcher> {
    let dir: PathBuf = match path.is_dir() {
        true => path.to_path_buf(),
        false => path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let path = path.to_path_buf();
    let mut last = rules_fingerprint(&path);
    let rescan = move || {
        let now = rules_fingerprint(&path);
        if now == last {
            return;
        }
        last = now;
        match load_checked(&path) {
            Ok(rules) => {
                let _ = updates.send(rules);
            }
            Err(errors) => {
                metrics.reloads.with_label_values(&["rejected"]).inc();
                for e in &errors.0 {
                    tracing::error!(error = %e, "alert rule error");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "alert rules rejected; the rules in service keep running"
                );
                let first: Vec<String> = errors.0.iter().take(5).map(ToString::to_string).collect();
                crate::audit::record(
                    "local",
                    "rules.rejected",
                    &path.display().to_string(),
                    "rejected",
                    serde_json::json!({"errors": errors.0.len(), "first": first}),
                );
            }
        }
    };
    Watcher::spawn("alert-rules-watch", vec![dir], RELOAD_DEBOUNCE, RELOAD_POLL, rescan)
        .context("starting the alert rule watcher")
}

/// The names and contents of the rule files, hashed: a reload happens only when
/// this changes.
fn rules_fingerprint(path: &Path) -> String {
    let mut all = Vec::new();
    for file in rule::rule_files(path).unwrap_or_default() {
        all.extend_from_slice(file.display().to_string().as_bytes());
        all.push(0);
        all.extend_from_slice(
            &crate::files::read_bounded(&file, crate::files::MAX_CONFIG_BYTES).unwrap_or_default(),
        );
        all.push(0);
    }
    crate::plugin::content_hash(&all)
}

/// The pipeline step: feeds each batch to the engine; events pass unchanged.
/// On event time it also moves the clock and evaluates at the ticks crossed
/// (batches reach this step one at a time, in input order).
pub(crate) struct AlertStep {
    name: String,
    engine: SharedEngine,
    event_time: Option<(Arc<Mutex<EventClock>>, SharedEvaluator)>,
}

impl Step for AlertStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, batch: &mut Batch) {
        let Some((clock, evaluator)) = &self.event_time else {
            lock(&self.engine).feed(&batch.events, crate::clock::now_ms());
            return;
        };
        let mut clock = clock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clock.advance(
            &batch.events,
            |run, now| lock(&self.engine).feed(run, now),
            |tick| lock_evaluator(evaluator).round(tick, false),
        );
    }
}
