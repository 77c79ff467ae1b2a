//! In-process service registry with TTL expiry and watches.
//!
//! State lives in the [`MemoryRegistry`] value: clones share it, two values built with
//! [`MemoryRegistry::new`] are two separate registries.
//!
//! Semantics:
//! - Services are kept per `(name, version)`, the version as given (an empty version stays
//!   empty). A registration replaces the version's metadata and endpoints and adds or
//!   replaces its nodes by id; each node's TTL restarts on every registration. A TTL of
//!   `None` (or zero) keeps the node until it is deregistered.
//! - Deregistration removes the listed nodes; a version left without nodes disappears, and
//!   a service left without versions disappears.
//! - Watch events: the first registration of a version is `Create`; a later registration
//!   that adds a node or changes anything (node address or metadata, service metadata or
//!   endpoints) is `Update`; a pure TTL refresh sends nothing. `Create` and `Update` carry
//!   the whole version with all its live nodes. Deregistration and TTL expiry are `Delete`,
//!   carrying the nodes that went away.
//! - Expiry is checked on every call and by a reaper task (spawned on the current tokio
//!   runtime when a node with a TTL is registered) that holds only a weak reference and
//!   exits when the registry is dropped or no node has a TTL left; so expiry events arrive
//!   even when nobody reads the registry.
//! - Watchers share a bounded broadcast buffer of [`WATCH_BUFFER`] events: registration
//!   never waits for a slow watcher. A watcher that falls more than that far behind loses
//!   the oldest events and receives one `Err` (500) saying how many it missed; the stream
//!   then goes on, and the watcher should re-read the registry. Watch streams end when the
//!   registry is dropped.

use micro_core::registry::{
    Action, Endpoint, Node, RegisterOptions, Registry, Service, WatchEvent, WatchOptions, Watcher,
};
use micro_core::{Error, Plugin, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Events buffered for watchers before the slowest one starts losing the oldest.
pub const WATCH_BUFFER: usize = 1024;

const ID: &str = "go.micro.registry";

/// An in-process registry; cheap to clone, clones share state.
#[derive(Clone)]
pub struct MemoryRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<WatchEvent>,
    /// Wakes the reaper when a new deadline is set or the registry goes away.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    /// name -> version -> record.
    services: BTreeMap<String, BTreeMap<String, Record>>,
    reaper: Option<JoinHandle<()>>,
}

struct Record {
    name: String,
    version: String,
    metadata: BTreeMap<String, String>,
    endpoints: Vec<Endpoint>,
    nodes: Vec<Entry>,
}

struct Entry {
    node: Node,
    expires: Option<Instant>,
}

impl Record {
    fn new(service: &Service) -> Self {
        Record {
            name: service.name.clone(),
            version: service.version.clone(),
            metadata: service.metadata.clone(),
            endpoints: service.endpoints.clone(),
            nodes: Vec::new(),
        }
    }

    /// The version as a `Service` with the given nodes.
    fn service(&self, nodes: Vec<Node>) -> Service {
        Service {
            name: self.name.clone(),
            version: self.version.clone(),
            metadata: self.metadata.clone(),
            endpoints: self.endpoints.clone(),
            nodes,
        }
    }

    fn current(&self) -> Service {
        self.service(self.nodes.iter().map(|e| e.node.clone()).collect())
    }

    /// Applies a registration; returns whether anything other than deadlines changed.
    fn apply(&mut self, service: &Service, expires: Option<Instant>) -> bool {
        let mut changed = self.metadata != service.metadata || self.endpoints != service.endpoints;
        self.metadata = service.metadata.clone();
        self.endpoints = service.endpoints.clone();
        for node in &service.nodes {
            match self.nodes.iter_mut().find(|e| e.node.id == node.id) {
                Some(entry) => {
                    changed |= entry.node != *node;
                    entry.node = node.clone();
                    entry.expires = expires;
                }
                None => {
                    changed = true;
                    self.nodes.push(Entry {
                        node: node.clone(),
                        expires,
                    });
                }
            }
        }
        changed
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Let a sleeping reaper see that the registry is gone.
        self.wake.notify_one();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, action: Action, service: Service) {
        // No receiver is not an error: nobody is watching.
        let _ = self.events.send(WatchEvent {
            action,
            service,
            timestamp: SystemTime::now(),
        });
    }

    /// Removes expired nodes (and versions left empty by expiry), sending `Delete` events.
    fn reap(&self, state: &mut State, now: Instant) {
        for versions in state.services.values_mut() {
            versions.retain(|_, record| {
                let (expired, live): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut record.nodes)
                    .into_iter()
                    .partition(|e| e.expires.is_some_and(|at| at <= now));
                record.nodes = live;
                if expired.is_empty() {
                    return true;
                }
                self.emit(
                    Action::Delete,
                    record.service(expired.into_iter().map(|e| e.node).collect()),
                );
                !record.nodes.is_empty()
            });
        }
        state.services.retain(|_, versions| !versions.is_empty());
    }
}

