//! What the host offers a plugin: its log and its counters. Natively (in a plugin's
//! own `cargo test`) the log goes to stderr and counters to a per-thread map that
//! [`crate::testing::counters`] reads.

/// Log levels of the host's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes one line to the service's log. The host rate-limits plugin logs.
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}

/// Adds `delta` to the plugin's counter `name` (on /metrics as
/// `synaptic_telemetry_plugin_reported_total{plugin, name}`).
pub fn count(name: &str, delta: u64) {
    imp::count(name, delta)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::bindings::synaptic::plugin::host::{self, Level as Wire};

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => Wire::Trace,
            Level::Debug => Wire::Debug,
            Level::Info => Wire::Info,
            Level::Warn => Wire::Warn,
            Level::Error => Wire::Error,
        };
        host::log(level, message);
    }

    pub fn count(name: &str, delta: u64) {
        host::count(name, delta);
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::Level;

    thread_local! {
        pub(crate) static COUNTERS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn log(level: Level, message: &str) {
        eprintln!("plugin {level:?}: {message}");
    }

    pub fn count(name: &str, delta: u64) {
        COUNTERS.with(|c| *c.borrow_mut().entry(name.to_string()).or_default() += delta);
    }
}
