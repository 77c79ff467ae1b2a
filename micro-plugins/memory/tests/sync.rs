//! The memory sync against the sync conformance suite, plus its own edge cases.

use micro_core::sync::{LeaderOptions, LockOptions, Sync as Coordination};
use micro_memory::MemorySync;
use std::sync::Arc;
use std::time::Duration;

micro_conformance::sync_suite!(async || Arc::new(MemorySync::new()) as Arc<dyn Coordination>);

#[tokio::test]
async fn empty_ids_and_zero_ttls_are_rejected() {
    let sync = MemorySync::new();
    assert_eq!(
        sync.lock("", LockOptions::default())
            .await
            .unwrap_err()
            .code,
        400
    );
    let zero = LockOptions::default().ttl(Duration::ZERO);
    assert_eq!(sync.lock("a", zero).await.unwrap_err().code, 400);
    let zero = LeaderOptions::default().ttl(Duration::ZERO);
    assert_eq!(
        sync.leader("a", zero).await.err().map(|e| e.code),
        Some(400)
    );
}

#[tokio::test]
async fn leader_is_lost_when_the_backend_is_dropped() {
    let sync = MemorySync::new();
    let leader = sync.leader("e", LeaderOptions::default()).await.unwrap();
    assert!(leader.is_leader());
    drop(sync);
    assert!(!leader.is_leader());
    leader.resign().await.unwrap();
}
