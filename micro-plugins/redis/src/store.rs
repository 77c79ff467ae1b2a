//! The `redis` store: one Redis string per record, `store: { plugin: redis }`.
//!
//! A record lives under the key `{database}:{table}:{key}`, where `%` and `:` inside the
//! database and table names are written `%25` and `%3A` (see [`redis_key`]): the first two
//! `:` of a Redis key always end the database and the table, so two scopes can never share a
//! key, while the record's own key is kept as is (it may hold `:`). The value is the shared
//! record layout of `micro_core::store::stored` (metadata and absolute expiry travel with the
//! value). A record with a time to live is written with `PX`, so Redis removes it by itself;
//! the absolute expiry in the value gives `Record::expiry` on reads.
//!
//! An exact read is one `GET`. A prefix or suffix read and a list walk the keys of the scope
//! (narrowed by the key prefix) with `SCAN MATCH` (never `KEYS`, which blocks the server),
//! fetch the values with `MGET`, and filter, sort and page here. Values that are not micro
//! records (written by `redis-cli` or another library) are skipped with a warning naming the
//! key.

use crate::Connector;
use async_trait::async_trait;
use bytes::Bytes;
use micro_core::config::StoreConfig;
use micro_core::logger::Logger;
use micro_core::store::stored::{Stored, expiry_ms, now_ms};
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions, key_matches, page,
};
use micro_core::{Error, Plugin, Result};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Error id of this plugin.
const ID: &str = "go.micro.store.redis";
/// The `COUNT` hint of each `SCAN` call.
const SCAN_COUNT: usize = 1000;
/// Keys fetched per `MGET`.
const MGET_BATCH: usize = 500;

struct Inner {
    connector: Connector,
    defaults: Scope,
    /// `scope_prefix(defaults)`, made once: most operations use the default scope.
    default_prefix: String,
    logger: Logger,
}

/// A key-value store on Redis strings. Clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.inner.connector.address())
            .field("defaults", &self.inner.defaults)
            .finish()
    }
}

/// A database or table name with `%` and `:` escaped, so it holds no `:`.
fn escape_name(name: &str) -> String {
    name.replace('%', "%25").replace(':', "%3A")
}

/// The Redis key prefix of a scope: `{database}:{table}:` with both names escaped.
pub fn scope_prefix(scope: &Scope) -> String {
    format!(
        "{}:{}:",
        escape_name(&scope.database),
        escape_name(&scope.table)
    )
}

/// The Redis key of record `key` in `scope`: `{database}:{table}:{key}`, the names escaped
/// (`%` as `%25`, `:` as `%3A`), the key as is.
pub fn redis_key(scope: &Scope, key: &str) -> String {
    format!("{}{key}", scope_prefix(scope))
}

