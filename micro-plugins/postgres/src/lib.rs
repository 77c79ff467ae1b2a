//! micro-postgres: micro's store on [PostgreSQL](https://www.postgresql.org): a database is a
//! schema, a table is a table, a record is a row. The store is the plugin `postgres` of the
//! `store:` section:
//!
//! ```yaml
//! store: { plugin: postgres, addresses: [postgres://postgres@127.0.0.1:5432/postgres] }
//! ```
//!
//! See the crate's README for the layout and the decisions taken.

pub mod connection;
pub mod names;
pub mod store;

pub use connection::Connector;
pub use store::{PostgresStore, PostgresStoreOptions};

/// The postgres plugins of every component this crate serves, for the plugin table.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new().with(store::plugin())
}
