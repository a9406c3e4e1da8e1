//! Metric names as Prometheus' linter (`promtool check metrics`) wants them,
//! checked when a mapping loads, so that what loads is what Prometheus accepts.

/// Units that Prometheus' linter asks to be written in base units, as a name
/// token (`_ms`, `_mb_`): seconds and bytes are the base units.
const ABBREVIATED_UNITS: &[&str] =
    &["s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"];
const NON_BASE_UNITS: &[(&str, &str)] = &[
    ("milliseconds", "seconds"),
    ("microseconds", "seconds"),
    ("nanoseconds", "seconds"),
    ("minutes", "seconds"),
    ("hours", "seconds"),
    ("days", "seconds"),
    ("kilobytes", "bytes"),
    ("megabytes", "bytes"),
    ("gigabytes", "bytes"),
    ("bits", "bytes"),
    ("percent", "ratio"),
];

/// What `promtool check metrics` would object to in a name, checked up front.
pub(crate) fn check_name(name: &str, kind: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !valid_chars {
        return Err("only letters, digits, `_`, `:` and `.` (a digit not first) may be used".into());
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("write it in snake_case (lower case)".into());
    }
    if name.contains(':') {
        return Err("`:` is reserved for recording rules".into());
    }
    let tokens: Vec<&str> = name.split('_').collect();
    if let Some(unit) = tokens.iter().find(|t| ABBREVIATED_UNITS.contains(t)) {
        return Err(format!("abbreviated unit `{unit}`: use base units (`seconds`, `bytes`) and `scale`"));
    }
    if let Some((unit, base)) = NON_BASE_UNITS.iter().find(|(u, _)| tokens.contains(u)) {
        return Err(format!("`{unit}` is not a base unit: use `{base}` and `scale`"));
    }
    if let Some(word) = tokens.iter().find(|t| ["counter", "gauge", "histogram", "summary"].contains(t)) {
        return Err(format!("a name must not contain its type (`{word}`)"));
    }
    let total = name.ends_with("_total");
    match kind {
        "counter" if !total => return Err("a counter's name ends in `_total`".into()),
        "counter" => {}
        _ if total => return Err(format!("only counters end in `_total`, this is a {kind}")),
        _ => {}
    }
    if let Some(suffix) = ["_bucket", "_count", "_sum"].iter().find(|s| name.ends_with(**s)) {
        return Err(format!("`{suffix}` is a suffix a histogram's series use"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_promtool_rejects_are_rejected() {
        assert!(check_name("codex_synaptic_task_completed_total", "counter").is_ok());
        assert!(check_name("codex_synaptic_task_execution_time_seconds", "histogram").is_ok());
        for (name, kind, says) in [
            ("codex_synaptic_task_completed", "counter", "ends in `_total`"),
            ("codex_synaptic_agent_active_total", "gauge", "only counters"),
            ("codex_synaptic_task_execution_time_ms", "histogram", "abbreviated unit `ms`"),
            ("codex_synaptic_system_memory_used_mb", "gauge", "abbreviated unit `mb`"),
            ("codex_synaptic_cpu_usage_percent", "gauge", "`percent` is not a base unit"),
            ("codex_synaptic_queue_gauge", "gauge", "its type"),
            ("codex_synaptic_latency_count", "gauge", "`_count`"),
            ("codex-synaptic", "gauge", "only letters"),
        ] {
            let problem = check_name(name, kind).expect_err(name);
            assert!(problem.contains(says), "{name}: {problem}");
        }
    }
}
