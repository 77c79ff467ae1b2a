//! The `postgres` store: `store: { plugin: postgres, addresses: [postgres://...] }`.
//!
//! A database is a schema and a table is a table (names quoted, see [`crate::names`]), both
//! made on the first write to them. Each row is one record: `key text COLLATE "C" PRIMARY
//! KEY, value bytea, metadata jsonb, expiry timestamptz NULL`. The `"C"` collation makes the
//! key order byte order (the order of Rust strings), whatever the database's locale.
//!
//! - Reads and lists leave out rows whose `expiry` has passed (server time, so clients with
//!   skewed clocks agree). Expired rows are swept on write: the first write to a table, and
//!   then one write every [`PostgresStoreOptions::sweep_interval`], deletes them with one
//!   `DELETE ... WHERE expiry <= now()` on a partial index of `expiry`.
//! - A prefix is a key range, `key >= $prefix AND key < $next` (`$next`: the prefix with its
//!   last character increased), which the primary-key index serves with a generic plan too;
//!   a suffix is `key LIKE '%' || $suffix` with `%`, `_` and `\` escaped.
//! - Reading, listing or deleting in a schema or table that does not exist is not found /
//!   empty / nothing to do, never a 500.

use crate::connection::Connector;
use crate::names;
use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::GenericClient;
use micro_core::config::StoreConfig;
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions,
};
use micro_core::{Error, Plugin, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

/// Error id of this plugin.
const ID: &str = "go.micro.store.postgres";

/// Options of the `postgres` store, read from the `store:` section (flags
/// `--store_pool_size`, `--store_sweep_interval`; env `MICRO_STORE_POOL_SIZE`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "store", plugin = "postgres")]
pub struct PostgresStoreOptions {
    /// At most this many connections to the server at once.
    #[component(default = 8)]
    pub pool_size: usize,
    /// How often (at most) a write to a table also deletes the table's expired rows.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(60))]
    pub sweep_interval: Duration,
}

/// A schema and table, checked and quoted. Equal and hashed by `qualified` (quoting is
/// one-to-one, so that is the scope).
#[derive(Debug, Clone)]
struct Target {
    scope: Scope,
    /// `"schema"."table"`, ready for SQL.
    qualified: String,
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.qualified == other.qualified
    }
}

impl Eq for Target {}

impl std::hash::Hash for Target {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.qualified.hash(state);
    }
}

struct Inner {
    connector: Connector,
    defaults: Scope,
    options: PostgresStoreOptions,
    /// Tables this store made or found, so a write asks for them once.
    ready: Mutex<HashSet<Target>>,
    /// When each table was last swept of expired rows.
    swept: Mutex<HashMap<Target, Instant>>,
}

/// A key-value store on PostgreSQL. Clones share the pool and what is known of the tables.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("address", &self.inner.connector.address())
            .field("defaults", &self.inner.defaults)
            .finish()
    }
}

