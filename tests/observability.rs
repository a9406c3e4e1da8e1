//! Metrics, traces and InfluxDB against the real things: a Prometheus server that
//! scrapes the pipeline, OTLP receivers built on the official protobuf definitions
//! (gRPC and HTTP), and an InfluxDB 1.x server. Each test starts what it needs on
//! loopback ports and stops it; every wait is bounded.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    command, free_port, get_json, http_get, require, url_encode as encode, write_config, Running, Service,
};
use serde_json::Value;

/// Generator events, written to a file: the input and the ground truth.
fn generate(dir: &Path, count: u64, seed: u64) -> (PathBuf, Vec<Value>) {
    let path = dir.join("input.jsonl");
    let status = command()
        .args(["generate", "--count", &count.to_string(), "--seed", &seed.to_string(), "--rate", "200"])
        .arg("--out")
        .arg(&path)
        .status()
        .expect("generate runs");
    assert!(status.success());
    let text = std::fs::read_to_string(&path).expect("input");
    let events = text.lines().map(|l| serde_json::from_str(l).expect("generated JSON")).collect();
    (path, events)
}

fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn data<'a>(event: &'a Value, key: &str) -> Option<&'a Value> {
    event.get("data")?.get(key)
}

fn of_type<'a>(events: &'a [Value], types: &'a [&str]) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| types.iter().any(|t| e["event_type"] == *t))
}

#[test]
fn prometheus_scrapes_exact_counts_and_buckets() {
    let prometheus = require("prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, events) = generate(dir.path(), 20_000, 11);

    // The pipeline reads stdin, so it keeps serving /metrics after the input is in.
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: \"-\"}}\n\
             pipeline:\n  - type: metrics\n\
             sinks:\n  - {{name: out, type: file, path: {out}}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            out = dir.path().join("out.jsonl").display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config).stdin(Stdio::piped());
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(30));
    let mut stdin = running.child.stdin.take().expect("stdin");
    stdin.write_all(&std::fs::read(&input).expect("input")).expect("feed the pipeline");
    stdin.flush().expect("flush");
    wait_until("all input through the metrics step", Duration::from_secs(60), || {
        let (_, body) = http_get(addr, "/metrics");
        (common::metric(&body, "synaptic_telemetry_step_events_total{outcome=\"in\",step=\"metrics\"}")
            == Some(events.len() as f64))
        .then_some(())
    });

    // What promtool says about our exposition: nothing.
    let (_, body) = http_get(addr, "/metrics");
    let mut promtool = Command::new(require("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    promtool.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("write");
    let checked = promtool.wait_with_output().expect("promtool runs");
    let complaints =
        format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && complaints.trim().is_empty(), "promtool: {complaints}");

    // A real Prometheus scrapes it.
    let port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: synaptic\n    \
             static_configs: [{{targets: ['{addr}']}}]\n"
        ),
    )
    .expect("prometheus config");
    let _prometheus = Service(
        Command::new(prometheus)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let prom: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let query = |q: &str| -> Option<BTreeMap<String, f64>> {
        let answer = get_json(prom, &format!("/api/v1/query?query={}", encode(q)))?;
        let result = answer["data"]["result"].as_array()?;
        if result.is_empty() {
            return None;
        }
        Some(
            result
                .iter()
                .map(|r| {
                    let key = r["metric"].as_object().map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                    let value = r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                    (key.unwrap_or_default(), value)
                })
                .collect(),
        )
    };

    // Ground truth from the input itself.
    let tasks: Vec<&Value> = of_type(&events, &["task.completed", "task.execution"]).collect();
    let mut completed = BTreeMap::new();
    for t in &tasks {
        let success = data(t, "success").and_then(Value::as_bool).expect("success");
        *completed.entry(format!("success={success}")).or_insert(0.0) += 1.0;
    }
    let bounds = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0];
    let mut buckets = BTreeMap::new();
    for (i, le) in bounds.iter().map(|b| format!("{b}")).chain(["+Inf".to_string()]).enumerate() {
        let bound = bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let n = tasks
            .iter()
            .filter(|t| data(t, "duration_ms").and_then(Value::as_f64).expect("duration") * 0.001 <= bound)
            .count();
        buckets.insert(format!("le={le}"), n as f64);
    }
    let sent = of_type(&events, &["bridge.message"])
        .filter(|e| data(e, "direction") == Some(&"OUTBOUND".into()))
        .count();
    let mut violations = BTreeMap::new();
    for v in of_type(&events, &["security.violation", "security.policy.violation"]) {
        let severity = data(v, "severity").and_then(Value::as_str).expect("severity").to_uppercase();
        *violations.entry(format!("severity={severity}")).or_insert(0.0) += 1.0;
    }

    let scraped = wait_until("Prometheus has scraped the pipeline", Duration::from_secs(60), || {
        let got = query("sum by (success) (codex_synaptic_task_completed_total)")?;
        (got == completed).then_some(got)
    });
    assert_eq!(scraped, completed);
    assert_eq!(query("sum by (le) (codex_synaptic_task_execution_time_seconds_bucket)"), Some(buckets));
    assert_eq!(
        query("sum(codex_synaptic_bridge_messages_sent_total)"),
        Some(BTreeMap::from([(String::new(), sent as f64)]))
    );
    assert_eq!(query("sum by (severity) (codex_synaptic_security_violations_total)"), Some(violations));
    let count = query("sum(codex_synaptic_task_execution_time_seconds_count)").expect("count");
    assert_eq!(count.values().next().copied(), Some(tasks.len() as f64));

    drop(stdin);
    let (code, summary) = running.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{summary}");
}

