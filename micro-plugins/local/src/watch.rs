//! Watching the directory: file-system notifications wake a re-scan, a timer re-scans anyway
//! (at the next TTL expiry, at most every scan interval), and consecutive snapshots are
//! diffed into watch events. Changes made through the watched registry value itself come
//! straight from `register`/`deregister` too, so none of them is missed between two scans.

use crate::files::{self, NodeRecord};
use crate::shared::{Change, Key, Shared, blocking};
use futures::StreamExt;
use micro_core::Result;
use micro_core::logger::Logger;
use micro_core::registry::{Action, WatchEvent, WatchOptions, Watcher};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;

/// Live records by key.
type Snapshot = BTreeMap<Key, NodeRecord>;

/// Lets a burst of file-system events (temp file, rename, ...) settle into one re-scan.
const SETTLE: Duration = Duration::from_millis(20);
/// Events buffered for a slow consumer before the watcher waits for it.
const BUFFER: usize = 64;

/// Starts a watcher: the snapshot is taken before this returns, so every change after it is
/// reported. The background task ends when the returned stream is dropped.
pub(crate) async fn start(registry: Arc<Shared>, options: WatchOptions) -> Result<Watcher> {
    let wake = Arc::new(Notify::new());
    let (dir, logger) = (registry.dir.clone(), registry.logger.clone());
    let filter = options.service.clone();
    let notifier = {
        let wake = wake.clone();
        blocking(move || Ok(fs_watcher(&dir, filter.as_deref(), wake, &logger))).await?
    };
    // Subscribe and snapshot with no local change in between (see `Shared::order`).
    let order = registry.order.write().await;
    let changes = registry.changes.subscribe();
    let snapshot = snapshot(&registry, options.service.as_deref()).await?;
    drop(order);
    let (tx, mut rx) = mpsc::channel(BUFFER);
    let watch = Watch {
        registry,
        options,
        wake,
        changes: Some(changes),
        tx,
    };
    tokio::spawn(watch.run(snapshot, notifier));
    Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
}

/// A notify watcher on the whole directory that wakes a re-scan on relevant changes, or
/// `None` (re-scans on the timer only) when the platform refuses one.
fn fs_watcher(
    dir: &Path,
    service: Option<&str>,
    wake: Arc<Notify>,
    logger: &Logger,
) -> Option<RecommendedWatcher> {
    let scope: Option<PathBuf> = service.map(|name| files::service_dir(dir, name));
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) if relevant(&event, scope.as_deref()) => wake.notify_one(),
        Ok(_) => {}
        // Lost events (queue overflow, ...): re-read everything.
        Err(_) => wake.notify_one(),
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::Recursive)?;
        Ok(watcher)
    });
    match watcher {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            logger.in_scope(|| {
                tracing::debug!(dir = %dir.display(), error = %err, "local registry: no file-system notifications, polling")
            });
            None
        }
    }
}

/// Whether a notification may change the snapshot: not our own reads, not temporary files,
/// and within the watched service when there is one.
fn relevant(event: &notify::Event, scope: Option<&Path>) -> bool {
    if event.need_rescan() {
        return true;
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|path| {
        let temporary = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        !temporary && scope.is_none_or(|scope| path.starts_with(scope))
    })
}

async fn snapshot(registry: &Arc<Shared>, service: Option<&str>) -> Result<Snapshot> {
    let records = registry.records(service).await?;
    Ok(records
        .into_iter()
        .filter(|r| service.is_none_or(|name| r.service.name == name))
        .map(|r| (r.key(), r))
        .collect())
}

