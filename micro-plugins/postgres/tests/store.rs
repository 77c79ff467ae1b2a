//! The postgres store against the real shared server (127.0.0.1:5432, database `test`): the
//! store conformance suite, names that need quoting, missing schemas and tables, the sweep of
//! expired rows, the plugin built from config and an unreachable server.
//!
//! Every test works in schemas of its own (unique names) and drops them when it ends.

mod common;

use common::{Cleanup, postgres_address, raw};
use micro_conformance::support::{DEADLINE, POLL, unique};
use micro_core::PluginContext;
use micro_core::config::{Outcome, Sources, load};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions,
};
use micro_postgres::{Connector, PostgresStore, PostgresStoreOptions};
use std::sync::Arc;
use std::time::Duration;

/// A store whose default database is a schema of its own, and its cleanup.
fn fresh_store(options: PostgresStoreOptions) -> (PostgresStore, Cleanup) {
    let connector = Connector::new(&[postgres_address()], "store", options.pool_size).unwrap();
    let store = PostgresStore::new(connector, Scope::new(unique("micro_pg"), "t"), options);
    let cleanup = Cleanup {
        store: store.clone(),
        extra: Vec::new(),
    };
    (store, cleanup)
}

micro_conformance::store_suite!(async || {
    let (store, cleanup) = fresh_store(PostgresStoreOptions::default());
    (Arc::new(store) as Arc<dyn Store>, cleanup)
});

#[tokio::test]
async fn names_that_need_quoting_are_kept_exactly() {
    let (store, _cleanup) = fresh_store(PostgresStoreOptions::default());
    let database = format!("{} \"Q\"; DROP SCHEMA public; --", unique("Db"));
    let table = "Ta.ble-ü \"x\"";
    let scope = Scope::new(&database, table);
    store
        .write(
            Record::new("k", "v"),
            WriteOptions::default().scope(scope.clone()),
        )
        .await
        .unwrap();
    let got = store
        .read("k", ReadOptions::default().scope(scope.clone()))
        .await
        .unwrap();
    assert_eq!(got[0].value, "v");
    let listed = store
        .list(ListOptions::default().scope(scope.clone()))
        .await
        .unwrap();
    assert_eq!(listed, ["k"]);
    let client = raw().await;
    let found = client
        .query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
            &[&database, &table],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "schema and table named exactly as given");
    let public = client
        .query(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = 'public'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(public.len(), 1, "nothing in a name ran as SQL");
}