mod otlp_receiver {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;

    pub type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

    struct Collector(Received);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().expect("lock").push(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// An OTLP/gRPC receiver (accepting gzip) and an OTLP/HTTP one, on their own
    /// runtime, until the returned runtime is dropped.
    pub fn start() -> (tokio::runtime::Runtime, SocketAddr, Received, SocketAddr, Received) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let grpc_received: Received = Arc::default();
        let http_received: Received = Arc::default();
        let grpc = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let grpc_addr = grpc.local_addr().expect("addr");
        let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let http_addr = http.local_addr().expect("addr");
        let service = TraceServiceServer::new(Collector(grpc_received.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        runtime.spawn(async move {
            grpc.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(grpc).expect("listener");
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ =
                tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        let store = http_received.clone();
        runtime.spawn(async move {
            http.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(http).expect("listener");
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let store = store.clone();
                    async move {
                        let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
                        let bytes = if gzip {
                            let mut out = Vec::new();
                            std::io::Read::read_to_end(
                                &mut flate2::read::GzDecoder::new(body.as_ref()),
                                &mut out,
                            )
                            .expect("gzip body");
                            out
                        } else {
                            body.to_vec()
                        };
                        let request =
                            ExportTraceServiceRequest::decode(bytes.as_slice()).expect("protobuf body");
                        store.lock().expect("lock").push(request);
                        ExportTraceServiceResponse::default().encode_to_vec()
                    }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
        (runtime, grpc_addr, grpc_received, http_addr, http_received)
    }
}

#[test]
fn spans_reach_otlp_receivers_over_grpc_and_http() {
    let (_runtime, grpc, grpc_received, http, http_received) = otlp_receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, events) = generate(dir.path(), 3_000, 5);
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: {input}}}\n\
             pipeline:\n  - {{type: traces, sampling_rate: 1.0, service_version: 2.3.4, environment: test}}\n\
             sinks:\n  - {{name: out, type: file, path: {out}}}\n  \
             - {{name: grpc, type: otlp, endpoint: \"http://{grpc}\", protocol: grpc}}\n  \
             - {{name: http, type: otlp, endpoint: \"http://{http}\", protocol: http/protobuf}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            input = input.display(),
            out = dir.path().join("out.jsonl").display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config);
    let (code, summary) = Running::spawn(cmd).finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");

    let durations = synaptic_telemetry::step::traces::default_span_durations();
    let expected: Vec<&Value> = events
        .iter()
        .filter(|e| durations.iter().any(|(t, f)| e["event_type"] == *t && data(e, f).is_some()))
        .collect();
    assert!(expected.len() > 1000, "the input has spans to make: {}", expected.len());

    for (transport, received) in [("grpc", grpc_received), ("http", http_received)] {
        let requests = received.lock().expect("lock").clone();
        let mut spans = BTreeMap::new();
        for request in &requests {
            for rs in &request.resource_spans {
                let resource: BTreeMap<String, String> = rs
                    .resource
                    .as_ref()
                    .expect("resource")
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text_of(kv.value.as_ref())))
                    .collect();
                assert_eq!(
                    resource.get("service.name").map(String::as_str),
                    Some("codex-synaptic"),
                    "{transport}"
                );
                assert_eq!(resource.get("service.version").map(String::as_str), Some("2.3.4"));
                assert_eq!(resource.get("deployment.environment").map(String::as_str), Some("test"));
                for ss in &rs.scope_spans {
                    assert_eq!(ss.scope.as_ref().map(|s| s.name.as_str()), Some("codex-synaptic-telemetry"));
                    for span in &ss.spans {
                        let id = span
                            .attributes
                            .iter()
                            .find(|kv| kv.key == "event.id")
                            .map(|kv| text_of(kv.value.as_ref()))
                            .expect("event.id attribute");
                        assert!(spans.insert(id, span.clone()).is_none(), "{transport}: one span per event");
                    }
                }
            }
        }
        assert_eq!(spans.len(), expected.len(), "{transport}: every event with a duration made one span");
        for event in &expected {
            let id = event["event_id"].as_str().expect("id");
            let span = &spans[id];
            let (_, field) = durations.iter().find(|(t, _)| event["event_type"] == **t).expect("type");
            let ts = event["timestamp"].as_i64().expect("ts") as u64;
            let duration_ns =
                (data(event, field).and_then(Value::as_f64).expect("duration") * 1e6).round() as u64;
            assert_eq!(span.name, event["event_type"].as_str().expect("type"));
            assert_eq!(span.end_time_unix_nano, ts * 1_000_000, "{transport} {id}: end = timestamp");
            assert_eq!(span.start_time_unix_nano, ts * 1_000_000 - duration_ns, "{transport} {id}: start");
            let context = &event["context"];
            assert_eq!(hex::encode(&span.trace_id), context["trace_id"].as_str().expect("trace id"));
            assert_eq!(hex::encode(&span.span_id), context["span_id"].as_str().expect("span id"));
            let attributes: BTreeMap<&str, String> =
                span.attributes.iter().map(|kv| (kv.key.as_str(), text_of(kv.value.as_ref()))).collect();
            // Spans carry no free text by default: numbers, booleans, ids, types and
            // the schema's enumerations only.
            const ENUMS: [&str; 7] = [
                "state_from",
                "state_to",
                "decision",
                "violation_type",
                "severity",
                "bridge_type",
                "direction",
            ];
            for (key, value) in event["data"].as_object().expect("data") {
                let text_ok = key.ends_with("_id") || key.ends_with("_type") || ENUMS.contains(&key.as_str());
                let expected = match value {
                    Value::String(s) if text_ok => Some(s.clone()),
                    Value::String(_) => None,
                    Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
                    _ => continue,
                };
                assert_eq!(
                    attributes.get(key.as_str()),
                    expected.as_ref(),
                    "{transport} {id}: attribute {key}"
                );
            }
            for free_text in ["error_message", "transition_reason", "reasoning", "violation_details"] {
                assert!(!attributes.contains_key(free_text), "{transport} {id}: {free_text} left out");
            }
            let failed = data(event, "success") == Some(&Value::Bool(false))
                || data(event, "status") == Some(&"failure".into())
                || data(event, "decision") == Some(&"TIMEOUT".into())
                || matches!(event["severity"].as_str(), Some("ERROR" | "FATAL"));
            let code = span.status.as_ref().map_or(0, |s| s.code);
            assert_eq!(code == 2, failed, "{transport} {id}: status");
        }
    }
}

fn text_of(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match value.and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or_else(String::new, |n| n.to_string())
        }
        _ => String::new(),
    }
}

