//! [`ExampleStore`]: every record of every scope in one ordered map keyed by
//! `(database, table, key)`, so a prefix read or a list is one range scan. Expiry is checked
//! on every access: expired records are never returned, and are removed when an operation
//! meets them (no background task).

use crate::options::ExampleStoreOptions;
use async_trait::async_trait;
use bytes::Bytes;
use micro_core::config::StoreConfig;
use micro_core::logger::Logger;
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions, key_matches, page,
};
use micro_core::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Error id of this plugin.
const ID: &str = "go.micro.store.example";

/// (database, table, key).
type Key = (String, String, String);
type Records = BTreeMap<Key, Entry>;

/// One stored record with its absolute expiry.
#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    metadata: BTreeMap<String, String>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    fn record(&self, key: &str, now: Instant) -> Record {
        Record {
            key: key.to_string(),
            value: self.value.clone(),
            metadata: self.metadata.clone(),
            expiry: self.expires.map(|at| at.saturating_duration_since(now)),
        }
    }
}

/// What one scope holds (for [`crate::admin::StoreAdmin`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live records.
    pub records: u64,
    /// Bytes of their values.
    pub bytes: u64,
}

/// An in-process, ordered key-value store with a limit on the size of a value. Clones
/// share the same records; two values made with [`ExampleStore::new`] are two stores.
#[derive(Debug, Clone)]
pub struct ExampleStore {
    defaults: Scope,
    max_value_size: usize,
    logger: Logger,
    records: Arc<Mutex<Records>>,
}

impl Default for ExampleStore {
    fn default() -> Self {
        Self::new()
    }
}

impl ExampleStore {
    /// An empty store: default scope database `micro`, table `micro`, and the default
    /// options.
    pub fn new() -> Self {
        Self::from_config(&StoreConfig::default(), &ExampleStoreOptions::default())
    }

    /// An empty store configured by the `store:` section: its core keys (`database`,
    /// `table`) and this plugin's options. What the plugin factory builds.
    pub fn from_config(section: &StoreConfig, options: &ExampleStoreOptions) -> Self {
        ExampleStore {
            defaults: Scope::new(&section.database, &section.table),
            max_value_size: options.max_value_size,
            logger: Logger::none(),
            records: Arc::default(),
        }
    }

    /// The same store logging to `logger` (debug: rejected writes).
    pub fn with_logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    /// Largest value a write accepts, in bytes (0 = no limit).
    pub fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    /// The scope used for the empty parts of an operation's scope.
    pub fn defaults(&self) -> &Scope {
        &self.defaults
    }

    /// Live records of `scope` (empty parts = the defaults) and the bytes of their values.
    pub fn usage(&self, scope: &Scope) -> Usage {
        let now = Instant::now();
        let scope = self.resolve(scope);
        let mut records = self.records();
        scan(&mut records, &scope, "", now).fold(Usage::default(), |usage, (_, entry)| Usage {
            records: usage.records + 1,
            bytes: usage.bytes + entry.value.len() as u64,
        })
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resolve(&self, scope: &Scope) -> Scope {
        scope.or(&self.defaults)
    }
}

fn key_of(scope: &Scope, key: &str) -> Key {
    (scope.database.clone(), scope.table.clone(), key.to_string())
}

/// The live records of `scope` whose key starts with `prefix`, in key order; the expired
/// ones met on the way are removed first.
fn scan<'a>(
    records: &'a mut Records,
    scope: &'a Scope,
    prefix: &'a str,
    now: Instant,
) -> impl Iterator<Item = (&'a str, &'a Entry)> {
    let start = key_of(scope, prefix);
    let within =
        move |k: &Key| k.0 == scope.database && k.1 == scope.table && k.2.starts_with(prefix);
    let dead: Vec<Key> = records
        .range(start.clone()..)
        .take_while(|(k, _)| within(k))
        .filter(|(_, entry)| !entry.live(now))
        .map(|(k, _)| k.clone())
        .collect();
    for key in dead {
        records.remove(&key);
    }
    records
        .range(start..)
        .take_while(move |(k, _)| within(k))
        .map(|(k, entry)| (k.2.as_str(), entry))
}

#[async_trait]
impl Store for ExampleStore {
    fn name(&self) -> &str {
        crate::NAME
    }

    async fn read(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>> {
        let now = Instant::now();
        let scope = self.resolve(&options.scope);
        let mut records = self.records();
        if !options.prefix && !options.suffix {
            let exact = key_of(&scope, key);
            return match records.get(&exact) {
                Some(entry) if entry.live(now) => Ok(vec![entry.record(key, now)]),
                Some(_) => {
                    records.remove(&exact);
                    Err(not_found(key, &scope))
                }
                None => Err(not_found(key, &scope)),
            };
        }
        let (prefix, suffix) = (options.prefix, options.suffix);
        let start = if prefix { key } else { "" };
        let matching = scan(&mut records, &scope, start, now)
            .filter(|(k, _)| key_matches(k, key, prefix, suffix));
        Ok(page(matching, options.offset, options.limit)
            .into_iter()
            .map(|(k, entry)| entry.record(k, now))
            .collect())
    }

    async fn write(&self, record: Record, options: WriteOptions) -> Result<()> {
        let size = record.value.len();
        if self.max_value_size != 0 && size > self.max_value_size {
            let detail = format!(
                "the value of {:?} has {size} bytes; this store takes at most {} \
                 (store.max_value_size)",
                record.key, self.max_value_size
            );
            self.logger.in_scope(
                || tracing::debug!(key = %record.key, size, "example store: value too large"),
            );
            return Err(Error::too_large(ID, detail));
        }
        let expires = match options.ttl.or(record.expiry) {
            Some(ttl) => Some(expiry_instant(ttl)?),
            None => None,
        };
        let scope = self.resolve(&options.scope);
        let entry = Entry {
            value: record.value,
            metadata: record.metadata,
            expires,
        };
        self.records().insert(key_of(&scope, &record.key), entry);
        Ok(())
    }

    async fn delete(&self, key: &str, options: DeleteOptions) -> Result<()> {
        let scope = self.resolve(&options.scope);
        self.records().remove(&key_of(&scope, key));
        Ok(())
    }

    async fn list(&self, options: ListOptions) -> Result<Vec<String>> {
        let now = Instant::now();
        let scope = self.resolve(&options.scope);
        let prefix = options.prefix.as_deref().unwrap_or("");
        let suffix = options.suffix.as_deref().unwrap_or("");
        let mut records = self.records();
        let matching = scan(&mut records, &scope, prefix, now)
            .map(|(k, _)| k)
            .filter(|k| k.ends_with(suffix));
        Ok(page(matching, options.offset, options.limit)
            .into_iter()
            .map(str::to_string)
            .collect())
    }
}

/// The instant `ttl` from now, or a clear error when it is too far away to represent.
fn expiry_instant(ttl: Duration) -> Result<Instant> {
    Instant::now()
        .checked_add(ttl)
        .ok_or_else(|| Error::bad_request(ID, format!("expiry {ttl:?} is too far in the future")))
}

fn not_found(key: &str, scope: &Scope) -> Error {
    Error::not_found(
        ID,
        format!(
            "key {key:?} not found in database {:?}, table {:?}",
            scope.database, scope.table
        ),
    )
}