#[tokio::test]
async fn names_postgres_cannot_take_are_a_400() {
    let (store, _cleanup) = fresh_store(PostgresStoreOptions::default());
    let bad = [
        Scope::new("pg_mine", "t"),
        Scope::new("d", "x".repeat(64)),
        Scope::new("d\0", "t"),
    ];
    for scope in bad {
        let err = store
            .write(
                Record::new("k", "v"),
                WriteOptions::default().scope(scope.clone()),
            )
            .await
            .unwrap_err();
        println!("{scope:?}: {err}");
        assert_eq!(err.code, 400, "{err}");
        let err = store
            .read("k", ReadOptions::default().scope(scope))
            .await
            .unwrap_err();
        assert_eq!(err.code, 400, "{err}");
    }
    let err = store
        .write(Record::new("a\0b", "v"), WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    assert!(err.detail.contains("NUL"), "{err}");
}

#[tokio::test]
async fn a_missing_schema_or_table_reads_as_not_found() {
    let (store, _cleanup) = fresh_store(PostgresStoreOptions::default());
    let nowhere = Scope::new(unique("micro_pg_none"), "t");
    let err = store
        .read("k", ReadOptions::default().scope(nowhere.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code, 404, "{err}");
    let read = ReadOptions::default().scope(nowhere.clone()).prefix(true);
    assert!(store.read("k", read).await.unwrap().is_empty());
    let list = ListOptions::default().scope(nowhere.clone());
    assert!(store.list(list).await.unwrap().is_empty());
    let delete = DeleteOptions::default().scope(nowhere);
    store.delete("k", delete).await.unwrap();
    // A table missing in a schema that exists.
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    let other = Scope::new(store.defaults().database.clone(), "absent");
    let err = store
        .read("k", ReadOptions::default().scope(other))
        .await
        .unwrap_err();
    assert_eq!(err.code, 404, "{err}");
}

#[tokio::test]
async fn a_table_dropped_behind_the_store_is_made_again() {
    let (store, _cleanup) = fresh_store(PostgresStoreOptions::default());
    store
        .write(Record::new("a", "1"), WriteOptions::default())
        .await
        .unwrap();
    let schema = micro_postgres::names::quote(&store.defaults().database);
    raw()
        .await
        .batch_execute(&format!("DROP TABLE {schema}.\"t\""))
        .await
        .unwrap();
    store
        .write(Record::new("b", "2"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(store.list(ListOptions::default()).await.unwrap(), ["b"]);
}

#[tokio::test]
async fn expired_rows_are_swept_on_write() {
    let options = PostgresStoreOptions {
        sweep_interval: Duration::ZERO,
        ..Default::default()
    };
    let (store, _cleanup) = fresh_store(options);
    let short = WriteOptions::default().ttl(Duration::from_millis(200));
    store.write(Record::new("old", "v"), short).await.unwrap();
    let table = format!(
        "{}.\"t\"",
        micro_postgres::names::quote(&store.defaults().database)
    );
    let client = raw().await;
    let count = async || -> i64 {
        client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE key = 'old'"),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        store
            .write(Record::new("new", "v"), WriteOptions::default())
            .await
            .unwrap();
        if count().await == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expired row never swept"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn prefix_reads_use_the_key_index() {
    let (store, _cleanup) = fresh_store(PostgresStoreOptions::default());
    store
        .write(Record::new("a", "v"), WriteOptions::default())
        .await
        .unwrap();
    let table = format!(
        "{}.\"t\"",
        micro_postgres::names::quote(&store.defaults().database)
    );
    // The statement shape the store sends for a prefix list, planned generically (as a
    // cached prepared statement may be) with sequential scans priced out.
    let client = raw().await;
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
             PREPARE p(text, text) AS SELECT key FROM {table} WHERE \
             (expiry IS NULL OR expiry > now()) AND key >= $1 AND key < $2 ORDER BY key"
        ))
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query("EXPLAIN EXECUTE p('a', 'b')", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    println!("{plan}");
    assert!(plan.contains("Index"), "{plan}");
    assert!(plan.contains("Index Cond"), "{plan}");
}

/// Builds the `postgres` store plugin from config `overrides`, as a service would.
fn build(overrides: serde_json::Value) -> micro_core::Result<Arc<dyn Store>> {
    let plugins = micro_postgres::plugins();
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
    let PluginFactory::Store(factory) = &plugins.find("store", "postgres")?.factory else {
        panic!("not a store plugin");
    };
    factory(&ctx)
}

#[tokio::test]
async fn plugin_uses_addresses_default_scope_and_options() {
    let database = unique("micro_pg_plugin");
    let config = serde_json::json!({"store": {
        "plugin": "postgres",
        "addresses": [postgres_address()],
        "database": database,
        "table": "carts",
        "pool_size": 2,
        "sweep_interval": "5s",
    }});
    let store = build(config).unwrap();
    assert_eq!(store.name(), "postgres");
    store
        .write(Record::new("k", "v"), WriteOptions::default())
        .await
        .unwrap();
    let client = raw().await;
    let schema = micro_postgres::names::quote(&database);
    let row = client
        .query_one(
            &format!(
                "SELECT value, metadata::text, expiry FROM {schema}.\"carts\" WHERE key = 'k'"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), b"v");
    assert_eq!(row.get::<_, String>(1), "{}");
    store.close().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[test]
fn plugin_rejects_a_reserved_default_database() {
    let config = serde_json::json!({"store": {"plugin": "postgres", "database": "pg_catalog"}});
    let err = build(config).err().expect("pg_* is reserved");
    println!("reserved database: {err}");
    assert_eq!(err.code, 400);
    assert!(err.detail.contains("store.database"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_a_503_naming_the_address() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = serde_json::json!({"store": {
        "plugin": "postgres",
        "addresses": [format!("postgres://postgres@127.0.0.1:{port}/test")],
    }});
    let store = build(config).unwrap();
    let err = store.read("k", ReadOptions::default()).await.unwrap_err();
    println!("unreachable: {err}");
    assert_eq!(err.code, 503);
    assert!(err.detail.contains(&format!("127.0.0.1:{port}")), "{err}");
}
