//! Broker conformance suite: every broker plugin must pass it.
//!
//! Each `check_*` function is one case and takes a fresh `Arc<dyn Broker>`.
//! [`broker_suite!`](crate::broker_suite) turns every case into a `#[tokio::test]` of the calling
//! crate, each against a fresh broker from the factory:
//!
//! ```ignore
//! use micro_core::broker::Broker;
//! use std::sync::Arc;
//!
//! micro_conformance::broker_suite!(async || Arc::new(MyBroker::new()) as Arc<dyn Broker>);
//! ```
//!
//! Each check connects, uses topics unique to it, and disconnects at the end. `subscribe`
//! must return once the subscription is live. Checks never assert on speed: deliveries are
//! awaited up to a generous deadline, and "nothing more arrives" is checked after a short
//! grace period.

use crate::support::{GRACE, unique, within};
use bytes::Bytes;
use micro_core::broker::{Broker, Delivery, Message, SubscribeOptions, Subscriber, handler};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A subscriber whose deliveries (tagged with `tag`) land in a channel.
async fn collect(
    check: &str,
    b: &Arc<dyn Broker>,
    topic: &str,
    options: SubscribeOptions,
    tag: usize,
    sink: mpsc::UnboundedSender<(usize, Delivery)>,
) -> Box<dyn Subscriber> {
    let h = handler(move |d: Delivery| {
        let sink = sink.clone();
        async move {
            let _ = sink.send((tag, d));
            Ok(())
        }
    });
    b.subscribe(topic, h, options)
        .await
        .unwrap_or_else(|e| panic!("{check}: subscribe to {topic}: {e}"))
}

/// Receives exactly `n` deliveries, failing after the deadline.
async fn take(
    check: &str,
    rx: &mut mpsc::UnboundedReceiver<(usize, Delivery)>,
    n: usize,
) -> Vec<(usize, Delivery)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let what = format!("{check}: got {} of {n} deliveries", got.len());
        match within(&what, rx.recv()).await {
            Some(item) => got.push(item),
            None => panic!("{check}: delivery channel closed"),
        }
    }
    got
}

/// Asserts that nothing more arrives during the grace period.
async fn nothing_more(check: &str, rx: &mut mpsc::UnboundedReceiver<(usize, Delivery)>) {
    tokio::time::sleep(GRACE).await;
    if let Ok((tag, d)) = rx.try_recv() {
        panic!("{check}: unexpected extra delivery to subscriber {tag}: {d:?}");
    }
}

fn numbered(i: usize) -> Message {
    Message::new(format!("message {i}")).with_header("N", i.to_string())
}

/// A header of a delivery, whatever the case of its key (some transports canonicalise it).
fn header<'a>(d: &'a Delivery, key: &str) -> Option<&'a String> {
    d.message
        .header
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn number(check: &str, d: &Delivery) -> usize {
    header(d, "N")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{check}: delivery without N header: {d:?}"))
}

async fn publish_n(check: &str, b: &Arc<dyn Broker>, topic: &str, n: usize) {
    for i in 0..n {
        b.publish(topic, numbered(i))
            .await
            .unwrap_or_else(|e| panic!("{check}: publish {i}: {e}"));
    }
}

async fn connect(check: &str, b: &Arc<dyn Broker>) {
    b.connect()
        .await
        .unwrap_or_else(|e| panic!("{check}: connect: {e}"));
}

async fn disconnect(check: &str, b: &Arc<dyn Broker>) {
    b.disconnect()
        .await
        .unwrap_or_else(|e| panic!("{check}: disconnect: {e}"));
}

