//! Fault tests: an etcd this test starts on spare ports is killed (SIGKILL) and started
//! again on the same data directory. A registry watch resumes and reports what changed; a
//! leader that cannot keep its lease alive is told it lost leadership within the lease.

use futures::StreamExt;
use micro_conformance::support::DEADLINE;
use micro_core::registry::{Action, Node, RegisterOptions, Registry, Service, WatchOptions};
use micro_core::sync::{Leader, LeaderOptions};
use micro_etcd::{Connector, EtcdRegistry, EtcdSync, Settings};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An etcd of this test, killed when dropped.
struct Server {
    child: Child,
    client: u16,
    peer: u16,
    dir: tempfile::TempDir,
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (spare_port(), spare_port());
        let child = spawn(client, peer, &dir);
        let server = Server {
            child,
            client,
            peer,
            dir,
        };
        server.ready().await;
        server
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client)
    }

    fn connector(&self, purpose: &str) -> Connector {
        let settings = Settings {
            addresses: vec![self.address()],
            timeout: Duration::from_secs(2),
            ..Default::default()
        };
        Connector::new(settings, purpose).unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports and data directory.
    async fn start_again(&mut self) {
        self.child = spawn(self.client, self.peer, &self.dir);
        self.ready().await;
    }

    async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let ok = async {
                let mut client = etcd_client::Client::connect([self.address()], None)
                    .await
                    .ok()?;
                client.get("ready", None).await.ok()
            };
            if tokio::time::timeout(Duration::from_secs(1), ok)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd on port {} did not start",
                self.client
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(client: u16, peer: u16, dir: &tempfile::TempDir) -> Child {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    Command::new("etcd")
        .args(["--name", "default", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .args(["--logger", "zap", "--log-outputs"])
        .arg(dir.path().join("etcd.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd is installed (scripts/test.sh installs Debian's etcd-server)")
}

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
        after <= ttl + Duration::from_millis(500),
        "lost after {after:?}"
    );
}
