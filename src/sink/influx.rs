//! The `influxdb` output: events as InfluxDB 1.x points, written in line protocol
//! to `/write` (database `codex_metrics` by default, as the spec's custom exporter
//! names it), one gzip-compressed request per batch, acknowledged on HTTP 204.
//!
//! A point per event: measurement = event type; tags = component, severity and
//! the configured `tag_fields`; fields = every number and boolean in `data`
//! (nested keys joined with dots), or `count=1i` when there is none; time = the
//! event's timestamp in milliseconds plus a sub-millisecond offset taken from a
//! hash of its event id, in nanoseconds. InfluxDB keeps one point per series and
//! time, so two events of one millisecond must not share a time, while a replayed
//! event must: it then writes the same point again, stored once, and at-least-once
//! delivery doubles nothing.
//!
//! With `rollups`, the sink keeps the spec's metric retention in InfluxDB itself:
//! before its first write it creates the database and three retention policies —
//! `raw` (the default, where points are written; 7 days), `hourly` (30 days) and
//! `daily` (365 days) — and two continuous queries that write, per series (every
//! tag kept), the mean, min, max and count of every field per hour into `hourly`
//! and per day into `daily`. Existing policies are altered to the configured
//! durations and continuous queries replaced, so a restart with new durations
//! applies them. A failed set-up is retried like a failed write: no point is
//! written before it succeeded.

use std::fmt::Write;

use serde_json::Value;

use super::{Encoded, SinkError, SinkKind};
use crate::decode::secret::Secret;
use crate::decode::{Diagnostics, MapReader};
use crate::fields::{parse_field, FieldRef};
use crate::tls::{describe_http_error, HttpEndpoint};

#[derive(Debug, Clone)]
pub struct InfluxSinkConfig {
    /// `http://host:8086` (points are written to `{url}/write`), with its timeout,
    /// TLS settings and headers.
    pub(crate) endpoint: HttpEndpoint,
    pub(crate) database: String,
    pub(crate) retention_policy: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    /// Fields written as tags besides component and severity (`data.namespace`).
    pub(crate) tag_fields: Vec<String>,
    pub(crate) gzip: bool,
    /// Retention policies and continuous queries set up before the first write.
    pub(crate) rollups: Option<Rollups>,
}

/// How long each resolution is kept (the spec's metrics retention by default).
#[derive(Debug, Clone, PartialEq)]
pub struct Rollups {
    pub(crate) raw: std::time::Duration,
    pub(crate) hourly: std::time::Duration,
    pub(crate) daily: std::time::Duration,
}

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

impl Default for Rollups {
    fn default() -> Self {
        Rollups { raw: 7 * DAY, hourly: 30 * DAY, daily: 365 * DAY }
    }
}

impl Rollups {
    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Option<Rollups>> {
        let pos = map.key_pos("rollups");
        let node = map.node("rollups")?;
        let mut rollups = MapReader::new(node, "influxdb sink rollups", cx)?;
        let defaults = Rollups::default();
        let found = Rollups {
            raw: rollups.or("raw", defaults.raw, cx),
            hourly: rollups.or("hourly", defaults.hourly, cx),
            daily: rollups.or("daily", defaults.daily, cx),
        };
        rollups.finish(cx);
        for (name, age) in [("raw", found.raw), ("hourly", found.hourly), ("daily", found.daily)] {
            // InfluxDB keeps whole hours, at least one.
            if age.as_secs() < 3600 || age.as_secs() % 3600 != 0 {
                cx.error(
                    pos,
                    format!("influxdb sink rollups: `{name}` must be a whole number of hours, at least 1h"),
                );
            }
        }
        if found.raw < 2 * DAY {
            cx.error(pos, "influxdb sink rollups: `raw` must be at least 2d: the daily rollup reads the last two days of raw points");
        }
        Some(Some(found))
    }

