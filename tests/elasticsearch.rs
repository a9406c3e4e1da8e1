//! The `elasticsearch` sink against a test server that implements the parts of
//! the Elasticsearch REST API the sink uses, as Elasticsearch documents them:
//! `_bulk` (NDJSON, per-item results, `errors`), index templates, `_cat/indices`
//! and index deletion. No Elasticsearch-API server can be installed from the
//! registries this machine reaches (Debian, PyPI, npm and crates.io carry clients,
//! not the server), so this server stands in; it answers some items 429 and
//! refuses some with a mapping error, and one whole request 503.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::Router;
use common::receiver::gunzip_if_encoded;
use common::{command, read_lines, write_config, Running};
use serde_json::{json, Value};

#[derive(Default)]
struct Cluster {
    /// index → _id → document.
    indices: Mutex<BTreeMap<String, BTreeMap<String, Value>>>,
    templates: Mutex<HashMap<String, Value>>,
    /// How often each _id was sent; the first two sends of a throttled id are 429.
    sends: Mutex<HashMap<String, usize>>,
    throttled: Vec<String>,
    /// Whole `_bulk` requests still to answer 503.
    unavailable: Mutex<usize>,
    authorization: Mutex<Vec<String>>,
}

/// A JSON answer.
type Answer = (StatusCode, [(&'static str, &'static str); 1], String);

fn answer(status: StatusCode, body: Value) -> Answer {
    (status, [("content-type", "application/json")], body.to_string())
}

async fn bulk(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Answer {
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        cluster.authorization.lock().expect("auth").push(auth.to_string());
    }
    {
        let mut unavailable = cluster.unavailable.lock().expect("unavailable");
        if *unavailable > 0 {
            *unavailable -= 1;
            return answer(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "unavailable", "status": 503}));
        }
    }
    let body = gunzip_if_encoded(&headers, &body);
    let text = String::from_utf8(body).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).expect("action line");
        let doc: Value = serde_json::from_str(pair[1]).expect("document line");
        let index = action["index"]["_index"].as_str().expect("_index").to_string();
        let id = action["index"]["_id"].as_str().expect("_id").to_string();
        let sent = {
            let mut sends = cluster.sends.lock().expect("sends");
            let n = sends.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        let item = if cluster.throttled.contains(&id) && sent <= 2 {
            errors = true;
            json!({"index": {"_index": index, "_id": id, "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution"}}})
        } else if let Some(bad) = doc["data"]["bad_value"].as_str() {
            errors = true;
            let reason = format!("[1:42] failed to parse field [data.bad_value] of type [long] in document with id '{id}'. Preview of field's value: '{bad}'");
            json!({"index": {"_index": index, "_id": id, "status": 400, "error": {"type": "document_parsing_exception", "reason": reason}}})
        } else {
            let mut indices = cluster.indices.lock().expect("indices");
            let replaced = indices.entry(index.clone()).or_default().insert(id.clone(), doc).is_some();
            json!({"index": {"_index": index, "_id": id, "status": if replaced { 200 } else { 201 }, "result": if replaced { "updated" } else { "created" }}})
        };
        items.push(item);
    }
    answer(StatusCode::OK, json!({"took": 1, "errors": errors, "items": items}))
}

