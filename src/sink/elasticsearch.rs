//! `elasticsearch`: events indexed through the `_bulk` API (NDJSON, gzip).
//!
//! Each event goes to the index its `index` pattern names — `{retention}` is its
//! `tags.retention` (or `unclassified`), `{date}` its UTC day as `YYYY.MM.DD` — with
//! `_id` = its `event_id`, so a replay overwrites instead of doubling.
//!
//! `_bulk` answers per item. Items stored (2xx) are done; items refused with 429
//! or 5xx are sent again alone, with backoff, until stored; items refused for what
//! they are (400: a mapping error, and the other 4xx) go to dead letter with
//! Elasticsearch's error type and reason (the reason's preview of the field value
//! is cut off: it may hold personal data). A batch is acknowledged once every item
//! is stored or dead-lettered. A whole request refused with 429, 5xx or 408, or
//! not answered, is retried; 413 (too large) and other 4xx refuse the batch.
//!
//! At start (before the first write, retried like one) the sink installs an index
//! template for its indices if none exists: keyword strings, the free-text fields
//! as text, `timestamp` as a date. With `delete_after`, indices whose day is past
//! their class's age are deleted every `delete_check` (1h).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use prometheus::IntCounterVec;
use serde_json::Value;
use synaptic_plugin_sdk::field::{Finder, Scalar};

use super::file_split::{date_of_ms, is_class_name, UNCLASSIFIED};
use super::{response_excerpt, Encoded, OpenContext, Refusal, SinkError, SinkKind};
use crate::decode::{Diagnostics, MapReader};
use crate::tls::{describe_http_error, HttpEndpoint};

#[derive(Debug, Clone)]
pub struct ElasticsearchSinkConfig {
    /// The cluster's URL, with timeout, TLS, headers and `auth` (`username` and
    /// `password`, `api_key` or `bearer`).
    pub(crate) endpoint: HttpEndpoint,
    /// The index pattern: lower-case text with `{retention}` and `{date}`.
    pub(crate) index: String,
    pub(crate) gzip: bool,
    /// Install the index template when missing.
    pub(crate) template: bool,
    /// Class → age of its daily indices (`*` for the others).
    pub(crate) delete_after: Option<BTreeMap<String, Duration>>,
    pub(crate) delete_check: Duration,
}

/// Whether `index` is a usable index pattern: Elasticsearch index names are lower
/// case, without `\ / * ? " < > | , #` or spaces, and not starting with `-_+`.
fn check_index(index: &str) -> Result<(), String> {
    let fixed = index.replace("{retention}", "").replace("{date}", "");
    if fixed.contains(['{', '}']) {
        return Err(format!("index `{index}`: the placeholders are {{retention}} and {{date}}"));
    }
    if index.is_empty() || index.starts_with(['-', '_', '+']) {
        return Err(format!("index `{index}` must not be empty or start with -, _ or +"));
    }
    if !fixed.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')) {
        return Err(format!("index `{index}`: lower-case letters, digits, -, _ and . only"));
    }
    Ok(())
}

impl SinkKind for ElasticsearchSinkConfig {
    type Output = ElasticsearchOutput;

    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let endpoint = HttpEndpoint::decode(map, "elasticsearch sink", "url", cx);
        let index_pos = map.key_pos("index");
        let index: String = map.or("index", "codex-synaptic-{retention}-{date}".to_string(), cx);
        if let Err(message) = check_index(&index) {
            cx.error(index_pos, format!("elasticsearch sink {message}"));
        }
        let delete_pos = map.key_pos("delete_after");
        let delete_after = map.optional::<BTreeMap<String, String>>("delete_after", cx).map(|ages| {
            ages.into_iter()
                .filter_map(|(class, age)| match humantime::parse_duration(&age) {
                    Ok(age) => Some((class, age)),
                    Err(e) => {
                        cx.error(
                            delete_pos,
                            format!(
                                "elasticsearch sink delete_after.{class}: `{age}` is not a duration ({e})"
                            ),
                        );
                        None
                    }
                })
                .collect::<BTreeMap<_, _>>()
        });
        if delete_after.is_some() && !index.contains("{date}") {
            cx.error(delete_pos, "elasticsearch sink: `delete_after` needs `{date}` in the index (indices are aged by their day)");
        }
        Some(ElasticsearchSinkConfig {
            endpoint: endpoint?,
            index,
            gzip: map.or("gzip", true, cx),
            template: map.or("template", true, cx),
            delete_after,
            delete_check: map.or("delete_check", Duration::from_secs(3600), cx),
        })
    }

    fn describe(&self) -> String {
        format!("Elasticsearch {} index {}", self.endpoint.shown_url(), self.index)
    }

    async fn open(&self, cx: &OpenContext<'_>) -> Result<ElasticsearchOutput, SinkError> {
        let error = |e: crate::tls::TlsError| SinkError::Http {
            url: self.endpoint.shown_url(),
            message: e.to_string(),
        };
        let client = self.endpoint.client("elasticsearch sink").map_err(error)?;
        let deleter = self.delete_after.clone().map(|ages| {
            let deleted = cx.telemetry.counter_vec(
                "elasticsearch_indices_deleted_total",
                "Indices an elasticsearch sink deleted past their retention class's age",
                &["sink", "class"],
            );
            Deleter::start(client.clone(), self.clone(), ages, cx.sink.to_string(), deleted)
        });
        Ok(ElasticsearchOutput {
            client,
            config: self.clone(),
            finder: Finder::new(&[
                ["event_id"].as_slice(),
                ["tags", "retention"].as_slice(),
                ["timestamp"].as_slice(),
            ]),
            template_due: self.template,
            pending: None,
            body: Vec::new(),
            _deleter: deleter,
        })
    }
}

