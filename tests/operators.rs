//! What operators use to see and try things: `replay` (a candidate plugin or
//! rule set against the current one on recorded events, on event time), `run`
//! with the rules on event time, and the dashboards in `dashboards/` against a
//! real Prometheus scraping the demo. Every command run here is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{command, free_port, get_json, read_lines, require, url_encode, write_config, Running, Service};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Waits for a child with piped output, killing it (and failing) after `secs`.
fn finish_within(mut child: std::process::Child, secs: u64, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Runs the binary with `args` from the repository root; killed after 180 s.
fn run_bounded(args: &[&str]) -> Output {
    let child = command()
        .args(args)
        .current_dir(ROOT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    finish_within(child, 180, &format!("{args:?}"))
}

/// `count` generated events (their event time starts 2026-01-01, long before
/// the test runs), 200 per second of event time, as the demo makes them.
fn recording(dir: &Path, count: u64) -> PathBuf {
    let path = dir.join("recorded.jsonl");
    let out = run_bounded(&[
        "generate",
        "--count",
        &count.to_string(),
        "--rate",
        "200",
        "--out",
        path.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "generate: {}", String::from_utf8_lossy(&out.stderr));
    path
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn replay_shows_a_candidate_plugins_changed_verdicts_and_metric_deltas_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = recording(dir.path(), 20_000);
    // The demo's filter keeps INFO and above; this candidate also drops WARN
    // events and tags the completed tasks it keeps.
    let candidate = dir.path().join("filter.rhai");
    std::fs::write(
        &candidate,
        r#"
fn process(event) {
    let rank = severity_rank(event.severity);
    if rank < 2 || event.severity == "WARN" { return (); }
    if event.event_type == "task.completed" { event.tags.reviewed = "yes"; }
    event
}
"#,
    )
    .expect("write candidate");
    let out = run_bounded(&[
        "replay",
        "--input",
        input.to_str().expect("utf-8"),
        "--with",
        candidate.to_str().expect("utf-8"),
        "--show",
        "3",
    ]);
    let report = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "differences exit 1:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("replayed 20000 events"), "{report}");
    assert!(report.contains("candidate: step `filter` runs"), "{report}");
    let count_of = |needle: &str| -> u64 {
        let line = report
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in\n{report}"));
        line.rsplit(": ")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("count in {line}"))
    };
    // Exactly the WARN events the current filter keeps are dropped now.
    let events: Vec<serde_json::Value> =
        read_lines(&input).iter().map(|l| serde_json::from_str(l).expect("json")).collect();
    let warn = events.iter().filter(|e| e["severity"] == "WARN" && e["event_type"] != "system.health").count()
        as u64;
    assert!(warn > 0);
    assert_eq!(count_of("step filter: kept → dropped"), warn, "{report}");
    assert!(count_of("step filter: kept → replaced") > 0, "{report}");
    assert!(report.contains("fields replaced differently: tags.reviewed"), "{report}");
    assert!(
        report.contains("step `filter`: kept → dropped") || report.contains("step `filter`: kept → replaced")
    );
    // Downstream, the sampler sees fewer events: its metrics move.
    assert!(report.contains("metrics (series that differ"), "{report}");
    assert!(report.lines().any(|l| l.contains("plugin=\"filter\"") && l.contains("→")), "{report}");
    // The alerts step runs before the filter in the demo: the same alerts fire.
    assert!(report.contains("the same alerts fire, as often"), "{report}");
}

#[test]
fn replay_of_an_unchanged_candidate_finds_nothing_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = recording(dir.path(), 5_000);
    let same = dir.path().join("filter.rhai");
    std::fs::copy(Path::new(ROOT).join("plugins/filter.rhai"), &same).expect("copy");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    for file in ["critical.yaml", "warning.yaml", "info.yaml"] {
        std::fs::copy(Path::new(ROOT).join("rules").join(file), rules.join(file)).expect("copy rules");
    }
    let out = run_bounded(&[
        "replay",
        "--input",
        input.to_str().expect("utf-8"),
        "--with",
        same.to_str().expect("utf-8"),
        "--with",
        rules.to_str().expect("utf-8"),
    ]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("no event treated differently by any step"), "{report}");
    assert!(report.contains("the same alerts fire, as often"), "{report}");
    assert!(report.trim_end().ends_with("0 difference(s)"), "{report}");
}

#[test]
fn replay_runs_rules_on_event_time_and_shows_alerts_that_would_stop_firing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Ten minutes of event time, recorded at the generator's fixed date.
    let input = recording(dir.path(), 120_000);
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    for file in ["critical.yaml", "warning.yaml", "info.yaml"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join("rules").join(file)).expect("read rules");
        // The candidate raises SecurityBreach's bar far above this traffic.
        let text = text.replace("count: { window: 5m, above: 0 }\n    annotations:\n      summary: \"{{ value }} {{ violation_type }}", "count: { window: 5m, above: 100000 }\n    annotations:\n      summary: \"{{ value }} {{ violation_type }}");
        std::fs::write(rules.join(file), text).expect("write rules");
    }
    let out = run_bounded(&[
        "replay",
        "--input",
        input.to_str().expect("utf-8"),
        "--with",
        rules.to_str().expect("utf-8"),
    ]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    // On event time the recorded violations fire SecurityBreach with the
    // current rules (on the wall clock they were all older than the window)...
    let breach: Vec<&str> = report.lines().filter(|l| l.contains("- SecurityBreach [critical]")).collect();
    assert!(!breach.is_empty(), "{report}");
    assert!(breach.iter().all(|l| l.ends_with("fired 1 → 0")), "{report}");
    // ...and the heartbeats are judged at their own time: no component is down.
    assert!(!report.contains("ComponentDown"), "{report}");
    assert!(report.contains("600 evaluations") || report.contains("599 evaluations"), "{report}");
}

