//! Encryption and access: TLS on every HTTP and gRPC client against a server with
//! its own CA (mutual TLS included), TLS and bearer tokens on our HTTP server
//! (scraped by a real Prometheus), secrets that never show, encryption at rest
//! with `decrypt`, and the audit trail.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::pki::{self, Pki};
use common::{command, free_port, read_lines, tls_server, wait_for, Running, Service};

/// Events stamped from now: the alert engine's windows run on the wall clock.
fn now_ms() -> String {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis().to_string()
}

fn generate(dir: &std::path::Path, count: u64) -> std::path::PathBuf {
    let path = dir.join("in.jsonl");
    let status = command()
        .args(["generate", "--count", &count.to_string(), "--seed", "18", "--start-ms", &now_ms(), "--out"])
        .arg(&path)
        .stderr(Stdio::null())
        .status()
        .expect("generate");
    assert!(status.success());
    path
}

fn tls(pki: &Pki, client_cert: bool) -> String {
    let cert = if client_cert {
        format!(", cert_file: \"{}\", key_file: \"{}\"", pki.client_cert.display(), pki.client_key.display())
    } else {
        String::new()
    };
    format!("{{ca_file: \"{}\"{cert}}}", pki.ca.display())
}

const RULES: &str = "rules:\n  - name: AnyTask\n    tier: critical\n    match: {event_type: \"task.*\"}\n    condition:\n      count: {window: 5m, above: 0}\n    annotations: {summary: \"{{ value }} task events\"}\n";

/// Every client kind reaches an HTTPS server whose certificate comes from a
/// private CA and that requires a client certificate, with its auth header.
#[test]
fn every_client_speaks_mutual_tls_with_a_private_ca_and_sends_its_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let server = tls_server::start(&pki, true);
    let input = generate(dir.path(), 300);
    std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/any.yaml"), RULES).expect("rules");
    std::fs::write(dir.path().join("hook.pw"), "hook-password-5u1\n").expect("hook password");
    let base = format!("https://localhost:{}", server.addr.port());
    let t = tls(&pki, true);
    let config = common::write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: \"{input}\"}}\n\
             pipeline:\n\
             \x20 - {{type: traces, sampling_rate: 1.0}}\n\
             \x20 - type: alerts\n\
             \x20   rules: \"{rules}\"\n\
             \x20   evaluation_interval: 200ms\n\
             \x20   receivers:\n\
             \x20     - {{type: alertmanager, url: \"{base}\", tls: {t}, auth: {{bearer: \"${{AM_TOKEN}}\"}}}}\n\
             \x20     - {{type: webhook, url: \"{base}/hook\", tls: {t}, auth: {{username: hook, password: {{file: hook.pw}}}}}}\n\
             sinks:\n\
             \x20 - {{name: http, type: http, url: \"{base}/ingest\", tls: {t}, auth: {{bearer: \"${{SINK_TOKEN}}\"}}}}\n\
             \x20 - {{name: influx, type: influxdb, url: \"{base}\", tls: {t}, username: telemetry, password: \"${{INFLUX_PASSWORD}}\"}}\n\
             \x20 - {{name: grpc, type: otlp, endpoint: \"{base}\", protocol: grpc, tls: {t}, headers: {{authorization: \"Bearer ${{OTLP_TOKEN}}\"}}}}\n\
             \x20 - {{name: otlp_http, type: otlp, endpoint: \"{base}\", protocol: http/protobuf, tls: {t}}}\n\
             dead_letter: {{type: file, path: \"{dead}\"}}\n\
             limits: {{drain_timeout: 20s}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            input = input.display(),
            rules = dir.path().join("rules").display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(&config);
    cmd.env("AM_TOKEN", "am-token-3Xq9").env("SINK_TOKEN", "sink-token-8Kd2");
    cmd.env("INFLUX_PASSWORD", "influx-pw-4Tz7").env("OTLP_TOKEN", "otlp-token-6Wm1");
    let (code, summary, log) = Running::spawn(cmd).finish_with_log(Duration::from_secs(90));
    assert_eq!(code, 0, "{summary}\n{}", log.join("\n"));
    assert_eq!(summary["unacknowledged"], 0, "{summary}");

    let ingested = server.paths("/ingest");
    let lines: usize =
        ingested.iter().map(|s| s.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count()).sum();
    assert_eq!(lines as u64, summary["acknowledged"].as_u64().unwrap_or(0), "every event over HTTPS");
    assert!(ingested.iter().all(|s| s.authorization.as_deref() == Some("Bearer sink-token-8Kd2")));
    let writes = server.paths("/write");
    assert!(!writes.is_empty(), "InfluxDB points over HTTPS");
    use base64::Engine;
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("telemetry:influx-pw-4Tz7"));
    assert!(writes.iter().all(|s| s.authorization.as_deref() == Some(basic.as_str())));
    let grpc = server.paths("grpc");
    assert!(!grpc.is_empty(), "spans over gRPC with TLS");
    assert!(grpc.iter().all(|s| s.authorization.as_deref() == Some("Bearer otlp-token-6Wm1")));
    assert!(!server.paths("/v1/traces").is_empty(), "spans over OTLP/HTTP with TLS");
    let alerts = server.paths("/api/v2/alerts");
    assert!(!alerts.is_empty(), "alerts to Alertmanager over HTTPS");
    assert!(alerts.iter().all(|s| s.authorization.as_deref() == Some("Bearer am-token-3Xq9")));
    let hooks = server.paths("/hook");
    assert!(!hooks.is_empty(), "webhook over HTTPS");
    let hook_auth =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("hook:hook-password-5u1"));
    assert!(hooks.iter().all(|s| s.authorization.as_deref() == Some(hook_auth.as_str())));
}

