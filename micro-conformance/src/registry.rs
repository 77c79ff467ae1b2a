//! Registry conformance suite: every registry plugin must pass it.
//!
//! Each `check_*` function is one case and takes a fresh `Arc<dyn Registry>`.
//! [`registry_suite!`](crate::registry_suite) turns every case into a `#[tokio::test]` of the calling
//! crate, each against a fresh registry from the factory:
//!
//! ```ignore
//! use micro_core::registry::Registry;
//! use std::sync::Arc;
//!
//! micro_conformance::registry_suite!(async || Arc::new(MyRegistry::new()) as Arc<dyn Registry>);
//! ```
//!
//! Service names are unique per check, so backends shared between runs are fine. Checks
//! never assert on speed; waits for expiry or events fail after a generous deadline.

use crate::support::{DEADLINE, eventually, unique};
use futures::StreamExt;
use micro_core::registry::{
    Action, Endpoint, Node, RegisterOptions, Registry, Service, Value, WatchEvent, WatchOptions,
    Watcher,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn node(id: &str, address: &str) -> Node {
    Node {
        id: id.to_string(),
        address: address.to_string(),
        metadata: BTreeMap::from([
            ("transport".to_string(), "tcp".to_string()),
            ("protocol".to_string(), "mucp".to_string()),
        ]),
    }
}

fn service(name: &str, version: &str, nodes: Vec<Node>) -> Service {
    Service {
        name: name.to_string(),
        version: version.to_string(),
        metadata: BTreeMap::from([("team".to_string(), "core".to_string())]),
        endpoints: vec![Endpoint {
            name: "Greeter.Hello".to_string(),
            request: Some(Value {
                name: "HelloRequest".to_string(),
                type_: "HelloRequest".to_string(),
                values: vec![Value {
                    name: "name".to_string(),
                    type_: "string".to_string(),
                    values: vec![],
                }],
            }),
            response: Some(Value {
                name: "HelloReply".to_string(),
                type_: "HelloReply".to_string(),
                values: vec![],
            }),
            metadata: BTreeMap::from([("stream".to_string(), "false".to_string())]),
        }],
        nodes,
    }
}

fn forever() -> RegisterOptions {
    RegisterOptions::default()
}

fn ttl(secs: u64) -> RegisterOptions {
    RegisterOptions::default().ttl(Duration::from_secs(secs))
}

fn node_ids(service: &Service) -> Vec<String> {
    let mut ids: Vec<String> = service.nodes.iter().map(|n| n.id.clone()).collect();
    ids.sort();
    ids
}

/// The version `version` of `name`, or `None` when absent (or the service is unknown).
async fn version_of(r: &Arc<dyn Registry>, name: &str, version: &str) -> Option<Service> {
    r.get_service(name)
        .await
        .ok()?
        .into_iter()
        .find(|s| s.version == version)
}

/// Asserts that `got` carries what `want` registered (backends may add metadata keys).
fn assert_same(check: &str, got: &Service, want: &Service) {
    assert_eq!(got.name, want.name, "{check}: service name");
    assert_eq!(got.version, want.version, "{check}: version");
    assert_eq!(got.metadata, want.metadata, "{check}: service metadata");
    assert_eq!(got.endpoints, want.endpoints, "{check}: endpoints");
    assert_eq!(node_ids(got), node_ids(want), "{check}: node ids");
    for want_node in &want.nodes {
        let got_node = got
            .nodes
            .iter()
            .find(|n| n.id == want_node.id)
            .unwrap_or_else(|| panic!("{check}: node {} missing", want_node.id));
        assert_eq!(got_node.address, want_node.address, "{check}: node address");
        for (key, value) in &want_node.metadata {
            assert_eq!(
                got_node.metadata.get(key),
                Some(value),
                "{check}: node {} metadata {key}",
                want_node.id
            );
        }
    }
}

/// The next event about service `name` that satisfies `want`; other events are skipped.
async fn next_event(
    check: &str,
    watcher: &mut Watcher,
    name: &str,
    want: impl Fn(&WatchEvent) -> bool,
) -> WatchEvent {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(item) = watcher.next().await {
            let event = item.unwrap_or_else(|e| panic!("{check}: watcher error {e}"));
            if event.service.name != name {
                continue;
            }
            if want(&event) {
                return Some(event);
            }
            seen.push((event.action, node_ids(&event.service)));
        }
        None
    };
    match tokio::time::timeout(DEADLINE, wait).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("{check}: watch stream ended early"),
        Err(_) => {
            panic!("{check}: expected event for {name} not seen within {DEADLINE:?}; saw {seen:?}")
        }
    }
}