#[test]
fn run_over_a_recording_with_clock_event_fires_what_the_data_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = recording(dir.path(), 60_000);
    let alerts = dir.path().join("alerts.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            "source: {{type: file, path: {input}}}\n\
             pipeline:\n  - type: alerts\n    rules: {root}/rules\n    clock: event\n    reload: false\n    receivers:\n      - {{name: file, type: file, path: {alerts}}}\n\
             sinks:\n  - {{name: out, type: file, path: {out}}}\n\
             dead_letter: {{type: file, path: {dl}}}\n\
             server: {{listen: \"127.0.0.1:0\"}}\n",
            input = input.display(),
            root = ROOT,
            alerts = alerts.display(),
            out = dir.path().join("out.jsonl").display(),
            dl = dir.path().join("dl.jsonl").display(),
        ),
    );
    let out = run_bounded(&["run", "--config", config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent: Vec<serde_json::Value> =
        read_lines(&alerts).iter().map(|l| serde_json::from_str(l).expect("json")).collect();
    let names: Vec<&str> = sent
        .iter()
        .flat_map(|n| n["alerts"].as_array().into_iter().flatten())
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert!(names.contains(&"SecurityBreach"), "the recorded violations fire: {names:?}");
    assert!(!names.contains(&"ComponentDown"), "heartbeats judged on their own time: {names:?}");
}

/// The demo, run from `dir` (its files go to `dir/demo-out`), serving on a
/// loopback port; returns once it is running.
fn start_demo(dir: &Path, extra: &[&str]) -> (Running, std::net::SocketAddr) {
    let mut cmd = command();
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--no-build"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null());
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(60));
    running.wait_for_line("Ctrl-C stops it", Duration::from_secs(30));
    (running, addr)
}

/// A real Prometheus scraping `target` every second.
fn prometheus_scraping(dir: &Path, target: std::net::SocketAddr) -> (Service, std::net::SocketAddr) {
    let port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: synaptic-telemetry\n    \
             static_configs: [{{targets: ['{target}']}}]\n"
        ),
    )
    .expect("prometheus config");
    let service = Service(
        std::process::Command::new(require("prometheus"))
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    (service, format!("127.0.0.1:{port}").parse().expect("addr"))
}

/// The finite sample values an instant query returns.
fn query_values(prometheus: std::net::SocketAddr, expr: &str) -> Vec<f64> {
    let Some(answer) = get_json(prometheus, &format!("/api/v1/query?query={}", url_encode(expr))) else {
        return Vec::new();
    };
    (answer["data"]["result"].as_array().into_iter().flatten())
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect()
}

