use super::*;

fn payload(i: u64, size: usize) -> Vec<u8> {
    let mut p = format!("record-{i}:").into_bytes();
    p.resize(size.max(p.len()), b'x');
    p
}

/// The record number `payload` wrote.
fn number_of(payload: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(payload);
    text.trim_start_matches("record-").split(':').next().and_then(|n| n.parse().ok()).expect("numbered")
}

/// Reads and delivers everything; the payloads' record numbers and the losses.
fn drain(queue: &DiskQueue) -> (Vec<u64>, Vec<(Damage, u64)>) {
    let mut seen = Vec::new();
    let mut lost = Vec::new();
    loop {
        let (record, losses) = queue.next().expect("read");
        lost.extend(losses.0);
        let Some(record) = record else { break };
        seen.push(number_of(&record.payload));
        queue.delivered(record.seq).expect("delivered");
    }
    (seen, lost)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn delivers_in_order_and_after_a_crash_only_what_was_not_confirmed() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
        for i in 0..10 {
            assert_eq!(q.append(&payload(i, 100)).expect("append"), Appended::Written);
        }
        q.sync().expect("sync");
        for _ in 0..4 {
            let (record, _) = q.next().expect("read");
            q.delivered(record.expect("record").seq).expect("confirm");
        }
        // The fifth is read but never confirmed: the process dies here.
        let (record, _) = q.next().expect("read");
        assert!(record.is_some());
    }
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("reopen");
    let (seen, lost) = drain(&q);
    assert_eq!(
        seen,
        (4..10).collect::<Vec<_>>(),
        "the unconfirmed record comes again, the confirmed ones do not"
    );
    assert!(lost.is_empty(), "{lost:?}");
    q.append(&payload(10, 100)).expect("append after reopen");
    assert_eq!(drain(&q).0, vec![10]);
}

#[test]
fn a_second_process_cannot_open_the_same_buffer() {
    let dir = tempfile::tempdir().expect("tmp");
    let _first = DiskQueue::open(dir.path(), 8 << 20).expect("open");
    assert!(matches!(DiskQueue::open(dir.path(), 8 << 20), Err(DiskError::Locked { .. })));
}

#[test]
fn a_truncated_tail_is_skipped_counted_and_the_buffer_keeps_working() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
        for i in 0..5 {
            q.append(&payload(i, 1000)).expect("append");
        }
    }
    let seg = segments(dir.path()).pop().expect("a segment");
    let len = std::fs::metadata(&seg).expect("meta").len();
    // Cut the last record in the middle of its payload.
    std::fs::OpenOptions::new().write(true).open(&seg).expect("open").set_len(len - 500).expect("cut");
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("a damaged buffer still opens");
    let (seen, lost) = drain(&q);
    assert_eq!(seen, vec![0, 1, 2, 3]);
    assert_eq!(lost, vec![(Damage::Truncated, 1)]);
    q.append(&payload(9, 10)).expect("append");
    let (seen, lost) = drain(&q);
    assert_eq!((seen, lost), (vec![9], vec![]), "new records after the damage are not counted lost");
}

#[test]
fn a_cut_inside_a_header_is_a_truncation_too() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
        q.append(&payload(0, 50)).expect("append");
        q.append(&payload(1, 50)).expect("append");
    }
    let seg = segments(dir.path()).pop().expect("a segment");
    let first_len = HEADER + 50;
    std::fs::OpenOptions::new().write(true).open(&seg).expect("open").set_len(first_len + 7).expect("cut");
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
    assert_eq!(drain(&q), (vec![0], vec![(Damage::Truncated, 1)]));
}

fn flip(path: &Path, at: u64) {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).expect("read");
    byte[0] ^= 0x20;
    file.write_all_at(&byte, at).expect("write");
}

/// A buffer holding records 0..5 of 200 bytes each, in one segment.
fn five_records_of_200_bytes() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
        for i in 0..5 {
            q.append(&payload(i, 200)).expect("append");
        }
    }
    let seg = segments(dir.path()).pop().expect("a segment");
    (dir, seg)
}

#[test]
fn a_flipped_byte_in_a_payload_loses_that_record_only() {
    let (dir, seg) = five_records_of_200_bytes();
    let record = HEADER + 200;
    flip(&seg, 2 * record + HEADER + 150);
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
    assert_eq!(drain(&q), (vec![0, 1, 3, 4], vec![(Damage::Corrupt, 1)]));
}

#[test]
fn a_flipped_byte_in_a_length_is_resynchronised_past() {
    let (dir, seg) = five_records_of_200_bytes();
    let record = HEADER + 200;
    // The high byte of record 1's length: it now claims megabytes.
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&seg).expect("open");
    file.write_all_at(&[0x7f], record + 6).expect("write");
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
    assert_eq!(drain(&q), (vec![0, 2, 3, 4], vec![(Damage::Corrupt, 1)]));
}

