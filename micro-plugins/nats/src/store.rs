//! The `nats` store: records in JetStream key-value buckets, `store: { plugin: nats }`.
//!
//! A database is a bucket (made on first write, file storage, history 1), a table is the first
//! token of the KV key (`{table}.{key}`); names are mapped reversibly to the characters NATS
//! allows (see [`names`]). A value is an envelope holding the record's metadata, its absolute
//! expiry and its value (`micro_core::store::stored`). nats-server 2.9 has no per-message TTL, so expiry is
//! enforced here: an expired record is never returned, and is deleted (only if nobody wrote
//! it since) when a read or list meets it.
//!
//! An exact read is one KV get. A prefix or suffix read and a list scan the whole table: every
//! latest value of the table comes from the server once, through a short-lived pull consumer,
//! and is decoded, filtered, sorted and paged here (subject wildcards match whole tokens only,
//! so they cannot narrow a prefix of a key).

pub mod names;

use crate::Connector;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind, KeyValueErrorKind};
use async_nats::jetstream::kv;
use async_trait::async_trait;
use futures::StreamExt;
use micro_core::config::StoreConfig;
use micro_core::logger::Logger;
use micro_core::store::stored::{Stored, expiry_ms, now_ms};
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions, key_matches, page,
};
use micro_core::{Error, Plugin, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Error id of this plugin.
const ID: &str = "go.micro.store.nats";
/// Messages asked for per fetch of a table scan.
const SCAN_BATCH: usize = 512;
/// How long one fetch of a table scan may take before the scan fails.
const SCAN_WAIT: Duration = Duration::from_secs(30);
/// The `KV-Operation` header of delete and purge markers.
const KV_OPERATION: &str = "KV-Operation";

struct Inner {
    connector: Connector,
    defaults: Scope,
    logger: Logger,
    /// Buckets opened or made by this store, by bucket name.
    buckets: Mutex<HashMap<String, kv::Store>>,
}

/// A key-value store on NATS JetStream KV buckets. Clones share the connection and the open
/// buckets.
#[derive(Clone)]
pub struct NatsStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("address", &self.inner.connector.address())
            .field("defaults", &self.inner.defaults)
            .finish()
    }
}

/// One live record met by a table scan.
struct Found {
    key: String,
    stored: Stored,
}

impl NatsStore {
    /// A store on `connector`'s server using `defaults` for the empty parts of an operation's
    /// scope. Nothing is contacted until the first operation.
    pub fn new(connector: Connector, defaults: Scope) -> Self {
        Self::with_logger(connector, defaults, Logger::none())
    }

