//! Service discovery on etcd, `registry: { plugin: etcd }`, in go-micro's etcd layout.
//!
//! Layout: one key per node, `<prefix><service>/<node-id>` (prefix `/micro/registry/` by
//! default, names escaped by [`crate::key::escape`]); the value is the JSON of the service
//! (go-micro's shape: name, version, metadata, endpoints) with that one node.
//!
//! Semantics:
//! - `register` with a TTL puts each node's key under a lease of that TTL (whole seconds,
//!   rounded up; etcd raises a TTL below its minimum, 2 s with default settings, to that
//!   minimum). Registering the same node again with the same data and TTL refreshes the
//!   lease (one keep-alive, as go-micro does) and writes only if the key was changed or
//!   deleted behind its back; changed data is put under a new lease and the old lease is
//!   revoked. The service's periodic re-registration is what keeps a node alive: a node not
//!   registered again within its TTL disappears (etcd deletes the key with the lease), also
//!   when the process is killed. Without a TTL a node stays until deregistered.
//! - A node id names one node of a service, whatever its version (go-micro's layout):
//!   registering it under another version moves it.
//! - `deregister` deletes the node's key (only if it holds the version deregistered) and
//!   revokes the lease this registry gave it.
//! - `get_service` and `list_services` read by prefix and group the records by version; the
//!   metadata and endpoints of a version are those of its most recently written record.
//! - `watch` follows the prefix with an etcd watch from the revision of a first read, and
//!   resumes (read again, watch again) after etcd went away; see the README.
//! - A value that is not such a record is skipped with a WARN naming its key.

mod watch;

use crate::connection::Connector;
use crate::key::{node_key, normalize_prefix, service_prefix};
use crate::options::EtcdRegistryOptions;
use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, PutOptions, Txn, TxnOp};
use micro_core::config::RegistryConfig;
use micro_core::logger::Logger;
use micro_core::registry::{Node, RegisterOptions, Registry, Service, WatchOptions, Watcher};
use micro_core::{Error, Plugin, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const ID: &str = "go.micro.registry.etcd";

/// A registry on etcd; cheap to clone, clones share the client and the leases.
#[derive(Clone, Debug)]
pub struct EtcdRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    prefix: String,
    logger: Logger,
    /// What this registry wrote under each key it registered with a TTL.
    leased: Mutex<HashMap<String, Leased>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Leased {
    lease: i64,
    ttl: i64,
    value: Vec<u8>,
}

/// A record read from etcd: its key, the revision it was written at, and the service with
/// its one node.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub key: String,
    pub revision: i64,
    pub service: Service,
}

