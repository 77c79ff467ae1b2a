//! The `file` store: records persisted with redb, one file per database
//! (`{dir}/{database}.redb`), one redb table per table.
//!
//! redb is synchronous, so every operation runs on tokio's blocking pool. A database file is
//! opened on first use and kept open (redb locks it: one store value per directory at a
//! time; clone the value to share it) until [`Store::close`]. Expired records are never
//! returned; they are removed when overwritten or deleted, and by a sweep of the written
//! table every [`SWEEP_EVERY`] writes.

use crate::options::FileStoreOptions;
use async_trait::async_trait;
use micro_core::config::StoreConfig;
use micro_core::store::stored::{Stored, expiry_ms, now_ms};
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions, key_matches, page,
};
use micro_core::{Error, Plugin, Result};
use redb::{Database, DatabaseError, ReadableDatabase, StorageError, TableDefinition, TableError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Error id of this plugin.
const ID: &str = "go.micro.store.file";
/// A written table is swept of expired records once every this many writes of the store.
pub const SWEEP_EVERY: u64 = 1024;

type Table<'a> = TableDefinition<'a, &'static str, &'static [u8]>;

struct Inner {
    dir: PathBuf,
    defaults: Scope,
    /// Open databases by name.
    databases: Mutex<HashMap<String, Arc<Database>>>,
    writes: AtomicU64,
}

/// A persistent key-value store in a directory. Clones share the open files.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.inner.dir)
            .field("defaults", &self.inner.defaults)
            .finish()
    }
}

impl FileStore {
    /// A store in `dir` (created if missing) with default scope `micro`/`micro`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::with_defaults(dir, Scope::new("micro", "micro"))
    }

    /// A store in `dir` (created if missing) using `defaults` for the empty parts of an
    /// operation's scope.
    pub fn with_defaults(dir: impl Into<PathBuf>, defaults: Scope) -> Result<Self> {
        let dir = dir.into();
        if defaults.database.is_empty() || defaults.table.is_empty() {
            return Err(Error::bad_request(
                ID,
                format!("the default database and table must not be empty: {defaults:?}"),
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::internal(
                ID,
                format!("cannot create store directory {}: {e}", dir.display()),
            )
        })?;
        Ok(FileStore {
            inner: Arc::new(Inner {
                dir,
                defaults,
                databases: Mutex::new(HashMap::new()),
                writes: AtomicU64::new(0),
            }),
        })
    }

    /// The directory holding the database files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The default scope.
    pub fn defaults(&self) -> &Scope {
        &self.inner.defaults
    }

    /// The file of database `database`.
    pub fn path_of(&self, database: &str) -> PathBuf {
        self.inner.path_of(database)
    }

    /// Runs `f` on the blocking pool with the scope resolved.
    async fn blocking<T, F>(&self, scope: &Scope, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, Scope) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let scope = scope.or(&self.inner.defaults);
        tokio::task::spawn_blocking(move || f(&inner, scope))
            .await
            .map_err(|e| Error::internal(ID, format!("store task failed: {e}")))?
    }
}

/// A database name as a file name: ASCII letters, digits, `_` and `-` kept, every other
/// byte written `%XX`, so any name maps to one file inside the directory and back.
fn file_name(database: &str) -> String {
    let mut out = String::with_capacity(database.len() + 5);
    for byte in database.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out.push_str(".redb");
    out
}

impl Inner {
    fn path_of(&self, database: &str) -> PathBuf {
        self.dir.join(file_name(database))
    }

    /// The open database `name`; `None` when its file does not exist and `create` is off.
    fn database(&self, name: &str, create: bool) -> Result<Option<Arc<Database>>> {
        let mut open = self.databases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = open.get(name) {
            return Ok(Some(db.clone()));
        }
        let path = self.path_of(name);
        if !create && !path.exists() {
            return Ok(None);
        }
        let db = Database::create(&path).map_err(|e| open_error(&path, e))?;
        let db = Arc::new(db);
        open.insert(name.to_string(), db.clone());
        Ok(Some(db))
    }

    fn fail(&self, database: &str, what: &str, err: impl std::fmt::Display) -> Error {
        Error::internal(
            ID,
            format!("{what} in {}: {err}", self.path_of(database).display()),
        )
    }