pub(crate) struct ElasticsearchOutput {
    client: reqwest::Client,
    config: ElasticsearchSinkConfig,
    finder: Finder,
    /// The index template is still to be checked.
    template_due: bool,
    /// What is left of the batch being retried: items Elasticsearch refused with
    /// 429/5xx are sent again alone.
    pending: Option<Pending>,
    body: Vec<u8>,
    _deleter: Option<Deleter>,
}

struct Pending {
    /// Identifies the batch: the same batch comes back on a retry.
    batch: (usize, usize, u64),
    lines: Vec<usize>,
    refused: Vec<Refusal>,
}

fn fingerprint(batch: &Encoded<'_>) -> (usize, usize, u64) {
    let hash = batch
        .buf
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    (batch.buf.len(), batch.ranges.len(), hash)
}

/// The part of the index pattern before its first placeholder: what the template
/// and the deletion cover.
pub(crate) fn index_prefix(index: &str) -> &str {
    &index[..index.find('{').unwrap_or(index.len())]
}

/// An item error's text for a dead letter: the type and the reason, without the
/// preview of the refused value Elasticsearch appends (it may hold personal data).
fn item_reason(status: u64, error: &Value) -> String {
    let kind = error["type"].as_str().unwrap_or("error");
    let reason = error["reason"].as_str().unwrap_or("");
    let reason = reason.split(". Preview of field's value").next().unwrap_or("");
    let reason: String = reason.chars().take(300).collect();
    format!("Elasticsearch refused the event (HTTP {status} {kind}): {reason}")
}

impl ElasticsearchOutput {
    fn error(&self, message: String) -> SinkError {
        SinkError::Http { url: self.config.endpoint.shown_url(), message }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.endpoint.url.trim_end_matches('/'))
    }

    /// Installs the index template unless one of that name exists.
    async fn install_template(&mut self) -> Result<(), SinkError> {
        let prefix = index_prefix(&self.config.index);
        let name = prefix.trim_end_matches(['-', '_', '.']);
        let name = if name.is_empty() { "synaptic-telemetry" } else { name };
        let url = self.url(&format!("_index_template/{name}"));
        let head = self.config.endpoint.with_headers(self.client.head(&url));
        let status = head
            .send()
            .await
            .map_err(|e| self.error(format!("HEAD {url}: {}", describe_http_error(e))))?
            .status();
        if status.is_success() {
            return Ok(());
        }
        if status.as_u16() != 404 {
            return Err(self.error(format!("index template check: HTTP {status}")));
        }
        let text = |f: &str| (f.to_string(), serde_json::json!({"type": "text"}));
        let data: serde_json::Map<String, Value> =
            ["error_message", "reasoning", "violation_details", "transition_reason", "message"]
                .iter()
                .map(|f| text(f))
                .collect();
        let body = serde_json::json!({
            "index_patterns": [format!("{prefix}*")],
            "priority": 100,
            "template": {"mappings": {
                "dynamic_templates": [{"strings_as_keywords": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": 1024}
                }}],
                "properties": {
                    "event_id": {"type": "keyword"},
                    "timestamp": {"type": "date", "format": "epoch_millis"},
                    "component": {"type": "keyword"},
                    "event_type": {"type": "keyword"},
                    "severity": {"type": "keyword"},
                    "sample_rate": {"type": "double"},
                    "data": {"properties": data}
                }
            }}
        });
        let put = self
            .config
            .endpoint
            .with_headers(self.client.put(&url))
            .header("content-type", "application/json")
            .body(body.to_string());
        let response =
            put.send().await.map_err(|e| self.error(format!("PUT {url}: {}", describe_http_error(e))))?;
        let status = response.status();
        if !status.is_success() {
            let excerpt = response_excerpt(response).await;
            return Err(self.error(format!("installing the index template: HTTP {status}: {excerpt}")));
        }
        tracing::info!(url = %self.config.endpoint.shown_url(), template = name, "installed the index template");
        Ok(())
    }

    /// The index of one event line and its `_id`.
    fn target(&self, line: &[u8], today: &str) -> (String, Option<String>) {
        let mut found: [Option<Scalar<'_>>; 3] = [None, None, None];
        self.finder.find(line, &mut found);
        let id = match &found[0] {
            Some(Scalar::Text(id)) => Some(id.to_string()),
            _ => None,
        };
        let class = match &found[1] {
            Some(Scalar::Text(c)) if is_class_name(c) => c.to_string(),
            _ => UNCLASSIFIED.to_string(),
        };
        let date = match &found[2] {
            Some(Scalar::Int(ms)) => date_of_ms(*ms),
            Some(Scalar::Float(ms)) => date_of_ms(*ms as i64),
            _ => None,
        }
        .unwrap_or_else(|| today.to_string())
        .replace('-', ".");
        (self.config.index.replace("{retention}", &class).replace("{date}", &date), id)
    }
}

