//! The `source`, `batch` and `limits` sections: which source reads the input, and
//! how its records are grouped into batches and bounded in flight.

use std::time::Duration;

use super::file::FileSourceConfig;
use super::generator::GeneratorConfig;
use super::kafka::KafkaSourceConfig;
use crate::decode::yaml::Node;
use crate::decode::{one_of, ByteSize, Diagnostics, MapReader};

/// The closed set of sources.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Generator(GeneratorConfig),
    File(FileSourceConfig),
    Kafka(KafkaSourceConfig),
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// A batch is closed at this many events…
    pub(crate) max_events: usize,
    /// …or this long after its first event arrived, whichever comes first.
    pub(crate) linger: Duration,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Batches read but not yet acknowledged by every sink; the source waits beyond it.
    pub(crate) max_in_flight_batches: usize,
    /// Larger inputs go to dead letter (their first bytes kept).
    pub(crate) max_event_bytes: usize,
    /// On shutdown, how long to wait for in-flight events to be acknowledged.
    pub(crate) drain_timeout: Duration,
}

impl SourceConfig {
    pub(crate) fn decode(node: &Node, cx: &mut Diagnostics) -> Option<SourceConfig> {
        #[derive(Clone, Copy)]
        enum Kind {
            Generator,
            File,
            Kafka,
        }
        let mut map = MapReader::new(node, "source", cx)?;
        let kinds = [("generator", Kind::Generator), ("file", Kind::File), ("kafka", Kind::Kafka)];
        let kind = match map.node("type") {
            Some(node) => one_of(node, &kinds, cx),
            None => {
                cx.error(map.pos(), "source is missing required key `type`");
                None
            }
        };
        let source = match kind? {
            Kind::Generator => SourceConfig::Generator(GeneratorConfig::decode(&mut map, cx)),
            Kind::File => SourceConfig::File(FileSourceConfig::decode(&mut map, cx)),
            Kind::Kafka => SourceConfig::Kafka(KafkaSourceConfig::decode(&mut map, cx)),
        };
        map.finish(cx);
        Some(source)
    }
}

impl BatchConfig {
    pub(crate) fn decode(node: Option<&Node>, cx: &mut Diagnostics) -> BatchConfig {
        let default = BatchConfig { max_events: 512, linger: Duration::from_millis(50) };
        let Some(mut map) = node.and_then(|n| MapReader::new(n, "batch", cx)) else { return default };
        let config = BatchConfig {
            max_events: map.or("max_events", default.max_events, cx),
            linger: map.or("linger", default.linger, cx),
        };
        if config.max_events == 0 {
            cx.error(map.key_pos("max_events"), "max_events must be at least 1");
        }
        map.finish(cx);
        config
    }
}

impl LimitsConfig {
    /// The largest event accepted, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    pub(crate) fn decode(node: Option<&Node>, cx: &mut Diagnostics) -> LimitsConfig {
        let default = LimitsConfig {
            max_in_flight_batches: 16,
            max_event_bytes: 1 << 20,
            drain_timeout: Duration::from_secs(30),
        };
        let Some(mut map) = node.and_then(|n| MapReader::new(n, "limits", cx)) else { return default };
        let config = LimitsConfig {
            max_in_flight_batches: map.or("max_in_flight_batches", default.max_in_flight_batches, cx),
            max_event_bytes: map
                .optional::<ByteSize>("max_event_bytes", cx)
                .map_or(default.max_event_bytes, |b| usize::try_from(b.0).unwrap_or(usize::MAX)),
            drain_timeout: map.or("drain_timeout", default.drain_timeout, cx),
        };
        if config.max_in_flight_batches == 0 {
            cx.error(map.key_pos("max_in_flight_batches"), "max_in_flight_batches must be at least 1");
        }
        map.finish(cx);
        config
    }
}