    /// The statements that set the database up, in order: each with the statement
    /// to run instead when InfluxDB answers that the thing already exists.
    fn statements(&self, db: &str) -> Vec<(String, Option<String>)> {
        let db = quote_ident(db);
        let hours = |age: std::time::Duration| age.as_secs() / 3600;
        let mut statements = vec![(format!("CREATE DATABASE {db}"), None)];
        for (name, age, default) in
            [("raw", self.raw, " DEFAULT"), ("hourly", self.hourly, ""), ("daily", self.daily, "")]
        {
            statements.push((
                format!(
                    "CREATE RETENTION POLICY \"{name}\" ON {db} DURATION {}h REPLICATION 1{default}",
                    hours(age)
                ),
                Some(format!("ALTER RETENTION POLICY \"{name}\" ON {db} DURATION {}h{default}", hours(age))),
            ));
        }
        for (name, into, every, window, period) in
            [("rollup_hourly", "hourly", "10m", "2h", "1h"), ("rollup_daily", "daily", "1h", "2d", "1d")]
        {
            let create = format!(
                "CREATE CONTINUOUS QUERY \"{name}\" ON {db} RESAMPLE EVERY {every} FOR {window} BEGIN {} END",
                rollup_select(&db, into, period)
            );
            // Replacing an existing query: drop it, then create (both in one request).
            statements
                .push((create.clone(), Some(format!("DROP CONTINUOUS QUERY \"{name}\" ON {db}; {create}"))));
        }
        statements
    }
}

/// The rollup of every measurement of `raw` into the policy `into`, per `period`
/// and per series: the mean, min, max and count of every field.
fn rollup_select(db: &str, into: &str, period: &str) -> String {
    format!(
        "SELECT mean(*), min(*), max(*), count(*) INTO {db}.\"{into}\".:MEASUREMENT FROM {db}.\"raw\"./.*/ GROUP BY time({period}), *"
    )
}

/// An InfluxQL identifier, double-quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

impl SinkKind for InfluxSinkConfig {
    type Output = InfluxOutput;

    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let endpoint = HttpEndpoint::decode(map, "influxdb sink", "url", cx);
        let tag_fields: Vec<String> = map.or("tag_fields", Vec::new(), cx);
        for field in &tag_fields {
            if let Err(e) = parse_field(field) {
                cx.error(map.key_pos("tag_fields"), e);
            }
        }
        let rollups = Rollups::decode(map, cx).flatten();
        let retention_policy: Option<String> = map.optional("retention_policy", cx);
        if rollups.is_some() && retention_policy.is_some() {
            cx.error(
                map.key_pos("retention_policy"),
                "influxdb sink: with `rollups`, points are written to the policy `raw`; remove `retention_policy`",
            );
        }
        Some(InfluxSinkConfig {
            endpoint: endpoint?,
            database: map.or("database", "codex_metrics".to_string(), cx),
            retention_policy,
            rollups,
            username: map.optional("username", cx),
            password: map.optional("password", cx),
            tag_fields,
            gzip: map.or("gzip", true, cx),
        })
    }

    fn describe(&self) -> String {
        format!("InfluxDB {} database {}", self.endpoint.shown_url(), self.database)
    }

    async fn open(&self, _cx: &super::OpenContext<'_>) -> Result<InfluxOutput, SinkError> {
        InfluxOutput::open(self)
    }
}

impl super::Write for InfluxOutput {
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
        self.write(&batch.lines()).await
    }
}

pub(crate) struct InfluxOutput {
    client: reqwest::Client,
    endpoint: HttpEndpoint,
    /// The write URL, and the same for messages (credentials stripped).
    url: String,
    shown_url: String,
    auth: Option<(String, Option<Secret>)>,
    tag_fields: Vec<(String, FieldRef)>,
    gzip: bool,
    body: String,
    /// Set-up still to run before the first write (rollups).
    setup: Option<Setup>,
}

struct Setup {
    /// `{url}/query`.
    url: String,
    statements: Vec<(String, Option<String>)>,
}

