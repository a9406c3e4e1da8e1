//! Per-event-type plans, cached: the metrics step and the alert engine each turn
//! their definitions into one plan per event type (what to read, what applies),
//! made once, not per event.

use std::collections::HashMap;

use crate::event::{Event, EventKind};

/// Plans kept for event types the schema does not know.
pub(crate) const MAX_UNKNOWN_PLANS: usize = 256;

/// A plan per event type: the schema's types planned up front; an unknown type
/// on first sight, up to [`MAX_UNKNOWN_PLANS`] of them, and beyond that planned
/// per event (endless distinct types cost work, never memory).
pub(crate) struct PlanCache<P> {
    make: Box<dyn Fn(&str) -> P + Send>,
    /// Indexed by `EventKind as usize`; the slot of `Unknown` is never used.
    known: Vec<P>,
    unknown: HashMap<String, P>,
}

impl<P> PlanCache<P> {
    /// Plans every event type the schema knows with `make`.
    pub(crate) fn new(make: impl Fn(&str) -> P + Send + 'static) -> Self {
        let known =
            EventKind::indexed().into_iter().map(|k| make(k.canonical_name().unwrap_or(""))).collect();
        PlanCache { make: Box::new(make), known, unknown: HashMap::new() }
    }

    /// Calls `apply` with each event and its type's plan, in order.
    pub(crate) fn each<'e>(&mut self, events: &'e [Event], mut apply: impl FnMut(&P, &'e Event)) {
        for event in events {
            let kind = event.kind();
            if kind != EventKind::Unknown {
                if let Some(plan) = self.known.get(kind as usize) {
                    apply(plan, event);
                }
                continue;
            }
            let event_type = event.event_type();
            if !self.unknown.contains_key(event_type) && self.unknown.len() < MAX_UNKNOWN_PLANS {
                self.unknown.insert(event_type.to_string(), (self.make)(event_type));
            }
            match self.unknown.get(event_type) {
                Some(plan) => apply(plan, event),
                None => apply(&(self.make)(event_type), event),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Position, SchemaMode};

    fn event(event_type: &str) -> Event {
        let raw = format!(
            r#"{{"event_id":"e","timestamp":1,"component":"c","event_type":"{event_type}","severity":"INFO","tags":{{}},"context":{{}},"data":{{}}}}"#
        );
        Event::decode(raw.into_bytes().into(), Position::Generator { seq: 0 }, SchemaMode::Lenient)
            .unwrap_or_else(|_| panic!("decodes: {event_type}"))
    }

    #[test]
    fn plans_unknown_types_once_up_to_the_cap_then_per_event() {
        let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = made.clone();
        let mut cache = PlanCache::new(move |t: &str| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            t.to_string()
        });
        let up_front = made.load(std::sync::atomic::Ordering::Relaxed);
        let events: Vec<Event> = (0..MAX_UNKNOWN_PLANS + 10).map(|i| event(&format!("x.{i}"))).collect();
        let twice: Vec<Event> = events.iter().chain(events.iter()).cloned().collect();
        let mut seen = Vec::new();
        cache.each(&twice, |plan, event| {
            assert_eq!(plan, event.event_type(), "each event gets its own type's plan");
            seen.push(plan.clone());
        });
        assert_eq!(seen.len(), twice.len());
        // The first MAX_UNKNOWN_PLANS types are planned once; the 10 beyond the cap
        // are planned every time they are seen.
        let planned = made.load(std::sync::atomic::Ordering::Relaxed) - up_front;
        assert_eq!(planned, MAX_UNKNOWN_PLANS + 2 * 10);
    }
}
