//! Write synaptic-telemetry plugins in Rust.
//!
//! A plugin is one type implementing [`Plugin`]: built once from its config, then
//! asked for a [`Verdict`] on each event (keep, drop, or replace). One line,
//! `export_plugin!(MyPlugin);`, generates the WebAssembly glue for the contract in
//! `plugins/wit/plugin.wit`; it compiles to nothing outside WebAssembly, so the
//! plugin's logic is tested natively with `cargo test` through [`testing::run`].
//!
//! ```
//! use synaptic_plugin_sdk::{Config, Event, Plugin, Severity, Verdict};
//!
//! struct DropDebug;
//!
//! impl Plugin for DropDebug {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(DropDebug)
//!     }
//!     fn process(&mut self, event: &Event<'_>) -> Verdict {
//!         match event.severity() {
//!             Some(s) if s <= Severity::Debug => Verdict::Drop,
//!             _ => Verdict::Keep,
//!         }
//!     }
//! }
//! synaptic_plugin_sdk::export_plugin!(DropDebug);
//! ```
//!
//! Build: `cargo build --release --target wasm32-wasip2`, then copy the `.wasm` into
//! the service's `plugins/` directory.

pub mod contract;
mod event;
pub mod field;
pub mod glob;
pub mod host;
pub mod sampling;
pub mod testing;

use serde_json::{Map, Value};

pub use contract::Verdict;
use contract::{ContractError, VerdictList};
pub use event::{Event, Severity};

/// A plugin: built by `init` once per instance, then called for every event.
pub trait Plugin: Sized {
    /// Builds the plugin from its `config` map in the pipeline file. An error
    /// rejects this version of the plugin; the host keeps the previous one.
    fn init(config: &Config) -> Result<Self, String>;

    /// The verdict on one event.
    fn process(&mut self, event: &Event<'_>) -> Verdict;

    /// The verdicts on a whole batch; override to work across events. An error
    /// fails the batch: the host dead-letters it (or passes it with `on_error: pass`).
    fn process_batch(&mut self, events: &[Event<'_>], verdicts: &mut Vec<Verdict>) -> Result<(), String> {
        verdicts.extend(events.iter().map(|event| self.process(event)));
        Ok(())
    }
}

impl Verdict {
    /// Replaces the event with a changed document.
    pub fn replace_json(doc: &Map<String, Value>) -> Verdict {
        // A map of JSON values always serializes.
        Verdict::Replace(serde_json::to_vec(doc).unwrap_or_default())
    }
}

/// The plugin's `config` map from the pipeline file.
#[derive(Debug, Clone, Default)]
pub struct Config(Map<String, Value>);

impl Config {
    /// Parses the JSON object the host passes to `init`.
    pub fn parse(json: &str) -> Result<Config, String> {
        if json.trim().is_empty() {
            return Ok(Config::default());
        }
        match serde_json::from_str(json) {
            Ok(Value::Object(map)) => Ok(Config(map)),
            Ok(_) => Err("plugin config must be a map".to_string()),
            Err(e) => Err(format!("plugin config is not valid JSON: {e}")),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("config.{key}: expected a string, got {other}")),
        }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("config.{key}: expected an integer >= 0, got {value}")),
        }
    }

    pub fn map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Runs one batch through a plugin: the contract's decoding and encoding around
/// [`Plugin::process_batch`]. The glue calls it; so does [`testing::run`].
pub fn run_batch<P: Plugin>(plugin: &mut P, data: &[u8], offsets: &[u32]) -> Result<VerdictList, String> {
    let raw = contract::events(data, offsets).map_err(|ContractError(e)| e)?;
    let events: Vec<Event<'_>> = raw.into_iter().map(Event::new).collect();
    let mut verdicts = Vec::with_capacity(events.len());
    plugin.process_batch(&events, &mut verdicts)?;
    if verdicts.len() != events.len() {
        return Err(format!("plugin gave {} verdicts for {} events", verdicts.len(), events.len()));
    }
    let mut list = VerdictList::with_capacity(events.len());
    for verdict in verdicts {
        list.push(verdict).map_err(|ContractError(e)| e)?;
    }
    Ok(list)
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_glue",
    });
}

/// Exports a [`Plugin`] type as the plugin's WebAssembly component. Expands to
/// nothing outside WebAssembly.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::synaptic::plugin::types::{Batch, Verdicts};

            ::std::thread_local! {
                static INSTANCE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct Glue;

            impl $crate::bindings::Guest for Glue {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    let config = $crate::Config::parse(&config)?;
                    let plugin = <$plugin as $crate::Plugin>::init(&config)?;
                    INSTANCE.with(|cell| *cell.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }

                fn process(batch: Batch) -> ::std::result::Result<Verdicts, ::std::string::String> {
                    INSTANCE.with(|cell| {
                        let mut cell = cell.borrow_mut();
                        let plugin = cell.as_mut().ok_or("process was called before init")?;
                        let list = $crate::run_batch(plugin, &batch.data, &batch.offsets)?;
                        ::std::result::Result::Ok(Verdicts {
                            codes: list.codes,
                            replacements: list.replacements,
                            replacement_ends: list.replacement_ends,
                        })
                    })
                }
            }

    $crate::bindings::__export_plugin_glue!(Glue with_types_in $crate::bindings);
        };
    };
}
