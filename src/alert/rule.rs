//! The rule format (`rules/*.yaml`): strict like the pipeline config — unknown
//! keys rejected, every error with `file:line:col`, all errors of all files at once.
//!
//! ```yaml
//! rules:
//!   - name: ConsensusSlow
//!     tier: warning
//!     description: reads consensus.decision (decision_time_ms)
//!     match: { event_type: consensus.decision }
//!     group_by: [component]
//!     condition:
//!       avg: { field: data.decision_time_ms, window: 5m, above: 10000 }
//!     for: 1m
//!     annotations:
//!       summary: "consensus decisions take {{ value }} ms on average"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::decode::yaml::{Node, NodeKind, Pos};
use crate::decode::{one_of, Decode, Diagnostics, MapReader};
use crate::decode::{parse_document, ConfigError, ConfigErrors};
use crate::fields::{decode_conditions, field_ref, Condition, FieldRef};
use crate::files::read_document;
use crate::route::{decode_match, MatchConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Tier {
    Critical,
    Warning,
    Info,
}

impl Tier {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Warning => "warning",
            Tier::Info => "info",
        }
    }
}

/// A rule as loaded: what it means, and where and how it is written. Its fields
/// are read through [`Definition`] (`rule.name`).
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) definition: Definition,
    /// What the rule watches and which events it reads.
    pub description: String,
    /// Where the rule is written.
    pub file: String,
    pub line: usize,
}

impl std::ops::Deref for Rule {
    type Target = Definition;

    fn deref(&self) -> &Definition {
        &self.definition
    }
}

/// What a rule means. Two loads of an unchanged rule give equal definitions, so a
/// reload keeps its state; any field that changes makes it a new rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    pub(crate) tier: Tier,
    pub(crate) matcher: MatchConfig,
    /// `match.where`: field tests an event must pass to count at all.
    pub(crate) conditions: Vec<Condition>,
    /// Label name → field; one alert per distinct set of values.
    pub(crate) group_by: Vec<(String, FieldRef)>,
    pub(crate) condition: Cond,
    /// How long the condition must hold before the alert fires.
    pub(crate) for_: Duration,
    /// How long a firing alert stays firing after its condition stops holding.
    pub(crate) keep_firing_for: Duration,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The group's latest event crosses the threshold (and is not older than
    /// `stale_after`).
    Threshold { field: FieldRef, cmp: Cmp, stale_after: Duration, clear: Option<f64> },
    /// A value over a sliding window crosses the threshold.
    Aggregate(Aggregate),
    /// A group sent no matching event for this long. `expect` lists the groups
    /// (label values in `group_by` order) watched from the start; with it, events
    /// of other groups are not tracked, so made-up label values cannot crowd the
    /// real ones out. Without it, a group is watched once it has been seen.
    Absent { after: Duration, expect: Option<Vec<Vec<String>>> },
    /// The window's value is more than `factor` times its value over the
    /// `over` that precedes it.
    Baseline { aggregate: Aggregate, over: Duration, factor: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub(crate) func: Func,
    pub(crate) field: Option<FieldRef>,
    pub(crate) window: Duration,
    /// Unused by `baseline`, which compares against the longer window instead.
    pub(crate) cmp: Cmp,
    /// Fewer events in the window than this: the condition does not hold (a
    /// ratio of 1 out of 1 is not an error rate).
    pub(crate) min_events: f64,
    /// `ratio`: the events counted in the numerator.
    pub(crate) ratio_where: Vec<Condition>,
    /// Hysteresis: once firing, the condition holds until the value crosses this
    /// level (`clear_below` / `clear_above`) instead of the threshold itself.
    pub(crate) clear: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Func {
    Count,
    /// Events per second.
    Rate,
    /// Matching `where` / all.
    Ratio,
    Avg,
    Max,
    Quantile(f64),
}

impl Func {
    fn needs_field(self) -> bool {
        matches!(self, Func::Avg | Func::Max | Func::Quantile(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Above(f64),
    Below(f64),
}

impl Cmp {
    pub(crate) fn holds(self, value: f64) -> bool {
        match self {
            Cmp::Above(t) => value > t,
            Cmp::Below(t) => value < t,
        }
    }

    /// Whether the condition holds; a firing alert with a clear level holds
    /// until the value is past that level (hysteresis), so a value hovering
    /// around the threshold does not fire and resolve on every report.
    pub(crate) fn holds_while(self, value: f64, firing: bool, clear: Option<f64>) -> bool {
        match (firing, clear, self) {
            (true, Some(c), Cmp::Above(_)) => value > c,
            (true, Some(c), Cmp::Below(_)) => value < c,
            _ => self.holds(value),
        }
    }

    pub(crate) fn threshold(self) -> f64 {
        match self {
            Cmp::Above(t) | Cmp::Below(t) => t,
        }
    }
}

/// An annotation: text with `{{ name }}` placeholders for group labels, rule
/// labels, `value`, `threshold`, `rule` and `tier`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(pub Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Var(String),
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| format!("`{{{{` without `}}}}` in `{text}`"))?;
            let name = after[..close].trim().trim_start_matches('$').trim_start_matches("labels.");
            if !is_label_name(name) {
                return Err(format!("`{{{{{}}}}}` is not a placeholder name", &after[..close]));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    pub(crate) fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(&lookup(v).unwrap_or_default()),
            }
        }
        out
    }
}

