//! [`LocalRegistry`]: the [`Registry`] over a directory shared by the processes of one user.

use crate::dir::ERROR_ID;
use crate::files::{self, NodeRecord};
use crate::shared::{Change, Shared, blocking};
use async_trait::async_trait;
use micro_core::logger::Logger;
use micro_core::registry::{
    RegisterOptions, Registry, Service, WatchOptions, Watcher, version_or_latest,
};
use micro_core::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often a watcher re-reads the directory when nothing wakes it earlier.
const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Local changes buffered per watcher; one that falls further behind re-scans instead.
const CHANGES: usize = 1024;

/// A host-local registry: one JSON file per node under a directory, so services in separate
/// processes of one user on one machine find each other without network or configuration.
///
/// The value is cheap to clone; clones share nothing but the directory, as do registries in
/// other processes. See the crate documentation for the on-disk format.
#[derive(Clone)]
pub struct LocalRegistry {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for LocalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRegistry")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl LocalRegistry {
    /// A registry in `dir`, created (mode 0700) when missing. Blocking: call it while
    /// building, not on a hot async path.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        files::create_dir_private(&dir).map_err(|err| {
            Error::internal(
                ERROR_ID,
                format!(
                    "local registry: cannot create directory {}: {err}",
                    dir.display()
                ),
            )
        })?;
        Ok(LocalRegistry {
            inner: Arc::new(Shared {
                dir,
                logger: Logger::none(),
                scan_interval: DEFAULT_SCAN_INTERVAL,
                changes: broadcast::channel(CHANGES).0,
                order: Arc::default(),
            }),
        })
    }

    /// The same registry logging to `logger` (debug: skipped files, expired nodes).
    pub fn with_logger(self, logger: Logger) -> Self {
        self.rebuild(|inner| inner.logger = logger)
    }

    /// The same registry with watchers re-reading the directory every `interval` at most
    /// (default 1s) besides file-system notifications; TTL expiry is noticed on time anyway.
    pub fn with_scan_interval(self, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(10));
        self.rebuild(|inner| inner.scan_interval = interval)
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn rebuild(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut inner = Shared {
            dir: self.inner.dir.clone(),
            logger: self.inner.logger.clone(),
            scan_interval: self.inner.scan_interval,
            changes: self.inner.changes.clone(),
            order: self.inner.order.clone(),
        };
        change(&mut inner);
        LocalRegistry {
            inner: Arc::new(inner),
        }
    }
}

fn check_service(service: &Service) -> Result<()> {
    if service.name.is_empty() {
        return Err(Error::bad_request(
            ERROR_ID,
            "local registry: the service name is empty",
        ));
    }
    if let Some(i) = service.nodes.iter().position(|n| n.id.is_empty()) {
        return Err(Error::bad_request(
            ERROR_ID,
            format!(
                "local registry: node {i} of service {:?} has an empty id",
                service.name
            ),
        ));
    }
    Ok(())
}

#[async_trait]
impl Registry for LocalRegistry {
    fn name(&self) -> &str {
        "local"
    }

    async fn register(&self, service: &Service, options: RegisterOptions) -> Result<()> {
        check_service(service)?;
        let now = files::now_millis();
        // As in go-micro, a zero TTL means no expiry.
        let expires_at = options
            .ttl
            .filter(|t| !t.is_zero())
            .map(|ttl| now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)));
        let records: Vec<NodeRecord> = service
            .nodes
            .iter()
            .map(|node| NodeRecord {
                service: Service {
                    name: service.name.clone(),
                    version: version_or_latest(&service.version).to_string(),
                    metadata: service.metadata.clone(),
                    endpoints: service.endpoints.clone(),
                    nodes: vec![node.clone()],
                },
                expires_at,
                registered_at: now,
            })
            .collect();
        let (dir, changes) = (self.inner.dir.clone(), self.inner.changes.clone());
        let order = self.inner.order.clone().read_owned().await;
        blocking(move || {
            let _order = order; // held until the changes are written and announced
            for record in records {
                files::write_record(&dir, &record).map_err(|err| {
                    Error::internal(
                        ERROR_ID,
                        format!(
                            "local registry: cannot write node {:?} of {:?} in {}: {err}",
                            record.node().map(|n| n.id.as_str()).unwrap_or_default(),
                            record.service.name,
                            dir.display()
                        ),
                    )
                })?;
                // No watcher listening is fine.
                let _ = changes.send(Change::Put(record));
            }
            Ok(())
        })
        .await
    }

    async fn deregister(&self, service: &Service) -> Result<()> {
        check_service(service)?;
        let service = service.clone();
        let (dir, changes) = (self.inner.dir.clone(), self.inner.changes.clone());
        let order = self.inner.order.clone().read_owned().await;
        blocking(move || {
            let _order = order; // held until the changes are written and announced
            let version = version_or_latest(&service.version);
            for node in &service.nodes {
                files::remove_record(&dir, &service.name, version, &node.id).map_err(|err| {
                    Error::internal(
                        ERROR_ID,
                        format!(
                            "local registry: cannot remove node {:?} of {:?} in {}: {err}",
                            node.id,
                            service.name,
                            dir.display()
                        ),
                    )
                })?;
                let key = (service.name.clone(), version.to_string(), node.id.clone());
                let _ = changes.send(Change::Remove(key));
            }
            Ok(())
        })
        .await
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let records = self.inner.records(Some(name)).await?;
        let services = files::group(records.iter().filter(|r| r.service.name == name));
        if services.is_empty() {
            return Err(Error::not_found(
                ERROR_ID,
                format!("service {name}: not found"),
            ));
        }
        Ok(services)
    }

    async fn list_services(&self) -> Result<Vec<Service>> {
        let records = self.inner.records(None).await?;
        Ok(files::group(&records))
    }

    async fn watch(&self, options: WatchOptions) -> Result<Watcher> {
        crate::watch::start(self.inner.clone(), options).await
    }
}