/// Runs a one-sink pipeline against the server. With `needle`, waits for a log
/// line holding it and stops the pipeline (its sink cannot deliver: the drain
/// deadline passes); without, lets it finish. The exit code and the log.
fn run_failing_sink(dir: &std::path::Path, sink: &str, needle: Option<&str>) -> (i32, Vec<String>) {
    let input = generate(dir, 20);
    let config = common::write_config(
        dir,
        &format!(
            "source: {{type: file, path: \"{}\"}}\n\
             sinks:\n  - {sink}\n\
             dead_letter: {{type: file, path: \"{}\"}}\n\
             limits: {{drain_timeout: 4s}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            input.display(),
            dir.join("dead.jsonl").display()
        ),
    );
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(&config);
    let mut running = Running::spawn(cmd);
    if let Some(needle) = needle {
        running.wait_for_line(needle, Duration::from_secs(30));
        running.signal("TERM");
    }
    let (code, _, log) = running.finish_with_log(Duration::from_secs(60));
    (code, log)
}

#[test]
fn a_wrong_ca_and_a_missing_client_certificate_are_named_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let plain = tls_server::start(&pki, false);
    let mutual = tls_server::start(&pki, true);

    let wrong_ca = format!("{{ca_file: \"{}\"}}", pki.other_ca.display());
    let (code, log) = run_failing_sink(
        dir.path(),
        &format!(
            "{{name: out, type: http, url: \"https://localhost:{}/ingest\", tls: {wrong_ca}}}",
            plain.addr.port()
        ),
        Some("UnknownIssuer"),
    );
    assert_ne!(code, 0, "nothing could be delivered");
    assert!(
        log.iter().any(|l| l.contains("invalid peer certificate") && l.contains("UnknownIssuer")),
        "{}",
        log.join("\n")
    );
    assert!(plain.paths("/ingest").is_empty());

    let (code, log) = run_failing_sink(
        dir.path(),
        &format!(
            "{{name: out, type: http, url: \"https://localhost:{}/ingest\", tls: {}}}",
            mutual.addr.port(),
            tls(&pki, false)
        ),
        // TLS 1.3 refuses after the handshake: the first attempt must read and
        // name the alert, not report a broken pipe.
        Some("write failed"),
    );
    assert_ne!(code, 0);
    let first = log.iter().find(|l| l.contains("write failed"));
    assert!(first.is_some_and(|l| l.contains("CertificateRequired")), "{}", log.join("\n"));
    assert!(mutual.paths("/ingest").is_empty());

    // insecure_skip_verify: accepted, and said at start.
    let (code, log) = run_failing_sink(
        dir.path(),
        &format!("{{name: out, type: http, url: \"https://localhost:{}/ingest\", tls: {{insecure_skip_verify: true}}}}", plain.addr.port()),
        None,
    );
    assert_eq!(code, 0, "{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains("insecure_skip_verify is on")), "{}", log.join("\n"));
    assert!(!plain.paths("/ingest").is_empty());
}