impl EtcdRegistry {
    /// A registry on `connector`'s etcd, under key prefix `prefix` (`/micro/registry/` is
    /// go-micro's; a missing final `/` is added).
    pub fn new(connector: Connector, prefix: &str) -> Self {
        EtcdRegistry {
            inner: Arc::new(Inner {
                connector,
                prefix: normalize_prefix(prefix),
                logger: Logger::none(),
                leased: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The same registry logging to `logger` (malformed records, watch reconnects); before
    /// first use.
    pub fn with_logger(self, logger: Logger) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.logger = logger;
                EtcdRegistry {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => EtcdRegistry { inner },
        }
    }

    /// The key prefix of the records (ends in `/`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn leased(&self) -> MutexGuard<'_, HashMap<String, Leased>> {
        self.inner.leased.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.inner.connector
    }

    pub(crate) fn logger(&self) -> &Logger {
        &self.inner.logger
    }

    pub(crate) fn warn_malformed(&self, key: &str, problem: &str) {
        self.inner.logger.in_scope(|| {
            tracing::warn!(
                key = %key,
                "registry: skipping the malformed record under etcd key {key}: {problem}; \
                 delete it (etcdctl del {key}) or let its service register again"
            )
        });
    }

    /// Reads the record of `kv`, or says what is wrong with it.
    pub(crate) fn parse(&self, kv: &KeyValue) -> std::result::Result<Stored, String> {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let service: Service = serde_json::from_slice(kv.value())
            .map_err(|e| format!("not a registry record (JSON of a service with one node): {e}"))?;
        let [node] = service.nodes.as_slice() else {
            return Err(format!(
                "a registry record holds exactly one node, this one {}",
                service.nodes.len()
            ));
        };
        if service.name.is_empty() {
            return Err("the record's service has no name".to_string());
        }
        let expected = node_key(&self.inner.prefix, &service.name, &node.id);
        if expected != key {
            return Err(format!(
                "the record describes the node stored under key {expected}, not this key"
            ));
        }
        Ok(Stored {
            key,
            revision: kv.mod_revision(),
            service,
        })
    }

    /// Every record under `prefix` (malformed ones skipped with a warning) and the revision
    /// of the read.
    pub(crate) async fn read(&self, prefix: &str) -> Result<(Vec<Stored>, i64)> {
        let what = format!("read the registry keys under {prefix}");
        let response = self
            .inner
            .connector
            .call(&what, |mut c| {
                let prefix = prefix.to_string();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let mut records = Vec::new();
        for kv in response.kvs() {
            match self.parse(kv) {
                Ok(stored) => records.push(stored),
                Err(problem) => self.warn_malformed(&String::from_utf8_lossy(kv.key()), &problem),
            }
        }
        Ok((records, revision))
    }

    async fn register_node(&self, service: &Service, node: &Node, ttl: Option<i64>) -> Result<()> {
        let key = node_key(&self.inner.prefix, &service.name, &node.id);
        let record = Service {
            nodes: vec![node.clone()],
            ..service.clone()
        };
        let value = serde_json::to_vec(&record).map_err(|e| {
            Error::internal(ID, format!("registry: encoding the record of {key}: {e}"))
        })?;
        let connector = &self.inner.connector;
        let known = self.leased().get(&key).cloned();
        // The same record again: a refresh of its lease.
        if let (Some(ttl), Some(known)) = (ttl, &known)
            && known.ttl == ttl
            && known.value == value
        {
            let what = format!("refresh the lease of {key}");
            let alive = connector
                .call(&what, |mut c| async move {
                    match c.lease_keep_alive(known.lease).await {
                        Ok(_) => Ok(true),
                        Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if alive {
                // Put back only if the key lost the record or the lease meanwhile.
                let txn = Txn::new()
                    .when([
                        Compare::lease(key.clone(), CompareOp::Equal, known.lease),
                        Compare::value(key.clone(), CompareOp::Equal, value.clone()),
                    ])
                    .or_else([TxnOp::put(
                        key.clone(),
                        value.clone(),
                        Some(PutOptions::new().with_lease(known.lease)),
                    )]);
                let what = format!("write {key}");
                connector
                    .call(&what, |mut c| async move { c.txn(txn).await })
                    .await?;
                return Ok(());
            }
        }
        let lease = match ttl {
            Some(ttl) => {
                let what = format!("grant a lease of {ttl} s for {key}");
                let granted = connector
                    .call(&what, |mut c| async move { c.lease_grant(ttl, None).await })
                    .await?;
                Some(granted.id())
            }
            None => None,
        };
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        let what = format!("write {key}");
        let put = connector
            .call(&what, |mut c| {
                let (key, value) = (key.clone(), value.clone());
                async move { c.put(key, value, options).await }
            })
            .await;
        if let Err(e) = put {
            if let Some(lease) = lease {
                self.revoke(lease).await;
            }
            return Err(e);
        }
        match (lease, ttl) {
            (Some(lease), Some(ttl)) => {
                self.leased().insert(key, Leased { lease, ttl, value });
            }
            _ => {
                self.leased().remove(&key);
            }
        }
        // The key holds the new lease now: the old one holds nothing.
        if let Some(old) = known
            && Some(old.lease) != lease
        {
            self.revoke(old.lease).await;
        }
        Ok(())
    }

    /// Revokes `lease`, best effort: one that is gone already needs nothing.
    async fn revoke(&self, lease: i64) {
        let result = self
            .inner
            .connector
            .call("revoke a lease", |mut c| async move {
                c.lease_revoke(lease).await
            })
            .await;
        if let Err(e) = result {
            self.inner.logger.in_scope(|| {
                tracing::debug!(lease, error = %e, "registry: lease not revoked (it lapses by its ttl)")
            });
        }
    }

    async fn deregister_node(&self, service: &Service, node: &Node) -> Result<()> {
        let key = node_key(&self.inner.prefix, &service.name, &node.id);
        let connector = &self.inner.connector;
        let what = format!("read {key}");
        let current = connector
            .call(&what, |mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        let Some(kv) = current.kvs().first() else {
            self.leased().remove(&key);
            return Ok(());
        };
        // Another version of the node: not this deregistration's to delete.
        if let Ok(stored) = self.parse(kv)
            && stored.service.version != service.version
        {
            return Ok(());
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                kv.mod_revision(),
            )])
            .and_then([TxnOp::delete(key.clone(), None)]);
        let what = format!("delete {key}");
        connector
            .call(&what, |mut c| async move { c.txn(txn).await })
            .await?;
        let leased = self.leased().remove(&key);
        if let Some(leased) = leased {
            self.revoke(leased.lease).await;
        }
        Ok(())
    }
}

/// Whole seconds of a TTL, rounded up (etcd leases count in seconds); `None` for no TTL.
fn ttl_seconds(ttl: Option<Duration>) -> Option<i64> {
    let ttl = ttl.filter(|t| !t.is_zero())?;
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    Some(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Groups records into one `Service` per `(name, version)`, nodes sorted by id; metadata
/// and endpoints come from the newest record.
pub(crate) fn group(records: impl IntoIterator<Item = Stored>) -> Vec<Service> {
    micro_core::registry::group_versions(
        records
            .into_iter()
            .map(|s| (s.revision.max(0) as u64, s.service)),
    )
}

#[async_trait::async_trait]
impl Registry for EtcdRegistry {
    fn name(&self) -> &str {
        "etcd"
    }

    async fn register(&self, service: &Service, options: RegisterOptions) -> Result<()> {
        if service.name.is_empty() {
            return Err(Error::bad_request(
                ID,
                "registry: the service has no name; give it one (server.name)",
            ));
        }
        let ttl = ttl_seconds(options.ttl);
        for node in &service.nodes {
            self.register_node(service, node, ttl).await?;
        }
        Ok(())
    }

    async fn deregister(&self, service: &Service) -> Result<()> {
        for node in &service.nodes {
            self.deregister_node(service, node).await?;
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let prefix = service_prefix(&self.inner.prefix, name);
        let (records, _) = self.read(&prefix).await?;
        let found: Vec<Service> = group(records)
            .into_iter()
            .filter(|s| s.name == name)
            .collect();
        if found.is_empty() {
            return Err(Error::not_found(
                ID,
                format!("service {name} not found in the etcd registry"),
            ));
        }
        Ok(found)
    }

    async fn list_services(&self) -> Result<Vec<Service>> {
        let (records, _) = self.read(&self.inner.prefix).await?;
        Ok(group(records))
    }

    async fn watch(&self, options: WatchOptions) -> Result<Watcher> {
        watch::start(self.clone(), options.service).await
    }
}

/// The plugin-table entry: `registry: { plugin: etcd, addresses: [127.0.0.1:2379] }`.
pub fn plugin() -> Plugin {
    Plugin::registry("etcd", "etcd", |ctx| {
        let config: RegistryConfig = ctx.options()?;
        let options: EtcdRegistryOptions = ctx.options()?;
        let connector = Connector::new(options.settings(&config.addresses), "registry")?;
        Ok(Arc::new(
            EtcdRegistry::new(connector, &options.prefix).with_logger(ctx.logger.clone()),
        ))
    })
    .with_options::<EtcdRegistryOptions>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(None), None);
        assert_eq!(ttl_seconds(Some(Duration::ZERO)), None);
        assert_eq!(ttl_seconds(Some(Duration::from_millis(1))), Some(1));
        assert_eq!(ttl_seconds(Some(Duration::from_secs(2))), Some(2));
        assert_eq!(ttl_seconds(Some(Duration::from_millis(2001))), Some(3));
    }
}
