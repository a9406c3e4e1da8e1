//! `synaptic-telemetry top`: a terminal view of a running instance, refreshed
//! every second from its `/metrics` and `/api/alerts`: per step and per sink
//! events per second, drops and dead letters, batch latency, consumer lag per
//! partition, plugin versions, alerts firing by tier, buffer fill and circuit
//! state. `q` or Esc quits.
//!
//! What is shown is computed by [`Screen::between`] from two scrapes (rates are
//! per second of the instance's clock between them), so the arithmetic is tested
//! apart from the terminal.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};

use crate::telemetry::{parse_exposition, Series};

const PREFIX: &str = "synaptic_telemetry_";
const REFRESH: Duration = Duration::from_secs(1);
/// Alerts listed (the counts by tier cover all).
const ALERTS_SHOWN: usize = 12;

/// A scrape: the series and the instance's clock when it was taken (seconds).
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub at: f64,
    pub series: Vec<Series>,
    pub alerts: serde_json::Value,
}

impl Scrape {
    fn family<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        let full = format!("{PREFIX}{name}");
        self.series.iter().filter(move |s| s.name == full)
    }

    /// Sum of a family's series whose labels include `filter`, grouped by `by`.
    fn sum_by(&self, name: &str, by: &str, filter: &[(&str, &str)]) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.family(name) {
            if filter.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v)) {
                *out.entry(s.labels.get(by).cloned().unwrap_or_default()).or_insert(0.0) += s.value;
            }
        }
        out
    }

    fn total(&self, name: &str) -> f64 {
        self.family(name).map(|s| s.value).sum()
    }
}

/// What the screen shows, as text rows.
#[derive(Debug, Default, PartialEq)]
pub struct Screen {
    pub header: String,
    /// step, in/s, out/s, dropped/s, dead-lettered/s
    pub steps: Vec<[String; 5]>,
    /// sink, sent/s, failed/s, buffer fill, buffered events, circuit
    pub sinks: Vec<[String; 6]>,
    /// topic, partition, lag
    pub partitions: Vec<[String; 3]>,
    /// plugin, runtime, version, swaps, rollbacks, failures
    pub plugins: Vec<[String; 6]>,
    /// "critical 2  warning 0  info 5"
    pub alert_counts: String,
    /// tier, alert, summary
    pub alerts: Vec<[String; 3]>,
}