/// A certificate that does not name the URL's host is refused, and accepted with
/// `server_name` set to the name it carries.
#[test]
fn server_name_checks_the_certificate_against_another_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let server = tls_server::start_with(&pki, false, &pki.named_cert, &pki.named_key);
    let url = format!("https://localhost:{}/ingest", server.addr.port());
    let (code, log) = run_failing_sink(
        dir.path(),
        &format!("{{name: out, type: http, url: \"{url}\", tls: {}}}", tls(&pki, false)),
        Some("certificate not valid for name \"localhost\""),
    );
    assert_ne!(code, 0, "{}", log.join("\n"));
    assert!(server.paths("/ingest").is_empty());
    let (code, log) = run_failing_sink(
        dir.path(),
        &format!(
            "{{name: out, type: http, url: \"{url}\", tls: {{ca_file: \"{}\", server_name: internal.test}}}}",
            pki.ca.display()
        ),
        None,
    );
    assert_eq!(code, 0, "{}", log.join("\n"));
    assert!(!server.paths("/ingest").is_empty());
}

#[test]
fn tls_on_a_cleartext_url_is_refused_by_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let config = common::write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: in.jsonl}}\n\
             sinks:\n  - {{name: out, type: http, url: \"http://localhost:1/x\", tls: {}}}\n\
             dead_letter: {{type: stdout}}\n",
            tls(&pki, false)
        ),
    );
    let output = command().arg("validate").arg(&config).output().expect("validate");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("`tls` is set but the URL http://localhost:1/x is http://"), "{text}");
}

