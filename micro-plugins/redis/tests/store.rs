//! The redis store against the real shared redis-server (127.0.0.1:6379): the store
//! conformance suite, keys with `:`, glob characters and unicode, values written by something
//! else, and the plugin built from config.
//!
//! Every test works in databases of its own (unique names), and deletes every key under the
//! scopes its store wrote to when it ends.

mod common;

use async_trait::async_trait;
use common::redis_address;
use micro_conformance::support::unique;
use micro_core::PluginContext;
use micro_core::config::{LoggerConfig, Outcome, Sources, load};
use micro_core::logger::{LogOutput, Logger};
use micro_core::middleware::Middleware;
use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions,
};
use micro_redis::store::{redis_key, scope_prefix};
use micro_redis::{Connector, RedisStore};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A store that remembers every scope written to, so the test can delete their keys.
#[derive(Clone)]
struct Tracked {
    store: RedisStore,
    scopes: Arc<Mutex<BTreeSet<(String, String)>>>,
}

#[async_trait]
impl Store for Tracked {
    fn name(&self) -> &str {
        self.store.name()
    }
    async fn read(&self, key: &str, options: ReadOptions) -> micro_core::Result<Vec<Record>> {
        self.store.read(key, options).await
    }
    async fn write(&self, record: Record, options: WriteOptions) -> micro_core::Result<()> {
        let scope = options.scope.or(self.store.defaults());
        self.scopes
            .lock()
            .unwrap()
            .insert((scope.database, scope.table));
        self.store.write(record, options).await
    }
    async fn delete(&self, key: &str, options: DeleteOptions) -> micro_core::Result<()> {
        self.store.delete(key, options).await
    }
    async fn list(&self, options: ListOptions) -> micro_core::Result<Vec<String>> {
        self.store.list(options).await
    }
}

fn escape_glob(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = matches!(c, '*' | '?' | '[' | ']' | '\\').then_some('\\');
            escape.into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Deletes every key of `scopes` (from a runtime of its own: it runs on drop).
fn delete_scopes(scopes: Vec<Scope>) {
    let deleting = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let clean = async {
                let client = redis::Client::open(redis_address()).ok()?;
                let mut con = client.get_multiplexed_async_connection().await.ok()?;
                for scope in scopes {
                    let pattern = format!("{}*", escape_glob(&scope_prefix(&scope)));
                    let mut cursor = 0u64;
                    loop {
                        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut con)
                            .await
                            .ok()?;
                        if !keys.is_empty() {
                            let _: i64 = redis::cmd("DEL")
                                .arg(keys)
                                .query_async(&mut con)
                                .await
                                .ok()?;
                        }
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
                Some(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), clean).await;
        });
    });
    let _ = deleting.join();
}

/// Deletes the keys of every scope a [`Tracked`] store wrote to when dropped.
struct Cleanup(Tracked);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let scopes = self
            .0
            .scopes
            .lock()
            .map(|s| s.iter().map(|(d, t)| Scope::new(d, t)).collect())
            .unwrap_or_default();
        delete_scopes(scopes);
    }
}

/// A store with a database of its own as default, and its cleanup.
fn fresh_store(logger: Logger) -> (Tracked, Cleanup) {
    let connector = Connector::new(&[redis_address()], "store");
    let store = RedisStore::with_logger(connector, Scope::new(unique("redis_store"), "t"), logger);
    let tracked = Tracked {
        store,
        scopes: Arc::default(),
    };
    (tracked.clone(), Cleanup(tracked))
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_address())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

micro_conformance::store_suite!(async || {
    let (store, cleanup) = fresh_store(Logger::none());
    (Arc::new(store) as Arc<dyn Store>, cleanup)
});

async fn keys_read(store: &Tracked, pattern: &str, options: ReadOptions) -> Vec<String> {
    let records = store.read(pattern, options).await.unwrap();
    records.into_iter().map(|r| r.key).collect()
}