impl Screen {
    /// The view between two scrapes of one instance.
    pub fn between(before: &Scrape, now: &Scrape) -> Screen {
        let dt = (now.at - before.at).max(1e-3);
        let rate = |name: &str, by: &str, filter: &[(&str, &str)]| -> BTreeMap<String, f64> {
            let (a, b) = (now.sum_by(name, by, filter), before.sum_by(name, by, filter));
            a.iter()
                .map(|(k, v)| (k.clone(), ((v - b.get(k).copied().unwrap_or(0.0)) / dt).max(0.0)))
                .collect()
        };
        let one = |m: BTreeMap<String, f64>| m.values().sum::<f64>();
        let read = one(rate("source_events_total", "", &[]));
        let acked = one(rate("acknowledged_events_total", "", &[]));
        let dead = one(rate("dead_lettered_total", "", &[]));
        let (p50, p99) = (
            bucket_quantile(before, now, "batch_duration_seconds", 0.5),
            bucket_quantile(before, now, "batch_duration_seconds", 0.99),
        );
        let header = format!(
            "read {}/s   acknowledged {}/s   dead-lettered {}/s   unacknowledged {}   batches in flight {}   batch latency p50 {} p99 {}",
            num(read),
            num(acked),
            num(dead),
            num(now.total("unacknowledged_events_total")),
            num(now.total("in_flight_batches")),
            millis(p50),
            millis(p99)
        );

        let outcomes: Vec<BTreeMap<String, f64>> = ["in", "out", "dropped", "dead_lettered"]
            .iter()
            .map(|o| rate("step_events_total", "step", &[("outcome", o)]))
            .collect();
        // Steps in the order the instance lists them (its registration order).
        let mut step_names: Vec<String> = Vec::new();
        for s in now.family("step_events_total") {
            if let Some(step) = s.labels.get("step") {
                if !step_names.contains(step) {
                    step_names.push(step.clone());
                }
            }
        }
        let steps = step_names
            .iter()
            .map(|step| {
                let get = |i: usize| num(outcomes[i].get(step).copied().unwrap_or(0.0));
                [step.clone(), get(0), get(1), get(2), get(3)]
            })
            .collect();

        let sent = rate("sink_events_total", "sink", &[("outcome", "sent")]);
        let failed = rate("sink_events_total", "sink", &[("outcome", "failed")]);
        let fill = now.sum_by("buffer_fill_percent", "sink", &[]);
        let buffered = now.sum_by("buffer_events", "sink", &[]);
        let circuit = now.sum_by("sink_circuit_state", "sink", &[]);
        let mut sink_names: Vec<&String> = sent.keys().chain(circuit.keys()).collect();
        sink_names.sort();
        sink_names.dedup();
        let sinks = sink_names
            .into_iter()
            .map(|sink| {
                let state = match circuit.get(sink).copied().unwrap_or(0.0) as i64 {
                    0 => "closed",
                    1 => "OPEN",
                    _ => "half-open",
                };
                [
                    sink.clone(),
                    num(sent.get(sink).copied().unwrap_or(0.0)),
                    num(failed.get(sink).copied().unwrap_or(0.0)),
                    format!("{}%", num(fill.get(sink).copied().unwrap_or(0.0))),
                    num(buffered.get(sink).copied().unwrap_or(0.0)),
                    state.to_string(),
                ]
            })
            .collect();

        let partitions = now
            .family("kafka_consumer_lag")
            .map(|s| {
                let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                [label("topic"), label("partition"), num(s.value)]
            })
            .collect();

        let swaps = now.sum_by("plugin_swaps_total", "plugin", &[]);
        let rollbacks = now.sum_by("plugin_rollbacks_total", "plugin", &[]);
        let failures = now.sum_by("plugin_failures_total", "plugin", &[]);
        let plugins = now
            .family("plugin_info")
            .map(|s| {
                let plugin = s.labels.get("plugin").cloned().unwrap_or_default();
                let count = |m: &BTreeMap<String, f64>| num(m.get(&plugin).copied().unwrap_or(0.0));
                [
                    plugin.clone(),
                    s.labels.get("runtime").cloned().unwrap_or_default(),
                    s.labels.get("hash").cloned().unwrap_or_default(),
                    count(&swaps),
                    count(&rollbacks),
                    count(&failures),
                ]
            })
            .collect();

        let firing = now.sum_by("alerts_firing", "tier", &[]);
        let alert_counts = ["critical", "warning", "info"]
            .iter()
            .map(|t| format!("{t} {}", num(firing.get(*t).copied().unwrap_or(0.0))))
            .collect::<Vec<_>>()
            .join("   ");
        let alerts = (now.alerts["alerts"].as_array().into_iter().flatten())
            .take(ALERTS_SHOWN)
            .map(|a| {
                let text = |k: &str| a[k].as_str().unwrap_or("").to_string();
                [text("tier").to_lowercase(), text("rule"), text("summary")]
            })
            .collect();

        Screen { header, steps, sinks, partitions, plugins, alert_counts, alerts }
    }
}

/// A histogram's quantile over the observations between two scrapes.
fn bucket_quantile(before: &Scrape, now: &Scrape, name: &str, q: f64) -> Option<f64> {
    let buckets = |s: &Scrape| s.sum_by(&format!("{name}_bucket"), "le", &[]);
    let (a, b) = (buckets(now), buckets(before));
    let mut bounds: Vec<(f64, f64)> = a
        .iter()
        .map(|(le, v)| {
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            (bound, v - b.get(le).copied().unwrap_or(0.0))
        })
        .collect();
    bounds.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = bounds.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (bound, count) in bounds {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            return Some(if inside > 0.0 {
                lower + (bound - lower) * (rank - below) / inside
            } else {
                bound
            });
        }
        (lower, below) = (bound, count);
    }
    None
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn millis(seconds: Option<f64>) -> String {
    seconds.map_or("n/a".to_string(), |s| format!("{:.1} ms", s * 1000.0))
}