/// Placeholders every annotation may use besides the labels.
pub(crate) const BUILTIN_VARS: [&str; 4] = ["value", "threshold", "rule", "tier"];
/// Labels the engine sets itself.
const RESERVED_LABELS: [&str; 2] = ["alertname", "severity"];
/// Rule files larger than this are refused (a rules directory is hand-written).
const MAX_RULES_PER_SET: usize = 10_000;

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The rule files of a path: the file itself, or a directory's `*.yaml`/`*.yml`
/// (not its subdirectories, where rule tests live), in name order.
pub(crate) fn rule_files(path: &Path) -> Result<Vec<PathBuf>, ConfigErrors> {
    let unreadable = |e: std::io::Error| {
        ConfigErrors(vec![ConfigError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            message: format!("cannot read the rules: {e}"),
        }])
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(unreadable)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(unreadable)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every rule under `path`; the errors of every file are reported together.
pub fn load(path: &Path) -> Result<Vec<Rule>, ConfigErrors> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for file in rule_files(path)? {
        let loaded = read_document(&file, "the rule file", true).and_then(|(text, name)| parse(&text, &name));
        match loaded {
            Ok(mut more) => rules.append(&mut more),
            Err(ConfigErrors(mut e)) => errors.append(&mut e),
        }
    }
    check_unique(&rules, &mut errors);
    match errors.is_empty() {
        true => Ok(rules),
        false => Err(ConfigErrors(errors)),
    }
}

/// Two rules with one name would overwrite each other's alerts (within a file,
/// `parse` reports it with the position).
fn check_unique(rules: &[Rule], errors: &mut Vec<ConfigError>) {
    let mut seen: BTreeMap<&str, &Rule> = BTreeMap::new();
    for rule in rules {
        if let Some(first) = seen.insert(&rule.name, rule) {
            errors.push(ConfigError {
                file: rule.file.clone(),
                line: rule.line,
                col: 1,
                message: format!("rule `{}` is already defined at {}:{}", rule.name, first.file, first.line),
            });
        }
    }
}

