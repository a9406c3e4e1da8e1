//! `kafka`: each event is one message on a topic. The producer is idempotent
//! (no duplicates or reordering from its own retries), a batch is acknowledged only
//! when every message's delivery report came back successful.
//!
//! A topic with `{retention}` (`codex-events-{retention}`) routes each event to the
//! topic of its retention class (`tags.retention`; `unclassified` when absent or
//! not a plain name), so a class's topic can carry that class's retention.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::{Encoded, Refusal, SinkError, SinkKind, Write};
use crate::decode::{one_of, Diagnostics, MapReader};
use crate::kafka_client::KafkaSecurity;

#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    /// Dotted path of the message key (default `data.agent_id`); events without it
    /// are keyed by `event_id`.
    pub(crate) key_field: String,
    /// none | gzip | snappy | lz4 (default lz4).
    pub(crate) compression: String,
    /// TLS and SASL as named keys (`tls`, `sasl`).
    pub(crate) security: Box<KafkaSecurity>,
    /// Passed to librdkafka as they are, after `security`.
    pub(crate) properties: std::collections::BTreeMap<String, String>,
}

impl SinkKind for KafkaSinkConfig {
    type Output = KafkaOutput;

    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let brokers: Option<String> = map.required("brokers", cx);
        let topic_pos = map.key_pos("topic");
        let topic: Option<String> = map.required("topic", cx);
        if let Some(Err(message)) = topic.as_deref().map(check_topic) {
            cx.error(topic_pos, format!("kafka sink {message}"));
        }
        let compression = map.node("compression").and_then(|n| {
            let choices = [("none", "none"), ("gzip", "gzip"), ("snappy", "snappy"), ("lz4", "lz4")];
            one_of(n, &choices, cx)
        });
        Some(KafkaSinkConfig {
            brokers: brokers?,
            topic: topic?,
            key_field: map.or("key_field", "data.agent_id".to_string(), cx),
            compression: compression.unwrap_or("lz4").to_string(),
            security: Box::new(KafkaSecurity::decode(map, "kafka sink", cx)),
            properties: map.or("properties", Default::default(), cx),
        })
    }

    fn describe(&self) -> String {
        format!("kafka topic {} at {}", self.topic, self.brokers)
    }

    async fn open(&self, _cx: &super::OpenContext<'_>) -> Result<KafkaOutput, SinkError> {
        // With TLS or SASL on, a refused handshake or login fails the start with
        // its reason instead of librdkafka retrying it forever.
        crate::kafka_client::check_if_secured(KafkaOutput::client_config(self), "kafka sink")
            .await
            .map_err(|message| SinkError::Kafka { topic: self.topic.clone(), message })?;
        KafkaOutput::open(self)
    }
}

impl Write for KafkaOutput {
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
        self.write(&batch.lines()).await
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.close().await
    }
}
use crate::event::field::find_text;

pub(crate) struct KafkaOutput {
    producer: FutureProducer,
    topic: String,
    key_path: Vec<String>,
}

impl KafkaOutput {
    fn client_config(config: &KafkaSinkConfig) -> ClientConfig {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("compression.type", &config.compression)
            .set("linger.ms", "5");
        config.security.apply(&mut client);
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        client
    }

    pub(crate) fn open(config: &KafkaSinkConfig) -> Result<Self, SinkError> {
        let producer: FutureProducer = Self::client_config(config)
            .create()
            .map_err(|e| SinkError::Kafka { topic: config.topic.clone(), message: e.to_string() })?;
        Ok(KafkaOutput {
            producer,
            topic: config.topic.clone(),
            key_path: config.key_field.split('.').map(str::to_string).collect(),
        })
    }

    /// Sends every line and waits for all delivery reports. A record the broker
    /// refuses for what it is (too large, invalid) is refused for good
    /// ([`SinkError::Refused`]); any other failure fails the batch for a retry.
    pub(crate) async fn write(&mut self, lines: &[&[u8]]) -> Result<(), SinkError> {
        let path: Vec<&str> = self.key_path.iter().map(String::as_str).collect();
        let mut deliveries = Vec::with_capacity(lines.len());
        let mut refused = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let key = find_text(line, &path).or_else(|| find_text(line, &["event_id"])).unwrap_or_default();
            let topic = self.topic_of(line);
            let mut record = FutureRecord::to(&topic).payload(*line).key(key.as_bytes());
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push((index, delivery));
                        break;
                    }
                    // The local queue is full: wait for deliveries to drain it.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) if is_permanent(&e) => {
                        refused.push(Refusal { line: index, reason: format!("{e} ({} bytes)", line.len()) });
                        break;
                    }
                    Err((e, _)) => return Err(self.error(e.to_string())),
                }
            }
        }
        let mut failed = None;
        for (index, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) if is_permanent(&e) => {
                    refused
                        .push(Refusal { line: index, reason: format!("{e} ({} bytes)", lines[index].len()) });
                }
                Ok(Err((e, _))) => failed = Some(e.to_string()),
                Err(_) => failed = Some("producer dropped the delivery report".into()),
            }
        }
        // Every report is awaited first: a retry then resends the whole batch,
        // which the idempotent producer and at-least-once allow.
        if let Some(message) = failed {
            return Err(self.error(message));
        }
        if refused.is_empty() {
            Ok(())
        } else {
            refused.sort_by_key(|r| r.line);
            Err(SinkError::Refused(refused))
        }
    }

    pub(crate) async fn close(&mut self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(Duration::from_secs(10))))
            .await
            .map_err(|e| self.error(e.to_string()))?
            .map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, message: String) -> SinkError {
        SinkError::Kafka { topic: self.topic.clone(), message }
    }

    /// The topic of one event: the configured one, with `{retention}` resolved.
    fn topic_of(&self, line: &[u8]) -> std::borrow::Cow<'_, str> {
        if !self.topic.contains("{retention}") {
            return std::borrow::Cow::Borrowed(&self.topic);
        }
        let class = find_text(line, &["tags", "retention"])
            .filter(|c| super::file_split::is_class_name(c))
            .unwrap_or_else(|| super::file_split::UNCLASSIFIED.to_string());
        std::borrow::Cow::Owned(self.topic.replace("{retention}", &class))
    }
}

/// A topic name, or a pattern with `{retention}`: Kafka's legal characters.
fn check_topic(topic: &str) -> Result<(), String> {
    let fixed = topic.replace("{retention}", "");
    if fixed.contains(['{', '}']) {
        return Err(format!("topic `{topic}`: the only placeholder is {{retention}}"));
    }
    if topic.is_empty() || !fixed.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(format!("topic `{topic}`: letters, digits, `.`, `_` and `-` only"));
    }
    Ok(())
}

/// Errors that sending the same record again cannot heal.
fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}
