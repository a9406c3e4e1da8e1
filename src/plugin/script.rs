//! Rhai plugins: a script on the same contract as WebAssembly plugins. It defines
//! `process(event)`, returning the event (changed or not) to keep it, or `()` to drop
//! it — or `true` / `false` to keep it unchanged or drop it without the cost of
//! comparing the event — and optionally `init(config)`, whose result becomes `this`
//! inside `process` (without `init`, `this` is the config map).
//!
//! Scripts get the helpers the standard plugins are built on, implemented once in
//! the SDK so a script decides exactly as the Wasm plugin does: `glob(pattern)` with
//! `.matches(text)`, `regex(pattern)` with `.is_match(text)`, `sample_keep(key,
//! rate)`, `sample_fraction(key)`, `severity_rank(name)` (TRACE 0 … FATAL 5, -1 for
//! anything else), `json_text(value)` (a scalar as JSON writes it), and on the
//! event `value_at("data.x")` / `text_at("data.x")` (the scalar at a dotted path,
//! as it is or as text; `()` when absent or not a scalar), and `scalar_eq(a, b)`
//! (numbers by value, strings and booleans exactly).
//!
//! The engine is raw, with only the packages a filter needs (no clock, no file
//! system, no modules), `eval` disabled, and limits on operations, call depth,
//! expression depth and string, array and map sizes; a batch also has a deadline.
//! Each script is compiled once per version.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, LogicPackage, MoreStringPackage,
    Package,
};
use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, Scope, AST};
use serde_json::Value;
use synaptic_plugin_sdk::contract::{events, BatchBuffer, Verdict, VerdictList};

use super::rhai_json;
use super::wasm::InstanceSettings;
use super::{Code, Instance, PluginError};

/// Operations one `process` call may take.
const MAX_OPERATIONS: u64 = 1_000_000;
const MAX_CALL_LEVELS: usize = 32;
const MAX_EXPR_DEPTH: usize = 64;
const MAX_FUNCTION_EXPR_DEPTH: usize = 32;
const MAX_STRING_BYTES: usize = 1 << 20;
const MAX_ARRAY_LEN: usize = 100_000;
const MAX_MAP_LEN: usize = 10_000;

/// A compiled script with its own engine (the engine carries the batch deadline).
pub(crate) struct RhaiCode {
    engine: Arc<Engine>,
    ast: Arc<AST>,
    script: String,
    has_init: bool,
    /// Nanoseconds after `epoch` at which the running call must stop.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    settings: Arc<InstanceSettings>,
}

impl RhaiCode {
    /// Compiles a script; `script` names it in messages (`filter.rhai`).
    pub(crate) fn compile(
        source: &[u8],
        script: &str,
        settings: Arc<InstanceSettings>,
    ) -> Result<RhaiCode, PluginError> {
        let text = std::str::from_utf8(source)
            .map_err(|e| PluginError::Compile(format!("{script} is not UTF-8 text: {e}")))?;
        let epoch = Instant::now();
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let engine = engine(epoch, deadline.clone());
        let ast = engine.compile(text).map_err(|e| {
            let position = e.position();
            PluginError::Compile(format!(
                "{script}:{}:{}: {}",
                position.line().unwrap_or(0),
                position.position().unwrap_or(0),
                e.0
            ))
        })?;
        let arity = |name: &str| ast.iter_functions().find(|f| f.name == name).map(|f| f.params.len());
        match arity("process") {
            Some(1) => {}
            Some(n) => {
                return Err(PluginError::Compile(format!(
                    "{script}: process must take one parameter (the event), not {n}"
                )))
            }
            None => {
                return Err(PluginError::Compile(format!(
                    "{script}: the script defines no `fn process(event)`"
                )))
            }
        }
        let has_init = match arity("init") {
            None => false,
            Some(1) => true,
            Some(n) => {
                return Err(PluginError::Compile(format!(
                    "{script}: init must take one parameter (the config), not {n}"
                )))
            }
        };
        Ok(RhaiCode {
            engine: Arc::new(engine),
            ast: Arc::new(ast),
            script: script.to_string(),
            has_init,
            deadline,
            epoch,
            settings,
        })
    }

