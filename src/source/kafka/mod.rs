//! The `kafka` source: a consumer-group member with at-least-once delivery.
//!
//! Offsets are never committed automatically. The commit point of each partition is
//! the contiguous watermark of events fully done (see `offsets.rs`), committed every
//! `commit_interval`, synchronously on revoke and at shutdown. On revoke, the source
//! waits (bounded) for the partition's batches in flight, commits, and drops the
//! partition's records it had read but not yet sent: the new owner starts from the
//! commit point and reads them, and nothing was processed twice.

mod config;
pub mod offsets;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prometheus::{IntCounter, IntGauge, IntGaugeVec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;

use super::{Emitter, RawRecord, SourceError, SourceReport};
use crate::ack::Acks;
use crate::event::Position;
use crate::telemetry::Telemetry;
use offsets::{OffsetTracker, TopicPartition};

pub(crate) use config::KafkaSourceConfig;

pub struct KafkaSource {
    config: KafkaSourceConfig,
    offsets: Arc<OffsetTracker>,
    metrics: KafkaMetrics,
}

/// The consumer-group member's metrics.
#[derive(Clone)]
pub(crate) struct KafkaMetrics {
    commits: IntCounter,
    rebalances: IntCounter,
    assigned_partitions: IntGauge,
    paused_partitions: IntGauge,
    /// High watermark minus committed offset, per assigned partition.
    lag: IntGaugeVec,
}

impl KafkaMetrics {
    pub(crate) fn register(telemetry: &Telemetry) -> Self {
        KafkaMetrics {
            commits: telemetry.counter("kafka_commits_total", "Offset commits sent to the group coordinator"),
            rebalances: telemetry.counter("kafka_rebalances_total", "Partition revocations seen"),
            assigned_partitions: telemetry
                .gauge("kafka_assigned_partitions", "Partitions assigned to this member"),
            paused_partitions: telemetry
                .gauge("kafka_paused_partitions", "Partitions paused because the pipeline is full"),
            lag: telemetry.gauge_vec(
                "kafka_consumer_lag",
                "High watermark minus committed offset, per assigned partition",
                &["topic", "partition"],
            ),
        }
    }
}

/// Shared with librdkafka's callbacks.
struct Context {
    offsets: Arc<OffsetTracker>,
    metrics: KafkaMetrics,
    revoke_timeout: Duration,
    /// The batch the source is filling (not yet sent): not waited for on revoke.
    open_batch: Arc<std::sync::atomic::AtomicU64>,
    /// Partitions revoked since the source last looked: their unsent records go.
    revoked: Arc<Mutex<Vec<TopicPartition>>>,
}

/// `topic/partition, …` for logs.
fn describe(list: &TopicPartitionList) -> String {
    let names: Vec<String> =
        list.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect();
    names.join(",")
}

fn tps_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements().iter().map(|e| (Arc::from(e.topic()), e.partition())).collect()
}

fn to_list(points: &[(TopicPartition, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in points {
        // Only fails for an invalid offset value, which a read offset + 1 is not.
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    list
}

impl ClientContext for Context {
    /// Consumer lag per assigned partition, from librdkafka's statistics.
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition.
                if *partition < 0 || p.fetch_state == "none" || p.fetch_state == "stopped" {
                    continue;
                }
                let lag =
                    if p.committed_offset >= 0 { p.hi_offset - p.committed_offset } else { p.consumer_lag };
                if lag >= 0 {
                    self.metrics.lag.with_label_values(&[topic.as_str(), &partition.to_string()]).set(lag);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // Before librdkafka looks up where to start: commit what a refused
            // revoke commit left behind, for the partitions that came back to us.
            let points = self.offsets.take_unconfirmed(&tps_of(list));
            if !points.is_empty() {
                match consumer.commit(&to_list(&points), CommitMode::Sync) {
                    Ok(()) => self.metrics.commits.inc(),
                    Err(e) => {
                        tracing::warn!(error = %e, "commit of offsets refused during the last revoke failed again")
                    }
                }
            }
            return;
        }
        let Rebalance::Revoke(list) = rebalance else { return };
        let tps = tps_of(list);
        self.metrics.rebalances.inc();
        let open = self.open_batch.load(std::sync::atomic::Ordering::Acquire);
        if !self.offsets.wait_drained(&tps, open, self.revoke_timeout) {
            tracing::warn!(partitions = tps.len(), timeout = ?self.revoke_timeout,
                "revoked partitions still had events in flight; they may be delivered twice");
        }
        let points = self.offsets.commit_points(&tps);
        if !points.is_empty() {
            match consumer.commit(&to_list(&points), CommitMode::Sync) {
                Ok(()) => self.metrics.commits.inc(),
                Err(e) => {
                    tracing::warn!(error = %e, "commit on revoke refused; retried if the partitions come back");
                    self.offsets.remember_unconfirmed(&points);
                }
            }
        }
        self.offsets.forget(&tps);
        for (topic, partition) in &tps {
            // Lag of a partition this member no longer owns is not ours to report.
            let _ = self.metrics.lag.remove_label_values(&[topic.as_ref(), partition.to_string().as_str()]);
        }
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.extend(tps);
        }
        tracing::info!(partitions = %describe(list), "partitions revoked");
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "offset commit failed; it is sent again at the next interval");
            let points: Vec<(TopicPartition, i64)> = offsets
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(((Arc::from(e.topic()), e.partition()), o)),
                    _ => None,
                })
                .collect();
            self.offsets.commit_failed(&points);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = %describe(list), "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        self.metrics.assigned_partitions.set(assigned as i64);
    }
}

