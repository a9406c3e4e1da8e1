//! Helpers for the integration tests: the built binary, its HTTP endpoints, and
//! bounded waits (every wait here ends by itself).

#![allow(dead_code)]

pub mod kafka;
pub mod pki;
pub mod plugins;
pub mod receiver;
pub mod tls_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_synaptic-telemetry");

pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("RUST_LOG", "info");
    cmd
}

/// A running pipeline whose stderr is collected line by line.
pub struct Running {
    pub child: Child,
    pub stderr: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("binary starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, stderr: rx, log: Vec::new() }
    }

    /// Waits (bounded) for the log line announcing the HTTP address.
    pub fn wait_for_address(&mut self, timeout: Duration) -> SocketAddr {
        let line = self.wait_for_line("serving /metrics", timeout);
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        addr.parse().unwrap_or_else(|e| panic!("bad address {addr:?}: {e}"))
    }

    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    panic!("no line with {needle:?} within {timeout:?}; log so far:\n{}", self.log.join("\n"))
                }
            }
        }
    }

    /// SIGKILL, then the same bookkeeping as `finish` (its log is kept too).
    pub fn child_kill(mut self) {
        let _ = self.child.kill();
        let _ = self.finish(Duration::from_secs(10));
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} failed");
    }

    /// Waits (bounded) for exit; returns the exit code and the summary JSON.
    pub fn finish(self, timeout: Duration) -> (i32, serde_json::Value) {
        let (code, summary, _) = self.finish_with_log(timeout);
        (code, summary)
    }

    /// Like `finish`, with every log line the process wrote.
    pub fn finish_with_log(mut self, timeout: Duration) -> (i32, serde_json::Value, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                // Everything it wrote, not only what a wait has read so far.
                while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(1)) {
                    self.log.push(line);
                }
                panic!("process did not exit within {timeout:?}; log:\n{}", self.log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        if let Ok(path) = std::env::var("TEST_LOG_DIR") {
            let file = std::path::Path::new(&path).join(format!("member-{}.log", self.child.id()));
            let _ = std::fs::write(file, self.log.join("\n"));
        }
        let summary = self
            .log
            .iter()
            .find_map(|l| l.strip_prefix("synaptic-telemetry summary "))
            .map(|json| serde_json::from_str(json).expect("summary is JSON"))
            .unwrap_or(serde_json::Value::Null);
        (code, summary, std::mem::take(&mut self.log))
    }
}

/// A test that fails midway must not leave its pipeline running.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of one sample in Prometheus text format, by its exact series text.
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Lines of a file; bytes that are not UTF-8 are replaced (malformed input has some).
pub fn read_lines(path: &Path) -> Vec<String> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The retention class the spec's table (the retention step's default) gives an
/// event: an independent statement of the table for tests to check against.
pub fn spec_retention_class(event: &serde_json::Value) -> &'static str {
    let t = event["event_type"].as_str().unwrap_or("");
    if matches!(event["severity"].as_str(), Some("ERROR" | "FATAL"))
        || t.starts_with("security.")
        || t.starts_with("consensus.")
    {
        "high"
    } else if t.starts_with("task.") || t.starts_with("mesh.") {
        "medium"
    } else {
        "low"
    }
}

/// A line in comparable form: JSON objects re-serialized (keys sorted), with the one
/// change the pipeline makes to a valid event by itself undone: an alias event_type
/// is canonicalized and the original kept in a tag. Anything else stays as it is.
pub fn comparable(line: &str) -> String {
    let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    let original =
        doc.get_mut("tags").and_then(|t| t.as_object_mut()).and_then(|t| t.remove("original_event_type"));
    if let Some(original) = original {
        doc.insert("event_type".into(), original);
    }
    serde_json::to_string(&doc).unwrap_or_default()
}