/// Why an operation on a table failed: the table (or its schema) is not there, or another
/// error already turned into a micro error.
enum Failure {
    Missing,
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl PostgresStore {
    /// A store on `connector`'s server using `defaults` for the empty parts of an
    /// operation's scope. Nothing is contacted until the first operation.
    pub fn new(connector: Connector, defaults: Scope, options: PostgresStoreOptions) -> Self {
        PostgresStore {
            inner: Arc::new(Inner {
                connector,
                defaults,
                options,
                ready: Mutex::new(HashSet::new()),
                swept: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The default scope.
    pub fn defaults(&self) -> &Scope {
        &self.inner.defaults
    }

    /// The databases (schemas) this store made or wrote to, sorted: what a test drops.
    pub fn schemas(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ready()
            .iter()
            .map(|t| t.scope.database.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        names.sort();
        names
    }

    fn ready(&self) -> MutexGuard<'_, HashSet<Target>> {
        self.inner.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn swept(&self) -> MutexGuard<'_, HashMap<Target, Instant>> {
        self.inner.swept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scope with defaults filled, checked, as a target.
    fn target(&self, scope: &Scope) -> Result<Target> {
        let scope = scope.or(&self.inner.defaults);
        names::check("database", &scope.database).map_err(|e| Error::bad_request(ID, e))?;
        names::check("table", &scope.table).map_err(|e| Error::bad_request(ID, e))?;
        let qualified = format!(
            "{}.{}",
            names::quote(&scope.database),
            names::quote(&scope.table)
        );
        Ok(Target { scope, qualified })
    }

    /// The micro error for a failed statement.
    fn sql_error(&self, e: &tokio_postgres::Error, what: &str) -> Error {
        let Some(db) = e.as_db_error() else {
            return self
                .inner
                .connector
                .unreachable(&crate::connection::with_causes(e));
        };
        let code = db.code().code();
        match &code[..2] {
            // Data exceptions: a value PostgreSQL cannot store (an expiry too far away,
            // characters it cannot take).
            "22" => Error::bad_request(
                ID,
                format!("{what}: PostgreSQL rejected the data: {}", db.message()),
            ),
            // Connection, resources, operator intervention (shutdown, restart).
            "08" | "53" | "57" => self.inner.connector.unreachable(db.message()),
            _ => Error::internal(
                ID,
                format!(
                    "{what} failed on PostgreSQL at {}: {} (SQLSTATE {code})",
                    self.inner.connector.address(),
                    db.message()
                ),
            ),
        }
    }

    /// `Missing` for an undefined table or schema, else the micro error.
    fn failure(&self, e: &tokio_postgres::Error, what: &str) -> Failure {
        match e.code() {
            Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME => {
                Failure::Missing
            }
            _ => Failure::Error(self.sql_error(e, what)),
        }
    }

    /// Rows of `sql` with `params` on `target`'s table.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        what: &str,
    ) -> std::result::Result<Vec<tokio_postgres::Row>, Failure> {
        let client = self.inner.connector.connection().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.failure(&e, what))?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| self.failure(&e, what))
    }

    /// Makes `target`'s schema and table unless this store knows they exist.
    async fn ensure(&self, target: &Target) -> Result<()> {
        if self.ready().contains(target) {
            return Ok(());
        }
        let client = self.inner.connector.connection().await?;
        let what = format!("making table {:?}", target.scope);
        let schema = format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            names::quote(&target.scope.database)
        );
        if let Err(e) = client.batch_execute(&schema).await
            && !already_there(&e)
        {
            return Err(self.sql_error(&e, &what));
        }
        // One simple-protocol batch is one transaction: the table never exists without
        // its expiry index. A concurrent maker makes one of the two fail as "already there".
        let table = format!(
            "CREATE TABLE {t} (key text COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL, \
             metadata jsonb NOT NULL DEFAULT '{{}}', expiry timestamptz NULL); \
             CREATE INDEX ON {t} (expiry) WHERE expiry IS NOT NULL",
            t = target.qualified
        );
        if let Err(e) = client.batch_execute(&table).await
            && !already_there(&e)
        {
            return Err(self.sql_error(&e, &what));
        }
        self.ready().insert(target.clone());
        Ok(())
    }

    /// Deletes `target`'s expired rows if the last sweep is older than the sweep interval.
    /// A failed sweep is left for the next write: the write itself does not fail.
    async fn sweep(&self, target: &Target) {
        let now = Instant::now();
        {
            let mut swept = self.swept();
            if let Some(last) = swept.get(target)
                && now.duration_since(*last) < self.inner.options.sweep_interval
            {
                return;
            }
            swept.insert(target.clone(), now);
        }
        let sql = format!("DELETE FROM {} WHERE expiry <= now()", target.qualified);
        let _ = self.query(&sql, &[], "sweep").await;
    }

    /// Records of a read (exact when `exact`) with their time left.
    async fn select(
        &self,
        target: &Target,
        filter: &Filter,
        columns: &str,
        what: &str,
    ) -> std::result::Result<Vec<tokio_postgres::Row>, Failure> {
        let (sql, params) = filter.sql(columns, &target.qualified);
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.query(&sql, &refs, what).await
    }
}

/// Whether `e` says that what was being made exists already (made concurrently).
fn already_there(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::DUPLICATE_SCHEMA
            || *c == SqlState::DUPLICATE_TABLE
            || *c == SqlState::DUPLICATE_OBJECT
            || *c == SqlState::UNIQUE_VIOLATION
    })
}

