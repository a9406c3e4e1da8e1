//! Live taps: a sample of the events leaving a step or entering a sink, streamed
//! to `synaptic-telemetry tap` through the HTTP API (`GET /api/tap`).
//!
//! The pipeline pays one relaxed atomic load per step and batch while nobody
//! taps. A tap's events go through a bounded channel: when the client reads
//! slower than events come, the rest are dropped and counted, never waited for,
//! so a tap cannot slow the pipeline. What a tap may see is decided when the
//! pipeline is built: a step before the PII scrubber shows events unscrubbed, so
//! it cannot be tapped (its events are not meant to leave the process).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use synaptic_plugin_sdk::Severity;

use crate::event::Event;
use crate::glob::Glob;

/// Events a tap holds for its client before it drops.
pub const TAP_BUFFER: usize = 1000;
/// Taps open at once.
pub const MAX_TAPS: usize = 16;

/// Where a tap listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// Events as they leave this step.
    Step(String),
    /// Events as they are handed to this sink.
    Sink(String),
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Point::Step(s) => write!(f, "step `{s}`"),
            Point::Sink(s) => write!(f, "sink `{s}`"),
        }
    }
}

/// Which events of a point a tap wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub event_type: Option<String>,
    pub component: Option<String>,
    pub min_severity: Option<Severity>,
}

struct CompiledFilter {
    event_type: Option<Glob>,
    component: Option<Glob>,
    min_severity: Option<Severity>,
}

impl CompiledFilter {
    fn matches(&self, event: &Event) -> bool {
        self.event_type.as_ref().is_none_or(|g| g.matches(event.event_type()))
            && self.component.as_ref().is_none_or(|g| g.matches(event.component()))
            && self.min_severity.is_none_or(|min| event.severity() >= min)
    }
}

struct Subscriber {
    id: u64,
    point: Point,
    filter: CompiledFilter,
    tx: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
    /// The instance's count of dropped tap events, kept current as they drop
    /// (a reader that stopped reading never sees its tap's end).
    dropped_total: Option<prometheus::IntCounter>,
}

impl Subscriber {
    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(total) = &self.dropped_total {
            total.inc();
        }
    }
}

/// The points of the running pipeline, and whether each may be tapped.
#[derive(Debug, Clone, Default)]
struct Points {
    /// Steps in order, each with the reason it cannot be tapped, if any.
    steps: Vec<(String, Option<String>)>,
    sinks: Vec<String>,
}