/// Parses one rule file.
pub fn parse(text: &str, file: &str) -> Result<Vec<Rule>, ConfigErrors> {
    parse_document(text, file, |root, cx| {
        let mut map = MapReader::new(root, "the rule file", cx)?;
        let list = map.node("rules");
        map.finish(cx);
        let Some(list) = list else {
            cx.error(root.pos, "the rule file needs a `rules:` list");
            return None;
        };
        let NodeKind::Seq(items) = &list.kind else {
            cx.error(list.pos, format!("`rules` must be a list, got {}", list.describe()));
            return None;
        };
        if items.len() > MAX_RULES_PER_SET {
            cx.error(list.pos, format!("more than {MAX_RULES_PER_SET} rules in one file"));
        }
        let rules: Vec<Rule> =
            items.iter().enumerate().filter_map(|(i, item)| decode_rule(item, i, cx)).collect();
        // Two rules with one name would overwrite each other's alerts.
        let mut names: BTreeMap<&str, Pos> = BTreeMap::new();
        for item in items {
            let NodeKind::Map(entries) = &item.kind else { continue };
            let Some((key, value)) = entries.iter().find(|(k, _)| k.name == "name") else { continue };
            let NodeKind::Scalar { text, .. } = &value.kind else { continue };
            if let Some(first) = names.insert(text, key.pos) {
                cx.error(key.pos, format!("rule `{text}` is already defined at line {}", first.line));
            }
        }
        Some(rules)
    })
}

fn decode_rule(node: &Node, index: usize, cx: &mut Diagnostics) -> Option<Rule> {
    let what = format!("rule {}", index + 1);
    let mut map = MapReader::new(node, &what, cx)?;
    let name: Option<String> = map.required("name", cx);
    if let Some(n) = &name {
        if !is_label_name(n) {
            cx.error(
                map.key_pos("name"),
                format!("rule name `{n}` must be letters, digits and _ (it becomes the `alertname` label)"),
            );
        }
    }
    let tiers = [("critical", Tier::Critical), ("warning", Tier::Warning), ("info", Tier::Info)];
    let tier = match map.node("tier") {
        Some(n) => one_of(n, &tiers, cx),
        None => {
            cx.error(map.pos(), format!("{what} is missing required key `tier`"));
            None
        }
    };
    let description: String = map.or("description", String::new(), cx);
    let (matcher, conditions) = match map.node("match") {
        Some(n) => decode_rule_match(n, cx)?,
        None => {
            cx.error(map.pos(), format!("{what} is missing required key `match`"));
            (MatchConfig::default(), Vec::new())
        }
    };
    let group_by = map.node("group_by").map(|n| decode_group_by(n, cx)).unwrap_or_default();
    let condition = match map.node("condition") {
        Some(n) => decode_condition(n, &group_by, cx),
        None => {
            cx.error(map.pos(), format!("{what} is missing required key `condition`"));
            None
        }
    };
    let for_ = map.or("for", Duration::ZERO, cx);
    let keep_firing_for = map.or("keep_firing_for", Duration::ZERO, cx);
    let labels: BTreeMap<String, String> = map.or("labels", BTreeMap::new(), cx);
    let label_pos = map.key_pos("labels");
    for key in labels.keys() {
        if !is_label_name(key) || RESERVED_LABELS.contains(&key.as_str()) {
            cx.error(
                label_pos,
                format!(
                    "`{key}` cannot be a label name here (letters, digits, _; not alertname or severity)"
                ),
            );
        }
        if group_by.iter().any(|(g, _)| g == key) {
            cx.error(label_pos, format!("label `{key}` is also a group_by label"));
        }
    }
    let annotations = match map.node("annotations") {
        Some(n) => decode_annotations(n, &group_by, &labels, cx),
        None => BTreeMap::new(),
    };
    map.finish(cx);
    Some(Rule {
        definition: Definition {
            name: name?,
            tier: tier?,
            matcher,
            conditions,
            group_by,
            condition: condition?,
            for_,
            keep_firing_for,
            labels,
            annotations,
        },
        description,
        file: cx.file().to_string(),
        line: node.pos.line,
    })
}

/// Most groups an `absent` rule may expect.
const MAX_EXPECTED: usize = 10_000;

