//! The redis broker against the shared redis-server: the conformance suite, foreign
//! payloads, and the plugin table.

mod common;

use common::redis_address;
use micro_conformance::support::{DEADLINE, unique};
use micro_core::broker::{Broker, Delivery, SubscribeOptions, handler};
use micro_core::logger::Logger;
use micro_redis::{RedisBroker, RedisBrokerOptions};
use std::sync::Arc;

/// Deletes the queue streams of the topics a case used when the case ends.
struct Cleanup(RedisBroker);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let topics = self.0.queue_topics();
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
                    .arg(micro_redis::broker::queue_key(&topic))
                    .query(&mut conn);
            }
        });
        let _ = cleanup.join();
    }
}

fn broker() -> RedisBroker {
    RedisBroker::new(
        &[redis_address()],
        RedisBrokerOptions::default(),
        Logger::none(),
    )
}

micro_conformance::broker_suite!(async || {
    let broker = broker();
    (Arc::new(broker.clone()) as Arc<dyn Broker>, Cleanup(broker))
});

#[tokio::test(flavor = "multi_thread")]
async fn a_payload_micro_did_not_write_is_a_body_without_headers() {
    let broker = broker();
    let topic = unique("foreign");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _sub = broker
        .subscribe(
            &topic,
            handler(move |d: Delivery| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(d);
                    Ok(())
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .unwrap();
    let client = redis::Client::open(redis_address()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&topic)
        .arg("hello")
        .query_async(&mut conn)
        .await
        .unwrap();
    let got = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.message.body[..], b"hello");
    assert!(got.message.header.is_empty());
}

#[test]
fn the_plugin_is_in_the_table() {
    let plugins = micro_redis::plugins();
    assert!(plugins.find("broker", "redis").is_ok());
    assert!(plugins.find("events", "redis").is_ok());
}
