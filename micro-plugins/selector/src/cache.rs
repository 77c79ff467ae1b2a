//! [`CacheSelector`]: the registry cache, its reads (single flight, stale fallback) and the
//! pick (strategy, filters, cool-down). The watch that keeps the cache fresh is in
//! `watch.rs`; the behaviour as a whole is described in the crate docs.

use crate::watch::watch_loop;
use futures::future::{BoxFuture, FutureExt, Shared};
use micro_core::logger::Logger;
use micro_core::registry::{
    Action, Node, Registry, Service, WatchEvent, WatchOptions, merge_nodes,
};
use micro_core::selector::{self, Filter, SelectOptions, Selector, Strategy};
use micro_core::{Error, Result};
use rand::Rng;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The error id of the selector's own errors.
pub(crate) const ID: &str = "go.micro.selector";

/// How long a cached service is used before it is read from the registry again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Longest wait of the first select for the watch to open.
const WATCH_OPEN_WAIT: Duration = Duration::from_secs(2);
/// Longest pause between refresh attempts while the registry fails.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A selector over a registry cache kept fresh by a watch; see the crate docs.
pub struct CacheSelector {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Settings {
    strategy: Strategy,
    cooldown: Duration,
    ttl: Duration,
    logger: Logger,
}

pub(crate) struct Inner {
    registry: Arc<dyn Registry>,
    settings: Settings,
    state: Mutex<State>,
    /// The watch task, once started (`None` when it could not be: no tokio runtime).
    watch: OnceCell<Option<AbortHandle>>,
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Vec<Service>>>>>;

#[derive(Default)]
struct State {
    services: HashMap<String, Slot>,
    flights: u64,
}

/// What the selector knows about one service.
#[derive(Default)]
struct Slot {
    entry: Option<Entry>,
    /// The registry read in progress, with its id.
    flight: Option<(u64, Fetch)>,
    /// Something changed while the read was in progress: its result needs a refresh.
    dirty: bool,
    /// Round-robin counter (starts at a random node).
    turn: Option<usize>,
    /// Node id -> when it last failed.
    cooldowns: HashMap<String, Instant>,
}

struct Entry {
    services: Arc<Vec<Service>>,
    fetched: Instant,
    /// Changes may have been missed: refresh on the next select.
    stale: bool,
    /// The last refresh failed (a warning was logged).
    failing: bool,
    /// While the registry fails, serve this entry without asking before this time.
    retry_at: Option<Instant>,
}

impl Entry {
    fn usable(&self, now: Instant, ttl: Duration) -> bool {
        self.retry_at.is_some_and(|at| now < at)
            || (!self.stale && now.saturating_duration_since(self.fetched) < ttl)
    }
}

impl CacheSelector {
    /// A selector over `registry` picking with `strategy`; a node marked as failed is
    /// skipped for `cooldown`. Logs nothing until [`CacheSelector::with_logger`].
    pub fn new(registry: Arc<dyn Registry>, strategy: Strategy, cooldown: Duration) -> Self {
        let settings = Settings {
            strategy,
            cooldown,
            ttl: DEFAULT_TTL,
            logger: Logger::none(),
        };
        Self::from_settings(registry, settings)
    }

    fn from_settings(registry: Arc<dyn Registry>, settings: Settings) -> Self {
        CacheSelector {
            inner: Arc::new(Inner {
                registry,
                settings,
                state: Mutex::new(State::default()),
                watch: OnceCell::new(),
            }),
        }
    }

    fn with_settings(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.inner.settings.clone();
        change(&mut settings);
        Self::from_settings(self.inner.registry.clone(), settings)
    }

    /// Sets how long a cached service is used before it is read again (default
    /// [`DEFAULT_TTL`]). Meant for construction: the returned selector starts empty.
    pub fn with_ttl(self, ttl: Duration) -> Self {
        self.with_settings(|s| s.ttl = ttl)
    }

    /// Sets the logger of warnings (registry failures, watch restarts). Meant for
    /// construction: the returned selector starts empty.
    pub fn with_logger(self, logger: Logger) -> Self {
        self.with_settings(|s| s.logger = logger)
    }

    /// The strategy used when a call does not choose one.
    pub fn strategy(&self) -> Strategy {
        self.inner.settings.strategy
    }

    /// Opens the watch once (waiting a bounded time) and hands it to the background task.
    async fn ensure_watch(&self) {
        let inner = &self.inner;
        if inner.watch.initialized() {
            return;
        }
        inner
            .watch
            .get_or_init(|| async {
                let runtime = tokio::runtime::Handle::try_current().ok()?;
                let opened = tokio::time::timeout(
                    WATCH_OPEN_WAIT,
                    inner.registry.watch(WatchOptions::default()),
                )
                .await;
                let first = match opened {
                    Ok(Ok(stream)) => Some(stream),
                    Ok(Err(err)) => {
                        inner.warn(format!("registry watch failed, retrying: {err}"));
                        None
                    }
                    Err(_) => {
                        inner.warn("registry watch did not open in time, retrying".into());
                        None
                    }
                };
                let task = watch_loop(Arc::downgrade(inner), inner.registry.clone(), first);
                Some(runtime.spawn(task).abort_handle())
            })
            .await;
    }

