//! Events conformance suite: every events plugin must pass it.
//!
//! Each `check_*` function is one case and takes a fresh `Arc<dyn Events>`.
//! [`events_suite!`](crate::events_suite) turns every case into a `#[tokio::test]` of the calling
//! crate, each against a fresh events from the factory:
//!
//! ```ignore
//! use micro_core::events::Events;
//! use std::sync::Arc;
//!
//! micro_conformance::events_suite!(async || Arc::new(MyEvents::new()) as Arc<dyn Events>);
//! ```
//!
//! Topics and groups are unique per check, so a backend shared between runs is fine.
//! Nothing asserts on speed: deliveries are awaited until a generous deadline, and checks
//! that something does NOT happen wait a short grace period (a slow backend can only make
//! them pass, never fail).

use crate::support::{DEADLINE, unique};

use bytes::Bytes;
use micro_core::events::{
    ConsumeOptions, Consumer, Event, Events, Offset, PublishOptions, ReadOptions,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a check waits to be reasonably sure a delivery does NOT come.
const GRACE: Duration = Duration::from_millis(1500);
/// Ack wait of the redelivery checks.
const ACK_WAIT: Duration = Duration::from_millis(300);

async fn publish(events: &Arc<dyn Events>, check: &str, topic: &str, payload: &str) {
    let payload = Bytes::copy_from_slice(payload.as_bytes());
    if let Err(err) = events
        .publish(topic, payload, PublishOptions::default())
        .await
    {
        panic!("{check}: publish on {topic:?} failed: {err}");
    }
}

async fn consume(
    events: &Arc<dyn Events>,
    check: &str,
    topic: &str,
    options: ConsumeOptions,
) -> Consumer {
    match events.consume(topic, options).await {
        Ok(consumer) => consumer,
        Err(err) => panic!("{check}: consume {topic:?} failed: {err}"),
    }
}

/// The next event, or a failure naming the check after [`DEADLINE`].
async fn next(consumer: &mut Consumer, check: &str, what: &str) -> Event {
    next_event(consumer, &format!("{check}: {what}")).await
}

/// The consumer's next event; panics saying it waited for `what` when the stream ends or
/// nothing comes within [`DEADLINE`] (for plugin tests of their own, too).
pub async fn next_event(consumer: &mut Consumer, what: &str) -> Event {
    match tokio::time::timeout(DEADLINE, consumer.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("stream ended while waiting for {what}"),
        Err(_) => panic!("no event after {DEADLINE:?} while waiting for {what}"),
    }
}

/// An event's payload as text (lossy), for assertions.
pub fn payload_text(event: &Event) -> String {
    String::from_utf8_lossy(&event.payload).into_owned()
}

/// Fails when an event arrives within [`GRACE`].
async fn nothing_more(consumer: &mut Consumer, check: &str, what: &str) {
    if let Ok(Some(event)) = tokio::time::timeout(GRACE, consumer.next()).await {
        panic!("{check}: unexpected {what}: {:?}", payload_text(&event));
    }
}

fn texts(events: &[Event]) -> Vec<String> {
    events.iter().map(payload_text).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn manual(group: Option<String>, offset: Offset) -> ConsumeOptions {
    let mut options = ConsumeOptions::default()
        .offset(offset)
        .auto_ack(false)
        .ack_wait(ACK_WAIT);
    options.group = group;
    options
}

/// Published events are read back oldest first, paged by limit and offset.
pub async fn check_publish_read(events: Arc<dyn Events>) {
    let check = "check_publish_read";
    let topic = unique("history");
    for i in 0..5 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    let read = |limit, offset| {
        let events = events.clone();
        let topic = topic.clone();
        async move {
            match events
                .read(&topic, ReadOptions::default().limit(limit).offset(offset))
                .await
            {
                Ok(list) => list,
                Err(err) => panic!("{check}: read failed: {err}"),
            }
        }
    };
    let all = read(0, 0).await;
    assert_eq!(
        texts(&all),
        strings(&["0", "1", "2", "3", "4"]),
        "{check}: all, oldest first"
    );
    assert!(
        all.iter().all(|e| e.topic == topic),
        "{check}: events carry their topic"
    );
    let mut ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "{check}: every event has its own id");
    assert!(ids.iter().all(|id| !id.is_empty()), "{check}: ids are set");
    assert_eq!(
        texts(&read(2, 0).await),
        strings(&["0", "1"]),
        "{check}: limit"
    );
    assert_eq!(
        texts(&read(0, 3).await),
        strings(&["3", "4"]),
        "{check}: offset"
    );
    assert_eq!(
        texts(&read(2, 1).await),
        strings(&["1", "2"]),
        "{check}: limit and offset"
    );
    let other = unique("history_other");
    let none = events.read(&other, ReadOptions::default()).await;
    assert!(
        matches!(none, Ok(ref list) if list.is_empty())
            || matches!(none, Err(ref e) if e.code == 404),
        "{check}: a topic never published on has no history: {none:?}"
    );
}

/// An empty topic is a 400 for publish and consume.
pub async fn check_empty_topic(events: Arc<dyn Events>) {
    let check = "check_empty_topic";
    let published = events
        .publish("", Bytes::from("x"), PublishOptions::default())
        .await;
    assert!(
        matches!(published, Err(ref e) if e.code == 400),
        "{check}: publish: {published:?}"
    );
    let consumed = events.consume("", ConsumeOptions::default()).await;
    assert!(
        matches!(consumed, Err(ref e) if e.code == 400),
        "{check}: consume must be a 400"
    );
}

/// Metadata and payload round-trip through history and consumers.
pub async fn check_metadata(events: Arc<dyn Events>) {
    let check = "check_metadata";
    let topic = unique("metadata");
    let metadata: BTreeMap<String, String> = [
        ("trace".to_string(), "abc".to_string()),
        ("kind".to_string(), "created".to_string()),
    ]
    .into();
    let payload = Bytes::from_static(&[0, 1, 2, 255, b'{']);
    let options = PublishOptions::default().metadata(metadata.clone());
    events
        .publish(&topic, payload.clone(), options)
        .await
        .unwrap_or_else(|e| panic!("{check}: publish: {e}"));
    let read = events
        .read(&topic, ReadOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: read: {e}"));
    assert_eq!(read.len(), 1, "{check}: one event in history");
    assert_eq!(read[0].metadata, metadata, "{check}: metadata in history");
    assert_eq!(read[0].payload, payload, "{check}: payload in history");
    let options = ConsumeOptions::default().offset(Offset::Earliest);
    let mut consumer = consume(&events, check, &topic, options).await;
    let event = next(&mut consumer, check, "the event").await;
    assert_eq!(event.metadata, metadata, "{check}: metadata when consumed");
    assert_eq!(event.payload, payload, "{check}: payload when consumed");
    assert_eq!(
        event.id, read[0].id,
        "{check}: same id in history and stream"
    );
}

/// `Offset::Latest` delivers only events published after consume, in order.
pub async fn check_consume_latest(events: Arc<dyn Events>) {
    let check = "check_consume_latest";
    let topic = unique("latest");
    publish(&events, check, &topic, "old").await;
    let mut consumer = consume(&events, check, &topic, ConsumeOptions::default()).await;
    for i in 0..3 {
        publish(&events, check, &topic, &format!("new{i}")).await;
    }
    for i in 0..3 {
        let event = next(&mut consumer, check, "a new event").await;
        assert_eq!(
            payload_text(&event),
            format!("new{i}"),
            "{check}: only new events, in order"
        );
        assert_eq!(event.topic, topic, "{check}: topic");
        event
            .ack()
            .await
            .unwrap_or_else(|e| panic!("{check}: ack of an auto-acked event must be Ok: {e}"));
    }
}

/// `Offset::Earliest` replays the history, then continues with new events.
pub async fn check_consume_earliest(events: Arc<dyn Events>) {
    let check = "check_consume_earliest";
    let topic = unique("earliest");
    for i in 0..3 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    let options = ConsumeOptions::default().offset(Offset::Earliest);
    let mut consumer = consume(&events, check, &topic, options).await;
    for i in 0..3 {
        assert_eq!(
            payload_text(&next(&mut consumer, check, "history").await),
            i.to_string(),
            "{check}: history in order"
        );
    }
    publish(&events, check, &topic, "3").await;
    assert_eq!(
        payload_text(&next(&mut consumer, check, "a new event").await),
        "3",
        "{check}: then new events"
    );
}

/// `Offset::Since(t)` starts with the events published at or after `t`.
pub async fn check_consume_since(events: Arc<dyn Events>) {
    let check = "check_consume_since";
    let topic = unique("since");
    publish(&events, check, &topic, "before").await;
    // Real time gaps (not asserted on) so backends that stamp events themselves agree.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let since = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(250)).await;
    publish(&events, check, &topic, "after1").await;
    publish(&events, check, &topic, "after2").await;
    let options = ConsumeOptions::default().offset(Offset::Since(since));
    let mut consumer = consume(&events, check, &topic, options).await;
    assert_eq!(
        payload_text(&next(&mut consumer, check, "after1").await),
        "after1",
        "{check}: starts at t"
    );
    assert_eq!(
        payload_text(&next(&mut consumer, check, "after2").await),
        "after2",
        "{check}: in order"
    );
    publish(&events, check, &topic, "later").await;
    assert_eq!(
        payload_text(&next(&mut consumer, check, "later").await),
        "later",
        "{check}: then new events"
    );
}

/// Two consumers of one group split the events: each event reaches exactly one of them.
pub async fn check_group_split(events: Arc<dyn Events>) {
    let check = "check_group_split";
    let topic = unique("split");
    let group = unique("group");
    let options = ConsumeOptions::default().group(group.clone());
    let mut a = consume(&events, check, &topic, options.clone()).await;
    let mut b = consume(&events, check, &topic, options).await;
    for i in 0..20 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while seen.values().sum::<usize>() < 20 {
        let event = tokio::select! {
            event = a.next() => event,
            event = b.next() => event,
            () = tokio::time::sleep_until(deadline) => panic!("{check}: only {} of 20 events after {DEADLINE:?}", seen.values().sum::<usize>()),
        };
        let event = event.unwrap_or_else(|| panic!("{check}: a stream ended"));
        *seen.entry(payload_text(&event)).or_default() += 1;
    }
    for i in 0..20 {
        assert_eq!(
            seen.get(&i.to_string()),
            Some(&1),
            "{check}: event {i} delivered exactly once: {seen:?}"
        );
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), async {
        tokio::select! { e = a.next() => e, e = b.next() => e }
    })
    .await;
    assert!(
        !matches!(extra, Ok(Some(_))),
        "{check}: no event delivered twice"
    );
}

/// Two groups each get every event, in order.
pub async fn check_two_groups(events: Arc<dyn Events>) {
    let check = "check_two_groups";
    let topic = unique("groups");
    let mut first = consume(
        &events,
        check,
        &topic,
        ConsumeOptions::default().group(unique("g1")),
    )
    .await;
    let mut second = consume(
        &events,
        check,
        &topic,
        ConsumeOptions::default().group(unique("g2")),
    )
    .await;
    for i in 0..5 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    for consumer in [&mut first, &mut second] {
        for i in 0..5 {
            assert_eq!(
                payload_text(&next(consumer, check, "every event").await),
                i.to_string(),
                "{check}: each group gets all, in order"
            );
        }
    }
}

/// A named group keeps its position: a new consumer of it continues where it stopped.
pub async fn check_group_resumes(events: Arc<dyn Events>) {
    let check = "check_group_resumes";
    let topic = unique("resume");
    let group = unique("group");
    let options = ConsumeOptions::default().group(group.clone());
    let mut consumer = consume(&events, check, &topic, options).await;
    for i in 0..3 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    for i in 0..3 {
        assert_eq!(
            payload_text(&next(&mut consumer, check, "first events").await),
            i.to_string(),
            "{check}: first consumer"
        );
    }
    drop(consumer);
    for i in 3..5 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    // Earliest applies to a new group only; this group exists and continues.
    let options = ConsumeOptions::default()
        .group(group)
        .offset(Offset::Earliest);
    let mut consumer = consume(&events, check, &topic, options).await;
    for i in 3..5 {
        assert_eq!(
            payload_text(&next(&mut consumer, check, "later events").await),
            i.to_string(),
            "{check}: continues where the group was"
        );
    }
}

/// Without auto-ack, a nacked event is delivered again.
pub async fn check_nack_redelivered(events: Arc<dyn Events>) {
    let check = "check_nack_redelivered";
    let topic = unique("nack");
    let mut options = manual(None, Offset::Latest);
    options.ack_wait = Duration::from_secs(60); // redelivery must come from the nack
    let mut consumer = consume(&events, check, &topic, options).await;
    publish(&events, check, &topic, "job").await;
    let first = next(&mut consumer, check, "the first delivery").await;
    first
        .nack()
        .await
        .unwrap_or_else(|e| panic!("{check}: nack: {e}"));
    let again = next(&mut consumer, check, "the redelivery").await;
    assert_eq!(again.id, first.id, "{check}: same event redelivered");
    assert_eq!(payload_text(&again), "job", "{check}: same payload");
    again
        .ack()
        .await
        .unwrap_or_else(|e| panic!("{check}: ack: {e}"));
    publish(&events, check, &topic, "next").await;
    assert_eq!(
        payload_text(&next(&mut consumer, check, "the next event").await),
        "next",
        "{check}: acked, then the next event"
    );
}

/// Without auto-ack, an event not acked within `ack_wait` is delivered again; once acked
/// it is not.
pub async fn check_ack_wait_redelivery(events: Arc<dyn Events>) {
    let check = "check_ack_wait_redelivery";
    let topic = unique("ackwait");
    let mut consumer = consume(&events, check, &topic, manual(None, Offset::Latest)).await;
    publish(&events, check, &topic, "job").await;
    let first = next(&mut consumer, check, "the first delivery").await;
    let again = next(&mut consumer, check, "the redelivery after ack_wait").await;
    assert_eq!(again.id, first.id, "{check}: same event redelivered");
    again
        .ack()
        .await
        .unwrap_or_else(|e| panic!("{check}: ack: {e}"));
    nothing_more(&mut consumer, check, "redelivery of an acked event").await;
}

/// With `retry_limit: Some(1)`, an event is delivered at most twice, then dropped; the
/// events after it still flow.
pub async fn check_retry_limit(events: Arc<dyn Events>) {
    let check = "check_retry_limit";
    let topic = unique("retry");
    let mut options = manual(None, Offset::Latest);
    options.retry_limit = Some(1);
    let mut consumer = consume(&events, check, &topic, options).await;
    publish(&events, check, &topic, "poison").await;
    let first = next(&mut consumer, check, "the first delivery").await;
    first
        .nack()
        .await
        .unwrap_or_else(|e| panic!("{check}: nack: {e}"));
    let second = next(&mut consumer, check, "the one retry").await;
    assert_eq!(second.id, first.id, "{check}: the retry is the same event");
    second
        .nack()
        .await
        .unwrap_or_else(|e| panic!("{check}: nack: {e}"));
    nothing_more(&mut consumer, check, "delivery beyond the retry limit").await;
    publish(&events, check, &topic, "healthy").await;
    let next_event = next(&mut consumer, check, "the next event").await;
    assert_eq!(
        payload_text(&next_event),
        "healthy",
        "{check}: later events still delivered"
    );
    next_event
        .ack()
        .await
        .unwrap_or_else(|e| panic!("{check}: ack: {e}"));
}

/// Events carry growing sequences, the same in history and when consumed; `read` pages by
/// position with `after`.
pub async fn check_sequences_and_paging(events: Arc<dyn Events>) {
    let check = "check_sequences_and_paging";
    let topic = unique("sequence");
    for i in 0..5 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    let read = |options: ReadOptions| {
        let (events, topic) = (events.clone(), topic.clone());
        async move {
            (events.read(&topic, options).await)
                .unwrap_or_else(|err| panic!("{check}: read failed: {err}"))
        }
    };
    let all = read(ReadOptions::default()).await;
    let sequences: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert!(
        sequences[0] > 0 && sequences.windows(2).all(|w| w[0] < w[1]),
        "{check}: sequences are set and grow: {sequences:?}"
    );
    let after = |n: usize| ReadOptions::default().after(sequences[n]);
    assert_eq!(
        texts(&read(after(1)).await),
        strings(&["2", "3", "4"]),
        "{check}: after"
    );
    assert_eq!(
        texts(&read(after(1).limit(2)).await),
        strings(&["2", "3"]),
        "{check}: a page"
    );
    assert_eq!(
        texts(&read(after(1).offset(2)).await),
        strings(&["4"]),
        "{check}: after + offset"
    );
    assert!(
        read(after(4)).await.is_empty(),
        "{check}: nothing after the last"
    );
    let mut consumer = consume(
        &events,
        check,
        &topic,
        ConsumeOptions::default().offset(Offset::Earliest),
    )
    .await;
    for expected in &all {
        let event = next(&mut consumer, check, "history").await;
        assert_eq!(
            event.sequence, expected.sequence,
            "{check}: same sequence when consumed"
        );
    }
}

/// `Offset::Sequence(n)` starts with the event at sequence `n`, then continues with new ones.
pub async fn check_consume_from_sequence(events: Arc<dyn Events>) {
    let check = "check_consume_from_sequence";
    let topic = unique("fromseq");
    for i in 0..4 {
        publish(&events, check, &topic, &i.to_string()).await;
    }
    let history = (events.read(&topic, ReadOptions::default()).await)
        .unwrap_or_else(|e| panic!("{check}: read: {e}"));
    let options = ConsumeOptions::default().offset(Offset::Sequence(history[2].sequence));
    let mut consumer = consume(&events, check, &topic, options).await;
    for expected in ["2", "3"] {
        assert_eq!(
            payload_text(&next(&mut consumer, check, expected).await),
            expected,
            "{check}: from n on"
        );
    }
    publish(&events, check, &topic, "4").await;
    assert_eq!(
        payload_text(&next(&mut consumer, check, "4").await),
        "4",
        "{check}: then new events"
    );
}

/// One `#[tokio::test]` per case of the events suite, each against a fresh events from the
/// factory (see the [crate] documentation for the three forms).
///
/// ```ignore
/// micro_conformance::events_suite!(async || Arc::new(MyEvents::new()) as Arc<dyn Events>);
/// micro_conformance::events_suite!(
///     mod on_current_thread(flavor = "current_thread"),
///     async || Arc::new(MyEvents::new()) as Arc<dyn Events>,
/// );
/// ```
#[macro_export]
macro_rules! events_suite {
    ($($input:tt)*) => {
        $crate::__suite!(component events [
            check_publish_read,
            check_empty_topic,
            check_metadata,
            check_consume_latest,
            check_consume_earliest,
            check_consume_since,
            check_consume_from_sequence,
            check_sequences_and_paging,
            check_group_split,
            check_two_groups,
            check_group_resumes,
            check_nack_redelivered,
            check_ack_wait_redelivery,
            check_retry_limit,
        ] $($input)*);
    };
}
