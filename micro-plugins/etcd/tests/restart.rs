//! Fault tests: an etcd this test starts on spare ports is killed (SIGKILL) and started
//! again on the same data directory. A registry watch resumes and reports what changed; a
//! leader that cannot keep its lease alive is told it lost leadership within the lease.

mod common;

use common::server::Server;
use futures::StreamExt;
use micro_conformance::support::DEADLINE;
use micro_core::registry::{Action, Node, RegisterOptions, Registry, Service, WatchOptions};
use micro_core::sync::{Leader, LeaderOptions};
use micro_etcd::{EtcdRegistry, EtcdSync};
use std::time::Duration;

fn service(name: &str, node: &str) -> Service {
    Service {
        name: name.to_string(),
        version: "1.0.0".to_string(),
        nodes: vec![Node {
            id: node.to_string(),
            address: "127.0.0.1:1".to_string(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn next(watcher: &mut micro_core::registry::Watcher) -> (Action, String) {
    let event = tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("an event within the deadline")
        .expect("the watch goes on")
        .expect("no error");
    (event.action, event.service.nodes[0].id.clone())
}

#[tokio::test]
async fn a_watch_resumes_after_etcd_restarts_and_reports_what_changed() {
    let mut server = Server::start().await;
    let registry = EtcdRegistry::new(server.connector("registry"), "/micro/registry/");
    let mut watcher = registry.watch(WatchOptions::default()).await.unwrap();
    let (a, b) = (service("restart", "a"), service("restart", "b"));
    registry
        .register(&a, RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut watcher).await, (Action::Create, "a".to_string()));

    server.kill();
    let down = registry
        .register(&b, RegisterOptions::default())
        .await
        .unwrap_err();
    println!("etcd down: {down}");
    assert_eq!(down.code, 503, "{down}");
    server.start_again().await;

    // Changes made once etcd is back reach the watcher that was following it before.
    registry.deregister(&a).await.unwrap();
    registry
        .register(&b, RegisterOptions::default())
        .await
        .unwrap();
    let mut seen = vec![next(&mut watcher).await];
    while seen.len() < 2 {
        seen.push(next(&mut watcher).await);
    }
    seen.sort_by_key(|(_, id)| id.clone());
    assert_eq!(
        seen,
        [
            (Action::Delete, "a".to_string()),
            (Action::Create, "b".to_string())
        ]
    );
}

#[tokio::test]
async fn a_leader_that_cannot_reach_etcd_loses_leadership_within_its_lease() {
    let mut server = Server::start().await;
    let sync = EtcdSync::new(server.connector("sync"), "/micro/sync/");
    let ttl = Duration::from_secs(3);
    let leader = sync
        .elect("restart", LeaderOptions::default().ttl(ttl))
        .await
        .unwrap();
    assert!(leader.is_leader());
    let killed = tokio::time::Instant::now();
    server.kill();
    tokio::time::timeout(DEADLINE, leader.lost())
        .await
        .expect("the loss of leadership is signalled");
    let after = killed.elapsed();
    println!("leadership lost {after:?} after etcd went away (lease {ttl:?})");
    assert!(!leader.is_leader());
    assert!(
        // Within the lease; slack for timers firing late on a loaded machine.
        after <= ttl + Duration::from_secs(2),
        "lost after {after:?}"
    );
}
