//! The nats store against the real shared nats-server (JetStream on 127.0.0.1:4222): the
//! store conformance suite, keys and database names outside the NATS charsets, values written
//! by something else, lazy expiry, and the plugin built from config.
//!
//! Every test works in databases of its own (unique names), and deletes the buckets its store
//! opened when it ends.

mod common;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use common::nats_address;
use micro_conformance::support::{DEADLINE, POLL, unique};
use micro_core::PluginContext;
use micro_core::config::{LoggerConfig, Outcome, Sources, load};
use micro_core::logger::{LogOutput, Logger};
use micro_core::middleware::Middleware;
use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
use micro_core::store::{ListOptions, ReadOptions, Record, Scope, Store, WriteOptions};
use micro_nats::{Connector, NatsStore};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Deletes the buckets a store opened when dropped (at the end of a test or suite case).
struct Cleanup(NatsStore);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let buckets = self.0.open_buckets();
        if buckets.is_empty() {
            return;
        }
        // Dropped inside (or after) the test's runtime: delete from a runtime of our own.
        let deleting = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let clean = async {
                    let client = async_nats::connect(nats_address()).await.ok()?;
                    let js = jetstream::new(client);
                    for bucket in buckets {
                        let _ = js.delete_key_value(&bucket).await;
                    }
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), clean).await;
            });
        });
        let _ = deleting.join();
    }
}

/// A store with a database of its own as default, and its cleanup.
fn fresh_store(logger: Logger) -> (NatsStore, Cleanup) {
    let connector = Connector::new(&[nats_address()], "store");
    let store = NatsStore::with_logger(connector, Scope::new(unique("nats_store"), "t"), logger);
    (store.clone(), Cleanup(store))
}

async fn js() -> jetstream::Context {
    jetstream::new(async_nats::connect(nats_address()).await.unwrap())
}

/// The raw bucket of `database`, as any NATS client sees it.
async fn raw_bucket(database: &str) -> kv::Store {
    let bucket = NatsStore::bucket_of(database).unwrap();
    js().await.get_key_value(bucket).await.unwrap()
}

micro_conformance::store_suite!(async || {
    let (store, cleanup) = fresh_store(Logger::none());
    (Arc::new(store) as Arc<dyn Store>, cleanup)
});

async fn keys_read(store: &NatsStore, pattern: &str, options: ReadOptions) -> Vec<String> {
    let records = store.read(pattern, options).await.unwrap();
    for r in &records {
        assert_eq!(r.value, Bytes::from(r.key.clone()), "value of {:?}", r.key);
    }
    records.into_iter().map(|r| r.key).collect()
}