/// Register then get: every field round-trips.
pub async fn check_register_get(r: Arc<dyn Registry>) {
    let check = "check_register_get";
    let name = unique("conformance-get");
    let want = service(
        &name,
        "1.0.0",
        vec![node("n1", "127.0.0.1:1001"), node("n2", "127.0.0.1:1002")],
    );
    r.register(&want, forever()).await.expect(check);
    let got = r.get_service(&name).await.expect(check);
    assert_eq!(got.len(), 1, "{check}: one entry per version, got {got:?}");
    assert_same(check, &got[0], &want);
    r.deregister(&want).await.expect(check);
}

/// Two versions of one service are two entries of `get_service`.
pub async fn check_versions(r: Arc<dyn Registry>) {
    let check = "check_versions";
    let name = unique("conformance-versions");
    let v1 = service(&name, "1.0.0", vec![node("a", "127.0.0.1:2001")]);
    let v2 = service(&name, "2.0.0", vec![node("b", "127.0.0.1:2002")]);
    r.register(&v1, forever()).await.expect(check);
    r.register(&v2, forever()).await.expect(check);
    let mut got = r.get_service(&name).await.expect(check);
    got.sort_by(|a, b| a.version.cmp(&b.version));
    assert_eq!(got.len(), 2, "{check}: one entry per version, got {got:?}");
    assert_same(check, &got[0], &v1);
    assert_same(check, &got[1], &v2);
    r.deregister(&v1).await.expect(check);
    r.deregister(&v2).await.expect(check);
}

/// `list_services` shows every service version.
pub async fn check_list(r: Arc<dyn Registry>) {
    let check = "check_list";
    let one = unique("conformance-list-one");
    let two = unique("conformance-list-two");
    let services = [
        service(&one, "1.0.0", vec![node("a", "127.0.0.1:3001")]),
        service(&one, "2.0.0", vec![node("b", "127.0.0.1:3002")]),
        service(&two, "1.0.0", vec![node("c", "127.0.0.1:3003")]),
    ];
    for s in &services {
        r.register(s, forever()).await.expect(check);
    }
    let listed = r.list_services().await.expect(check);
    for s in &services {
        assert!(
            listed
                .iter()
                .any(|l| l.name == s.name && l.version == s.version),
            "{check}: {} {} missing from {listed:?}",
            s.name,
            s.version
        );
    }
    for s in &services {
        r.deregister(s).await.expect(check);
    }
}

/// Registering a known node again replaces its data; a new node joins the version.
pub async fn check_register_replaces(r: Arc<dyn Registry>) {
    let check = "check_register_replaces";
    let name = unique("conformance-replace");
    let first = service(&name, "1.0.0", vec![node("a", "127.0.0.1:4001")]);
    r.register(&first, forever()).await.expect(check);
    let mut moved = node("a", "127.0.0.1:4999");
    moved.metadata.insert("zone".into(), "b".into());
    let second = service(&name, "1.0.0", vec![moved.clone()]);
    r.register(&second, forever()).await.expect(check);
    let got = version_of(&r, &name, "1.0.0").await.expect(check);
    assert_same(check, &got, &second);
    let third = service(&name, "1.0.0", vec![node("b", "127.0.0.1:4002")]);
    r.register(&third, forever()).await.expect(check);
    let got = version_of(&r, &name, "1.0.0").await.expect(check);
    assert_eq!(
        node_ids(&got),
        ["a", "b"],
        "{check}: a second node joins the version"
    );
    r.deregister(&service(&name, "1.0.0", vec![moved, node("b", "")]))
        .await
        .expect(check);
}