/// An `absent` rule's expected groups, as label values in `group_by` order. An
/// item is a mapping of every group label to its value, or a plain value when the
/// rule is grouped by one label.
fn decode_expect(node: &Node, group_by: &[(String, FieldRef)], cx: &mut Diagnostics) -> Vec<Vec<String>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(node.pos, format!("expect must be a list, got {}", node.describe()));
        return Vec::new();
    };
    if items.len() > MAX_EXPECTED {
        cx.error(node.pos, format!("expect lists {} groups; at most {MAX_EXPECTED}", items.len()));
        return Vec::new();
    }
    let labels: Vec<&str> = group_by.iter().map(|(l, _)| l.as_str()).collect();
    let mut groups = Vec::with_capacity(items.len());
    for item in items {
        let values = match &item.kind {
            NodeKind::Scalar { text, .. } if labels.len() == 1 => Some(vec![text.clone()]),
            NodeKind::Map(_) => BTreeMap::<String, String>::decode(item, cx).and_then(|values| {
                let ordered: Option<Vec<String>> = labels.iter().map(|l| values.get(*l).cloned()).collect();
                ordered.filter(|_| values.len() == labels.len())
            }),
            _ => None,
        };
        match values {
            Some(values) => groups.push(values),
            None => cx.error(
                item.pos,
                format!(
                    "an expected group gives exactly the group_by labels ({}) as a mapping, or one plain value when there is one label",
                    labels.join(", ")
                ),
            ),
        }
    }
    groups
}

/// `match:` as the pipeline writes it, plus `where:` field tests.
fn decode_rule_match(node: &Node, cx: &mut Diagnostics) -> Option<(MatchConfig, Vec<Condition>)> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(node.pos, format!("match must be a mapping, got {}", node.describe()));
        return None;
    };
    let (wheres, rest): (Vec<_>, Vec<_>) = entries.iter().cloned().partition(|(k, _)| k.name == "where");
    let conditions = wheres.iter().flat_map(|(_, n)| decode_conditions(n, cx)).collect();
    let matcher = decode_match(&Node { kind: NodeKind::Map(rest), pos: node.pos }, cx)?;
    Some((matcher, conditions))
}

/// `group_by: [component, data.agent_id]` names each label after the field's last
/// key; `group_by: {agent: data.source_agent}` names them explicitly.
fn decode_group_by(node: &Node, cx: &mut Diagnostics) -> Vec<(String, FieldRef)> {
    let mut out: Vec<(String, FieldRef)> = Vec::new();
    let mut add = |label: String, pos: Pos, field: Option<FieldRef>, cx: &mut Diagnostics| {
        if !is_label_name(&label) || RESERVED_LABELS.contains(&label.as_str()) {
            cx.error(
                pos,
                format!("`{label}` cannot be a label name (letters, digits, _; not alertname or severity)"),
            );
        } else if out.iter().any(|(l, _)| *l == label) {
            cx.error(pos, format!("label `{label}` appears twice in group_by"));
        } else if let Some(field) = field {
            out.push((label, field));
        }
    };
    match &node.kind {
        NodeKind::Seq(items) => {
            for item in items {
                let Some(field) = field_ref(item, cx) else { continue };
                let label = match &field {
                    FieldRef::In(_, path) => path.last().cloned().unwrap_or_default(),
                    FieldRef::EventType => "event_type".into(),
                    FieldRef::Component => "component".into(),
                    FieldRef::Severity => "level".into(),
                    FieldRef::EventId => "event_id".into(),
                };
                add(label, item.pos, Some(field), cx);
            }
        }
        NodeKind::Map(entries) => {
            for (key, value) in entries {
                let field = field_ref(value, cx);
                add(key.name.clone(), key.pos, field, cx);
            }
        }
        NodeKind::Scalar { .. } => {
            cx.error(node.pos, "group_by is a list of fields, or a mapping of label: field");
        }
    }
    out
}

