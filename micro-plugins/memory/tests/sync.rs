//! The memory sync against the sync conformance suite, plus its own edge cases.

use micro_core::sync::{LeaderOptions, Sync as Coordination};
use micro_memory::MemorySync;
use std::sync::Arc;

micro_conformance::sync_suite!(async || Arc::new(MemorySync::new()) as Arc<dyn Coordination>);

#[tokio::test]
async fn leader_is_lost_when_the_backend_is_dropped() {
    let sync = MemorySync::new();
    let leader = sync.leader("e", LeaderOptions::default()).await.unwrap();
    assert!(leader.is_leader());
    drop(sync);
    assert!(!leader.is_leader());
    leader.resign().await.unwrap();
}