pub fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A service process (Prometheus, InfluxDB, Alertmanager) stopped when the test
/// ends, however it ends.
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `probe` every 200 ms until it gives a value; fails after 30 s.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 30s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A real Alertmanager (Debian's prometheus-alertmanager) on a loopback port,
/// with `config` as its configuration; returns when it is ready.
pub fn alertmanager(dir: &Path, config: &str) -> (Service, SocketAddr) {
    alertmanager_on(dir, config, free_port())
}

/// Like `alertmanager`, on a port chosen beforehand (to start it late).
pub fn alertmanager_on(dir: &Path, config: &str, port: u16) -> (Service, SocketAddr) {
    std::fs::write(dir.join("alertmanager.yml"), config).expect("alertmanager config");
    let service = Service(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.join("alertmanager-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed (tests/run.sh installs it)"),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_for("Alertmanager is ready", || {
        std::panic::catch_unwind(|| http_get(addr, "/-/ready")).ok().filter(|(s, _)| *s == 200)
    });
    (service, addr)
}

/// A GET answered 200 with JSON (`None` while the service does not answer so).
pub fn get_json(addr: SocketAddr, path_and_query: &str) -> Option<serde_json::Value> {
    let (status, body) = std::panic::catch_unwind(|| http_get(addr, path_and_query)).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

/// Alertmanager's active alerts (`None` while it does not answer).
pub fn active_alerts(addr: SocketAddr) -> Option<Vec<serde_json::Value>> {
    get_json(addr, "/api/v2/alerts?active=true")?.as_array().cloned()
}

/// A real InfluxDB 1.x (Debian's influxdb) on loopback ports, its data under
/// `dir/influx`, with the `codex_metrics` database created. Stopping it (drop)
/// and calling this again with the same `dir` and `ports` brings the same data
/// back on the same address.
pub fn influxdb_on(dir: &Path, ports: (u16, u16)) -> (Service, SocketAddr) {
    let influxd = ["/usr/bin/influxd", "/usr/sbin/influxd"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect("`influxd` is not installed: tests/run.sh installs it (Debian package influxdb)");
    let (http_port, rpc_port) = ports;
    let root = dir.join("influx");
    let config = dir.join("influxdb.conf");
    std::fs::write(
        &config,
        format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{root}/meta\"\n\
             [data]\n  dir = \"{root}/data\"\n  wal-dir = \"{root}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{http_port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n",
            root = root.display()
        ),
    )
    .expect("influx config");
    let service = Service(
        Command::new(influxd)
            .arg("-config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("influxd starts"),
    );
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    wait_for("InfluxDB answers", || {
        std::panic::catch_unwind(|| http_get(addr, "/ping")).ok().filter(|(s, _)| *s == 204)
    });
    let create = Command::new("curl")
        .args([
            "-sf",
            "-XPOST",
            &format!("http://{addr}/query"),
            "--data-urlencode",
            "q=CREATE DATABASE codex_metrics",
        ])
        .stdout(Stdio::null())
        .status();
    assert!(create.is_ok_and(|s| s.success()), "database created");
    (service, addr)
}

/// [`influxdb_on`] on two free ports.
pub fn influxdb(dir: &Path) -> (Service, SocketAddr) {
    influxdb_on(dir, (free_port(), free_port()))
}

/// How many points InfluxDB holds for `event_type` (its measurement).
pub fn influx_points(influx: SocketAddr, event_type: &str) -> u64 {
    let q = format!("SELECT count(*) FROM \"{event_type}\" GROUP BY *");
    let encoded = url_encode(&q);
    let Some(answer) = get_json(influx, &format!("/query?db=codex_metrics&epoch=ms&q={encoded}")) else {
        return 0;
    };
    // count(*) counts per field; within one series (one tag set) the largest is
    // its number of points: events of one component share their fields.
    let series = answer["results"][0]["series"].as_array().cloned().unwrap_or_default();
    series
        .iter()
        .map(|s| {
            let columns = s["columns"].as_array().cloned().unwrap_or_default();
            let values = s["values"][0].as_array().cloned().unwrap_or_default();
            columns
                .iter()
                .zip(&values)
                .filter(|(c, _)| c.as_str() != Some("time"))
                .filter_map(|(_, v)| v.as_u64())
                .max()
                .unwrap_or(0)
        })
        .sum()
}

/// Rules over `test.probe` events (`data.down`, `data.latency_ms`): a critical
/// and a warning per component.
pub const PROBE_RULES: &str = r#"
rules:
  - name: ComponentDown
    tier: critical
    description: "reads test.probe (down)"
    match: { event_type: test.probe }
    group_by: [component]
    condition:
      threshold: { field: data.down, above: 0 }
    annotations:
      summary: "{{ component }} is down"
  - name: Slow
    tier: warning
    description: "reads test.probe (latency_ms)"
    match: { event_type: test.probe }
    group_by: [component]
    condition:
      threshold: { field: data.latency_ms, above: 100 }
    annotations:
      summary: "{{ component }} answers in {{ value }} ms"
"#;

/// Alertmanager groups by alert name, so the group of `Slow` is readable.
pub const PROBE_ALERTMANAGER: &str =
    "route: {receiver: none, group_by: [alertname], group_wait: 1s, group_interval: 1s}\n\
                            receivers: [{name: none}]\n";

/// An installed program's path (Prometheus, promtool, chromium, tmux); the test
/// command installs them.
pub fn require(binary: &str) -> std::path::PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(binary)).find(|p| p.is_file()));
    found.unwrap_or_else(|| panic!("`{binary}` is not installed: tests/run.sh installs it (Debian package)"))
}

/// A query string value, percent-encoded (Prometheus and InfluxDB query APIs).
pub fn url_encode(q: &str) -> String {
    synaptic_telemetry::query::escape(q)
}

/// Writes `count` generated events (seed `seed`) to `dir/input-<seed>.jsonl` with the
/// binary's `generate` command; returns the path.
pub fn generate_input(dir: &Path, count: u64, seed: u64) -> std::path::PathBuf {
    let input = dir.join(format!("input-{seed}.jsonl"));
    let status = command()
        .args(["generate", "--count", &count.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(&input)
        .status()
        .expect("generate runs");
    assert!(status.success(), "generate failed: {status}");
    input
}

/// Starts `run --config config`.
pub fn spawn_run(config: &Path) -> Running {
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(config);
    Running::spawn(cmd)
}
