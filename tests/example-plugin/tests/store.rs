//! What the example store adds to the contract: the value size limit, the default scope
//! from the `store:` section, usage counts; and its entry in a plugin table.

use bytes::Bytes;
use micro_core::ErrorKind;
use micro_core::config::{Component, StoreConfig};
use micro_core::plugin::PluginFactory;
use micro_core::store::{ReadOptions, Record, Scope, Store, WriteOptions};
use micro_example_plugin::store::Usage;
use micro_example_plugin::{ExampleStore, ExampleStoreOptions, NAME, plugins};
use std::time::Duration;

fn limited(max_value_size: usize) -> ExampleStore {
    ExampleStore::from_config(
        &StoreConfig::default(),
        &ExampleStoreOptions { max_value_size },
    )
}

#[tokio::test]
async fn a_value_over_the_limit_is_a_413_and_is_not_written() {
    let store = limited(4);
    store
        .write(Record::new("fits", "abcd"), WriteOptions::default())
        .await
        .unwrap();
    let err = store
        .write(Record::new("big", "abcde"), WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert_eq!(err.code, 413);
    assert!(err.detail.contains("max_value_size"), "{}", err.detail);
    let missing = store.read("big", ReadOptions::default()).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    // Zero means no limit.
    let value = Bytes::from(vec![7u8; 2 << 20]);
    limited(0)
        .write(Record::new("huge", value), WriteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_default_scope_comes_from_the_section() {
    let section = StoreConfig {
        database: "shop".into(),
        table: "orders".into(),
        ..Default::default()
    };
    let store = ExampleStore::from_config(&section, &ExampleStoreOptions::default());
    assert_eq!(store.defaults(), &Scope::new("shop", "orders"));
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    let explicit = ReadOptions::default().scope(Scope::new("shop", "orders"));
    assert_eq!(store.read("k", explicit).await.unwrap()[0].value, "v");
    let elsewhere = ReadOptions::default().scope(Scope::new("shop", "lines"));
    assert_eq!(store.read("k", elsewhere).await.unwrap_err().code, 404);
}

#[tokio::test]
async fn usage_counts_live_records_of_one_scope_and_clones_share() {
    let store = ExampleStore::new();
    let clone = store.clone();
    clone
        .write(Record::new("a", "12345"), WriteOptions::default())
        .await
        .unwrap();
    clone
        .write(Record::new("b", "123"), WriteOptions::default())
        .await
        .unwrap();
    let elsewhere = WriteOptions::default().scope(Scope::new("other", "table"));
    clone.write(Record::new("c", "1"), elsewhere).await.unwrap();
    let expired = WriteOptions::default().ttl(Duration::from_nanos(1));
    clone
        .write(Record::new("gone", "1234567"), expired)
        .await
        .unwrap();
    // The 1ns ttl is over once any time has passed (Instant is monotonic).
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        store.usage(&Scope::default()),
        Usage {
            records: 2,
            bytes: 8
        }
    );
    assert_eq!(
        store.usage(&Scope::new("other", "table")),
        Usage {
            records: 1,
            bytes: 1
        }
    );
}

#[test]
fn the_plugin_table_has_the_store_and_its_options() {
    let table = plugins();
    let plugin = table.find("store", NAME).unwrap();
    assert!(matches!(plugin.factory, PluginFactory::Store(_)));
    assert_eq!(plugin.feature, "");
    assert!(table.find("registry", NAME).is_err());

    assert_eq!(ExampleStoreOptions::SECTION, "store");
    assert_eq!(ExampleStoreOptions::PLUGIN, Some(NAME));
    assert_eq!(ExampleStoreOptions::default().max_value_size, 1_048_576);
    let options = ExampleStoreOptions::options();
    let spec = options
        .iter()
        .find(|spec| spec.key == "max_value_size")
        .unwrap();
    assert_eq!(spec.flag_names("store"), ["store_max_value_size"]);
    assert!(spec.help.contains("413"), "{}", spec.help);
}
