//! The cache selector against the in-memory registry.

use micro_core::config::{Outcome, Schema, Sources, load};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::{PluginFactory, ServiceInfo};
use micro_core::registry::{
    Endpoint, Node, RegisterOptions, Registry, Service, WatchOptions, Watcher,
};
use micro_core::selector::{Filter, SelectOptions, Selector, Strategy};
use micro_core::{Components, Error, PluginContext, Result};
use micro_memory::MemoryRegistry;
use micro_selector::CacheSelector;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const COOLDOWN: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(10);

/// A registry that counts `get_service` calls, can be made to fail them, and can answer
/// slowly (to widen the window of concurrent misses).
struct TestRegistry {
    inner: MemoryRegistry,
    calls: AtomicUsize,
    failing: AtomicBool,
    delay: Duration,
    /// This many watches end at once.
    broken_watches: AtomicUsize,
}

impl TestRegistry {
    fn new(inner: MemoryRegistry, delay: Duration) -> Arc<Self> {
        Arc::new(TestRegistry {
            inner,
            calls: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            delay,
            broken_watches: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Registry for TestRegistry {
    fn name(&self) -> &str {
        "test"
    }
    async fn register(&self, service: &Service, options: RegisterOptions) -> Result<()> {
        self.inner.register(service, options).await
    }
    async fn deregister(&self, service: &Service) -> Result<()> {
        self.inner.deregister(service).await
    }
    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::unavailable("test.registry", "registry is down"));
        }
        self.inner.get_service(name).await
    }
    async fn list_services(&self) -> Result<Vec<Service>> {
        self.inner.list_services().await
    }
    async fn watch(&self, options: WatchOptions) -> Result<Watcher> {
        let broken = self
            .broken_watches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if broken.is_ok() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        self.inner.watch(options).await
    }
}

fn node(id: &str, metadata: &[(&str, &str)]) -> Node {
    Node {
        id: id.into(),
        address: format!("{id}.local:8080"),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn service(version: &str, nodes: Vec<Node>, endpoints: &[&str]) -> Service {
    Service {
        name: "greeter".into(),
        version: version.into(),
        metadata: BTreeMap::new(),
        endpoints: endpoints
            .iter()
            .map(|e| Endpoint {
                name: e.to_string(),
                ..Default::default()
            })
            .collect(),
        nodes,
    }
}

async fn register(registry: &MemoryRegistry, service: &Service) {
    registry
        .register(service, RegisterOptions::default())
        .await
        .expect("register");
}

/// A registry with `greeter` 1.0.0 on the given nodes.
async fn registry_with(ids: &[&str]) -> MemoryRegistry {
    let registry = MemoryRegistry::new();
    let nodes = ids.iter().map(|id| node(id, &[])).collect();
    register(&registry, &service("1.0.0", nodes, &[])).await;
    registry
}

fn selector(registry: Arc<dyn Registry>, strategy: Strategy) -> CacheSelector {
    CacheSelector::new(registry, strategy, COOLDOWN)
}

async fn pick(selector: &CacheSelector, options: &SelectOptions) -> String {
    selector
        .select("greeter", options)
        .await
        .expect("select")
        .id
}

async fn picks(selector: &CacheSelector, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(pick(selector, &SelectOptions::default()).await);
    }
    ids
}

/// Selects until `done` holds for the picked id, failing after [`DEADLINE`].
async fn eventually(selector: &CacheSelector, what: &str, done: impl Fn(&str) -> bool) {
    let start = Instant::now();
    while !done(&pick(selector, &SelectOptions::default()).await) {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn round_robin_rotates_across_calls() {
    let registry = registry_with(&["a", "b"]).await;
    let selector = selector(Arc::new(registry), Strategy::RoundRobin);
    let ids = picks(&selector, 4).await;
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);
    assert_eq!(ids[1], ids[3]);
}

#[tokio::test]
async fn strategy_of_the_call_overrides_the_selector() {
    let registry = registry_with(&["a", "b"]).await;
    let selector = selector(Arc::new(registry), Strategy::Random);
    let options = SelectOptions::default().strategy(Strategy::RoundRobin);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(pick(&selector, &options).await);
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);
    assert_eq!(ids[1], ids[3]);
}

#[tokio::test]
async fn random_eventually_picks_every_node() {
    let registry = registry_with(&["a", "b", "c"]).await;
    let selector = selector(Arc::new(registry), Strategy::Random);
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        seen.insert(pick(&selector, &SelectOptions::default()).await);
        if seen.len() == 3 {
            return;
        }
    }
    panic!("random never picked every node: {seen:?}");
}

#[tokio::test]
async fn filters_by_version_metadata_and_endpoint() {
    let registry = MemoryRegistry::new();
    let v1 = vec![node("a", &[("zone", "x")]), node("b", &[("zone", "y")])];
    register(&registry, &service("1.0.0", v1, &["Greeter.Hello"])).await;
    let v2 = vec![node("c", &[("zone", "x")])];
    register(&registry, &service("2.0.0", v2, &["Greeter.Bye"])).await;
    let selector = selector(Arc::new(registry), Strategy::RoundRobin);

    let with = |filters: Vec<Filter>| SelectOptions::default().filters(filters);
    let cases = [
        (vec![Filter::Version("2.0.0".into())], vec!["c"]),
        (vec![Filter::Version("1.0.0".into())], vec!["a", "b"]),
        (
            vec![Filter::Metadata("zone".into(), "x".into())],
            vec!["a", "c"],
        ),
        (vec![Filter::Endpoint("Greeter.Bye".into())], vec!["c"]),
        (
            vec![
                Filter::Endpoint("Greeter.Hello".into()),
                Filter::Metadata("zone".into(), "y".into()),
            ],
            vec!["b"],
        ),
    ];
    for (filters, allowed) in cases {
        let options = with(filters.clone());
        let mut seen = HashSet::new();
        for _ in 0..6 {
            seen.insert(pick(&selector, &options).await);
        }
        let allowed: HashSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, allowed, "filters {filters:?}");
    }

