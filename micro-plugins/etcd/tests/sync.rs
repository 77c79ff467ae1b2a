//! The etcd sync against the real shared etcd (127.0.0.1:2379): the sync conformance
//! suite, stale tokens, the signal of lost leadership, and two processes (this test binary
//! run again as a child with `MICRO_ETCD_SYNC_CHILD` set) contending for one lock.
//!
//! Lock and election ids are unique per test; every lock is unlocked or lapses by its ttl.

mod common;

use common::{connector, raw};
use micro_conformance::lock_child;
use micro_conformance::support::{DEADLINE, unique};
use micro_core::sync::{Leader, LeaderOptions, LockOptions, Sync};
use micro_etcd::EtcdSync;

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fresh() -> EtcdSync {
    EtcdSync::new(connector("sync"), "/micro/sync/")
}

fn options(ttl: Duration, wait: Duration) -> LockOptions {
    LockOptions::default().ttl(ttl).wait(wait)
}

/// The keys etcd holds for lock `id` (the holder's first, by creation).
async fn lock_keys(sync: &EtcdSync, id: &str) -> Vec<String> {
    let mut client = raw().await;
    let options = etcd_client::GetOptions::new().with_prefix().with_sort(
        etcd_client::SortTarget::Create,
        etcd_client::SortOrder::Ascend,
    );
    let got = client
        .get(format!("{}/", sync.lock_name(id)), Some(options))
        .await
        .unwrap();
    got.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

micro_conformance::sync_suite!(async || Arc::new(fresh()) as Arc<dyn Sync>);

#[tokio::test]
async fn the_token_is_the_key_etcd_made_and_unlock_deletes_it() {
    let id = unique("token");
    let sync = fresh();
    sync.lock(&id, options(Duration::from_secs(60), DEADLINE))
        .await
        .unwrap();
    let key = sync.held_key(&id).expect("held");
    assert!(
        key.starts_with(&format!("{}/", sync.lock_name(&id))),
        "{key}"
    );
    assert_eq!(lock_keys(&sync, &id).await, std::slice::from_ref(&key));
    sync.unlock(&id).await.unwrap();
    assert!(lock_keys(&sync, &id).await.is_empty());
}

#[tokio::test]
async fn a_stale_token_cannot_unlock_the_next_holder() {
    let id = unique("stale");
    let (first, second) = (fresh(), fresh());
    first
        .lock(&id, options(Duration::from_millis(300), Duration::ZERO))
        .await
        .unwrap();
    let stale_key = first.held_key(&id).unwrap();
    // The first holder's ttl runs out; the second takes the lock.
    second
        .lock(&id, options(Duration::from_secs(60), DEADLINE))
        .await
        .unwrap();
    let holder_key = second.held_key(&id).unwrap();
    assert_ne!(stale_key, holder_key);
    let stale = first.unlock(&id).await.unwrap_err();
    println!("{stale}");
    assert_eq!(stale.code, 404, "{stale}");
    assert_eq!(
        lock_keys(&second, &id).await,
        std::slice::from_ref(&holder_key),
        "the holder's key stays"
    );
    let busy = first
        .lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(busy.code, 408, "the second holder keeps the lock: {busy}");
    let busy = first
        .lock(
            &id,
            options(Duration::from_secs(60), Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(busy.code, 408, "also through the Lock API: {busy}");
    // A sync that never took it cannot free it either.
    let other = fresh().unlock(&id).await.unwrap_err();
    assert_eq!(other.code, 404, "{other}");
    // The failed tries left no waiting key behind.
    assert_eq!(lock_keys(&second, &id).await, [holder_key]);
    second.unlock(&id).await.unwrap();
    assert!(lock_keys(&second, &id).await.is_empty());
}

#[tokio::test]
async fn a_lock_waited_for_longer_than_its_ttl_is_still_held_for_its_ttl() {
    let id = unique("long-wait");
    let (first, second) = (fresh(), fresh());
    first
        .lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await
        .unwrap();
    let waiter = {
        let (second, id) = (second.clone(), id.clone());
        tokio::spawn(async move {
            second
                .lock(&id, options(Duration::from_secs(2), DEADLINE))
                .await
        })
    };
    // Longer than the waiter's ttl: its waiting key is kept alive meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!waiter.is_finished());
    first.unlock(&id).await.unwrap();
    waiter.await.unwrap().unwrap();
    let taken = Instant::now();
    // Held now, by the second, and for about its ttl from the taking.
    let busy = first
        .lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await;
    assert!(
        busy.is_err() || taken.elapsed() >= Duration::from_secs(2),
        "{busy:?}"
    );
    let _ = first.unlock(&id).await;
    let _ = second.unlock(&id).await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_revoked_is_told() {
    let id = unique("election");
    let sync = fresh();
    let leader = sync
        .elect(&id, LeaderOptions::default().ttl(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(leader.is_leader());
    assert!(leader.key_str().starts_with(&sync.election_name(&id)));
    // Someone revokes the lease behind the leader's back (as an operator or a partition).
    let mut client = raw().await;
    client.lease_revoke(leader.lease()).await.unwrap();
    tokio::time::timeout(DEADLINE, leader.lost())
        .await
        .expect("the loss of leadership is signalled");
    assert!(!leader.is_leader());
    assert!(!*leader.watch().borrow());
    // Another candidate leads at once, and the old leader resigning leaves it alone.
    let next = tokio::time::timeout(
        DEADLINE,
        sync.elect(&id, LeaderOptions::default().ttl(Duration::from_secs(10))),
    )
    .await
    .expect("the next candidate is elected")
    .unwrap();
    leader.resign().await.unwrap();
    assert!(next.is_leader());
    let current = client.leader(sync.election_name(&id)).await.unwrap();
    assert_eq!(
        current
            .kv()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned()),
        Some(next.key_str())
    );
    next.resign().await.unwrap();
}

#[tokio::test]
async fn a_leader_whose_key_is_deleted_is_told() {
    let id = unique("election-deleted");
    let sync = fresh();
    let leader = sync
        .elect(&id, LeaderOptions::default().ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(leader.is_leader());
    // Someone deletes the election key, leaving the lease alive.
    let mut client = raw().await;
    client.delete(leader.key_str(), None).await.unwrap();
    tokio::time::timeout(DEADLINE, leader.lost())
        .await
        .expect("the loss of leadership is signalled");
    assert!(!leader.is_leader());
    // The lease was kept by nobody's choice: resigning revokes it.
    leader.resign().await.unwrap();
    let leases = client.leases().await.unwrap();
    assert!(!leases.leases().iter().any(|l| l.id() == leader.lease()));
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
        &[("MICRO_TEST_ETCD", common::etcd_address())],
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
    // While the holder lives, this process cannot take it either.
    let sync = fresh();
    let busy = sync
        .lock(
            &id,
            options(Duration::from_secs(60), Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
    assert_eq!(busy.code, 408, "{busy}");
    for (mut child, _) in [first, second] {
        drop(child.stdin.take()); // the holder unlocks and exits
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "child: {status}");
    }
    // Freed by its holder: free to take at once.
    sync.lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await
        .unwrap();
    sync.unlock(&id).await.unwrap();
}

#[tokio::test]
async fn a_holder_killed_loses_the_lock_within_its_ttl() {
    let id = unique("killed");
    let id2 = id.clone();
    let ttl = Duration::from_secs(3);
    let (mut child, outcome) =
        tokio::task::spawn_blocking(move || start_child(&id2, ttl.as_millis() as u64))
            .await
            .unwrap();
    assert_eq!(outcome, "HELD");
    child.kill().unwrap(); // SIGKILL: no unlock
    let killed = Instant::now();
    child.wait().unwrap();
    let sync = fresh();
    let busy = sync
        .lock(&id, options(Duration::from_secs(60), Duration::ZERO))
        .await;
    assert!(
        busy.is_err(),
        "the killed holder's lock is held until its ttl runs out"
    );
    sync.lock(&id, options(Duration::from_secs(60), DEADLINE))
        .await
        .expect("the killed holder's lock lapses after its ttl");
    let freed = killed.elapsed();
    println!("free {freed:?} after the kill (ttl {ttl:?})");
    // etcd checks for expired leases every 500 ms.
    assert!(
        freed <= ttl + Duration::from_secs(2),
        "freed after {freed:?}"
    );
    sync.unlock(&id).await.unwrap();
}