/// `literal` with the glob characters of `SCAN MATCH` (`* ? [ ] \`) escaped.
fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    /// A store on `connector`'s server using `defaults` for the empty parts of an
    /// operation's scope. Nothing is contacted until the first operation.
    pub fn new(connector: Connector, defaults: Scope) -> Self {
        Self::with_logger(connector, defaults, Logger::none())
    }

    /// A store like [`RedisStore::new`] logging to `logger` (values that are not micro
    /// records are warned about).
    pub fn with_logger(connector: Connector, defaults: Scope, logger: Logger) -> Self {
        RedisStore {
            inner: Arc::new(Inner {
                connector,
                default_prefix: scope_prefix(&defaults),
                defaults,
                logger,
            }),
        }
    }

    /// The default scope.
    pub fn defaults(&self) -> &Scope {
        &self.inner.defaults
    }

    /// The Redis key of `key` in `scope` (its empty parts from the defaults).
    fn key_in(&self, scope: &Scope, key: &str) -> String {
        if scope.database.is_empty() && scope.table.is_empty() {
            let prefix = &self.inner.default_prefix;
            let mut full = String::with_capacity(prefix.len() + key.len());
            full.push_str(prefix);
            full.push_str(key);
            full
        } else {
            redis_key(&scope.or(&self.inner.defaults), key)
        }
    }

    fn failed(&self, what: &str, e: &redis::RedisError) -> Error {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            return self.inner.connector.unreachable(e);
        }
        Error::internal(
            ID,
            format!(
                "store: cannot {what} on Redis at {}: {e}",
                self.inner.connector.address()
            ),
        )
    }

    fn warn_foreign(&self, key: &str, why: &str) {
        self.inner.logger.in_scope(|| {
            tracing::warn!(
                key,
                "skipping a value that is not a micro store record ({why}); it was written by \
                 something else: delete it, or keep other data out of the store's key space"
            )
        });
    }

    /// The live records of `scope` whose key starts with `prefix`, in key order; foreign
    /// values and keys are skipped with a warning.
    async fn scan(&self, scope: &Scope, prefix: &str) -> Result<Vec<(String, Stored)>> {
        let mut con = self.inner.connector.connection().await?;
        let base = scope_prefix(scope);
        let pattern = format!("{}*", escape_glob(&format!("{base}{prefix}")));
        let mut cursor: u64 = 0;
        let mut keys = BTreeSet::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut con)
                .await
                .map_err(|e| self.failed("scan keys", &e))?;
            // SCAN may return a key more than once: the set keeps one.
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let keys: Vec<Vec<u8>> = keys.into_iter().collect();
        let now = now_ms();
        let mut found = Vec::new();
        for chunk in keys.chunks(MGET_BATCH) {
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(chunk)
                .query_async(&mut con)
                .await
                .map_err(|e| self.failed("read values", &e))?;
            for (raw_key, value) in chunk.iter().zip(values) {
                let Some(value) = value else {
                    continue; // expired or deleted since the scan
                };
                let Ok(full) = std::str::from_utf8(raw_key) else {
                    let shown = String::from_utf8_lossy(raw_key);
                    self.warn_foreign(&shown, "the key is not UTF-8");
                    continue;
                };
                let Some(key) = full.strip_prefix(base.as_str()) else {
                    continue;
                };
                match Stored::decode(&Bytes::from(value)) {
                    Ok(stored) if stored.live(now) => found.push((key.to_string(), stored)),
                    Ok(_) => {}
                    Err(why) => self.warn_foreign(full, &why),
                }
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl Store for RedisStore {
    fn name(&self) -> &str {
        "redis"
    }

    async fn read(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>> {
        if options.prefix || options.suffix {
            let scope = options.scope.or(&self.inner.defaults);
            let prefix = if options.prefix { key } else { "" };
            let found = self.scan(&scope, prefix).await?;
            let now = now_ms();
            let matching = found
                .into_iter()
                .filter(|(k, _)| key_matches(k, key, options.prefix, options.suffix));
            return Ok(page(matching, options.offset, options.limit)
                .into_iter()
                .map(|(k, stored)| stored.into_record(k, now))
                .collect());
        }
        let full = self.key_in(&options.scope, key);
        let mut con = self.inner.connector.connection().await?;
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&full)
            .query_async(&mut con)
            .await
            .map_err(|e| self.failed(&format!("read key {key:?}"), &e))?;
        let missing =
            || micro_core::store::not_found(ID, key, &options.scope.or(&self.inner.defaults));
        let Some(value) = value else {
            return Err(missing());
        };
        let now = now_ms();
        match Stored::decode(&Bytes::from(value)) {
            Ok(stored) if stored.live(now) => Ok(vec![stored.into_record(key.to_string(), now)]),
            Ok(_) => Err(missing()),
            Err(why) => {
                self.warn_foreign(&full, &why);
                Err(missing())
            }
        }
    }

    async fn write(&self, record: Record, options: WriteOptions) -> Result<()> {
        let full = self.key_in(&options.scope, &record.key);
        let ttl = options.ttl.or(record.expiry);
        let now = now_ms();
        let (expires_ms, px) = match ttl {
            None => (None, None),
            Some(ttl) => {
                let at = expiry_ms(now, ttl).ok_or_else(|| {
                    Error::bad_request(
                        ID,
                        format!(
                            "expiry {ttl:?} of key {:?} is too far in the future; give a \
                             shorter ttl or none",
                            record.key
                        ),
                    )
                })?;
                // Never 0 in the envelope, which means "no expiry".
                (Some(at.max(1)), Some(at - now))
            }
        };
        let mut con = self.inner.connector.connection().await?;
        if px == Some(0) {
            // A zero ttl: the record is expired as soon as written.
            let _: i64 = redis::cmd("DEL")
                .arg(&full)
                .query_async(&mut con)
                .await
                .map_err(|e| self.failed(&format!("write key {:?}", record.key), &e))?;
            return Ok(());
        }
        let bytes = Stored {
            expires_ms,
            metadata: record.metadata,
            value: record.value,
        }
        .encode()
        .map_err(|e| Error::bad_request(ID, format!("cannot store {:?}: {e}", record.key)))?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&full).arg(bytes.as_ref());
        if let Some(px) = px {
            cmd.arg("PX").arg(px);
        }
        let _: () = cmd.query_async(&mut con).await.map_err(|e| {
            self.failed(
                &format!(
                    "write key {:?} (values are limited by the server's \
                     proto-max-bulk-len, 512 MB by default)",
                    record.key
                ),
                &e,
            )
        })?;
        Ok(())
    }

    async fn delete(&self, key: &str, options: DeleteOptions) -> Result<()> {
        let mut con = self.inner.connector.connection().await?;
        let _: i64 = redis::cmd("DEL")
            .arg(self.key_in(&options.scope, key))
            .query_async(&mut con)
            .await
            .map_err(|e| self.failed(&format!("delete key {key:?}"), &e))?;
        Ok(())
    }

    async fn list(&self, options: ListOptions) -> Result<Vec<String>> {
        let scope = options.scope.or(&self.inner.defaults);
        let prefix = options.prefix.as_deref().unwrap_or("");
        let suffix = options.suffix.as_deref().unwrap_or("");
        let found = self.scan(&scope, prefix).await?;
        let matching = found
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.ends_with(suffix));
        Ok(page(matching, options.offset, options.limit))
    }
}

/// The plugin-table entry: `store: { plugin: redis, addresses: [...] }`, default scope from
/// the `store:` section's `database` and `table`.
pub fn plugin() -> Plugin {
    Plugin::store("redis", "redis", |ctx| {
        let config = ctx.options::<StoreConfig>()?;
        let connector = Connector::new(&config.addresses, "store");
        connector.client()?;
        let defaults = Scope::new(config.database, config.table);
        Ok(Arc::new(RedisStore::with_logger(
            connector,
            defaults,
            ctx.logger.clone(),
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_never_share_a_key() {
        let a = redis_key(&Scope::new("a:b", "c"), "k");
        let b = redis_key(&Scope::new("a", "b:c"), "k");
        assert_ne!(a, b);
        assert_eq!(a, "a%3Ab:c:k");
        assert_eq!(b, "a:b%3Ac:k");
        assert_ne!(
            redis_key(&Scope::new("a%3A", "t"), "k"),
            redis_key(&Scope::new("a:", "t"), "k")
        );
        assert_eq!(redis_key(&Scope::new("d", "t"), "x:y"), "d:t:x:y");
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
        assert_eq!(escape_glob("plain:é"), "plain:é");
    }
}