#[test]
fn influxdb_receives_every_event_as_a_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_influx, influx) = common::influxdb(dir.path());

    let (input, events) = generate(dir.path(), 5_000, 9);
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: {input}}}\n\
             sinks:\n  - {{name: influx, type: influxdb, url: \"http://{influx}\", tag_fields: [data.namespace]}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            input = input.display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config);
    let (code, summary) = Running::spawn(cmd).finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["acknowledged"], events.len() as u64, "{summary}");

    let query = |q: &str| get_json(influx, &format!("/query?db=codex_metrics&epoch=ms&q={}", encode(q)));
    let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        // The pipeline writes the canonical name of an alias.
        let event_type = match e["event_type"].as_str().expect("type") {
            "mesh.topology_change" => "mesh.topology.change",
            other => other,
        };
        *per_type.entry(event_type).or_default() += 1;
    }
    for (event_type, count) in &per_type {
        let points = common::influx_points(influx, event_type);
        assert_eq!(points, *count as u64, "{event_type}");
    }
    let syncs: Vec<&Value> = of_type(&events, &["memory.bridge.sync"]).collect();
    let total: f64 = syncs.iter().filter_map(|e| data(e, "sync_duration_ms").and_then(Value::as_f64)).sum();
    let answer = query("SELECT sum(\"sync_duration_ms\") FROM \"memory.bridge.sync\"").expect("sum");
    let stored = answer["results"][0]["series"][0]["values"][0][1].as_f64().expect("sum value");
    assert!((stored - total).abs() < 1e-6 * total.max(1.0), "sum {stored} vs {total}");
    let answer = query("SHOW TAG VALUES FROM \"memory.bridge.sync\" WITH KEY = \"namespace\"").expect("tags");
    let namespaces = answer["results"][0]["series"][0]["values"].as_array().map_or(0, Vec::len);
    let expected: std::collections::BTreeSet<&str> =
        syncs.iter().filter_map(|e| data(e, "namespace").and_then(Value::as_str)).collect();
    assert_eq!(namespaces, expected.len(), "{answer}");
}

