//! The `generator` source: synthetic traffic at a configured rate.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::traffic::Traffic;
use super::{Emitter, RawRecord, SourceError, SourceReport};
use crate::decode::{Diagnostics, MapReader};
use crate::event::Position;

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Events per second; 0 means as fast as the pipeline takes them.
    pub rate: f64,
    /// Events in all; 0 means endless.
    pub total: u64,
    pub seed: u64,
    /// Share of deliberately malformed events, 0.0 to 1.0.
    pub malformed_ratio: f64,
    /// Timestamp of the first event (Unix ms); absent means "now".
    pub start_ms: Option<i64>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig { rate: 1000.0, total: 0, seed: 42, malformed_ratio: 0.0, start_ms: None }
    }
}

impl GeneratorConfig {
    pub(crate) fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> GeneratorConfig {
        let d = GeneratorConfig::default();
        let rate = map.or("rate", d.rate, cx);
        let malformed_ratio = map.or("malformed_ratio", d.malformed_ratio, cx);
        let config = GeneratorConfig {
            rate,
            total: map.or("total", d.total, cx),
            seed: map.or("seed", d.seed, cx),
            malformed_ratio,
            start_ms: map.optional::<u64>("start_ms", cx).map(|v| v as i64),
        };
        if rate < 0.0 {
            cx.error(map.key_pos("rate"), "rate must be >= 0 (0 means unthrottled)");
        }
        if !(0.0..=1.0).contains(&malformed_ratio) {
            cx.error(map.key_pos("malformed_ratio"), "malformed_ratio must be from 0.0 to 1.0");
        }
        config
    }
}

pub struct GeneratorSource {
    config: GeneratorConfig,
}

impl GeneratorSource {
    pub(crate) fn new(config: &GeneratorConfig) -> Self {
        GeneratorSource { config: config.clone() }
    }

    pub(crate) async fn run(
        self,
        emitter: &mut Emitter,
        shutdown: CancellationToken,
    ) -> Result<SourceReport, SourceError> {
        let mut traffic = Traffic::new(&self.config, crate::clock::now_ms());
        let started = Instant::now();
        let interval = (self.config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.config.rate));
        loop {
            if shutdown.is_cancelled() || (self.config.total > 0 && traffic.produced() >= self.config.total) {
                break;
            }
            // Throttle by schedule, not by sleeping per event: event n is due at
            // start + n × interval, so timer granularity does not lower the rate.
            if let Some(interval) = interval {
                let due = started + interval.mul_f64(traffic.produced() as f64);
                if due > Instant::now() {
                    let wake = emitter.deadline().map_or(due, |d| d.min(due));
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep_until(wake) => {}
                    }
                    if emitter.deadline().is_some_and(|d| d <= Instant::now())
                        && emitter.flush().await.is_err()
                    {
                        break;
                    }
                    continue;
                }
            }
            let seq = traffic.produced();
            let bytes = Bytes::from(traffic.next_event());
            let record = RawRecord { bytes, position: Position::Generator { seq }, oversize: None };
            if emitter.push(record).await.is_err() {
                break;
            }
        }
        let _ = emitter.flush().await;
        Ok(SourceReport { records: emitter.emitted() })
    }
}