/// Where `top` reads from, and how.
pub struct Source {
    pub url: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Source {
    async fn scrape(&self) -> anyhow::Result<Scrape> {
        let get = |path: &str| {
            let mut request = self.client.get(format!("{}{path}", self.url.trim_end_matches('/')));
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let metrics = get("/metrics").await.context("reading /metrics")?.error_for_status()?.text().await?;
        let alerts_text =
            get("/api/alerts").await.context("reading /api/alerts")?.error_for_status()?.text().await?;
        let alerts: serde_json::Value = serde_json::from_str(&alerts_text).unwrap_or_default();
        let at = alerts["now_ms"].as_f64().unwrap_or_else(|| crate::clock::now_ms() as f64) / 1000.0;
        Ok(Scrape { at, series: parse_exposition(&metrics), alerts })
    }
}

/// Runs the view until `q` or Esc. The terminal is restored however it ends.
pub fn run(source: Source) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut before = runtime.block_on(source.scrape()).with_context(|| format!("reading {}", source.url))?;
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        // Rates need two scrapes a second apart: the first screen says so.
        let mut screen = Screen { header: "measuring…".to_string(), ..Screen::default() };
        terminal.draw(|frame| draw(frame, &source.url, &screen, None))?;
        let mut next = std::time::Instant::now() + REFRESH;
        loop {
            if std::time::Instant::now() >= next {
                next += REFRESH;
                // The instance gone or slow: say so and keep trying.
                let problem = match runtime.block_on(source.scrape()) {
                    Ok(now) => {
                        screen = Screen::between(&before, &now);
                        before = now;
                        None
                    }
                    Err(e) => Some(format!("{e:#}")),
                };
                terminal.draw(|frame| draw(frame, &source.url, &screen, problem.as_deref()))?;
            }
            let wait = next.saturating_duration_since(std::time::Instant::now());
            if event::poll(wait)? {
                if let Event::Key(key) = event::read()? {
                    if key.kind == KeyEventKind::Press
                        && matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                    {
                        return Ok(());
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result
}

fn table<const N: usize>(
    title: &str,
    header: [&str; N],
    rows: &[[String; N]],
    widths: [Constraint; N],
) -> Table<'static> {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let header = Row::new(header.map(|h| h.to_string())).style(bold);
    let rows: Vec<Row> = rows.iter().map(|r| Row::new(r.clone())).collect();
    Table::new(rows, widths).header(header).block(Block::bordered().title(title.to_string()))
}

fn draw(frame: &mut ratatui::Frame, url: &str, screen: &Screen, problem: Option<&str>) {
    let [top, steps, middle, bottom] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(screen.steps.len() as u16 + 3),
        Constraint::Length((screen.sinks.len().max(screen.plugins.len()) as u16 + 3).max(4)),
        Constraint::Min(4),
    ])
    .areas(frame.area());
    let title = format!("synaptic-telemetry top — {url} — q quits");
    let mut lines = vec![Line::from(screen.header.clone())];
    if let Some(problem) = problem {
        lines = vec![Line::styled(
            format!("cannot read the instance: {problem}"),
            Style::default().fg(Color::Red),
        )];
    }
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title)), top);
    let c = Constraint::Length;
    frame.render_widget(
        table(
            "steps (events/s)",
            ["step", "in", "out", "dropped", "dead-lettered"],
            &screen.steps,
            [Constraint::Min(16), c(10), c(10), c(10), c(14)],
        ),
        steps,
    );
    let [sinks, plugins] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    frame.render_widget(
        table(
            "sinks",
            ["sink", "sent/s", "failed/s", "buffer", "buffered", "circuit"],
            &screen.sinks,
            [Constraint::Min(12), c(8), c(9), c(7), c(9), c(10)],
        ),
        sinks,
    );
    frame.render_widget(
        table(
            "plugins",
            ["plugin", "runtime", "version", "swaps", "rollbacks", "failures"],
            &screen.plugins,
            [Constraint::Min(10), c(7), c(24), c(6), c(9), c(8)],
        ),
        plugins,
    );
    let [lag, alerts] =
        Layout::horizontal([Constraint::Percentage(30), Constraint::Percentage(70)]).areas(bottom);
    let partitions = if screen.partitions.is_empty() {
        vec![["(no Kafka source)".to_string(), String::new(), String::new()]]
    } else {
        screen.partitions.clone()
    };
    frame.render_widget(
        table("consumer lag", ["topic", "partition", "lag"], &partitions, [Constraint::Min(10), c(9), c(10)]),
        lag,
    );
    let title = format!("alerts firing: {}", screen.alert_counts);
    frame.render_widget(
        table(&title, ["tier", "alert", "summary"], &screen.alerts, [c(9), c(26), Constraint::Min(20)]),
        alerts,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(at: f64, text: &str) -> Scrape {
        Scrape { at, series: parse_exposition(text), alerts: serde_json::Value::Null }
    }

    #[test]
    fn the_exposition_parses_with_labels_holding_commas_and_quotes() {
        let series = parse_exposition(
            "# HELP x y\nx_total{a=\"1,2\",b=\"say \\\"hi\\\"\"} 3\nplain 4.5\nbroken line\n",
        );
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels["a"], "1,2");
        assert_eq!(series[0].labels["b"], "say \\\"hi\\\"");
        assert_eq!(series[1].value, 4.5);
    }

    #[test]
    fn rates_and_latency_come_from_two_scrapes() {
        let before = scrape(
            100.0,
            "synaptic_telemetry_source_events_total 1000\n\
             synaptic_telemetry_step_events_total{outcome=\"in\",step=\"filter\"} 1000\n\
             synaptic_telemetry_step_events_total{outcome=\"dropped\",step=\"filter\"} 100\n\
             synaptic_telemetry_sink_events_total{outcome=\"sent\",sink=\"out\"} 500\n\
             synaptic_telemetry_batch_duration_seconds_bucket{le=\"0.001\"} 10\n\
             synaptic_telemetry_batch_duration_seconds_bucket{le=\"0.01\"} 10\n\
             synaptic_telemetry_batch_duration_seconds_bucket{le=\"+Inf\"} 10\n",
        );
        let now = scrape(
            102.0,
            "synaptic_telemetry_source_events_total 3000\n\
             synaptic_telemetry_step_events_total{outcome=\"in\",step=\"filter\"} 3000\n\
             synaptic_telemetry_step_events_total{outcome=\"dropped\",step=\"filter\"} 300\n\
             synaptic_telemetry_sink_events_total{outcome=\"sent\",sink=\"out\"} 1500\n\
             synaptic_telemetry_sink_circuit_state{sink=\"out\"} 1\n\
             synaptic_telemetry_buffer_fill_percent{sink=\"out\"} 12.5\n\
             synaptic_telemetry_kafka_consumer_lag{partition=\"3\",topic=\"events\"} 42\n\
             synaptic_telemetry_plugin_info{hash=\"sha256:ab\",plugin=\"filter\",runtime=\"rhai\"} 1\n\
             synaptic_telemetry_plugin_swaps_total{plugin=\"filter\"} 2\n\
             synaptic_telemetry_alerts_firing{tier=\"critical\"} 1\n\
             synaptic_telemetry_batch_duration_seconds_bucket{le=\"0.001\"} 10\n\
             synaptic_telemetry_batch_duration_seconds_bucket{le=\"0.01\"} 20\n\
             synaptic_telemetry_batch_duration_seconds_bucket{le=\"+Inf\"} 20\n",
        );
        let screen = Screen::between(&before, &now);
        assert!(screen.header.starts_with("read 1000/s"), "{}", screen.header);
        // All ten new batches fell in (1 ms, 10 ms]: the median is in the middle.
        assert!(screen.header.contains("p50 5.5 ms"), "{}", screen.header);
        assert_eq!(screen.steps, [["filter", "1000", "0", "100", "0"].map(String::from)]);
        assert_eq!(screen.sinks, [["out", "500", "0", "12.5%", "0", "OPEN"].map(String::from)]);
        assert_eq!(screen.partitions, [["events", "3", "42"].map(String::from)]);
        assert_eq!(screen.plugins, [["filter", "rhai", "sha256:ab", "2", "0", "0"].map(String::from)]);
        assert_eq!(screen.alert_counts, "critical 1   warning 0   info 0");
    }
}