    /// The cached versions of `name`, read from the registry when needed (single flight).
    async fn services(&self, name: &str) -> Result<Arc<Vec<Service>>> {
        let fetch = {
            let now = Instant::now();
            let mut state = self.inner.lock();
            if let Some(entry) = state.services.get(name).and_then(|s| s.entry.as_ref())
                && entry.usable(now, self.inner.settings.ttl)
            {
                return Ok(entry.services.clone());
            }
            state.flights += 1;
            let id = state.flights;
            let slot = state.services.entry(name.to_owned()).or_default();
            match &slot.flight {
                Some((_, fetch)) => fetch.clone(),
                None => {
                    let fetch = fetch(
                        Arc::downgrade(&self.inner),
                        self.inner.registry.clone(),
                        name.to_owned(),
                        id,
                    )
                    .boxed()
                    .shared();
                    slot.flight = Some((id, fetch.clone()));
                    slot.dirty = false;
                    fetch
                }
            }
        };
        fetch.await
    }
}

impl fmt::Debug for CacheSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.inner.settings;
        f.debug_struct("CacheSelector")
            .field("registry", &self.inner.registry.name())
            .field("strategy", &settings.strategy)
            .field("cooldown", &settings.cooldown)
            .field("ttl", &settings.ttl)
            .field("services", &self.inner.lock().services.len())
            .finish()
    }
}

/// One registry read; applies its result to the cache (once, whoever polls it).
async fn fetch(
    inner: Weak<Inner>,
    registry: Arc<dyn Registry>,
    name: String,
    id: u64,
) -> Result<Arc<Vec<Service>>> {
    let result = registry.get_service(&name).await;
    match inner.upgrade() {
        Some(inner) => inner.complete(&name, id, result),
        None => result.map(Arc::new).map_err(|err| miss_error(&name, err)),
    }
}

/// The error of a select that has no cached entry to fall back on.
fn miss_error(name: &str, err: Error) -> Error {
    if err.code == 404 {
        Error::unavailable(ID, format!("service {name}: no nodes available"))
    } else {
        err
    }
}

