//! The `synaptic-telemetry` command.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use synaptic_telemetry::alert;
use synaptic_telemetry::app::{self, RunOptions, Summary};
use synaptic_telemetry::config::Config;
use synaptic_telemetry::decode::secret;
use synaptic_telemetry::decode::yaml::NodeKind;
use synaptic_telemetry::plugin::tester::{self, TestOptions};
use synaptic_telemetry::source::traffic::Traffic;
use synaptic_telemetry::source::GeneratorConfig;
use synaptic_telemetry::DEMO_CONFIG;

/// Events are allocated in batches and freed together; glibc's allocator spends
/// more time consolidating than the pipeline spends parsing under that pattern.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "synaptic-telemetry",
    version,
    about = "Telemetry pipeline of the codex-synaptic agent platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline from a config file until its input ends or SIGINT/SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Address for /metrics, /health and /ready (overrides server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the built-in demo: synthetic traffic → steps → file and terminal.
    Demo {
        /// Address for /metrics, /health and /ready.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Use the plugins already in plugins/ instead of building them first.
        #[arg(long)]
        no_build: bool,
        /// Load the plugins from this directory (a copy to experiment on) instead of
        /// the checkout's plugins/.
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
    },
    /// Check config files (and everything they reference), rule files and rule
    /// directories; list every error with file:line:col.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Test a plugin or alert rules against input events.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Print the contents of encrypted files (file sink, dead letter, alert file,
    /// audit log); every frame's authentication is checked.
    Decrypt {
        /// The encrypted files, read in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A file holding the key (64 hex digits or base64 of 32 bytes).
        #[arg(long, conflicts_with = "key_env")]
        key_file: Option<PathBuf>,
        /// The environment variable holding the key.
        #[arg(long, default_value = "SYNAPTIC_TELEMETRY_KEY")]
        key_env: String,
    },
    /// Delete one subject's events from what a pipeline keeps: its file sinks'
    /// archives, dead-letter files and disk buffers, and its Elasticsearch indices.
    /// With --url, the running instance does it; with --config, this process does
    /// (the pipeline must be stopped).
    #[command(group = clap::ArgGroup::new("where").required(true).args(["config", "url"]))]
    Forget {
        /// The subject: FIELD=VALUE with the field under data, tags or context.
        #[arg(long, value_name = "FIELD=VALUE")]
        subject: String,
        /// The pipeline's config (the pipeline must not be running).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A running instance's HTTP server (`http://127.0.0.1:9464`).
        #[arg(long)]
        url: Option<String>,
        /// The environment variable holding the bearer token for --url.
        #[arg(long, default_value = "SYNAPTIC_TELEMETRY_TOKEN")]
        token_env: String,
        /// A CA certificate (PEM) to trust for an https --url.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Run recorded events through the pipeline as configured and with a candidate
    /// plugin or rule set, side by side, and print what differs: each step's
    /// verdicts, the alerts that fire (on event time), the metrics. Exit code 0:
    /// no difference; 1: differences; 2: the replay could not run.
    Replay(ReplayArgs),
    /// Stream a sample of the events leaving a step or entering a sink of a
    /// running instance (its HTTP API; needs server.auth). Events go to standard
    /// output as JSON lines; what the instance dropped for a slow reader is said
    /// at the end.
    #[command(group = clap::ArgGroup::new("point").required(true).args(["step", "sink"]))]
    Tap {
        /// The instance's HTTP server.
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        url: String,
        /// Events as they leave this step.
        #[arg(long)]
        step: Option<String>,
        /// Events as they are handed to this sink.
        #[arg(long)]
        sink: Option<String>,
        /// Only these events: event_type=GLOB, component=GLOB, min_severity=LEVEL.
        #[arg(long = "match", value_name = "KEY=VALUE")]
        matches: Vec<String>,
        /// Stop after this many events.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// The environment variable holding the bearer token.
        #[arg(long, default_value = "SYNAPTIC_TELEMETRY_TOKEN")]
        token_env: String,
        /// A CA certificate (PEM) to trust for an https --url.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// A terminal view of a running instance, refreshed every second: steps,
    /// sinks, consumer lag, plugins, alerts. `q` quits.
    Top {
        /// The instance's HTTP server.
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        url: String,
        /// The environment variable holding the bearer token.
        #[arg(long, default_value = "SYNAPTIC_TELEMETRY_TOKEN")]
        token_env: String,
        /// A CA certificate (PEM) to trust for an https --url.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Write synthetic codex-synaptic events as JSON Lines.
    Generate {
        #[arg(long)]
        count: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Share of deliberately malformed events, 0.0 to 1.0.
        #[arg(long, default_value_t = 0.0)]
        malformed_ratio: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Timestamp of the first event, Unix ms (fixed by default so output is reproducible).
        #[arg(long, default_value_t = 1_767_225_600_000)]
        start_ms: u64,
        /// Events per second of simulated time (spaces the timestamps).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
}

/// `replay`'s arguments.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("events").required(true).args(["input", "kafka"]))]
struct ReplayArgs {
    /// The pipeline's config (default: the built-in demo's).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// JSON Lines of recorded events (`-` for standard input).
    #[arg(long)]
    input: Option<PathBuf>,
    /// A Kafka partition's range: TOPIC:PARTITION:FROM-TO (offsets, both included).
    #[arg(long, value_name = "TOPIC:PARTITION:FROM-TO")]
    kafka: Option<synaptic_telemetry::replay::KafkaRange>,
    /// The brokers for --kafka.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The candidate: a plugin file (.wasm, .rhai) or alert rules (a directory
    /// or a .yaml file). Repeat to swap several.
    #[arg(long = "with", required = true, value_name = "PATH")]
    with: Vec<PathBuf>,
    /// The plugin step a candidate plugin replaces (default: the step running a
    /// file of the same name, or the only plugin step).
    #[arg(long)]
    step: Option<String>,
    /// Events whose verdict changed to show as examples.
    #[arg(long, default_value_t = 10)]
    show: usize,
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run alert rule tests (files or directories of `*.yaml`) on a simulated clock.
    Rules {
        #[arg(default_value = "rules/tests")]
        paths: Vec<PathBuf>,
    },
    /// Run a plugin over events and print each event's verdict and output.
    Plugin {
        /// The plugin file (.wasm).
        plugin: PathBuf,
        /// JSON Lines of events (`-` for standard input).
        #[arg(long)]
        input: PathBuf,
        /// The plugin's config map: a YAML/JSON file, or inline (`'{min: WARN}'`).
        #[arg(long)]
        config: Option<String>,
        /// Events per batch.
        #[arg(long, default_value_t = 512)]
        batch_size: usize,
        /// Deadline per batch.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        deadline: std::time::Duration,
        /// Memory cap of the instance, in MiB.
        #[arg(long, default_value_t = 64)]
        memory_mib: u64,
    },
}

fn main() -> ExitCode {
    // Nothing this process prints shows a secret: log lines, panics and the
    // final error all pass through the mask.
    secret::install_panic_hook();
    tracing_subscriber::fmt()
        .with_writer(|| secret::MaskingWriter::new(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, listen } => load(&config).and_then(|c| run_pipeline(c, listen, false)),
        Command::Demo { listen, no_build, plugins } => {
            demo_config(no_build, plugins.as_deref()).and_then(|c| run_pipeline(c, listen, true))
        }
        Command::Validate { files } => Ok(validate(&files)),
        Command::Test { what: TestCommand::Rules { paths } } => test_rules(&paths),
        Command::Test {
            what: TestCommand::Plugin { plugin, input, config, batch_size, deadline, memory_mib },
        } => test_plugin(plugin, input, config.as_deref(), batch_size, deadline, memory_mib),
        Command::Decrypt { files, key_file, key_env } => decrypt(&files, key_file.as_deref(), &key_env),
        Command::Forget { subject, config, url, token_env, ca_file } => match (config, url) {
            (_, Some(url)) => forget_remote(&subject, &url, &token_env, ca_file.as_deref()),
            (Some(config), None) => forget_local(&subject, &config),
            (None, None) => Err(anyhow::anyhow!("forget needs --config or --url")),
        },
        Command::Replay(args) => Ok(replay(&args)),
        Command::Top { url, token_env, ca_file } => {
            api_client(ca_file.as_deref(), std::time::Duration::from_secs(5)).and_then(|client| {
                let token = std::env::var(&token_env).ok();
                synaptic_telemetry::top::run(synaptic_telemetry::top::Source { url, token, client })
                    .map(|()| ExitCode::SUCCESS)
            })
        }
        Command::Tap { url, step, sink, matches, limit, token_env, ca_file } => {
            tap(&url, step.as_deref(), sink.as_deref(), &matches, limit, &token_env, ca_file.as_deref())
        }
        Command::Generate { count, out, malformed_ratio, seed, start_ms, rate } => {
            generate(count, out.as_deref(), malformed_ratio, seed, start_ms, rate)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", secret::mask(&format!("{e:#}")));
        ExitCode::FAILURE
    })
}

/// The embedded demo config. In a source checkout, the Rust plugins it runs are built
/// first (`plugins/build.sh --rust-only`: the TypeScript and Python examples would
/// need Node.js and Python and are not part of the demo) and loaded from the
/// checkout's plugins/, or from `plugins`.
fn demo_config(no_build: bool, plugins: Option<&Path>) -> anyhow::Result<Config> {
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = source_tree.join("plugins/build.sh");
    let base = if script.is_file() {
        if !no_build {
            eprintln!("building the example plugins (plugins/build.sh --rust-only)…");
            let status = std::process::Command::new(&script)
                .arg("--rust-only")
                .status()
                .context("running plugins/build.sh")?;
            anyhow::ensure!(status.success(), "plugins/build.sh failed ({status})");
        }
        source_tree
    } else {
        Path::new("")
    };
    let mut config = Config::parse_relative_to(DEMO_CONFIG, "config/demo.yaml (embedded)", base)?;
    if let Some(dir) = plugins {
        config.move_plugins_to(dir);
    }
    Ok(config)
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load_file(path).map_err(|errors| anyhow::anyhow!("invalid config:\n{errors}"))
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        // Rule files report how many rules they hold.
        let checked = match is_rules(file) {
            true => alert::engine::load_checked(file).map(|rules| Some(rules.len())),
            false => Config::load_file(file).map(|config| {
                for warning in config.warnings() {
                    println!("{}: warning: {}", file.display(), secret::mask(&warning.to_string()));
                }
                None
            }),
        };
        match checked {
            Ok(Some(rules)) => println!("{}: ok ({rules} rules)", file.display()),
            Ok(None) => println!("{}: ok", file.display()),
            Err(errors) => {
                failed = true;
                for error in &errors.0 {
                    println!("{error}");
                }
                println!("{}: {} error(s)", file.display(), errors.0.len());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A directory, or a YAML file whose top level has `rules:`, holds alert rules.
fn is_rules(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    let limit = synaptic_telemetry::files::MAX_CONFIG_BYTES;
    let Ok(text) = synaptic_telemetry::files::read_text(path, limit, false) else { return false };
    match synaptic_telemetry::decode::yaml::parse(&text) {
        Ok(root) => match &root.kind {
            NodeKind::Map(entries) => {
                entries.iter().any(|(k, _)| k.name == "rules")
                    && !entries
                        .iter()
                        .any(|(k, _)| matches!(k.name.as_str(), "source" | "pipeline" | "sinks"))
            }
            _ => false,
        },
        Err(_) => false,
    }
}

fn test_rules(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let passed = alert::testing::run_paths(paths, &mut out).context("writing the report")?;
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_pipeline(config: Config, listen: Option<SocketAddr>, demo: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let outputs: Vec<String> = config.describe_outputs().iter().map(|line| format!("  {line}")).collect();
        let on_listening: Box<dyn FnOnce(SocketAddr) + Send> = Box::new(move |addr| {
            if demo {
                eprintln!("\nsynaptic-telemetry demo is running; Ctrl-C stops it.");
                eprintln!("  metrics: http://{addr}/metrics");
                eprintln!("  health:  http://{addr}/health   ready: http://{addr}/ready");
                eprintln!("{}\n", outputs.join("\n"));
            }
        });
        let options = RunOptions { listen, shutdown, on_listening: Some(on_listening) };
        let summary = app::run(config, options).await?;
        report(&summary);
        Ok(if summary.unacknowledged == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    });
    // The run is over and reported: a task still stuck in a blocking call (a
    // broker that stopped answering) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

fn test_plugin(
    plugin: PathBuf,
    input: PathBuf,
    config: Option<&str>,
    batch_size: usize,
    deadline: std::time::Duration,
    memory_mib: u64,
) -> anyhow::Result<ExitCode> {
    let config = config.map(tester::parse_config).transpose()?.unwrap_or_default();
    let options = TestOptions { plugin, input, config, batch_size, deadline, memory: memory_mib << 20 };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let report = tester::run(&options, &mut out)?;
    out.flush().context("writing the report")?;
    eprintln!(
        "{} events: {} kept, {} dropped, {} replaced; {} invalid input lines, {} invalid replacements, {} failed batches",
        report.events,
        report.kept,
        report.dropped,
        report.replaced,
        report.invalid_input,
        report.invalid_output,
        report.failed_batches
    );
    Ok(if report.clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn report(summary: &Summary) {
    let json = serde_json::to_string(summary).unwrap_or_default();
    eprintln!("synaptic-telemetry summary {json}");
}

/// The first SIGINT or SIGTERM drains and stops; a second one exits at once.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("signal received: stopping input and draining (signal again to exit at once)");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    eprintln!("second signal: exiting without draining");
    std::process::exit(130);
}

/// Writes each file's plaintext to stdout. A frame that fails its check stops
/// that file with an error naming the frame and its offset (exit code 2); what
/// came before it was printed.
/// `forget --config`: this process deletes, after making sure no pipeline serves
/// from that config (its file sinks would keep writing to replaced files).
fn forget_local(subject: &str, config_path: &Path) -> anyhow::Result<ExitCode> {
    use synaptic_telemetry::forget::Subject;
    let subject = Subject::parse(subject).map_err(|e| anyhow::anyhow!("--subject {e}"))?;
    let config = load(config_path)?;
    let outcome = app::forget_stopped(&config, &subject, "cli")?;
    print_forget_outcome(&serde_json::to_value(&outcome)?)
}

/// `forget --url`: the running instance deletes; its answer is printed.
fn forget_remote(
    subject: &str,
    url: &str,
    token_env: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    synaptic_telemetry::forget::Subject::parse(subject).map_err(|e| anyhow::anyhow!("--subject {e}"))?;
    let token = std::env::var(token_env).ok();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = runtime.block_on(async {
        let client = api_client(ca_file, std::time::Duration::from_secs(600))?;
        let endpoint = format!("{}/forget", url.trim_end_matches('/'));
        let mut request = client
            .post(&endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({ "subject": subject }).to_string());
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("POST {endpoint}"))?;
        let status = response.status();
        anyhow::Ok((status, response.text().await?))
    })?;
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(outcome) if outcome.get("places").is_some() => print_forget_outcome(&outcome),
        _ => anyhow::bail!("the instance answered {status}: {}", body.trim()),
    }
}

/// A client of an instance's HTTP API, trusting `ca_file` besides the usual roots.
fn api_client(ca_file: Option<&Path>, timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    let mut client = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        client = client.add_root_certificate(
            reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{}: not a PEM certificate", ca.display()))?,
        );
    }
    Ok(client.build()?)
}

/// `tap`: the events as JSON lines on stdout, the summary on stderr.
fn tap(
    url: &str,
    step: Option<&str>,
    sink: Option<&str>,
    matches: &[String],
    limit: u64,
    token_env: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut query: Vec<(String, String)> = Vec::new();
    match (step, sink) {
        (Some(step), _) => query.push(("step".into(), step.into())),
        (None, Some(sink)) => query.push(("sink".into(), sink.into())),
        (None, None) => anyhow::bail!("tap needs --step or --sink"),
    }
    for m in matches {
        let Some((key, value)) = m.split_once('=') else {
            anyhow::bail!("--match {m}: expected KEY=VALUE (event_type, component or min_severity)")
        };
        anyhow::ensure!(
            matches!(key, "event_type" | "component" | "min_severity"),
            "--match {m}: `{key}` is not one of event_type, component, min_severity"
        );
        query.push((key.into(), value.into()));
    }
    query.push(("limit".into(), limit.to_string()));
    let encoded: Vec<String> =
        query.iter().map(|(k, v)| format!("{k}={}", synaptic_telemetry::query::escape(v))).collect();
    let endpoint = format!("{}/api/tap?{}", url.trim_end_matches('/'), encoded.join("&"));
    let token = std::env::var(token_env).ok();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        // No overall timeout: the instance ends the stream (limit or its own bound).
        let client = api_client(ca_file, std::time::Duration::from_secs(24 * 3600))?;
        let mut request = client.get(&endpoint);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.with_context(|| format!("GET {endpoint}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("the instance answered {status}: {}", body.trim());
        }
        let mut out = std::io::stdout().lock();
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await.context("reading the tap")? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if line.starts_with(b"{\"tap_end\"") {
                    let summary: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
                    let s = &summary["tap_end"];
                    eprintln!(
                        "tap ended ({}): {} events shown, {} dropped by the instance because this reader was slower than the events",
                        s["reason"].as_str().unwrap_or("?"),
                        s["sent"],
                        s["dropped"]
                    );
                    continue;
                }
                out.write_all(&line).context("writing the events")?;
            }
            out.flush().context("writing the events")?;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One line per place, then the total; failure when any place was not done.
fn print_forget_outcome(outcome: &serde_json::Value) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for place in outcome["places"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let what = format!(
            "{} {} {}",
            place["sink"].as_str().unwrap_or(""),
            place["kind"].as_str().unwrap_or(""),
            place["target"].as_str().unwrap_or("")
        );
        match place["error"].as_str() {
            Some(error) => writeln!(out, "{what}: FAILED: {error}")?,
            None => writeln!(out, "{what}: {} removed", place["removed"])?,
        }
    }
    let complete = outcome["complete"].as_bool() == Some(true);
    writeln!(
        out,
        "{} events of {} removed{}",
        outcome["removed"],
        outcome["field"].as_str().unwrap_or(""),
        if complete {
            ""
        } else {
            "; some places were not done (see above): run it again once they are fixed"
        }
    )?;
    Ok(if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `replay`: errors are exit code 2, so a CI job tells "differs" (1) from
/// "could not tell" (2).
fn replay(args: &ReplayArgs) -> ExitCode {
    match replay_report(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", secret::mask(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// Runs the replay and prints the report; true when nothing differs.
fn replay_report(args: &ReplayArgs) -> anyhow::Result<bool> {
    use synaptic_telemetry::replay::{file_records, kafka_records, report, Record};
    let (config, config_name) = match &args.config {
        Some(path) => (load(path)?, path.display().to_string()),
        None => (demo_config(true, None)?, "the demo config".to_string()),
    };
    let brokers = args.brokers.as_str();
    let stopped = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (records, input_name): (Box<dyn Iterator<Item = Record>>, String) = match (&args.input, &args.kafka) {
        (Some(path), _) => {
            (Box::new(file_records(path, config.limits.max_event_bytes())?), path.display().to_string())
        }
        (None, Some(range)) => (
            Box::new(kafka_records(brokers, range, std::time::Duration::from_secs(10), stopped.clone())?),
            format!("{}:{} offsets {}-{} at {brokers}", range.topic, range.partition, range.from, range.to),
        ),
        (None, None) => anyhow::bail!("replay needs --input or --kafka"),
    };
    let (diff, changes) = app::replay(&config, &args.with, args.step.as_deref(), records, args.show)?;
    if let Some(why) = stopped.lock().ok().and_then(|mut s| s.take()) {
        anyhow::bail!("the Kafka range was not read to its end: {why}");
    }
    let mut out = std::io::stdout().lock();
    report(&diff, &input_name, &config_name, &changes, &mut out).context("writing the report")?;
    Ok(diff.changes() == 0)
}

fn decrypt(files: &[PathBuf], key_file: Option<&Path>, key_env: &str) -> anyhow::Result<ExitCode> {
    let key = match key_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the key file {}", path.display()))?,
        None => {
            std::env::var(key_env).with_context(|| format!("the key: set {key_env} or give --key-file"))?
        }
    };
    secret::register(key.trim());
    let sealer =
        synaptic_telemetry::seal::Sealer::from_key_text(&key).map_err(|e| anyhow::anyhow!("the key: {e}"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    for file in files {
        let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let (frames, error) = sealer.open_all(&data);
        for frame in &frames {
            out.write_all(frame).context("writing the output")?;
        }
        if let Some(e) = error {
            out.flush().context("writing the output")?;
            eprintln!("{}: {e} ({} frames before it are intact)", file.display(), frames.len());
            failed = true;
        }
    }
    out.flush().context("writing the output")?;
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

fn generate(
    count: u64,
    out: Option<&Path>,
    malformed_ratio: f64,
    seed: u64,
    start_ms: u64,
    rate: f64,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((0.0..=1.0).contains(&malformed_ratio), "--malformed-ratio must be from 0.0 to 1.0");
    anyhow::ensure!(rate > 0.0, "--rate must be > 0");
    let config =
        GeneratorConfig { rate, total: count, seed, malformed_ratio, start_ms: Some(start_ms as i64) };
    let mut traffic = Traffic::new(&config, 0);
    let (mut writer, progress): (Box<dyn Write>, Option<indicatif::ProgressBar>) = match out {
        Some(path) => {
            let file = synaptic_telemetry::files::create_private(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let bar = indicatif::ProgressBar::new(count).with_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            (Box::new(std::io::BufWriter::with_capacity(1 << 20, file)), Some(bar))
        }
        None => (Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock())), None),
    };
    for i in 0..count {
        let mut line = traffic.next_event();
        line.push(b'\n');
        writer.write_all(&line).context("writing events")?;
        if let Some(bar) = &progress {
            if i % 4096 == 0 {
                bar.set_position(i);
            }
        }
    }
    writer.flush().context("writing events")?;
    if let Some(bar) = progress {
        bar.finish_with_message("done");
    }
    Ok(ExitCode::SUCCESS)
}
