//! Fuzzing on the stable toolchain: each target takes seed inputs, mutates them
//! at random (byte flips, cuts, copies, and splices of tokens known to break
//! parsers: lone surrogates, out-of-range numbers, deep nesting, duplicate keys,
//! invalid UTF-8, YAML anchors and flow collections) and checks what must hold
//! for every input, panics included. Deterministic for a given seed.
//!
//! `FUZZ_ITERATIONS` (default 20,000 per target, the test command's short run)
//! and `FUZZ_SEED` (default 1) set the run; a failure prints the seed, the
//! iteration and the input, which then becomes a regression test.
//!
//! ```sh
//! FUZZ_ITERATIONS=10000000 cargo test --release --test fuzz -- --nocapture
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use synaptic_plugin_sdk::contract::{self, VerdictList};
use synaptic_plugin_sdk::{Config, Plugin};
use synaptic_telemetry::alert::rule;
use synaptic_telemetry::decode::yaml;
use synaptic_telemetry::event::{json, paths_disagree};
use synaptic_telemetry::metrics::mapping::Mapping;
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;

/// xorshift64*: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const JSON_TOKENS: &[&str] = &[
    r#""\ud800""#,
    r#""\udc00x""#,
    r#""\ud83d\ude00""#,
    r#"\u0000"#,
    r#"\u0040"#,
    "1e400",
    "-1e999",
    "1.7976931348623157e308",
    "1e-400",
    "18446744073709551616",
    "-0",
    "0.0e0",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "]]]]]]]]",
    "{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}",
    "{\"k\":1,\"k\":2}",
    ",\"severity\":\"FATAL\"",
    ",\"event_id\":\"dup\"",
    ",\"data\":{}",
    ",\"tags\":null",
    ",\"context\":[1]",
    "\"event_type\":\"task.completed\"",
    "\"event_type\":\"mesh.topology_change\"",
    "null",
    "true",
    "\"\"",
    "\\",
    "\"",
    "\u{2028}",
    "\u{feff}",
    " jane.doe@example.com ",
    "4111 1111 1111 1111",
    "1.2.3.4.5.6.7.8.9.10.11.12",
    "DE89 3704 0044 0532 0130 00",
];

/// Encodings, obfuscations and formats the scrubber's decoded view and
/// detectors read, added to the JSON tokens for its target.
const PII_TOKENS: &[&str] = &[
    "%40",
    "%2540",
    "%C3%A9",
    "%F0%9F%98",
    "%",
    "&#64;",
    "&#x40",
    "&amp;#64;",
    "&commat;",
    "&#8203;",
    "&",
    "\\u0040",
    "\\x40",
    "\\u{40}",
    "\\u{",
    " [at] ",
    "(dot)",
    "{at}",
    "\u{200b}",
    "\u{00ad}",
    "\u{00a0}",
    "＠",
    "ü",
    "例",
    "+33 (0)1 23 45 67 89",
    "(030) 12345678",
    "tel:+1-201-555-0123;ext=12",
    "SSN#078051120",
    "%B4111111111111111^DOE/J^2512?",
    ";4111111111111111=2512?",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    "-----BEGIN PGP PRIVATE KEY BLOCK-----",
    "DB_PASSWORD=",
    "password: \"",
    "Cookie: ",
    "xoxe.xoxp-1-",
    "pool-1-2-3-4.example.net",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "app:pw@tcp(db:3306)/x",
];

const YAML_TOKENS: &[&str] = &[
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!str ",
    "\t",
    "\"",
    "'",
    "# ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "? ",
    "\n  ",
    "\n- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - x",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "1e400",
    "~",
    "null",
    "0x1F",
    "\u{0}",
    "threshold: {field: data.x, above: 1}",
    "absent: {after: 1m, expect: [a]}",
    "group_by: [component]",
    "window: 5m",
    "for: 99999999999h",
    "times: 4000000000",
    "{{ value }}",
    "{{ nope",
];

/// One to four mutations of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8], tokens: &[&str]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 if !data.is_empty() => {
                let start = rng.below(data.len());
                let end = (start + 1 + rng.below(32)).min(data.len());
                let copy = data[start..end].to_vec();
                data.splice(at..at, copy);
            }
            4 => {
                let depth = 1 + rng.below(200);
                let (open, close) = if rng.below(2) == 0 { ("[", "]") } else { ("{\"a\":", "}") };
                let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                data.splice(at..at, nested.into_bytes());
            }
            _ => {
                let token = tokens[rng.below(tokens.len())];
                data.splice(at..at, token.bytes());
            }
        }
    }
    data
}

