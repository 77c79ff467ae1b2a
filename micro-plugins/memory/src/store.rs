//! The in-memory store: records kept per (database, table) scope in ordered maps, with
//! expiry checked on every access. Expired records are never returned; they are removed
//! when an exact read, a scan (prefix/suffix read, list), an overwrite or a delete meets
//! them, with no background task.

use async_trait::async_trait;
use bytes::Bytes;
use micro_core::config::StoreConfig;
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions, key_matches, page,
};
use micro_core::{Error, Plugin, Result};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Error id of this plugin.
const ID: &str = "go.micro.store.memory";

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

type Table = BTreeMap<String, Entry>;

#[derive(Debug, Default)]
struct Inner {
    defaults: Scope,
    tables: Mutex<HashMap<(String, String), Table>>,
}

/// An in-process key-value store. Clones share the same data; two values made with
/// [`MemoryStore::new`] are two separate stores.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store whose default scope is database `micro`, table `micro`.
    pub fn new() -> Self {
        Self::with_defaults(Scope::new("micro", "micro"))
    }

    /// An empty store using `defaults` for the empty parts of an operation's scope.
    pub fn with_defaults(defaults: Scope) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                defaults,
                tables: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The default scope.
    pub fn defaults(&self) -> &Scope {
        &self.inner.defaults
    }

    fn tables(&self) -> MutexGuard<'_, HashMap<(String, String), Table>> {
        self.inner.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn scope_key(&self, scope: &Scope) -> (String, String) {
        let scope = scope.or(&self.inner.defaults);
        (scope.database, scope.table)
    }
}

/// The records of `table` from key `start` on while `more` holds, in key order, all live:
/// the expired ones met on the way are removed first.
fn scan<'t>(
    table: &'t mut Table,
    start: &'t str,
    more: impl Fn(&str) -> bool + Copy + 't,
    now: Instant,
) -> impl Iterator<Item = (&'t String, &'t Entry)> {
    let range = (Bound::Included(start), Bound::Unbounded);
    let dead: Vec<String> = table
        .range::<str, _>(range)
        .take_while(|(k, _)| more(k))
        .filter(|(_, entry)| !entry.live(now))
        .map(|(k, _)| k.clone())
        .collect();
    for key in dead {
        table.remove(&key);
    }
    table
        .range::<str, _>(range)
        .take_while(move |(k, _)| more(k))
}

#[async_trait]
impl Store for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn read(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>> {
        let now = Instant::now();
        let scope = self.scope_key(&options.scope);
        let mut tables = self.tables();
        let Some(table) = tables.get_mut(&scope) else {
            return if options.prefix || options.suffix {
                Ok(Vec::new())
            } else {
                Err(micro_core::store::not_found(
                    ID,
                    key,
                    &Scope::new(scope.0.clone(), scope.1.clone()),
                ))
            };
        };
        if !options.prefix && !options.suffix {
            return match table.get(key) {
                Some(entry) if entry.live(now) => Ok(vec![entry.record(key, now)]),
                Some(_) => {
                    table.remove(key);
                    Err(micro_core::store::not_found(
                        ID,
                        key,
                        &Scope::new(scope.0.clone(), scope.1.clone()),
                    ))
                }
                None => Err(micro_core::store::not_found(
                    ID,
                    key,
                    &Scope::new(scope.0.clone(), scope.1.clone()),
                )),
            };
        }
        let (prefix, suffix) = (options.prefix, options.suffix);
        let start = if prefix { key } else { "" };
        let matching = scan(table, start, |k| !prefix || k.starts_with(key), now)
            .filter(|(k, _)| key_matches(k, key, prefix, suffix));
        Ok(page(matching, options.offset, options.limit)
            .into_iter()
            .map(|(k, entry)| entry.record(k, now))
            .collect())
    }

    async fn write(&self, record: Record, options: WriteOptions) -> Result<()> {
        let ttl = options.ttl.or(record.expiry);
        let expires = match ttl {
            Some(ttl) => Some(expiry_instant(ttl)?),
            None => None,
        };
        let scope = self.scope_key(&options.scope);
        self.tables().entry(scope).or_default().insert(
            record.key,
            Entry {
                value: record.value,
                metadata: record.metadata,
                expires,
            },
        );
        Ok(())
    }

    async fn delete(&self, key: &str, options: DeleteOptions) -> Result<()> {
        let scope = self.scope_key(&options.scope);
        let mut tables = self.tables();
        if let Some(table) = tables.get_mut(&scope) {
            table.remove(key);
            if table.is_empty() {
                tables.remove(&scope);
            }
        }
        Ok(())
    }

    async fn list(&self, options: ListOptions) -> Result<Vec<String>> {
        let now = Instant::now();
        let scope = self.scope_key(&options.scope);
        let mut tables = self.tables();
        let Some(table) = tables.get_mut(&scope) else {
            return Ok(Vec::new());
        };
        let prefix = options.prefix.as_deref().unwrap_or("");
        let suffix = options.suffix.as_deref().unwrap_or("");
        let matching = scan(table, prefix, |k| k.starts_with(prefix), now)
            .map(|(k, _)| k)
            .filter(|k| k.ends_with(suffix));
        Ok(page(matching, options.offset, options.limit)
            .into_iter()
            .cloned()
            .collect())
    }
}

/// The instant `ttl` from now, or a clear error when it is too far away to represent.
fn expiry_instant(ttl: Duration) -> Result<Instant> {
    Instant::now()
        .checked_add(ttl)
        .ok_or_else(|| Error::bad_request(ID, format!("expiry {ttl:?} is too far in the future")))
}

/// The plugin-table entry: `store: { plugin: memory }`, default scope from the `store:`
/// section's `database` and `table`.
pub fn plugin() -> Plugin {
    Plugin::store("memory", "memory", |ctx| {
        let config = ctx.options::<StoreConfig>()?;
        Ok(Arc::new(MemoryStore::with_defaults(Scope::new(
            config.database,
            config.table,
        ))))
    })
}