    /// A store like [`NatsStore::new`] logging to `logger` (malformed values found in a
    /// bucket are warned about).
    pub fn with_logger(connector: Connector, defaults: Scope, logger: Logger) -> Self {
        NatsStore {
            inner: Arc::new(Inner {
                connector,
                defaults,
                logger,
                buckets: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The default scope.
    pub fn defaults(&self) -> &Scope {
        &self.inner.defaults
    }

    /// The bucket that holds database `database` (see [`names::bucket_of`]).
    pub fn bucket_of(database: &str) -> Result<String> {
        names::bucket_of(database).map_err(|e| Error::bad_request(ID, e))
    }

    /// The buckets this store (and its clones) opened or made since it was built or last
    /// closed, sorted.
    pub fn open_buckets(&self) -> Vec<String> {
        let mut names: Vec<String> = self.buckets().keys().cloned().collect();
        names.sort();
        names
    }

    fn buckets(&self) -> MutexGuard<'_, HashMap<String, kv::Store>> {
        self.inner.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scope with defaults filled, and the name of its database's bucket.
    fn resolve(&self, scope: &Scope) -> Result<(Scope, String)> {
        let scope = scope.or(&self.inner.defaults);
        let bucket = Self::bucket_of(&scope.database)?;
        Ok((scope, bucket))
    }

    /// The bucket `name`, opened once; made when `create` is on and it does not exist,
    /// `None` when it does not exist and `create` is off.
    async fn bucket(&self, name: &str, create: bool) -> Result<Option<kv::Store>> {
        if let Some(kv) = self.buckets().get(name) {
            return Ok(Some(kv.clone()));
        }
        let client = self.inner.connector.client().await?;
        let js = async_nats::jetstream::new(client);
        let kv = match js.get_key_value(name).await {
            Ok(kv) => kv,
            Err(e) if e.kind() == KeyValueErrorKind::GetBucket && stream_missing(&e) => {
                if !create {
                    return Ok(None);
                }
                make_bucket(&js, name).await?;
                js.get_key_value(name).await.map_err(|e| {
                    Error::unavailable(ID, format!("cannot open KV bucket {name:?}: {e}"))
                })?
            }
            Err(e) => {
                return Err(Error::unavailable(
                    ID,
                    format!(
                        "cannot open KV bucket {name:?}: {e}; is JetStream enabled on the \
                         server (nats-server -js)?"
                    ),
                ));
            }
        };
        self.buckets().insert(name.to_string(), kv.clone());
        Ok(Some(kv))
    }

    /// Forgets an open bucket after a failure, so the next use opens it again (it may have
    /// been deleted and made anew by someone else).
    fn forget(&self, bucket: &str) {
        self.buckets().remove(bucket);
    }

    fn warn_malformed(&self, bucket: &str, kv_key: &str, why: &str) {
        self.inner.logger.in_scope(|| {
            tracing::warn!(
                bucket,
                key = kv_key,
                "skipping a value that is not a micro store record ({why}); it was written by \
                 something else: delete it, or keep other data out of bucket {bucket:?}"
            )
        });
    }

    /// Deletes an expired record, unless it was written again since `revision`.
    async fn delete_expired(&self, kv: &kv::Store, kv_key: &str, revision: u64) {
        if let Err(e) = kv.delete_expect_revision(kv_key, Some(revision)).await {
            self.inner.logger.in_scope(|| {
                tracing::debug!(bucket = %kv.name, key = kv_key, "expired record not deleted: {e}")
            });
        }
    }

    /// Every live record of `table` in `kv`, in no particular order; expired ones met on the
    /// way are deleted, malformed ones skipped with a warning.
    async fn scan(&self, kv: &kv::Store, table: &str) -> Result<Vec<Found>> {
        let table_token = names::token_of(table);
        let filter = format!("{}{table_token}.*", kv.prefix);
        let scan_error = |what: &str, e: &dyn std::fmt::Display| {
            self.forget(&kv.name);
            Error::unavailable(
                ID,
                format!(
                    "cannot {what} table {table:?} of KV bucket {:?}: {e}",
                    kv.name
                ),
            )
        };
        let consumer = kv
            .stream
            .create_consumer(pull::Config {
                description: Some("micro store scan".to_string()),
                filter_subject: filter,
                deliver_policy: DeliverPolicy::LastPerSubject,
                ack_policy: AckPolicy::None,
                inactive_threshold: SCAN_WAIT,
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|e| scan_error("scan", &e))?;
        let now = now_ms();
        let mut found = Vec::new();
        let mut expired = Vec::new();
        let result: Result<()> = async {
            if consumer.cached_info().num_pending == 0 {
                return Ok(());
            }
            loop {
                let fetch = consumer.fetch().max_messages(SCAN_BATCH).messages();
                let mut batch = fetch.await.map_err(|e| scan_error("scan", &e))?;
                let mut got = 0usize;
                let mut done = false;
                loop {
                    let next = tokio::time::timeout(SCAN_WAIT, batch.next()).await;
                    let message = match next {
                        Err(_) => return Err(scan_error("scan", &"no answer within 30 s")),
                        Ok(None) => break,
                        Ok(Some(message)) => message.map_err(|e| scan_error("scan", &e))?,
                    };
                    got += 1;
                    let info = message.info().map_err(|e| scan_error("scan", &e))?;
                    done = info.pending == 0;
                    let revision = info.stream_sequence;
                    let Some(kv_key) = message.subject.strip_prefix(kv.prefix.as_str()) else {
                        continue;
                    };
                    let marker = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(KV_OPERATION))
                        .is_some_and(|op| op.as_str() != "PUT");
                    if marker {
                        continue;
                    }
                    let key_token = kv_key.split_once('.').map_or("", |(_, k)| k);
                    let Some(key) = names::name_of(key_token) else {
                        self.warn_malformed(&kv.name, kv_key, "the key is not one micro makes");
                        continue;
                    };
                    match Stored::decode(&message.payload) {
                        Ok(stored) if stored.live(now) => found.push(Found { key, stored }),
                        Ok(_) => expired.push((kv_key.to_string(), revision)),
                        Err(why) => self.warn_malformed(&kv.name, kv_key, &why),
                    }
                }
                if got == 0 || done {
                    return Ok(());
                }
            }
        }
        .await;
        let name = consumer.cached_info().name.clone();
        if let Err(e) = kv.stream.delete_consumer(&name).await {
            self.inner.logger.in_scope(|| {
                tracing::debug!(bucket = %kv.name, "scan consumer not deleted (it expires): {e}")
            });
        }
        result?;
        for (kv_key, revision) in expired {
            self.delete_expired(kv, &kv_key, revision).await;
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}

/// Makes bucket `name`: the stream a KV bucket is (what `create_key_value` sends, which
/// async-nats 0.52 cannot use against nats-server 2.9: it first asks for account details it
/// cannot parse from a 2.9 reply). File storage, one value per key, no age limit. A bucket
/// made meanwhile by someone else is fine.
async fn make_bucket(js: &async_nats::jetstream::Context, name: &str) -> Result<()> {
    use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
    let config = Config {
        name: format!("KV_{name}"),
        description: Some("micro store database".to_string()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    match js.get_or_create_stream(config).await {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::unavailable(
            ID,
            format!(
                "cannot create KV bucket {name:?}: {e}; is JetStream enabled on the server \
                 (nats-server -js) with room for another stream?"
            ),
        )),
    }
}

/// Whether a bucket lookup failed because the bucket's stream does not exist.
fn stream_missing(e: &async_nats::jetstream::context::KeyValueError) -> bool {
    use std::error::Error as _;
    let Some(source) = e.source().and_then(|s| s.downcast_ref::<GetStreamError>()) else {
        return false;
    };
    matches!(
        source.kind(),
        GetStreamErrorKind::JetStream(js)
            if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

#[async_trait]
impl Store for NatsStore {
    fn name(&self) -> &str {
        "nats"
    }

    async fn read(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>> {
        let (scope, bucket) = self.resolve(&options.scope)?;
        let pattern = options.prefix || options.suffix;
        let Some(kv) = self.bucket(&bucket, false).await? else {
            return if pattern {
                Ok(Vec::new())
            } else {
                Err(micro_core::store::not_found(ID, key, &scope))
            };
        };
        if pattern {
            let found = self.scan(&kv, &scope.table).await?;
            let now = now_ms();
            let matching = found
                .into_iter()
                .filter(|f| key_matches(&f.key, key, options.prefix, options.suffix));
            return Ok(page(matching, options.offset, options.limit)
                .into_iter()
                .map(|f| f.stored.into_record(f.key, now))
                .collect());
        }
        let kv_key = names::kv_key(&scope.table, key).map_err(|e| Error::bad_request(ID, e))?;
        let entry = kv.entry(kv_key.as_str()).await.map_err(|e| {
            self.forget(&bucket);
            Error::unavailable(
                ID,
                format!("cannot read key {key:?} from KV bucket {bucket:?}: {e}"),
            )
        })?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Err(micro_core::store::not_found(ID, key, &scope));
        };
        let now = now_ms();
        match Stored::decode(&entry.value) {
            Ok(stored) if stored.live(now) => Ok(vec![stored.into_record(key.to_string(), now)]),
            Ok(_) => {
                self.delete_expired(&kv, &kv_key, entry.revision).await;
                Err(micro_core::store::not_found(ID, key, &scope))
            }
            Err(why) => {
                self.warn_malformed(&bucket, &kv_key, &why);
                Err(micro_core::store::not_found(ID, key, &scope))
            }
        }
    }

    async fn write(&self, record: Record, options: WriteOptions) -> Result<()> {
        let (scope, bucket) = self.resolve(&options.scope)?;
        let kv_key =
            names::kv_key(&scope.table, &record.key).map_err(|e| Error::bad_request(ID, e))?;
        let expires_ms =
            match options.ttl.or(record.expiry) {
                // Never 0, which means "no expiry" in the envelope.
                Some(ttl) => Some(expiry_ms(now_ms(), ttl).map(|at| at.max(1)).ok_or_else(
                    || Error::bad_request(ID, format!("expiry {ttl:?} is too far in the future")),
                )?),
                None => None,
            };
        let bytes = Stored {
            expires_ms,
            metadata: record.metadata,
            value: record.value,
        }
        .encode()
        .map_err(|e| Error::bad_request(ID, format!("cannot store {:?}: {e}", record.key)))?;
        let mut retried = false;
        loop {
            let Some(kv) = self.bucket(&bucket, true).await? else {
                return Err(Error::internal(
                    ID,
                    format!("KV bucket {bucket:?} not made"),
                ));
            };
            match kv.put(kv_key.as_str(), bytes.clone()).await {
                Ok(_) => return Ok(()),
                // The bucket may have been deleted since it was opened: open or make it again.
                Err(_) if !retried => {
                    self.forget(&bucket);
                    retried = true;
                }
                Err(e) => {
                    self.forget(&bucket);
                    return Err(Error::unavailable(
                        ID,
                        format!(
                            "cannot write key {:?} to KV bucket {bucket:?}: {e}; values are \
                             limited by the server's max_payload (1 MB by default)",
                            record.key
                        ),
                    ));
                }
            }
        }
    }

    async fn delete(&self, key: &str, options: DeleteOptions) -> Result<()> {
        let (scope, bucket) = self.resolve(&options.scope)?;
        let kv_key = names::kv_key(&scope.table, key).map_err(|e| Error::bad_request(ID, e))?;
        let Some(kv) = self.bucket(&bucket, false).await? else {
            return Ok(());
        };
        kv.delete(kv_key.as_str()).await.map_err(|e| {
            self.forget(&bucket);
            Error::unavailable(
                ID,
                format!("cannot delete key {key:?} from KV bucket {bucket:?}: {e}"),
            )
        })
    }

    async fn list(&self, options: ListOptions) -> Result<Vec<String>> {
        let (scope, bucket) = self.resolve(&options.scope)?;
        let Some(kv) = self.bucket(&bucket, false).await? else {
            return Ok(Vec::new());
        };
        let prefix = options.prefix.as_deref().unwrap_or("");
        let suffix = options.suffix.as_deref().unwrap_or("");
        let found = self.scan(&kv, &scope.table).await?;
        let matching = found
            .into_iter()
            .map(|f| f.key)
            .filter(|k| k.starts_with(prefix) && k.ends_with(suffix));
        Ok(page(matching, options.offset, options.limit))
    }

    async fn close(&self) -> Result<()> {
        self.buckets().clear();
        if let Some(client) = self.inner.connector.connected() {
            client.flush().await.map_err(|e| {
                Error::unavailable(ID, format!("cannot flush the NATS connection: {e}"))
            })?;
        }
        Ok(())
    }
}

/// The plugin-table entry: `store: { plugin: nats, addresses: [...] }`, default scope from
/// the `store:` section's `database` and `table`.
pub fn plugin() -> Plugin {
    Plugin::store("nats", "nats", |ctx| {
        let config = ctx.options::<StoreConfig>()?;
        names::bucket_of(&config.database).map_err(|e| {
            Error::bad_request(ID, format!("store.database {:?}: {e}", config.database))
        })?;
        let connector = Connector::new(&config.addresses, "store");
        let defaults = Scope::new(config.database, config.table);
        Ok(Arc::new(NatsStore::with_logger(
            connector,
            defaults,
            ctx.logger.clone(),
        )))
    })
}
