//! Placeholder: replaced by the in-memory store.

use micro_core::{Error, Plugin};

/// Unfinished placeholder: building this plugin fails with a clear error.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore;

/// The plugin-table entry.
pub fn plugin() -> Plugin {
    Plugin::store("memory", "memory", |_| {
        Err(Error::internal("go.micro.memory", "the memory store is not written yet"))
    })
}
