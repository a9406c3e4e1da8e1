//! Reading one field of an event's bytes without building its document. The walk
//! lives in the plugin SDK, so the host and its plugins read fields the same way.

pub(crate) use synaptic_plugin_sdk::field::find_text;
