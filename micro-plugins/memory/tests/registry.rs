//! The registry conformance suite against [`MemoryRegistry`], plus memory-specific behaviour.

use futures::StreamExt;
use micro_core::registry::{Action, Node, RegisterOptions, Registry, Service, WatchOptions};
use micro_memory::MemoryRegistry;
use std::sync::Arc;
use std::time::Duration;

fn service(name: &str, version: &str, ids: &[&str]) -> Service {
    Service {
        name: name.into(),
        version: version.into(),
        nodes: ids
            .iter()
            .map(|id| Node {
                id: id.to_string(),
                address: format!("memory:{id}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

micro_conformance::registry_suite!(
    mod conformance(flavor = "multi_thread", worker_threads = 4),
    async || Arc::new(MemoryRegistry::new()) as Arc<dyn Registry>,
);

micro_conformance::registry_suite!(
    mod conformance_current_thread(flavor = "current_thread"),
    async || Arc::new(MemoryRegistry::new()) as Arc<dyn Registry>,
);

#[tokio::test]
async fn clones_share_state_and_values_do_not() {
    let one = MemoryRegistry::new();
    let clone = one.clone();
    let other = MemoryRegistry::new();
    one.register(&service("s", "1", &["a"]), RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(clone.get_service("s").await.unwrap().len(), 1);
    assert_eq!(other.get_service("s").await.unwrap_err().code, 404);
}

#[tokio::test]
async fn empty_version_is_kept_as_given() {
    let r = MemoryRegistry::new();
    r.register(&service("s", "", &["a"]), RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(r.get_service("s").await.unwrap()[0].version, "");
}

#[tokio::test]
async fn update_on_change_and_silence_on_refresh() {
    let r = MemoryRegistry::new();
    let mut watcher = r.watch(WatchOptions::default()).await.unwrap();
    let ttl = RegisterOptions::default().ttl(Duration::from_secs(60));
    r.register(&service("s", "1", &["a"]), ttl.clone())
        .await
        .unwrap();
    r.register(&service("s", "1", &["a"]), ttl.clone())
        .await
        .unwrap();
    r.register(&service("s", "1", &["b"]), ttl).await.unwrap();
    let first = watcher.next().await.unwrap().unwrap();
    assert_eq!(first.action, Action::Create);
    let second = watcher.next().await.unwrap().unwrap();
    assert_eq!(
        second.action,
        Action::Update,
        "a pure refresh sends nothing"
    );
    let ids: Vec<_> = second.service.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"], "Update carries every live node");
}

#[tokio::test]
async fn watch_ends_when_registry_is_dropped() {
    let r = MemoryRegistry::new();
    let mut watcher = r.watch(WatchOptions::default()).await.unwrap();
    r.register(
        &service("s", "1", &["a"]),
        RegisterOptions::default().ttl(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    drop(r);
    assert_eq!(
        watcher.next().await.unwrap().unwrap().action,
        Action::Create
    );
    let end = tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("the watch should end once the registry (and its reaper) is gone");
    assert!(end.is_none());
}

#[tokio::test]
async fn expiry_applies_without_a_runtime_reaper() {
    // Built and used from plain threads: expiry still applies on read.
    let r = MemoryRegistry::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    std::thread::spawn(move || {
        rt.block_on(async {
            r.register(
                &service("s", "1", &["a"]),
                RegisterOptions::default().ttl(Duration::from_millis(50)),
            )
            .await
            .unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        let got = futures::executor::block_on(r.get_service("s"));
        assert_eq!(got.unwrap_err().code, 404);
    })
    .join()
    .unwrap();
}
