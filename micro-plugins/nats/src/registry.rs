//! Service discovery on a NATS JetStream key-value bucket, with per-node TTLs and watches.
//!
//! Layout: one bucket ([`BUCKET`], file storage, history 1, so it survives a server restart)
//! with one key per node, `<service>.<version>.<node>`, each part escaped with [`escape`]
//! (`greeter`, `1.0.0`, `n1` → `greeter.1=2E0=2E0.n1`). The value is a JSON [`Record`]: the
//! service version with that one node, and `expires_at` (Unix milliseconds, the writer's
//! clock) when it was registered with a TTL.
//!
//! Semantics (as the memory registry):
//! - `register` writes one record per node; registering again replaces the node's data and
//!   restarts its TTL. A TTL of `None` (or zero) keeps the node until it is deregistered.
//! - `deregister` deletes the nodes' keys; a version without nodes disappears.
//! - Readers (`get_service`, `list_services`) ignore records past `expires_at` and delete
//!   them (only the revision they read, so a concurrent refresh is never lost). Records of a
//!   version are merged into one `Service`; its metadata and endpoints are those of the
//!   newest record.
//! - `watch` loads the current records, then follows the bucket: the first node of a
//!   version is `Create`, a node added or changed is `Update` (both carry every live node of
//!   the version this watcher knows), a pure TTL refresh sends nothing, a deleted key is
//!   `Delete` with its node. A local timer sends `Delete` when a node's `expires_at` passes
//!   without a refresh, so expiry is reported without anyone reading.
//! - A record that is not what this registry writes is skipped with a warning naming its
//!   key, never a panic.
//!
//! Every node registered through a [`NatsRegistry`] also answers the NATS service API (see
//! [`crate::service_api`]).

mod record;
mod watch;

pub use record::{Record, escape, node_key, unescape};

use crate::connection::Connector;
use crate::service_api::ServiceApi;
use async_nats::jetstream::kv::{self, Operation, Store};
use futures::{StreamExt, TryStreamExt};
use micro_core::config::RegistryConfig;
use micro_core::logger::Logger;
use micro_core::middleware::RpcLayer;
use micro_core::registry::{RegisterOptions, Registry, Service, WatchOptions, Watcher};
use micro_core::{Error, Plugin, Result};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::OnceCell;

/// The bucket the registry keeps its records in, unless [`NatsRegistry::with_bucket`] says
/// otherwise.
pub const BUCKET: &str = "micro_registry";

const ID: &str = "go.micro.registry";

/// Records read at once when listing.
const READ_CONCURRENCY: usize = 16;

/// A registry on NATS; cheap to clone, clones share the connection and the service API
/// responders.
#[derive(Clone, Debug)]
pub struct NatsRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    bucket: String,
    store: OnceCell<Store>,
    logger: Logger,
    api: ServiceApi,
}

/// A record read from the bucket, with its key and revision.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub key: String,
    pub revision: u64,
    pub record: Record,
}