impl super::Write for ElasticsearchOutput {
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
        if batch.ranges.is_empty() {
            return Ok(());
        }
        if self.template_due {
            self.install_template().await?;
            self.template_due = false;
        }
        let lines = batch.lines();
        let print = fingerprint(batch);
        let (todo, mut refused) = match self.pending.take() {
            Some(p) if p.batch == print => (p.lines, p.refused),
            _ => ((0..lines.len()).collect(), Vec::new()),
        };
        let today = humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10].to_string();
        self.body.clear();
        for &i in &todo {
            let (index, id) = self.target(lines[i], &today);
            let action = match id {
                Some(id) => serde_json::json!({"index": {"_index": index, "_id": id}}),
                None => serde_json::json!({"index": {"_index": index}}),
            };
            self.body.extend_from_slice(action.to_string().as_bytes());
            self.body.push(b'\n');
            self.body.extend_from_slice(lines[i]);
            self.body.push(b'\n');
        }
        let url = self.url("_bulk");
        let mut request = self
            .config
            .endpoint
            .with_headers(self.client.post(&url))
            .header("content-type", "application/x-ndjson");
        let body = if self.config.gzip {
            request = request.header("content-encoding", "gzip");
            super::gzip(&self.body).map_err(|e| self.error(format!("gzip: {e}")))?
        } else {
            self.body.clone()
        };
        let keep = |this: &mut Self, todo: Vec<usize>, refused: Vec<Refusal>| {
            this.pending = Some(Pending { batch: print, lines: todo, refused });
        };
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) => {
                keep(self, todo, refused);
                return Err(self.error(format!("POST _bulk: {}", describe_http_error(e))));
            }
        };
        let status = response.status();
        if !status.is_success() {
            let excerpt = response_excerpt(response).await;
            if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
                keep(self, todo, refused);
                return Err(self.error(format!("POST _bulk: HTTP {status}: {excerpt}")));
            }
            let reason = format!("Elasticsearch refused the request (HTTP {status}): {excerpt}");
            refused.extend(todo.iter().map(|&line| Refusal { line, reason: reason.clone() }));
            return Err(SinkError::Refused(refused));
        }
        let answer: Value = match response
            .bytes()
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(answer) => answer,
            Err(e) => {
                keep(self, todo, refused);
                return Err(self.error(format!("POST _bulk: unreadable answer: {e}")));
            }
        };
        let items = answer["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        if items.len() != todo.len() {
            let sent = todo.len();
            keep(self, todo, refused);
            return Err(self.error(format!("POST _bulk: {} items answered for {sent} sent", items.len())));
        }
        let mut retry = Vec::new();
        for (&line, item) in todo.iter().zip(items) {
            // Each item answers under its action's name (`index`).
            let result = item.as_object().and_then(|o| o.values().next()).unwrap_or(&Value::Null);
            let status = result["status"].as_u64().unwrap_or(0);
            match status {
                200..=299 => {}
                429 | 500..=599 => retry.push(line),
                _ => refused.push(Refusal { line, reason: item_reason(status, &result["error"]) }),
            }
        }
        if !retry.is_empty() {
            let first = retry.len();
            keep(self, retry, refused);
            return Err(self.error(format!("{first} item(s) refused for now (429/5xx): sending them again")));
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(SinkError::Refused(refused))
        }
    }
}

/// Deletes expired daily indices every `delete_check`, until dropped.
struct Deleter(tokio::task::JoinHandle<()>);

