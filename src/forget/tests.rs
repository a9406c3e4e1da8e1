use super::*;

fn subject() -> Subject {
    Subject::parse("data.agent_id=agent-017").expect("subject")
}

fn event(agent: &str, n: u32) -> String {
    format!(
        r#"{{"event_id":"e{n}","timestamp":1767225600000,"component":"agent","event_type":"agent.spawned","severity":"INFO","data":{{"agent_id":"{agent}","note":"n{n}"}}}}"#
    )
}

#[test]
fn subjects_are_field_equals_value_under_data_tags_or_context() {
    assert_eq!(subject().field(), "data.agent_id");
    assert!(Subject::parse("tags.owner = ana").is_ok());
    assert!(Subject::parse("agent-017").expect_err("no =").contains("expected FIELD=VALUE"));
    assert!(Subject::parse("event_id=e1").expect_err("envelope").contains("not a field under data"));
    assert!(Subject::parse("data.agent_id=").expect_err("empty").contains("empty"));
}

#[test]
fn lines_are_the_subjects_by_their_field_or_the_input_a_dead_letter_holds() {
    let s = subject();
    assert!(s.owns_line(event("agent-017", 1).as_bytes()));
    assert!(!s.owns_line(event("agent-0171", 1).as_bytes()), "a longer value is another subject");
    assert!(!s.owns_line(event("agent-01", 1).as_bytes()));
    let elsewhere = r#"{"data":{"agent_id":"agent-2","peer":"agent-017"}}"#;
    assert!(!s.owns_line(elsewhere.as_bytes()), "a valid event is matched on the field alone");
    let number = Subject::parse("data.pid=42").expect("subject");
    assert!(number.owns_line(br#"{"data":{"pid":42}}"#));
    // Dead letters: valid JSON input with the value anywhere, escaped or not.
    let raw = serde_json::json!({"stage": "schema", "raw": r#"{"data":{"agent_id":["agent\u002d017"]}}"#});
    assert!(s.owns_line(raw.to_string().as_bytes()));
    let broken = serde_json::json!({"stage": "decode", "raw": r#"{"data":{"agent_id":"agent-017","#});
    assert!(s.owns_line(broken.to_string().as_bytes()));
    let other = serde_json::json!({"stage": "decode", "raw": r#"{"data":{"agent_id":"agent-0170","#});
    assert!(!s.owns_line(other.to_string().as_bytes()));
    let encoded = base64::engine::general_purpose::STANDARD.encode(b"\xff{\"agent_id\":\"agent-017\"");
    let binary = serde_json::json!({"stage": "decode", "raw_base64": encoded});
    assert!(s.owns_line(binary.to_string().as_bytes()));
    let head = serde_json::json!({"truncated": true, "head": r#"{"data":{"agent_id":"agent-017","x":"#});
    assert!(s.owns_line(head.to_string().as_bytes()));
    assert!(s.owns_line(br#"garbage "agent-017" garbage"#), "a line that is not JSON, by the quoted value");
    assert!(!s.owns_line(b"garbage agent-017 garbage"));
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").ino()
}

#[test]
fn a_file_is_rewritten_without_the_subjects_lines_and_left_alone_when_it_has_none() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("events.jsonl");
    let lines: Vec<String> =
        (0..50).map(|n| event(if n % 5 == 0 { "agent-017" } else { "agent-2" }, n)).collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    assert_eq!(rewrite_file(&path, &subject(), None).expect("rewrite"), 10);
    let text = std::fs::read_to_string(&path).expect("read");
    let kept: Vec<&String> = lines.iter().filter(|l| !l.contains("agent-017")).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), kept, "the others kept, in order, byte for byte");
    let before = inode(&path);
    assert_eq!(rewrite_file(&path, &subject(), None).expect("again"), 0);
    assert_eq!(inode(&path), before, "nothing to remove: the file is not replaced");
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
}

#[test]
fn sealed_files_are_opened_frame_by_frame_and_sealed_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("events.jsonl");
    let sealer = Sealer::from_key_text(&"3c".repeat(32)).expect("key");
    let mut bytes = Vec::new();
    for frame in 0..4u32 {
        let agent = if frame == 2 { "agent-017" } else { "agent-2" };
        let batch: String =
            (0..3).map(|n| event(if n == 1 { agent } else { "agent-3" }, frame * 10 + n) + "\n").collect();
        sealer.seal_into(batch.as_bytes(), &mut bytes);
    }
    // Frame 5 is the subject's alone: it disappears whole.
    sealer.seal_into((event("agent-017", 99) + "\n").as_bytes(), &mut bytes);
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(rewrite_file(&path, &subject(), Some(&sealer)).expect("rewrite"), 2);
    let (frames, error) = sealer.open_all(&std::fs::read(&path).expect("read"));
    assert!(error.is_none(), "{error:?}");
    assert_eq!(frames.len(), 4);
    let text: String = frames.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    assert_eq!(text.lines().count(), 11);
    assert!(!text.contains("agent-017"));
    // A damaged file is left as it is and the error says where.
    let mut damaged = std::fs::read(&path).expect("read");
    let last = damaged.len() - 3;
    damaged[last] ^= 1;
    let mut with_subject = damaged;
    sealer.seal_into((event("agent-017", 7) + "\n").as_bytes(), &mut with_subject);
    std::fs::write(&path, &with_subject).expect("write");
    let error = rewrite_file(&path, &subject(), Some(&sealer)).expect_err("damaged");
    assert!(error.to_string().contains("authentication failed"), "{error}");
    assert_eq!(std::fs::read(&path).expect("read"), with_subject, "left as it was");
}

#[test]
fn buffer_records_lose_the_subjects_lines_and_keep_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let buffer = dir.path().join("buffer");
    {
        let queue = DiskQueue::open(&buffer, 8 << 20).expect("open");
        for record in 0..6u32 {
            let mut buf = Vec::new();
            let mut ranges = Vec::new();
            for n in 0..4 {
                let agent = if (record + n) % 3 == 0 { "agent-017" } else { "agent-2" };
                let start = buf.len();
                buf.extend_from_slice(event(agent, record * 10 + n).as_bytes());
                ranges.push(start..buf.len());
                buf.push(b'\n');
            }
            queue.append(&crate::sink::task::pack(buf, &ranges)).expect("append");
        }
    }
    let target = BufferTarget { sink: "s".into(), dir: buffer.clone(), max_bytes: 8 << 20, sealer: None };
    let removal = forget_in_buffer(&target, &subject());
    assert_eq!(removal.error, None);
    assert_eq!(removal.removed, 8);
    let queue = DiskQueue::open(&buffer, 8 << 20).expect("reopen");
    let mut lines = Vec::new();
    while let (Some(record), _) = queue.next().expect("read") {
        let (buf, ranges) = crate::sink::task::unpack(&record.payload).expect("packed");
        lines.extend(ranges.into_iter().map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
        queue.delivered(record.seq).expect("confirm");
    }
    assert_eq!(lines.len(), 16);
    assert!(lines.iter().all(|l| l.contains("agent-2")));
    // A buffer another process holds is reported, not waited for.
    drop(queue);
    let _held = DiskQueue::open(&buffer, 8 << 20).expect("held, as a running pipeline holds it");
    let removal = forget_in_buffer(&target, &subject());
    assert!(removal.error.as_deref().is_some_and(|e| e.contains("in use")), "{removal:?}");
}
