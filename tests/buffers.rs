//! Disk buffers end to end, with the real binary and a test HTTP receiver: what
//! was acknowledged into a disk buffer is delivered after a SIGKILL and a restart;
//! a buffer with a flipped byte and a truncated tail still starts, counts what it
//! skipped, and delivers the rest.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::receiver::{delivered, serve, Receiver};
use common::{command, http_get, metric, wait_for, write_config, Running};

/// `count` generated events in `dir/name`; their ids.
fn generate(dir: &Path, name: &str, count: u64) -> (PathBuf, BTreeSet<String>) {
    let path = dir.join(name);
    let status = command()
        .args(["generate", "--count", &count.to_string(), "--seed", "17", "--rate", "200", "--out"])
        .arg(&path)
        .status()
        .expect("generate runs");
    assert!(status.success());
    let ids = common::read_lines(&path)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON")["event_id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    (path, ids)
}

/// `input` is a path, or `-` for stdin.
fn config(dir: &Path, input: &Path, receiver: std::net::SocketAddr, fsync: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "source: {{type: file, path: \"{input}\"}}\n\
             batch: {{max_events: 100, linger: 10ms}}\n\
             limits: {{drain_timeout: 5s}}\n\
             sinks:\n\
             \x20 - {{name: out, type: http, url: \"http://{receiver}/ingest\",\n\
             \x20     buffer: {{type: disk, path: {buffer}, fsync: {fsync}}},\n\
             \x20     circuit_breaker: {{failures: 2, cool_down: 200ms, max_cool_down: 500ms}}}}\n\
             dead_letter: {{type: file, path: {dead}}}\n",
            input = input.display(),
            buffer = dir.join("buffer").display(),
            dead = dir.join("dead.jsonl").display(),
        ),
    )
}

/// Runs the pipeline with the receiver down until every input record is
/// acknowledged (it is in the disk buffer), then stops it with `signal`.
fn fill_buffer_while_down(
    dir: &Path,
    receiver: std::net::SocketAddr,
    count: u64,
    fsync: &str,
    signal: &str,
) -> BTreeSet<String> {
    let (input, ids) = generate(dir, "input.jsonl", count);
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(config(
        dir,
        Path::new("-"),
        receiver,
        fsync,
    ));
    // Read from stdin, kept open: the source does not end by itself.
    cmd.stdin(std::process::Stdio::piped());
    let mut running = Running::spawn(cmd);
    let mut stdin = running.child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, &std::fs::read(&input).expect("input")).expect("feed the input");
    let server = running.wait_for_address(Duration::from_secs(30));
    wait_for("every event acknowledged into the disk buffer", || {
        let (_, body) = http_get(server, "/metrics");
        (metric(&body, "synaptic_telemetry_acknowledged_events_total") == Some(count as f64)).then_some(())
    });
    let (_, body) = http_get(server, "/metrics");
    assert!(
        metric(&body, "synaptic_telemetry_buffer_bytes{sink=\"out\"}").is_some_and(|b| b > 0.0),
        "{body}"
    );
    running.signal(signal);
    if signal == "KILL" {
        let _ = running.finish(Duration::from_secs(10));
    } else {
        let (code, summary) = running.finish(Duration::from_secs(30));
        assert_eq!(code, 0, "a clean stop with a failing output keeps the buffer: {summary}");
        assert_eq!(summary["acknowledged"], count, "{summary}");
    }
    drop(stdin);
    ids
}

/// Runs the pipeline over an empty input with the receiver up: it delivers the
/// buffer and ends. Returns its log.
fn drain_buffer(dir: &Path, receiver: std::net::SocketAddr) -> Vec<String> {
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, b"").expect("empty input");
    let mut cmd = command();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"]).arg(config(dir, &empty, receiver, "interval"));
    let (code, summary, log) = Running::spawn(cmd).finish_with_log(Duration::from_secs(60));
    assert_eq!(code, 0, "{summary}\n{}", log.join("\n"));
    log
}

/// The test receiver, answering 503 until `down` is cleared.
fn receiver_down() -> (Arc<Receiver>, std::net::SocketAddr, tokio::runtime::Runtime) {
    let receiver = Arc::new(Receiver::default());
    receiver.down.store(true, Ordering::SeqCst);
    let (addr, server) = serve(receiver.clone());
    (receiver, addr, server)
}

#[test]
fn what_was_acknowledged_into_a_disk_buffer_is_delivered_after_sigkill_and_restart() {
    let (receiver, addr, _server) = receiver_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = fill_buffer_while_down(dir.path(), addr, 3_000, "every_batch", "KILL");
    assert!(delivered(&receiver, false).is_empty(), "nothing was delivered while the receiver was down");

    receiver.down.store(false, Ordering::SeqCst);
    drain_buffer(dir.path(), addr);
    let got = delivered(&receiver, false);
    let got_ids: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(got_ids, ids, "every acknowledged event arrived after the restart");
    assert!(got.values().all(|n| *n == 1), "none twice: nothing had been delivered before the kill");
    let segments: Vec<_> = std::fs::read_dir(dir.path().join("buffer"))
        .expect("buffer dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .collect();
    assert!(segments.len() <= 1, "delivered segments are reclaimed: {segments:?}");
}

/// Records in a segment file: (offset, payload length, events in it). Reads the
/// record layout of `src/buffer/disk.rs` and `src/sink/task.rs`.
fn records(segment: &[u8]) -> Vec<(usize, usize, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 20 <= segment.len() {
        let len = u32::from_le_bytes(segment[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        // The line count is the payload's last 4 bytes.
        let end = at + 20 + len;
        let events = u32::from_le_bytes(segment[end - 4..end].try_into().expect("4 bytes"));
        out.push((at, len, events));
        at += 20 + len;
    }
    out
}

#[test]
fn a_disk_buffer_with_a_flipped_byte_and_a_truncated_tail_starts_counts_and_delivers_the_rest() {
    let (receiver, addr, _server) = receiver_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = fill_buffer_while_down(dir.path(), addr, 3_000, "interval", "TERM");

    let buffer = dir.path().join("buffer");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&buffer)
        .expect("buffer dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let segment = segments.last().expect("a segment").clone();
    let mut bytes = std::fs::read(&segment).expect("segment");
    let found = records(&bytes);
    assert!(found.len() >= 10, "{} records", found.len());
    // A flipped byte inside the third record's payload...
    let (third, third_len, third_events) = found[2];
    bytes[third + 20 + third_len / 2] ^= 0x01;
    // ... and the last record cut in the middle.
    let (last, last_len, last_events) = *found.last().expect("records");
    bytes.truncate(last + 20 + last_len / 2);
    std::fs::write(&segment, &bytes).expect("damaged segment");

    receiver.down.store(false, Ordering::SeqCst);
    let log = drain_buffer(dir.path(), addr);
    let skipped: Vec<&String> = log.iter().filter(|l| l.contains("skipped damaged records")).collect();
    assert!(
        skipped.iter().any(|l| l.contains("reason=\"corrupt\"") && l.contains("records=1")),
        "the flipped byte is counted: {skipped:?}"
    );
    assert!(
        skipped.iter().any(|l| l.contains("reason=\"truncated\"") && l.contains("records=1")),
        "the cut record is counted: {skipped:?}"
    );
    let got = delivered(&receiver, false);
    assert!(got.keys().all(|id| ids.contains(id)));
    let expected = ids.len() - third_events as usize - last_events as usize;
    assert_eq!(got.len(), expected, "everything but the two damaged records arrived");
}
