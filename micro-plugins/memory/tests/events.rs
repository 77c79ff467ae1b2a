//! The memory events against the events conformance suite, plus its own lifecycle.

use bytes::Bytes;
use micro_core::events::{ConsumeOptions, Events, Offset, PublishOptions};
use micro_memory::MemoryEvents;
use std::sync::Arc;
use std::time::Duration;

micro_conformance::events_suite!(async || Arc::new(MemoryEvents::new()) as Arc<dyn Events>);

#[tokio::test]
async fn dropping_the_backend_ends_consumers() {
    let events = MemoryEvents::new();
    let mut consumer = events
        .consume("t", ConsumeOptions::default())
        .await
        .unwrap();
    drop(events);
    let end = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await;
    assert!(
        matches!(end, Ok(None)),
        "stream must end when the backend is dropped"
    );
}

#[tokio::test]
async fn zero_ack_wait_without_auto_ack_is_rejected() {
    let events = MemoryEvents::new();
    let options = ConsumeOptions::default()
        .auto_ack(false)
        .ack_wait(Duration::ZERO);
    assert_eq!(events.consume("t", options).await.unwrap_err().code, 400);
}

#[tokio::test]
async fn publish_keeps_the_given_timestamp() {
    let events = MemoryEvents::new();
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let options = PublishOptions::default().timestamp(at);
    events
        .publish("t", Bytes::from("x"), options)
        .await
        .unwrap();
    let read = events.read("t", Default::default()).await.unwrap();
    assert_eq!(read[0].timestamp, at);
    // Since() filters the history by those timestamps.
    let since = ConsumeOptions::default().offset(Offset::Since(at + Duration::from_secs(1)));
    let mut consumer = events.consume("t", since).await.unwrap();
    events
        .publish("t", Bytes::from("y"), PublishOptions::default())
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.payload, "y");
}

#[tokio::test]
async fn unacked_events_of_a_departed_consumer_go_to_the_group() {
    let events = MemoryEvents::new();
    let options = ConsumeOptions::default()
        .group("workers")
        .auto_ack(false)
        .ack_wait(Duration::from_millis(300));
    let mut first = events.consume("jobs", options.clone()).await.unwrap();
    events
        .publish("jobs", Bytes::from("job"), PublishOptions::default())
        .await
        .unwrap();
    let taken = tokio::time::timeout(Duration::from_secs(10), first.next())
        .await
        .unwrap()
        .unwrap();
    drop(first);
    let mut second = events.consume("jobs", options).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), second.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, taken.id);
    again.ack().await.unwrap();
}