impl KafkaSource {
    pub(crate) fn new(config: &KafkaSourceConfig, telemetry: &Telemetry) -> Self {
        KafkaSource {
            config: config.clone(),
            offsets: Arc::new(OffsetTracker::default()),
            metrics: KafkaMetrics::register(telemetry),
        }
    }

    /// Consumes until `shutdown`; then waits for what it emitted to be acknowledged
    /// (until `give_up`), commits, and leaves the group.
    pub(crate) async fn run(
        self,
        mut emitter: Emitter,
        mut acks: Acks,
        shutdown: CancellationToken,
        give_up: CancellationToken,
    ) -> Result<SourceReport, SourceError> {
        // Finished batches move the commit points. This runs apart from the consumer
        // loop: a revoke callback waits for them inside `recv`.
        let offsets = self.offsets.clone();
        let follower = tokio::spawn(async move {
            while let Some(notice) = acks.next().await {
                offsets.batch_finished(&notice);
            }
        });
        let open_batch = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let revoked = Arc::new(Mutex::new(Vec::new()));
        let context = Context {
            offsets: self.offsets.clone(),
            metrics: self.metrics.clone(),
            revoke_timeout: self.config.revoke_timeout,
            open_batch: open_batch.clone(),
            revoked: revoked.clone(),
        };
        self.check_connection().await?;
        let consumer = self.consumer(context)?;
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| self.error(e))?;
        tracing::info!(topics = ?self.config.topics, group = %self.config.group_id, "subscribed");

