//! The watch that keeps the cache of a [`CacheSelector`](crate::CacheSelector) fresh: one
//! watch of every service, its events applied to the cache, reopened with backoff when it
//! fails or ends.

use crate::cache::Inner;
use futures::StreamExt;
use micro_core::registry::{Registry, WatchOptions, Watcher};
use std::sync::{Arc, Weak};
use std::time::Duration;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Applies watch events to the cache; reopens the watch with backoff when it fails or ends.
/// Holds the selector weakly: returns once it is gone (it is also aborted on drop).
pub(crate) async fn watch_loop(
    inner: Weak<Inner>,
    registry: Arc<dyn Registry>,
    mut first: Option<Watcher>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut stream = match first.take() {
            Some(stream) => stream,
            None => match registry.watch(WatchOptions::default()).await {
                Ok(stream) => {
                    // Changes between the old stream and this one were not seen.
                    let Some(inner) = inner.upgrade() else { return };
                    inner.invalidate();
                    stream
                }
                Err(err) => {
                    let Some(strong) = inner.upgrade() else {
                        return;
                    };
                    strong.warn(format!(
                        "registry watch failed, retrying in {backoff:?}: {err}"
                    ));
                    drop(strong);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let reason = loop {
            match stream.next().await {
                Some(Ok(event)) => {
                    let Some(inner) = inner.upgrade() else { return };
                    inner.apply(event);
                    backoff = BACKOFF_MIN;
                }
                Some(Err(err)) => break format!("failed: {err}"),
                None => break "ended".to_string(),
            }
        };
        drop(stream);
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.invalidate();
        strong.warn(format!("registry watch {reason}; reopening in {backoff:?}"));
        drop(strong);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