    fn decode(&self, scope: &Scope, key: &str, bytes: &[u8]) -> Result<Stored> {
        crate::record::decode(bytes).map_err(|e| {
            self.fail(
                &scope.database,
                &format!("record {key:?} of table {:?} is corrupt", scope.table),
                e,
            )
        })
    }

    /// Live records of `scope` whose keys pass `matches`, in key order, starting at `from`
    /// and stopping at the first key for which `more` is false.
    fn scan(
        &self,
        scope: &Scope,
        from: &str,
        more: impl Fn(&str) -> bool,
        matches: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, Stored)>> {
        let Some(db) = self.database(&scope.database, false)? else {
            return Ok(Vec::new());
        };
        let db_name = &scope.database;
        let txn = db
            .begin_read()
            .map_err(|e| self.fail(db_name, "cannot read", e))?;
        let table = match txn.open_table(Table::new(&scope.table)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.fail(db_name, "cannot open table", e)),
        };
        let now = now_ms();
        let mut out = Vec::new();
        let range = table
            .range(from..)
            .map_err(|e| self.fail(db_name, "cannot read", e))?;
        for entry in range {
            let (key, value) = entry.map_err(|e| self.fail(db_name, "cannot read", e))?;
            let key = key.value();
            if !more(key) {
                break;
            }
            if !matches(key) {
                continue;
            }
            let stored = self.decode(scope, key, value.value())?;
            if stored.live(now) {
                out.push((key.to_string(), stored));
            }
        }
        Ok(out)
    }

    fn get(&self, scope: &Scope, key: &str) -> Result<Option<Stored>> {
        let Some(db) = self.database(&scope.database, false)? else {
            return Ok(None);
        };
        let db_name = &scope.database;
        let txn = db
            .begin_read()
            .map_err(|e| self.fail(db_name, "cannot read", e))?;
        let table = match txn.open_table(Table::new(&scope.table)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.fail(db_name, "cannot open table", e)),
        };
        let Some(value) = table
            .get(key)
            .map_err(|e| self.fail(db_name, "cannot read", e))?
        else {
            return Ok(None);
        };
        let stored = self.decode(scope, key, value.value())?;
        Ok(stored.live(now_ms()).then_some(stored))
    }

    fn put(&self, scope: &Scope, key: &str, bytes: &[u8], sweep: bool) -> Result<()> {
        let db_name = &scope.database;
        let Some(db) = self.database(db_name, true)? else {
            return Err(self.fail(db_name, "cannot open", "no database"));
        };
        let txn = db
            .begin_write()
            .map_err(|e| self.fail(db_name, "cannot write", e))?;
        {
            let mut table = txn
                .open_table(Table::new(&scope.table))
                .map_err(|e| self.fail(db_name, "cannot open table", e))?;
            table
                .insert(key, bytes)
                .map_err(|e| self.fail(db_name, "cannot write", e))?;
            if sweep {
                let now = now_ms();
                table
                    .retain(|_, value| crate::record::decode(value).is_ok_and(|s| s.live(now)))
                    .map_err(|e| self.fail(db_name, "cannot sweep expired records", e))?;
            }
        }
        txn.commit()
            .map_err(|e| self.fail(db_name, "cannot commit", e))
    }

    fn remove(&self, scope: &Scope, key: &str) -> Result<()> {
        let db_name = &scope.database;
        let Some(db) = self.database(db_name, false)? else {
            return Ok(());
        };
        let txn = db
            .begin_write()
            .map_err(|e| self.fail(db_name, "cannot write", e))?;
        {
            let mut table = match txn.open_table(Table::new(&scope.table)) {
                Ok(table) => table,
                Err(e) => return Err(self.fail(db_name, "cannot open table", e)),
            };
            table
                .remove(key)
                .map_err(|e| self.fail(db_name, "cannot delete", e))?;
        }
        txn.commit()
            .map_err(|e| self.fail(db_name, "cannot commit", e))
    }
}