/// Deregister removes nodes; an empty version disappears; then the service is a 404.
pub async fn check_deregister(r: Arc<dyn Registry>) {
    let check = "check_deregister";
    let name = unique("conformance-deregister");
    let v1 = service(
        &name,
        "1.0.0",
        vec![node("a", "127.0.0.1:5001"), node("b", "127.0.0.1:5002")],
    );
    let v2 = service(&name, "2.0.0", vec![node("c", "127.0.0.1:5003")]);
    r.register(&v1, forever()).await.expect(check);
    r.register(&v2, forever()).await.expect(check);

    r.deregister(&service(&name, "1.0.0", vec![node("a", "127.0.0.1:5001")]))
        .await
        .expect(check);
    let got = version_of(&r, &name, "1.0.0")
        .await
        .unwrap_or_else(|| panic!("{check}: version 1.0.0 vanished with a node left"));
    assert_eq!(node_ids(&got), ["b"], "{check}: only node b is left");

    r.deregister(&service(&name, "1.0.0", vec![node("b", "127.0.0.1:5002")]))
        .await
        .expect(check);
    let got = r.get_service(&name).await.expect(check);
    assert_eq!(
        got.iter().map(|s| s.version.as_str()).collect::<Vec<_>>(),
        ["2.0.0"],
        "{check}: the version without nodes disappears"
    );

    r.deregister(&v2).await.expect(check);
    let err = r
        .get_service(&name)
        .await
        .expect_err("check_deregister: service still found after deregistering every node");
    assert_eq!(err.code, 404, "{check}: expected 404, got {err}");
}

/// An unknown service is a 404; deregistering it is not an error.
pub async fn check_get_unknown(r: Arc<dyn Registry>) {
    let check = "check_get_unknown";
    let name = unique("conformance-unknown");
    let err = r
        .get_service(&name)
        .await
        .expect_err("check_get_unknown: unknown service found");
    assert_eq!(err.code, 404, "{check}: expected 404, got {err}");
    r.deregister(&service(&name, "1.0.0", vec![node("x", "127.0.0.1:6001")]))
        .await
        .expect(check);
}

/// A node registered with a TTL and not refreshed goes away; one without TTL stays.
pub async fn check_ttl_expiry(r: Arc<dyn Registry>) {
    let check = "check_ttl_expiry";
    let name = unique("conformance-ttl");
    r.register(
        &service(&name, "1.0.0", vec![node("short", "127.0.0.1:7001")]),
        ttl(1),
    )
    .await
    .expect(check);
    r.register(
        &service(&name, "1.0.0", vec![node("forever", "127.0.0.1:7002")]),
        forever(),
    )
    .await
    .expect(check);
    eventually("check_ttl_expiry: node with TTL 1s never expired", || {
        let r = r.clone();
        let name = name.clone();
        async move {
            let got = version_of(&r, &name, "1.0.0").await?;
            (node_ids(&got) == ["forever"]).then_some(())
        }
    })
    .await;
    r.deregister(&service(&name, "1.0.0", vec![node("forever", "")]))
        .await
        .expect(check);
}

/// Registering again restarts the TTL: a refreshed node outlives its first TTL, then expires
/// once refreshes stop.
pub async fn check_ttl_refresh(r: Arc<dyn Registry>) {
    let check = "check_ttl_refresh";
    let name = unique("conformance-refresh");
    let s = service(&name, "1.0.0", vec![node("kept", "127.0.0.1:8001")]);
    // TTL 2s, refreshed every 400ms for 3.2s: the node must be there at every look.
    for round in 0..8 {
        r.register(&s, ttl(2)).await.expect(check);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let got = version_of(&r, &name, "1.0.0").await;
        assert!(
            got.is_some_and(|g| node_ids(&g) == ["kept"]),
            "{check}: refreshed node missing at round {round}"
        );
    }
    eventually(
        "check_ttl_refresh: node never expired after refreshes stopped",
        || {
            let r = r.clone();
            let name = name.clone();
            async move { r.get_service(&name).await.is_err().then_some(()) }
        },
    )
    .await;
}

/// A watch reports `Create` for a new service and `Delete` (with the node) on deregister.
pub async fn check_watch_create_delete(r: Arc<dyn Registry>) {
    let check = "check_watch_create_delete";
    let name = unique("conformance-watch");
    let mut watcher = r.watch(WatchOptions::default()).await.expect(check);
    let s = service(&name, "1.0.0", vec![node("w1", "127.0.0.1:9001")]);
    r.register(&s, forever()).await.expect(check);
    let created = next_event(check, &mut watcher, &name, |_| true).await;
    assert_eq!(created.action, Action::Create, "{check}: first event");
    assert_eq!(created.service.version, "1.0.0", "{check}: created version");
    assert!(
        node_ids(&created.service).contains(&"w1".to_string()),
        "{check}: Create carries the node, got {created:?}"
    );
    r.deregister(&s).await.expect(check);
    let deleted = next_event(check, &mut watcher, &name, |e| e.action == Action::Delete).await;
    assert_eq!(deleted.service.version, "1.0.0", "{check}: deleted version");
    assert_eq!(
        node_ids(&deleted.service),
        ["w1"],
        "{check}: Delete carries the removed node"
    );
}