fn decode_annotations(
    node: &Node,
    group_by: &[(String, FieldRef)],
    labels: &BTreeMap<String, String>,
    cx: &mut Diagnostics,
) -> BTreeMap<String, Template> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(node.pos, format!("annotations must be a mapping, got {}", node.describe()));
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        let Some(text) = String::decode(value, cx) else { continue };
        match Template::parse(&text) {
            Ok(template) => {
                for part in &template.0 {
                    let Part::Var(var) = part else { continue };
                    let known = BUILTIN_VARS.contains(&var.as_str())
                        || group_by.iter().any(|(g, _)| g == var)
                        || labels.contains_key(var);
                    if !known {
                        let mut names: Vec<&str> = BUILTIN_VARS.to_vec();
                        names.extend(group_by.iter().map(|(g, _)| g.as_str()));
                        names.extend(labels.keys().map(String::as_str));
                        cx.error(
                            value.pos,
                            format!("unknown placeholder `{var}` (known: {})", names.join(", ")),
                        );
                    }
                }
                out.insert(key.name.clone(), template);
            }
            Err(e) => cx.error(value.pos, e),
        }
    }
    out
}

const AGGREGATES: [(&str, Func); 9] = [
    ("count", Func::Count),
    ("rate", Func::Rate),
    ("ratio", Func::Ratio),
    ("avg", Func::Avg),
    ("max", Func::Max),
    ("p50", Func::Quantile(0.50)),
    ("p90", Func::Quantile(0.90)),
    ("p95", Func::Quantile(0.95)),
    ("p99", Func::Quantile(0.99)),
];

/// `condition:` holds exactly one of threshold, an aggregate, absent or baseline.
fn decode_condition(node: &Node, group_by: &[(String, FieldRef)], cx: &mut Diagnostics) -> Option<Cond> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(node.pos, format!("condition must be a mapping, got {}", node.describe()));
        return None;
    };
    let names: Vec<&str> =
        ["threshold", "absent", "baseline"].into_iter().chain(AGGREGATES.iter().map(|(n, _)| *n)).collect();
    if entries.len() != 1 {
        cx.error(node.pos, format!("condition takes exactly one of {}", names.join(", ")));
        return None;
    }
    let (key, body) = &entries[0];
    match key.name.as_str() {
        "threshold" => {
            let mut map = MapReader::new(body, "threshold", cx)?;
            let field = match map.node("field") {
                Some(n) => field_ref(n, cx),
                None => {
                    cx.error(map.pos(), "threshold is missing required key `field`");
                    None
                }
            };
            let cmp = decode_cmp(&mut map, "threshold", cx);
            let stale_after = map.or("stale_after", Duration::from_secs(300), cx);
            map.finish(cx);
            let (cmp, clear) = cmp?;
            Some(Cond::Threshold { field: field?, cmp, stale_after, clear })
        }
        "absent" => {
            // `absent: 2m`, or `absent: {after: 2m, expect: [...]}`.
            let (after, expect) = match &body.kind {
                NodeKind::Map(_) => {
                    let mut map = MapReader::new(body, "absent", cx)?;
                    let after: Option<Duration> = map.required("after", cx);
                    let expect = map.node("expect").map(|n| decode_expect(n, group_by, cx));
                    map.finish(cx);
                    (after?, expect)
                }
                _ => (Duration::decode(body, cx)?, None),
            };
            if after.is_zero() {
                cx.error(body.pos, "absent needs a duration above zero");
            }
            Some(Cond::Absent { after, expect })
        }
        "baseline" => {
            let mut map = MapReader::new(body, "baseline", cx)?;
            let func = match map.node("of") {
                Some(n) => one_of(n, &AGGREGATES, cx),
                None => {
                    cx.error(map.pos(), "baseline is missing required key `of` (the aggregate compared)");
                    None
                }
            };
            let aggregate = decode_aggregate_fields(&mut map, func, false, "baseline", cx);
            let over: Option<Duration> = map.required("over", cx);
            let factor: Option<f64> = map.required("factor", cx);
            map.finish(cx);
            let (aggregate, over, factor) = (aggregate?, over?, factor?);
            if over <= aggregate.window {
                cx.error(body.pos, "baseline: `over` must be longer than `window`");
            }
            if factor <= 0.0 {
                cx.error(body.pos, "baseline: `factor` must be above zero");
            }
            Some(Cond::Baseline { aggregate, over, factor })
        }
        other => {
            let Some((_, func)) = AGGREGATES.iter().find(|(n, _)| *n == other) else {
                cx.error(key.pos, format!("unknown condition `{other}` (known: {})", names.join(", ")));
                return None;
            };
            let mut map = MapReader::new(body, other, cx)?;
            let aggregate = decode_aggregate_fields(&mut map, Some(*func), true, other, cx);
            map.finish(cx);
            aggregate.map(Cond::Aggregate)
        }
    }
}

