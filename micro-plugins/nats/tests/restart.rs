//! Fault tests: a nats-server of the test's own is killed and started again while the
//! components use it; they resume without being rebuilt.

mod common;

use bytes::Bytes;
use common::server::TestServer;
use futures::StreamExt;
use micro_conformance::support::unique;
use micro_core::broker::{self, Broker, Message, SubscribeOptions};
use micro_core::events::{ConsumeOptions, Consumer, Event, Events, PublishOptions};
use micro_core::logger::Logger;
use micro_core::registry::{Action, Node, RegisterOptions, Registry, Service, WatchOptions};
use micro_nats::broker::NatsBrokerOptions;
use micro_nats::{Connector, NatsBroker, NatsEvents, NatsRegistry};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_subscription_resumes_after_the_server_restarts() {
    let mut server = TestServer::start();
    let options = NatsBrokerOptions {
        publish_timeout: Duration::from_secs(15),
        confirm: true,
    };
    let broker = NatsBroker::new(&[server.address()], options, Logger::none());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = broker::handler(move |d: broker::Delivery| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(String::from_utf8_lossy(&d.message.body).to_string());
            Ok(())
        }
    });
    let _subscription = broker
        .subscribe("restart.topic", handler, SubscribeOptions::default())
        .await
        .unwrap();
    broker
        .publish("restart.topic", Message::new("before"))
        .await
        .unwrap();
    let got = tokio::time::timeout(DEADLINE, rx.recv()).await.unwrap();
    assert_eq!(got.as_deref(), Some("before"));

    server.kill();
    // While the server is down a publish waits for it, then fails or goes out after the
    // reconnect: never an Ok for a message that was thrown away.
    let during = {
        let broker = broker.clone();
        tokio::spawn(async move {
            broker
                .publish("restart.topic", Message::new("during"))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let during = tokio::time::timeout(DEADLINE, during)
        .await
        .unwrap()
        .unwrap();
    assert!(
        during.is_ok(),
        "the publish waited for the reconnect: {during:?}"
    );

    // The same subscription, restored by the client, gets what is published now. Publish
    // until one arrives: the subscriber's reconnect may come after the publisher's.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription never resumed"
        );
        broker
            .publish("restart.topic", Message::new("after"))
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(text)) if text == "after" => break,
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_while_the_server_stays_down_is_an_error() {
    let mut server = TestServer::start();
    let options = NatsBrokerOptions {
        publish_timeout: Duration::from_millis(300),
        confirm: false,
    };
    let broker = NatsBroker::new(&[server.address()], options, Logger::none());
    broker
        .publish("down.topic", Message::new("up"))
        .await
        .unwrap();
    server.kill();
    // The client notices the lost connection on its own schedule; the publish that sees it
    // fails with a retryable 503 once the timeout passes.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let err = loop {
        match broker.publish("down.topic", Message::new("lost?")).await {
            Err(err) => break err,
            Ok(()) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "publishes kept succeeding"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(err.code, 503, "{err}");
    assert!(err.retryable, "{err}");
    assert!(err.detail.contains("not published"), "{err}");
}

fn service(name: &str, node: &str) -> Service {
    Service {
        name: name.to_string(),
        version: "1.0.0".to_string(),
        nodes: vec![Node {
            id: node.to_string(),
            address: "127.0.0.1:1".to_string(),
            ..Node::default()
        }],
        ..Service::default()
    }
}

async fn next_event(consumer: &mut Consumer, what: &str) -> Event {
    match tokio::time::timeout(DEADLINE, consumer.next()).await {
        Ok(Some(event)) => event,
        other => panic!("no event while waiting for {what}: {other:?}"),
    }
}

/// Retries `attempt` (an operation the restarted server must accept) until it succeeds.
async fn until_ok<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = micro_core::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(err) if tokio::time::Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{what} kept failing after the restart: {err}"),
        }
    }
}

/// A registry watch and event consumers (a durable group with manual acks, a private one)
/// resume after the server is killed and started again, without being made again; every
/// event whose publish returned `Ok` is delivered, and a publish during the outage fails.
#[tokio::test(flavor = "multi_thread")]
async fn registry_watch_and_event_consumers_resume_after_a_restart() {
    let mut server = TestServer::start();
    let address = server.address();
    let registry = NatsRegistry::new(Connector::new(std::slice::from_ref(&address), "registry"));
    let events = NatsEvents::new(std::slice::from_ref(&address));
    let topic = unique("restart");
    let name = unique("restart-svc");

    let mut watch = registry
        .watch(WatchOptions::default().service(name.clone()))
        .await
        .unwrap();
    let manual = ConsumeOptions::default()
        .group(unique("group"))
        .auto_ack(false)
        .ack_wait(Duration::from_secs(2));
    let mut group = events.consume(&topic, manual).await.unwrap();
    let mut private = events
        .consume(&topic, ConsumeOptions::default())
        .await
        .unwrap();

    registry
        .register(&service(&name, "before"), RegisterOptions::default())
        .await
        .unwrap();
    let seen = tokio::time::timeout(DEADLINE, watch.next()).await.unwrap();
    assert_eq!(seen.unwrap().unwrap().action, Action::Create);

    let mut published = BTreeSet::new();
    for text in ["e1", "e2", "e3"] {
        let options = PublishOptions::default();
        events
            .publish(&topic, Bytes::from(text), options)
            .await
            .unwrap();
        published.insert(text.to_string());
    }
    // The group handles e1 and acks it (the server confirmed); e2 and e3 are not handled.
    let first = next_event(&mut group, "e1").await;
    assert_eq!(&first.payload[..], b"e1");
    first.ack().await.unwrap();

    server.kill();
    // A publish in the outage either fails or is stored: never Ok and lost.
    let during = events
        .publish(&topic, Bytes::from("during"), PublishOptions::default())
        .await;
    if during.is_ok() {
        published.insert("during".to_string());
    }
    server.restart();

    until_ok("a publish", || {
        events.publish(&topic, Bytes::from("e4"), PublishOptions::default())
    })
    .await;
    published.insert("e4".to_string());
    let after = service(&name, "after");
    until_ok("a register", || {
        registry.register(&after, RegisterOptions::default())
    })
    .await;

    // The watch made before the restart reports the node registered after it.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("the watch reported nothing after the restart")
            .expect("the watch ended");
        match event {
            Ok(event) if event.service.nodes.iter().any(|n| n.id == "after") => break,
            _ => continue,
        }
    }

    // The group gets every stored event it had not acked: e2, e3, e4 (and "during" if its
    // publish said Ok), at least once each. e1 may come again: a server killed with -9 can
    // lose the consumer's last acks (JetStream is at-least-once), never a stored event.
    let mut expected: BTreeSet<String> = published.clone();
    expected.remove("e1");
    let mut got = BTreeSet::new();
    while !expected.is_subset(&got) {
        let event = next_event(&mut group, &format!("{expected:?}, got {got:?}")).await;
        event.ack().await.unwrap();
        got.insert(String::from_utf8_lossy(&event.payload).to_string());
        assert!(
            got.is_subset(&published),
            "{got:?} holds an event never published"
        );
    }
    // The private consumer resumes too: it sees e4.
    loop {
        let event = next_event(&mut private, "e4 on the private consumer").await;
        if &event.payload[..] == b"e4" {
            break;
        }
    }
}
