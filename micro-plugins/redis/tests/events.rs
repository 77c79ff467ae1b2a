//! The redis events against the shared redis-server: the conformance suite and entries
//! micro did not write.

mod common;

use bytes::Bytes;
use common::redis_address;
use micro_conformance::events::{next_event, payload_text};
use micro_conformance::support::unique;
use micro_core::config::LoggerConfig;
use micro_core::events::{ConsumeOptions, Events, Offset, PublishOptions, ReadOptions};
use micro_core::logger::{LogOutput, Logger};
use micro_redis::RedisEvents;
use std::sync::{Arc, Mutex};

/// Deletes the streams of the topics a case used when the case ends.
struct Cleanup(RedisEvents);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let topics = self.0.known_topics();
        // Drop cannot await: delete from a thread with a blocking connection.
        let cleanup = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(redis_address()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            for topic in topics {
                let _: redis::RedisResult<()> = redis::cmd("DEL")
                    .arg(micro_redis::events::key(&topic))
                    .query(&mut conn);
            }
        });
        let _ = cleanup.join();
    }
}

fn events() -> RedisEvents {
    RedisEvents::new(&[redis_address()])
}

fn fixture() -> (Arc<dyn Events>, Cleanup) {
    let events = events();
    (Arc::new(events.clone()) as Arc<dyn Events>, Cleanup(events))
}

micro_conformance::events_suite!(async || fixture());

async fn publish(events: &RedisEvents, topic: &str, payload: &'static str) {
    events
        .publish(topic, Bytes::from(payload), PublishOptions::default())
        .await
        .unwrap_or_else(|e| panic!("publish {payload} on {topic}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_not_written_by_micro_are_skipped_with_a_warning() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let dispatch = micro_core::service::loggers::text_dispatch(
        &LoggerConfig::default(),
        tracing::level_filters::LevelFilter::WARN,
        LogOutput::buffer(lines.clone()),
    );
    let events = events().with_logger(Logger::new("events", dispatch));
    let topic = unique("garbage");
    let _cleanup = Cleanup(events.clone());
    let key = micro_redis::events::key(&topic);
    publish(&events, &topic, "before").await;
    // What redis-cli writes: fields micro does not know, then a bad timestamp.
    let client = redis::Client::open(redis_address()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("hello")
        .arg("world")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("micro-id")
        .arg("x1")
        .arg("micro-timestamp")
        .arg("yesterday")
        .arg("payload")
        .arg("bad time")
        .query_async(&mut conn)
        .await
        .unwrap();
    publish(&events, &topic, "after").await;

    let read = events.read(&topic, ReadOptions::default()).await.unwrap();
    let texts: Vec<String> = read.iter().map(payload_text).collect();
    assert_eq!(
        texts,
        ["before", "after"],
        "history skips the foreign entries"
    );

    for auto_ack in [true, false] {
        let options = ConsumeOptions::default()
            .offset(Offset::Earliest)
            .auto_ack(auto_ack)
            .group(unique("readers"));
        let mut consumer = events.consume(&topic, options).await.unwrap();
        for expected in ["before", "after"] {
            let event = next_event(&mut consumer, expected).await;
            assert_eq!(payload_text(&event), expected, "auto_ack {auto_ack}");
            event.ack().await.unwrap();
        }
    }
    let log = String::from_utf8_lossy(&lines.lock().unwrap()).to_string();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&key))
        .collect();
    // Two foreign entries, seen by read and by each of the two groups.
    assert!(
        warnings.len() >= 6,
        "a warning naming the stream per skipped entry and reader: {log}"
    );
    assert!(
        warnings.iter().any(|l| l.contains("no field micro-id")),
        "{log}"
    );
    assert!(
        warnings.iter().any(|l| l.contains("micro-timestamp")),
        "{log}"
    );
}