/// The state of one watcher's background task.
struct Watch {
    registry: Arc<Shared>,
    options: WatchOptions,
    wake: Arc<Notify>,
    changes: Option<broadcast::Receiver<Change>>,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

impl Watch {
    async fn run(mut self, mut current: Snapshot, notifier: Option<RecommendedWatcher>) {
        let interval = self.registry.scan_interval;
        let logger = self.registry.logger.clone();
        loop {
            let deadline = next_scan(&current, interval);
            let local = async {
                match self.changes.as_mut() {
                    Some(changes) => changes.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.tx.closed() => break,
                change = local => match change {
                    Ok(change) => {
                        let events = apply(self.options.service.as_deref(), &mut current, change);
                        if !self.send(events).await {
                            break;
                        }
                        continue;
                    }
                    // Fell behind: the directory has the whole truth.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.changes = None,
                },
                _ = self.wake.notified() => tokio::time::sleep(SETTLE).await,
                _ = tokio::time::sleep_until(deadline) => {}
            }
            let registry = self.registry.clone();
            let order = registry.order.write().await;
            // Announced changes are older than the scan: take them in first, in order.
            let mut events = self.drain(&mut current);
            let scanned = snapshot(&self.registry, self.options.service.as_deref()).await;
            drop(order);
            match scanned {
                Ok(fresh) => {
                    events.extend(diff(&current, &fresh));
                    current = fresh;
                }
                // Keep watching: the directory may come back (or be readable again).
                Err(err) => logger.in_scope(
                    || tracing::debug!(error = %err.detail, "local registry: watch scan failed"),
                ),
            }
            if !self.send(events).await {
                break;
            }
        }
        drop(notifier);
    }

    /// Takes in the changes announced so far.
    fn drain(&mut self, current: &mut Snapshot) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        while let Some(changes) = self.changes.as_mut() {
            match changes.try_recv() {
                Ok(change) => {
                    events.extend(apply(self.options.service.as_deref(), current, change))
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                // Lost ones are in the scan that follows.
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(broadcast::error::TryRecvError::Closed) => self.changes = None,
            }
        }
        events
    }

    /// Sends events in order; `false` when the stream was dropped.
    async fn send(&self, events: Vec<WatchEvent>) -> bool {
        for event in events {
            if self.tx.send(Ok(event)).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Applies a local change to the snapshot; the events it makes.
fn apply(service: Option<&str>, current: &mut Snapshot, change: Change) -> Vec<WatchEvent> {
    let wanted = |name: &str| service.is_none_or(|s| s == name);
    match change {
        Change::Put(record) if wanted(&record.service.name) => {
            let key = record.key();
            let action = match current.get(&key) {
                None => Action::Create,
                Some(old) if old.service != record.service => Action::Update,
                Some(_) => {
                    current.insert(key, record); // a refresh: new expiry, no event
                    return Vec::new();
                }
            };
            let event = event(action, std::slice::from_ref(&record), &[&record]);
            current.insert(key, record);
            vec![event]
        }
        Change::Remove(key) if wanted(&key.0) => match current.remove(&key) {
            Some(old) => vec![event(Action::Delete, std::slice::from_ref(&old), &[&old])],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// When to re-scan without a notification: just after the earliest expiry, at most one
/// interval from now.
fn next_scan(snapshot: &Snapshot, interval: Duration) -> Instant {
    let now = files::now_millis();
    let until_expiry = snapshot
        .values()
        .filter_map(|r| r.expires_at)
        .min()
        .map(|at| Duration::from_millis(at.saturating_sub(now).saturating_add(5)));
    let wait = until_expiry.map_or(interval, |d| d.min(interval));
    Instant::now() + wait.max(Duration::from_millis(10))
}

/// The events that lead from `old` to `new`: per (service, version), `Create` with the nodes
/// that appeared, `Update` with the nodes whose record changed (a refresh that changes only
/// the expiry is no change), `Delete` with the nodes that went away.
fn diff(old: &Snapshot, new: &Snapshot) -> Vec<WatchEvent> {
    let versions: BTreeSet<(&str, &str)> = old
        .keys()
        .chain(new.keys())
        .map(|(name, version, _)| (name.as_str(), version.as_str()))
        .collect();
    let mut events = Vec::new();
    for (name, version) in versions {
        let in_version = |snap: &'_ Snapshot| -> Vec<NodeRecord> {
            snap.iter()
                .filter(|((n, v, _), _)| n == name && v == version)
                .map(|(_, r)| r.clone())
                .collect()
        };
        let (before, after) = (in_version(old), in_version(new));
        let created: Vec<&NodeRecord> = after
            .iter()
            .filter(|r| !old.contains_key(&r.key()))
            .collect();
        let updated: Vec<&NodeRecord> = after
            .iter()
            .filter(|r| old.get(&r.key()).is_some_and(|o| o.service != r.service))
            .collect();
        let deleted: Vec<&NodeRecord> = before
            .iter()
            .filter(|r| !new.contains_key(&r.key()))
            .collect();
        for (action, records, pool) in [
            (Action::Create, created, &after),
            (Action::Update, updated, &after),
            (Action::Delete, deleted, &before),
        ] {
            if !records.is_empty() {
                events.push(event(action, pool, &records));
            }
        }
    }
    events
}

/// A watch event for `records`, with the version's metadata and endpoints taken from the
/// freshest record of `pool`.
fn event(action: Action, pool: &[NodeRecord], records: &[&NodeRecord]) -> WatchEvent {
    let template = pool
        .iter()
        .max_by_key(|r| r.registered_at)
        .or(records.first().copied());
    let mut service = template.map(|r| r.service.clone()).unwrap_or_default();
    service.nodes = records
        .iter()
        .flat_map(|r| r.service.nodes.iter().cloned())
        .collect();
    WatchEvent {
        action,
        service,
        timestamp: SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::registry::{Node, Service};

    fn record(name: &str, version: &str, id: &str, address: &str, at: u64) -> NodeRecord {
        NodeRecord {
            service: Service {
                name: name.into(),
                version: version.into(),
                nodes: vec![Node {
                    id: id.into(),
                    address: address.into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            expires_at: None,
            registered_at: at,
        }
    }

    fn snap(records: &[NodeRecord]) -> Snapshot {
        records.iter().map(|r| (r.key(), r.clone())).collect()
    }

    #[test]
    fn diff_reports_create_update_delete() {
        let old = snap(&[
            record("a", "1", "n1", "h:1", 1),
            record("a", "1", "n2", "h:2", 1),
        ]);
        let mut refreshed = record("a", "1", "n1", "h:1", 5);
        refreshed.expires_at = Some(99);
        let new = snap(&[
            refreshed,
            record("a", "1", "n3", "h:3", 2),
            record("b", "2", "m1", "h:9", 2),
        ]);
        let events = diff(&old, &new);
        let summary: Vec<(Action, &str, Vec<&str>)> = events
            .iter()
            .map(|e| {
                (
                    e.action,
                    e.service.name.as_str(),
                    e.service.nodes.iter().map(|n| n.id.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Action::Create, "a", vec!["n3"]),
                (Action::Delete, "a", vec!["n2"]),
                (Action::Create, "b", vec!["m1"]),
            ]
        );
        let moved = snap(&[record("b", "2", "m1", "h:10", 3)]);
        let events = diff(&snap(&[record("b", "2", "m1", "h:9", 2)]), &moved);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, Action::Update);
        assert_eq!(events[0].service.nodes[0].address, "h:10");
        assert!(diff(&moved, &moved).is_empty());
    }

    #[test]
    fn own_reads_and_temp_files_do_not_wake() {
        use notify::event::{AccessKind, CreateKind};
        let read = notify::Event::new(EventKind::Access(AccessKind::Any))
            .add_path(PathBuf::from("/r/a/1/n.json"));
        assert!(!relevant(&read, None));
        let temp = notify::Event::new(EventKind::Create(CreateKind::File))
            .add_path(PathBuf::from("/r/a/1/.tmpXYZ.part"));
        assert!(!relevant(&temp, None));
        let node = notify::Event::new(EventKind::Create(CreateKind::File))
            .add_path(PathBuf::from("/r/a/1/n.json"));
        assert!(relevant(&node, None));
        assert!(relevant(&node, Some(Path::new("/r/a"))));
        assert!(!relevant(&node, Some(Path::new("/r/b"))));
    }
}
