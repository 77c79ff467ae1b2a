//! Sync conformance suite: every sync plugin must pass it.
//!
//! Each `check_*` function is one case and takes a fresh `Arc<dyn Sync>`.
//! [`sync_suite!`](crate::sync_suite) turns every case into a `#[tokio::test]` of the calling
//! crate, each against a fresh sync from the factory:
//!
//! ```ignore
//! use micro_core::sync::Sync;
//! use std::sync::Arc;
//!
//! micro_conformance::sync_suite!(async || Arc::new(MySync::new()) as Arc<dyn Sync>);
//! ```
//!
//! Lock and election ids are unique per check, so a backend shared between runs is fine.
//! Nothing asserts on speed: what should happen is awaited until a generous deadline;
//! what should not happen is checked over a short period (a slow backend can only make
//! those checks pass, never fail).

use crate::support::{DEADLINE, unique};

use micro_core::sync::{Leader, LeaderOptions, LockOptions, Sync};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A lock ttl long enough never to lapse during a check.
const LONG_TTL: Duration = Duration::from_secs(60);
/// The short ttl of the expiry checks.
const SHORT_TTL: Duration = Duration::from_millis(500);
/// The lease of the leader checks.
const LEASE: Duration = Duration::from_secs(1);

fn lock_options(ttl: Option<Duration>, wait: Option<Duration>) -> LockOptions {
    let mut options = LockOptions::default();
    options.ttl = ttl;
    options.wait = wait;
    options
}

async fn within<T>(check: &str, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{check}: {what}: nothing after {DEADLINE:?}"),
    }
}

async fn lead(sync: &Arc<dyn Sync>, check: &str, id: &str) -> Box<dyn Leader> {
    let options = LeaderOptions::default().ttl(LEASE);
    match within(check, "becoming leader", sync.leader(id, options)).await {
        Ok(leader) => leader,
        Err(err) => panic!("{check}: leader({id:?}) failed: {err}"),
    }
}

/// A held lock cannot be taken (408 after the wait) until it is unlocked.
pub async fn check_lock_exclusion(sync: Arc<dyn Sync>) {
    let check = "check_lock_exclusion";
    let id = unique("lock");
    sync.lock(&id, lock_options(Some(LONG_TTL), None))
        .await
        .unwrap_or_else(|e| panic!("{check}: first lock: {e}"));
    let no_wait = sync
        .lock(&id, lock_options(Some(LONG_TTL), Some(Duration::ZERO)))
        .await;
    assert!(
        matches!(no_wait, Err(ref e) if e.code == 408),
        "{check}: held lock, no wait: {no_wait:?}"
    );
    let short_wait = sync
        .lock(
            &id,
            lock_options(Some(LONG_TTL), Some(Duration::from_millis(200))),
        )
        .await;
    assert!(
        matches!(short_wait, Err(ref e) if e.code == 408),
        "{check}: held lock, short wait: {short_wait:?}"
    );
    let other = unique("other");
    sync.lock(&other, lock_options(Some(LONG_TTL), Some(Duration::ZERO)))
        .await
        .unwrap_or_else(|e| panic!("{check}: another lock is independent: {e}"));
    sync.unlock(&id)
        .await
        .unwrap_or_else(|e| panic!("{check}: unlock: {e}"));
    sync.lock(&id, lock_options(Some(LONG_TTL), Some(Duration::ZERO)))
        .await
        .unwrap_or_else(|e| panic!("{check}: lock after unlock: {e}"));
    sync.unlock(&id)
        .await
        .unwrap_or_else(|e| panic!("{check}: final unlock: {e}"));
    sync.unlock(&other)
        .await
        .unwrap_or_else(|e| panic!("{check}: unlock other: {e}"));
}

