//! Input order for steps that several pipeline workers share.

use std::sync::{Condvar, Mutex, PoisonError};

/// Lets batches through in the order of their sequence numbers: batch `n` waits
/// until batch `n - 1` has passed. Every batch passes every turnstile once.
#[derive(Default)]
pub(crate) struct Turnstile {
    next: Mutex<u64>,
    passed: Condvar,
}

/// A batch's turn at a turnstile; the next batch's turn begins when it is dropped
/// (also when a worker unwinds from a panic, so that the others are not stuck).
pub(crate) struct Turn<'a>(&'a Turnstile);

impl Turnstile {
    pub(crate) fn wait(&self, seq: u64) -> Turn<'_> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        while *next != seq {
            next = self.passed.wait(next).unwrap_or_else(PoisonError::into_inner);
        }
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.next.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.passed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn turns_are_taken_in_sequence_whatever_order_the_threads_arrive_in() {
        let turnstile = Arc::new(Turnstile::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        // Started last-first: each must still pass in sequence.
        let threads: Vec<_> = (0..8u64)
            .rev()
            .map(|seq| {
                let (turnstile, order) = (turnstile.clone(), order.clone());
                std::thread::spawn(move || {
                    let _turn = turnstile.wait(seq);
                    order.lock().expect("not poisoned").push(seq);
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(*order.lock().expect("not poisoned"), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_turn_dropped_by_a_panic_lets_the_next_batch_through() {
        let turnstile = Arc::new(Turnstile::default());
        let first = turnstile.clone();
        let panicked = std::thread::spawn(move || {
            let _turn = first.wait(0);
            panic!("a worker dies during its turn");
        })
        .join();
        assert!(panicked.is_err());
        let _second = turnstile.wait(1);
    }
}