/// A 400 for a key PostgreSQL text cannot hold.
fn check_key(what: &str, key: &str) -> Result<()> {
    if key.contains('\0') {
        return Err(Error::bad_request(
            ID,
            format!("{what} {key:?} contains a NUL character, which PostgreSQL text cannot hold"),
        ));
    }
    Ok(())
}

/// Which rows a read or list selects, in key order.
#[derive(Debug, Default)]
struct Filter {
    exact: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    limit: usize,
    offset: usize,
}

impl Filter {
    /// The statement and its text parameters (limit and offset are inlined numbers).
    fn sql(&self, columns: &str, table: &str) -> (String, Vec<String>) {
        let mut params = Vec::new();
        let mut conditions = vec!["(expiry IS NULL OR expiry > now())".to_string()];
        let bind = |value: String, params: &mut Vec<String>| {
            params.push(value);
            format!("${}", params.len())
        };
        if let Some(key) = &self.exact {
            conditions.push(format!("key = {}", bind(key.clone(), &mut params)));
        }
        if let Some(prefix) = self.prefix.as_ref().filter(|p| !p.is_empty()) {
            conditions.push(format!("key >= {}", bind(prefix.clone(), &mut params)));
            if let Some(end) = prefix_end(prefix) {
                conditions.push(format!("key < {}", bind(end, &mut params)));
            }
        }
        if let Some(suffix) = self.suffix.as_ref().filter(|s| !s.is_empty()) {
            let pattern = format!("%{}", escape_like(suffix));
            conditions.push(format!(
                "key LIKE {} ESCAPE '\\'",
                bind(pattern, &mut params)
            ));
        }
        let mut sql = format!(
            "SELECT {columns} FROM {table} WHERE {} ORDER BY key",
            conditions.join(" AND ")
        );
        if self.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", self.limit));
        }
        if self.offset > 0 {
            sql.push_str(&format!(" OFFSET {}", self.offset));
        }
        (sql, params)
    }
}

/// The least string greater than every string starting with `prefix` (byte order), or
/// `None` when there is none (every character is `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `text` with the LIKE wildcards and the escape character escaped (escape `\`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The columns of a record read: the time left is computed by the server.
const RECORD_COLUMNS: &str = "key, value, metadata, \
     (EXTRACT(EPOCH FROM (expiry - now())) * 1000000)::int8";