    fn arm_deadline(&self, budget: Duration) {
        let at = (self.epoch.elapsed() + budget).as_nanos();
        self.deadline.store(u64::try_from(at).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn past_deadline(&self) -> bool {
        past_deadline(self.epoch, &self.deadline)
    }

    /// A script error as a plugin error, naming `script:line:col`.
    fn error(&self, error: Box<EvalAltResult>) -> PluginError {
        // An error inside a script function arrives wrapped in one layer per call;
        // the innermost error carries the line that failed.
        let mut error = error;
        while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = *error {
            error = inner;
        }
        let position = error.take_position();
        // Limits hit between statements carry no position.
        let at = match (position.line(), position.position()) {
            (Some(line), Some(col)) => format!("{}:{line}:{col}", self.script),
            (Some(line), None) => format!("{}:{line}", self.script),
            _ => self.script.clone(),
        };
        match *error {
            EvalAltResult::ErrorTerminated(..) => PluginError::Timeout(self.settings.deadline),
            EvalAltResult::ErrorTooManyOperations(..) => {
                PluginError::Trap(format!("{at}: over the limit of {MAX_OPERATIONS} operations per event"))
            }
            EvalAltResult::ErrorStackOverflow(..) => {
                PluginError::Trap(format!("{at}: over the limit of {MAX_CALL_LEVELS} nested calls"))
            }
            ref other => PluginError::Trap(format!("{at}: {other}")),
        }
    }
}

/// A raw engine with the packages a filter needs and every limit set.
fn engine(epoch: Instant, deadline: Arc<AtomicU64>) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(CorePackage::new().as_shared_module());
    engine.register_global_module(LogicPackage::new().as_shared_module());
    engine.register_global_module(BasicMathPackage::new().as_shared_module());
    engine.register_global_module(BasicArrayPackage::new().as_shared_module());
    engine.register_global_module(BasicMapPackage::new().as_shared_module());
    engine.register_global_module(MoreStringPackage::new().as_shared_module());
    register_helpers(&mut engine);
    engine.disable_symbol("eval");
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FUNCTION_EXPR_DEPTH)
        .set_max_string_size(MAX_STRING_BYTES)
        .set_max_array_size(MAX_ARRAY_LEN)
        .set_max_map_size(MAX_MAP_LEN)
        // Interning property names costs more than it saves on short-lived events
        // (measured: sample.rhai 12% faster without).
        .set_max_strings_interned(0);
    // A batch past its deadline is stopped. The clock is read every 256 operations:
    // reading it on every one would cost more than the script.
    engine.on_progress(move |operations| {
        (operations % 256 == 0 && past_deadline(epoch, &deadline)).then_some(Dynamic::UNIT)
    });
    engine
}

/// Whether the clock is past the deadline, stored as nanoseconds after `epoch`.
fn past_deadline(epoch: Instant, deadline: &AtomicU64) -> bool {
    let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    now > deadline.load(Ordering::Relaxed)
}

/// The helpers scripts share with the Wasm plugins (see the module doc).
fn register_helpers(engine: &mut Engine) {
    use synaptic_plugin_sdk::{glob::Glob, sampling};
    engine
        .register_type_with_name::<Glob>("Glob")
        .register_fn("glob", |pattern: &str| Glob::new(pattern))
        .register_fn("matches", |glob: &mut Glob, text: &str| glob.matches(text))
        .register_type_with_name::<regex::Regex>("Regex")
        .register_fn("regex", |pattern: &str| -> Result<regex::Regex, Box<EvalAltResult>> {
            regex::Regex::new(pattern).map_err(|e| format!("regex {pattern:?}: {e}").into())
        })
        .register_fn("is_match", |regex: &mut regex::Regex, text: &str| regex.is_match(text))
        .register_fn("sample_fraction", |key: &str| sampling::fraction(key))
        .register_fn("sample_keep", |key: &str, rate: f64| sampling::keep(key, rate))
        .register_fn("severity_rank", severity_rank)
        .register_fn("scalar_eq", scalar_eq)
        .register_fn("json_text", json_text)
        .register_fn("severity_rank", |value: Dynamic| {
            value.into_immutable_string().ok().map_or(-1, |name| severity_rank(&name))
        })
        // Methods on the event map (`event.value_at("data.task_id")`): native, and
        // reading the map in place, where a script function would walk it slower.
        .register_fn("value_at", |map: &mut rhai::Map, path: &str| scalar_at(map, path))
        .register_fn("text_at", |map: &mut rhai::Map, path: &str| {
            let value = scalar_at(map, path);
            if value.is_unit() {
                value
            } else {
                Dynamic::from(json_text(value))
            }
        });
}