/// Every dashboard file: parsed, checked for what Grafana needs to import it,
/// and its panels' queries (Grafana's `$__rate_interval` as 1m).
fn dashboard_queries() -> Vec<(String, String, String)> {
    let dir = Path::new(ROOT).join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut titles = Vec::new();
    let mut uids = Vec::new();
    let mut queries = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read dashboard");
        let dashboard: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        let title = dashboard["title"].as_str().expect("title").to_string();
        uids.push(dashboard["uid"].as_str().expect("uid").to_string());
        assert!(dashboard["templating"]["list"][0]["type"] == "datasource", "{title}: a datasource variable");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 4, "{title}: the spec lists four topics per dashboard");
        let mut ids = Vec::new();
        for panel in panels {
            let name = panel["title"].as_str().expect("panel title");
            ids.push(panel["id"].as_u64().expect("panel id"));
            assert!(
                panel["gridPos"]["w"].as_u64().is_some_and(|w| w > 0 && w <= 24),
                "{title}/{name}: gridPos"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{title}/{name}: uses the datasource variable"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{title}/{name}: no query");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr").replace("$__rate_interval", "1m");
                queries.push((title.clone(), name.to_string(), expr));
            }
        }
        let before = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), before, "{title}: panel ids are unique");
        titles.push(title);
    }
    let wanted = ["System Overview", "Performance", "Security", "Operational"];
    for want in wanted {
        assert!(
            titles.iter().any(|t| t.ends_with(want)),
            "the {want} dashboard is in dashboards/: {titles:?}"
        );
    }
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), files.len(), "dashboard uids are unique");
    queries
}

#[test]
fn every_dashboard_panel_returns_data_from_a_real_prometheus_scraping_the_demo() {
    let queries = dashboard_queries();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_demo, addr) = start_demo(dir.path(), &[]);
    let (_prometheus, prometheus) = prometheus_scraping(dir.path(), addr);
    // Until every query answers with a number (rare events and rates need a
    // few scrapes), bounded.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut missing: Vec<&(String, String, String)> = queries.iter().collect();
    while !missing.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        missing.retain(|(_, _, expr)| query_values(prometheus, expr).is_empty());
    }
    let report: Vec<String> = missing.iter().map(|(d, p, e)| format!("{d} / {p}: {e}")).collect();
    assert!(report.is_empty(), "panels without data after 120 s:\n{}", report.join("\n"));
    eprintln!("{} panel queries of 4 dashboards answered with data", queries.len());
}

/// Headless Chromium (Debian's) on `url`: the DOM after the page's scripts ran
/// for `budget_ms` of virtual time, and Chromium's log.
fn chromium(dir: &Path, url: &str, args: &[&str]) -> (String, String) {
    let child = std::process::Command::new(require("chromium"))
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr"])
        .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let out = finish_within(child, 90, "chromium");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_status_page_draws_its_charts_and_tables_in_headless_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_demo, addr) = start_demo(dir.path(), &[]);
    // Some traffic first, so that the tables have sinks, plugins and alerts.
    std::thread::sleep(Duration::from_secs(4));
    let url = format!("http://{addr}/");
    let shot = dir.path().join("status.png");
    let budget = "--virtual-time-budget=12000";
    let (_, log) = chromium(
        dir.path(),
        &url,
        &[budget, "--window-size=1280,1400", &format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}); chromium said:\n{log}"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a screenshot of a drawn page: {} bytes",
        png.len()
    );
    let (dom, log) = chromium(dir.path(), &url, &[budget, "--dump-dom"]);
    // The page polled several times and reported no error of its own.
    let polls: u32 = dom
        .split("data-polls=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the page never updated:\n{dom}"));
    assert!(polls >= 3, "{polls} polls");
    assert!(dom.contains("<div id=\"errors\"></div>"), "the page reported errors:\n{dom}");
    for line in log.lines() {
        assert!(!line.contains("CONSOLE") && !line.contains("Uncaught"), "console output: {line}");
    }
    // Every chart drew lines of several points.
    for chart in ["agents", "tasks", "task-latency", "consensus", "violations", "throughput"] {
        let start = dom.find(&format!("id=\"{chart}\"")).unwrap_or_else(|| panic!("no chart {chart}"));
        let svg = &dom[start..start + dom[start..].find("</svg>").expect("svg end")];
        let points: Vec<u32> = svg
            .split("data-points=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next()?.parse().ok())
            .collect();
        assert!(points.iter().any(|p| *p >= 2), "chart {chart} has no line of 2+ points: {svg}");
    }
    // The tables: sink health, the plugins' versions, the alerts firing.
    for sink in ["archive", "console", "dead_letter"] {
        assert!(dom.contains(&format!("<td>{sink}</td><td class=\"ok\">closed</td>")), "sink {sink}:\n{dom}");
    }
    for plugin in ["pii_scrub", "sample", "stamp", "filter"] {
        assert!(dom.contains(&format!("<td>{plugin}</td>")), "plugin {plugin}");
    }
    assert!(dom.contains("<code>sha256:"), "plugin versions shown");
    assert!(dom.contains("SecurityBreach"), "the demo's security violations fire: the alert is listed");
}

