//! micro-example-plugin: a micro plugin written as an out-of-tree author would, against the
//! contracts only (`micro-core`, `micro-derive`; no plugin crate, not the `micro` facade).
//!
//! - [`ExampleStore`]: a `store` plugin named `example`, every scope in one ordered map,
//!   with expiry and a limit on the size of a value ([`ExampleStoreOptions`]:
//!   `store: { plugin: example, max_value_size: 65536 }`). It passes micro-conformance's
//!   store suite (`tests/conformance.rs`).
//! - [`admin::StoreAdmin`]: a `#[micro_derive::service]` the plugin can host, to look into
//!   the store from another process.
//!
//! An application adds [`plugins()`] to its plugin table
//! (`ServiceBuilder::plugins(micro_example_plugin::plugins())` or `Plugins::extend`) and
//! picks it in its config with `store: { plugin: example }`.

pub mod admin;
pub mod options;
pub mod store;

pub use admin::{ScopeRequest, ScopeStats, StoreAdmin, StoreAdminClient, StoreAdminServer};
pub use options::ExampleStoreOptions;
pub use store::ExampleStore;

use micro_core::config::StoreConfig;
use micro_core::{Plugin, Plugins};
use std::sync::Arc;

/// The plugin's name in config: `store: { plugin: example }`.
pub const NAME: &str = "example";

/// The plugin-table entry of the `example` store: the default scope from the `store:`
/// section's `database` and `table`, the options from [`ExampleStoreOptions`], and the
/// store component's logger. Its feature is empty: no Cargo feature of the `micro` facade
/// compiles it in, the application does by depending on this crate.
pub fn plugin() -> Plugin {
    Plugin::store(NAME, "", |ctx| {
        let section: StoreConfig = ctx.options()?;
        let options: ExampleStoreOptions = ctx.options()?;
        let store = ExampleStore::from_config(&section, &options).with_logger(ctx.logger.clone());
        Ok(Arc::new(store))
    })
    .with_options::<ExampleStoreOptions>()
}

/// The plugins of this crate: the `example` store.
pub fn plugins() -> Plugins {
    Plugins::new().with(plugin())
}
