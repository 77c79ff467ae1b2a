//! Placeholder: replaced by the in-memory sync.

use micro_core::{Error, Plugin};

/// Unfinished placeholder: building this plugin fails with a clear error.
#[derive(Debug, Clone, Default)]
pub struct MemorySync;

/// The plugin-table entry.
pub fn plugin() -> Plugin {
    Plugin::sync("memory", "memory", |_| {
        Err(Error::internal("go.micro.memory", "the memory sync is not written yet"))
    })
}
