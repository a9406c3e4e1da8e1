//! Shell-style globs for event types and components; the SDK's, so the host, the
//! standard plugins and Rhai scripts (`glob(pattern)`) match exactly alike.

pub(crate) use synaptic_plugin_sdk::glob::Glob;
