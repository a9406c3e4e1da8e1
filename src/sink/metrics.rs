//! The sinks' own metrics.

use prometheus::IntCounter;

use crate::telemetry::Telemetry;

/// Per-sink handles, resolved when the sink is built.
#[derive(Clone)]
pub(crate) struct SinkCounters {
    pub(crate) sent: IntCounter,
    pub(crate) failed: IntCounter,
    pub(crate) write_errors: IntCounter,
    /// Refused by the output for good (passed to the dead-letter sink).
    pub(crate) refused: IntCounter,
}

impl SinkCounters {
    pub(crate) fn register(telemetry: &Telemetry, sink: &str) -> Self {
        let events = telemetry.counter_vec(
            "sink_events_total",
            "Events by sink: sent (written), failed (not acknowledged) or refused (refused by the output for good; dead-lettered)",
            &["sink", "outcome"],
        );
        let errors = telemetry.counter_vec(
            "sink_write_errors_total",
            "Failed write attempts by sink (retried)",
            &["sink"],
        );
        SinkCounters {
            sent: events.with_label_values(&[sink, "sent"]),
            failed: events.with_label_values(&[sink, "failed"]),
            refused: events.with_label_values(&[sink, "refused"]),
            write_errors: errors.with_label_values(&[sink]),
        }
    }
}