/// A record from a row of [`RECORD_COLUMNS`].
fn record_of(row: &tokio_postgres::Row) -> std::result::Result<Record, tokio_postgres::Error> {
    let key: String = row.try_get(0)?;
    let value: Vec<u8> = row.try_get(1)?;
    let metadata: serde_json::Value = row.try_get(2)?;
    let left: Option<i64> = row.try_get(3)?;
    let metadata = match metadata {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(Record {
        key,
        value: Bytes::from(value),
        metadata,
        expiry: left.map(|us| Duration::from_micros(us.max(1).unsigned_abs())),
    })
}

#[async_trait]
impl Store for PostgresStore {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn read(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>> {
        check_key("key", key)?;
        let target = self.target(&options.scope)?;
        let exact = !options.prefix && !options.suffix;
        let filter = Filter {
            exact: exact.then(|| key.to_string()),
            prefix: options.prefix.then(|| key.to_string()),
            suffix: options.suffix.then(|| key.to_string()),
            limit: if exact { 0 } else { options.limit },
            offset: if exact { 0 } else { options.offset },
        };
        let rows = match self.select(&target, &filter, RECORD_COLUMNS, "read").await {
            Ok(rows) => rows,
            Err(Failure::Missing) => Vec::new(),
            Err(Failure::Error(e)) => return Err(e),
        };
        let records = rows
            .iter()
            .map(record_of)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.sql_error(&e, "decoding a record"))?;
        if exact && records.is_empty() {
            return Err(micro_core::store::not_found(ID, key, &target.scope));
        }
        Ok(records)
    }

    async fn write(&self, record: Record, options: WriteOptions) -> Result<()> {
        check_key("key", &record.key)?;
        let target = self.target(&options.scope)?;
        let micros: Option<i64> = match options.ttl.or(record.expiry) {
            None => None,
            Some(ttl) => Some(i64::try_from(ttl.as_micros()).map_err(|_| {
                Error::bad_request(ID, format!("expiry {ttl:?} is too far in the future"))
            })?),
        };
        let metadata = serde_json::to_value(&record.metadata)
            .map_err(|e| Error::bad_request(ID, format!("metadata cannot be stored: {e}")))?;
        let value: &[u8] = &record.value;
        let sql = format!(
            "INSERT INTO {} (key, value, metadata, expiry) VALUES ($1, $2, $3, \
             now() + $4::int8 * interval '1 microsecond') \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
             metadata = EXCLUDED.metadata, expiry = EXCLUDED.expiry",
            target.qualified
        );
        let params: [&(dyn ToSql + Sync); 4] = [&record.key, &value, &metadata, &micros];
        // A table dropped behind this store's back is made again, once.
        for attempt in 0..2 {
            self.ensure(&target).await?;
            self.sweep(&target).await;
            match self.query(&sql, &params, "write").await {
                Ok(_) => return Ok(()),
                Err(Failure::Missing) if attempt == 0 => {
                    self.ready().remove(&target);
                }
                Err(Failure::Missing) => break,
                Err(Failure::Error(e)) => return Err(e),
            }
        }
        Err(Error::internal(
            ID,
            format!(
                "write: table {:?} disappeared while being written; try again",
                target.scope
            ),
        ))
    }

    async fn delete(&self, key: &str, options: DeleteOptions) -> Result<()> {
        check_key("key", key)?;
        let target = self.target(&options.scope)?;
        let sql = format!("DELETE FROM {} WHERE key = $1", target.qualified);
        match self.query(&sql, &[&key], "delete").await {
            Ok(_) | Err(Failure::Missing) => Ok(()),
            Err(Failure::Error(e)) => Err(e),
        }
    }

    async fn list(&self, options: ListOptions) -> Result<Vec<String>> {
        let target = self.target(&options.scope)?;
        for pattern in options.prefix.iter().chain(options.suffix.iter()) {
            check_key("pattern", pattern)?;
        }
        let filter = Filter {
            exact: None,
            prefix: options.prefix,
            suffix: options.suffix,
            limit: options.limit,
            offset: options.offset,
        };
        let rows = match self.select(&target, &filter, "key", "list").await {
            Ok(rows) => rows,
            Err(Failure::Missing) => return Ok(Vec::new()),
            Err(Failure::Error(e)) => return Err(e),
        };
        rows.iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.sql_error(&e, "list"))
    }

    async fn close(&self) -> Result<()> {
        self.inner.connector.close();
        Ok(())
    }
}

/// The plugin-table entry: `store: { plugin: postgres, addresses: [postgres://...] }`,
/// default scope from the section's `database` (schema) and `table`.
pub fn plugin() -> Plugin {
    Plugin::store("postgres", "postgres", |ctx| {
        let config = ctx.options::<StoreConfig>()?;
        let options = ctx.options::<PostgresStoreOptions>()?;
        names::check("database", &config.database)
            .map_err(|e| Error::bad_request(ID, format!("store.database: {e}")))?;
        names::check("table", &config.table)
            .map_err(|e| Error::bad_request(ID, format!("store.table: {e}")))?;
        let connector = Connector::new(&config.addresses, "store", options.pool_size)?;
        let defaults = Scope::new(config.database, config.table);
        Ok(Arc::new(PostgresStore::new(connector, defaults, options)))
    })
    .with_options::<PostgresStoreOptions>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_string_in_byte_order() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"a%b_c\d"), r"a\%b\_c\\d");
    }

    #[test]
    fn filters_bind_every_value() {
        let filter = Filter {
            prefix: Some("p'; --".into()),
            suffix: Some("%".into()),
            limit: 2,
            offset: 1,
            ..Default::default()
        };
        let (sql, params) = filter.sql("key", "\"s\".\"t\"");
        assert!(!sql.contains("p'"), "{sql}");
        assert!(
            sql.contains("key >= $1 AND key < $2 AND key LIKE $3"),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY key LIMIT 2 OFFSET 1"), "{sql}");
        assert_eq!(params, ["p'; --", "p'; -.", "%\\%"]);
    }
}