fn iterations() -> u64 {
    std::env::var("FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// Runs `check` on mutations of `seeds`; a failed check or a panic fails the test
/// with the input that caused it.
fn fuzz(
    target: &str,
    seeds: &[Vec<u8>],
    tokens: &[&str],
    mut check: impl FnMut(&[u8]) -> Result<(), String>,
) {
    let (n, seed) = (iterations(), seed());
    let mut rng = Rng(seed
        ^ target
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)));
    let started = Instant::now();
    for i in 0..n {
        let base = &seeds[rng.below(seeds.len())];
        let input =
            if i < seeds.len() as u64 { seeds[i as usize].clone() } else { mutate(&mut rng, base, tokens) };
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(problem)) => problem,
            Err(_) => "panicked".to_string(),
        };
        panic!(
            "{target}: FUZZ_SEED={seed}, iteration {i}: {failure}\ninput ({} bytes): {:?}",
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(2000)])
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{target}: {n} inputs in {secs:.1} s ({:.0}/s), seed {seed}", n as f64 / secs);
}

fn generator_events(count: usize) -> Vec<Vec<u8>> {
    let config = GeneratorConfig { rate: 0.0, total: 0, seed: 9, malformed_ratio: 0.05, start_ms: Some(1) };
    let mut traffic = Traffic::new(&config, 0);
    (0..count).map(|_| traffic.next_event()).collect()
}

fn repo_file(path: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("seed file")
}

#[test]
fn fuzz_event_decoder_fast_and_precise_paths_agree() {
    fuzz("event decoder", &generator_events(200), JSON_TOKENS, |input| match paths_disagree(input) {
        Some(problem) => Err(problem),
        None => Ok(()),
    });
}

/// Short documents of the shapes the readers take, beside the shipped files: most
/// mutations land on these, which keeps a run of millions of inputs affordable.
const YAML_SNIPPETS: &[&str] = &[
    "a: 1\nb: [x, 'y', {c: d}]\n",
    "- - - x\n  - y\n",
    "k: |\n  text\n  more\n",
    "{a: [1, 2, {b: [3, {c: 4}]}]}",
    "metrics:\n  - name: x_total\n    type: counter\n    help: h\n    match: {event_type: task.completed}\n    labels: {s: data.success}\n",
    "rules:\n  - name: R\n    tier: warning\n    match: {event_type: x.y}\n    group_by: [component]\n    condition:\n      count: {window: 5m, above: 3}\n    for: 1m\n    annotations: {summary: \"{{ component }} {{ value }}\"}\n",
    "rules:\n  - name: D\n    tier: critical\n    match: {event_type: system.health}\n    group_by: [component]\n    condition:\n      absent: {after: 2m, expect: [a, b]}\n",
];

fn yaml_seeds(files: &[&str]) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = files.iter().map(|f| repo_file(f)).collect();
    for _ in 0..4 {
        seeds.extend(YAML_SNIPPETS.iter().map(|s| s.as_bytes().to_vec()));
    }
    seeds
}

#[test]
fn fuzz_yaml_reader_and_metric_mapping() {
    let seeds = yaml_seeds(&["config/demo.yaml", "config/kafka.yaml", "config/metrics.yaml"]);
    fuzz("yaml reader", &seeds, YAML_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = yaml::parse(&text);
        let _ = Mapping::parse(&text, "fuzz.yaml", "codex_synaptic_");
        Ok(())
    });
}

#[test]
fn fuzz_rule_reader() {
    let seeds = yaml_seeds(&["rules/critical.yaml", "rules/warning.yaml", "rules/info.yaml"]);
    fuzz("rule reader", &seeds, YAML_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        if let Ok(rules) = rule::parse(&text, "fuzz.yaml") {
            let _ = synaptic_telemetry::alert::engine::Engine::new(rules, 100);
        }
        Ok(())
    });
}

