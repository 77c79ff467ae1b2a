//! micro-file: an embedded, persistent key-value store for micro on
//! [redb](https://docs.rs/redb): `store: { plugin: file, dir: /var/lib/myapp }`.
//!
//! One redb file per database (`{dir}/{database}.redb`), one redb table per table; records
//! keep their metadata and an absolute expiry, so data and TTLs survive restarts. See the
//! crate's README for options and decisions.

pub mod options;
mod record;
pub mod store;

pub use options::FileStoreOptions;
pub use store::FileStore;

/// The plugins of this crate: the `file` store.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new().with(store::plugin())
}
