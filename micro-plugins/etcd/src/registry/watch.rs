//! `watch` of the etcd registry: an etcd watch of the records' prefix turned into registry
//! events.
//!
//! The records are read first (which gives a revision), then the watch starts at the next
//! revision, so nothing is lost or reported twice between the two. A put of a node is
//! `Create` when it is the first node of its version this watcher knows and `Update`
//! otherwise (both carry every node of the version the watcher knows); a put that changes
//! nothing (a refresh) reports nothing. A deleted key (deregistered, or its lease expired)
//! is `Delete` with the node it held.
//!
//! When the watch breaks (etcd restarted or unreachable, the watch cancelled or compacted
//! away), the watcher reads the records again, reports the differences with what it knew,
//! and watches again from the new read's revision, retrying with [`Backoff`] until etcd
//! answers; the first failure of a run is logged at WARN. The stream of events itself only
//! ends when dropped.

use super::{EtcdRegistry, Stored, group};
use crate::key::service_prefix;
use etcd_client::{Event, EventType, WatchOptions, WatchStream};
use micro_core::backoff::Backoff;
use micro_core::registry::{Action, Node, Service, WatchEvent, Watcher};
use micro_core::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

/// What one watcher knows: the live nodes by key, and events not yet handed out.
struct State {
    registry: EtcdRegistry,
    /// The key prefix watched.
    prefix: String,
    /// `None` after the watch broke, until it is made again.
    stream: Option<WatchStream>,
    known: HashMap<String, Stored>,
    queue: VecDeque<WatchEvent>,
    backoff: Backoff,
}

/// Starts a watch of every service, or only of `service`.
pub(super) async fn start(registry: EtcdRegistry, service: Option<String>) -> Result<Watcher> {
    let prefix = match &service {
        Some(name) => service_prefix(registry.prefix(), name),
        None => registry.prefix().to_string(),
    };
    let (records, revision) = registry.read(&prefix).await?;
    let stream = open(&registry, &prefix, revision).await?;
    let state = State {
        known: records.into_iter().map(|s| (s.key.clone(), s)).collect(),
        registry,
        prefix,
        stream: Some(stream),
        queue: VecDeque::new(),
        backoff: Backoff::new(),
    };
    let events = futures::stream::unfold(state, |mut state| async move {
        let event = state.next().await;
        Some((Ok(event), state))
    });
    Ok(Box::pin(events))
}

/// An etcd watch of `prefix` from the revision after `revision`, with the previous value of
/// deleted keys.
async fn open(registry: &EtcdRegistry, prefix: &str, revision: i64) -> Result<WatchStream> {
    let connector = registry.connector();
    let what = format!("watch the registry keys under {prefix}");
    let options = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(revision + 1);
    let mut stream = connector
        .call(&what, |mut c| {
            let prefix = prefix.to_string();
            async move { c.watch(prefix, Some(options)).await }
        })
        .await?;
    // The first response says whether the watch was made.
    let first = tokio::time::timeout(connector.timeout(), stream.message()).await;
    match first {
        Ok(Ok(Some(response))) if response.created() && !response.canceled() => Ok(stream),
        Ok(Ok(Some(response))) => Err(Error::unavailable(
            "go.micro.registry.etcd",
            format!(
                "registry: etcd refused to {what}: {}",
                response.cancel_reason()
            ),
        )),
        Ok(Ok(None)) => Err(Error::unavailable(
            "go.micro.registry.etcd",
            format!("registry: cannot {what}: etcd closed the watch"),
        )),
        Ok(Err(e)) => Err(connector.failed(&what, &e)),
        Err(_) => Err(connector.timed_out(&what)),
    }
}

