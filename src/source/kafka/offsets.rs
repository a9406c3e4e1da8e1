//! At-least-once bookkeeping for a Kafka consumer: per partition, the offsets read but
//! not yet fully processed. The commit point of a partition is its lowest pending
//! offset (or, with nothing pending, one past the last offset read): the contiguous
//! watermark, whatever order batches are acknowledged in.
//!
//! Shared between the source task (reads), the acknowledgement follower (batches
//! done) and the rebalance callback (waits for a revoked partition to drain), hence
//! a mutex and a condition variable rather than a channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ack::{AckNotice, Outcome};

/// A topic and a partition.
pub(crate) type TopicPartition = (Arc<str>, i32);

#[derive(Debug, Default)]
struct Partition {
    /// Offset → the batch it was read into.
    pending: BTreeMap<i64, u64>,
    /// One past the highest offset read.
    next: Option<i64>,
    /// What was last committed (or is being committed).
    committed: Option<i64>,
}

impl Partition {
    fn commit_point(&self) -> Option<i64> {
        self.pending.keys().next().copied().or(self.next)
    }
}

#[derive(Debug, Default)]
struct State {
    partitions: HashMap<TopicPartition, Partition>,
    /// Batch → the offsets it holds, to clear them when it is done.
    batches: HashMap<u64, Vec<(TopicPartition, i64)>>,
    /// Batches whose delivery failed: their offsets stay pending, so the commit
    /// point never passes them.
    failed: Vec<u64>,
    /// Commit points of revoked partitions whose commit the coordinator refused
    /// (some refuse commits during a rebalance): committed on the next assignment.
    unconfirmed: HashMap<TopicPartition, i64>,
}

#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    state: Mutex<State>,
    changed: Condvar,
}

impl OffsetTracker {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug; the state is still
        // consistent bookkeeping, so keep going with it rather than crash.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that `offset` of `tp` was read into batch `batch_id`.
    pub(crate) fn read(&self, tp: &TopicPartition, offset: i64, batch_id: u64) {
        let mut state = self.lock();
        let partition = state.partitions.entry(tp.clone()).or_default();
        partition.pending.insert(offset, batch_id);
        partition.next = Some(partition.next.map_or(offset + 1, |n| n.max(offset + 1)));
        state.batches.entry(batch_id).or_default().push((tp.clone(), offset));
    }

    /// A batch is finished. Done clears its offsets; failed keeps them pending.
    pub(crate) fn batch_finished(&self, notice: &AckNotice) {
        let mut state = self.lock();
        match notice.outcome {
            Outcome::Done => {
                if let Some(offsets) = state.batches.remove(&notice.batch_id) {
                    for (tp, offset) in offsets {
                        if let Some(p) = state.partitions.get_mut(&tp) {
                            p.pending.remove(&offset);
                        }
                    }
                }
            }
            Outcome::Failed => state.failed.push(notice.batch_id),
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Commit points that moved since the last call, marked as committed.
    pub(crate) fn take_commits(&self) -> Vec<(TopicPartition, i64)> {
        let mut state = self.lock();
        let mut out = Vec::new();
        for (tp, p) in &mut state.partitions {
            if let Some(point) = p.commit_point() {
                if p.committed != Some(point) {
                    p.committed = Some(point);
                    out.push((tp.clone(), point));
                }
            }
        }
        out
    }

    /// Waits until `done` holds for the state, or the timeout passes; returns
    /// whether it holds. Woken by every finished batch.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if done(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits until no batch older than `open_batch` holds offsets of `tps`, or the
    /// timeout passes; returns whether they drained. The open batch (not yet sent
    /// to the pipeline) is not waited for: the caller drops its records instead.
    pub(crate) fn wait_drained(&self, tps: &[TopicPartition], open_batch: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |state| {
            !tps.iter().any(|tp| {
                state.partitions.get(tp).is_some_and(|p| p.pending.values().any(|&b| b < open_batch))
            })
        })
    }

    /// The commit points of `tps` now (for a synchronous commit on revoke).
    pub(crate) fn commit_points(&self, tps: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let mut state = self.lock();
        tps.iter()
            .filter_map(|tp| {
                let p = state.partitions.get_mut(tp)?;
                let point = p.commit_point()?;
                p.committed = Some(point);
                Some((tp.clone(), point))
            })
            .collect()
    }

    /// Forgets revoked partitions: their unsent records are dropped by the caller,
    /// and another consumer now owns them.
    pub(crate) fn forget(&self, tps: &[TopicPartition]) {
        let mut state = self.lock();
        for tp in tps {
            state.partitions.remove(tp);
        }
        for offsets in state.batches.values_mut() {
            offsets.retain(|(tp, _)| !tps.contains(tp));
        }
    }

    /// A commit of these points failed: commit them again next time.
    pub(crate) fn commit_failed(&self, points: &[(TopicPartition, i64)]) {
        let mut state = self.lock();
        for (tp, offset) in points {
            if let Some(p) = state.partitions.get_mut(tp) {
                if p.committed == Some(*offset) {
                    p.committed = None;
                }
            }
        }
    }

    /// Revoked partitions whose final commit was refused: kept for the next assign.
    pub(crate) fn remember_unconfirmed(&self, points: &[(TopicPartition, i64)]) {
        self.lock().unconfirmed.extend(points.iter().cloned());
    }

    /// The unconfirmed points of partitions assigned again (and forgets the rest:
    /// another member owns those now).
    pub(crate) fn take_unconfirmed(&self, assigned: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let mut state = self.lock();
        let taken = state.unconfirmed.drain().filter(|(tp, _)| assigned.contains(tp)).collect();
        taken
    }

    /// Whether anything read is still unfinished (failed batches count).
    pub(crate) fn pending(&self) -> usize {
        self.lock().partitions.values().map(|p| p.pending.len()).sum()
    }

    /// Waits until nothing is pending but what failed batches hold (those never
    /// finish), or the timeout passes; returns whether nothing is pending at all.
    #[cfg(test)]
    pub(crate) fn wait_all_done(&self, timeout: Duration) -> bool {
        self.wait_settled(timeout);
        self.pending() == 0
    }

    /// Waits up to `timeout` until every batch emitted has finished, acknowledged or
    /// failed; whether they all have.
    pub(crate) fn wait_settled(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, Self::all_settled)
    }

