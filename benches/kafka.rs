//! kafka → pipeline → kafka throughput on a loopback tansu broker, against a
//! baseline measured in the same run: a bare rdkafka consumer draining the same
//! topic. Both are timed from start (group join included) to the last event: for
//! the pipeline, until every event was acknowledged, which means its delivery
//! report came back from the output topic.
//!
//! `cargo bench --bench kafka` (needs `tansu` on PATH: tests/run.sh installs it).
//! Optional: `KAFKA_BENCH_EVENTS=N`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use synaptic_telemetry::app::{self, RunOptions};
use synaptic_telemetry::config::Config;
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let events: usize =
        std::env::var("KAFKA_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let port =
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    let url = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new(std::env::var("TANSU").unwrap_or_else(|_| "tansu".into()))
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
        .expect("tansu on PATH (tests/run.sh installs it)");
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(create_topics(&bootstrap));
    runtime.block_on(produce(&bootstrap, events));
    println!("kafka bench: {events} events in a 6-partition topic on tansu at {bootstrap}");

    let baseline = drain(&bootstrap, events);
    let pipeline = runtime.block_on(pipeline(&bootstrap, events));
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!("baseline  bare consumer drains the topic      {:>9.0} events/s", rate(baseline));
    println!(
        "pipeline  kafka → decode/validate → kafka    {:>9.0} events/s  ratio {:.2}",
        rate(pipeline),
        baseline.as_secs_f64() / pipeline.as_secs_f64()
    );
    let _ = broker.kill();
    let _ = broker.wait();
}

async fn create_topics(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin");
    let topics = [
        NewTopic::new("in", 6, TopicReplication::Fixed(1)),
        NewTopic::new("out", 6, TopicReplication::Fixed(1)),
        NewTopic::new("dlq", 1, TopicReplication::Fixed(1)),
    ];
    admin.create_topics(&topics, &AdminOptions::new()).await.expect("create topics");
}

async fn produce(bootstrap: &str, events: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let config =
        GeneratorConfig { rate: 1000.0, total: 0, seed: 42, malformed_ratio: 0.0, start_ms: Some(1) };
    let mut traffic = Traffic::new(&config, 0);
    let lines: Vec<Vec<u8>> = (0..events).map(|_| traffic.next_event()).collect();
    let mut deliveries = Vec::with_capacity(events);
    for (i, line) in lines.iter().enumerate() {
        let key = i.to_string();
        match producer.send_result(FutureRecord::to("in").payload(line.as_slice()).key(key.as_str())) {
            Ok(d) => deliveries.push(d),
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
    for d in deliveries {
        d.await.expect("report").expect("delivered");
    }
}

fn drain(bootstrap: &str, events: usize) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-baseline")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let started = Instant::now();
    consumer.subscribe(&["in"]).expect("subscribe");
    let mut seen = 0;
    while seen < events {
        assert!(started.elapsed() < Duration::from_secs(300), "baseline did not finish");
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            seen += 1;
        }
    }
    started.elapsed()
}

async fn pipeline(bootstrap: &str, events: usize) -> Duration {
    let text = format!(
        "source: {{type: kafka, brokers: \"{bootstrap}\", topics: [in], group_id: bench-pipeline}}\n\
         sinks: [{{name: out, type: kafka, brokers: \"{bootstrap}\", topic: out}}]\n\
         dead_letter: {{type: kafka, brokers: \"{bootstrap}\", topic: dlq}}\n\
         server: {{listen: \"127.0.0.1:0\"}}\n"
    );
    let config = Config::parse(&text, "bench").expect("bench config");
    let shutdown = CancellationToken::new();
    let address: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let slot = address.clone();
    let options = RunOptions {
        listen: None,
        shutdown: shutdown.clone(),
        on_listening: Some(Box::new(move |addr| {
            if let Ok(mut a) = slot.lock() {
                *a = Some(addr);
            }
        })),
    };
    let started = Instant::now();
    let run = tokio::spawn(app::run(config, options));
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_secs(300), "pipeline did not finish");
        let Some(addr) = address.lock().ok().and_then(|a| *a) else { continue };
        let acked = tokio::task::spawn_blocking(move || acknowledged(addr)).await.unwrap_or(0.0);
        if acked >= events as f64 {
            break started.elapsed();
        }
    };
    shutdown.cancel();
    let summary = run.await.expect("pipeline task").expect("pipeline runs");
    assert_eq!(summary.acknowledged as usize, events);
    elapsed
}

/// `synaptic_telemetry_acknowledged_events_total` from /metrics.
fn acknowledged(addr: SocketAddr) -> f64 {
    let Ok(mut stream) = TcpStream::connect(addr) else { return 0.0 };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix("synaptic_telemetry_acknowledged_events_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
