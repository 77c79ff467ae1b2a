//! The example store against micro-conformance's store suite: 14 tests, each against a
//! fresh store, run twice (default options; no size limit, other default scope, on a
//! current-thread runtime).

use micro_core::config::StoreConfig;
use micro_core::store::Store;
use micro_example_plugin::{ExampleStore, ExampleStoreOptions};
use std::sync::Arc;

micro_conformance::store_suite!(async || Arc::new(ExampleStore::new()) as Arc<dyn Store>);

fn unlimited() -> Arc<dyn Store> {
    let section = StoreConfig {
        database: "shop".into(),
        table: "orders".into(),
        ..Default::default()
    };
    let options = ExampleStoreOptions { max_value_size: 0 };
    Arc::new(ExampleStore::from_config(&section, &options))
}

micro_conformance::store_suite!(
    mod unlimited_on_current_thread(flavor = "current_thread"),
    async || unlimited(),
);