impl InfluxOutput {
    pub(crate) fn open(config: &InfluxSinkConfig) -> Result<InfluxOutput, SinkError> {
        let client = config
            .endpoint
            .client("influxdb sink")
            .map_err(|e| SinkError::Influx { url: config.endpoint.shown_url(), message: e.to_string() })?;
        let mut url = format!(
            "{}/write?db={}&precision=ns",
            config.endpoint.url.trim_end_matches('/'),
            crate::query::escape(&config.database)
        );
        let policy = if config.rollups.is_some() { Some("raw") } else { config.retention_policy.as_deref() };
        if let Some(rp) = policy {
            let _ = write!(url, "&rp={}", crate::query::escape(rp));
        }
        let setup = config.rollups.as_ref().map(|r| Setup {
            url: format!("{}/query", config.endpoint.url.trim_end_matches('/')),
            statements: r.statements(&config.database),
        });
        // Checked at config load; a field that does not parse is left out.
        let tag_fields = config
            .tag_fields
            .iter()
            .filter_map(|f| parse_field(f).ok().map(|r| (f.rsplit('.').next().unwrap_or(f).to_string(), r)))
            .collect();
        Ok(InfluxOutput {
            client,
            endpoint: config.endpoint.clone(),
            shown_url: crate::decode::secret::display_url(&url),
            url,
            auth: config.username.clone().map(|u| (u, config.password.clone())),
            tag_fields,
            gzip: config.gzip,
            body: String::new(),
            setup,
        })
    }

    /// Runs the set-up statements (see the module's doc); `Ok` once all succeeded.
    async fn set_up(&mut self) -> Result<(), SinkError> {
        let Some(setup) = &self.setup else { return Ok(()) };
        let error = |message: String| SinkError::Influx { url: self.shown_url.clone(), message };
        for (statement, instead) in &setup.statements {
            let mut answer = self.query(&setup.url, statement).await.map_err(error)?;
            if let (Some(problem), Some(instead)) = (&answer, instead) {
                if problem.contains("already exists") {
                    answer = self.query(&setup.url, instead).await.map_err(error)?;
                }
            }
            if let Some(problem) = answer {
                return Err(error(format!("set-up `{statement}`: {problem}")));
            }
        }
        tracing::info!(url = %self.shown_url, "InfluxDB retention policies and rollups in place");
        self.setup = None;
        Ok(())
    }

    /// One InfluxQL request: `Ok(None)` when every statement succeeded, `Ok(Some)`
    /// with InfluxDB's error for a statement it refused, `Err` when the request
    /// itself failed.
    async fn query(&self, url: &str, statement: &str) -> Result<Option<String>, String> {
        let mut request = self.endpoint.with_headers(self.client.post(url)).form(&[("q", statement)]);
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, password.as_ref().map(Secret::expose));
        }
        let response =
            request.send().await.map_err(|e| format!("POST /query: {}", describe_http_error(e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("POST /query: {}", describe_http_error(e)))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let refused = answer["results"]
            .as_array()
            .and_then(|results| results.iter().find_map(|r| r["error"].as_str().map(str::to_string)));
        match (status.is_success(), refused, answer["error"].as_str()) {
            (true, refused, _) => Ok(refused),
            (false, _, Some(problem)) => Err(format!("HTTP {status}: {problem}")),
            (false, _, None) => {
                Err(format!("HTTP {status}: {}", text.trim().chars().take(200).collect::<String>()))
            }
        }
    }

    pub(crate) async fn write(&mut self, lines: &[&[u8]]) -> Result<(), SinkError> {
        self.set_up().await?;
        self.body.clear();
        for line in lines {
            // Lines are events the pipeline validated as JSON objects.
            if let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(line) {
                point(&event, &self.tag_fields, &mut self.body);
            }
        }
        if self.body.is_empty() {
            return Ok(());
        }
        let error = |message: String| SinkError::Influx { url: self.shown_url.clone(), message };
        let mut request = self.endpoint.with_headers(self.client.post(&self.url));
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, password.as_ref().map(Secret::expose));
        }
        let body = if self.gzip {
            request = request.header("content-encoding", "gzip");
            super::gzip(self.body.as_bytes()).map_err(|e| error(format!("gzip: {e}")))?
        } else {
            self.body.as_bytes().to_vec()
        };
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| error(format!("POST: {}", describe_http_error(e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = super::response_excerpt(response).await;
        if status.as_u16() == 400 {
            // A point InfluxDB refuses (a field whose type changed) is refused
            // again on retry; the rest of the batch was written.
            tracing::error!(url = %self.shown_url, %status, response = %text.trim(), "InfluxDB refused some points; not retried");
            return Ok(());
        }
        Err(error(format!("HTTP {status}: {}", text.trim())))
    }
}

/// Appends one line-protocol point for the event.
fn point(event: &serde_json::Map<String, Value>, tag_fields: &[(String, FieldRef)], out: &mut String) {
    let text = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
    let Some(timestamp) = event.get("timestamp").and_then(Value::as_i64) else { return };
    escape(text("event_type"), EscapeAs::Measurement, out);
    let mut tags: Vec<(&str, String)> =
        vec![("component", text("component").into()), ("severity", text("severity").into())];
    for (name, field) in tag_fields {
        if let Some(value) = lookup(event, field) {
            tags.push((name, value));
        }
    }
    tags.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in tags.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(',');
        escape(name, EscapeAs::Key, out);
        out.push('=');
        escape(value, EscapeAs::Key, out);
    }
    out.push(' ');
    let fields_start = out.len();
    if let Some(Value::Object(data)) = event.get("data") {
        fields("", data, out);
    }
    if out.len() == fields_start {
        out.push_str("count=1i");
    } else if out.ends_with(',') {
        out.pop();
    }
    let offset = fnv1a(text("event_id").as_bytes()) % 1_000_000;
    let _ = writeln!(out, " {}", timestamp.saturating_mul(1_000_000).saturating_add(offset as i64));
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn fields(prefix: &str, object: &serde_json::Map<String, Value>, out: &mut String) {
    for (key, value) in object {
        let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Object(inner) => fields(&key, inner, out),
            Value::Bool(b) => {
                escape(&key, EscapeAs::Key, out);
                let _ = write!(out, "={b},");
            }
            Value::Number(n) => {
                escape(&key, EscapeAs::Key, out);
                // Integers as floats: a field that is 3 in one event and 2.5 in the
                // next must keep one type, or InfluxDB refuses the second.
                let _ = write!(out, "={},", n.as_f64().unwrap_or(0.0));
            }
            _ => {}
        }
    }
}