async fn template_exists(State(cluster): State<Arc<Cluster>>, Path(name): Path<String>) -> StatusCode {
    if cluster.templates.lock().expect("templates").contains_key(&name) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn put_template(State(cluster): State<Arc<Cluster>>, Path(name): Path<String>, body: Bytes) -> Answer {
    let body: Value = serde_json::from_slice(&body).expect("a JSON template");
    cluster.templates.lock().expect("templates").insert(name, body);
    answer(StatusCode::OK, json!({"acknowledged": true}))
}

async fn cat_indices(State(cluster): State<Arc<Cluster>>, Path(pattern): Path<String>) -> Answer {
    let prefix = pattern.trim_end_matches('*');
    let names: Vec<Value> = cluster
        .indices
        .lock()
        .expect("indices")
        .keys()
        .filter(|k| k.starts_with(prefix))
        .map(|k| json!({"index": k}))
        .collect();
    answer(StatusCode::OK, Value::Array(names))
}

async fn delete_index(State(cluster): State<Arc<Cluster>>, Path(index): Path<String>) -> StatusCode {
    match cluster.indices.lock().expect("indices").remove(&index) {
        Some(_) => StatusCode::OK,
        None => StatusCode::NOT_FOUND,
    }
}

/// `POST <pattern>/_delete_by_query` with a `term` query, as Elasticsearch answers
/// it: the documents of the matching indices whose field holds the value are
/// deleted, `deleted` counts them.
async fn delete_by_query(
    State(cluster): State<Arc<Cluster>>,
    Path(pattern): Path<String>,
    body: Bytes,
) -> Answer {
    let Ok(query) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, json!({"error": {"type": "parse_exception"}}));
    };
    let Some((field, value)) = query["query"]["term"].as_object().and_then(|t| t.iter().next()) else {
        return answer(StatusCode::BAD_REQUEST, json!({"error": {"type": "parsing_exception"}}));
    };
    let prefix = pattern.trim_end_matches('*');
    let mut deleted = 0;
    for (index, docs) in cluster.indices.lock().expect("lock").iter_mut() {
        if !index.starts_with(prefix) {
            continue;
        }
        let before = docs.len();
        docs.retain(|_, doc| field.split('.').try_fold(&*doc, |at, key| at.get(key)) != Some(value));
        deleted += before - docs.len();
    }
    answer(StatusCode::OK, json!({"took": 1, "deleted": deleted, "failures": []}))
}

fn serve(cluster: Arc<Cluster>) -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = Router::new()
        .route("/_bulk", post(bulk))
        .route("/_index_template/{name}", put(put_template).head(template_exists))
        .route("/_cat/indices/{pattern}", get(cat_indices))
        .route("/{index}", axum::routing::delete(delete_index))
        .route("/{pattern}/_delete_by_query", post(delete_by_query))
        .with_state(cluster);
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, runtime)
}