#[test]
fn a_missing_segment_is_counted_by_the_sequence_gap_and_the_rest_delivered() {
    let dir = tempfile::tempdir().expect("tmp");
    // 1 MiB buffer → 128 KiB segments; 40 KiB records → 3 per segment.
    {
        let q = DiskQueue::open(dir.path(), 1 << 20).expect("open");
        for i in 0..12 {
            assert_eq!(q.append(&payload(i, 40 * 1024)).expect("append"), Appended::Written);
        }
    }
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 4, "{segs:?}");
    std::fs::remove_file(&segs[1]).expect("remove");
    let q = DiskQueue::open(dir.path(), 1 << 20).expect("open");
    let (seen, lost) = drain(&q);
    assert_eq!(seen, vec![0, 1, 2, 6, 7, 8, 9, 10, 11]);
    assert_eq!(lost, vec![(Damage::Missing, 3)]);
}

#[test]
fn a_lost_pointer_delivers_everything_again_without_counting_losses() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
        for i in 0..3 {
            q.append(&payload(i, 10)).expect("append");
        }
        let (record, _) = q.next().expect("read");
        q.delivered(record.expect("record").seq).expect("confirm");
    }
    std::fs::write(dir.path().join("delivered"), b"garbage").expect("spoil");
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
    assert_eq!(drain(&q), (vec![0, 1, 2], vec![]), "at least once: duplicates, never a skip");
}

#[test]
fn full_at_max_bytes_and_space_comes_back_as_segments_are_delivered() {
    let dir = tempfile::tempdir().expect("tmp");
    let q = DiskQueue::open(dir.path(), 1 << 20).expect("open");
    let mut written = 0;
    while q.append(&payload(written, 40 * 1024)).expect("append") == Appended::Written {
        written += 1;
        assert!(written < 100, "the buffer must fill up");
    }
    let on_disk: u64 = segments(dir.path()).iter().map(|p| std::fs::metadata(p).expect("meta").len()).sum();
    assert!(on_disk <= 1 << 20, "disk use {on_disk} within max_bytes");
    assert_eq!(q.bytes(), on_disk);
    // Deliver the first two segments' worth; the next reads reclaim them.
    for _ in 0..7 {
        let (record, _) = q.next().expect("read");
        q.delivered(record.expect("record").seq).expect("confirm");
    }
    assert!(q.bytes() < on_disk, "delivered segments are removed: {} < {on_disk}", q.bytes());
    assert_eq!(q.append(&payload(written, 40 * 1024)).expect("append"), Appended::Written);
    let (seen, lost) = drain(&q);
    assert_eq!(seen, (7..=written).collect::<Vec<_>>());
    assert!(lost.is_empty());
    assert_eq!(q.appended(), written + 1);
}

#[test]
fn files_that_are_not_segments_are_left_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("notes.txt"), b"hello").expect("write");
    std::fs::write(dir.path().join("123.seg"), b"short name").expect("write");
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("open");
    q.append(&payload(0, 10)).expect("append");
    assert_eq!(drain(&q), (vec![0], vec![]));
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn a_segment_of_garbage_opens_and_counts() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(format!("{:020}.seg", 0)), vec![0xAB; 5000]).expect("write");
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("garbage does not stop the start");
    q.append(&payload(0, 10)).expect("append");
    let (seen, lost) = drain(&q);
    assert_eq!(seen, vec![0]);
    assert_eq!(lost, vec![(Damage::Corrupt, 1)]);
}

#[test]
fn reading_ahead_without_confirming_removes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let q = DiskQueue::open(dir.path(), 1 << 20).expect("open");
        for i in 0..9 {
            q.append(&payload(i, 40 * 1024)).expect("append");
        }
        // An outbox reads everything at start and confirms only once delivered.
        while q.next().expect("read").0.is_some() {}
        assert_eq!(segments(dir.path()).len(), 3, "nothing confirmed, nothing removed");
    }
    let q = DiskQueue::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(drain(&q), ((0..9).collect(), vec![]));
    assert!(segments(dir.path()).is_empty(), "all delivered: every sealed segment removed");
}

