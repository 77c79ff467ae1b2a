//! The application's own config: `get` a value by path, `watch` it for changes when the
//! config file is edited (hot reload). An invalid new file keeps the last good values and
//! logs why.

use super::loader::Loaded;
use crate::config::ConfigError;
use notify::Watcher as _;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::Dispatch;

/// How long file events are gathered before the file is read again.
const SETTLE: Duration = Duration::from_millis(50);

struct Inner {
    current: watch::Sender<Arc<Loaded>>,
    file_watcher: Mutex<Option<notify::RecommendedWatcher>>,
    logger: Dispatch,
}

/// Access to the whole effective configuration, including the application's own sections.
/// Clones share state.
#[derive(Clone)]
pub struct AppConfig {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("file", &self.inner.current.borrow().file())
            .finish()
    }
}

/// A value at one path, kept up to date as the config file changes.
pub struct ConfigWatch<T> {
    receiver: watch::Receiver<T>,
    _config: AppConfig,
}

impl<T: Clone> ConfigWatch<T> {
    /// The current value.
    pub fn get(&self) -> T {
        self.receiver.borrow().clone()
    }

    /// Waits for the next new value; `None` if watching stopped.
    pub async fn changed(&mut self) -> Option<T> {
        self.receiver.changed().await.ok()?;
        Some(self.receiver.borrow_and_update().clone())
    }
}

impl AppConfig {
    /// Wraps loaded configuration; `logger` receives reload warnings.
    pub fn new(loaded: Loaded, logger: Dispatch) -> Self {
        let (current, _) = watch::channel(Arc::new(loaded));
        AppConfig {
            inner: Arc::new(Inner {
                current,
                file_watcher: Mutex::new(None),
                logger,
            }),
        }
    }

    /// The configuration as it is now.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.inner.current.borrow().clone()
    }

    /// The value at dotted `path`, e.g. `greeter.greeting`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        self.loaded().get(path)
    }

    /// Reads the config file again now; on error the last good config stays and the error
    /// is returned.
    pub fn reload(&self) -> Result<(), ConfigError> {
        reload(&self.inner)
    }

    /// The value at `path` now and whenever the config file changes it. Needs a tokio
    /// runtime; the file is watched from the first call on.
    pub fn watch<T>(&self, path: &str) -> Result<ConfigWatch<T>, ConfigError>
    where
        T: DeserializeOwned + PartialEq + Clone + Send + Sync + 'static,
    {
        let first: T = self.get(path)?;
        self.start_file_watch()?;
        let (sender, receiver) = watch::channel(first);
        let mut configs = self.inner.current.subscribe();
        let path = path.to_string();
        let logger = self.inner.logger.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = configs.changed() => if changed.is_err() { return },
                    _ = sender.closed() => return,
                }
                let loaded = configs.borrow_and_update().clone();
                match loaded.get::<T>(&path) {
                    Ok(value) => {
                        sender.send_if_modified(|old| {
                            let modified = *old != value;
                            *old = value;
                            modified
                        });
                    }
                    Err(err) => tracing::dispatcher::with_default(&logger, || {
                        tracing::warn!(%path, error = %err, "config value is invalid after reload; keeping the last good value");
                    }),
                }
            }
        });
        Ok(ConfigWatch {
            receiver,
            _config: self.clone(),
        })
    }

    fn start_file_watch(&self) -> Result<(), ConfigError> {
        let Some(file) = self.loaded().file().map(PathBuf::from) else {
            return Ok(());
        };
        let mut guard = self
            .inner
            .file_watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if guard.is_some() {
            return Ok(());
        }
        let file = std::path::absolute(&file).unwrap_or(file);
        let dir = file
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
        let name = file.file_name().map(|n| n.to_os_string());
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && event.paths.iter().any(|p| p.file_name() == name.as_deref())
                {
                    let _ = events_tx.send(());
                }
            })
            .map_err(|e| ConfigError::Read {
                file: file.display().to_string(),
                reason: format!("cannot watch for changes: {e}"),
            })?;
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| ConfigError::Read {
                file: file.display().to_string(),
                reason: format!("cannot watch for changes: {e}"),
            })?;
        *guard = Some(watcher);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while events_rx.recv().await.is_some() {
                tokio::time::sleep(SETTLE).await;
                while events_rx.try_recv().is_ok() {}
                let Some(inner) = weak.upgrade() else { return };
                let _ = reload(&inner);
            }
        });
        Ok(())
    }
}

fn reload(inner: &Inner) -> Result<(), ConfigError> {
    let current = inner.current.borrow().clone();
    match current.reload() {
        Ok(new) => {
            inner.current.send_replace(Arc::new(new));
            Ok(())
        }
        Err(err) => {
            tracing::dispatcher::with_default(&inner.logger, || {
                tracing::warn!(error = %err, "config file changed but is invalid; keeping the last good config");
            });
            Err(err)
        }
    }
}