/// An InfluxQL statement sent as InfluxDB wants writes (`SELECT … INTO`): POST.
fn influx_post(influx: SocketAddr, statement: &str) -> Value {
    use std::io::Read;
    let body = format!("q={}", encode(statement));
    let mut stream = std::net::TcpStream::connect_timeout(&influx, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(
        stream,
        "POST /query?db=codex_metrics HTTP/1.0\r\nHost: {influx}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (_, json) = response.split_once("\r\n\r\n").expect("a response");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn influxdb_rollups_set_up_retention_policies_and_continuous_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_influx, influx) = common::influxdb(dir.path());
    // Stamped over the last ~3 hours: inside the raw policy's 7 days.
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let start = (now_ms - 3 * 3_600_000).to_string();
    let input = dir.path().join("recent.jsonl");
    let status = command()
        .args(["generate", "--count", "2000", "--seed", "4", "--rate", "0.2", "--start-ms", &start, "--out"])
        .arg(&input)
        .status()
        .expect("generate runs");
    assert!(status.success());
    let events: Vec<Value> = std::fs::read_to_string(&input)
        .expect("input")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let run = |raw: &str| {
        let config = write_config(
            dir.path(),
            &format!(
                "source: {{type: file, path: {input}}}\n\
                 sinks:\n  - {{name: influx, type: influxdb, url: \"http://{influx}\", rollups: {{raw: {raw}, hourly: 30d, daily: 365d}}}}\n\
                 dead_letter: {{type: file, path: {dead}}}\n",
                input = input.display(),
                dead = dir.path().join("dead.jsonl").display(),
            ),
        );
        let mut cmd = command();
        cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config);
        let (code, summary) = Running::spawn(cmd).finish(Duration::from_secs(60));
        assert_eq!(code, 0, "{summary}");
        assert_eq!(summary["acknowledged"], events.len() as u64, "{summary}");
    };
    run("7d");
    let query = |q: &str| get_json(influx, &format!("/query?db=codex_metrics&q={}", encode(q))).expect(q);

    let policies = query("SHOW RETENTION POLICIES ON codex_metrics");
    let policies: Vec<(String, String, bool)> = policies["results"][0]["series"][0]["values"]
        .as_array()
        .expect("policies")
        .iter()
        .map(|p| {
            (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string(), p[4] == true)
        })
        .collect();
    for expected in [("raw", "168h0m0s", true), ("hourly", "720h0m0s", false), ("daily", "8760h0m0s", false)]
    {
        let found = policies.iter().any(|(n, d, def)| (n.as_str(), d.as_str(), *def) == expected);
        assert!(found, "{expected:?} in {policies:?}");
    }
    let cqs = query("SHOW CONTINUOUS QUERIES");
    let series = cqs["results"][0]["series"].as_array().expect("series");
    let ours = series.iter().find(|s| s["name"] == "codex_metrics").expect("our database's queries");
    let queries: BTreeMap<String, String> = ours["values"]
        .as_array()
        .expect("queries")
        .iter()
        .map(|q| (q[0].as_str().unwrap_or("").to_string(), q[1].as_str().unwrap_or("").to_string()))
        .collect();
    assert!(queries.contains_key("rollup_daily"), "{queries:?}");
    let hourly = queries.get("rollup_hourly").unwrap_or_else(|| panic!("{queries:?}"));

    // Raw points land in the default policy `raw`, one per event.
    let syncs: Vec<&Value> = of_type(&events, &["memory.bridge.sync"]).collect();
    assert!(syncs.len() > 20, "enough events to roll up: {}", syncs.len());
    assert_eq!(common::influx_points(influx, "memory.bridge.sync"), syncs.len() as u64);

    // The installed query, run now over the last hours instead of waiting for its
    // schedule: what it writes into `hourly` must add up to the raw points.
    let begin = hourly.find("BEGIN ").expect("BEGIN") + "BEGIN ".len();
    let end = hourly.rfind(" END").expect("END");
    let select = &hourly[begin..end];
    let group = select.find(" GROUP BY").expect("GROUP BY");
    let backfill = format!("{} WHERE time >= now() - 6h{}", &select[..group], &select[group..]);
    let written = influx_post(influx, &backfill);
    assert!(written["results"][0].get("error").is_none(), "{backfill}: {written}");
    let rolled = query("SELECT sum(\"count_sync_duration_ms\"), max(\"max_sync_duration_ms\") FROM \"codex_metrics\".\"hourly\".\"memory.bridge.sync\"");
    let row = &rolled["results"][0]["series"][0]["values"][0];
    let durations: Vec<f64> =
        syncs.iter().filter_map(|e| data(e, "sync_duration_ms").and_then(Value::as_f64)).collect();
    assert_eq!(row[1].as_f64(), Some(durations.len() as f64), "{rolled}");
    let max = durations.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(row[2].as_f64(), Some(max), "{rolled}");

    // A restart with another raw age alters the policy and keeps the queries.
    run("8d");
    let policies = query("SHOW RETENTION POLICIES ON codex_metrics");
    let raw = policies["results"][0]["series"][0]["values"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p[0] == "raw").cloned())
        .expect("raw policy");
    assert_eq!(raw[1], "192h0m0s", "{policies}");
    let cqs = query("SHOW CONTINUOUS QUERIES").to_string();
    assert!(cqs.contains("rollup_hourly") && cqs.contains("rollup_daily"), "{cqs}");
    assert_eq!(
        common::influx_points(influx, "memory.bridge.sync"),
        syncs.len() as u64,
        "a replay doubles nothing"
    );
}