/// A running pipeline (generated traffic, a tag step, the PII scrubber, a file
/// sink) whose API needs a bearer token.
fn tapped_pipeline(dir: &Path, rate: u32) -> (Running, std::net::SocketAddr) {
    let config = write_config(
        dir,
        &format!(
            "source: {{type: generator, rate: {rate}, seed: 7}}\n\
             plugins: {{dir: {root}/plugins, watch: false}}\n\
             pipeline:\n  - {{name: label, type: tag, tags: {{pipeline: tapped}}}}\n\
             \x20 - {{name: pii_scrub, type: plugin, file: pii_scrub.wasm, config: {{mode: redact}}}}\n\
             \x20 - {{type: retention}}\n\
             sinks:\n  - {{name: archive, type: file, path: {out}}}\n\
             dead_letter: {{type: file, path: {dl}}}\n\
             server:\n  listen: 127.0.0.1:0\n  auth: {{tokens: [{{name: operator, token: tap-token-8Hq2}}], metrics: open}}\n",
            root = ROOT,
            out = dir.join("out.jsonl").display(),
            dl = dir.join("dl.jsonl").display(),
        ),
    );
    let mut cmd = command();
    cmd.args(["run", "--config"]).arg(&config);
    let mut running = Running::spawn(cmd);
    let addr = running.wait_for_address(Duration::from_secs(60));
    (running, addr)
}

fn tap_command(addr: std::net::SocketAddr, args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = command();
    cmd.args(["tap", "--url", &format!("http://{addr}")]).args(args);
    match token {
        Some(token) => cmd.env("SYNAPTIC_TELEMETRY_TOKEN", token),
        None => cmd.env_remove("SYNAPTIC_TELEMETRY_TOKEN"),
    };
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("tap starts");
    finish_within(child, 120, "tap")
}