#[tokio::test]
async fn keys_outside_the_kv_charset_round_trip_and_match() {
    let (store, _cleanup) = fresh_store(Logger::none());
    let keys = [
        "with space",
        "ünïcödé/日本",
        "*",
        ">",
        "a.*.>",
        ".leading",
        "trailing.",
        "a..b",
        "=41",
        "%2E",
        "tab\tand\nnewline",
        "",
    ];
    for key in keys {
        store
            .write(Record::new(key, key), WriteOptions::default())
            .await
            .unwrap_or_else(|e| panic!("write {key:?}: {e}"));
    }
    for key in keys {
        let got = store.read(key, ReadOptions::default()).await.unwrap();
        assert_eq!(got.len(), 1, "{key:?}");
        assert_eq!(got[0].key, key);
        assert_eq!(got[0].value, Bytes::from(key));
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(
        store.list(ListOptions::default()).await.unwrap(),
        sorted,
        "original keys, in their own order"
    );
    let prefix = ReadOptions::default().prefix(true);
    let suffix = ReadOptions::default().suffix(true);
    assert_eq!(keys_read(&store, ".", prefix.clone()).await, [".leading"]);
    assert_eq!(keys_read(&store, ".", suffix.clone()).await, ["trailing."]);
    assert_eq!(
        keys_read(&store, "ünï", prefix.clone()).await,
        ["ünïcödé/日本"]
    );
    assert_eq!(
        keys_read(&store, "日本", suffix.clone()).await,
        ["ünïcödé/日本"]
    );
    assert_eq!(keys_read(&store, "a.*", prefix.clone()).await, ["a.*.>"]);
    assert_eq!(
        keys_read(&store, "a.", prefix.clone()).await,
        ["a.*.>", "a..b"]
    );
    assert_eq!(keys_read(&store, ">", suffix).await, [">", "a.*.>"]);
    // A pattern that would look like part of an escape in the encoded keys matches nothing.
    assert!(keys_read(&store, "41", prefix.clone()).await.is_empty());
    assert!(keys_read(&store, "2E", prefix).await.is_empty());
    let listed = ListOptions::default().prefix("a.").suffix(">");
    assert_eq!(store.list(listed).await.unwrap(), ["a.*.>"]);
    // What other NATS clients see: valid KV keys, `{table}.{key}`.
    let raw = raw_bucket(&store.defaults().database).await;
    let entry = raw.entry("t.with=20space").await.unwrap().unwrap();
    assert_eq!(entry.operation, kv::Operation::Put);
    store.delete(".leading", Default::default()).await.unwrap();
    let missing = store.read(".leading", ReadOptions::default()).await;
    assert_eq!(missing.unwrap_err().code, 404);
}

#[tokio::test]
async fn database_names_outside_the_bucket_charset_are_mapped() {
    let (store, _cleanup) = fresh_store(Logger::none());
    let database = format!("{} Shop.eu/ü", unique("db"));
    let scope = Scope::new(&database, "orders table");
    let write = WriteOptions::default().scope(scope.clone());
    store.write(Record::new("k", "v"), write).await.unwrap();
    let read = ReadOptions::default().scope(scope.clone());
    assert_eq!(store.read("k", read).await.unwrap()[0].value, "v");
    let list = ListOptions::default().scope(scope.clone());
    assert_eq!(store.list(list).await.unwrap(), ["k"]);
    let bucket = NatsStore::bucket_of(&database).unwrap();
    assert!(
        bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{bucket}"
    );
    assert_eq!(
        micro_nats::store::names::database_of(&bucket).as_deref(),
        Some(database.as_str())
    );
    assert!(store.open_buckets().contains(&bucket));
    let raw = raw_bucket(&database).await;
    assert!(raw.entry("orders=20table.k").await.unwrap().is_some());
    // The default database is untouched: reading there does not make a bucket.
    let missing = store.read("k", ReadOptions::default()).await.unwrap_err();
    assert_eq!(missing.code, 404);
    assert_eq!(store.open_buckets(), [bucket]);
    // A name that cannot be a bucket is a clear error.
    let too_long = Scope::new("é".repeat(100), "t");
    let err = store
        .write(
            Record::new("k", "v"),
            WriteOptions::default().scope(too_long),
        )
        .await
        .unwrap_err();
    println!("too long: {err}");
    assert_eq!(err.code, 400);
    assert!(err.detail.contains("shorter database name"), "{err}");
}

#[tokio::test]
async fn values_written_by_something_else_are_skipped_with_a_warning() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let dispatch = micro_core::service::loggers::text_dispatch(
        &LoggerConfig::default(),
        tracing::level_filters::LevelFilter::WARN,
        LogOutput::buffer(lines.clone()),
    );
    let (store, _cleanup) = fresh_store(Logger::new("store", dispatch));
    store
        .write(Record::new("good", "v"), WriteOptions::default())
        .await
        .unwrap();
    let raw = raw_bucket(&store.defaults().database).await;
    raw.put("t.bad", Bytes::from_static(b"{\"not\": \"a record\"}"))
        .await
        .unwrap();
    // A key no micro store makes (lower-case escape), with a record-like value.
    raw.put("t.odd=2e", Bytes::from_static(b"MKV\x01"))
        .await
        .unwrap();
    let err = store.read("bad", ReadOptions::default()).await.unwrap_err();
    assert_eq!(err.code, 404, "{err}");
    assert_eq!(store.list(ListOptions::default()).await.unwrap(), ["good"]);
    let all = store
        .read("", ReadOptions::default().prefix(true))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, "good");
    let text = String::from_utf8_lossy(&lines.lock().unwrap()).to_string();
    println!("{text}");
    let bucket = NatsStore::bucket_of(&store.defaults().database).unwrap();
    let warned = |key: &str| {
        text.lines()
            .any(|l| l.contains("WARN") && l.contains(&bucket) && l.contains(key))
    };
    assert!(warned("t.bad"), "no warning naming the bucket and t.bad");
    assert!(
        warned("t.odd=2e"),
        "no warning naming the bucket and t.odd=2e"
    );
}

