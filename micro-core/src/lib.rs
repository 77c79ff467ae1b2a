//! micro-core: the contracts of micro, a framework for building and running microservices.
//!
//! One module per component (registry, selector, transport, codec, client, server, broker,
//! store, events, sync, auth, config, logger), plus errors, call context, the plugin table and
//! the service builder. No plugins live here and nothing here is global: every piece of state
//! belongs to a value the application builds.

#[macro_use]
mod option_struct;
pub mod auth;
pub mod backoff;
pub use micro_catalog as catalog;
pub mod broker;
pub mod client;
pub mod codec;
pub mod config;
pub mod context;
pub mod error;
pub mod events;
pub mod in_process;
pub mod logger;
mod macro_support;
pub mod middleware;
pub mod plugin;
pub mod registry;
mod repeated_keys;
pub mod schema;
pub mod selector;
pub mod server;
#[cfg(feature = "service")]
pub mod service;
pub mod store;
pub mod streaming;
pub mod sync;
pub mod transport;

pub use context::{Context, Metadata};

use std::sync::Arc;

/// A service's RPC client, as a field of a `#[derive(micro::Wire)]` struct.
pub type Client = Arc<dyn client::Client>;
/// A broker handle.
pub type Broker = Arc<dyn broker::Broker>;
/// A registry handle.
pub type Registry = Arc<dyn registry::Registry>;
/// A store handle.
pub type Store = Arc<dyn store::Store>;
/// An event streams handle.
pub type Events = Arc<dyn events::Events>;
/// An auth handle.
pub type Auth = Arc<dyn auth::Auth>;
/// A transport handle.
pub type Transport = Arc<dyn transport::Transport>;
/// A selector handle.
pub type Selector = Arc<dyn selector::Selector>;
/// A server handle.
pub type Server = Arc<dyn server::Server>;
/// A sync (locks, leaders) handle; not at the crate root, where it would shadow `std`'s
/// `Sync` for glob imports.
pub type SyncHandle = Arc<dyn sync::Sync>;
pub use error::{Error, ErrorKind, Result};
pub use plugin::{Components, Plugin, PluginContext, Plugins};
#[cfg(feature = "service")]
pub use service::{BuildError, Built, NoPlugins, PluginSource, Service, ServiceBuilder};
pub use streaming::Streaming;

/// Re-exports for plugin crates and generated code (`#[micro::service]`,
/// `#[micro::subscriber]` and `#[derive(Component)]` name everything they use through here
/// or the contract modules); not a stable API.
#[doc(hidden)]
pub mod __private {
    /// Helpers of the code `#[micro::service]` generates.
    pub mod service {
        pub use crate::macro_support::*;
    }
    pub use crate::{
        Context, Error, Result, Streaming, client, codec, in_process, in_process as local,
        registry, schema, server,
    };
    pub use async_trait::async_trait;
    pub use bytes::Bytes;
    pub use futures;
    pub use schemars;
    pub use serde;
    pub use serde_json;
    pub use tokio;
    pub use tracing;
}