/// TTL expiry is reported as `Delete` with the expired node, without anyone reading.
pub async fn check_watch_expiry(r: Arc<dyn Registry>) {
    let check = "check_watch_expiry";
    let name = unique("conformance-watch-ttl");
    let mut watcher = r.watch(WatchOptions::default()).await.expect(check);
    r.register(
        &service(&name, "1.0.0", vec![node("gone", "127.0.0.1:9101")]),
        ttl(1),
    )
    .await
    .expect(check);
    let deleted = next_event(check, &mut watcher, &name, |e| e.action == Action::Delete).await;
    assert_eq!(
        node_ids(&deleted.service),
        ["gone"],
        "{check}: Delete carries the expired node"
    );
}

/// A watch for one service reports nothing about others.
pub async fn check_watch_filter(r: Arc<dyn Registry>) {
    let check = "check_watch_filter";
    let watched = unique("conformance-watched");
    let other = unique("conformance-other");
    let mut watcher = r
        .watch(WatchOptions::default().service(watched.clone()))
        .await
        .expect(check);
    let o = service(&other, "1.0.0", vec![node("o", "127.0.0.1:9201")]);
    let w = service(&watched, "1.0.0", vec![node("w", "127.0.0.1:9202")]);
    r.register(&o, forever()).await.expect(check);
    r.register(&w, forever()).await.expect(check);
    r.deregister(&o).await.expect(check);
    r.deregister(&w).await.expect(check);
    // Events come in order, so `other`'s (registered first) would show up before the end.
    let mut seen = Vec::new();
    let wait = async {
        while let Some(item) = watcher.next().await {
            let event = item.unwrap_or_else(|e| panic!("{check}: watcher error {e}"));
            assert_eq!(
                event.service.name, watched,
                "{check}: event about another service leaked through the filter"
            );
            let done = event.action == Action::Delete;
            seen.push(event.action);
            if done {
                return;
            }
        }
        panic!("{check}: watch stream ended early");
    };
    if tokio::time::timeout(DEADLINE, wait).await.is_err() {
        panic!("{check}: no Delete for {watched} within {DEADLINE:?}; saw {seen:?}");
    }
}

/// One case of the suite: takes a fresh registry, panics when the registry fails the check.
pub type Case = fn(Arc<dyn Registry>) -> futures::future::BoxFuture<'static, ()>;

/// Every case of [`registry_suite!`](crate::registry_suite), by name, for test runners that
/// cannot use `#[tokio::test]` (the mdns registry's tests run inside a private network
/// namespace from a runner of their own). The same cases as the macro, in its order.
pub fn cases() -> Vec<(&'static str, Case)> {
    macro_rules! cases {
        ($($case:ident),* $(,)?) => {
            vec![$((stringify!($case), (|r| Box::pin($case(r))) as Case)),*]
        };
    }
    cases![
        check_register_get,
        check_versions,
        check_list,
        check_register_replaces,
        check_deregister,
        check_get_unknown,
        check_ttl_expiry,
        check_ttl_refresh,
        check_watch_create_delete,
        check_watch_expiry,
        check_watch_filter,
    ]
}

/// One `#[tokio::test]` per case of the registry suite, each against a fresh registry from the
/// factory (see the [crate] documentation for the three forms).
///
/// ```ignore
/// micro_conformance::registry_suite!(async || Arc::new(MyRegistry::new()) as Arc<dyn Registry>);
/// micro_conformance::registry_suite!(
///     mod on_current_thread(flavor = "current_thread"),
///     async || Arc::new(MyRegistry::new()) as Arc<dyn Registry>,
/// );
/// ```
#[macro_export]
macro_rules! registry_suite {
    ($($input:tt)*) => {
        $crate::__suite!(component registry [
            check_register_get,
            check_versions,
            check_list,
            check_register_replaces,
            check_deregister,
            check_get_unknown,
            check_ttl_expiry,
            check_ttl_refresh,
            check_watch_create_delete,
            check_watch_expiry,
            check_watch_filter,
        ] $($input)*);
    };
}

#[cfg(test)]
mod tests {
    /// [`super::cases`] lists exactly the cases of the `registry_suite!` macro.
    #[test]
    fn cases_match_the_macro() {
        let source = include_str!("registry.rs");
        let start = source
            .find("component registry [")
            .expect("the macro's case list");
        let list = &source[start..];
        let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
        let in_macro: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let listed: Vec<&str> = super::cases().iter().map(|(name, _)| *name).collect();
        assert_eq!(listed, in_macro);
    }
}
