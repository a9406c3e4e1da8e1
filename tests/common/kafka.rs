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

/// A client config for `bootstrap`, plaintext.
pub fn base(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    create_topics_with(&base(bootstrap), topics)
}

/// Creates topics with the given client settings (TLS, SASL).
pub fn create_topics_with(client: &ClientConfig, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = client.create().expect("admin client");
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
    produce_with(&base(bootstrap), topic, lines)
}

/// Produces with the given client settings (TLS, SASL).
pub fn produce_with(client: &ClientConfig, topic: &str, lines: &[Vec<u8>]) {
    let producer: FutureProducer = client
        .clone()
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
    read_topic_with(&base(bootstrap), topic, expected, quiet)
}

/// Reads with the given client settings (TLS, SASL).
pub fn read_topic_with(client: &ClientConfig, topic: &str, expected: usize, quiet: Duration) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = client
        .clone()
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

/// A tansu broker that requires SASL (SCRAM-SHA-256/512: tansu 0.6.0 offers no
/// PLAIN), behind stunnel for TLS: clients reach it only through the TLS port,
/// which is what the broker advertises. Users are created before authentication
/// is switched on, so the broker keeps them in SQLite storage (a tansu built with
/// the `libsql` feature: `$TANSU_SQL`, installed by `tests/run.sh`).
pub struct SecureBroker {
    /// `localhost:<stunnel port>`: TLS, then SASL.
    pub tls_bootstrap: String,
    /// The broker itself: SASL over plaintext (a "plaintext broker" for a TLS client).
    pub plain_bootstrap: String,
    /// Client settings of an administrator (SCRAM-SHA-512 over TLS, the client
    /// certificate when required).
    pub admin: ClientConfig,
    _broker: Broker,
    stunnel: Child,
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        let _ = self.stunnel.kill();
        let _ = self.stunnel.wait();
    }
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The tansu built with SQLite storage.
fn tansu_sql() -> Option<String> {
    let path = std::env::var("TANSU_SQL").unwrap_or_else(|_| {
        format!("{}/.cache/synaptic-telemetry/tansu-sql/bin/tansu", std::env::var("HOME").unwrap_or_default())
    });
    std::path::Path::new(&path).is_file().then_some(path)
}

pub const ADMIN_PASSWORD: &str = "admin-scram-password-0x";

/// Starts tansu with SQLite storage, creates the SCRAM `users` (`(name, password,
/// 256 | 512)`, plus `admin`) and the topics, restarts it with authentication on,
/// and puts stunnel in front with the PKI's server certificate (client
/// certificates required when `mutual`). `None` when tansu-sql or stunnel is
/// missing.
pub fn secure_tansu(
    dir: &std::path::Path,
    pki: &super::pki::Pki,
    mutual: bool,
    users: &[(&str, &str, u16)],
    topics: &[(&str, i32)],
) -> Option<SecureBroker> {
    let binary = tansu_sql()?;
    let (broker_port, tls_port) = (free_port(), free_port());
    let listen = format!("tcp://127.0.0.1:{broker_port}");
    let advertised = format!("tcp://localhost:{tls_port}");
    // tansu reads the SQLite path relative to its working directory.
    let storage = format!("sqlite://tansu-{broker_port}.db");
    let start = |authentication: bool| {
        let mut cmd = Command::new(&binary);
        cmd.current_dir(dir);
        cmd.args(["broker", "--storage-engine", &storage, "--listener-url", &listen]);
        cmd.args(["--advertised-listener-url", &advertised]);
        if authentication {
            cmd.arg("--authentication");
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("tansu-sql starts");
        wait_listening(broker_port, "tansu");
        Broker { bootstrap: format!("127.0.0.1:{broker_port}"), child }
    };
    {
        let open = start(false);
        let admin = [("admin", ADMIN_PASSWORD, 512)];
        for (name, password, bits) in users.iter().chain(admin.iter()) {
            let mechanism = if *bits == 256 { "scram256" } else { "scram512" };
            let status = Command::new(&binary)
                .args(["user", "create", name, password, "--broker", &listen, "--mechanism", mechanism])
                .stdout(Stdio::null())
                .status()
                .expect("tansu user create");
            assert!(status.success(), "creating user {name}");
        }
        // Topics with tansu's own client: the address the broker advertises is
        // not up yet, so an admin client following metadata would not get there.
        for (name, partitions) in topics {
            let status = Command::new(&binary)
                .args(["topic", "create", name, "--broker", &listen, "--partitions", &partitions.to_string()])
                .stdout(Stdio::null())
                .status()
                .expect("tansu topic create");
            assert!(status.success(), "creating topic {name}");
        }
        drop(open);
    }
    let broker = start(true);
    let conf = dir.join(format!("stunnel-{tls_port}.conf"));
    let mut text = format!(
        "foreground = yes\npid =\ndebug = 4\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{broker_port}\ncert = {}\nkey = {}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    if mutual {
        text.push_str(&format!("CAfile = {}\nverifyChain = yes\nrequireCert = yes\n", pki.ca.display()));
    }
    std::fs::write(&conf, text).expect("stunnel config");
    let stunnel =
        Command::new("stunnel").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
    let mut secure = SecureBroker {
        tls_bootstrap: format!("localhost:{tls_port}"),
        plain_bootstrap: broker.bootstrap.clone(),
        admin: ClientConfig::new(),
        _broker: broker,
        stunnel,
    };
    wait_listening(tls_port, "stunnel");
    secure
        .admin
        .set("bootstrap.servers", &secure.tls_bootstrap)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "admin")
        .set("sasl.password", ADMIN_PASSWORD)
        .set("ssl.ca.location", pki.ca.display().to_string());
    if mutual {
        secure
            .admin
            .set("ssl.certificate.location", pki.client_cert.display().to_string())
            .set("ssl.key.location", pki.client_key.display().to_string());
    }
    Some(secure)
}
