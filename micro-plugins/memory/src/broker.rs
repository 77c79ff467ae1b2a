//! Placeholder: replaced by the in-memory broker.

use micro_core::{Error, Plugin};

/// Unfinished placeholder: building this plugin fails with a clear error.
#[derive(Debug, Clone, Default)]
pub struct MemoryBroker;

/// The plugin-table entry.
pub fn plugin() -> Plugin {
    Plugin::broker("memory", "memory", |_| {
        Err(Error::internal("go.micro.memory", "the memory broker is not written yet"))
    })
}