impl State {
    async fn next(&mut self) -> WatchEvent {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return event;
            }
            let Some(stream) = self.stream.as_mut() else {
                self.resume().await;
                continue;
            };
            let broken = match stream.message().await {
                Ok(Some(response)) if response.canceled() => format!(
                    "etcd cancelled the watch (compacted at revision {}): {}",
                    response.compact_revision(),
                    response.cancel_reason()
                ),
                Ok(Some(response)) => {
                    for event in response.events() {
                        self.apply(event);
                    }
                    continue;
                }
                Ok(None) => "etcd closed the watch".to_string(),
                Err(e) => e.to_string(),
            };
            self.broken(&broken);
        }
    }

    /// Logs a broken watch and drops it; the next event is looked for after [`resume`].
    ///
    /// [`resume`]: State::resume
    fn broken(&mut self, why: &str) {
        self.stream = None;
        self.registry.logger().in_scope(|| {
            tracing::warn!(
                prefix = %self.prefix,
                "registry: the etcd watch of {} broke ({why}); reading the records again \
                 and watching anew",
                self.prefix
            )
        });
    }

    /// Reads the records again, reports what changed, and watches again from there,
    /// retrying until etcd answers.
    async fn resume(&mut self) {
        loop {
            let attempt = async {
                let (records, revision) = self.registry.read(&self.prefix).await?;
                let stream = open(&self.registry, &self.prefix, revision).await?;
                Ok::<_, Error>((records, stream))
            };
            match attempt.await {
                Ok((records, stream)) => {
                    self.resync(records);
                    self.stream = Some(stream);
                    if self.backoff.succeeded() {
                        self.registry.logger().in_scope(|| {
                            tracing::info!(prefix = %self.prefix, "registry: the etcd watch of {} is back", self.prefix)
                        });
                    }
                    return;
                }
                Err(e) => {
                    let (first, wait) = self.backoff.failed();
                    self.registry.logger().in_scope(|| {
                        if first {
                            tracing::warn!(prefix = %self.prefix, error = %e, "registry: cannot watch etcd again yet; retrying");
                        } else {
                            tracing::debug!(prefix = %self.prefix, error = %e, "registry: cannot watch etcd again yet; retrying");
                        }
                    });
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Compares a fresh read with what this watcher knows and reports the differences.
    fn resync(&mut self, records: Vec<Stored>) {
        let mut fresh: HashMap<String, Stored> =
            records.into_iter().map(|s| (s.key.clone(), s)).collect();
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|key| !fresh.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(old) = self.known.remove(&key) {
                self.emit(Action::Delete, old.service);
            }
        }
        for (key, stored) in fresh.drain() {
            let newer = self
                .known
                .get(&key)
                .is_none_or(|known| known.revision < stored.revision);
            if newer {
                self.put(key, stored);
            }
        }
    }

    fn emit(&mut self, action: Action, service: Service) {
        self.queue.push_back(WatchEvent {
            action,
            service,
            timestamp: SystemTime::now(),
        });
    }

    /// The version `(name, version)` with every node this watcher knows.
    fn version(&self, name: &str, version: &str) -> Option<Service> {
        group(
            self.known
                .values()
                .filter(|s| s.service.name == name && s.service.version == version)
                .cloned(),
        )
        .pop()
    }

    fn apply(&mut self, event: &Event) {
        let Some(kv) = event.kv() else {
            return;
        };
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        match event.event_type() {
            EventType::Delete => self.deleted(&key, event),
            EventType::Put => match self.registry.parse(kv) {
                Ok(stored) => self.put(key, stored),
                Err(problem) => {
                    self.registry.warn_malformed(&key, &problem);
                    // The key no longer holds the node readers would see.
                    if let Some(old) = self.known.remove(&key) {
                        self.emit(Action::Delete, old.service);
                    }
                }
            },
        }
    }

    fn deleted(&mut self, key: &str, event: &Event) {
        if let Some(old) = self.known.remove(key) {
            self.emit(Action::Delete, old.service);
            return;
        }
        // Not known here (written malformed, say): the previous value or the key tells.
        if let Some(previous) = event.prev_kv()
            && let Ok(stored) = self.registry.parse(previous)
        {
            self.emit(Action::Delete, stored.service);
            return;
        }
        if let Some((name, id)) = crate::key::parse_node_key(self.registry.prefix(), key) {
            let service = Service {
                name,
                nodes: vec![Node {
                    id,
                    ..Default::default()
                }],
                ..Default::default()
            };
            self.emit(Action::Delete, service);
        }
    }

    /// Takes a record for `key` and reports what it changes.
    fn put(&mut self, key: String, stored: Stored) {
        let (name, version) = (stored.service.name.clone(), stored.service.version.clone());
        let old = self.known.get(&key).cloned();
        if old
            .as_ref()
            .is_some_and(|old| old.service == stored.service)
        {
            // A refresh: same data.
            self.known.insert(key, stored);
            return;
        }
        // The node moved to another version: it left the old one.
        if let Some(old) = old
            && old.service.version != version
        {
            self.known.remove(&key);
            self.emit(Action::Delete, old.service);
        }
        let existed = self.version(&name, &version).is_some();
        self.known.insert(key, stored);
        if let Some(service) = self.version(&name, &version) {
            let action = if existed {
                Action::Update
            } else {
                Action::Create
            };
            self.emit(action, service);
        }
    }
}