fn decode_aggregate_fields(
    map: &mut MapReader<'_>,
    func: Option<Func>,
    needs_cmp: bool,
    what: &str,
    cx: &mut Diagnostics,
) -> Option<Aggregate> {
    let field = map.node("field").and_then(|n| field_ref(n, cx));
    let window: Option<Duration> = map.required("window", cx);
    let min_events = map.or("min_events", 1.0, cx);
    let where_node = map.node("where");
    let ratio_where = where_node.map(|n| decode_conditions(n, cx)).unwrap_or_default();
    let cmp = if needs_cmp { decode_cmp(map, what, cx) } else { Some((Cmp::Above(0.0), None)) };
    let func = func?;
    if func.needs_field() && field.is_none() {
        cx.error(map.pos(), format!("{what} needs `field` (the value aggregated)"));
        return None;
    }
    if !func.needs_field() && field.is_some() {
        cx.error(map.key_pos("field"), format!("{what} counts events and takes no `field`"));
    }
    if (func == Func::Ratio) != where_node.is_some() {
        cx.error(
            map.pos(),
            format!("{what}: `where` (the events counted as matching) belongs to ratio, and ratio needs it"),
        );
    }
    let window = window?;
    if window < Duration::from_secs(1) {
        cx.error(map.key_pos("window"), "window must be at least 1s");
    }
    let (cmp, clear) = cmp?;
    Some(Aggregate { func, field, window, cmp, min_events, ratio_where, clear })
}

/// `above`/`below`, and the optional hysteresis level on the safe side of it:
/// `clear_below` with `above`, `clear_above` with `below`.
fn decode_cmp(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<(Cmp, Option<f64>)> {
    let above: Option<f64> = map.optional("above", cx);
    let below: Option<f64> = map.optional("below", cx);
    let clear_below: Option<f64> = map.optional("clear_below", cx);
    let clear_above: Option<f64> = map.optional("clear_above", cx);
    let cmp = match (above, below) {
        (Some(a), None) => Cmp::Above(a),
        (None, Some(b)) => Cmp::Below(b),
        _ => {
            cx.error(map.pos(), format!("{what} takes exactly one of `above` or `below`"));
            return None;
        }
    };
    let clear = match (cmp, clear_below, clear_above) {
        (_, None, None) => None,
        (Cmp::Above(a), Some(c), None) if c <= a => Some(c),
        (Cmp::Below(b), None, Some(c)) if c >= b => Some(c),
        (Cmp::Above(a), Some(c), None) => {
            cx.error(
                map.key_pos("clear_below"),
                format!("clear_below ({c}) must not be above `above` ({a})"),
            );
            return None;
        }
        (Cmp::Below(b), None, Some(c)) => {
            cx.error(
                map.key_pos("clear_above"),
                format!("clear_above ({c}) must not be below `below` ({b})"),
            );
            return None;
        }
        (Cmp::Above(_), _, _) => {
            cx.error(
                map.pos(),
                format!("{what} with `above` takes `clear_below` (the level it resolves under)"),
            );
            return None;
        }
        (Cmp::Below(_), _, _) => {
            cx.error(
                map.pos(),
                format!("{what} with `below` takes `clear_above` (the level it resolves over)"),
            );
            return None;
        }
    };
    Some((cmp, clear))
}