#[tokio::test]
async fn expired_records_are_deleted_when_met() {
    let (store, _cleanup) = fresh_store(Logger::none());
    let ttl = WriteOptions::default().ttl(Duration::from_millis(300));
    store.write(Record::new("short", "v"), ttl).await.unwrap();
    store
        .write(Record::new("long", "v"), WriteOptions::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.list(ListOptions::default()).await.unwrap() != ["long"] {
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(POLL).await;
    }
    // The list that left it out also deleted it from the bucket.
    let raw = raw_bucket(&store.defaults().database).await;
    let entry = raw.entry("t.short").await.unwrap().unwrap();
    assert_eq!(entry.operation, kv::Operation::Delete);
}

#[tokio::test]
async fn a_bucket_deleted_behind_the_store_is_made_again() {
    let (store, _cleanup) = fresh_store(Logger::none());
    store
        .write(Record::new("a", "1"), WriteOptions::default())
        .await
        .unwrap();
    let bucket = NatsStore::bucket_of(&store.defaults().database).unwrap();
    js().await.delete_key_value(&bucket).await.unwrap();
    store
        .write(Record::new("b", "2"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(store.list(ListOptions::default()).await.unwrap(), ["b"]);
}

/// Builds the `nats` store plugin from config `overrides`, as a service would.
fn build(overrides: serde_json::Value) -> micro_core::Result<Arc<dyn Store>> {
    let plugins = micro_nats::plugins();
    let sources = Sources {
        no_flags: true,
        overrides,
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
    let PluginFactory::Store(factory) = &plugins.find("store", "nats")?.factory else {
        panic!("not a store plugin");
    };
    factory(&ctx)
}

#[tokio::test]
async fn plugin_uses_addresses_and_default_scope() {
    let database = unique("nats_plugin");
    let config = serde_json::json!({"store": {
        "plugin": "nats",
        "addresses": [nats_address()],
        "database": database,
        "table": "carts",
    }});
    let store = build(config).unwrap();
    assert_eq!(store.name(), "nats");
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    let raw = raw_bucket(&database).await;
    let entry = raw.entry("carts.k").await.unwrap().unwrap();
    assert_eq!(entry.operation, kv::Operation::Put);
    store.close().await.unwrap();
    js().await
        .delete_key_value(NatsStore::bucket_of(&database).unwrap())
        .await
        .unwrap();
}

#[test]
fn plugin_rejects_an_empty_default_database() {
    let config = serde_json::json!({"store": {"plugin": "nats", "database": ""}});
    let err = build(config)
        .err()
        .expect("an empty database has no bucket");
    println!("empty database: {err}");
    assert_eq!(err.code, 400);
    assert!(err.detail.contains("store.database"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = serde_json::json!({"store": {
        "plugin": "nats",
        "addresses": [format!("nats://127.0.0.1:{port}")],
    }});
    let store = build(config).unwrap();
    let err = store.read("k", ReadOptions::default()).await.unwrap_err();
    println!("unreachable: {err}");
    assert_eq!(err.code, 503);
    assert!(err.detail.contains(&port.to_string()), "{err}");
}