fn lookup(event: &serde_json::Map<String, Value>, field: &FieldRef) -> Option<String> {
    let value = match field {
        FieldRef::EventType => event.get("event_type"),
        FieldRef::Component => event.get("component"),
        FieldRef::Severity => event.get("severity"),
        FieldRef::EventId => event.get("event_id"),
        FieldRef::In(section, path) => {
            path.iter().try_fold(event.get(section.key())?, |v, k| v.as_object()?.get(k))
        }
    }?;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum EscapeAs {
    Measurement,
    Key,
}

/// Line protocol escaping: commas and spaces everywhere, `=` in tag keys/values
/// and field keys; newlines cannot be escaped and become spaces.
fn escape(text: &str, how: EscapeAs, out: &mut String) {
    for c in text.chars() {
        match c {
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '=' if matches!(how, EscapeAs::Key) => out.push_str("\\="),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push_str("\\ "),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_line_protocol_points() {
        let event: Value = serde_json::json!({
            "event_id": "e1", "timestamp": 1700000000123i64, "component": "memory bridge",
            "event_type": "memory.bridge.sync", "severity": "INFO",
            "data": {"namespace": "agents", "sync_duration_ms": 12, "ok": true, "nested": {"a,b": 2.5}, "note": "x"}
        });
        let Value::Object(event) = event else { unreachable!() };
        let tags = vec![("namespace".to_string(), parse_field("data.namespace").expect("field"))];
        let mut out = String::new();
        point(&event, &tags, &mut out);
        let offset = fnv1a(b"e1") % 1_000_000;
        assert_eq!(
            out,
            format!(
                "memory.bridge.sync,component=memory\\ bridge,namespace=agents,severity=INFO \
                 nested.a\\,b=2.5,ok=true,sync_duration_ms=12 {}\n",
                1_700_000_000_123_000_000 + offset
            )
        );
        let bare: Value =
            serde_json::json!({"timestamp": 5, "event_type": "x", "component": "c", "severity": "INFO"});
        let Value::Object(bare) = bare else { unreachable!() };
        out.clear();
        point(&bare, &[], &mut out);
        assert_eq!(
            out,
            format!("x,component=c,severity=INFO count=1i {}\n", 5_000_000 + fnv1a(b"") % 1_000_000)
        );
    }
}
