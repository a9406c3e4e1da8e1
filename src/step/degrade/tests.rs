use bytes::Bytes;

use super::*;
use crate::event::{Position, SchemaMode};

fn event(i: usize, event_type: &str, severity: &str) -> Event {
    let json = format!(
        r#"{{"event_id":"e-{i}","timestamp":1767225600000,"component":"bridge","event_type":"{event_type}","severity":"{severity}","tags":{{}},"context":{{}},"data":{{}}}}"#
    );
    Event::decode(Bytes::from(json), Position::Generator { seq: i as u64 }, SchemaMode::Lenient)
        .expect("valid")
}

fn step(telemetry: &Arc<Telemetry>) -> DegradeStep {
    let config = DegradeStepConfig {
        buffer_fill: 0.8,
        consumer_lag: Some(1000),
        rates: DEFAULT_RATES.iter().map(|(t, r)| (t.to_string(), *r)).collect(),
        check_interval: Duration::ZERO,
    };
    let active = telemetry.gauge("degraded", "1 while degraded");
    DegradeStep {
        name: "degrade".into(),
        rates: config.rates.iter().map(|(t, r)| (Glob::new(t), *r)).collect(),
        protected: PROTECTED.iter().map(|t| Glob::new(t)).collect(),
        buffer_fill_percent: 80,
        consumer_lag: config.consumer_lag,
        check_interval: config.check_interval,
        last_check: None,
        under_pressure: false,
        active,
        telemetry: telemetry.clone(),
    }
}

fn batch(types: &[(&str, &str)], each: usize) -> Batch {
    let mut events = Vec::new();
    for (t, severity) in types {
        for i in 0..each {
            events.push(event(events.len() + i, t, severity));
        }
    }
    Batch { events, ..Batch::default() }
}

#[test]
fn under_pressure_low_priority_types_are_sampled_and_stamped_and_the_rest_kept_whole() {
    let telemetry = Arc::new(Telemetry::new());
    let fill = telemetry.gauge_vec("buffer_fill_percent", "fill", &["sink"]).with_label_values(&["influx"]);
    let mut step = step(&telemetry);
    let types = [
        ("bridge.message", "INFO"),
        ("security.violation", "INFO"),
        ("consensus.vote", "DEBUG"),
        ("bridge.message", "ERROR"),
        ("agent.spawned", "INFO"),
    ];

    // No pressure: nothing changes.
    let mut b = batch(&types, 1000);
    step.process(&mut b);
    assert_eq!(b.events.len(), 5000);
    assert!(b.events.iter().all(|e| e.sample_rate().is_none()));

    // A buffer at 90%: bridge messages at INFO are sampled at 0.1, the rest kept.
    fill.set(90);
    let mut b = batch(&types, 1000);
    step.process(&mut b);
    assert_eq!(step.active.get(), 1);
    let bridge_info: Vec<&Event> = b
        .events
        .iter()
        .filter(|e| e.event_type() == "bridge.message" && e.severity() == Severity::Info)
        .collect();
    assert!((60..=140).contains(&bridge_info.len()), "about 10% of 1000 kept: {}", bridge_info.len());
    assert!(bridge_info.iter().all(|e| e.sample_rate() == Some(0.1)), "kept ones stand for 10 each");
    let whole =
        |t: &str, s: Severity| b.events.iter().filter(|e| e.event_type() == t && e.severity() == s).count();
    assert_eq!(whole("security.violation", Severity::Info), 1000, "security is never sampled down");
    assert_eq!(whole("consensus.vote", Severity::Debug), 1000, "consensus is never sampled down");
    assert_eq!(whole("bridge.message", Severity::Error), 1000, "errors are never sampled down");
    assert_eq!(whole("agent.spawned", Severity::Info), 1000, "types without a rate are kept");
    assert_eq!(b.dropped, 1000 - bridge_info.len());
    // Scaled back, the count is about right.
    let weighted: f64 = bridge_info.iter().map(|e| e.sample_weight()).sum();
    assert!((600.0..=1400.0).contains(&weighted), "{weighted}");

    // An event already sampled at 0.5 is stamped with the product.
    let mut sampled = batch(&[("bridge.message", "INFO")], 2000);
    for e in &mut sampled.events {
        e.set_sample_rate(0.5);
    }
    step.process(&mut sampled);
    assert!(sampled.events.iter().all(|e| e.sample_rate() == Some(0.05)));

    // Pressure clears: rates return.
    fill.set(10);
    let mut b = batch(&types, 1000);
    step.process(&mut b);
    assert_eq!(step.active.get(), 0);
    assert_eq!(b.events.len(), 5000);
}

#[test]
fn consumer_lag_over_its_bound_is_pressure_too() {
    let telemetry = Arc::new(Telemetry::new());
    let lag = telemetry.gauge_vec("kafka_consumer_lag", "lag", &["topic", "partition"]);
    let mut step = step(&telemetry);
    lag.with_label_values(&["in", "0"]).set(600);
    lag.with_label_values(&["in", "1"]).set(600);
    let mut b = batch(&[("swarm.iteration", "INFO")], 1000);
    step.process(&mut b);
    assert!(b.events.len() < 200, "1200 > 1000 lag: sampled down to ~10%: {}", b.events.len());
}

#[test]
fn decisions_are_the_same_on_every_instance() {
    let telemetry = Arc::new(Telemetry::new());
    telemetry.gauge_vec("buffer_fill_percent", "fill", &["sink"]).with_label_values(&["s"]).set(100);
    let kept = |step: &mut DegradeStep| {
        let mut b = batch(&[("bridge.message", "INFO")], 500);
        step.process(&mut b);
        b.events.iter().map(|e| e.event_id().to_string()).collect::<Vec<_>>()
    };
    let (mut a, mut b) = (step(&telemetry), step(&telemetry));
    assert_eq!(kept(&mut a), kept(&mut b));
}