        let mut topics: Vec<Arc<str>> = Vec::new();
        let mut tick = tokio::time::interval(self.config.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            open_batch.store(emitter.open_batch_id(), std::sync::atomic::Ordering::Release);
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = super::linger(emitter.deadline()) => {
                    if emitter.flush().await.is_err() { break }
                    continue;
                }
                _ = tick.tick() => {
                    self.commit(&consumer, CommitMode::Async);
                    continue;
                }
                message = consumer.recv() => message,
            };
            self.drop_revoked(&revoked, &mut emitter);
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    continue;
                }
            };
            // One shared name per topic, not an allocation per message.
            let topic = match topics.iter().find(|t| &***t == message.topic()) {
                Some(t) => t.clone(),
                None => {
                    let t: Arc<str> = Arc::from(message.topic());
                    topics.push(t.clone());
                    t
                }
            };
            let tp = (topic.clone(), message.partition());
            let bytes = Bytes::copy_from_slice(message.payload().unwrap_or_default());
            self.offsets.read(&tp, message.offset(), emitter.open_batch_id());
            let position =
                Position::Kafka { topic, partition: message.partition(), offset: message.offset() };
            let oversize = (bytes.len() > emitter.max_event_bytes()).then_some(bytes.len());
            // Backpressure: rather than let librdkafka keep fetching while the
            // pipeline is full, pause the assignment until the batch is taken.
            let paused = emitter.would_block().then(|| consumer.assignment().ok()).flatten();
            if let Some(list) = &paused {
                if consumer.pause(list).is_ok() {
                    self.metrics.paused_partitions.set(list.count() as i64);
                }
            }
            let sent = emitter.push(RawRecord { bytes, position, oversize }).await;
            if let Some(list) = &paused {
                let _ = consumer.resume(list);
                self.metrics.paused_partitions.set(0);
            }
            if sent.is_err() {
                break;
            }
        }
        // Graceful stop: send what was read, let the pipeline drain it, commit the
        // final watermark, then leave the group so the partitions move at once.
        let _ = emitter.flush().await;
        let read = emitter.emitted();
        drop(emitter);
        // Until every batch has finished or the drain deadline passes (checked
        // between short waits, which block a thread of their own).
        while !give_up.is_cancelled() {
            let offsets = self.offsets.clone();
            let wait = move || offsets.wait_settled(Duration::from_millis(200));
            if tokio::task::spawn_blocking(wait).await.unwrap_or(false) {
                break;
            }
        }
        if self.offsets.pending() > 0 {
            tracing::warn!(
                pending = self.offsets.pending(),
                "stopping with events not acknowledged; they will be read again"
            );
        }
        self.final_commit(&consumer).await;
        // Leaving the group can wait on the coordinator (a rebalance in progress,
        // an unreachable broker): it never holds the exit past the drain deadline.
        let leave = tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        });
        tokio::select! {
            _ = leave => {}
            _ = give_up.cancelled() => tracing::warn!(
                "leaving the consumer group had not finished at the drain deadline; exiting without waiting (the group will time this member out)"
            ),
        }
        // The emitter is gone: the stream ends once the last batch has finished.
        let _ = follower.await;
        Ok(SourceReport { records: read })
    }

    /// With TLS or SASL on, a refused handshake or login ends the start here,
    /// with its reason, instead of librdkafka retrying it forever.
    async fn check_connection(&self) -> Result<(), SourceError> {
        crate::kafka_client::check_if_secured(self.client_config(), "kafka source")
            .await
            .map_err(|message| SourceError::Kafka { brokers: self.config.brokers.clone(), message })
    }

    fn consumer(&self, context: Context) -> Result<StreamConsumer<Context>, SourceError> {
        self.client_config().create_with_context(context).map_err(|e| self.error(e))
    }

    fn client_config(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.config.brokers)
            .set("group.id", &self.config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000")
            // Incremental rebalancing: when a member joins or leaves, only the
            // partitions that move stop; the others keep flowing.
            .set("partition.assignment.strategy", "cooperative-sticky")
            // Bounds what librdkafka prefetches while the pipeline applies backpressure.
            .set("queued.max.messages.kbytes", "16384");
        self.config.security.apply(&mut client);
        for (key, value) in &self.config.properties {
            client.set(key, value);
        }
        client
    }

    /// Commits every partition's point before leaving. A coordinator in the middle
    /// of a rebalance refuses commits; then keep serving the group (messages polled
    /// meanwhile are not taken, and not committed) until it settles, and commit
    /// again, for at most `revoke_timeout`. Without this, a member that leaves during
    /// a rebalance hands its last events to the next owner a second time.
    async fn final_commit(&self, consumer: &StreamConsumer<Context>) {
        // Only points not committed yet: when the last periodic commit already
        // covered everything, there is nothing to do (and nothing to fail).
        let points = self.offsets.take_commits();
        if points.is_empty() {
            tracing::info!("offsets already committed up to the last finished event");
            return;
        }
        let deadline = tokio::time::Instant::now() + self.config.revoke_timeout;
        loop {
            match consumer.commit(&to_list(&points), CommitMode::Sync) {
                Ok(()) => {
                    self.metrics.commits.inc();
                    return;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %e, "final offset commit refused; serving the group and retrying");
                    let _ = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "final offset commit failed; the last events may be read again");
                    return;
                }
            }
        }
    }

    fn commit(&self, consumer: &StreamConsumer<Context>, mode: CommitMode) {
        let points = self.offsets.take_commits();
        if points.is_empty() {
            return;
        }
        match consumer.commit(&to_list(&points), mode) {
            Ok(()) => self.metrics.commits.inc(),
            Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
        }
    }

    /// Drops the unsent records of partitions revoked during the last poll.
    fn drop_revoked(&self, revoked: &Mutex<Vec<TopicPartition>>, emitter: &mut Emitter) {
        let tps = match revoked.lock() {
            Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
            _ => return,
        };
        emitter.retain_open(|record| match &record.position {
            Position::Kafka { topic, partition, .. } => {
                !tps.iter().any(|(t, p)| t == topic && p == partition)
            }
            _ => true,
        });
    }

    fn error(&self, e: KafkaError) -> SourceError {
        SourceError::Kafka { brokers: self.config.brokers.clone(), message: e.to_string() }
    }
}