/// The server over TLS with bearer tokens: /health open, the rest refused without
/// a known token (counted, audited), an access-log line per request; a real
/// Prometheus scrapes it over HTTPS with its token.
#[test]
fn our_server_takes_tls_and_tokens_and_prometheus_scrapes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    std::fs::write(dir.path().join("tokens"), "# name token\nops ops-token-0123456789abcdef\n")
        .expect("tokens");
    let port = free_port();
    let config = common::write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: \"-\"}}\n\
             pipeline:\n  - type: metrics\n\
             sinks:\n  - {{name: out, type: file, path: \"{out}\"}}\n\
             dead_letter: {{type: file, path: \"{dead}\"}}\n\
             server:\n\
             \x20 listen: \"127.0.0.1:{port}\"\n\
             \x20 tls: {{cert_file: \"{cert}\", key_file: \"{key}\"}}\n\
             \x20 auth:\n\
             \x20   tokens: [{{name: prometheus, token: \"${{SCRAPE_TOKEN}}\"}}]\n\
             \x20   tokens_file: \"{tokens}\"\n\
             audit: {{path: \"{audit}\"}}\n",
            out = dir.path().join("out.jsonl").display(),
            dead = dir.path().join("dead.jsonl").display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            tokens = dir.path().join("tokens").display(),
            audit = dir.path().join("audit.jsonl").display(),
        ),
    );
    let scrape_token = "scrape-token-5Hq8Lm2Vx7";
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(&config).env("SCRAPE_TOKEN", scrape_token).stdin(Stdio::piped());
    let mut running = Running::spawn(cmd);
    running.wait_for_address(Duration::from_secs(30));

    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca")).expect("ca pem");
    let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let get = |path: &str, token: Option<&str>| -> (u16, String) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        runtime.block_on(async {
            let mut request = client.get(url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("https request");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        })
    };
    assert_eq!(get("/health", None).0, 200);
    assert_eq!(get("/metrics", None).0, 401);
    assert_eq!(get("/metrics", Some("not-a-token-at-all")).0, 401);
    assert_eq!(get("/ready", None).0, 401);
    assert_eq!(get("/ready", Some("ops-token-0123456789abcdef")).0, 200);
    let (status, body) = get("/metrics", Some(scrape_token));
    assert_eq!(status, 200);
    assert_eq!(common::metric(&body, "synaptic_telemetry_http_unauthorized_total"), Some(3.0), "{body}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let _ = stream.write_all(b"GET /health HTTP/1.0\r\n\r\n");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(!answer.starts_with(b"HTTP/1."), "{}", String::from_utf8_lossy(&answer));
    }

    // A real Prometheus scrapes over HTTPS with its bearer token.
    let prometheus_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: synaptic\n    scheme: https\n    \
             tls_config: {{ca_file: \"{ca}\"}}\n    authorization: {{credentials: \"{scrape_token}\"}}\n    \
             static_configs: [{{targets: ['localhost:{port}']}}]\n",
            ca = pki.ca.display()
        ),
    )
    .expect("prometheus config");
    let _prometheus = Service(
        Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let prometheus: std::net::SocketAddr = format!("127.0.0.1:{prometheus_port}").parse().expect("addr");
    wait_for("Prometheus scraping over HTTPS with a token", || {
        let answer = common::get_json(prometheus, "/api/v1/query?query=up%7Bjob%3D%22synaptic%22%7D")?;
        let value = answer["data"]["result"][0]["value"][1].as_str()?.to_string();
        (value == "1").then_some(())
    });

    drop(running.child.stdin.take());
    let (code, _, log) = running.finish_with_log(Duration::from_secs(30));
    assert_eq!(code, 0, "{}", log.join("\n"));
    let access: Vec<&String> = log.iter().filter(|l| l.contains("access")).collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("who=prometheus") && l.contains("/metrics") && l.contains("status=200")),
        "{access:#?}"
    );
    assert!(access.iter().any(|l| l.contains("who=ops") && l.contains("/ready")), "{access:#?}");
    assert!(access.iter().any(|l| l.contains("status=401")), "{access:#?}");
    assert!(
        log.iter().all(|l| !l.contains(scrape_token) && !l.contains("ops-token-0123456789abcdef")),
        "a token in the log"
    );

    let audit: Vec<serde_json::Value> = read_lines(&dir.path().join("audit.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect();
    let count = |action: &str, actor: &str| {
        audit.iter().filter(|e| e["action"] == action && e["actor"] == actor).count()
    };
    assert_eq!(count("config.loaded", "local"), 1, "{audit:#?}");
    assert_eq!(count("auth.failed", "anonymous"), 3, "{audit:#?}");
    assert!(count("read", "prometheus") >= 2, "{audit:#?}");
    assert_eq!(count("read", "ops"), 1, "{audit:#?}");
    for entry in &audit {
        for key in ["time", "actor", "action", "target", "outcome"] {
            assert!(entry[key].is_string(), "{key} missing in {entry}");
        }
    }
}

const KEY: &str = "6b1f0c3e9a7d5b2f4e8c1a6d3f9b7e2c5a8d4f1b6e3c9a7d2f5b8e1c4a7d3f6b";

/// File sink, disk buffer, dead letter, alert file and audit log written sealed;
/// `decrypt` reads each back whole; a changed byte and a wrong key are reported.
#[test]
fn encrypted_files_decrypt_back_and_tampering_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    let status = command()
        .args([
            "generate",
            "--count",
            "400",
            "--seed",
            "7",
            "--malformed-ratio",
            "0.05",
            "--start-ms",
            &now_ms(),
            "--out",
        ])
        .arg(&input)
        .stderr(Stdio::null())
        .status()
        .expect("generate");
    assert!(status.success());
    std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/any.yaml"), RULES).expect("rules");
    let sealed = "encryption: {key: \"${AT_REST_KEY}\"}";
    let p = |name: &str| dir.path().join(name).display().to_string();
    let config = common::write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: \"{input}\"}}\n\
             pipeline:\n\
             \x20 - type: alerts\n\
             \x20   rules: \"{rules}\"\n\
             \x20   receivers: [{{type: file, path: \"{alerts}\", {sealed}}}]\n\
             sinks:\n\
             \x20 - {{name: out, type: file, path: \"{out}\", {sealed}, buffer: {{type: disk, path: \"{buffer}\", {sealed}}}}}\n\
             dead_letter: {{type: file, path: \"{dead}\", {sealed}}}\n\
             audit: {{path: \"{audit}\", {sealed}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            input = input.display(),
            rules = p("rules"),
            alerts = p("alerts.jsonl"),
            out = p("out.jsonl"),
            buffer = p("buffer"),
            dead = p("dead.jsonl"),
            audit = p("audit.jsonl"),
        ),
    );
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(&config).env("AT_REST_KEY", KEY);
    let (code, summary, log) = Running::spawn(cmd).finish_with_log(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}\n{}", log.join("\n"));
    let forwarded =
        summary["acknowledged"].as_u64().unwrap_or(0) - summary["dead_lettered"].as_u64().unwrap_or(0);
    let dead_lettered = summary["dead_lettered"].as_u64().unwrap_or(0);
    assert!(dead_lettered > 0, "{summary}");

    for file in ["out.jsonl", "dead.jsonl", "alerts.jsonl", "audit.jsonl"] {
        let bytes = std::fs::read(dir.path().join(file)).expect(file);
        assert!(bytes.starts_with(b"STS1"), "{file} is not sealed");
        assert!(!bytes.windows(8).any(|w| w == b"event_id" || w == b"\"action\""), "{file} shows plaintext");
    }
    for entry in std::fs::read_dir(dir.path().join("buffer")).expect("buffer dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("segment");
        assert!(!bytes.windows(8).any(|w| w == b"event_id"), "the disk buffer shows plaintext");
    }

    let decrypt = |file: &str, key: &str| {
        command()
            .args(["decrypt"])
            .arg(dir.path().join(file))
            .env("SYNAPTIC_TELEMETRY_KEY", key)
            .output()
            .expect("decrypt")
    };
    let lines = |output: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    };
    let out = decrypt("out.jsonl", KEY);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&out).len() as u64, forwarded);
    let dead = decrypt("dead.jsonl", KEY);
    let dead = lines(&dead);
    assert_eq!(dead.len() as u64, dead_lettered);
    assert!(dead.iter().all(|d| d["reason"].as_str().is_some_and(|r| !r.is_empty())));
    let alerts = lines(&decrypt("alerts.jsonl", KEY));
    assert!(alerts.iter().any(|a| a["alerts"][0]["labels"]["alertname"] == "AnyTask"), "{alerts:?}");
    let audit = lines(&decrypt("audit.jsonl", KEY));
    assert_eq!(audit[0]["action"], "config.loaded");

    // One changed byte in the middle of the output: the frame is named, the
    // frames before it are printed, the exit code says it.
    let path = dir.path().join("out.jsonl");
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let tampered = decrypt("out.jsonl", KEY);
    assert_eq!(tampered.status.code(), Some(2));
    let complaint = String::from_utf8_lossy(&tampered.stderr);
    assert!(complaint.contains("authentication failed") && complaint.contains("at byte"), "{complaint}");
    assert!((lines(&tampered).len() as u64) < forwarded);

    let wrong = decrypt("dead.jsonl", &"00".repeat(32));
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("frame 1 at byte 0: authentication failed"));
}

