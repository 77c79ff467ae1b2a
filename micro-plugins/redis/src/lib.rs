//! micro-redis: micro on [Redis](https://redis.io): store (scopes as key prefixes, TTL,
//! SCAN listing), broker (pub/sub, queue groups), events on Streams (consumer groups, XACK,
//! claims after ack_wait) and sync (locks, leader election). Every component is the plugin
//! `redis` of its section:
//!
//! ```yaml
//! store: { plugin: redis, addresses: [redis://127.0.0.1:6379] }
//! ```
//!
//! See the crate's README for the key layout and the decisions taken.

pub mod broker;
pub mod connection;
pub mod events;
pub mod store;
mod stream_entry;
pub mod sync;

pub use broker::{RedisBroker, RedisBrokerOptions};
pub use connection::Connector;
pub use events::RedisEvents;
pub use store::RedisStore;
pub use sync::{RedisLeader, RedisSync};

/// The redis plugins of every component this crate serves, for the plugin table.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new()
        .with(broker::plugin())
        .with(events::plugin())
        .with(store::plugin())
        .with(sync::plugin())
}
