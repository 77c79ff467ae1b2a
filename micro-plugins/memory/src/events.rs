//! Placeholder: replaced by the in-memory events.

use micro_core::{Error, Plugin};

/// Unfinished placeholder: building this plugin fails with a clear error.
#[derive(Debug, Clone, Default)]
pub struct MemoryEvents;

/// The plugin-table entry.
pub fn plugin() -> Plugin {
    Plugin::events("memory", "memory", |_| {
        Err(Error::internal("go.micro.memory", "the memory events is not written yet"))
    })
}