    fn all_settled(state: &State) -> bool {
        let failed: usize = state.failed.iter().filter_map(|b| state.batches.get(b)).map(Vec::len).sum();
        let pending: usize = state.partitions.values().map(|p| p.pending.len()).sum();
        pending <= failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        (Arc::from("t"), p)
    }

    fn done(batch_id: u64) -> AckNotice {
        AckNotice { batch_id, events: 1, outcome: Outcome::Done }
    }

    #[test]
    fn commit_point_is_the_contiguous_watermark_under_out_of_order_acks() {
        let t = OffsetTracker::default();
        for (offset, batch) in [(10, 1), (11, 1), (12, 2), (13, 3)] {
            t.read(&tp(0), offset, batch);
        }
        assert_eq!(t.take_commits(), vec![(tp(0), 10)]);
        t.batch_finished(&done(3));
        t.batch_finished(&done(2));
        assert_eq!(t.take_commits(), vec![], "batch 1 still holds offset 10");
        t.batch_finished(&done(1));
        assert_eq!(t.take_commits(), vec![(tp(0), 14)]);
    }

    #[test]
    fn a_failed_batch_holds_the_watermark() {
        let t = OffsetTracker::default();
        t.read(&tp(0), 5, 1);
        t.read(&tp(0), 6, 2);
        t.batch_finished(&AckNotice { batch_id: 1, events: 1, outcome: Outcome::Failed });
        t.batch_finished(&done(2));
        assert_eq!(t.take_commits(), vec![(tp(0), 5)]);
        assert!(!t.wait_all_done(Duration::from_millis(1)));
    }

    #[test]
    fn revoke_waits_for_sent_batches_only() {
        let t = Arc::new(OffsetTracker::default());
        t.read(&tp(1), 0, 1);
        t.read(&tp(1), 1, 2); // batch 2 is the open one
        assert!(!t.wait_drained(&[tp(1)], 2, Duration::from_millis(20)));
        let t2 = t.clone();
        let acker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            t2.batch_finished(&done(1));
        });
        assert!(t.wait_drained(&[tp(1)], 2, Duration::from_secs(5)));
        let _ = acker.join();
        assert_eq!(t.commit_points(&[tp(1)]), vec![(tp(1), 1)], "stops before the unsent offset");
        t.forget(&[tp(1)]);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_refused_revoke_commit_is_retried_only_for_partitions_assigned_again() {
        let t = OffsetTracker::default();
        t.remember_unconfirmed(&[(tp(0), 40), (tp(1), 7)]);
        assert_eq!(t.take_unconfirmed(&[tp(1), tp(2)]), vec![(tp(1), 7)]);
        assert_eq!(t.take_unconfirmed(&[tp(0)]), vec![], "partition 0 went to another member");
    }

    #[test]
    fn a_failed_commit_is_sent_again() {
        let t = OffsetTracker::default();
        t.read(&tp(0), 0, 1);
        t.batch_finished(&done(1));
        let points = t.take_commits();
        assert_eq!(points, vec![(tp(0), 1)]);
        assert_eq!(t.take_commits(), vec![]);
        t.commit_failed(&points);
        assert_eq!(t.take_commits(), vec![(tp(0), 1)]);
    }
}