/// The scalar at a dotted path of a map; `()` when absent, null, a map or an array.
fn scalar_at(map: &rhai::Map, path: &str) -> Dynamic {
    let (first, rest) = match path.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    let Some(value) = map.get(first) else { return Dynamic::UNIT };
    match rest {
        Some(rest) => value.as_map_ref().map_or(Dynamic::UNIT, |inner| scalar_at(&inner, rest)),
        None if value.is_map() || value.is_array() => Dynamic::UNIT,
        None => value.clone(),
    }
}

/// Numbers by value (`1` equals `1.0`), strings and booleans exactly, nothing
/// across types: the filter's `equals`.
fn scalar_eq(a: Dynamic, b: Dynamic) -> bool {
    let number = |v: &Dynamic| v.as_int().map(|i| i as f64).or_else(|_| v.as_float()).ok();
    if let (Some(x), Some(y)) = (number(&a), number(&b)) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_bool(), b.as_bool()) {
        return x == y;
    }
    match (a.into_immutable_string(), b.into_immutable_string()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// TRACE 0 … FATAL 5; -1 for anything else.
fn severity_rank(name: &str) -> i64 {
    // The enum is declared in rank order.
    synaptic_plugin_sdk::Severity::parse(name).map_or(-1, |s| s as i64)
}

/// A scalar as the SDK's field view renders it (`Scalar::text`): strings as they
/// are, integers and booleans as JSON writes them, floats as Rust displays them.
fn json_text(value: Dynamic) -> String {
    if let Some(s) = value.clone().try_cast::<rhai::ImmutableString>() {
        return s.to_string();
    }
    if let Ok(n) = value.as_int() {
        return n.to_string();
    }
    if let Ok(f) = value.as_float() {
        return f.to_string();
    }
    if let Ok(b) = value.as_bool() {
        return b.to_string();
    }
    String::new()
}

impl Code for RhaiCode {
    fn runtime(&self) -> &'static str {
        "rhai"
    }

    fn start(&self) -> Result<Box<dyn Instance>, PluginError> {
        let config = rhai::serde::to_dynamic(Value::Object(
            serde_json::from_str(&self.settings.init_config).unwrap_or_default(),
        ))
        .map_err(|e| PluginError::Init(format!("config: {e}")))?;
        let this = if self.has_init {
            self.arm_deadline(self.settings.deadline.saturating_mul(10).max(Duration::from_secs(1)));
            let mut scope = Scope::new();
            self.engine.call_fn::<Dynamic>(&mut scope, &self.ast, "init", (config,)).map_err(
                |e| match self.error(e) {
                    PluginError::Trap(message) => PluginError::Init(message),
                    other => other,
                },
            )?
        } else {
            config
        };
        Ok(Box::new(RhaiInstance { code: self.clone_parts(), this, scope: Scope::new() }))
    }
}

impl RhaiCode {
    fn clone_parts(&self) -> RhaiCode {
        RhaiCode {
            engine: self.engine.clone(),
            ast: self.ast.clone(),
            script: self.script.clone(),
            has_init: self.has_init,
            deadline: self.deadline.clone(),
            epoch: self.epoch,
            settings: self.settings.clone(),
        }
    }
}

struct RhaiInstance {
    code: RhaiCode,
    this: Dynamic,
    scope: Scope<'static>,
}

impl Instance for RhaiInstance {
    fn process(&mut self, batch: &mut BatchBuffer) -> Result<VerdictList, PluginError> {
        let code = &self.code;
        let events = events(&batch.data, &batch.offsets).map_err(|e| PluginError::Contract(e.0))?;
        let deadline = code.settings.batch_deadline(events.len());
        code.arm_deadline(deadline);
        let started = std::time::Instant::now();
        let result = self.process_events(events, deadline).map_err(|e| match e {
            PluginError::Timeout(_) => PluginError::Timeout(deadline),
            other => other,
        });
        self.code
            .settings
            .metrics
            .deadline_used
            .observe(started.elapsed().as_secs_f64() / deadline.as_secs_f64());
        result
    }
}

