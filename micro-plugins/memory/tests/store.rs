//! The memory store against the store conformance suite, plus its plugin factory.

use micro_core::config::{Outcome, Sources, load};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
use micro_core::store::{ReadOptions, Record, Scope, Store, WriteOptions};
use micro_core::{PluginContext, Plugins};
use micro_memory::MemoryStore;
use std::sync::Arc;

micro_conformance::store_suite!(async || Arc::new(MemoryStore::new()) as Arc<dyn Store>);

/// Builds the `memory` store plugin with `overrides` as configuration.
fn build(overrides: serde_json::Value) -> Arc<dyn Store> {
    let plugins = Plugins::new().with(micro_memory::store::plugin());
    let sources = Sources {
        no_flags: true,
        overrides,
        ..Default::default()
    };
    let Outcome::Loaded(loaded) = load(plugins.schema(), &sources).unwrap() else {
        panic!("config did not load");
    };
    let components = Components::default();
    let service = ServiceInfo::default();
    let middleware = Middleware::default();
    let ctx = PluginContext {
        section: "store",
        config: &*loaded,
        logger: Logger::none(),
        components: &components,
        service: &service,
        middleware: &middleware,
    };
    let plugin = plugins.find("store", "memory").unwrap();
    let PluginFactory::Store(factory) = &plugin.factory else {
        panic!("not a store plugin");
    };
    factory(&ctx).unwrap()
}

#[tokio::test]
async fn plugin_uses_the_configured_default_scope() {
    let store = build(serde_json::json!({"store": {"database": "shop", "table": "carts"}}));
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    let explicit = ReadOptions::default().scope(Scope::new("shop", "carts"));
    assert_eq!(store.read("k", explicit).await.unwrap()[0].value, "v");
    let elsewhere = ReadOptions::default().scope(Scope::new("micro", "micro"));
    assert_eq!(store.read("k", elsewhere).await.unwrap_err().code, 404);
}

#[tokio::test]
async fn clones_share_data_and_new_values_do_not() {
    let store = MemoryStore::new();
    let clone = store.clone();
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        clone.read("k", ReadOptions::default()).await.unwrap().len(),
        1
    );
    let other = MemoryStore::new();
    assert_eq!(
        other
            .read("k", ReadOptions::default())
            .await
            .unwrap_err()
            .code,
        404
    );
}

#[tokio::test]
async fn absurd_ttl_is_a_clear_error() {
    let store = MemoryStore::new();
    let options = WriteOptions::default().ttl(std::time::Duration::MAX);
    let err = store
        .write(Record::new("k", "v"), options)
        .await
        .unwrap_err();
    assert_eq!(err.code, 400);
}