    let err = selector
        .select("greeter", &with(vec![Filter::Version("3.0.0".into())]))
        .await
        .expect_err("no node has version 3.0.0");
    assert_eq!(err.code, 503);
    assert!(err.detail.contains("greeter"), "{}", err.detail);
    assert!(err.detail.contains("version 3.0.0"), "{}", err.detail);
}

#[tokio::test]
async fn marked_node_cools_down_until_marked_ok() {
    let registry = registry_with(&["a", "b"]).await;
    let selector = selector(Arc::new(registry), Strategy::RoundRobin);
    let a = selector
        .select("greeter", &SelectOptions::default())
        .await
        .expect("select");
    let failure = Error::unavailable("test", "connection refused");
    selector.mark("greeter", &a, Err(&failure));
    for id in picks(&selector, 10).await {
        assert_ne!(
            id, a.id,
            "a cooling node was picked while another was available"
        );
    }
    selector.mark("greeter", &a, Ok(()));
    assert!(picks(&selector, 4).await.contains(&a.id));
}

#[tokio::test]
async fn all_nodes_cooling_down_still_returns_the_least_recently_failed() {
    let registry = registry_with(&["a", "b"]).await;
    let selector = selector(Arc::new(registry), Strategy::RoundRobin);
    let failure = Error::unavailable("test", "connection refused");
    selector.mark("greeter", &node("a", &[]), Err(&failure));
    tokio::time::sleep(Duration::from_millis(5)).await;
    selector.mark("greeter", &node("b", &[]), Err(&failure));
    for id in picks(&selector, 4).await {
        assert_eq!(id, "a");
    }
}

#[tokio::test]
async fn reset_forgets_cool_downs() {
    let registry = registry_with(&["a", "b"]).await;
    let selector = selector(Arc::new(registry), Strategy::RoundRobin);
    let failure = Error::unavailable("test", "connection refused");
    selector.mark("greeter", &node("a", &[]), Err(&failure));
    assert!(!picks(&selector, 4).await.contains(&"a".to_string()));
    selector.reset("greeter").await;
    assert!(picks(&selector, 4).await.contains(&"a".to_string()));
}

#[tokio::test]
async fn node_leaving_the_registry_leaves_the_cool_down_table() {
    let memory = registry_with(&["a", "b"]).await;
    let selector = selector(Arc::new(memory.clone()), Strategy::RoundRobin);
    picks(&selector, 1).await;
    let failure = Error::unavailable("test", "connection refused");
    selector.mark("greeter", &node("a", &[]), Err(&failure));
    let a = service("1.0.0", vec![node("a", &[])], &[]);
    memory.deregister(&a).await.expect("deregister");
    register(&memory, &a).await;
    eventually(&selector, "the re-registered node", |id| id == "a").await;
}

