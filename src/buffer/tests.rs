use super::*;
use crate::decode::{parse_document, ConfigErrors};

fn decode(text: &str) -> Result<BufferConfig, ConfigErrors> {
    parse_document(text, "t.yaml", |root, cx| BufferConfig::decode(root, "sink `s`", cx))
}

#[test]
fn memory_and_disk_buffers_decode_with_their_defaults() {
    let memory = decode("type: memory\nmax_events: 100\n").expect("valid");
    assert_eq!(
        memory,
        BufferConfig {
            kind: BufferKind::Memory { max_events: 100, max_bytes: DEFAULT_MEMORY_BYTES },
            when_full: WhenFull::Block
        }
    );
    let disk =
        decode("type: disk\npath: /tmp/b\nmax_bytes: 64MiB\nfsync: every_batch\nwhen_full: drop_newest\n")
            .expect("valid");
    assert_eq!(
        disk,
        BufferConfig {
            kind: BufferKind::Disk {
                path: "/tmp/b".into(),
                max_bytes: 64 << 20,
                fsync: Fsync::EveryBatch,
                encryption: None
            },
            when_full: WhenFull::DropNewest
        }
    );
    let interval = decode("type: disk\npath: b\nfsync_interval: 250ms\n").expect("valid");
    assert!(
        matches!(interval.kind, BufferKind::Disk { fsync: Fsync::Interval(d), .. } if d.as_millis() == 250)
    );
}

#[test]
fn bad_buffers_are_refused_with_the_key_and_the_choices() {
    let text = |r: Result<BufferConfig, ConfigErrors>| r.expect_err("invalid").to_string();
    assert!(text(decode("type: tape\n")).contains("expected one of memory, disk, got `tape`"));
    assert!(text(decode("type: disk\n")).contains("missing required key `path`"));
    assert!(text(decode("type: disk\npath: b\nmax_bytes: 10kB\n")).contains("at least 1MiB"));
    assert!(text(decode("type: memory\nwhen_full: wait\n")).contains("expected one of block, drop_newest"));
    assert!(text(decode("type: memory\nmax_events: 0\n")).contains("at least one event"));
    assert!(
        text(decode("type: memory\npath: x\n")).contains("`path`"),
        "a disk key on a memory buffer is unknown"
    );
}
