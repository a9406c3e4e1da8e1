//! Retry with exponential backoff, shared by every sink and alert receiver: the
//! first wait is short (a blip heals fast), each failure doubles it, and it never
//! grows past a ceiling (a long outage is polled at a steady rate, not abandoned).

use std::time::Duration;

/// The wait before the next attempt.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    ceiling: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, ceiling: Duration) -> Self {
        Backoff { first, ceiling, next: first }
    }

    /// How long to wait after this failure; the wait after the next one doubles.
    pub(crate) fn after_failure(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.ceiling);
        wait
    }

    /// A success: the next failure waits the first interval again.
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<u64> = (0..4).map(|_| b.after_failure().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.after_failure(), Duration::from_millis(100));
    }
}
