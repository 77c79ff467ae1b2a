//! Placeholder: replaced by the in-memory transport.

use micro_core::{Error, Plugin};

/// Unfinished placeholder: building this plugin fails with a clear error.
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport;

/// The plugin-table entry.
pub fn plugin() -> Plugin {
    Plugin::transport("memory", "memory", |_| {
        Err(Error::internal("go.micro.memory", "the memory transport is not written yet"))
    })
}
