//! The event-time clock: for a replay, or a run over recorded events, the rules
//! are evaluated at the time the events say rather than on the wall clock.
//!
//! The clock is the latest event timestamp seen (it never goes back: a late
//! event counts at the clock's time, as it would live). Evaluations happen at
//! every `interval` tick of event time the stream crosses, each after the events
//! before it were fed and before the events after it — what a live engine
//! evaluating every `interval` would have seen. So a recorded hour of traffic
//! replayed in a second fires exactly what it would have fired over the hour,
//! and a recording from last year does not make every `absent` rule fire.

use crate::event::Event;

/// Most evaluations one advance makes. A jump in event time longer than this
/// many intervals (a recording with a day's gap) is evaluated at its first
/// ticks and then at its end, so a single timestamp cannot make the engine loop
/// for as long as the gap is long.
pub(crate) const MAX_TICKS_PER_ADVANCE: u32 = 100_000;

#[derive(Debug, Clone)]
pub struct EventClock {
    interval_ms: i64,
    /// The latest event time; `None` before the first event.
    now_ms: Option<i64>,
    /// The next evaluation's time.
    next_tick_ms: i64,
}

impl EventClock {
    pub fn new(interval: std::time::Duration) -> Self {
        EventClock { interval_ms: (interval.as_millis() as i64).max(1), now_ms: None, next_tick_ms: i64::MIN }
    }

    /// The clock's time: the latest event time seen.
    pub fn now_ms(&self) -> Option<i64> {
        self.now_ms
    }

    /// Feeds `events` in order, cut at the evaluation ticks they cross:
    /// `feed(run, now)` gets each run of events with the clock's time after it,
    /// `evaluate(tick)` is called at each tick between runs.
    pub fn advance(
        &mut self,
        events: &[Event],
        mut feed: impl FnMut(&[Event], i64),
        mut evaluate: impl FnMut(i64),
    ) {
        let mut start = 0;
        for (i, event) in events.iter().enumerate() {
            let ts = event.timestamp_ms();
            let now = match self.now_ms {
                None => {
                    // The first tick is one interval after the first event.
                    self.next_tick_ms = ts.saturating_add(self.interval_ms);
                    self.now_ms = Some(ts);
                    continue;
                }
                Some(now) => now,
            };
            if ts < self.next_tick_ms {
                self.now_ms = Some(now.max(ts));
                continue;
            }
            // This event is at or past the next tick: what came before it is fed,
            // and the ticks up to its time are evaluated.
            if start < i {
                feed(&events[start..i], now);
            }
            start = i;
            self.tick_until(ts, &mut evaluate);
            self.now_ms = Some(now.max(ts));
        }
        if let (Some(now), true) = (self.now_ms, start < events.len()) {
            feed(&events[start..], now);
        }
    }

    /// Evaluates every tick up to and including `until` (at the end of a
    /// replay: the last event's time, so what it holds is judged).
    pub fn tick_until(&mut self, until: i64, evaluate: &mut impl FnMut(i64)) {
        let mut ticks = 0u32;
        while self.next_tick_ms <= until {
            if ticks == MAX_TICKS_PER_ADVANCE {
                // A gap this long: judged once at its end.
                evaluate(until);
                self.next_tick_ms = until.saturating_add(self.interval_ms);
                break;
            }
            evaluate(self.next_tick_ms);
            self.next_tick_ms = self.next_tick_ms.saturating_add(self.interval_ms);
            ticks += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Position, SchemaMode};
    use bytes::Bytes;

    fn at(ms: i64) -> Event {
        let text = format!(
            r#"{{"event_id":"e{ms}","timestamp":{ms},"component":"agent","event_type":"system.health","severity":"INFO","tags":{{}},"context":{{}},"data":{{}}}}"#
        );
        Event::decode(Bytes::from(text), Position::Generator { seq: 0 }, SchemaMode::Strict).expect("valid")
    }

    #[test]
    fn runs_are_cut_at_the_ticks_they_cross() {
        let mut clock = EventClock::new(std::time::Duration::from_secs(10));
        let events: Vec<Event> = [0, 4_000, 9_999, 10_000, 25_000, 24_000, 31_000].map(at).into();
        let mut log = Vec::new();
        let log_cell = std::cell::RefCell::new(&mut log);
        clock.advance(
            &events,
            |run, now| {
                let times: Vec<i64> = run.iter().map(Event::timestamp_ms).collect();
                log_cell.borrow_mut().push(format!("feed {times:?} now {now}"));
            },
            |tick| log_cell.borrow_mut().push(format!("eval {tick}")),
        );
        assert_eq!(
            log,
            [
                "feed [0, 4000, 9999] now 9999",
                "eval 10000",
                "feed [10000] now 10000",
                "eval 20000",
                "feed [25000, 24000] now 25000",
                "eval 30000",
                "feed [31000] now 31000",
            ]
        );
        assert_eq!(clock.now_ms(), Some(31_000));
    }

    #[test]
    fn a_huge_gap_is_bounded() {
        let mut clock = EventClock::new(std::time::Duration::from_millis(1));
        let events: Vec<Event> = [0, i64::MAX / 4].map(at).into();
        let mut evaluations = 0u64;
        clock.advance(&events, |_, _| {}, |_| evaluations += 1);
        assert_eq!(evaluations, u64::from(MAX_TICKS_PER_ADVANCE) + 1);
    }
}
