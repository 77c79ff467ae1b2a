//! Placeholder: replaced by the in-memory registry.

use micro_core::{Error, Plugin};

/// Unfinished placeholder: building this plugin fails with a clear error.
#[derive(Debug, Clone, Default)]
pub struct MemoryRegistry;

/// The plugin-table entry.
pub fn plugin() -> Plugin {
    Plugin::registry("memory", "memory", |_| {
        Err(Error::internal("go.micro.memory", "the memory registry is not written yet"))
    })
}
