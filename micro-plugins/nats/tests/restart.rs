//! Fault tests: a nats-server of the test's own is killed and started again while the
//! components use it; they resume without being rebuilt.

mod common;

use common::server::TestServer;
use micro_core::broker::{self, Broker, Message, SubscribeOptions};
use micro_core::logger::Logger;
use micro_nats::NatsBroker;
use micro_nats::broker::NatsBrokerOptions;
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