/// Every broadcast subscriber gets every message, in publish order.
pub async fn check_broadcast(b: Arc<dyn Broker>) {
    let check = "check_broadcast";
    connect(check, &b).await;
    let topic = unique("conformance.broadcast");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut subs = Vec::new();
    for tag in 0..3 {
        let options = SubscribeOptions::default();
        subs.push(collect(check, &b, &topic, options, tag, tx.clone()).await);
    }
    publish_n(check, &b, &topic, 5).await;
    let got = take(check, &mut rx, 15).await;
    for tag in 0..3 {
        let seen: Vec<usize> = got
            .iter()
            .filter(|(t, _)| *t == tag)
            .map(|(_, d)| number(check, d))
            .collect();
        assert_eq!(seen, [0, 1, 2, 3, 4], "{check}: subscriber {tag}");
    }
    nothing_more(check, &mut rx).await;
    disconnect(check, &b).await;
}

/// Each message goes to exactly one member of a queue group, and to every broadcast
/// subscriber besides.
pub async fn check_queue_group(b: Arc<dyn Broker>) {
    let check = "check_queue_group";
    connect(check, &b).await;
    let topic = unique("conformance.queue");
    let (group_tx, mut group_rx) = mpsc::unbounded_channel();
    let (all_tx, mut all_rx) = mpsc::unbounded_channel();
    let mut subs = Vec::new();
    for tag in 0..3 {
        let options = SubscribeOptions::default().queue("workers");
        subs.push(collect(check, &b, &topic, options, tag, group_tx.clone()).await);
    }
    subs.push(collect(check, &b, &topic, SubscribeOptions::default(), 9, all_tx).await);
    publish_n(check, &b, &topic, 20).await;

    let group = take(check, &mut group_rx, 20).await;
    let numbers: BTreeSet<usize> = group.iter().map(|(_, d)| number(check, d)).collect();
    assert_eq!(
        numbers,
        (0..20).collect(),
        "{check}: the group got each message once"
    );
    let all = take(check, &mut all_rx, 20).await;
    let numbers: Vec<usize> = all.iter().map(|(_, d)| number(check, d)).collect();
    assert_eq!(
        numbers,
        (0..20).collect::<Vec<_>>(),
        "{check}: broadcast subscriber"
    );
    nothing_more(check, &mut group_rx).await;
    nothing_more(check, &mut all_rx).await;
    disconnect(check, &b).await;
}

/// Two queue groups on one topic each get every message once.
pub async fn check_two_groups(b: Arc<dyn Broker>) {
    let check = "check_two_groups";
    connect(check, &b).await;
    let topic = unique("conformance.groups");
    let (a_tx, mut a_rx) = mpsc::unbounded_channel();
    let (b_tx, mut b_rx) = mpsc::unbounded_channel();
    let mut subs = Vec::new();
    for tag in 0..2 {
        subs.push(
            collect(
                check,
                &b,
                &topic,
                SubscribeOptions::default().queue("a"),
                tag,
                a_tx.clone(),
            )
            .await,
        );
        subs.push(
            collect(
                check,
                &b,
                &topic,
                SubscribeOptions::default().queue("b"),
                tag,
                b_tx.clone(),
            )
            .await,
        );
    }
    publish_n(check, &b, &topic, 10).await;
    for (name, rx) in [("a", &mut a_rx), ("b", &mut b_rx)] {
        let got = take(check, rx, 10).await;
        let numbers: BTreeSet<usize> = got.iter().map(|(_, d)| number(check, d)).collect();
        assert_eq!(numbers, (0..10).collect(), "{check}: group {name}");
        nothing_more(check, rx).await;
    }
    disconnect(check, &b).await;
}

/// After `unsubscribe` returns, the subscriber gets nothing more.
pub async fn check_unsubscribe(b: Arc<dyn Broker>) {
    let check = "check_unsubscribe";
    connect(check, &b).await;
    let topic = unique("conformance.unsubscribe");
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel();
    let (stay_tx, mut stay_rx) = mpsc::unbounded_channel();
    let gone = collect(check, &b, &topic, SubscribeOptions::default(), 0, gone_tx).await;
    let _stay = collect(check, &b, &topic, SubscribeOptions::default(), 1, stay_tx).await;
    assert_eq!(gone.topic(), topic, "{check}: Subscriber::topic");
    b.publish(&topic, numbered(0)).await.expect(check);
    take(check, &mut gone_rx, 1).await;
    take(check, &mut stay_rx, 1).await;

    gone.unsubscribe().await.expect(check);
    b.publish(&topic, numbered(1)).await.expect(check);
    let after = take(check, &mut stay_rx, 1).await;
    assert_eq!(
        number(check, &after[0].1),
        1,
        "{check}: remaining subscriber"
    );
    nothing_more(check, &mut gone_rx).await;
    disconnect(check, &b).await;
}

