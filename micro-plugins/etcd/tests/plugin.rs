//! The etcd plugins built from configuration as a service builds them: addresses, prefix and
//! timeout from the section, from env and from flags.

mod common;

use common::{etcd_address, raw};
use micro_conformance::support::unique;
use micro_core::PluginContext;
use micro_core::config::{Outcome, Sources, load};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
use micro_core::registry::{Node, RegisterOptions, Registry, Service};
use micro_core::sync::{LockOptions, Sync};
use std::sync::Arc;
use std::time::Duration;

fn loaded(sources: Sources) -> Box<micro_core::config::Loaded> {
    let plugins = micro_etcd::plugins();
    match load(plugins.schema(), &sources) {
        Ok(Outcome::Loaded(loaded)) => loaded,
        Ok(_) => panic!("config did not load"),
        Err(e) => panic!("config did not load: {e}"),
    }
}

fn context<'a>(
    section: &'a str,
    config: &'a micro_core::config::Loaded,
    parts: &'a (Components, ServiceInfo, Middleware),
) -> PluginContext<'a> {
    PluginContext {
        section,
        config,
        logger: Logger::none(),
        components: &parts.0,
        service: &parts.1,
        middleware: &parts.2,
    }
}

fn registry(sources: Sources) -> micro_core::Result<Arc<dyn Registry>> {
    let plugins = micro_etcd::plugins();
    let loaded = loaded(sources);
    let parts = Default::default();
    let PluginFactory::Registry(factory) = &plugins.find("registry", "etcd").unwrap().factory
    else {
        panic!("not a registry plugin");
    };
    factory(&context("registry", &loaded, &parts))
}

fn sync(sources: Sources) -> micro_core::Result<Arc<dyn Sync>> {
    let plugins = micro_etcd::plugins();
    let loaded = loaded(sources);
    let parts = Default::default();
    let PluginFactory::Sync(factory) = &plugins.find("sync", "etcd").unwrap().factory else {
        panic!("not a sync plugin");
    };
    factory(&context("sync", &loaded, &parts))
}

#[tokio::test]
async fn registry_plugin_takes_addresses_and_prefix_from_its_section() {
    let prefix = format!("/{}/", unique("plugin-registry"));
    let registry = registry(Sources {
        no_flags: true,
        overrides: serde_json::json!({"registry": {
            "plugin": "etcd",
            "addresses": [etcd_address()],
            "prefix": prefix,
            "timeout": "2s",
        }}),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(registry.name(), "etcd");
    let service = Service {
        name: "greeter".into(),
        version: "1.0.0".into(),
        nodes: vec![Node {
            id: "n1".into(),
            address: "127.0.0.1:1".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    registry
        .register(&service, RegisterOptions::default())
        .await
        .unwrap();
    let mut client = raw().await;
    let got = client
        .get(format!("{prefix}greeter/n1"), None)
        .await
        .unwrap();
    assert_eq!(
        got.kvs().len(),
        1,
        "the record is under the configured prefix"
    );
    registry.deregister(&service).await.unwrap();
}

#[tokio::test]
async fn sync_plugin_takes_its_options_from_env_and_flags() {
    let prefix = format!("/{}/", unique("plugin-sync"));
    let sync = sync(Sources {
        env: vec![
            ("MICRO_SYNC".into(), "etcd".into()),
            ("MICRO_SYNC_ADDRESS".into(), etcd_address()),
            ("MICRO_SYNC_TIMEOUT".into(), "3s".into()),
        ],
        args: vec!["svc".into(), "--sync_prefix".into(), prefix.clone()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(sync.name(), "etcd");
    let id = unique("plugin");
    sync.lock(
        &id,
        LockOptions::default()
            .ttl(Duration::from_secs(60))
            .wait(Duration::ZERO),
    )
    .await
    .unwrap();
    let mut client = raw().await;
    let got = client
        .get(
            format!("{prefix}lock/{id}/"),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(
        got.kvs().len(),
        1,
        "the lock key is under the flag's prefix"
    );
    sync.unlock(&id).await.unwrap();
}

#[test]
fn a_zero_timeout_is_refused_naming_the_option() {
    let err = registry(Sources {
        no_flags: true,
        overrides: serde_json::json!({"registry": {"plugin": "etcd", "timeout": "0s"}}),
        ..Default::default()
    })
    .err()
    .expect("zero timeout");
    assert_eq!(err.code, 400, "{err}");
    assert!(err.detail.contains("registry.timeout"), "{err}");
}
