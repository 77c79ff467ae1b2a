//! The nats registry against the shared nats-server: the conformance suite, and records on
//! the wire that are not ours.

mod common;

use common::nats_address;
use futures::StreamExt;
use micro_conformance::support::{eventually, unique, within};
use micro_core::config::LoggerConfig;
use micro_core::logger::{LogOutput, Logger};
use micro_core::registry::{Action, Node, RegisterOptions, Registry, Service, WatchOptions};
use micro_nats::Connector;
use micro_nats::registry::{BUCKET, NatsRegistry, node_key};
use std::sync::{Arc, Mutex};

fn registry() -> NatsRegistry {
    NatsRegistry::new(Connector::new(&[nats_address()], "registry"))
}

micro_conformance::registry_suite!(async || Arc::new(registry()) as Arc<dyn Registry>);

fn service(name: &str, node: &str) -> Service {
    Service {
        name: name.to_string(),
        version: "1.0.0".to_string(),
        nodes: vec![Node {
            id: node.to_string(),
            address: "127.0.0.1:1".to_string(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_records_are_skipped_with_a_warning_naming_the_key() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let dispatch = micro_core::service::loggers::text_dispatch(
        &LoggerConfig::default(),
        tracing::level_filters::LevelFilter::WARN,
        LogOutput::buffer(lines.clone()),
    );
    let r = registry().with_logger(Logger::new("registry", dispatch));
    let name = unique("nats-malformed");
    let good = service(&name, "good");
    r.register(&good, RegisterOptions::default()).await.unwrap();
    let mut watcher = r
        .watch(WatchOptions::default().service(name.clone()))
        .await
        .unwrap();

    // Garbage under keys of the registry's shape, written by a plain client.
    let client = async_nats::connect(nats_address()).await.unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value(BUCKET)
        .await
        .unwrap();
    let garbage = node_key(&name, "1.0.0", "garbage");
    let wrong_key = node_key(&name, "1.0.0", "elsewhere");
    kv.put(&garbage, "{not json".into()).await.unwrap();
    kv.put(
        &wrong_key,
        serde_json::to_vec(&serde_json::json!({"service": service(&name, "good")}))
            .unwrap()
            .into(),
    )
    .await
    .unwrap();

    // get and list see only the good node.
    let got = r.get_service(&name).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .collect::<Vec<_>>(),
        ["good"]
    );
    let listed = r.list_services().await.unwrap();
    let mine: Vec<_> = listed.iter().filter(|s| s.name == name).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].nodes.len(), 1);

    // The watch goes on: the next good change arrives, the garbage never does.
    let second = service(&name, "second");
    r.register(&second, RegisterOptions::default())
        .await
        .unwrap();
    let event = within("the watch reports the second node", watcher.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.action, Action::Update);
    let mut ids: Vec<_> = event.service.nodes.iter().map(|n| n.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["good", "second"]);

    let text = || String::from_utf8_lossy(&lines.lock().unwrap()).to_string();
    let wanted = [format!("key {garbage}"), format!("key {wrong_key}")];
    eventually("a warning names each malformed key", || {
        let text = text();
        let found = text.contains("WARN") && wanted.iter().all(|w| text.contains(w));
        async move { found.then_some(()) }
    })
    .await;

    kv.delete(&garbage).await.unwrap();
    kv.delete(&wrong_key).await.unwrap();
    r.deregister(&good).await.unwrap();
    r.deregister(&second).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn names_outside_the_key_charset_round_trip() {
    let r = registry();
    let name = format!("{}.go micro/*>", unique("nats-escaped"));
    let mut s = service(&name, "node id.with*odd>chars");
    s.version = String::new();
    r.register(&s, RegisterOptions::default()).await.unwrap();
    let got = r.get_service(&name).await.unwrap();
    assert_eq!(got, [s.clone()]);
    r.deregister(&s).await.unwrap();
    assert_eq!(r.get_service(&name).await.unwrap_err().code, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_reads_the_registry_section() {
    let plugins = micro_nats::plugins();
    let plugin = plugins.find("registry", "nats").unwrap();
    assert_eq!(plugin.feature, "nats");
}
