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
