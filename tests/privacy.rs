//! The promises off the happy path, through the binary: no PII leaves by a dead
//! letter in a pipeline with the scrubber, one failing event takes no neighbour
//! with it, the plugin directory reads only regular files that stay inside it,
//! and the HTTP server cannot be held by half-open clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::{Duration, Instant};

use common::plugins::wasm;
use common::{command, http_get, read_lines, write_config, Running};
use serde_json::Value;

/// What the generator and the hand-made lines below put into free text.
const PII: &[&str] = &[
    "jane.doe@example.com",
    "jane.doe\\u0040example.com",
    "415 555 0134",
    "4111 1111 1111 1111",
    "078-05-1120",
    "hunter2",
    "eyJhbGciOiJIUzI1NiJ9",
    "GB82 WEST",
    "203.0.113.42",
];

fn head(id: &str, event_type: &str) -> String {
    format!(
        r#""event_id":"{id}","timestamp":1767225600000,"component":"agent","event_type":"{event_type}","severity":"INFO""#
    )
}

/// Inputs that cannot be processed, each with PII where a careless dead letter
/// would show it: in the bytes, in the rejection reason, behind an escape, under
/// invalid UTF-8, deep in nesting.
fn hostile_lines() -> Vec<Vec<u8>> {
    let deep = format!("{}\"jane.doe@example.com\"{}", "[".repeat(100), "]".repeat(100));
    vec![
        format!(
            r#"{{{},"data":{{"agent_id":"a","agent_type":"w","state_from":"idle","state_to":"jane.doe@example.com"}}}}"#,
            head("h1", "agent.lifecycle")
        )
        .into_bytes(),
        format!(r#"{{{},"data":{{"m":"call +1 415 555 0134"}},"severity":"FATAL"}}"#, head("h2", "x.y")).into_bytes(),
        format!(r#"{{{},"data":{{"a":"\ud800","b":"card 4111 1111 1111 1111"}}}}"#, head("h3", "x.y")).into_bytes(),
        format!(r#"{{{},"data":{{"deep":{deep}}}}}"#, head("h4", "x.y")).into_bytes(),
        format!(r#"{{{},"note":"jane.doe\u0040example.com"#, head("h5", "x.y")).into_bytes(),
        b"\xff\xfe{\"ssn\":\"078-05-1120\",\"auth\":\"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl\"}"
            .to_vec(),
        format!(r#"{{{},"data":{{"n":1e400,"ip":"203.0.113.42"}}}}"#, head("h7", "x.y")).into_bytes(),
    ]
}

#[test]
fn no_pii_leaves_by_a_dead_letter_and_a_poison_event_takes_no_neighbour_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(wasm("pii_scrub"), plugins.join("pii_scrub.wasm")).expect("copy pii_scrub");
    std::fs::copy(wasm("faulty"), plugins.join("faulty.wasm")).expect("copy faulty");

    let input = dir.path().join("input.jsonl");
    let status = command()
        .args(["generate", "--count", "2000", "--seed", "3", "--malformed-ratio", "0.1", "--out"])
        .arg(&input)
        .status()
        .expect("generate");
    assert!(status.success());
    let mut file = std::fs::OpenOptions::new().append(true).open(&input).expect("input");
    let hostile = hostile_lines();
    for line in &hostile {
        file.write_all(line).and_then(|()| file.write_all(b"\n")).expect("append");
    }
    // A valid event the faulty step traps on, between valid neighbours.
    let neighbour = |id: &str| {
        format!(
            r#"{{{},"data":{{"task_id":"t","agent_id":"a","duration_ms":5,"success":false,"error_message":"mail jane.doe@example.com"}}}}"#,
            head(id, "task.completed")
        )
    };
    for id in ["neighbour-before", "poison-1", "neighbour-after"] {
        writeln!(file, "{}", neighbour(id)).expect("append");
    }
    drop(file);

    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: {input}}}\n\
             batch: {{max_events: 100, linger: 20ms}}\n\
             plugins: {{dir: {plugins}}}\n\
             pipeline:\n\
             \x20 - {{name: faulty, type: plugin, file: faulty.wasm, config: {{mode: poison}}}}\n\
             \x20 - {{name: pii_scrub, type: plugin, file: pii_scrub.wasm}}\n\
             sinks: [{{name: out, type: file, path: {out}}}]\n\
             dead_letter: {{type: file, path: {dead}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            input = input.display(),
            plugins = plugins.display(),
            out = dir.path().join("out/events.jsonl").display(),
            dead = dir.path().join("out/dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let running = Running::spawn(cmd);
    let (code, summary) = running.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["acknowledged"], summary["read"], "{summary}");

    let dead = std::fs::read_to_string(dir.path().join("out/dead.jsonl")).expect("dead letters");
    let events = std::fs::read_to_string(dir.path().join("out/events.jsonl")).expect("events");
    for pii in PII {
        assert!(!dead.contains(pii), "{pii} in a dead letter");
        assert!(!events.contains(pii), "{pii} in the output");
    }
    let letters: Vec<Value> =
        dead.lines().map(|l| serde_json::from_str(l).expect("dead letter is JSON")).collect();
    assert_eq!(letters.len() as u64, summary["dead_lettered"].as_u64().expect("count"), "{summary}");
    assert!(letters.len() > 150, "the generator's malformed events and the hostile lines: {}", letters.len());
    for letter in &letters {
        assert_eq!(letter["raw_scrubbed"], true, "{letter}");
        assert!(letter.get("raw_base64").is_none(), "{letter}");
    }
    let reasons: Vec<&str> = letters.iter().filter_map(|l| l["reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("duplicate key \"severity\"")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("nested deeper than 64 levels")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("state_to") && r.contains("[REDACTED:email]")), "{reasons:?}");

    // Only the poison event failed the faulty step; its neighbours went on.
    let step_letters: Vec<&Value> = letters.iter().filter(|l| l["stage"]["step"] == "faulty").collect();
    assert_eq!(step_letters.len(), 1, "{step_letters:?}");
    assert!(step_letters[0]["raw"].as_str().is_some_and(|r| r.contains("poison-1")));
    assert!(events.contains("neighbour-before") && events.contains("neighbour-after"));

    for file in ["out/dead.jsonl", "out/events.jsonl"] {
        let mode = std::fs::metadata(dir.path().join(file)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "{file} is created 0640 or stricter, not {mode:o}");
    }
}

#[test]
fn the_scrubber_refuses_on_error_pass_and_exports_before_it_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(wasm("pii_scrub"), plugins.join("pii_scrub.wasm")).expect("copy");
    let config = |on_error: &str| {
        write_config(
            dir.path(),
            &format!(
                "source: {{type: generator}}\n\
                 plugins: {{dir: {plugins}}}\n\
                 pipeline:\n\
                 \x20 - {{name: metrics, type: metrics}}\n\
                 \x20 - {{name: pii_scrub, type: plugin, file: pii_scrub.wasm, on_error: {on_error}}}\n\
                 sinks: [{{name: out, type: stdout}}]\n\
                 dead_letter: {{type: stdout}}\n",
                plugins = plugins.display(),
            ),
        )
    };
    let out = command().arg("validate").arg(config("pass")).output().expect("validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("on_error: pass is refused for the PII scrubber"), "{text}");

    let out = command().arg("validate").arg(config("dead_letter")).output().expect("validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("warning: step `metrics` runs before the PII scrubber `pii_scrub`"), "{text}");
}

#[test]
fn plugin_files_that_lead_outside_or_are_not_regular_files_are_refused_without_hanging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    symlink("/etc/passwd", plugins.join("passwd.wasm")).expect("link");
    symlink("/dev/zero", plugins.join("zero.wasm")).expect("link");
    let fifo = plugins.join("fifo.wasm");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    for (file, reason) in
        [("passwd.wasm", "outside"), ("zero.wasm", "outside"), ("fifo.wasm", "is not a regular file")]
    {
        let config = write_config(
            dir.path(),
            &format!(
                "source: {{type: generator}}\n\
                 plugins: {{dir: {plugins}}}\n\
                 pipeline: [{{type: plugin, file: {file}}}]\n\
                 sinks: [{{name: out, type: stdout}}]\n\
                 dead_letter: {{type: stdout}}\n",
                plugins = plugins.display(),
            ),
        );
        let started = Instant::now();
        let out = command().arg("validate").arg(&config).output().expect("validate");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && text.contains(reason), "{file}: {text}");
        assert!(started.elapsed() < Duration::from_secs(20), "{file}: validate returned");

        // `test plugin` reads the file the same way.
        let out = command()
            .args(["test", "plugin"])
            .arg(plugins.join(file))
            .args(["--input", "/dev/null"])
            .output()
            .expect("test plugin");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && text.contains(reason), "{file}: {text}");
    }
}

#[test]
fn half_open_clients_cannot_hold_the_http_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "source: {type: generator, rate: 100, malformed_ratio: 0}\n\
         pipeline: []\n\
         sinks: [{name: out, type: file, path: out/events.jsonl}]\n\
         dead_letter: {type: file, path: out/dead.jsonl}\n\
         server: {listen: \"127.0.0.1:0\"}\n",
    );
    let mut cmd = command();
    cmd.current_dir(dir.path()).args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(60));

    // More half-open requests than the server takes at once: each sends part of
    // its headers and then nothing.
    let mut slow: Vec<TcpStream> =
        (0..300).filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()).collect();
    for stream in &mut slow {
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    }
    assert!(slow.len() >= 290, "connections opened: {}", slow.len());
    // The server cuts them off after its header timeout (10 s) and serves others.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        let served = std::panic::catch_unwind(|| http_get(addr, "/health")).map(|(status, _)| status == 200);
        if served.unwrap_or(false) {
            break;
        }
        assert!(Instant::now() < deadline, "/health not served within 30 s of the slow clients");
        std::thread::sleep(Duration::from_millis(200));
    }
    let still_open = slow.iter_mut().map(closed_by_server).filter(|closed| !closed).count();
    assert_eq!(still_open, 0, "every half-open connection was cut off");
    assert!(started.elapsed() < Duration::from_secs(45), "bounded: {:?}", started.elapsed());
    running.signal("TERM");
    let (code, summary) = running.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}");
    assert!(read_lines(&dir.path().join("out/dead.jsonl")).is_empty());
}