#[test]
fn fuzz_plugin_contract_decoding() {
    // Input: a little-endian offset count, offsets, then data; then verdict codes.
    let seeds: Vec<Vec<u8>> = (0..8u8)
        .map(|n| {
            let mut seed = vec![n];
            seed.extend((0..=n as u32).flat_map(|i| (i * 3).to_le_bytes()));
            seed.extend(std::iter::repeat_n(b'x', n as usize * 3));
            seed.extend((0..n).map(|i| i % 4));
            seed
        })
        .collect();
    fuzz("plugin contract", &seeds, &["\u{0}", "\u{2}", "\u{ff}"], |input| {
        let Some((&count, rest)) = input.split_first() else { return Ok(()) };
        let count = usize::from(count % 16);
        let words: Vec<u32> = rest
            .chunks_exact(4)
            .take(count + 1)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let data = rest.get(words.len() * 4..).unwrap_or_default();
        if let Ok(events) = contract::events(data, &words) {
            if events.len() != words.len().saturating_sub(1) {
                return Err(format!("{} events from {} offsets", events.len(), words.len()));
            }
        }
        let split = data.len() / 2;
        let list = VerdictList {
            codes: data[..split].to_vec(),
            replacements: data[split..].to_vec(),
            replacement_ends: words.clone(),
        };
        if let Ok(verdicts) = list.read(split) {
            if verdicts.len() != split {
                return Err(format!("{} verdicts for {split} events", verdicts.len()));
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_pii_walker_fails_closed_and_scrubs_what_it_keeps() {
    let config = Config::parse("{}").expect("empty config");
    let mut scrub = pii_scrub::PiiScrub::init(&config).expect("default scrubber");
    let mut everywhere = pii_scrub::PiiScrub::init(&config).expect("default scrubber").everywhere();
    let mut seeds = generator_events(200);
    seeds.push(br#"{"data":{"m":"mail jane.doe@example.com or call +44 20 7946 0958"}}"#.to_vec());
    let tokens: Vec<&str> = JSON_TOKENS.iter().chain(PII_TOKENS).copied().collect();
    fuzz("pii walker", &seeds, &tokens, |input| {
        let _ = everywhere.scrub_text(&String::from_utf8_lossy(input));
        let walkable = json::check_document(input).is_ok();
        match scrub.scrub_event(input) {
            Err(e) if walkable => Err(format!("a valid document was refused: {e}")),
            Err(_) => Ok(()),
            Ok(None) => Ok(()),
            Ok(Some(out)) => {
                if walkable && json::check_document(&out).is_err() {
                    return Err("scrubbing made invalid JSON".to_string());
                }
                // Scrubbing is a fixed point: a second pass changes nothing (it may
                // recognise a replacement like `[REDACTED:url_credentials]` and
                // write the same text again).
                match scrub.scrub_event(&out) {
                    Ok(None) => Ok(()),
                    Ok(Some(again)) if again == out => Ok(()),
                    Ok(Some(again)) => {
                        Err(format!("a second pass changes it again: {}", String::from_utf8_lossy(&again)))
                    }
                    Err(e) => Err(format!("its own output cannot be walked: {e}")),
                }
            }
        }
    });
}

/// Deletion requests: an archive (plain, or sealed in frames) comes back without
/// exactly the subject's lines, every other line byte for byte and in order; a
/// sealed archive with a changed byte is refused whole, never half-filtered.
#[test]
fn fuzz_forget_filters_archives_exactly() {
    use synaptic_telemetry::forget::{filter_archive, Subject};
    use synaptic_telemetry::seal::Sealer;
    let subject = Subject::parse("data.agent_id=agent-007").expect("subject");
    let sealer = Sealer::from_key_text(&"7e".repeat(32)).expect("key");
    // Archives of generator events (several agent-007's among them) and dead letters.
    let mut seeds: Vec<Vec<u8>> = generator_events(400)
        .chunks(40)
        .map(|chunk| chunk.iter().flat_map(|e| e.iter().copied().chain([b'\n'])).collect())
        .collect();
    seeds.push(
        br#"{"stage":"decode","raw":"{\"data\":{\"agent_id\":\"agent-007\",","source":{"kind":"file"}}
{"stage":"schema","raw_base64":"/3siYWdlbnRfaWQiOiJhZ2VudC0wMDcifQ=="}
not json "agent-007"
"#
        .to_vec(),
    );
    let mut rng = Rng(seed());
    fuzz("forget", &seeds, JSON_TOKENS, |input| {
        let expected: Vec<u8> = input
            .split_inclusive(|b| *b == b'\n')
            .filter(|line| {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                body.is_empty() || !subject.owns_line(body)
            })
            .flatten()
            .copied()
            .collect();
        let removed_expected = input.split_inclusive(|b| *b == b'\n').count()
            - expected.split_inclusive(|b| *b == b'\n').count();
        let (kept, removed) = filter_archive(input, &subject, None)?;
        if kept != expected || removed as usize != removed_expected {
            return Err(format!("plain: kept {} bytes, removed {removed}", kept.len()));
        }
        // The same lines sealed in two frames.
        let cut = input.iter().position(|b| *b == b'\n').map_or(input.len(), |p| p + 1);
        let mut sealed = Vec::new();
        for part in [&input[..cut], &input[cut..]] {
            if !part.is_empty() {
                sealer.seal_into(part, &mut sealed);
            }
        }
        let (out, removed) = filter_archive(&sealed, &subject, Some(&sealer))?;
        let (frames, error) = sealer.open_all(&out);
        let plain: Vec<u8> = frames.concat();
        if error.is_some() || plain != expected || removed as usize != removed_expected {
            return Err(format!("sealed: {error:?}, {} bytes, removed {removed}", plain.len()));
        }
        if !sealed.is_empty() {
            let at = rng.below(sealed.len());
            sealed[at] ^= 1 << rng.below(8);
            if filter_archive(&sealed, &subject, Some(&sealer)).is_ok() {
                return Err(format!("a changed byte at {at} was not noticed"));
            }
        }
        Ok(())
    });
}
