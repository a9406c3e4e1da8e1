//! The `kafka` source's config.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::decode::{Diagnostics, MapReader, OneOrMany};
use crate::kafka_client::KafkaSecurity;

/// A Kafka consumer-group member. More instances with the same `group_id` share the
/// partitions.
#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub(crate) brokers: String,
    /// Topic names; a name starting with `^` is a regular expression.
    pub(crate) topics: Vec<String>,
    pub(crate) group_id: String,
    /// How often acknowledged offsets are committed.
    pub(crate) commit_interval: Duration,
    /// On a partition revoke, how long to wait for its in-flight events.
    pub(crate) revoke_timeout: Duration,
    /// TLS and SASL as named keys (`tls`, `sasl`).
    pub(crate) security: Box<KafkaSecurity>,
    /// Passed to librdkafka as they are (tuning; TLS and SASL too), after `security`.
    pub(crate) properties: BTreeMap<String, String>,
}

impl KafkaSourceConfig {
    pub(crate) fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> KafkaSourceConfig {
        let brokers: Option<String> = map.required("brokers", cx);
        let topics = map.required::<OneOrMany<String>>("topics", cx).map(|t| t.0);
        KafkaSourceConfig {
            brokers: brokers.unwrap_or_default(),
            topics: topics.unwrap_or_default(),
            group_id: map.or("group_id", "synaptic-telemetry".to_string(), cx),
            // Short: a crash reads again what was finished but not committed yet.
            commit_interval: map.or("commit_interval", Duration::from_millis(250), cx),
            revoke_timeout: map.or("revoke_timeout", Duration::from_secs(10), cx),
            security: Box::new(KafkaSecurity::decode(map, "kafka source", cx)),
            properties: map.or("properties", BTreeMap::new(), cx),
        }
    }
}
