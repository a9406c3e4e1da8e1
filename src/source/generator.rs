//! The `generator` source: synthetic traffic at a configured rate.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::traffic::Traffic;
use super::{Emitter, RawRecord, SourceError, SourceReport};
use crate::config::GeneratorConfig;
use crate::event::Position;

pub struct GeneratorSource {
    config: GeneratorConfig,
}

impl GeneratorSource {
    pub fn new(config: &GeneratorConfig) -> Self {
        GeneratorSource { config: config.clone() }
    }

    pub async fn run(
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