#[derive(Default)]
struct Hub {
    subscribers: Vec<Subscriber>,
    points: Points,
    next_id: u64,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static HUB: Mutex<Option<Hub>> = Mutex::new(None);

fn hub() -> MutexGuard<'static, Option<Hub>> {
    HUB.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether anyone taps: the pipeline's only cost while nobody does.
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Records the pipeline's steps (in order) and sinks; `raw_before` is the index
/// of the PII scrubber step, if there is one: the steps before it show raw events.
pub fn register_points(steps: &[String], raw_before: Option<usize>, sinks: &[String]) {
    let scrubber = raw_before.and_then(|i| steps.get(i)).cloned();
    let steps = (steps.iter().enumerate())
        .map(|(i, name)| {
            let refused = match (raw_before, &scrubber) {
                (Some(at), Some(scrubber)) if i < at => Some(format!(
                    "step `{name}` runs before the PII scrubber `{scrubber}`: its events are unscrubbed; tap `{scrubber}`, a later step or a sink"
                )),
                _ => None,
            };
            (name.clone(), refused)
        })
        .collect();
    let mut hub = hub();
    hub.get_or_insert_with(Hub::default).points = Points { steps, sinks: sinks.to_vec() };
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TapError {
    #[error("no step or sink named `{0}` (steps: {1}; sinks: {2})")]
    Unknown(String, String, String),
    #[error("{0}")]
    Refused(String),
    #[error("{MAX_TAPS} taps are open already")]
    TooMany,
}

/// An open tap: its events, and how many it dropped. Closed when dropped.
pub struct Tap {
    id: u64,
    pub events: mpsc::Receiver<Bytes>,
    pub dropped: Arc<AtomicU64>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        let mut hub = hub();
        if let Some(hub) = hub.as_mut() {
            hub.subscribers.retain(|s| s.id != self.id);
            ACTIVE.store(!hub.subscribers.is_empty(), Ordering::Relaxed);
        }
    }
}

/// Opens a tap on `point`; `dropped_total` counts its dropped events as they drop.
pub fn open(
    point: Point,
    filter: &Filter,
    dropped_total: Option<prometheus::IntCounter>,
) -> Result<Tap, TapError> {
    let mut guard = hub();
    let hub = guard.get_or_insert_with(Hub::default);
    let known = match &point {
        Point::Step(name) => match hub.points.steps.iter().find(|(s, _)| s == name) {
            Some((_, Some(refused))) => return Err(TapError::Refused(refused.clone())),
            Some(_) => true,
            None => false,
        },
        Point::Sink(name) => hub.points.sinks.contains(name),
    };
    if !known {
        let name = match &point {
            Point::Step(n) | Point::Sink(n) => n.clone(),
        };
        let steps: Vec<&str> = hub.points.steps.iter().map(|(s, _)| s.as_str()).collect();
        return Err(TapError::Unknown(name, steps.join(", "), hub.points.sinks.join(", ")));
    }
    if hub.subscribers.len() >= MAX_TAPS {
        return Err(TapError::TooMany);
    }
    let (tx, events) = mpsc::channel(TAP_BUFFER);
    let dropped = Arc::new(AtomicU64::new(0));
    hub.next_id += 1;
    let id = hub.next_id;
    hub.subscribers.push(Subscriber {
        id,
        point,
        filter: CompiledFilter {
            event_type: filter.event_type.as_deref().map(Glob::new),
            component: filter.component.as_deref().map(Glob::new),
            min_severity: filter.min_severity,
        },
        tx,
        dropped: dropped.clone(),
        dropped_total,
    });
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(Tap { id, events, dropped })
}

/// Offers the events at `point` (an iterator, so a sink's selection needs no copy)
/// to the taps on it.
pub fn offer<'a>(point: &Point, events: impl Iterator<Item = &'a Event>) {
    let guard = hub();
    let Some(hub) = guard.as_ref() else { return };
    let taps: Vec<&Subscriber> = hub.subscribers.iter().filter(|s| s.point == *point).collect();
    if taps.is_empty() {
        return;
    }
    for event in events {
        for tap in &taps {
            if !tap.filter.matches(event) {
                continue;
            }
            // Full: dropped without encoding the event.
            if tap.tx.capacity() == 0 {
                tap.drop_one();
                continue;
            }
            let line = Bytes::from(event.wire().into_owned());
            if tap.tx.try_send(line).is_err() {
                tap.drop_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Position, SchemaMode};

    fn event(i: u64, severity: &str) -> Event {
        let text = format!(
            r#"{{"event_id":"e{i}","timestamp":1767225600000,"component":"swarm","event_type":"swarm.iteration","severity":"{severity}","tags":{{}},"context":{{}},"data":{{}}}}"#
        );
        Event::decode(Bytes::from(text), Position::Generator { seq: i }, SchemaMode::Lenient).expect("valid")
    }

    // One test: the hub is process-wide.
    #[test]
    fn taps_see_their_point_filter_drop_when_full_and_refuse_raw_steps() {
        register_points(&["minimize".into(), "pii_scrub".into(), "sample".into()], Some(1), &["out".into()]);
        assert!(!active(), "nobody taps yet");
        assert!(
            matches!(open(Point::Step("minimize".into()), &Filter::default(), None), Err(TapError::Refused(m)) if m.contains("before the PII scrubber"))
        );
        assert!(matches!(
            open(Point::Step("nope".into()), &Filter::default(), None),
            Err(TapError::Unknown(..))
        ));
        let filter = Filter { min_severity: Some(Severity::Warn), ..Filter::default() };
        let counted = prometheus::IntCounter::new("dropped", "dropped").expect("counter");
        let mut tap = open(Point::Step("sample".into()), &filter, Some(counted.clone())).expect("tap");
        let mut sink_tap = open(Point::Sink("out".into()), &Filter::default(), None).expect("sink tap");
        assert!(active());
        let events: Vec<Event> =
            (0..3000).map(|i| event(i, if i % 2 == 0 { "WARN" } else { "INFO" })).collect();
        offer(&Point::Step("pii_scrub".into()), events.iter());
        assert!(tap.events.try_recv().is_err(), "another step's events are not this tap's");
        offer(&Point::Step("sample".into()), events.iter());
        let mut got = 0;
        while let Ok(line) = tap.events.try_recv() {
            assert!(line.windows(6).any(|w| w == b"\"WARN\""), "filtered by severity");
            got += 1;
        }
        assert_eq!(got, TAP_BUFFER, "the buffer's worth");
        assert_eq!(
            tap.dropped.load(Ordering::Relaxed),
            1500 - TAP_BUFFER as u64,
            "the rest counted as dropped"
        );
        offer(&Point::Sink("out".into()), events.iter().take(10));
        assert_eq!(std::iter::from_fn(|| sink_tap.events.try_recv().ok()).count(), 10);
        drop(tap);
        assert!(active(), "one tap left");
        drop(sink_tap);
        assert!(!active(), "closed taps cost nothing");
    }
}
