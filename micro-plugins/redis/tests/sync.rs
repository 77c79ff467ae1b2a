//! The redis sync against the real shared redis-server (127.0.0.1:6379): the sync
//! conformance suite, stale tokens, the signal of lost leadership, and two processes (this
//! test binary run again as a child with `MICRO_REDIS_SYNC_CHILD` set) contending for one
//! lock.
//!
//! Lock and election ids are unique per test; every lock is unlocked or lapses by its ttl.

mod common;

use common::redis_address;
use micro_conformance::lock_child;
use micro_conformance::support::{DEADLINE, unique};
use micro_core::sync::{Leader, LeaderOptions, LockOptions, Sync};
use micro_redis::sync::{leader_key, lock_key};
use micro_redis::{Connector, RedisSync};

use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

fn fresh() -> RedisSync {
    RedisSync::new(Connector::new(&[redis_address()], "sync"))
}

fn options(ttl: Duration, wait: Duration) -> LockOptions {
    LockOptions::default().ttl(ttl).wait(wait)
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_address())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

micro_conformance::sync_suite!(async || Arc::new(fresh()) as Arc<dyn Sync>);

#[tokio::test]
async fn a_stale_token_cannot_unlock_the_next_holder() {
    let id = unique("stale");
    let (first, second) = (fresh(), fresh());
    first
        .lock(&id, options(Duration::from_millis(300), Duration::ZERO))
        .await
        .unwrap();
    // The first holder's ttl runs out; the second takes the lock.
    second
        .lock(&id, options(Duration::from_secs(60), DEADLINE))
        .await
        .unwrap();
    let stale = first.unlock(&id).await.unwrap_err();
    println!("{stale}");
    assert_eq!(stale.code, 404, "{stale}");
    let busy = first
        .lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(busy.code, 408, "the second holder keeps the lock: {busy}");
    // A sync that never took it cannot free it either.
    let other = fresh().unlock(&id).await.unwrap_err();
    assert_eq!(other.code, 404, "{other}");
    second.unlock(&id).await.unwrap();
    let mut con = raw().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(lock_key(&id))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn a_leader_whose_key_is_taken_over_is_told() {
    let id = unique("election");
    let sync = fresh();
    let leader = sync
        .elect(
            &id,
            LeaderOptions::default().ttl(Duration::from_millis(600)),
        )
        .await
        .unwrap();
    assert!(leader.is_leader());
    // Someone else overwrites the lease (as after a network partition).
    let mut con = raw().await;
    let _: () = redis::cmd("SET")
        .arg(leader_key(&id))
        .arg("someone-else")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut con)
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, leader.lost())
        .await
        .expect("the loss of leadership is signalled");
    assert!(!leader.is_leader());
    assert!(!*leader.watch().borrow());
    // Resigning then leaves the other holder's key alone.
    leader.resign().await.unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg(leader_key(&id))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("someone-else"));
    let _: i64 = redis::cmd("DEL")
        .arg(leader_key(&id))
        .query_async(&mut con)
        .await
        .unwrap();
}

/// Child mode (see `micro_conformance::lock_child`): takes the lock it was started for.
#[tokio::test]
async fn sync_child() {
    if let Some((id, ttl)) = lock_child::requested() {
        lock_child::lock_child(Arc::new(fresh()), &id, ttl).await;
    }
}

/// Starts a child contending for lock `id`; its outcome line.
fn start_child(id: &str, ttl_ms: u64) -> (Child, String) {
    lock_child::start_lock_child(
        "sync_child",
        id,
        ttl_ms,
        &[("MICRO_TEST_REDIS", redis_address())],
    )
}

#[tokio::test]
async fn two_processes_one_lock_exactly_one_holds_it() {
    let id = unique("procs");
    let id2 = id.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let first = start_child(&id2, 60_000);
        let second = start_child(&id2, 60_000);
        (first, second)
    })
    .await
    .unwrap();
    let mut outcomes = [first.1.clone(), second.1.clone()];
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["BUSY", "HELD"],
        "exactly one child holds the lock"
    );
    for (mut child, _) in [first, second] {
        drop(child.stdin.take()); // the holder unlocks and exits
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "child: {status}");
    }
    // Freed by its holder: free to take at once.
    let sync = fresh();
    sync.lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await
        .unwrap();
    sync.unlock(&id).await.unwrap();
}

#[tokio::test]
async fn a_holder_killed_loses_the_lock_within_its_ttl() {
    let id = unique("killed");
    let id2 = id.clone();
    let (mut child, outcome) = tokio::task::spawn_blocking(move || start_child(&id2, 1000))
        .await
        .unwrap();
    assert_eq!(outcome, "HELD");
    child.kill().unwrap(); // SIGKILL: no unlock
    child.wait().unwrap();
    let sync = fresh();
    let busy = sync
        .lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await;
    println!("right after the kill: {busy:?}");
    if busy.is_err() {
        sync.lock(&id, options(Duration::from_secs(60), DEADLINE))
            .await
            .expect("the killed holder's lock lapses after its ttl");
    }
    sync.unlock(&id).await.unwrap();
}

#[tokio::test]
async fn plugin_uses_addresses() {
    use micro_core::PluginContext;
    use micro_core::config::{Outcome, Sources, load};
    use micro_core::logger::Logger;
    use micro_core::middleware::Middleware;
    use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
    let plugins = micro_redis::plugins();
    let sources = Sources {
        no_flags: true,
        overrides: serde_json::json!({"sync": {"plugin": "redis", "addresses": [redis_address()]}}),
        ..Default::default()
    };
    let Outcome::Loaded(loaded) = load(plugins.schema(), &sources).unwrap() else {
        panic!("config did not load");
    };
    let (components, service, middleware) = (
        Components::default(),
        ServiceInfo::default(),
        Middleware::default(),
    );
    let ctx = PluginContext {
        section: "sync",
        config: &*loaded,
        logger: Logger::none(),
        components: &components,
        service: &service,
        middleware: &middleware,
    };
    let PluginFactory::Sync(factory) = &plugins.find("sync", "redis").unwrap().factory else {
        panic!("not a sync plugin");
    };
    let sync = factory(&ctx).unwrap();
    assert_eq!(sync.name(), "redis");
    let id = unique("plugin");
    sync.lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await
        .unwrap();
    sync.unlock(&id).await.unwrap();
}