/// Unique secret strings in every place a secret can be written; a working run
/// with failing outputs, a failing start and `validate`: none of them shows in
/// any output, log line, error, metric or file the pipeline wrote.
#[test]
fn secrets_never_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [
        ("SINK_TOKEN", "SECRET-sink-token-1a2b"),
        ("RECEIVER_TOKEN", "SECRET-receiver-token-3c4d"),
        ("SERVER_TOKEN", "SECRET-server-token-5e6f"),
        ("HASH_KEY", "SECRET-hash-key-7g8h"),
        ("BAD_COMPRESSION", "SECRET-compression-9i0j"),
    ];
    let in_file = ("influx.pw", "SECRET-influx-password-1k2l");
    let in_url = "SECRET-url-password-3m4n";
    let inline = "SECRET-inline-header-5o6p";
    let kafka = "SECRET-kafka-password-7q8r";
    std::fs::write(dir.path().join(in_file.0), format!("{}\n", in_file.1)).expect("password file");
    let input = generate(dir.path(), 200);
    std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/any.yaml"), RULES).expect("rules");
    let dead_port = free_port();
    let receiver = std::sync::Arc::new(common::receiver::Receiver::default());
    let (receiver_addr, _receiver_runtime) = common::receiver::serve(receiver.clone());
    let p = |name: &str| dir.path().join(name).display().to_string();
    let working = common::write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: \"-\"}}\n\
             pipeline:\n\
             \x20 - {{name: scrub, type: plugin, file: \"{scrub}\", config: {{mode: hash, hash_key: \"${{HASH_KEY}}\"}}}}\n\
             \x20 - type: alerts\n\
             \x20   rules: \"{rules}\"\n\
             \x20   receivers:\n\
             \x20     - {{type: webhook, url: \"http://ops:{in_url}@127.0.0.1:{dead_port}/hook\"}}\n\
             \x20     - {{type: alertmanager, url: \"http://127.0.0.1:{dead_port}\", auth: {{bearer: \"${{RECEIVER_TOKEN}}\"}}}}\n\
             sinks:\n\
             \x20 - {{name: http, type: http, url: \"http://{receiver_addr}/ingest\", auth: {{bearer: \"${{SINK_TOKEN}}\"}}, headers: {{x-api-key: \"{inline}\"}}}}\n\
             \x20 - {{name: influx, type: influxdb, url: \"http://telemetry:{in_url}@127.0.0.1:{dead_port}\", username: telemetry, password: {{file: {pw}}}}}\n\
             dead_letter: {{type: file, path: \"{dead}\"}}\n\
             limits: {{drain_timeout: 4s}}\n\
             server:\n\
             \x20 listen: \"127.0.0.1:0\"\n\
             \x20 auth: {{tokens: [{{name: ops, token: \"${{SERVER_TOKEN}}\"}}]}}\n\
             audit: {{path: \"{audit}\"}}\n",
            scrub = common::plugins::wasm("pii_scrub").display(),
            rules = p("rules"),
            dead = p("dead.jsonl"),
            pw = in_file.0,
            audit = p("audit.jsonl"),
        ),
    );
    let mut outputs: Vec<String> = Vec::new();
    let with_env = |cmd: &mut Command| {
        for (name, value) in secrets {
            cmd.env(name, value);
        }
    };

    // A working run whose influx sink and both receivers cannot deliver.
    let mut cmd = command();
    cmd.arg("run").arg("--config").arg(&working).stdin(Stdio::piped());
    with_env(&mut cmd);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(60));
    {
        use std::io::Write;
        let mut stdin = running.child.stdin.take().expect("stdin");
        stdin.write_all(&std::fs::read(&input).expect("input")).expect("feed");
    }
    running.wait_for_line("webhook", Duration::from_secs(30));
    running.wait_for_line("InfluxDB", Duration::from_secs(30));
    let metrics = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        write!(stream, "GET /metrics HTTP/1.0\r\nAuthorization: Bearer {}\r\n\r\n", secrets[2].1)
            .expect("send");
        let mut body = String::new();
        stream.read_to_string(&mut body).expect("read");
        body
    };
    assert!(metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    outputs.push(metrics);
    running.signal("TERM");
    let (_, _, log) = running.finish_with_log(Duration::from_secs(60));
    assert!(log.iter().any(|l| l.contains("***")), "the failing outputs' log lines were masked, not absent");
    outputs.extend(log);
    assert!(!receiver.requests.lock().expect("requests").is_empty(), "the working sink delivered");

    // A failing start and validate on a config whose values echo into errors.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        format!(
            "source: {{type: file, path: in.jsonl}}\n\
             sinks:\n\
             \x20 - {{name: k, type: kafka, brokers: \"127.0.0.1:1\", topic: t, compression: \"${{BAD_COMPRESSION}}\", \
             sasl: {{mechanism: SCRAM-SHA-512, username: u, password: \"{kafka}\"}}}}\n\
             \x20 - {{name: h, type: http, url: \"ftp://ops:{in_url}@example.invalid/x\"}}\n\
             dead_letter: {{type: stdout}}\n"
        ),
    )
    .expect("broken config");
    for args in [vec!["run", "--config"], vec!["validate"]] {
        let mut cmd = command();
        cmd.args(&args).arg(&broken);
        with_env(&mut cmd);
        let output = cmd.output().expect("runs");
        assert!(!output.status.success());
        let text =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(text.contains("expected one of none, gzip, snappy, lz4, got `***`"), "{text}");
        assert!(
            text.contains("url must start with http:// or https://, got `ftp://***@example.invalid/x`"),
            "{text}"
        );
        outputs.push(text);
    }
    let mut cmd = command();
    cmd.arg("validate").arg(&working);
    with_env(&mut cmd);
    let output = cmd.output().expect("validate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    outputs.push(String::from_utf8_lossy(&output.stdout).into_owned());

    for file in ["dead.jsonl", "audit.jsonl"] {
        outputs.push(
            String::from_utf8_lossy(&std::fs::read(dir.path().join(file)).unwrap_or_default()).into_owned(),
        );
    }
    let all: Vec<&str> = secrets.iter().map(|(_, v)| *v).chain([in_file.1, in_url, inline, kafka]).collect();
    for text in &outputs {
        for secret in &all {
            assert!(!text.contains(secret), "secret {secret} shown in:\n{text}");
        }
    }
}