impl Deleter {
    fn start(
        client: reqwest::Client,
        config: ElasticsearchSinkConfig,
        ages: BTreeMap<String, Duration>,
        sink: String,
        deleted: IntCounterVec,
    ) -> Deleter {
        Deleter(tokio::spawn(async move {
            loop {
                if let Err(problem) =
                    delete_expired(&client, &config, &ages, &sink, &deleted, SystemTime::now()).await
                {
                    tracing::warn!(sink = %sink, %problem, "cannot check indices for retention; trying again later");
                }
                tokio::time::sleep(config.delete_check).await;
            }
        }))
    }
}

impl Drop for Deleter {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The class and day an index name holds, by the index pattern.
fn index_class_and_day(pattern: &str, index: &str) -> Option<(Option<String>, SystemTime)> {
    let mut regex = String::from("^");
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        regex.push_str(&regex::escape(&rest[..open]));
        let close = open + rest[open..].find('}')?;
        regex.push_str(if &rest[open + 1..close] == "retention" {
            "(?P<class>[a-z0-9_-]{1,32})"
        } else {
            "(?P<date>[0-9]{4}\\.[0-9]{2}\\.[0-9]{2})"
        });
        rest = &rest[close + 1..];
    }
    regex.push_str(&regex::escape(rest));
    regex.push('$');
    let captures = regex::Regex::new(&regex).ok()?.captures(index)?;
    let date = captures.name("date")?.as_str().replace('.', "-");
    let day = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    Some((captures.name("class").map(|c| c.as_str().to_string()), day))
}

async fn delete_expired(
    client: &reqwest::Client,
    config: &ElasticsearchSinkConfig,
    ages: &BTreeMap<String, Duration>,
    sink: &str,
    deleted: &IntCounterVec,
    now: SystemTime,
) -> Result<(), String> {
    let base = config.endpoint.url.trim_end_matches('/');
    let prefix = index_prefix(&config.index);
    let url = format!("{base}/_cat/indices/{prefix}*?format=json&h=index");
    let response =
        config.endpoint.with_headers(client.get(&url)).send().await.map_err(describe_http_error)?;
    if !response.status().is_success() {
        return Err(format!("GET _cat/indices: HTTP {}", response.status()));
    }
    let listed: Value = serde_json::from_slice(&response.bytes().await.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    for entry in listed.as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(index) = entry["index"].as_str() else { continue };
        let Some((class, day)) = index_class_and_day(&config.index, index) else { continue };
        let age = class.as_deref().and_then(|c| ages.get(c)).or_else(|| ages.get("*"));
        let Some(age) = age else { continue };
        let day_end = day + Duration::from_secs(86_400);
        if !now.duration_since(day_end).is_ok_and(|past| past >= *age) {
            continue;
        }
        let response = config
            .endpoint
            .with_headers(client.delete(format!("{base}/{index}")))
            .send()
            .await
            .map_err(describe_http_error)?;
        if response.status().is_success() {
            let class = class.unwrap_or_else(|| "*".to_string());
            tracing::info!(sink = %sink, index, class = %class, "deleted an index past its retention");
            deleted.with_label_values(&[sink, &class]).inc();
        } else {
            tracing::warn!(sink = %sink, index, status = %response.status(), "cannot delete an expired index");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_and_their_days() {
        assert!(check_index("codex-synaptic-{retention}-{date}").is_ok());
        assert!(check_index("Codex-{date}").is_err());
        assert!(check_index("codex-{region}").is_err());
        assert!(check_index("_hidden").is_err());
        let (class, day) =
            index_class_and_day("codex-synaptic-{retention}-{date}", "codex-synaptic-high-2026.01.02")
                .expect("matches");
        assert_eq!(class.as_deref(), Some("high"));
        assert_eq!(day, humantime::parse_rfc3339("2026-01-02T00:00:00Z").expect("time"));
        assert!(
            index_class_and_day("codex-synaptic-{retention}-{date}", "codex-synaptic-high-2026.01").is_none()
        );
        assert!(index_class_and_day("codex-synaptic-{retention}-{date}", "other-high-2026.01.02").is_none());
    }

    #[test]
    fn item_reasons_keep_the_type_and_drop_the_value_preview() {
        let error = serde_json::json!({
            "type": "document_parsing_exception",
            "reason": "[1:200] failed to parse field [data.duration_ms] of type [long] in document with id 'e1'. Preview of field's value: 'jane@example.com'"
        });
        let reason = item_reason(400, &error);
        assert!(
            reason.contains("HTTP 400 document_parsing_exception") && reason.contains("data.duration_ms"),
            "{reason}"
        );
        assert!(!reason.contains("jane@example.com"), "{reason}");
    }
}