/// A locker waiting without a limit gets the lock when it is unlocked.
pub async fn check_lock_waits_for_unlock(sync: Arc<dyn Sync>) {
    let check = "check_lock_waits_for_unlock";
    let id = unique("wait");
    sync.lock(&id, lock_options(Some(LONG_TTL), None))
        .await
        .unwrap_or_else(|e| panic!("{check}: first lock: {e}"));
    let waiter = {
        let (sync, id) = (sync.clone(), id.clone());
        tokio::spawn(async move { sync.lock(&id, lock_options(Some(LONG_TTL), None)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "{check}: the waiter must not get a held lock"
    );
    sync.unlock(&id)
        .await
        .unwrap_or_else(|e| panic!("{check}: unlock: {e}"));
    let got = within(check, "the waiter taking the lock", waiter).await;
    assert!(
        matches!(got, Ok(Ok(()))),
        "{check}: waiter gets the lock: {got:?}"
    );
    sync.unlock(&id)
        .await
        .unwrap_or_else(|e| panic!("{check}: waiter's unlock: {e}"));
}

/// A lock with a ttl frees itself: another locker gets it without an unlock.
pub async fn check_lock_ttl(sync: Arc<dyn Sync>) {
    let check = "check_lock_ttl";
    let id = unique("ttl");
    sync.lock(&id, lock_options(Some(SHORT_TTL), None))
        .await
        .unwrap_or_else(|e| panic!("{check}: first lock: {e}"));
    let second = sync
        .lock(&id, lock_options(Some(LONG_TTL), Some(DEADLINE)))
        .await;
    assert!(
        second.is_ok(),
        "{check}: the lock must free itself after its ttl: {second:?}"
    );
    sync.unlock(&id)
        .await
        .unwrap_or_else(|e| panic!("{check}: unlock: {e}"));
}

/// Unlocking a lock that is not held is a 404, also when unlocking twice.
pub async fn check_unlock_free(sync: Arc<dyn Sync>) {
    let check = "check_unlock_free";
    let id = unique("free");
    let never = sync.unlock(&id).await;
    assert!(
        matches!(never, Err(ref e) if e.code == 404),
        "{check}: never locked: {never:?}"
    );
    sync.lock(&id, lock_options(Some(LONG_TTL), None))
        .await
        .unwrap_or_else(|e| panic!("{check}: lock: {e}"));
    sync.unlock(&id)
        .await
        .unwrap_or_else(|e| panic!("{check}: unlock: {e}"));
    let twice = sync.unlock(&id).await;
    assert!(
        matches!(twice, Err(ref e) if e.code == 404),
        "{check}: unlocked twice: {twice:?}"
    );
}

/// Ten tasks taking the same lock never overlap.
pub async fn check_concurrent_lockers(sync: Arc<dyn Sync>) {
    let check = "check_concurrent_lockers";
    let id = unique("counter");
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (sync, id) = (sync.clone(), id.clone());
        let (inside, overlaps, counter) = (inside.clone(), overlaps.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            sync.lock(
                &id,
                lock_options(Some(LONG_TTL), Some(Duration::from_secs(60))),
            )
            .await?;
            if inside.swap(true, Ordering::SeqCst) {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            let seen = counter.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            counter.store(seen + 1, Ordering::SeqCst);
            inside.store(false, Ordering::SeqCst);
            sync.unlock(&id).await
        }));
    }
    for task in tasks {
        let result = within(check, "a locker finishing", task).await;
        assert!(
            matches!(result, Ok(Ok(()))),
            "{check}: locker failed: {result:?}"
        );
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "{check}: two holders at once"
    );
    assert_eq!(
        counter.load(Ordering::SeqCst),
        10,
        "{check}: lost increments"
    );
}

/// The first candidate leads and keeps leading past its ttl while alive; the second waits
/// and leads once the first resigns.
pub async fn check_leader_resign(sync: Arc<dyn Sync>) {
    let check = "check_leader_resign";
    let id = unique("election");
    let first = lead(&sync, check, &id).await;
    assert!(first.is_leader(), "{check}: first candidate leads");
    assert_eq!(first.id(), id, "{check}: leader id");
    let second = {
        let (sync, id) = (sync.clone(), id.clone());
        tokio::spawn(async move { sync.leader(&id, LeaderOptions::default().ttl(LEASE)).await })
    };
    // Longer than the lease: a live leader renews it.
    tokio::time::sleep(LEASE + LEASE / 2).await;
    assert!(
        !second.is_finished(),
        "{check}: second candidate must wait while the first lives"
    );
    assert!(first.is_leader(), "{check}: a live leader keeps its lease");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), first.lost())
            .await
            .is_err(),
        "{check}: lost() must not resolve while leading"
    );
    first
        .resign()
        .await
        .unwrap_or_else(|e| panic!("{check}: resign: {e}"));
    assert!(!first.is_leader(), "{check}: not leader after resigning");
    assert!(
        tokio::time::timeout(DEADLINE, first.lost()).await.is_ok(),
        "{check}: lost() resolves after resigning"
    );
    let second = match within(check, "the second candidate leading", second).await {
        Ok(Ok(leader)) => leader,
        other => panic!(
            "{check}: second candidate failed: {:?}",
            other.map(|r| r.map(|l| l.id().to_string()))
        ),
    };
    assert!(second.is_leader(), "{check}: second candidate leads");
    second
        .resign()
        .await
        .unwrap_or_else(|e| panic!("{check}: second resign: {e}"));
}

