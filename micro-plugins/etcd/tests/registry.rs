//! The etcd registry against the real shared etcd (127.0.0.1:2379): the registry
//! conformance suite, then what is particular to etcd: the key layout, odd names, malformed
//! records, a lease revoked behind the registry's back, and the plugin's options.
//!
//! Each test uses its own key prefix or unique service names, so runs never collide.

mod common;

use common::{connector, raw};
use futures::StreamExt;
use micro_conformance::support::{DEADLINE, eventually, unique};
use micro_core::config::LoggerConfig;
use micro_core::logger::{LogOutput, Logger};
use micro_core::registry::{Action, Node, RegisterOptions, Registry, Service, WatchOptions};
use micro_etcd::EtcdRegistry;
use micro_etcd::key::node_key;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn fresh() -> EtcdRegistry {
    EtcdRegistry::new(connector("registry"), "/micro/registry/")
}

/// A registry under a prefix no other test uses.
fn isolated() -> EtcdRegistry {
    EtcdRegistry::new(
        connector("registry"),
        &format!("/{}/", unique("micro-test")),
    )
}

fn service(name: &str, version: &str, node: &str) -> Service {
    Service {
        name: name.to_string(),
        version: version.to_string(),
        nodes: vec![Node {
            id: node.to_string(),
            address: "127.0.0.1:9000".to_string(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

micro_conformance::registry_suite!(async || Arc::new(fresh()) as Arc<dyn Registry>);

#[tokio::test]
async fn records_use_go_micros_layout_and_json() {
    let registry = fresh();
    let name = unique("layout");
    let s = service(&name, "1.0.0", "n1");
    registry
        .register(&s, RegisterOptions::default())
        .await
        .unwrap();
    let mut client = raw().await;
    let key = format!("/micro/registry/{name}/n1");
    assert_eq!(key, node_key("/micro/registry/", &name, "n1"));
    let got = client.get(key.as_str(), None).await.unwrap();
    let kv = got.kvs().first().expect("one key per node");
    let stored: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(stored["name"], name.as_str());
    assert_eq!(stored["version"], "1.0.0");
    assert_eq!(stored["nodes"][0]["id"], "n1");
    assert_eq!(kv.lease(), 0, "no ttl: no lease");
    registry
        .register(&s, RegisterOptions::default().ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    let got = client.get(key.as_str(), None).await.unwrap();
    assert_ne!(got.kvs()[0].lease(), 0, "a ttl puts the key under a lease");
    registry.deregister(&s).await.unwrap();
    let got = client.get(key.as_str(), None).await.unwrap();
    assert!(got.kvs().is_empty(), "deregister deletes the key");
}

#[tokio::test]
async fn odd_names_stay_in_their_own_keys() {
    let registry = isolated();
    let base = unique("odd");
    let slashed = format!("{base}/a/b");
    let percent = format!("{base}%2Fa%2Fb");
    let plain = base.clone();
    for (name, node) in [(&slashed, "n/1"), (&percent, "n%1"), (&plain, "ünï ✓")] {
        registry
            .register(&service(name, "1.0.0", node), RegisterOptions::default())
            .await
            .unwrap();
    }
    for (name, node) in [(&slashed, "n/1"), (&percent, "n%1"), (&plain, "ünï ✓")] {
        let got = registry.get_service(name).await.unwrap();
        assert_eq!(got.len(), 1, "{name}: {got:?}");
        assert_eq!(got[0].name, *name);
        let ids: Vec<&str> = got[0].nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, [node], "{name}: only its own node");
    }
    let mut client = raw().await;
    let key = node_key(registry.prefix(), &slashed, "n/1");
    assert!(key.ends_with("%2Fa%2Fb/n%2F1"), "{key}");
    let got = client.get(key.as_str(), None).await.unwrap();
    assert_eq!(got.kvs().len(), 1);
    let listed = registry.list_services().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    client
        .delete(
            registry.prefix(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_records_are_skipped_with_a_warning_naming_the_key() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let dispatch = micro_core::service::loggers::text_dispatch(
        &LoggerConfig::default(),
        tracing::level_filters::LevelFilter::WARN,
        LogOutput::buffer(lines.clone()),
    );
    let registry = isolated().with_logger(Logger::new("registry", dispatch));
    let name = unique("malformed");
    let mut watcher = registry.watch(WatchOptions::default()).await.unwrap();
    let mut client = raw().await;
    let prefix = registry.prefix().to_string();
    // Garbage, a record of another node, a record with two nodes, under this service.
    client
        .put(format!("{prefix}{name}/garbage"), "not json", None)
        .await
        .unwrap();
    let other = serde_json::to_vec(&service(&name, "1.0.0", "elsewhere")).unwrap();
    client
        .put(format!("{prefix}{name}/wrong-key"), other, None)
        .await
        .unwrap();
    let mut two = service(&name, "1.0.0", "a");
    two.nodes.push(two.nodes[0].clone());
    client
        .put(
            format!("{prefix}{name}/a"),
            serde_json::to_vec(&two).unwrap(),
            None,
        )
        .await
        .unwrap();
    let good = service(&name, "1.0.0", "good");
    registry
        .register(&good, RegisterOptions::default())
        .await
        .unwrap();
    let got = registry.get_service(&name).await.unwrap();
    assert_eq!(got.len(), 1);
    let ids: Vec<&str> = got[0].nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["good"], "only the well-formed record");
    // The watch skipped the malformed puts: its first event is the good node's Create.
    let event = tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("an event")
        .expect("the stream goes on")
        .expect("no error");
    assert_eq!(event.action, Action::Create);
    assert_eq!(event.service.nodes[0].id, "good");
    let logged = String::from_utf8_lossy(&lines.lock().unwrap()).into_owned();
    for key in ["garbage", "wrong-key", "a"] {
        let key = format!("{prefix}{name}/{key}");
        assert!(
            logged.contains(&format!("malformed record under etcd key {key}:")),
            "{key} not named in {logged}"
        );
    }
    client
        .delete(
            prefix.as_str(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lease_revoked_behind_its_back_removes_the_node_and_a_refresh_puts_it_back() {
    let registry = isolated();
    let name = unique("revoked");
    let s = service(&name, "1.0.0", "n1");
    let ttl = RegisterOptions::default().ttl(Duration::from_secs(30));
    registry.register(&s, ttl.clone()).await.unwrap();
    let mut watcher = registry
        .watch(WatchOptions::default().service(name.clone()))
        .await
        .unwrap();
    let mut client = raw().await;
    let key = node_key(registry.prefix(), &name, "n1");
    let lease = client.get(key.as_str(), None).await.unwrap().kvs()[0].lease();
    client.lease_revoke(lease).await.unwrap();
    let event = tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    assert_eq!(event.action, Action::Delete);
    assert!(registry.get_service(&name).await.is_err());
    // The next periodic registration finds the lease gone and writes the node again.
    registry.register(&s, ttl).await.unwrap();
    let event = tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    assert_eq!(event.action, Action::Create);
    assert_eq!(registry.get_service(&name).await.unwrap()[0].nodes.len(), 1);
    registry.deregister(&s).await.unwrap();
}

#[tokio::test]
async fn a_refresh_sends_no_event_and_a_change_is_an_update() {
    let registry = isolated();
    let name = unique("refresh");
    let mut s = service(&name, "1.0.0", "n1");
    let ttl = RegisterOptions::default().ttl(Duration::from_secs(30));
    let mut watcher = registry.watch(WatchOptions::default()).await.unwrap();
    registry.register(&s, ttl.clone()).await.unwrap();
    registry.register(&s, ttl.clone()).await.unwrap();
    s.nodes[0].address = "127.0.0.1:9999".to_string();
    registry.register(&s, ttl.clone()).await.unwrap();
    let mut actions = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(DEADLINE, watcher.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        actions.push((event.action, event.service.nodes[0].address.clone()));
    }
    assert_eq!(
        actions,
        [
            (Action::Create, "127.0.0.1:9000".to_string()),
            (Action::Update, "127.0.0.1:9999".to_string())
        ]
    );
    // One lease per node: the first one was revoked when the data changed.
    let mut client = raw().await;
    let leases = client.leases().await.unwrap();
    let key = node_key(registry.prefix(), &name, "n1");
    let lease = client.get(key.as_str(), None).await.unwrap().kvs()[0].lease();
    assert!(leases.leases().iter().any(|l| l.id() == lease));
    registry.deregister(&s).await.unwrap();
    eventually("the node's lease is revoked on deregister", || {
        let mut client = client.clone();
        async move {
            let leases = client.leases().await.ok()?;
            (!leases.leases().iter().any(|l| l.id() == lease)).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn deregistering_another_version_leaves_the_node() {
    let registry = isolated();
    let name = unique("version");
    registry
        .register(&service(&name, "2.0.0", "n1"), RegisterOptions::default())
        .await
        .unwrap();
    registry
        .deregister(&service(&name, "1.0.0", "n1"))
        .await
        .unwrap();
    let got = registry.get_service(&name).await.unwrap();
    assert_eq!(got[0].version, "2.0.0");
    registry
        .deregister(&service(&name, "2.0.0", "n1"))
        .await
        .unwrap();
    assert_eq!(registry.get_service(&name).await.unwrap_err().code, 404);
}

#[tokio::test]
async fn unreachable_etcd_is_a_503_naming_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = micro_etcd::Settings {
        addresses: vec![format!("127.0.0.1:{port}")],
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let registry = EtcdRegistry::new(
        micro_etcd::Connector::new(settings, "registry").unwrap(),
        "/micro/registry/",
    );
    let err = registry.list_services().await.unwrap_err();
    println!("{err}");
    assert_eq!(err.code, 503, "{err}");
    assert!(err.detail.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.detail.contains("registry.addresses"), "{err}");
}