/// Headers and a binary body arrive as published, with the topic.
pub async fn check_headers_body(b: Arc<dyn Broker>) {
    let check = "check_headers_body";
    connect(check, &b).await;
    let topic = unique("conformance.headers");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = collect(check, &b, &topic, SubscribeOptions::default(), 0, tx).await;
    let body = Bytes::from_static(&[0, 1, 2, 254, 255, b'{', b'}']);
    let sent = Message::new(body.clone())
        .with_header("Content-Type", "application/octet-stream")
        .with_header("Micro-Id", "42");
    b.publish(&topic, sent.clone()).await.expect(check);
    let got = take(check, &mut rx, 1).await;
    let d = &got[0].1;
    assert_eq!(d.topic, topic, "{check}: delivery topic");
    assert_eq!(d.message.body, body, "{check}: body");
    for (key, value) in &sent.header {
        assert_eq!(header(d, key), Some(value), "{check}: header {key}");
    }
    d.ack().await.expect(check);
    disconnect(check, &b).await;
}

/// One subscriber sees messages in publish order.
pub async fn check_order(b: Arc<dyn Broker>) {
    let check = "check_order";
    connect(check, &b).await;
    let topic = unique("conformance.order");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = collect(check, &b, &topic, SubscribeOptions::default(), 0, tx).await;
    publish_n(check, &b, &topic, 100).await;
    let got = take(check, &mut rx, 100).await;
    let numbers: Vec<usize> = got.iter().map(|(_, d)| number(check, d)).collect();
    assert_eq!(numbers, (0..100).collect::<Vec<_>>(), "{check}: order");
    disconnect(check, &b).await;
}

/// Publishing to a topic nobody listens to succeeds.
pub async fn check_no_subscribers(b: Arc<dyn Broker>) {
    let check = "check_no_subscribers";
    connect(check, &b).await;
    let topic = unique("conformance.nobody");
    b.publish(&topic, numbered(0))
        .await
        .unwrap_or_else(|e| panic!("{check}: publish without subscribers: {e}"));
    disconnect(check, &b).await;
}

/// An empty topic is a 400 for publish and subscribe.
pub async fn check_empty_topic(b: Arc<dyn Broker>) {
    let check = "check_empty_topic";
    connect(check, &b).await;
    let err = b
        .publish("", numbered(0))
        .await
        .expect_err("check_empty_topic: publish to an empty topic succeeded");
    assert_eq!(err.code, 400, "{check}: publish: {err}");
    let h = handler(|_d: Delivery| async { Ok(()) });
    match b.subscribe("", h, SubscribeOptions::default()).await {
        Ok(_) => panic!("{check}: subscribe to an empty topic succeeded"),
        Err(err) => assert_eq!(err.code, 400, "{check}: subscribe: {err}"),
    }
    disconnect(check, &b).await;
}

/// One `#[tokio::test]` per case of the broker suite, each against a fresh broker from the
/// factory (see the [crate] documentation for the three forms).
///
/// ```ignore
/// micro_conformance::broker_suite!(async || Arc::new(MyBroker::new()) as Arc<dyn Broker>);
/// micro_conformance::broker_suite!(
///     mod on_current_thread(flavor = "current_thread"),
///     async || Arc::new(MyBroker::new()) as Arc<dyn Broker>,
/// );
/// ```
#[macro_export]
macro_rules! broker_suite {
    ($($input:tt)*) => {
        $crate::__suite!(component broker [
            check_broadcast,
            check_queue_group,
            check_two_groups,
            check_unsubscribe,
            check_headers_body,
            check_order,
            check_no_subscribers,
            check_empty_topic,
        ] $($input)*);
    };
}