#[tokio::test]
async fn watch_keeps_the_cache_fresh() {
    let memory = registry_with(&["a"]).await;
    let registry = TestRegistry::new(memory.clone(), Duration::ZERO);
    let selector = selector(registry.clone(), Strategy::RoundRobin);
    assert_eq!(picks(&selector, 2).await, ["a", "a"]);

    register(&memory, &service("1.0.0", vec![node("b", &[])], &[])).await;
    eventually(&selector, "the new node", |id| id == "b").await;

    memory
        .deregister(&service("1.0.0", vec![node("a", &[])], &[]))
        .await
        .expect("deregister");
    let start = Instant::now();
    loop {
        if picks(&selector, 10).await.iter().all(|id| id == "b") {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the deregistered node is still picked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(registry.calls(), 1, "changes came through the watch");
}

#[tokio::test]
async fn watch_is_reopened_when_it_ends() {
    let memory = registry_with(&["a"]).await;
    let registry = TestRegistry::new(memory.clone(), Duration::ZERO);
    registry.broken_watches.store(2, Ordering::SeqCst);
    let selector = selector(registry.clone(), Strategy::RoundRobin);
    assert_eq!(picks(&selector, 1).await, ["a"]);
    // Wait until the watch is open for real, then change the registry.
    let start = Instant::now();
    while !format!("{memory:?}").contains("watchers: 1") {
        assert!(start.elapsed() < DEADLINE, "the watch was not reopened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    register(&memory, &service("1.0.0", vec![node("b", &[])], &[])).await;
    eventually(&selector, "the new node", |id| id == "b").await;
}

#[tokio::test]
async fn concurrent_misses_share_one_registry_call() {
    let memory = registry_with(&["a", "b"]).await;
    let registry = TestRegistry::new(memory, Duration::from_millis(50));
    let selector = Arc::new(selector(registry.clone(), Strategy::Random));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let selector = selector.clone();
            tokio::spawn(async move { selector.select("greeter", &SelectOptions::default()).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("select");
    }
    assert_eq!(registry.calls(), 1);
}

#[tokio::test]
async fn serves_stale_nodes_while_the_registry_fails() {
    let memory = registry_with(&["a"]).await;
    let registry = TestRegistry::new(memory, Duration::ZERO);
    let selector = selector(registry.clone(), Strategy::Random).with_ttl(Duration::from_millis(20));
    assert_eq!(picks(&selector, 1).await, ["a"]);

    registry.failing.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(picks(&selector, 3).await, ["a", "a", "a"]);
    }
    assert!(registry.calls() > 1, "the expired entry was refreshed");

    // Nothing cached: the registry's error comes through.
    let err = selector
        .select("unknown", &SelectOptions::default())
        .await
        .expect_err("registry is down");
    assert_eq!(err.code, 503);
    assert_eq!(err.id, "test.registry");

    // Back up: fresh data again.
    registry.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(picks(&selector, 1).await, ["a"]);
}

#[tokio::test]
async fn unknown_service_is_unavailable() {
    let registry = registry_with(&["a"]).await;
    let selector = selector(Arc::new(registry), Strategy::Random);
    let err = selector
        .select("nobody", &SelectOptions::default())
        .await
        .expect_err("not registered");
    assert_eq!(err.code, 503);
    assert!(
        err.detail.contains("service nobody: no nodes available"),
        "{}",
        err.detail
    );
}

#[tokio::test]
async fn dropping_the_selector_ends_its_watch() {
    let memory = registry_with(&["a"]).await;
    let selector = selector(Arc::new(memory.clone()), Strategy::Random);
    picks(&selector, 1).await;
    assert!(format!("{memory:?}").contains("watchers: 1"), "{memory:?}");
    drop(selector);
    let start = Instant::now();
    while !format!("{memory:?}").contains("watchers: 0") {
        assert!(
            start.elapsed() < DEADLINE,
            "the watch outlived the selector"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Builds each selector plugin with the given components and default config.
fn build_plugins(components: &Components) -> Vec<Result<Arc<dyn Selector>>> {
    let sources = Sources {
        no_flags: true,
        ..Default::default()
    };
    let Outcome::Loaded(loaded) = load(Schema::core(), &sources).expect("config") else {
        panic!("config did not load");
    };
    let ctx = PluginContext {
        section: "selector",
        config: &*loaded,
        logger: Logger::none(),
        components,
        service: &ServiceInfo::default(),
        middleware: &Middleware::default(),
    };
    micro_selector::plugins()
        .iter()
        .map(|plugin| match &plugin.factory {
            PluginFactory::Selector(factory) => factory(&ctx),
            _ => panic!("{} is not a selector", plugin.name),
        })
        .collect()
}

#[test]
fn plugins_need_a_registry() {
    for result in build_plugins(&Components::default()) {
        let err = result.err().expect("no registry");
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("needs a registry"), "{}", err.detail);
    }
}

#[tokio::test]
async fn plugins_are_random_and_roundrobin() {
    let components = Components {
        registry: Some(Arc::new(registry_with(&["a", "b"]).await)),
        ..Default::default()
    };
    let selectors: Vec<_> = build_plugins(&components)
        .into_iter()
        .map(|r| r.expect("selector"))
        .collect();
    let names: Vec<&str> = selectors.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["random", "roundrobin"]);
    let node = selectors[1]
        .select("greeter", &SelectOptions::default())
        .await
        .expect("select");
    assert!(node.id == "a" || node.id == "b");
}
