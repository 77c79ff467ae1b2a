//! Two OS processes on one directory see each other, and the node of a killed process
//! disappears once its TTL passes.
//!
//! The test binary re-runs itself: `child_process` does nothing in a normal run, and plays
//! one service instance when `MICRO_LOCAL_CHILD_DIR` is set.

use futures::StreamExt;
use micro_core::registry::{Action, Node, RegisterOptions, Registry, Service, WatchOptions};
use micro_local::LocalRegistry;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SERVICE: &str = "twins";
const TTL: Duration = Duration::from_secs(2);
const REFRESH: Duration = Duration::from_millis(500);
const DEADLINE: Duration = Duration::from_secs(20);
const DIR_VAR: &str = "MICRO_LOCAL_CHILD_DIR";
const ID_VAR: &str = "MICRO_LOCAL_CHILD_ID";
const PEER_VAR: &str = "MICRO_LOCAL_CHILD_PEER";

fn node_service(id: &str) -> Service {
    Service {
        name: SERVICE.into(),
        version: "1.0.0".into(),
        nodes: vec![Node {
            id: id.into(),
            address: format!("127.0.0.1:{}", std::process::id()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn node_ids(reg: &LocalRegistry) -> Vec<String> {
    match reg.get_service(SERVICE).await {
        Ok(services) => services
            .iter()
            .flat_map(|s| s.nodes.iter().map(|n| n.id.clone()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The child: registers its node with a TTL and keeps refreshing it; prints `SEEN_BOTH` once
/// it sees its peer, then `PEER_GONE` once the peer's node has disappeared again.
#[tokio::test]
async fn child_process() {
    let (Ok(dir), Ok(id), Ok(peer)) = (
        std::env::var(DIR_VAR),
        std::env::var(ID_VAR),
        std::env::var(PEER_VAR),
    ) else {
        return; // a normal test run: nothing to do
    };
    let reg = LocalRegistry::new(&dir).unwrap();
    let me = node_service(&id);
    let mut seen_both = false;
    let stop = Instant::now() + Duration::from_secs(120);
    while Instant::now() < stop {
        reg.register(&me, RegisterOptions::default().ttl(TTL))
            .await
            .unwrap();
        let ids = node_ids(&reg).await;
        let peer_there = ids.contains(&peer);
        if !seen_both && peer_there && ids.contains(&id) {
            seen_both = true;
            println!("SEEN_BOTH");
        } else if seen_both && !peer_there {
            println!("PEER_GONE");
            seen_both = false; // report once
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// A child process, killed when dropped (also when the test fails).
struct ChildGuard {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildGuard {
    fn spawn(dir: &std::path::Path, id: &str, peer: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir)
            .env(ID_VAR, id)
            .env(PEER_VAR, peer)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildGuard { child, lines }
    }

    /// Waits (bounded) for the child to print `marker`.
    fn wait_for(&self, marker: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness may print "test child_process ... " before it on the same line.
                Ok(line) if line.trim_end().ends_with(marker) => return,
                Ok(_) => continue,
                Err(err) => panic!("child never printed {marker}: {err}"),
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no deregistration
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_see_each_other_and_a_killed_one_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ChildGuard::spawn(dir.path(), "node-a", "node-b");
    let b = ChildGuard::spawn(dir.path(), "node-b", "node-a");
    // Both children see both nodes (lines are buffered, so waiting in turn is fine).
    tokio::task::block_in_place(|| {
        a.wait_for("SEEN_BOTH");
        b.wait_for("SEEN_BOTH");
    });

    let parent = LocalRegistry::new(dir.path()).unwrap();
    let mut ids = node_ids(&parent).await;
    ids.sort();
    assert_eq!(ids, vec!["node-a", "node-b"]);
    let mut watcher = parent
        .watch(WatchOptions::default().service(SERVICE))
        .await
        .unwrap();

    a.kill();

    // The parent's watcher reports node-a gone once its TTL passes (refreshes of node-b are
    // no events).
    let event = tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("a delete event in time")
        .unwrap()
        .unwrap();
    assert_eq!(event.action, Action::Delete);
    let gone: Vec<&str> = event.service.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(gone, vec!["node-a"]);

    // The survivor sees it too, and only the survivor is left.
    tokio::task::block_in_place(|| b.wait_for("PEER_GONE"));
    assert_eq!(node_ids(&parent).await, vec!["node-b"]);
}