#[test]
fn encrypted_records_hide_their_payload_and_tampering_is_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let sealer = || Some(crate::seal::Sealer::from_key_text(&"5a".repeat(32)).expect("key"));
    {
        let q = DiskQueue::open(dir.path(), 8 << 20).expect("open").with_sealer(sealer());
        for i in 0..3 {
            assert_eq!(q.append(&payload(i, 200)).expect("append"), Appended::Written);
        }
        q.sync().expect("sync");
    }
    let segment = segments(dir.path()).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    assert!(!bytes.windows(7).any(|w| w == b"record-"), "plaintext on disk");
    // Change a byte of the second record's ciphertext and fix its checksum, as
    // someone who knows the format would: only the authentication catches it.
    let record_len = bytes.len() / 3;
    let at = record_len + HEADER as usize + 40;
    bytes[at] ^= 0x20;
    let (len, seq) = (
        u32::from_le_bytes(bytes[record_len + 4..record_len + 8].try_into().expect("len")),
        u64::from_le_bytes(bytes[record_len + 8..record_len + 16].try_into().expect("seq")),
    );
    let payload_at = record_len + HEADER as usize;
    let crc = checksum(len, seq, &bytes[payload_at..payload_at + len as usize]);
    bytes[record_len + 16..record_len + 20].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, &bytes).expect("write");
    let q = DiskQueue::open(dir.path(), 8 << 20).expect("reopen").with_sealer(sealer());
    let (seen, lost) = drain(&q);
    assert_eq!(seen, vec![0, 2], "the intact records, decrypted");
    assert_eq!(lost, vec![(Damage::Tampered, 1)]);
}

#[test]
fn a_rewrite_replaces_records_in_place_and_the_reader_and_writer_carry_on() {
    for sealed in [false, true] {
        let dir = tempfile::tempdir().expect("tmp");
        let sealer = || sealed.then(|| crate::seal::Sealer::from_key_text(&"5a".repeat(32)).expect("key"));
        // Small segments (128 KiB for 1 MiB) so the records span several of them.
        let q = DiskQueue::open(dir.path(), 1 << 20).expect("open").with_sealer(sealer());
        for i in 0..80 {
            assert_eq!(q.append(&payload(i, 5_000)).expect("append"), Appended::Written);
        }
        assert!(segments(dir.path()).len() >= 3, "spans segments");
        // Six read and confirmed, two more read and in flight.
        for _ in 0..6 {
            let (record, _) = q.next().expect("read");
            q.delivered(record.expect("record").seq).expect("confirm");
        }
        for _ in 0..2 {
            assert!(q.next().expect("read").0.is_some());
        }
        // Every record whose number is a multiple of 3 is cut to its number alone.
        let mut edit = |p: &[u8]| {
            let n = number_of(p);
            n.is_multiple_of(3).then(|| format!("record-{n}:short").into_bytes())
        };
        let before = q.bytes();
        let result = q.rewrite(&mut edit).expect("rewrite");
        // Records 0..6 were delivered and their first segment may be gone; every
        // multiple of 3 still on disk was replaced.
        assert!(result.records >= 24, "{result:?}");
        assert_eq!(result.unreadable, 0);
        assert!(q.bytes() < before, "the rewritten segments are smaller");
        // Record 6 was taken before the rewrite: read again, it is the new one.
        assert_eq!(q.rewrites(), 1);
        let again = q.reread(6).expect("reread").expect("still on disk");
        assert_eq!(again, b"record-6:short");
        assert_eq!(q.reread(1_000).expect("reread"), None, "never written");
        let on_disk: Vec<u8> =
            segments(dir.path()).iter().flat_map(|s| std::fs::read(s).expect("read")).collect();
        if !sealed {
            assert!(on_disk.windows(10).any(|w| w == b"record-9:s"), "replaced on disk");
            assert!(!on_disk.windows(10).any(|w| w == b"record-9:x"), "the original is gone from disk");
        }
        // The writer appends after the rewrite, the reader goes on where it was.
        q.append(&payload(80, 100)).expect("append after the rewrite");
        let mut seen = Vec::new();
        loop {
            let (record, losses) = q.next().expect("read");
            assert!(losses.0.is_empty(), "{losses:?}");
            let Some(record) = record else { break };
            let text = String::from_utf8_lossy(&record.payload).into_owned();
            let n = number_of(&record.payload);
            assert_eq!(
                text.ends_with(":short"),
                n.is_multiple_of(3) && n < 80,
                "record {n}: {}",
                &text[..20.min(text.len())]
            );
            seen.push(n);
            q.delivered(record.seq).expect("confirm");
        }
        assert_eq!(seen, (8..81).collect::<Vec<_>>(), "in order, none lost or repeated");
        drop(q);
        // A restart reads the rewritten files: nothing is left to deliver.
        let q = DiskQueue::open(dir.path(), 1 << 20).expect("reopen").with_sealer(sealer());
        let (record, losses) = q.next().expect("read");
        assert!(record.is_none() && losses.0.is_empty());
    }
}
