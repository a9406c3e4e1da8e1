//! Alerts: receivers that deliver them. The rule format and the evaluator are
//! not built yet; `alertmanager` posts alerts to Prometheus Alertmanager's v2 API.

pub mod alertmanager;