impl RhaiInstance {
    fn process_events(&mut self, events: Vec<&[u8]>, deadline: Duration) -> Result<VerdictList, PluginError> {
        let code = &self.code;
        let mut list = VerdictList::with_capacity(events.len());
        for (i, raw) in events.into_iter().enumerate() {
            // Calls shorter than the engine's check interval never look at the clock:
            // the batch's deadline is also checked between events.
            if i % 64 == 63 && code.past_deadline() {
                return Err(PluginError::Timeout(deadline));
            }
            // Straight from the bytes to Rhai's values: no intermediate document.
            let event = rhai_json::from_json(raw)
                .map_err(|e| PluginError::Contract(format!("event is not JSON: {e}")))?;
            let options = CallFnOptions::new().bind_this_ptr(&mut self.this).eval_ast(false);
            let result = code
                .engine
                .call_fn_with_options::<Dynamic>(options, &mut self.scope, &code.ast, "process", (event,))
                .map_err(|e| code.error(e))?;
            let verdict = if result.is_unit() {
                Verdict::Drop
            } else if let Ok(keep) = result.as_bool() {
                if keep {
                    Verdict::Keep
                } else {
                    Verdict::Drop
                }
            } else if result.is_map() {
                // Unchanged events are kept as they came, not re-encoded; a field the
                // bytes do not have (a stamp) proves a change without parsing them.
                let unchanged = !rhai_json::has_new_field(&result, raw) && {
                    let original: Value = serde_json::from_slice(raw)
                        .map_err(|e| PluginError::Contract(format!("event is not JSON: {e}")))?;
                    rhai_json::same_value(&result, &original)
                };
                if unchanged {
                    Verdict::Keep
                } else {
                    Verdict::Replace(serde_json::to_vec(&result).map_err(|e| {
                        PluginError::Guest(format!(
                            "{}: the event returned cannot be written as JSON: {e}",
                            code.script
                        ))
                    })?)
                }
            } else {
                return Err(PluginError::Guest(format!(
                    "{}: process returned a {}; expected the event (a map), true, false or ()",
                    code.script,
                    result.type_name()
                )));
            };
            list.push(verdict).map_err(|e| PluginError::Contract(e.0))?;
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use synaptic_plugin_sdk::contract::VerdictRef;

    use super::*;
    use crate::plugin::Grants;
    use crate::telemetry::Telemetry;

    fn settings(config: &str) -> Arc<InstanceSettings> {
        Arc::new(InstanceSettings {
            plugin: "script".into(),
            init_config: config.to_string(),
            deadline: Duration::from_secs(5),
            deadline_per_event: Duration::ZERO,
            memory: 64 << 20,
            grants: Grants::default(),
            metrics: crate::plugin::PluginMetrics::register(&Telemetry::new(), "script"),
        })
    }

    fn run(source: &str, config: &str, events: &[&str]) -> Result<Vec<Verdict>, PluginError> {
        let code = RhaiCode::compile(source.as_bytes(), "test.rhai", settings(config))?;
        let mut instance = code.start()?;
        let mut batch = BatchBuffer::default();
        batch.clear();
        for event in events {
            batch.push(event.as_bytes()).map_err(|e| PluginError::Contract(e.0))?;
        }
        let list = instance.process(&mut batch)?;
        let verdicts = list.read(events.len()).map_err(|e| PluginError::Contract(e.0))?;
        Ok(verdicts.into_iter().map(VerdictRef::to_verdict).collect())
    }

    const EVENTS: [&str; 3] = [
        r#"{"event_type":"a","severity":"DEBUG","tags":{}}"#,
        r#"{"event_type":"x.change","severity":"INFO","tags":{}}"#,
        r#"{"event_type":"b","severity":"WARN","tags":{"k":"v"}}"#,
    ];

    #[test]
    fn a_script_keeps_changes_and_drops_with_its_config_as_this() {
        let source = r#"
            fn process(event) {
                if event.severity == "DEBUG" { return (); }
                if event.event_type == "x.change" { event.tags.seen = this.mark; }
                event
            }"#;
        let verdicts = run(source, r#"{"mark":"yes"}"#, &EVENTS).expect("runs");
        assert_eq!(verdicts[0], Verdict::Drop);
        assert_eq!(verdicts[2], Verdict::Keep, "an unchanged event is kept, not re-encoded");
        let Verdict::Replace(bytes) = &verdicts[1] else { panic!("expected a replacement: {verdicts:?}") };
        let doc: Value = serde_json::from_slice(bytes).expect("JSON");
        assert_eq!(doc["tags"]["seen"], "yes");
    }

    #[test]
    fn init_builds_this() {
        let source = r#"
            fn init(config) { #{ mark: config.mark + "!" } }
            fn process(event) { event.tags.mark = this.mark; event }"#;
        let verdicts = run(source, r#"{"mark":"m"}"#, &EVENTS[..1]).expect("runs");
        let Verdict::Replace(bytes) = &verdicts[0] else { panic!("expected a replacement") };
        assert!(String::from_utf8_lossy(bytes).contains(r#""mark":"m!""#));
    }

    #[test]
    fn an_endless_loop_a_huge_string_and_deep_recursion_are_stopped_with_clear_errors() {
        // Limits hit between statements carry no position; other errors name the line.
        let cases = [
            (
                "fn process(event) {\n  loop { }\n}",
                "test.rhai",
                "over the limit of 1000000 operations per event",
            ),
            ("fn process(event) {\n  let s = \"x\";\n  loop { s += s; }\n}", "test.rhai", "too large"),
            (
                "fn down(n) { down(n + 1) }\nfn process(event) { down(0) }",
                "test.rhai",
                "over the limit of 32 nested calls",
            ),
            // A plain runtime error names its line and column.
            ("fn process(event) {\n  event.tags + 1\n}", "test.rhai:2:", "Function not found"),
        ];
        for (source, at, what) in cases {
            let error = run(source, "{}", &EVENTS[..1]).expect_err("stopped").to_string();
            assert!(error.contains(at) && error.contains(what), "{source}: {error}");
        }
    }

    #[test]
    fn bad_scripts_are_rejected_at_compile_time_with_positions() {
        let cases = [
            ("fn process(event) {\n  let = 1;\n}", "test.rhai:2:"),
            ("fn process(event) { eval(\"1\") }", "test.rhai:1:"),
            ("fn other(event) { event }", "defines no `fn process(event)`"),
            ("fn process(a, b) { a }", "process must take one parameter"),
        ];
        for (source, wanted) in cases {
            let error =
                RhaiCode::compile(source.as_bytes(), "test.rhai", settings("{}")).err().expect("rejected");
            assert!(matches!(error, PluginError::Compile(_)), "{source}: {error}");
            assert!(error.to_string().contains(wanted), "{source}: {error}");
        }
    }

    #[test]
    fn the_standard_scripts_reject_bad_config_as_their_wasm_twins_do() {
        let cases = [
            ("sample.rhai", r#"{"ratez":{}}"#, "config.ratez: unknown key"),
            (
                "sample.rhai",
                r#"{"rates":{"task.*":2}}"#,
                "config.rates.task.*: expected a rate between 0 and 1",
            ),
            (
                "sample.rhai",
                r#"{"rules":[{"event_type":"a","rate":0.5,"keyz":"x"}]}"#,
                "config.rules[0].keyz",
            ),
            ("sample.rhai", r#"{"always_keep":"LOUD"}"#, "config.always_keep"),
            ("filter.rhai", r#"{"types":["a"]}"#, "config.types: unknown key"),
            ("filter.rhai", r#"{"action":"keep-ish"}"#, "config.action"),
            ("filter.rhai", r#"{"min_severity":"LOUD"}"#, "config.min_severity"),
        ];
        for (script, config, wanted) in cases {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins").join(script);
            let source = std::fs::read(&path).expect("the script is checked in");
            let code = RhaiCode::compile(&source, script, settings(config)).expect("compiles");
            let error = code.start().err().expect("config rejected");
            assert!(matches!(error, PluginError::Init(_)), "{script} {config}: {error}");
            assert!(error.to_string().contains(wanted), "{script} {config}: {error}");
        }
    }

    #[test]
    fn a_batch_past_its_deadline_is_stopped() {
        let mut slow = (*settings("{}")).clone();
        slow.deadline = Duration::from_millis(50);
        // Within the per-event operations limit, but 200 of them take far longer than 50ms.
        let source = "fn process(event) { let n = 0; while n < 150000 { n += 1; } event }";
        let code = RhaiCode::compile(source.as_bytes(), "slow.rhai", Arc::new(slow)).expect("compiles");
        let mut instance = code.start().expect("starts");
        let mut batch = BatchBuffer::default();
        batch.clear();
        for _ in 0..200 {
            batch.push(EVENTS[0].as_bytes()).expect("small");
        }
        let error = instance.process(&mut batch).expect_err("stopped at the deadline");
        assert!(matches!(error, PluginError::Timeout(d) if d == Duration::from_millis(50)), "{error}");
    }
}
