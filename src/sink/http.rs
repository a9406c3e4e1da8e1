//! `http`: each batch POSTed to a URL as JSON lines (`application/x-ndjson`) or as
//! one JSON array, optionally gzip-compressed, with configured headers.
//!
//! A 2xx answer acknowledges the batch. 429 and 5xx answers, timeouts and
//! connection errors are transient: the batch is retried with backoff. Any other
//! 4xx means the server refuses this batch and would refuse it again: its events
//! go to the dead-letter sink with the status and the start of the response body,
//! and are not retried.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{response_excerpt, Encoded, Refusal, SinkError, SinkKind};
use crate::decode::{one_of, Diagnostics, MapReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFormat {
    /// One JSON document per line.
    JsonLines,
    /// One JSON array of the batch's documents.
    JsonArray,
}

#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    /// `http://` or `https://` URL the batches are POSTed to.
    pub(crate) url: String,
    pub(crate) format: HttpFormat,
    /// gzip the request body (`content-encoding: gzip`).
    pub(crate) gzip: bool,
    /// Extra request headers (authentication).
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) timeout: Duration,
}

impl SinkKind for HttpSinkConfig {
    type Output = HttpOutput;

    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let url: Option<String> = map.required("url", cx);
        if let Some(u) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                cx.error(map.key_pos("url"), format!("url must start with http:// or https://, got `{u}`"));
            }
        }
        let format = map
            .node("format")
            .and_then(|n| {
                one_of(n, &[("json_lines", HttpFormat::JsonLines), ("json_array", HttpFormat::JsonArray)], cx)
            })
            .unwrap_or(HttpFormat::JsonLines);
        let headers: BTreeMap<String, String> = map.or("headers", BTreeMap::new(), cx);
        for (name, value) in &headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                cx.error(map.key_pos("headers"), format!("header `{name}` is not a valid HTTP header"));
            }
        }
        Some(HttpSinkConfig {
            url: url?,
            format,
            gzip: map.or("gzip", false, cx),
            headers,
            timeout: map.or("timeout", Duration::from_secs(10), cx),
        })
    }

    fn describe(&self) -> String {
        format!("HTTP POST to {}", self.url)
    }

    async fn open(&self) -> Result<HttpOutput, SinkError> {
        let client = reqwest::Client::builder().timeout(self.timeout).build().map_err(|e| {
            SinkError::Http { url: self.url.clone(), message: format!("cannot build the HTTP client: {e}") }
        })?;
        Ok(HttpOutput { client, config: self.clone(), body: Vec::new() })
    }
}

pub(crate) struct HttpOutput {
    client: reqwest::Client,
    config: HttpSinkConfig,
    /// Reused between batches.
    body: Vec<u8>,
}

impl HttpOutput {
    fn error(&self, message: String) -> SinkError {
        SinkError::Http { url: self.config.url.clone(), message }
    }

    /// The request body in the configured format, uncompressed.
    fn encode(&mut self, batch: &Encoded<'_>) {
        self.body.clear();
        match self.config.format {
            HttpFormat::JsonLines => self.body.extend_from_slice(batch.buf),
            HttpFormat::JsonArray => {
                self.body.push(b'[');
                for (i, range) in batch.ranges.iter().enumerate() {
                    if i > 0 {
                        self.body.push(b',');
                    }
                    self.body.extend_from_slice(&batch.buf[range.clone()]);
                }
                self.body.push(b']');
            }
        }
    }
}

impl super::Write for HttpOutput {
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
        if batch.ranges.is_empty() {
            return Ok(());
        }
        self.encode(batch);
        let content_type = match self.config.format {
            HttpFormat::JsonLines => "application/x-ndjson",
            HttpFormat::JsonArray => "application/json",
        };
        let mut request = self.client.post(&self.config.url).header("content-type", content_type);
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        let body = if self.config.gzip {
            request = request.header("content-encoding", "gzip");
            super::gzip(&self.body).map_err(|e| self.error(format!("gzip: {e}")))?
        } else {
            // The request owns its body; the encoding buffer starts afresh next batch.
            std::mem::take(&mut self.body)
        };
        let response = request.body(body).send().await.map_err(|e| self.error(format!("POST: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let excerpt = response_excerpt(response).await;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(self.error(format!("HTTP {status}: {excerpt}")));
        }
        if status.as_u16() == 408 {
            return Err(self.error(format!("HTTP {status}: {excerpt}")));
        }
        // Refused for what it is: sending it again would be refused again, so
        // the batch goes to the dead-letter sink with the answer.
        Err(SinkError::Refused(Refusal::all(batch, &format!("HTTP {status}: {excerpt}"))))
    }
}
