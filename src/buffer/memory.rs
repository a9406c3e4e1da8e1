//! A bounded queue in memory between a buffer's intake and its delivery.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

struct State<T> {
    items: VecDeque<(T, u64, u64)>,
    events: u64,
    bytes: u64,
    closed: bool,
}

pub(crate) struct MemoryQueue<T> {
    max_events: u64,
    max_bytes: u64,
    state: Mutex<State<T>>,
    /// An item was pushed or the queue was closed.
    pushed: Notify,
    /// An item was taken: there may be room.
    taken: Notify,
}

impl<T> MemoryQueue<T> {
    pub(crate) fn new(max_events: u64, max_bytes: u64) -> Self {
        MemoryQueue {
            max_events,
            max_bytes,
            state: Mutex::new(State { items: VecDeque::new(), events: 0, bytes: 0, closed: false }),
            pushed: Notify::new(),
            taken: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // Every update is whole under the lock; a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item of `events` events and `bytes` bytes, or gives it back when
    /// there is no room. An empty queue takes an item of any size, so an item
    /// bigger than the limits still passes, alone.
    pub(crate) fn try_push(&self, item: T, events: u64, bytes: u64) -> Result<(), T> {
        let mut state = self.lock();
        let fits = state.events + events <= self.max_events && state.bytes + bytes <= self.max_bytes;
        if !fits && !state.items.is_empty() {
            return Err(item);
        }
        state.events += events;
        state.bytes += bytes;
        state.items.push_back((item, events, bytes));
        drop(state);
        self.pushed.notify_one();
        Ok(())
    }

    /// Whether an item of this size would be taken now.
    pub(crate) fn fits(&self, events: u64, bytes: u64) -> bool {
        let state = self.lock();
        state.items.is_empty()
            || (state.events + events <= self.max_events && state.bytes + bytes <= self.max_bytes)
    }

    /// Waits until an item of this size would be taken. With one producer, the
    /// push that follows succeeds.
    pub(crate) async fn wait_for_room(&self, events: u64, bytes: u64) {
        loop {
            let room = self.taken.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.fits(events, bytes) {
                return;
            }
            room.await;
        }
    }

    /// The oldest item; waits for one. `None` once closed and empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        loop {
            let pushed = self.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some((item, events, bytes)) = state.items.pop_front() {
                    state.events -= events;
                    state.bytes -= bytes;
                    drop(state);
                    self.taken.notify_one();
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            pushed.await;
        }
    }

    /// No more pushes: `pop` returns `None` once the queue is empty.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.pushed.notify_one();
    }

    /// Items, events and bytes queued.
    pub(crate) fn size(&self) -> (u64, u64, u64) {
        let state = self.lock();
        (state.items.len() as u64, state.events, state.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounds_by_events_and_bytes_and_takes_one_oversize_item_when_empty() {
        let q = MemoryQueue::new(10, 100);
        assert!(q.try_push("a", 6, 10).is_ok());
        assert_eq!(q.try_push("b", 5, 10), Err("b"), "11 events > 10");
        assert_eq!(q.try_push("c", 1, 91), Err("c"), "101 bytes > 100");
        assert!(q.try_push("d", 4, 90).is_ok());
        assert_eq!(q.size(), (2, 10, 100));
        assert_eq!(q.pop().await, Some("a"));
        assert_eq!(q.pop().await, Some("d"));
        assert!(q.try_push("huge", 1000, 10_000).is_ok(), "an empty queue takes anything");
        assert_eq!(q.try_push("e", 1, 1), Err("e"));
        q.close();
        assert_eq!(q.pop().await, Some("huge"));
        assert_eq!(q.pop().await, None);
    }

    #[tokio::test]
    async fn waiting_for_room_ends_when_an_item_is_taken() {
        let q = std::sync::Arc::new(MemoryQueue::new(1, 100));
        assert!(q.try_push(1, 1, 1).is_ok());
        let q2 = q.clone();
        let waiting = tokio::spawn(async move {
            q2.wait_for_room(1, 1).await;
            q2.try_push(2, 1, 1).is_ok()
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the push waits while the queue is full");
        assert_eq!(q.pop().await, Some(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("push finished")
            .expect("join");
        assert_eq!(q.pop().await, Some(2));
    }
}
