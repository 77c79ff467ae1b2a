//! What a [`crate::LocalRegistry`] value and its watchers share: the directory and its
//! settings, the channel of changes made through the value, the lock that orders those
//! changes against watcher scans, and reading the directory off the async threads.

use crate::dir::ERROR_ID;
use crate::files::{self, NodeRecord};
use micro_core::logger::Logger;
use micro_core::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{RwLock, broadcast};

/// (service, version, node id).
pub(crate) type Key = (String, String, String);

/// A change made through one registry value, sent to its own watchers right away.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A node was written.
    Put(NodeRecord),
    /// A node was removed.
    Remove(Key),
}

/// The state of one registry value (and its clones).
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub logger: Logger,
    pub scan_interval: Duration,
    /// Changes made through this value (and its clones), for its watchers: reported at
    /// once, so even a node registered and deregistered between two scans is seen.
    pub changes: broadcast::Sender<Change>,
    /// Orders changes against watcher scans: `register`/`deregister` hold it shared while
    /// they write and announce, a watcher holds it exclusively while it takes in the
    /// announced changes and scans. So a change a watcher receives later is newer than its
    /// snapshot, never older.
    pub order: Arc<RwLock<()>>,
}

impl Shared {
    /// Live node records (of one service when `service` is given).
    pub(crate) async fn records(
        self: &Arc<Self>,
        service: Option<&str>,
    ) -> Result<Vec<NodeRecord>> {
        let shared = self.clone();
        let service = service.map(str::to_string);
        blocking(move || {
            files::scan(&shared.dir, service.as_deref(), &shared.logger).map_err(|err| {
                Error::internal(
                    ERROR_ID,
                    format!(
                        "local registry: cannot read {}: {err}",
                        shared.dir.display()
                    ),
                )
            })
        })
        .await
    }
}

/// Runs blocking file-system work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        Error::internal(
            ERROR_ID,
            format!("local registry: file-system task failed: {err}"),
        )
    })?
}