#[test]
fn tap_streams_a_filtered_sample_of_a_step_or_a_sink_and_refuses_unscrubbed_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_pipeline, addr) = tapped_pipeline(dir.path(), 400);
    // Without a token: refused.
    let out = tap_command(addr, &["--step", "retention"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
    // A step before the scrubber shows raw events: refused, with the reason.
    let out = tap_command(addr, &["--step", "label"], Some("tap-token-8Hq2"));
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("403") && said.contains("before the PII scrubber"), "{said}");
    let out = tap_command(addr, &["--step", "nope"], Some("tap-token-8Hq2"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no step or sink named `nope`"));
    // A step after it: events as they leave it, filtered, up to the limit.
    let out = tap_command(
        addr,
        &[
            "--step",
            "retention",
            "--match",
            "event_type=security.*",
            "--match",
            "min_severity=WARN",
            "--limit",
            "5",
        ],
        Some("tap-token-8Hq2"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
        .collect();
    assert_eq!(events.len(), 5);
    for e in &events {
        assert!(e["event_type"].as_str().is_some_and(|t| t.starts_with("security.")), "{e}");
        assert!(["WARN", "ERROR", "FATAL"].contains(&e["severity"].as_str().unwrap_or("")), "{e}");
        assert!(e["tags"]["retention"].is_string(), "as they leave the retention step: {e}");
        assert_eq!(e["tags"]["pipeline"], "tapped");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("tap ended (limit): 5 events shown"));
    // A sink: what it is handed.
    let out = tap_command(addr, &["--sink", "archive", "--limit", "20"], Some("tap-token-8Hq2"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 20);
    // The status page is served without a token (it holds no data); the data
    // it reads is not.
    let (status, page) = common::http_get(addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<title>synaptic-telemetry status</title>"));
    assert_eq!(common::http_get(addr, "/api/alerts").0, 401);
    // The instance counted what it sent; nobody taps now.
    let (_, metrics) = common::http_get(addr, "/metrics");
    let sent =
        common::metric(&metrics, "synaptic_telemetry_tap_events_total{outcome=\"sent\"}").unwrap_or(0.0);
    assert_eq!(sent, 25.0, "{metrics}");
}

/// A tmux session, killed when the test ends however it ends.
struct Tmux(String);

impl Tmux {
    fn run(name: &str, width: u16, height: u16, command_line: &str) -> Tmux {
        let status = std::process::Command::new(require("tmux"))
            .args(["new-session", "-d", "-s", name, "-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command_line)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session");
        Tmux(name.to_string())
    }

    fn screen(&self) -> String {
        let out = std::process::Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    fn alive(&self) -> bool {
        std::process::Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn top_shows_steps_sinks_plugins_and_alerts_of_the_demo_in_tmux_and_quits_on_q() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_demo, addr) = start_demo(dir.path(), &[]);
    let session = format!("top-test-{}", std::process::id());
    let tmux = Tmux::run(&session, 180, 50, &format!("{} top --url http://{addr}", common::BIN));
    // Refreshed every second: wait (bounded) for a screen with rates on it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut screen = String::new();
    while Instant::now() < deadline {
        screen = tmux.screen();
        if screen.contains("read ")
            && !screen.contains("read 0/s")
            && screen.contains("alerts firing: critical")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let row = |name: &str| -> Vec<String> {
        let line = screen
            .lines()
            .find(|l| l.contains(&format!("│{name} ")))
            .unwrap_or_else(|| panic!("no row {name}:\n{screen}"));
        line.split(['│', ' ']).filter(|w| !w.is_empty()).map(String::from).collect()
    };
    // The header: events read per second, near the demo's 200.
    let header = screen.lines().find(|l| l.contains("read ")).expect("header");
    let read: f64 = header
        .split("read ")
        .nth(1)
        .and_then(|r| r.split("/s").next())
        .and_then(|n| n.parse().ok())
        .expect("rate");
    assert!((100.0..400.0).contains(&read), "read {read}/s:\n{screen}");
    assert!(header.contains("batch latency p50"), "{header}");
    // Steps: the filter drops what is below INFO, so its out is below its in.
    let filter = row("filter");
    let (inp, out): (f64, f64) = (filter[1].parse().expect("in"), filter[2].parse().expect("out"));
    assert!(inp > 0.0 && out < inp, "filter in {inp} out {out}:\n{screen}");
    // Sinks with their circuit state; plugins with their versions.
    for sink in ["archive", "console", "dead_letter"] {
        assert!(row(sink).contains(&"closed".to_string()), "{sink}:\n{screen}");
    }
    // (The plugins' panel is the right half: its rows follow another panel's border.)
    for plugin in ["pii_scrub", "sample", "stamp"] {
        let line = screen
            .lines()
            .find(|l| l.contains(&format!("││{plugin} ")))
            .unwrap_or_else(|| panic!("no plugin {plugin}:\n{screen}"));
        assert!(line.contains(" sha256:"), "{plugin}: {line}");
    }
    assert!(screen.contains("(no Kafka source)"), "{screen}");
    assert!(screen.contains("SecurityBreach"), "the demo's alerts are listed:\n{screen}");
    // q quits, and the terminal is given back.
    let _ = std::process::Command::new("tmux").args(["send-keys", "-t", &session, "q"]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!tmux.alive(), "top did not quit on q");
}
