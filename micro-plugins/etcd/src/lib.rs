//! micro-etcd: micro on [etcd](https://etcd.io) v3: a registry (one key per node under
//! leases, watch) and a sync (locks on etcd's Lock API, leader election on its Election
//! API). Each is the plugin `etcd` of its section:
//!
//! ```yaml
//! registry: { plugin: etcd, addresses: [127.0.0.1:2379] }
//! sync: { plugin: etcd, addresses: [127.0.0.1:2379], timeout: 5s }
//! ```
//!
//! See the crate's README for the key layout and the decisions taken.

pub mod connection;
pub mod key;
mod lease;
pub mod options;
pub mod registry;
pub mod sync;

pub use connection::{Connector, Settings};
pub use options::{EtcdRegistryOptions, EtcdSyncOptions};
pub use registry::EtcdRegistry;
pub use sync::{EtcdLeader, EtcdSync};

/// The etcd plugins of every component this crate serves, for the plugin table.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new()
        .with(registry::plugin())
        .with(sync::plugin())
}
