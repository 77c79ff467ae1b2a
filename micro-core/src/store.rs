//! Key-value storage with database and table scopes, prefix/suffix reads, limit/offset and
//! expiry, as go-micro's `store.Store`.

pub mod stored;

use crate::Result;
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// Free-form metadata kept with the value.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// On write: time to live (used when the write options give none). On read: the time
    /// left before the record expires; `None` = it does not expire.
    #[serde(default)]
    pub expiry: Option<Duration>,
}

impl Record {
    /// A record with the given key and value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Record {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }
    }
}

/// Which database and table an operation works on; empty = the store's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Database name.
    pub database: String,
    /// Table name.
    pub table: String,
}

impl Scope {
    /// A scope naming both parts.
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        Scope {
            database: database.into(),
            table: table.into(),
        }
    }

    /// This scope with empty parts filled from `defaults`.
    pub fn or(&self, defaults: &Scope) -> Scope {
        let pick = |a: &String, b: &String| if a.is_empty() { b.clone() } else { a.clone() };
        Scope {
            database: pick(&self.database, &defaults.database),
            table: pick(&self.table, &defaults.table),
        }
    }
}

option_struct! {
    /// Options of [`Store::read`].
    #[derive(Debug, Clone, Default)]
    pub struct ReadOptions {
        /// Database and table.
        pub scope: Scope,
        /// Treat the key as a prefix: every key starting with it.
        pub prefix: bool,
        /// Treat the key as a suffix: every key ending with it (with `prefix`, both must hold).
        pub suffix: bool,
        /// At most this many records (`0` = no limit).
        pub limit: usize,
        /// Skip this many matching records first (in key order).
        pub offset: usize,
    }
}

option_struct! {
    /// Options of [`Store::write`].
    #[derive(Debug, Clone, Default)]
    pub struct WriteOptions {
        /// Database and table.
        pub scope: Scope,
        /// Time to live; overrides the record's own `expiry`.
        pub ttl: Option<Duration>,
    }
}

option_struct! {
    /// Options of [`Store::delete`].
    #[derive(Debug, Clone, Default)]
    pub struct DeleteOptions {
        /// Database and table.
        pub scope: Scope,
    }
}

option_struct! {
    /// Options of [`Store::list`].
    #[derive(Debug, Clone, Default)]
    pub struct ListOptions {
        /// Database and table.
        pub scope: Scope,
        /// Only keys starting with this.
        pub prefix: Option<String>,
        /// Only keys ending with this.
        pub suffix: Option<String>,
        /// At most this many keys (`0` = no limit).
        pub limit: usize,
        /// Skip this many matching keys first (in key order).
        pub offset: usize,
    }
}

/// A key-value store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Plugin name, e.g. `file`.
    fn name(&self) -> &str;
    /// Records matching `key` (exactly, or as prefix/suffix), in key order. An exact read of
    /// a missing or expired key is a 404 error; a prefix/suffix read may return none.
    async fn read(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>>;
    /// Writes (or replaces) a record.
    async fn write(&self, record: Record, options: WriteOptions) -> Result<()>;
    /// Deletes a key; deleting a missing key is not an error.
    async fn delete(&self, key: &str, options: DeleteOptions) -> Result<()>;
    /// Keys in key order, expired ones left out.
    async fn list(&self, options: ListOptions) -> Result<Vec<String>>;
    /// Flushes and releases resources.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// Whether `key` matches a read of `pattern` with the given prefix/suffix flags.
pub fn key_matches(key: &str, pattern: &str, prefix: bool, suffix: bool) -> bool {
    match (prefix, suffix) {
        (false, false) => key == pattern,
        (true, false) => key.starts_with(pattern),
        (false, true) => key.ends_with(pattern),
        (true, true) => key.starts_with(pattern) && key.ends_with(pattern),
    }
}

/// The 404 a store returns for a key that is not in `scope` (`id`: the plugin's error id).
pub fn not_found(id: &str, key: &str, scope: &Scope) -> crate::Error {
    crate::Error::not_found(
        id,
        format!(
            "key {key:?} not found in database {:?}, table {:?}",
            scope.database, scope.table
        ),
    )
}

/// Applies offset and limit (`0` = no limit) to an ordered sequence.
pub fn page<T>(items: impl IntoIterator<Item = T>, offset: usize, limit: usize) -> Vec<T> {
    let iter = items.into_iter().skip(offset);
    if limit == 0 {
        iter.collect()
    } else {
        iter.take(limit).collect()
    }
}