/// `config/production.yaml` validates with its variables pointing at real files,
/// and fails naming the variable when one is not set.
#[test]
fn the_hardened_production_example_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls_dir = dir.path().join("tls");
    let secrets = dir.path().join("secrets");
    let state = dir.path().join("state");
    for d in [&tls_dir, &secrets, &state] {
        std::fs::create_dir(d).expect("dir");
    }
    pki::make(&tls_dir);
    for (name, value) in [
        ("kafka.password", "kafka-password-value"),
        ("alertmanager.token", "alertmanager-token-value"),
        ("influx.password", "influx-password-value"),
        ("pii.key", "pii-hmac-key-value"),
        ("at-rest.key", KEY),
        ("tokens", "prometheus prometheus-token-0123456789\n"),
    ] {
        std::fs::write(secrets.join(name), value).expect("secret");
    }
    common::plugins::wasm("pii_scrub");
    let validate = |with_state: bool| {
        let mut cmd = command();
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args(["validate", "config/production.yaml"]);
        cmd.env("SYNAPTIC_TLS_DIR", &tls_dir).env("SYNAPTIC_SECRETS_DIR", &secrets);
        if with_state {
            cmd.env("SYNAPTIC_STATE_DIR", &state);
        } else {
            cmd.env_remove("SYNAPTIC_STATE_DIR");
        }
        cmd.output().expect("validate")
    };
    let output = validate(true);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("config/production.yaml: ok"), "{text}");
    for secret in [
        "kafka-password-value",
        "alertmanager-token-value",
        "influx-password-value",
        "pii-hmac-key-value",
        KEY,
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    let output = validate(false);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(text.contains("environment variable `SYNAPTIC_STATE_DIR` is not set"), "{text}");
}