#[tokio::test]
async fn keys_with_colons_globs_and_unicode_are_kept_apart() {
    let (store, _cleanup) = fresh_store(Logger::none());
    let keys = [
        "a:b", "a:b:c", "a*", "a*b", "a?", "a[1]", "a\\x", "ab", "é:ü", "日本",
    ];
    for key in keys {
        store
            .write(Record::new(key, key), WriteOptions::default())
            .await
            .unwrap();
    }
    for key in keys {
        let got = store.read(key, ReadOptions::default()).await.unwrap();
        assert_eq!(got[0].value, key.as_bytes(), "{key}");
    }
    let prefix = |p: &'static str| keys_read(&store, p, ReadOptions::default().prefix(true));
    assert_eq!(prefix("a:b").await, ["a:b", "a:b:c"]);
    assert_eq!(prefix("a*").await, ["a*", "a*b"]);
    assert_eq!(prefix("a?").await, ["a?"]);
    assert_eq!(prefix("a[").await, ["a[1]"]);
    assert_eq!(prefix("a\\").await, ["a\\x"]);
    assert_eq!(prefix("é").await, ["é:ü"]);
    let listed = store
        .list(ListOptions::default().prefix("a*".to_string()))
        .await
        .unwrap();
    assert_eq!(listed, ["a*", "a*b"]);
    // Database and table names with ':' cannot reach into another scope.
    let db = store.store.defaults().database.clone();
    let tricky = Scope::new(format!("{db}:t"), "x");
    store
        .write(
            Record::new("k", "tricky"),
            WriteOptions::default().scope(tricky.clone()),
        )
        .await
        .unwrap();
    let plain = Scope::new(db.clone(), "t:x");
    let err = store
        .read("k", ReadOptions::default().scope(plain))
        .await
        .unwrap_err();
    assert_eq!(err.code, 404, "{err}");
    assert!(
        keys_read(&store, "x:k", ReadOptions::default().prefix(true))
            .await
            .is_empty()
    );
    let mut con = raw().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(redis_key(&tricky, "k"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 1);
    assert!(redis_key(&tricky, "k").starts_with(&format!("{db}%3At:x:")));
}

#[tokio::test]
async fn redis_expires_keys_itself() {
    let (store, _cleanup) = fresh_store(Logger::none());
    store
        .write(
            Record::new("short", "v"),
            WriteOptions::default().ttl(Duration::from_secs(100)),
        )
        .await
        .unwrap();
    let mut con = raw().await;
    let full = redis_key(store.store.defaults(), "short");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&full)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 100_000, "PTTL {pttl}");
    let got = store.read("short", ReadOptions::default()).await.unwrap();
    let left = got[0].expiry.unwrap();
    assert!(left <= Duration::from_secs(100) && left > Duration::ZERO);
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
    let mut con = raw().await;
    let bad = redis_key(store.store.defaults(), "bad");
    let _: () = redis::cmd("SET")
        .arg(&bad)
        .arg("{\"not\": \"a record\"}")
        .query_async(&mut con)
        .await
        .unwrap();
    let err = store.read("bad", ReadOptions::default()).await.unwrap_err();
    assert_eq!(err.code, 404, "{err}");
    assert_eq!(store.list(ListOptions::default()).await.unwrap(), ["good"]);
    let all = keys_read(&store, "", ReadOptions::default().prefix(true)).await;
    assert_eq!(all, ["good"]);
    let text = String::from_utf8_lossy(&lines.lock().unwrap()).to_string();
    println!("{text}");
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&bad))
        .count();
    assert!(warnings >= 3, "no warning naming {bad} on each access");
}

/// Builds the `redis` store plugin from config `overrides`, as a service would.
fn build(overrides: serde_json::Value) -> micro_core::Result<Arc<dyn Store>> {
    let plugins = micro_redis::plugins();
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
    let PluginFactory::Store(factory) = &plugins.find("store", "redis")?.factory else {
        panic!("not a store plugin");
    };
    factory(&ctx)
}

#[tokio::test]
async fn plugin_uses_addresses_and_default_scope() {
    let database = unique("redis_plugin");
    let config = serde_json::json!({"store": {
        "plugin": "redis",
        "addresses": [redis_address()],
        "database": database,
        "table": "carts",
    }});
    let store = build(config).unwrap();
    assert_eq!(store.name(), "redis");
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    let scope = Scope::new(&database, "carts");
    let mut con = raw().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{database}:carts:k"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 1);
    store.close().await.unwrap();
    delete_scopes(vec![scope]);
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    // Port 1 on 127.0.0.1: nothing listens there.
    let connector = Connector::new(&["127.0.0.1:1".to_string()], "store");
    let store = RedisStore::new(connector, Scope::new("d", "t"));
    let err = store.read("k", ReadOptions::default()).await.unwrap_err();
    println!("{err}");
    assert_eq!(err.code, 503, "{err}");
    assert!(err.detail.contains("127.0.0.1:1"), "{err}");
}
