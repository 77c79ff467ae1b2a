//! micro-memory: in-process plugins for every component that can live in one process:
//! registry (with TTL expiry), broker (queue groups), store (expiry, scopes), transport,
//! events (groups, offsets, ack) and sync (locks, leader election).
//!
//! State belongs to the plugin value: two `MemoryRegistry` values are two registries. Share
//! one value (it is cheap to clone) to let services in one process see each other.

pub mod broker;
pub mod events;
pub mod registry;
pub mod store;
pub mod sync;
pub mod transport;

pub use broker::MemoryBroker;
pub use events::MemoryEvents;
pub use registry::MemoryRegistry;
pub use store::MemoryStore;
pub use sync::MemorySync;
pub use transport::MemoryTransport;

use micro_core::Plugins;

/// The memory plugins of every component, for the plugin table.
pub fn plugins() -> Plugins {
    Plugins::new()
        .with(registry::plugin())
        .with(broker::plugin())
        .with(transport::plugin())
        .with(store::plugin())
        .with(events::plugin())
        .with(sync::plugin())
}
