//! The nats events against the shared nats-server: the conformance suite, messages micro
//! did not write, topic names, private consumers, and the plugin table.

mod common;

use async_nats::jetstream;
use bytes::Bytes;
use common::nats_address;
use futures::StreamExt;
use micro_conformance::events::{next_event, payload_text};
use micro_conformance::support::{eventually, unique};
use micro_core::PluginContext;
use micro_core::config::{LoggerConfig, Outcome, Sources, load};
use micro_core::events::{ConsumeOptions, Events, Offset, PublishOptions, ReadOptions};
use micro_core::logger::{LogOutput, Logger};
use micro_core::middleware::Middleware;
use micro_core::plugin::{Components, PluginFactory, ServiceInfo};
use micro_nats::NatsEvents;
use std::sync::{Arc, Mutex};

/// Deletes the streams of the topics a case used when the case ends.
struct Cleanup(NatsEvents);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let topics = self.0.known_topics();
        // Drop cannot await: delete from a thread with its own runtime and connection.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let events = NatsEvents::new(&[nats_address()]);
                for topic in topics {
                    let _ = events.delete_topic(&topic).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn events() -> NatsEvents {
    NatsEvents::new(&[nats_address()])
}

fn fixture() -> (Arc<dyn Events>, Cleanup) {
    let events = events();
    (Arc::new(events.clone()) as Arc<dyn Events>, Cleanup(events))
}

micro_conformance::events_suite!(async || fixture());

async fn publish(events: &NatsEvents, topic: &str, payload: &'static str) {
    events
        .publish(topic, Bytes::from(payload), PublishOptions::default())
        .await
        .unwrap_or_else(|e| panic!("publish {payload} on {topic}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_not_written_by_micro_are_skipped_with_a_warning() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let dispatch = micro_core::service::loggers::text_dispatch(
        &LoggerConfig::default(),
        tracing::level_filters::LevelFilter::WARN,
        LogOutput::buffer(lines.clone()),
    );
    let events = events().with_logger(Logger::new("events", dispatch));
    let _cleanup = Cleanup(events.clone());
    let topic = unique("garbage");
    let subject = format!("micro.events.{}", micro_nats::events::escape(&topic));
    publish(&events, &topic, "before").await;
    // A plain NATS client writes what micro cannot read: no headers, then a bad timestamp.
    let raw = jetstream::new(async_nats::connect(nats_address()).await.unwrap());
    raw.publish(subject.clone(), Bytes::from("no headers at all"))
        .await
        .unwrap()
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Micro-Id", "x1");
    headers.insert("Micro-Timestamp", "yesterday");
    raw.publish_with_headers(subject.clone(), headers, Bytes::from("bad time"))
        .await
        .unwrap()
        .await
        .unwrap();
    publish(&events, &topic, "after").await;

    let read = events.read(&topic, ReadOptions::default()).await.unwrap();
    let texts: Vec<String> = read.iter().map(payload_text).collect();
    assert_eq!(
        texts,
        ["before", "after"],
        "history skips the foreign messages"
    );
    assert_eq!(read[1].sequence, 4, "sequences are the stream's");

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
        .filter(|l| l.contains("WARN") && l.contains(&subject))
        .collect();
    assert!(
        warnings.iter().any(|l| l.contains("no headers"))
            && warnings.iter().any(|l| l.contains("yesterday")),
        "warnings name the subject and the reason:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn any_topic_name_works() {
    let events = events();
    let _cleanup = Cleanup(events.clone());
    let topic = format!("{} orders.created.* > ü/\\_5F", unique("odd"));
    let mut consumer = events
        .consume(&topic, ConsumeOptions::default().group("group.with dots *"))
        .await
        .unwrap();
    publish(&events, &topic, "one").await;
    let event = next_event(&mut consumer, "one").await;
    assert_eq!(
        (event.topic.as_str(), payload_text(&event).as_str()),
        (topic.as_str(), "one")
    );
    let read = events.read(&topic, ReadOptions::default()).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(events.known_topics(), vec![topic.clone()]);
    let long = "x".repeat(300);
    let err = events
        .publish(&long, Bytes::new(), PublishOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_private_consumer_is_deleted() {
    let events = events();
    let _cleanup = Cleanup(events.clone());
    let topic = unique("private");
    let consumer = events
        .consume(&topic, ConsumeOptions::default())
        .await
        .unwrap();
    let js = jetstream::new(async_nats::connect(nats_address()).await.unwrap());
    let stream_name = format!("MICRO_EVENTS_{}", micro_nats::events::escape(&topic));
    let names = || {
        let js = js.clone();
        let stream_name = stream_name.clone();
        async move {
            let stream = js.get_stream(&stream_name).await.unwrap();
            stream
                .consumer_names()
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .map(|n| n.unwrap())
                .collect::<Vec<String>>()
        }
    };
    let before = names().await;
    assert!(
        before.len() == 1 && before[0].starts_with("micro_private_"),
        "{before:?}"
    );
    drop(consumer);
    eventually("the private consumer deleted", || async {
        names().await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_table_builds_it_from_config() {
    let plugins = micro_nats::plugins();
    let sources = Sources {
        no_flags: true,
        overrides: serde_json::json!({
            "events": {"plugin": "nats", "addresses": [nats_address()]}
        }),
        ..Default::default()
    };
    let Outcome::Loaded(loaded) = load(plugins.schema(), &sources).unwrap() else {
        panic!("config did not load");
    };
    let (components, service, middleware) = (
        Components::default(),
        ServiceInfo::default(),
        Middleware::default(),
    );
    let ctx = PluginContext {
        section: "events",
        config: &*loaded,
        logger: Logger::none(),
        components: &components,
        service: &service,
        middleware: &middleware,
    };
    let plugin = plugins.find("events", "nats").unwrap();
    assert_eq!(plugin.feature, "nats");
    let PluginFactory::Events(factory) = &plugin.factory else {
        panic!("not an events plugin");
    };
    let events = factory(&ctx).unwrap();
    assert_eq!(events.name(), "nats");
    let topic = unique("table");
    events
        .publish(&topic, Bytes::from("hello"), PublishOptions::default())
        .await
        .unwrap();
    let read = events.read(&topic, ReadOptions::default()).await.unwrap();
    assert_eq!(read.len(), 1);
    events_cleanup(&topic).await;
}

async fn events_cleanup(topic: &str) {
    events().delete_topic(topic).await.unwrap();
}