/// The error for a database file that cannot be opened, naming it.
fn open_error(path: &Path, err: DatabaseError) -> Error {
    match err {
        DatabaseError::DatabaseAlreadyOpen => Error::unavailable(
            ID,
            format!(
                "{} is already open by another store or process: share one FileStore per directory",
                path.display()
            ),
        ),
        DatabaseError::UpgradeRequired(version) => Error::internal(
            ID,
            format!(
                "cannot open store database {}: written in redb file format {version}, which this redb cannot read; upgrade the file with the redb version that wrote it",
                path.display()
            ),
        ),
        DatabaseError::Storage(StorageError::Corrupted(_)) => corrupt(path, err),
        DatabaseError::Storage(StorageError::Io(ref io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            corrupt(path, err)
        }
        other => Error::internal(
            ID,
            format!("cannot open store database {}: {other}", path.display()),
        ),
    }
}

fn corrupt(path: &Path, err: DatabaseError) -> Error {
    Error::internal(
        ID,
        format!(
            "cannot open store database {}: {err}: the file is corrupt or not a redb database; move it away to start afresh",
            path.display()
        ),
    )
}

#[async_trait]
impl Store for FileStore {
    fn name(&self) -> &str {
        "file"
    }

    async fn read(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>> {
        let key = key.to_string();
        self.blocking(&options.scope.clone(), move |inner, scope| {
            if !options.prefix && !options.suffix {
                return match inner.get(&scope, &key)? {
                    Some(stored) => Ok(vec![stored.into_record(key, now_ms())]),
                    None => Err(micro_core::store::not_found(ID, &key, &scope)),
                };
            }
            let from = if options.prefix { key.as_str() } else { "" };
            let found = inner.scan(
                &scope,
                from,
                |k| !options.prefix || k.starts_with(key.as_str()),
                |k| key_matches(k, &key, options.prefix, options.suffix),
            )?;
            let now = now_ms();
            Ok(page(found, options.offset, options.limit)
                .into_iter()
                .map(|(k, stored)| stored.into_record(k, now))
                .collect())
        })
        .await
    }

    async fn write(&self, record: Record, options: WriteOptions) -> Result<()> {
        let ttl = options.ttl.or(record.expiry);
        let expires_ms = match ttl {
            Some(ttl) => Some(expiry_ms(now_ms(), ttl).ok_or_else(|| {
                Error::bad_request(ID, format!("expiry {ttl:?} is too far in the future"))
            })?),
            None => None,
        };
        let stored = Stored {
            expires_ms,
            metadata: record.metadata,
            value: record.value,
        };
        let bytes = stored
            .encode()
            .map_err(|e| Error::bad_request(ID, format!("cannot store {:?}: {e}", record.key)))?;
        let count = self.inner.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let sweep = count.is_multiple_of(SWEEP_EVERY);
        let key = record.key;
        self.blocking(&options.scope, move |inner, scope| {
            inner.put(&scope, &key, &bytes, sweep)
        })
        .await
    }

    async fn delete(&self, key: &str, options: DeleteOptions) -> Result<()> {
        let key = key.to_string();
        self.blocking(&options.scope, move |inner, scope| {
            inner.remove(&scope, &key)
        })
        .await
    }

    async fn list(&self, options: ListOptions) -> Result<Vec<String>> {
        self.blocking(&options.scope.clone(), move |inner, scope| {
            let prefix = options.prefix.unwrap_or_default();
            let suffix = options.suffix.unwrap_or_default();
            let found = inner.scan(
                &scope,
                &prefix,
                |k| k.starts_with(prefix.as_str()),
                |k| k.ends_with(suffix.as_str()),
            )?;
            Ok(page(
                found.into_iter().map(|(k, _)| k),
                options.offset,
                options.limit,
            ))
        })
        .await
    }

    async fn close(&self) -> Result<()> {
        // Files close once in-flight operations let go of them.
        self.inner
            .databases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }
}

/// The plugin-table entry: `store: { plugin: file, dir: ... }`, default scope from the
/// `store:` section's `database` and `table`.
pub fn plugin() -> Plugin {
    Plugin::store("file", "file", |ctx| {
        let config = ctx.options::<StoreConfig>()?;
        let options = ctx.options::<FileStoreOptions>()?;
        let dir = options.resolve_dir(|name| ctx.env(name));
        let store = FileStore::with_defaults(dir, Scope::new(config.database, config.table))?;
        Ok(Arc::new(store))
    })
    .with_options::<FileStoreOptions>()
}