impl NatsRegistry {
    /// A registry on the NATS servers of `connector`, in bucket [`BUCKET`].
    pub fn new(connector: Connector) -> Self {
        NatsRegistry {
            inner: Arc::new(Inner {
                connector,
                bucket: BUCKET.to_string(),
                store: OnceCell::new(),
                logger: Logger::none(),
                api: ServiceApi::new(Logger::none()),
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                f(&mut inner);
                NatsRegistry {
                    inner: Arc::new(inner),
                }
            }
            // Shared already: settings are for a registry being built.
            Err(inner) => NatsRegistry { inner },
        }
    }

    /// The same registry using another bucket (before first use).
    pub fn with_bucket(self, bucket: &str) -> Self {
        let bucket = bucket.to_string();
        self.rebuild(|inner| inner.bucket = bucket)
    }

    /// The same registry logging to `logger` (malformed records, failed clean-ups).
    pub fn with_logger(self, logger: Logger) -> Self {
        self.rebuild(|inner| {
            inner.api = ServiceApi::new(logger.clone());
            inner.logger = logger;
        })
    }

    /// The service API responders of the nodes registered here, and their request counts.
    pub fn service_api(&self) -> &ServiceApi {
        &self.inner.api
    }

    /// The bucket, opened (or created) on first use.
    pub(crate) async fn store(&self) -> Result<Store> {
        let inner = &self.inner;
        inner
            .store
            .get_or_try_init(|| async {
                let client = inner.connector.client().await?;
                open_bucket(async_nats::jetstream::new(client), &inner.bucket).await
            })
            .await
            .cloned()
    }

    pub(crate) fn warn_malformed(&self, key: &str, problem: &str) {
        let bucket = &self.inner.bucket;
        self.inner.logger.in_scope(|| {
            tracing::warn!(
                bucket = %bucket,
                key = %key,
                "registry: skipping the malformed record under key {key} of bucket {bucket}: \
                 {problem}; delete it (nats kv del {bucket} {key}) or let its service register again"
            )
        });
    }

    /// Deletes an expired record, unless it changed since `revision` was read.
    pub(crate) async fn delete_expired(&self, store: &Store, key: &str, revision: u64) {
        if let Err(err) = store.delete_expect_revision(key, Some(revision)).await {
            // Refreshed or deleted meanwhile: nothing to clean.
            self.inner.logger.in_scope(|| {
                tracing::debug!(key = %key, error = %err, "registry: expired record not deleted")
            });
        }
    }

    /// Every live record whose key starts with `prefix`; expired ones are deleted,
    /// malformed ones skipped with a warning.
    pub(crate) async fn read(&self, store: &Store, prefix: &str) -> Result<Vec<Stored>> {
        let bucket = &self.inner.bucket;
        // The keys from the stream's subject counts (one request, no consumer): async-nats'
        // `keys()` runs an ordered consumer that can end its listing early under load.
        // Deleted keys keep a delete marker and are listed too; their entries are skipped.
        let filter = format!("{}{prefix}>", store.prefix);
        let mut keys: Vec<String> = store
            .stream
            .info_with_subjects(&filter)
            .await
            .map_err(|e| read_failed(bucket, e))?
            .try_filter_map(|(subject, _)| {
                let key = subject
                    .strip_prefix(store.prefix.as_str())
                    .map(str::to_string);
                futures::future::ready(Ok(key))
            })
            .try_collect()
            .await
            .map_err(|e| read_failed(bucket, e))?;
        keys.sort_unstable();
        let entries: Vec<Option<kv::Entry>> = futures::stream::iter(keys)
            .map(|key| async move { store.entry(key).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await
            .map_err(|e| read_failed(bucket, e))?;
        let now = SystemTime::now();
        let mut live = Vec::new();
        for entry in entries.into_iter().flatten() {
            if entry.operation != Operation::Put {
                continue;
            }
            match Record::parse(&entry.key, &entry.value) {
                Err(problem) => self.warn_malformed(&entry.key, &problem),
                Ok(record) if record.expired(now) => {
                    self.delete_expired(store, &entry.key, entry.revision).await;
                }
                Ok(record) => live.push(Stored {
                    key: entry.key,
                    revision: entry.revision,
                    record,
                }),
            }
        }
        Ok(live)
    }
}

/// Opens `bucket`, creating it when it does not exist.
///
/// The bucket's stream is created directly with the configuration async-nats'
/// `create_key_value` would use: that call first asks for the account info, which
/// async-nats 0.52 cannot parse from a 2.9 server.
async fn open_bucket(js: async_nats::jetstream::Context, bucket: &str) -> Result<Store> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = async_nats::jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(
            "micro service registry: one key per node, <service>.<version>.<node>".to_string(),
        ),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: async_nats::jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let created = js.create_stream(config).await.err();
    // Created now, or by another process at the same moment.
    js.get_key_value(bucket).await.map_err(|open| {
        let why = created
            .map(|e| e.to_string())
            .unwrap_or_else(|| open.to_string());
        Error::unavailable(
            ID,
            format!(
                "registry: cannot open or create the JetStream key-value bucket {bucket}: \
                 {why}; is JetStream enabled on the NATS server (nats-server -js)?"
            ),
        )
    })
}

fn read_failed(bucket: &str, e: impl std::fmt::Display) -> Error {
    Error::unavailable(
        ID,
        format!("registry: reading bucket {bucket} failed: {e}; is the NATS server up?"),
    )
}

/// Groups records into one `Service` per `(name, version)`, nodes sorted by id; metadata
/// and endpoints come from the newest record.
pub(crate) fn group(records: impl IntoIterator<Item = Stored>) -> Vec<Service> {
    micro_core::registry::group_versions(
        records.into_iter().map(|s| (s.revision, s.record.service)),
    )
}

#[async_trait::async_trait]
impl Registry for NatsRegistry {
    fn name(&self) -> &str {
        "nats"
    }

    async fn register(&self, service: &Service, options: RegisterOptions) -> Result<()> {
        if service.name.is_empty() {
            return Err(Error::bad_request(
                ID,
                "registry: the service has no name; give it one (server.name)",
            ));
        }
        let store = self.store().await?;
        let now = SystemTime::now();
        let mut expires = None;
        for node in &service.nodes {
            let record = Record::new(service, node, options.ttl, now);
            expires = record.expiry();
            let key = node_key(&service.name, &service.version, &node.id);
            let value = serde_json::to_vec(&record).map_err(|e| {
                Error::internal(ID, format!("registry: encoding the record of {key}: {e}"))
            })?;
            store.put(&key, value.into()).await.map_err(|e| {
                Error::unavailable(
                    ID,
                    format!(
                        "registry: writing {key} to bucket {} failed: {e}; is the NATS server up?",
                        self.inner.bucket
                    ),
                )
            })?;
        }
        let client = self.inner.connector.client().await?;
        self.inner.api.register(&client, service, expires).await
    }

    async fn deregister(&self, service: &Service) -> Result<()> {
        self.inner.api.deregister(service);
        let store = self.store().await?;
        for node in &service.nodes {
            let key = node_key(&service.name, &service.version, &node.id);
            // Only keys that hold a node: deleting unknown ones would leave markers behind.
            let present = store
                .entry(key.clone())
                .await
                .map_err(|e| read_failed(&self.inner.bucket, e))?
                .is_some_and(|e| e.operation == Operation::Put);
            if present {
                store.delete(&key).await.map_err(|e| {
                    Error::unavailable(
                        ID,
                        format!(
                            "registry: deleting {key} from bucket {} failed: {e}; is the NATS server up?",
                            self.inner.bucket
                        ),
                    )
                })?;
            }
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let store = self.store().await?;
        let found = group(self.read(&store, &record::service_prefix(name)).await?);
        let found: Vec<Service> = found.into_iter().filter(|s| s.name == name).collect();
        if found.is_empty() {
            return Err(Error::not_found(
                ID,
                format!("service {name} not found in the nats registry"),
            ));
        }
        Ok(found)
    }

    async fn list_services(&self) -> Result<Vec<Service>> {
        let store = self.store().await?;
        Ok(group(self.read(&store, "").await?))
    }

    async fn watch(&self, options: WatchOptions) -> Result<Watcher> {
        watch::start(self.clone(), options.service).await
    }

    fn handler_layer(&self) -> Option<RpcLayer> {
        Some(self.inner.api.layer())
    }
}

/// The plugin-table entry: `registry: {plugin: nats, addresses: [nats://host:4222]}`.
pub fn plugin() -> Plugin {
    Plugin::registry("nats", "nats", |ctx| {
        let config: RegistryConfig = ctx.options()?;
        let connector = Connector::new(&config.addresses, "registry");
        Ok(Arc::new(
            NatsRegistry::new(connector).with_logger(ctx.logger.clone()),
        ))
    })
}