fn has_node(services: &[Service], id: &str) -> bool {
    services.iter().any(|s| s.nodes.iter().any(|n| n.id == id))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn warn(&self, message: String) {
        self.settings
            .logger
            .in_scope(|| tracing::warn!(target: "micro::selector", "{message}"));
    }

    /// Applies the result of flight `id` of `name`; a flight superseded by `reset` leaves
    /// the cache alone.
    fn complete(
        &self,
        name: &str,
        id: u64,
        result: Result<Vec<Service>>,
    ) -> Result<Arc<Vec<Service>>> {
        let now = Instant::now();
        let retry = self.settings.ttl.min(RETRY_MAX);
        let mut warning = None;
        let outcome = {
            let mut state = self.lock();
            let slot = state
                .services
                .get_mut(name)
                .filter(|slot| slot.flight.as_ref().is_some_and(|(f, _)| *f == id));
            match (slot, result) {
                (None, result) => result.map(Arc::new).map_err(|err| miss_error(name, err)),
                (Some(slot), Ok(services)) => {
                    slot.flight = None;
                    let services = Arc::new(services);
                    slot.cooldowns.retain(|node, _| has_node(&services, node));
                    slot.entry = Some(Entry {
                        services: services.clone(),
                        fetched: now,
                        stale: slot.dirty,
                        failing: false,
                        retry_at: None,
                    });
                    Ok(services)
                }
                (Some(_), Err(err)) if err.code == 404 => {
                    state.services.remove(name);
                    Err(miss_error(name, err))
                }
                (Some(slot), Err(err)) => {
                    slot.flight = None;
                    match &mut slot.entry {
                        Some(entry) => {
                            if !entry.failing {
                                entry.failing = true;
                                warning = Some(err);
                            }
                            entry.retry_at = Some(now + retry);
                            Ok(entry.services.clone())
                        }
                        None => Err(err),
                    }
                }
            }
        };
        if let Some(err) = warning {
            self.warn(format!(
                "service {name}: registry refresh failed, serving cached nodes: {err}"
            ));
        }
        outcome
    }

    /// The watch may have missed changes: refresh every entry on its next select.
    pub(crate) fn invalidate(&self) {
        for slot in self.lock().services.values_mut() {
            if let Some(entry) = &mut slot.entry {
                entry.stale = true;
            }
            if slot.flight.is_some() {
                slot.dirty = true;
            }
        }
    }

    /// Applies one watch event to the cached service it concerns.
    pub(crate) fn apply(&self, event: WatchEvent) {
        let mut state = self.lock();
        let service = event.service;
        let Some(slot) = state.services.get_mut(&service.name) else {
            return;
        };
        if slot.flight.is_some() {
            slot.dirty = true;
        }
        match event.action {
            Action::Create | Action::Update => {
                if let Some(entry) = &mut slot.entry {
                    let services = Arc::make_mut(&mut entry.services);
                    match services.iter_mut().find(|s| s.version == service.version) {
                        Some(known) => {
                            merge_nodes(&mut known.nodes, &service.nodes);
                            known.endpoints = service.endpoints;
                            known.metadata = service.metadata;
                        }
                        None => services.push(service),
                    }
                }
            }
            Action::Delete => {
                let whole = service.nodes.is_empty();
                let gone = |node: &Node| whole || service.nodes.iter().any(|g| g.id == node.id);
                let Some(entry) = &mut slot.entry else {
                    for node in &service.nodes {
                        slot.cooldowns.remove(&node.id);
                    }
                    return;
                };
                let services = Arc::make_mut(&mut entry.services);
                if let Some(known) = services.iter_mut().find(|s| s.version == service.version) {
                    for node in known.nodes.iter().filter(|n| gone(n)) {
                        slot.cooldowns.remove(&node.id);
                    }
                    known.nodes.retain(|n| !gone(n));
                }
                services.retain(|s| s.version != service.version || !s.nodes.is_empty());
                if services.is_empty() {
                    slot.entry = None;
                }
            }
            // An action this selector does not know: forget the entry, so the next select
            // reads the registry again.
            _ => slot.entry = None,
        }
    }

    /// Picks among `candidates` (`None` when there is none), skipping nodes that cool down.
    fn pick<'a>(
        &self,
        name: &str,
        candidates: &[&'a Node],
        strategy: Strategy,
    ) -> Option<&'a Node> {
        let first = *candidates.first()?;
        let now = Instant::now();
        let cooldown = self.settings.cooldown;
        let mut state = self.lock();
        let mut scratch = Slot::default();
        let slot = state.services.get_mut(name).unwrap_or(&mut scratch);
        slot.cooldowns
            .retain(|_, failed| now.saturating_duration_since(*failed) < cooldown);
        let healthy: Vec<&'a Node> = candidates
            .iter()
            .copied()
            .filter(|n| !slot.cooldowns.contains_key(&n.id))
            .collect();
        if healthy.is_empty() {
            // Every node cools down: rather than fail, try the one that failed longest ago.
            let cooldowns = &slot.cooldowns;
            return candidates
                .iter()
                .copied()
                .min_by_key(|n| cooldowns.get(&n.id).copied())
                .or(Some(first));
        }
        let index = match strategy {
            Strategy::RoundRobin => {
                let turn = slot
                    .turn
                    .unwrap_or_else(|| rand::rng().random_range(0..healthy.len()));
                slot.turn = Some(turn.wrapping_add(1));
                turn % healthy.len()
            }
            // Random, and any strategy added to the contract later that this selector does
            // not implement yet.
            _ => rand::rng().random_range(0..healthy.len()),
        };
        healthy.get(index).copied()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(Some(task)) = self.watch.get() {
            task.abort();
        }
    }
}

/// Describes filters for an error message.
fn describe(filters: &[Filter]) -> String {
    filters
        .iter()
        .map(Filter::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait::async_trait]
impl Selector for CacheSelector {
    fn name(&self) -> &str {
        self.inner.settings.strategy.name()
    }

    async fn select(&self, service: &str, options: &SelectOptions) -> Result<Node> {
        self.ensure_watch().await;
        let services = self.services(service).await?;
        let filtered;
        let list: &[Service] = if options.filters.is_empty() {
            services.as_slice()
        } else {
            let all = services.as_ref().clone();
            filtered = options.filters.iter().fold(all, |acc, f| f.apply(acc));
            &filtered
        };
        let transport = options.transport.as_deref();
        let candidates: Vec<&Node> = list
            .iter()
            .flat_map(|s| &s.nodes)
            .filter(|n| selector::speaks(n, transport))
            .collect();
        let strategy = options.strategy.unwrap_or(self.inner.settings.strategy);
        match self.inner.pick(service, &candidates, strategy) {
            Some(node) => Ok(node.clone()),
            None => {
                let mismatch = selector::transport_mismatch(service, list, transport);
                let detail = if let Some(mismatch) = mismatch {
                    mismatch
                } else if options.filters.is_empty() {
                    format!("service {service}: no nodes available")
                } else {
                    format!(
                        "service {service}: no node matches the filters [{}]",
                        describe(&options.filters)
                    )
                };
                Err(Error::unavailable(ID, detail))
            }
        }
    }

    fn mark(&self, service: &str, node: &Node, outcome: std::result::Result<(), &Error>) {
        let mut state = self.inner.lock();
        match outcome {
            Err(_) => {
                let slot = state.services.entry(service.to_owned()).or_default();
                slot.cooldowns.insert(node.id.clone(), Instant::now());
            }
            Ok(()) => {
                if let Some(slot) = state.services.get_mut(service) {
                    slot.cooldowns.remove(&node.id);
                }
            }
        }
    }

    async fn reset(&self, service: &str) {
        self.inner.lock().services.remove(service);
    }
}