#[test]
fn events_are_indexed_by_class_and_day_retried_item_by_item_and_refused_items_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    // Stamped over the last ~14 hours: today's indices, well inside every age, so
    // the deletion running beside the writes never touches them.
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let start = (now_ms - 14 * 3_600_000).to_string();
    let status = command()
        .args([
            "generate",
            "--count",
            "1000",
            "--seed",
            "21",
            "--rate",
            "0.02",
            "--start-ms",
            &start,
            "--out",
        ])
        .arg(&input)
        .status()
        .expect("generate runs");
    assert!(status.success());
    let mut lines = read_lines(&input);
    let events: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    // Three events the cluster refuses for their mapping, with PII in the value.
    for i in 0..3 {
        lines.push(format!(
            r#"{{"event_id":"bad-{i}","timestamp":1767225600000,"component":"probe","event_type":"custom.probe","severity":"INFO","data":{{"bad_value":"jane.doe@example.com"}}}}"#
        ));
    }
    std::fs::write(&input, lines.join("\n") + "\n").expect("input");
    let throttled: Vec<String> =
        events.iter().step_by(97).map(|e| e["event_id"].as_str().expect("id").to_string()).collect();
    let cluster =
        Arc::new(Cluster { throttled: throttled.clone(), unavailable: Mutex::new(1), ..Cluster::default() });
    // An index long past the low class's 7 days, and one of today's.
    cluster.indices.lock().expect("indices").insert("codex-synaptic-low-2020.01.01".into(), BTreeMap::new());
    let (addr, _server) = serve(cluster.clone());
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: {input}}}\n\
             pipeline:\n  - {{type: retention}}\n\
             sinks:\n  - {{name: search, type: elasticsearch, url: \"http://{addr}\", auth: {{username: elastic, password: s3cret-pw}}, delete_after: {{low: 7d, \"*\": 3650d}}}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            input = input.display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let run = || {
        let mut cmd = command();
        cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config);
        let (code, summary, log) = Running::spawn(cmd).finish_with_log(Duration::from_secs(120));
        assert_eq!(code, 0, "{summary}: {}", log.join("\n"));
        assert_eq!(summary["acknowledged"], 1003, "{summary}");
    };
    run();

    let stored: BTreeMap<String, (String, Value)> = cluster
        .indices
        .lock()
        .expect("indices")
        .iter()
        .flat_map(|(index, docs)| {
            docs.iter().map(move |(id, doc)| (id.clone(), (index.clone(), doc.clone())))
        })
        .collect();
    assert_eq!(stored.len(), events.len(), "every event stored once, the refused ones not");
    for event in &events {
        let id = event["event_id"].as_str().expect("id");
        let (index, doc) = stored.get(id).unwrap_or_else(|| panic!("{id} stored"));
        let class = doc["tags"]["retention"].as_str().expect("class");
        let ms = doc["timestamp"].as_u64().expect("timestamp");
        let day =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string();
        assert_eq!(index, &format!("codex-synaptic-{class}-{}", day[..10].replace('-', ".")));
    }
    let sends = cluster.sends.lock().expect("sends");
    for id in &throttled {
        assert_eq!(sends.get(id), Some(&3), "{id}: two 429s, then stored");
    }
    // Throttled items were sent again alone: the others went once (the 503 came
    // before any item was looked at).
    let sent_once =
        events.iter().filter(|e| sends.get(e["event_id"].as_str().expect("id")) == Some(&1)).count();
    assert_eq!(sent_once, events.len() - throttled.len());
    drop(sends);

    let dead: Vec<Value> = read_lines(&dir.path().join("dead.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    for letter in &dead {
        let reason = letter.to_string();
        assert!(
            reason.contains("document_parsing_exception") && reason.contains("data.bad_value"),
            "{reason}"
        );
        let reason_field = letter["reason"].as_str().unwrap_or_default();
        assert!(!reason_field.contains("jane.doe@example.com"), "the value preview is cut: {reason_field}");
    }

    let templates = cluster.templates.lock().expect("templates");
    let template = templates.get("codex-synaptic").expect("the index template was installed");
    assert_eq!(template["index_patterns"], json!(["codex-synaptic-*"]));
    assert_eq!(template["template"]["mappings"]["properties"]["timestamp"]["type"], "date");
    drop(templates);
    assert!(
        cluster.authorization.lock().expect("auth").iter().all(|a| a.starts_with("Basic ")),
        "basic auth on every request"
    );
    let indices: Vec<String> = cluster.indices.lock().expect("indices").keys().cloned().collect();
    assert!(
        !indices.contains(&"codex-synaptic-low-2020.01.01".to_string()),
        "the expired index was deleted: {indices:?}"
    );

    // A replay overwrites by _id: nothing doubles.
    run();
    let total: usize = cluster.indices.lock().expect("indices").values().map(BTreeMap::len).sum();
    assert_eq!(total, events.len());
}

/// Every file below `dir`.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Every line of every file below `dir`, with its file.
fn lines_below(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    files_below(dir)
        .into_iter()
        .flat_map(|path| read_lines(&path).into_iter().map(move |l| (path.clone(), l)))
        .collect()
}