/// Whether the server ends the connection within 15 s: the end of the stream or
/// a reset (after an error answer, if any), not a read that times out.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("read timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// The privacy steps through the binary: an opted-out subject's events go nowhere,
/// what is left is minimized, and the file sink files each event under its
/// retention class and day.
#[test]
fn opted_out_subjects_are_dropped_and_events_are_filed_by_retention_class_and_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    // 3,000 events over about 40 hours of event time: two or three days.
    let status = command()
        .args(["generate", "--count", "3000", "--seed", "11", "--rate", "0.02", "--out"])
        .arg(&input)
        .status()
        .expect("generate runs");
    assert!(status.success());
    let events: Vec<Value> =
        read_lines(&input).iter().map(|l| serde_json::from_str(l).expect("generated JSON")).collect();
    // The subject who opts out: the agent with the most events.
    let mut per_agent = std::collections::BTreeMap::<String, usize>::new();
    for e in &events {
        if let Some(agent) = e["data"]["agent_id"].as_str() {
            *per_agent.entry(agent.to_string()).or_default() += 1;
        }
    }
    let (subject, subject_events) = per_agent.iter().max_by_key(|(_, n)| **n).expect("agents");
    assert!(*subject_events > 10, "{subject}: {subject_events}");
    std::fs::write(dir.path().join("opt-out.txt"), format!("# opted out\ndata.agent_id={subject}\n"))
        .expect("list");
    let out = dir.path().join("out");
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: {input}}}\n\
             pipeline:\n\
             \x20 - {{type: consent, opt_out: {list}}}\n\
             \x20 - {{type: minimize, allow: {{system.health: [data.*]}}}}\n\
             \x20 - {{type: retention}}\n\
             sinks:\n  - {{name: archive, type: file, path: \"{out}/{{retention}}/events-{{date}}.jsonl\", delete_after: {{\"*\": 3650d}}}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            input = input.display(),
            list = dir.path().join("opt-out.txt").display(),
            out = out.display(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(&config);
    let (code, summary, log) = Running::spawn(cmd).finish_with_log(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}: {}", log.join("\n"));

    let mut written = 0;
    let mut classes = std::collections::BTreeMap::<String, usize>::new();
    for class_dir in std::fs::read_dir(&out).expect("out dir") {
        let class_dir = class_dir.expect("entry").path();
        let class = class_dir.file_name().expect("name").to_string_lossy().into_owned();
        for file in std::fs::read_dir(&class_dir).expect("class dir") {
            let file = file.expect("entry").path();
            let name = file.file_name().expect("name").to_string_lossy().into_owned();
            for line in read_lines(&file) {
                let event: Value = serde_json::from_str(&line).expect("JSON");
                assert_eq!(event["tags"]["retention"], class.as_str(), "{name}: {line}");
                let ms = event["timestamp"].as_u64().expect("timestamp");
                let day =
                    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms))
                        .to_string();
                assert_eq!(name, format!("events-{}.jsonl", &day[..10]), "{line}");
                assert_ne!(
                    event["data"]["agent_id"],
                    subject.as_str(),
                    "an opted-out subject's event: {line}"
                );
                written += 1;
                *classes.entry(class.clone()).or_default() += 1;
            }
        }
    }
    let expected = common::spec_retention_class;
    let mut wanted = std::collections::BTreeMap::<String, usize>::new();
    for e in events.iter().filter(|e| e["data"]["agent_id"] != subject.as_str()) {
        *wanted.entry(expected(e).to_string()).or_default() += 1;
    }
    assert_eq!(written, events.len() - subject_events, "{summary}");
    assert_eq!(classes, wanted);
    assert_eq!(summary["acknowledged"], events.len() as u64, "dropped events count as done: {summary}");
}
