//! The broker conformance suite against [`MemoryBroker`], plus memory-specific behaviour.

use micro_core::Error;
use micro_core::broker::{Broker, Delivery, Message, SubscribeOptions, handler};
use micro_memory::MemoryBroker;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

micro_conformance::broker_suite!(
    mod conformance(flavor = "multi_thread", worker_threads = 4),
    async || Arc::new(MemoryBroker::new()) as Arc<dyn Broker>,
);

micro_conformance::broker_suite!(
    mod conformance_current_thread(flavor = "current_thread"),
    async || Arc::new(MemoryBroker::new()) as Arc<dyn Broker>,
);

fn sink(tx: mpsc::UnboundedSender<String>, tag: &'static str) -> micro_core::broker::Handler {
    handler(move |d: Delivery| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(format!(
                "{tag}:{}",
                String::from_utf8_lossy(&d.message.body)
            ));
            Ok(())
        }
    })
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("delivery")
        .expect("channel open")
}

#[tokio::test]
async fn queue_group_rotates() {
    let b = MemoryBroker::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut subs = Vec::new();
    for tag in ["a", "b", "c"] {
        subs.push(
            b.subscribe(
                "t",
                sink(tx.clone(), tag),
                SubscribeOptions::default().queue("q"),
            )
            .await
            .unwrap(),
        );
    }
    for i in 0..30 {
        b.publish("t", Message::new(i.to_string())).await.unwrap();
    }
    let mut counts = std::collections::HashMap::new();
    for _ in 0..30 {
        let got = recv(&mut rx).await;
        *counts.entry(got[..1].to_string()).or_insert(0) += 1;
    }
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10]);
}

#[tokio::test]
async fn a_refused_message_is_not_redelivered_and_delivery_goes_on() {
    let b = MemoryBroker::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let h = handler(move |d: Delivery| {
        let tx = tx.clone();
        async move {
            let body = String::from_utf8_lossy(&d.message.body).to_string();
            let _ = tx.send(body.clone());
            match body.as_str() {
                "fail" => Err(Error::internal("test", "refused")),
                "panic" => panic!("handler panics"),
                _ => Ok(()),
            }
        }
    });
    let _sub = b
        .subscribe("t", h, SubscribeOptions::default())
        .await
        .unwrap();
    for body in ["fail", "panic", "ok"] {
        b.publish("t", Message::new(body)).await.unwrap();
    }
    assert_eq!(recv(&mut rx).await, "fail");
    assert_eq!(recv(&mut rx).await, "panic");
    assert_eq!(recv(&mut rx).await, "ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "no redelivery");
}

#[tokio::test]
async fn disconnect_drops_subscriptions_and_clones_share() {
    let b = MemoryBroker::new();
    let clone = b.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = b
        .subscribe("t", sink(tx, "x"), SubscribeOptions::default())
        .await
        .unwrap();
    clone.publish("t", Message::new("1")).await.unwrap();
    assert_eq!(recv(&mut rx).await, "x:1");
    MemoryBroker::new()
        .publish("t", Message::new("other"))
        .await
        .unwrap();
    b.disconnect().await.unwrap();
    clone.publish("t", Message::new("2")).await.unwrap();
    // The subscription's task ends, closing the channel without another delivery.
    let end = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap();
    assert_eq!(end, None);
}