/// The bytes of a file below `dir` hold `needle`.
fn bytes_below_hold(dir: &std::path::Path, needle: &str) -> bool {
    files_below(dir).iter().any(|path| {
        std::fs::read(path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

/// Where one subject's events are: archived events and indexed documents whose
/// `data.agent_id` is the agent, dead letters that mention the agent anywhere, and
/// whether the disk buffer's bytes hold `"agent_id":"<agent>"` (its records are
/// the events' lines, unsealed).
fn holdings(dir: &std::path::Path, cluster: &Cluster, agent: &str) -> (usize, usize, usize, bool) {
    let owned = |doc: &Value| doc["data"]["agent_id"] == agent;
    let archive = lines_below(&dir.join("out"))
        .iter()
        .filter(|(_, l)| serde_json::from_str::<Value>(l).is_ok_and(|e| owned(&e)))
        .count();
    let dead = read_lines(&dir.join("dead.jsonl")).iter().filter(|l| l.contains(agent)).count();
    let indexed = cluster
        .indices
        .lock()
        .expect("lock")
        .values()
        .flat_map(|docs| docs.values())
        .filter(|d| owned(d))
        .count();
    (archive, dead, indexed, bytes_below_hold(&dir.join("buffer"), &format!("\"agent_id\":\"{agent}\"")))
}

/// Appends a dead letter of the agent's, as the pipeline writes one for input it
/// cannot parse. The run has no malformed input, so the dead-letter sink writes
/// nothing itself: bad input never passes the consent step, and a subject's bad
/// input arriving after a deletion is new data the request did not cover.
fn add_dead_letter(dir: &std::path::Path, agent: &str) {
    let dead_letter = json!({
        "time": 1_767_225_600_000u64,
        "stage": "decode",
        "reason": "EOF while parsing an object at line 1 column 60",
        "source": {"kind": "generator", "seq": 1},
        "raw": format!(r#"{{"event_id":"x","data":{{"agent_id":"{agent}","task_id":"#),
    });
    let mut dead = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("dead.jsonl"))
        .expect("dead letters");
    std::io::Write::write_all(&mut dead, format!("{dead_letter}\n").as_bytes()).expect("append");
}

#[test]
fn forget_removes_a_subject_from_archives_dead_letters_buffers_and_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Arc::new(Cluster::default());
    let (es, _runtime) = serve(cluster.clone());
    let opt_out = dir.path().join("opt-out.txt");
    std::fs::write(&opt_out, "# nobody yet\n").expect("list");
    let token = "forget-token-0123456789";
    // `stuck` posts to a receiver that answers 503 until after the deletion: its
    // events wait in its disk buffer, one batch of them in the sink's hands.
    let receiver = Arc::new(common::receiver::Receiver::default());
    receiver.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let (receiver_addr, _receiver_runtime) = common::receiver::serve(receiver.clone());
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: generator, rate: 400}}\n\
             limits: {{drain_timeout: 3s}}\n\
             pipeline:\n\
             \x20 - {{type: consent, opt_out: {list}}}\n\
             \x20 - {{type: retention}}\n\
             sinks:\n\
             \x20 - {{name: archive, type: file, path: \"{dir}/out/{{retention}}/events-{{date}}.jsonl\"}}\n\
             \x20 - {{name: index, type: elasticsearch, url: \"http://{es}\", gzip: false}}\n\
             \x20 - {{name: stuck, type: http, url: \"http://{receiver_addr}/ingest\", buffer: {{type: disk, path: {dir}/buffer}}}}\n\
             dead_letter: {{type: file, path: {dir}/dead.jsonl}}\n\
             server:\n\
             \x20 listen: \"127.0.0.1:{listen}\"\n\
             \x20 auth: {{tokens: [{{name: privacy-officer, token: {token}}}], metrics: open}}\n\
             audit: {{path: {dir}/audit.jsonl}}\n",
            list = opt_out.display(),
            dir = dir.path().display(),
            listen = common::free_port(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(60));
    // The two agents with the most archived events: one forgotten through the
    // running instance, one by the command after it stopped.
    let (first, second) = common::wait_for("2,000 archived events", || {
        let lines = lines_below(&dir.path().join("out"));
        if lines.len() < 2_000 {
            return None;
        }
        let mut per_agent = BTreeMap::<String, usize>::new();
        for (_, line) in &lines {
            let event: Value = serde_json::from_str(line).ok()?;
            if let Some(agent) = event["data"]["agent_id"].as_str() {
                *per_agent.entry(agent.to_string()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(usize, String)> = per_agent.into_iter().map(|(a, n)| (n, a)).collect();
        ranked.sort();
        let first = ranked.pop()?.1;
        let second = ranked.pop()?.1;
        Some((first, second))
    });
    // The documented order: opt out first, so no new events are kept, then forget.
    std::fs::write(&opt_out, format!("data.agent_id={first}\n")).expect("list");
    common::wait_for("the opt-out in force", || {
        let (_, body) = common::http_get(addr, "/metrics");
        common::metric(&body, "synaptic_telemetry_consent_events_total{action=\"dropped\",step=\"consent\"}")
            .filter(|n| *n > 0.0)
    });
    // Batches past the consent step when it took effect reach their sinks.
    std::thread::sleep(Duration::from_secs(2));
    add_dead_letter(dir.path(), &first);
    let (archive, dead, indexed, buffered) = holdings(dir.path(), &cluster, &first);
    assert!(
        archive > 0 && dead > 0 && indexed > 0 && buffered,
        "held before: {archive} {dead} {indexed} {buffered}"
    );

    let forget = |extra: &[&str], token: Option<&str>| {
        let mut cmd = command();
        cmd.arg("forget").args(extra);
        match token {
            Some(token) => cmd.env("SYNAPTIC_TELEMETRY_TOKEN", token),
            None => cmd.env_remove("SYNAPTIC_TELEMETRY_TOKEN"),
        };
        // Bounded: output goes to files, the child is waited for at most 120 s.
        let out_path = dir.path().join("forget.out");
        let out = std::fs::File::create(&out_path).expect("output file");
        let err = out.try_clone().expect("output file");
        let mut child = cmd.stdout(out).stderr(err).spawn().expect("forget runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("forget did not finish within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status.code(), std::fs::read_to_string(&out_path).unwrap_or_default())
    };
    let url = format!("http://{addr}");
    let subject = format!("data.agent_id={first}");
    let (code, text) = forget(&["--url", &url, "--subject", &subject], None);
    assert_ne!(code, Some(0), "no token, no deletion: {text}");
    assert!(text.contains("401"), "{text}");
    let (code, text) = forget(&["--url", &url, "--subject", &subject], Some(token));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("archive file")
            && text.contains("index elasticsearch")
            && text.contains("stuck buffer"),
        "{text}"
    );
    // The receiver comes back: the buffer drains, and not one of the subject's
    // events reaches it, not even from the batch the sink held while retrying.
    receiver.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let answered = |r: &common::receiver::Request| r.answered < 300;
    common::wait_for("the buffered events delivered", || {
        (receiver.requests.lock().expect("requests").iter().filter(|r| answered(r)).count() > 3).then_some(())
    });
    // The pipeline goes on writing the others' events to the reopened files.
    let before = lines_below(&dir.path().join("out")).len();
    common::wait_for("archive written after the rewrite", || {
        (lines_below(&dir.path().join("out")).len() > before + 400).then_some(())
    });
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    let mut delivered = 0;
    for request in receiver.requests.lock().expect("requests").iter().filter(|r| answered(r)) {
        for line in request.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event: Value = serde_json::from_slice(line).expect("a JSON line");
            assert_ne!(event["data"]["agent_id"], first.as_str(), "{first}'s event reached the receiver");
            delivered += 1;
        }
    }
    assert!(delivered > 100, "the buffer drained: {delivered}");
    assert_eq!(holdings(dir.path(), &cluster, &first), (0, 0, 0, false), "{first} is held nowhere");

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    let entry: Value = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["action"] == "forget")
        .expect("the request is in the audit log");
    assert_eq!(entry["actor"], "privacy-officer");
    assert_eq!(entry["outcome"], "ok");
    assert!(entry["detail"]["removed"].as_u64().is_some_and(|n| n > 0), "{entry}");
    assert!(!audit.contains(&first), "the audit log names the subject by digest only");

    // The second subject, with the pipeline stopped: the command does it itself.
    add_dead_letter(dir.path(), &second);
    let (archive, dead, indexed, _) = holdings(dir.path(), &cluster, &second);
    assert!(archive > 0 && dead > 0 && indexed > 0, "{second}: {archive} {dead} {indexed}");
    let others = lines_below(&dir.path().join("out")).len() - archive;
    let (code, text) = forget(
        &["--config", &config.display().to_string(), "--subject", &format!("data.agent_id={second}")],
        None,
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(holdings(dir.path(), &cluster, &second), (0, 0, 0, false), "{second} is held nowhere");
    assert_eq!(lines_below(&dir.path().join("out")).len(), others, "every other event kept");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    assert_eq!(audit.lines().filter(|l| l.contains("\"action\":\"forget\"")).count(), 2);
}
