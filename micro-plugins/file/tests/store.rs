//! The file store against the store conformance suite, plus persistence, the plugin
//! factory (options, default directory) and broken files.

use micro_core::PluginContext;
use micro_core::config::{Outcome, Sources, load};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
use micro_core::store::{ListOptions, ReadOptions, Record, Scope, Store, WriteOptions};
use micro_file::FileStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

// A fresh directory per case, kept until the case ends.
micro_conformance::store_suite!(async || {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("store")).unwrap();
    (Arc::new(store) as Arc<dyn Store>, dir)
});

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let scope = Scope::new("orders", "lines");
    {
        let store = FileStore::open(dir.path()).unwrap();
        let mut record = Record::new("a", "alpha");
        record.metadata.insert("m".into(), "1".into());
        store.write(record, WriteOptions::default()).await.unwrap();
        let ttl = WriteOptions::default().ttl(Duration::from_secs(3600));
        store.write(Record::new("b", "beta"), ttl).await.unwrap();
        let scoped = WriteOptions::default().scope(scope.clone());
        store
            .write(Record::new("c", "gamma"), scoped)
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    let store = FileStore::open(dir.path()).unwrap();
    let a = store.read("a", ReadOptions::default()).await.unwrap();
    assert_eq!(a[0].value, "alpha");
    assert_eq!(a[0].metadata.get("m").map(String::as_str), Some("1"));
    assert_eq!(a[0].expiry, None);
    let b = store.read("b", ReadOptions::default()).await.unwrap();
    assert!(
        b[0].expiry
            .is_some_and(|left| left <= Duration::from_secs(3600))
    );
    let scoped = ReadOptions::default().scope(scope.clone());
    assert_eq!(store.read("c", scoped).await.unwrap()[0].value, "gamma");
    let keys = store.list(ListOptions::default()).await.unwrap();
    assert_eq!(keys, vec!["a".to_string(), "b".to_string()]);
    assert!(dir.path().join("micro.redb").exists());
    assert!(dir.path().join("orders.redb").exists());
}

#[tokio::test]
async fn expiry_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        let ttl = WriteOptions::default().ttl(Duration::from_millis(300));
        store.write(Record::new("k", "v"), ttl).await.unwrap();
        store.close().await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let store = FileStore::open(dir.path()).unwrap();
        let read = store.read("k", ReadOptions::default()).await;
        store.close().await.unwrap();
        if matches!(read, Err(ref e) if e.code == 404) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "record never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn database_names_map_to_safe_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("store")).unwrap();
    let scope = Scope::new("../escape/..", "t");
    let options = WriteOptions::default().scope(scope.clone());
    store.write(Record::new("k", "v"), options).await.unwrap();
    let path = store.path_of("../escape/..");
    assert_eq!(path.parent(), Some(store.dir()));
    assert!(path.exists());
    let read = ReadOptions::default().scope(scope);
    assert_eq!(store.read("k", read).await.unwrap()[0].value, "v");
    assert!(!dir.path().join("escape").exists());
}

#[tokio::test]
async fn reading_does_not_create_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let missing = store.read("k", ReadOptions::default()).await.unwrap_err();
    assert_eq!(missing.code, 404);
    assert!(store.list(ListOptions::default()).await.unwrap().is_empty());
    store.delete("k", Default::default()).await.unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn corrupt_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("micro.redb");
    std::fs::write(&file, vec![0x5a; 8192]).unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let err = store.read("k", ReadOptions::default()).await.unwrap_err();
    println!("corrupt file: {err}");
    assert_eq!(err.code, 500, "{err}");
    assert!(
        err.detail.contains(&file.display().to_string()),
        "error must name the file: {err}"
    );
    let err = store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap_err();
    assert!(err.detail.contains(&file.display().to_string()), "{err}");
}

#[tokio::test]
async fn second_store_on_the_same_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileStore::open(dir.path()).unwrap();
    first
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    let second = FileStore::open(dir.path()).unwrap();
    let err = second.read("k", ReadOptions::default()).await.unwrap_err();
    println!("second store: {err}");
    assert_eq!(err.code, 503, "{err}");
    assert!(err.detail.contains("micro.redb"), "{err}");
    first.close().await.unwrap();
    assert_eq!(
        second.read("k", ReadOptions::default()).await.unwrap()[0].value,
        "v"
    );
}

#[test]
fn unusable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = FileStore::open(file.join("store")).unwrap_err();
    assert!(err.detail.contains("not-a-dir"), "{err}");
}

/// Builds the `file` store plugin from config `overrides` and builder `env`.
fn build(overrides: serde_json::Value, env: &[(&str, &str)]) -> micro_core::Result<Arc<dyn Store>> {
    let plugins = micro_file::plugins();
    let sources = Sources {
        no_flags: true,
        overrides,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let Outcome::Loaded(loaded) = load(plugins.schema(), &sources)? else {
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
    let PluginFactory::Store(factory) = &plugins.find("store", "file")?.factory else {
        panic!("not a store plugin");
    };
    factory(&ctx)
}

async fn write_and_expect(store: Arc<dyn Store>, file: &Path) {
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    assert!(file.exists(), "expected {}", file.display());
    store.close().await.unwrap();
}

#[tokio::test]
async fn plugin_uses_dir_and_default_scope() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"store": {
        "plugin": "file",
        "dir": dir.path().join("data").display().to_string(),
        "database": "shop",
        "table": "carts",
    }});
    let store = build(config, &[]).unwrap();
    assert_eq!(store.name(), "file");
    write_and_expect(store, &dir.path().join("data").join("shop.redb")).await;
}

#[tokio::test]
async fn plugin_dir_comes_from_the_builder_env() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    let home = dir.path().join("home");
    let file = |base: &Path| base.join("micro").join("store").join("micro.redb");
    let config = serde_json::json!({"store": {"plugin": "file"}});
    let store = build(
        config.clone(),
        &[
            ("XDG_DATA_HOME", xdg.to_str().unwrap()),
            ("HOME", home.to_str().unwrap()),
        ],
    )
    .unwrap();
    write_and_expect(store, &file(&xdg)).await;
    let store = build(config.clone(), &[("HOME", home.to_str().unwrap())]).unwrap();
    write_and_expect(store, &file(&home.join(".local").join("share"))).await;
    // The env var form of the option.
    let env_dir = dir.path().join("from-env");
    let store = build(config, &[("MICRO_STORE_DIR", env_dir.to_str().unwrap())]).unwrap();
    write_and_expect(store, &env_dir.join("micro.redb")).await;
}

#[test]
fn plugin_rejects_a_bad_option_type() {
    let config = serde_json::json!({"store": {"plugin": "file", "dir": ["a", "b"]}});
    let err = build(config, &[]).err().expect("a list is not a directory");
    println!("bad option: {err}");
    assert!(err.detail.contains("store.dir"), "{err}");
}