/// A leader that dies (dropped without resigning) is replaced once its lease lapses.
pub async fn check_leader_dies(sync: Arc<dyn Sync>) {
    let check = "check_leader_dies";
    let id = unique("election");
    let first = lead(&sync, check, &id).await;
    assert!(first.is_leader(), "{check}: first candidate leads");
    let second = {
        let (sync, id) = (sync.clone(), id.clone());
        tokio::spawn(async move { sync.leader(&id, LeaderOptions::default().ttl(LEASE)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "{check}: second candidate must wait");
    drop(first);
    let second = match within(
        check,
        "the second candidate leading after the lease lapsed",
        second,
    )
    .await
    {
        Ok(Ok(leader)) => leader,
        other => panic!(
            "{check}: second candidate failed: {:?}",
            other.map(|r| r.map(|l| l.id().to_string()))
        ),
    };
    assert!(second.is_leader(), "{check}: second candidate leads");
    second
        .resign()
        .await
        .unwrap_or_else(|e| panic!("{check}: resign: {e}"));
}

/// An empty lock or election id and a zero ttl are 400 errors, before any backend work.
pub async fn check_bad_input(sync: Arc<dyn Sync>) {
    let check = "check_bad_input";
    let code = |result: micro_core::Result<()>, what: &str| match result {
        Err(e) => assert_eq!(e.code, 400, "{check}: {what}: {e}"),
        Ok(()) => panic!("{check}: {what} was accepted"),
    };
    code(
        sync.lock("", LockOptions::default()).await,
        "an empty lock id",
    );
    let zero = LockOptions::default().ttl(Duration::ZERO);
    code(sync.lock(&unique("zero"), zero).await, "a zero lock ttl");
    let leader = |id: String, options: LeaderOptions| {
        let sync = sync.clone();
        async move { sync.leader(&id, options).await.map(|_| ()) }
    };
    code(
        leader(String::new(), LeaderOptions::default()).await,
        "an empty election id",
    );
    let zero = LeaderOptions::default().ttl(Duration::ZERO);
    code(leader(unique("zero"), zero).await, "a zero leader ttl");
}

/// One `#[tokio::test]` per case of the sync suite, each against a fresh sync from the
/// factory (see the [crate] documentation for the three forms).
///
/// ```ignore
/// micro_conformance::sync_suite!(async || Arc::new(MySync::new()) as Arc<dyn Sync>);
/// micro_conformance::sync_suite!(
///     mod on_current_thread(flavor = "current_thread"),
///     async || Arc::new(MySync::new()) as Arc<dyn Sync>,
/// );
/// ```
#[macro_export]
macro_rules! sync_suite {
    ($($input:tt)*) => {
        $crate::__suite!(component sync [
            check_lock_exclusion,
            check_lock_waits_for_unlock,
            check_lock_ttl,
            check_unlock_free,
            check_concurrent_lockers,
            check_leader_resign,
            check_leader_dies,
            check_bad_input,
        ] $($input)*);
    };
}
