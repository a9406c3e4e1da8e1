//! `http`: each batch POSTed to a URL as JSON lines (`application/x-ndjson`) or as
//! one JSON array, optionally gzip-compressed, with configured headers.
//!
//! A 2xx answer acknowledges the batch. 429 and 5xx answers, timeouts and
//! connection errors are transient: the batch is retried with backoff. Any other
//! 4xx means the server refuses this batch and would refuse it again: its events
//! go to the dead-letter sink with the status and the start of the response body,
//! and are not retried.

use super::{response_excerpt, Encoded, Refusal, SinkError, SinkKind};
use crate::decode::{one_of, Diagnostics, MapReader};
use crate::tls::{describe_http_error, HttpEndpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFormat {
    /// One JSON document per line.
    JsonLines,
    /// One JSON array of the batch's documents.
    JsonArray,
}

#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    /// The `http://` or `https://` URL the batches are POSTed to, with its
    /// timeout, TLS settings and headers (authentication).
    pub(crate) endpoint: HttpEndpoint,
    pub(crate) format: HttpFormat,
    /// gzip the request body (`content-encoding: gzip`).
    pub(crate) gzip: bool,
}

impl SinkKind for HttpSinkConfig {
    type Output = HttpOutput;

    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let endpoint = HttpEndpoint::decode(map, "http sink", "url", cx);
        let format = map
            .node("format")
            .and_then(|n| {
                one_of(n, &[("json_lines", HttpFormat::JsonLines), ("json_array", HttpFormat::JsonArray)], cx)
            })
            .unwrap_or(HttpFormat::JsonLines);
        Some(HttpSinkConfig { endpoint: endpoint?, format, gzip: map.or("gzip", false, cx) })
    }

    fn describe(&self) -> String {
        format!("HTTP POST to {}", self.endpoint.shown_url())
    }

    async fn open(&self, _cx: &super::OpenContext<'_>) -> Result<HttpOutput, SinkError> {
        let client = self
            .endpoint
            .client("http sink")
            .map_err(|e| SinkError::Http { url: self.endpoint.shown_url(), message: e.to_string() })?;
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
        SinkError::Http { url: self.config.endpoint.shown_url(), message }
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
        let request = self.client.post(&self.config.endpoint.url).header("content-type", content_type);
        let mut request = self.config.endpoint.with_headers(request);
        let body = if self.config.gzip {
            request = request.header("content-encoding", "gzip");
            super::gzip(&self.body).map_err(|e| self.error(format!("gzip: {e}")))?
        } else {
            // The request owns its body; the encoding buffer starts afresh next batch.
            std::mem::take(&mut self.body)
        };
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(format!("POST: {}", describe_http_error(e))))?;
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