impl State {
    fn next_deadline(&self) -> Option<Instant> {
        self.services
            .values()
            .flat_map(|versions| versions.values())
            .flat_map(|record| record.nodes.iter())
            .filter_map(|e| e.expires)
            .min()
    }
}

/// Expires nodes on time; holds the registry only weakly and stops when it is dropped or
/// when no node has a deadline any more.
async fn reap_loop(registry: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(inner) = registry.upgrade() else {
                return;
            };
            let mut state = inner.lock();
            inner.reap(&mut state, Instant::now());
            match state.next_deadline() {
                Some(at) => at,
                None => {
                    state.reaper = None;
                    return;
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = wake.notified() => {}
        }
    }
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("MemoryRegistry")
            .field("services", &state.services.len())
            .field("watchers", &self.inner.events.receiver_count())
            .finish()
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        MemoryRegistry {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                events,
                wake: Arc::new(Notify::new()),
            }),
        }
    }

    /// Starts the reaper if it is not running and a tokio runtime is available (without
    /// one, expiry is still applied on every call).
    fn ensure_reaper(&self, state: &mut State) {
        if state.reaper.as_ref().is_some_and(|h| !h.is_finished()) {
            self.inner.wake.notify_one();
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let task = reap_loop(Arc::downgrade(&self.inner), self.inner.wake.clone());
        state.reaper = Some(runtime.spawn(task));
    }
}

#[async_trait::async_trait]
impl Registry for MemoryRegistry {
    fn name(&self) -> &str {
        "memory"
    }

    async fn register(&self, service: &Service, options: RegisterOptions) -> Result<()> {
        if service.name.is_empty() {
            return Err(Error::bad_request(ID, "service name is empty"));
        }
        let now = Instant::now();
        let expires = options
            .ttl
            .filter(|ttl| !ttl.is_zero())
            .and_then(|ttl| now.checked_add(ttl));
        let inner = &self.inner;
        let mut state = inner.lock();
        inner.reap(&mut state, now);
        let versions = state.services.entry(service.name.clone()).or_default();
        match versions.get_mut(&service.version) {
            Some(record) => {
                if record.apply(service, expires) {
                    inner.emit(Action::Update, record.current());
                }
            }
            None => {
                let mut record = Record::new(service);
                record.apply(service, expires);
                inner.emit(Action::Create, record.current());
                versions.insert(service.version.clone(), record);
            }
        }
        if expires.is_some() {
            self.ensure_reaper(&mut state);
        }
        Ok(())
    }

    async fn deregister(&self, service: &Service) -> Result<()> {
        let inner = &self.inner;
        let mut state = inner.lock();
        inner.reap(&mut state, Instant::now());
        let Some(versions) = state.services.get_mut(&service.name) else {
            return Ok(());
        };
        let Some(record) = versions.get_mut(&service.version) else {
            return Ok(());
        };
        let (removed, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut record.nodes)
            .into_iter()
            .partition(|e| service.nodes.iter().any(|n| n.id == e.node.id));
        record.nodes = kept;
        let gone = record.nodes.is_empty();
        if !removed.is_empty() || gone {
            inner.emit(
                Action::Delete,
                record.service(removed.into_iter().map(|e| e.node).collect()),
            );
        }
        if gone {
            versions.remove(&service.version);
            if versions.is_empty() {
                state.services.remove(&service.name);
            }
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let inner = &self.inner;
        let mut state = inner.lock();
        inner.reap(&mut state, Instant::now());
        match state.services.get(name) {
            Some(versions) if !versions.is_empty() => {
                Ok(versions.values().map(Record::current).collect())
            }
            _ => Err(Error::not_found(ID, format!("service {name} not found"))),
        }
    }

    async fn list_services(&self) -> Result<Vec<Service>> {
        let inner = &self.inner;
        let mut state = inner.lock();
        inner.reap(&mut state, Instant::now());
        Ok(state
            .services
            .values()
            .flat_map(|versions| versions.values().map(Record::current))
            .collect())
    }

    async fn watch(&self, options: WatchOptions) -> Result<Watcher> {
        let receiver = self.inner.events.subscribe();
        let filter = options.service;
        let stream = futures::stream::unfold(receiver, move |mut receiver| {
            let filter = filter.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => {
                            if filter.as_deref().is_none_or(|s| s == event.service.name) {
                                return Some((Ok(event), receiver));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let detail = format!(
                                "watcher fell behind and missed {missed} events; re-read the registry"
                            );
                            return Some((Err(Error::internal(ID, detail)), receiver));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

/// The plugin-table entry: `registry: {plugin: memory}` builds a new, empty registry.
pub fn plugin() -> Plugin {
    Plugin::registry("memory", "memory", |_| Ok(Arc::new(MemoryRegistry::new())))
}
