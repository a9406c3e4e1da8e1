//! Alerts: YAML rules in three tiers (critical, warning, info) evaluated on the
//! event stream, and their notifications.
//!
//! - `config` — the `alerts` step's config, its metrics, and how it is built;
//! - `rule` — the rule format (`rules/*.yaml`), strict, errors with file:line:col;
//! - `board` — the alerts firing now, for the HTTP API and the operators' views;
//! - `clock` — event time: evaluations at the ticks the events' timestamps cross;
//! - `window` — sliding windows over event time (count, rate, ratio, avg, max, quantiles);
//! - `engine` — per-rule, per-group state fed by events and evaluated on a timer:
//!   inactive → pending → firing → resolved;
//! - `notify` — tier timing (critical at once, warnings grouped, info in a daily
//!   digest), repeats and inhibition;
//! - `receiver` — Alertmanager, webhook, file and log receivers with outboxes and retries;
//! - `alertmanager` — Alertmanager's v2 API client;
//! - `service` — the running engine: the `alerts` step, the evaluation task, reload;
//! - `simulate` — a rule set over recorded events on event time, notifications
//!   counted instead of sent (replay, tests);
//! - `testing` — `synaptic-telemetry test rules` on a simulated clock.

pub mod alertmanager;
pub mod board;
pub mod clock;
mod config;
pub mod engine;
pub mod notify;
pub mod receiver;
pub mod rule;
pub mod service;
pub mod simulate;
pub mod testing;
pub mod window;

pub(crate) use config::AlertsConfig;

#[cfg(test)]
mod tests;
