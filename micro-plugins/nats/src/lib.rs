//! micro-nats: micro on [NATS](https://nats.io): registry, broker and transport on core
//! NATS, events on JetStream streams, store on JetStream key-value buckets, and the NATS
//! service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`) for every service registered with
//! the nats registry. Every component is the plugin `nats` of its section:
//!
//! ```yaml
//! registry: { plugin: nats, addresses: [nats://127.0.0.1:4222] }
//! broker: { plugin: nats }
//! ```
//!
//! See the crate's README for the subjects used and the decisions taken.

pub mod broker;
pub mod connection;
mod escape;
pub mod events;
pub mod registry;
pub mod service_api;
pub mod store;
pub mod transport;

pub use broker::NatsBroker;
pub use connection::Connector;
pub use events::NatsEvents;
pub use registry::NatsRegistry;
pub use service_api::ServiceApi;
pub use store::NatsStore;
pub use transport::{NatsTransport, NatsTransportOptions};

/// The nats plugins of every component this crate serves, for the plugin table.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new()
        .with(registry::plugin())
        .with(broker::plugin())
        .with(transport::plugin())
        .with(store::plugin())
        .with(events::plugin())
}
