//! A circuit breaker per sink and per alert receiver: after `failures` failed
//! attempts in a row the circuit opens and the output is left alone for a
//! cool-down; then one probe is let through (half-open). A probe that succeeds
//! closes the circuit; one that fails opens it again for a longer cool-down, up to
//! `max_cool_down`, each with ±20% jitter so that many instances do not probe in
//! step. While the circuit is closed, failed attempts back off as usual.
//!
//! State changes are logged once each; `sink_circuit_state{sink}` shows the state
//! (0 closed, 1 open, 2 half-open).

use std::time::Duration;

use prometheus::IntGauge;

use crate::decode::yaml::Node;
use crate::decode::{Diagnostics, MapReader};
use crate::retry::Backoff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BreakerConfig {
    pub(crate) failures: u32,
    pub(crate) cool_down: Duration,
    pub(crate) max_cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(30),
        }
    }
}

impl BreakerConfig {
    /// The `circuit_breaker` section of a sink or receiver.
    pub(crate) fn decode(node: &Node, owner: &str, cx: &mut Diagnostics) -> Option<BreakerConfig> {
        let what = format!("the circuit breaker of {owner}");
        let mut map = MapReader::new(node, &what, cx)?;
        let d = BreakerConfig::default();
        let failures = map.or("failures", d.failures, cx);
        let cool_down = map.or("cool_down", d.cool_down, cx);
        let max_cool_down = map.or("max_cool_down", d.max_cool_down.max(cool_down), cx);
        if failures == 0 {
            cx.error(map.key_pos("failures"), format!("{what}: failures must be at least 1"));
        }
        if cool_down.is_zero() || max_cool_down < cool_down {
            cx.error(map.pos(), format!("{what}: cool_down must be positive and at most max_cool_down"));
        }
        map.finish(cx);
        Some(BreakerConfig { failures, cool_down, max_cool_down })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    fn gauge_value(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

/// The first waits between attempts while the circuit is closed.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

pub(crate) struct Breaker {
    owner: String,
    config: BreakerConfig,
    state: State,
    consecutive: u32,
    retry: Backoff,
    cool_down: Duration,
    gauge: IntGauge,
    jitter: u64,
}

impl Breaker {
    pub(crate) fn new(owner: &str, config: BreakerConfig, gauge: IntGauge) -> Self {
        gauge.set(0);
        let seed =
            owner.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
                ^ crate::clock::now_ms() as u64;
        Breaker {
            owner: owner.to_string(),
            cool_down: config.cool_down,
            config,
            state: State::Closed,
            consecutive: 0,
            retry: Backoff::new(FIRST_RETRY, MAX_RETRY),
            gauge,
            jitter: seed | 1,
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    fn set(&mut self, state: State) {
        self.state = state;
        self.gauge.set(state.gauge_value());
    }

    /// An attempt succeeded.
    pub(crate) fn success(&mut self) {
        if self.state != State::Closed {
            tracing::info!(sink = %self.owner, "circuit closed: the output accepts writes again");
        }
        self.set(State::Closed);
        self.consecutive = 0;
        self.retry.reset();
        self.cool_down = self.config.cool_down;
    }

    /// An attempt failed: how long to wait before the next one. The caller logs
    /// the error only when `logged` says the breaker did not already.
    pub(crate) fn failure(&mut self, error: &dyn std::fmt::Display) -> Duration {
        self.consecutive = self.consecutive.saturating_add(1);
        match self.state {
            State::Closed if self.consecutive < self.config.failures => {
                let wait = self.retry.after_failure();
                tracing::warn!(sink = %self.owner, error = %error, retry_in = ?wait, "write failed");
                wait
            }
            State::Closed => {
                let wait = self.jittered(self.cool_down);
                tracing::error!(sink = %self.owner, error = %error, failures = self.consecutive, probe_in = ?wait,
                    "circuit open: the output keeps failing; it is probed once per cool-down and its events wait in its buffer");
                self.set(State::Open);
                wait
            }
            State::Open | State::HalfOpen => {
                self.cool_down = (self.cool_down * 2).min(self.config.max_cool_down);
                let wait = self.jittered(self.cool_down);
                tracing::debug!(sink = %self.owner, error = %error, probe_in = ?wait, "probe failed; circuit stays open");
                self.set(State::Open);
                wait
            }
        }
    }

    /// Called when the wait after a failure is over and the next attempt is about
    /// to be made: an open circuit lets one probe through.
    pub(crate) fn before_attempt(&mut self) {
        if self.state == State::Open {
            self.set(State::HalfOpen);
        }
    }

    /// `d` ± 20%.
    fn jittered(&mut self, d: Duration) -> Duration {
        // xorshift64: cheap and good enough to spread probes.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let unit = (self.jitter % 10_000) as f64 / 10_000.0; // [0, 1)
        d.mul_f64(0.8 + 0.4 * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32) -> Breaker {
        let config = BreakerConfig {
            failures,
            cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(4),
        };
        Breaker::new("t", config, IntGauge::new("g", "g").expect("gauge"))
    }

    #[test]
    fn opens_after_n_failures_probes_with_growing_jittered_cool_down_and_closes_on_success() {
        let mut b = breaker(3);
        assert_eq!(b.failure(&"x"), Duration::from_millis(100));
        assert_eq!(b.failure(&"x"), Duration::from_millis(200));
        assert_eq!(b.state(), State::Closed);
        let first = b.failure(&"x");
        assert_eq!(b.state(), State::Open);
        assert!((800..=1200).contains(&first.as_millis()), "cool-down 1s ± 20%: {first:?}");
        assert_eq!(b.gauge.get(), 1);
        b.before_attempt();
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.gauge.get(), 2);
        let second = b.failure(&"x");
        assert!((1600..=2400).contains(&second.as_millis()), "doubled: {second:?}");
        b.before_attempt();
        let third = b.failure(&"x");
        assert!((3200..=4800).contains(&third.as_millis()), "doubled again: {third:?}");
        b.before_attempt();
        let capped = b.failure(&"x");
        assert!((3200..=4800).contains(&capped.as_millis()), "capped at 4s: {capped:?}");
        b.before_attempt();
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.gauge.get(), 0);
        assert_eq!(b.failure(&"x"), Duration::from_millis(100), "a closed circuit starts over");
    }

    #[test]
    fn jitter_spreads_the_cool_down() {
        let mut b = breaker(1);
        let waits: std::collections::BTreeSet<u128> =
            (0..20).map(|_| b.jittered(Duration::from_secs(1)).as_millis()).collect();
        assert!(waits.len() > 5, "jitter gives different waits: {waits:?}");
        assert!(waits.iter().all(|w| (800..=1200).contains(w)));
    }
}
