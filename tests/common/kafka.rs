//! Kafka test plumbing: a broker process on loopback (librdkafka's mock cluster in
//! a helper process, or a real tansu broker), producing test traffic, reading a
//! topic back. Every wait is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

pub struct Broker {
    pub bootstrap: String,
    child: Child,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Takes mock broker `id` down (`up: false`: connections cut and refused, its
    /// data kept) or up again.
    pub fn set_broker(&mut self, id: i32, up: bool) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("a mock cluster's stdin");
        let command = if up { "up" } else { "down" };
        writeln!(stdin, "{command} {id}").and_then(|()| stdin.flush()).expect("command the mock cluster");
    }
}

/// librdkafka's mock cluster in its own process, so pipeline processes can share it.
pub fn mock_cluster(topics: &[(&str, i32)]) -> Broker {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synaptic-kafka-mock"));
    for (name, partitions) in topics {
        cmd.arg("--topic").arg(format!("{name}:{partitions}"));
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("mock cluster starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("mock cluster prints its address");
    let bootstrap = line.trim().strip_prefix("bootstrap=").expect("bootstrap line").to_string();
    Broker { bootstrap, child }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A tansu broker (memory storage) on a free loopback port; topics created through
/// the Kafka admin API.
pub fn tansu(topics: &[(&str, i32)]) -> Option<Broker> {
    let binary = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&binary)
        .args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let broker = Broker { bootstrap: format!("127.0.0.1:{port}"), child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    create_topics(&broker.bootstrap, topics);
    Some(broker)
}

pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|(name, p)| NewTopic::new(name, *p, TopicReplication::Fixed(1))).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime.block_on(admin.create_topics(&new, &options)).expect("create topics");
    for result in results {
        if let Err((name, code)) = result {
            panic!("creating topic {name}: {code}");
        }
    }
}

/// Produces `lines` to `topic`, waiting for every delivery.
pub fn produce(bootstrap: &str, topic: &str, lines: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for chunk in lines.chunks(10_000) {
            let keys: Vec<String> = (0..chunk.len()).map(|i| i.to_string()).collect();
            let mut deliveries = Vec::with_capacity(chunk.len());
            for (line, key) in chunk.iter().zip(&keys) {
                // `send_result` enqueues now; the returned future only waits for
                // the delivery report.
                let record = FutureRecord::to(topic).payload(line.as_slice()).key(key.as_str());
                match producer.send_result(record) {
                    Ok(delivery) => deliveries.push(delivery),
                    Err((e, _)) => panic!("enqueueing test traffic: {e}"),
                }
            }
            for delivery in deliveries {
                let report = delivery.await.expect("delivery report");
                report.expect("test traffic delivered");
            }
        }
    });
}

/// Reads `topic` from the beginning until `expected` messages arrived or nothing
/// new came for `quiet`.
pub fn read_topic(bootstrap: &str, topic: &str, expected: usize, quiet: Duration) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while out.len() < expected && last.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                out.push(message.payload().unwrap_or_default().to_vec());
                last = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Follows topics from the beginning, counting each line (by `key`) until every
/// expected key was seen at least once, or `timeout`. Returns the counts.
pub fn follow_until_complete(
    bootstrap: &str,
    topics: &[&str],
    expected: &std::collections::HashSet<String>,
    key: impl Fn(&[u8]) -> String,
    timeout: Duration,
) -> std::collections::HashMap<String, usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("follower-{}-{}", std::process::id(), topics.join("-")))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("follower");
    consumer.subscribe(topics).expect("subscribe");
    let mut counts = std::collections::HashMap::new();
    let mut seen = 0;
    let deadline = Instant::now() + timeout;
    while seen < expected.len() && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let k = key(message.payload().unwrap_or_default());
            let count = counts.entry(k.clone()).or_insert(0);
            if *count == 0 && expected.contains(&k) {
                seen += 1;
            }
            *count += 1;
        }
    }
    // Whatever was still on its way (late duplicates) within a short quiet period.
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            *counts.entry(key(message.payload().unwrap_or_default())).or_insert(0) += 1;
            last = Instant::now();
        }
    }
    counts
}
