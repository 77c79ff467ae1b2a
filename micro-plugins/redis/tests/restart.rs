//! Fault test: a redis-server this test starts on a spare port is restarted while a group
//! consumer is active; the consumer resumes, and an acked event is neither lost from the
//! history nor delivered again.

use bytes::Bytes;
use micro_conformance::events::next_event;
use micro_conformance::support::DEADLINE;
use micro_core::events::{ConsumeOptions, Events, Offset, PublishOptions, ReadOptions};
use micro_redis::RedisEvents;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server of this test, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = spawn(port, &dir);
        Server { child, port, dir }
    }

    fn address(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and data directory.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, &self.dir);
    }

    async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let ok = async {
                let client = redis::Client::open(self.address()).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
            .await;
            if ok.is_some() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn(port: u16, dir: &tempfile::TempDir) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed for the fault test")
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes, trying again while the server comes back.
async fn publish(events: &RedisEvents, payload: &'static str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match events
            .publish("jobs", Bytes::from(payload), PublishOptions::default())
            .await
        {
            Ok(()) => return,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publish {payload}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_consumer_resumes_after_a_server_restart() {
    let mut server = Server::start();
    server.ready().await;
    let events = RedisEvents::new(&[server.address()]);
    let options = ConsumeOptions::default()
        .group("workers")
        .offset(Offset::Earliest)
        .auto_ack(false)
        .ack_wait(Duration::from_secs(60));
    let mut consumer = events.consume("jobs", options).await.unwrap();
    publish(&events, "before").await;
    let first = next_event(&mut consumer, "the event before the restart").await;
    assert_eq!(&first.payload[..], b"before");
    first.ack().await.unwrap();

    server.restart();
    server.ready().await;
    publish(&events, "after").await;
    let second = next_event(&mut consumer, "the event after the restart").await;
    assert_eq!(
        &second.payload[..],
        b"after",
        "the consumer resumes with the new event; the acked one is not delivered again"
    );
    second.ack().await.unwrap();

    let history = events.read("jobs", ReadOptions::default()).await.unwrap();
    let texts: Vec<&[u8]> = history.iter().map(|e| &e.payload[..]).collect();
    assert_eq!(texts, [&b"before"[..], &b"after"[..]], "nothing lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unacked_event_is_redelivered_after_a_server_restart() {
    let mut server = Server::start();
    server.ready().await;
    let events = RedisEvents::new(&[server.address()]);
    let options = ConsumeOptions::default()
        .group("workers")
        .offset(Offset::Earliest)
        .auto_ack(false)
        .ack_wait(Duration::from_secs(1));
    let mut consumer = events.consume("jobs", options).await.unwrap();
    publish(&events, "acked").await;
    let acked = next_event(&mut consumer, "the event that is acked").await;
    assert_eq!(&acked.payload[..], b"acked");
    acked.ack().await.unwrap();
    publish(&events, "unacked").await;
    let unacked = next_event(&mut consumer, "the event left unacked").await;
    assert_eq!(&unacked.payload[..], b"unacked");
    let first_id = unacked.id.clone();

    server.restart();
    server.ready().await;
    let again = next_event(&mut consumer, "the unacked event again").await;
    assert_eq!(
        &again.payload[..],
        b"unacked",
        "the unacked event comes back after ack_wait; the acked one does not"
    );
    assert_eq!(again.id, first_id, "the same event, not a copy");
    again.ack().await.unwrap();
    drop(unacked);

    publish(&events, "after").await;
    let after = next_event(&mut consumer, "the event after the restart").await;
    assert_eq!(&after.payload[..], b"after");
    after.ack().await.unwrap();
}
