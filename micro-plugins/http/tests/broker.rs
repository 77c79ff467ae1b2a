//! The `http` broker: the broker conformance suite, brokers sharing one registry, a
//! subscriber in another process (through the `local` registry), dead and failing queue
//! members, registration, the wire format, and the plugin.
//!
//! The cross-process test is in `broker/processes.rs`.

#[path = "broker/processes.rs"]
mod processes;

use micro_core::broker::{Broker, Delivery, Message, SubscribeOptions, Subscriber, handler};
use micro_core::registry::{Node, RegisterOptions, Registry, Service};
use micro_core::{Error, NoPlugins};
use micro_http::broker::{SERVICE, SUBSCRIBER_HEADER};
use micro_http::{HttpBroker, HttpBrokerOptions};
use micro_memory::MemoryRegistry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
// The suites' helpers, so this crate waits as long as the suites do.
use micro_conformance::support::{GRACE, eventually, unique, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

type Sink = mpsc::UnboundedSender<(usize, Delivery)>;
type Inbox = mpsc::UnboundedReceiver<(usize, Delivery)>;

fn broker(registry: &Arc<dyn Registry>) -> HttpBroker {
    HttpBroker::new(registry.clone(), HttpBrokerOptions::default())
}

fn memory() -> Arc<dyn Registry> {
    Arc::new(MemoryRegistry::new())
}

/// Subscribes a handler that tags each delivery with `tag` and sends it to `sink`.
async fn collect(
    b: &HttpBroker,
    topic: &str,
    options: SubscribeOptions,
    tag: usize,
    sink: Sink,
) -> Box<dyn Subscriber> {
    let h = handler(move |d: Delivery| {
        let sink = sink.clone();
        async move {
            let _ = sink.send((tag, d));
            Ok(())
        }
    });
    b.subscribe(topic, h, options).await.unwrap()
}

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.message.body).into_owned()
}

async fn take(rx: &mut Inbox, n: usize) -> Vec<(usize, Delivery)> {
    let mut got = Vec::new();
    while got.len() < n {
        let what = format!("got {} of {n} deliveries", got.len());
        got.push(within(&what, rx.recv()).await.expect("channel open"));
    }
    got
}

async fn nothing_more(rx: &mut Inbox) {
    tokio::time::sleep(GRACE).await;
    if let Ok((tag, d)) = rx.try_recv() {
        panic!("unexpected extra delivery to {tag}: {d:?}");
    }
}

async fn publish_n(b: &HttpBroker, topic: &str, n: usize) {
    for i in 0..n {
        b.publish(topic, Message::new(format!("message {i}")))
            .await
            .unwrap_or_else(|e| panic!("publish {i}: {e}"));
    }
}

fn all_messages(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("message {i}")).collect()
}

/// The registry nodes of the broker's subscribers on `topic`.
async fn nodes_of(registry: &Arc<dyn Registry>, topic: &str) -> Vec<Node> {
    let services = registry.get_service(SERVICE).await.unwrap_or_default();
    let mut nodes: Vec<Node> = services
        .into_iter()
        .flat_map(|s| s.nodes)
        .filter(|n| n.metadata.get("topic").map(String::as_str) == Some(topic))
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    nodes
}

micro_conformance::broker_suite!(async || Arc::new(broker(&memory())) as Arc<dyn Broker>);

#[tokio::test(flavor = "multi_thread")]
async fn two_brokers_share_queue_groups_and_broadcast() {
    let registry = memory();
    let (a, b, publisher) = (broker(&registry), broker(&registry), broker(&registry));
    let topic = unique("shared");
    let (group_tx, mut group_rx) = mpsc::unbounded_channel();
    let (all_tx, mut all_rx) = mpsc::unbounded_channel();
    let _subs = [
        collect(
            &a,
            &topic,
            SubscribeOptions::default().queue("q"),
            0,
            group_tx.clone(),
        )
        .await,
        collect(
            &b,
            &topic,
            SubscribeOptions::default().queue("q"),
            1,
            group_tx,
        )
        .await,
        collect(&a, &topic, SubscribeOptions::default(), 0, all_tx.clone()).await,
        collect(&b, &topic, SubscribeOptions::default(), 1, all_tx).await,
    ];
    publish_n(&publisher, &topic, 20).await;

    let group = take(&mut group_rx, 20).await;
    let bodies: Vec<String> = group.iter().map(|(_, d)| text(d)).collect();
    assert_eq!(bodies.len(), 20);
    assert_eq!(
        bodies.into_iter().collect::<BTreeSet<_>>(),
        all_messages(20)
    );
    for tag in 0..2 {
        assert!(
            group.iter().any(|(t, _)| *t == tag),
            "round robin reaches member {tag}"
        );
    }
    let all = take(&mut all_rx, 40).await;
    for tag in 0..2 {
        let seen: Vec<String> = all
            .iter()
            .filter(|(t, _)| *t == tag)
            .map(|(_, d)| text(d))
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("message {i}")).collect();
        assert_eq!(seen, expected, "broadcast subscriber on broker {tag}");
    }
    nothing_more(&mut group_rx).await;
    nothing_more(&mut all_rx).await;
    for x in [&a, &b, &publisher] {
        x.disconnect().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_are_registered_and_deregistered() {
    let registry = memory();
    let b = broker(&registry).with_id("reg-test");
    let topic = unique("registration");
    let (tx, _rx) = mpsc::unbounded_channel();
    let queued = collect(
        &b,
        &topic,
        SubscribeOptions::default().queue("workers"),
        0,
        tx.clone(),
    )
    .await;
    let _plain = collect(&b, &topic, SubscribeOptions::default(), 1, tx).await;

    let nodes = nodes_of(&registry, &topic).await;
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let mut queues: Vec<&str> = nodes.iter().map(|n| n.metadata["queue"].as_str()).collect();
    queues.sort();
    assert_eq!(queues, ["", "workers"]);
    for node in &nodes {
        assert!(node.id.starts_with("reg-test-"), "{}", node.id);
        assert_eq!(node.address, b.address(), "registered address");
        assert!(node.address.starts_with("127.0.0.1:"), "{}", node.address);
        assert_eq!(node.metadata["broker"], "http");
        assert_eq!(node.metadata["id"], node.id);
    }
    assert_ne!(nodes[0].id, nodes[1].id);

    queued.unsubscribe().await.unwrap();
    queued.unsubscribe().await.unwrap(); // twice is fine
    let left = nodes_of(&registry, &topic).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].metadata["queue"], "");

    b.disconnect().await.unwrap();
    assert!(nodes_of(&registry, &topic).await.is_empty());
    // Nobody left: publishing succeeds.
    b.publish(&topic, Message::new("x")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_queue_members_do_not_lose_messages() {
    let registry = memory();
    let live = broker(&registry);
    let topic = unique("dead");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _live = collect(
        &live,
        &topic,
        SubscribeOptions::default().queue("q"),
        0,
        tx.clone(),
    )
    .await;

    // A registration whose server is gone: a port that was bound and released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_address = closed.local_addr().unwrap().to_string();
    drop(closed);
    for (i, queue) in ["q", "q", ""].iter().enumerate() {
        let node = Node {
            id: format!("dead-{i}"),
            address: dead_address.clone(),
            metadata: BTreeMap::from([
                ("topic".to_string(), topic.clone()),
                ("queue".to_string(), queue.to_string()),
            ]),
        };
        let service = Service {
            name: SERVICE.into(),
            version: "latest".into(),
            nodes: vec![node],
            ..Default::default()
        };
        registry
            .register(&service, RegisterOptions::default())
            .await
            .unwrap();
    }
    // A broker that crashed: dropped without disconnecting, so its node stays registered.
    let crashed = broker(&registry);
    let crashed_sub = collect(
        &crashed,
        &topic,
        SubscribeOptions::default().queue("q"),
        1,
        tx,
    )
    .await;
    drop(crashed_sub);
    drop(crashed);
    assert_eq!(nodes_of(&registry, &topic).await.len(), 5);

    let publisher = broker(&registry);
    publish_n(&publisher, &topic, 12).await;
    let got = take(&mut rx, 12).await;
    assert!(got.iter().all(|(tag, _)| *tag == 0), "only the live member");
    let bodies: BTreeSet<String> = got.iter().map(|(_, d)| text(d)).collect();
    assert_eq!(bodies, all_messages(12));
    nothing_more(&mut rx).await;
    live.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_handlers_pass_queue_messages_on() {
    let registry = memory();
    let b = broker(&registry);
    let topic = unique("nack");
    let failing = handler(|_d: Delivery| async { Err(Error::internal("test", "no thanks")) });
    let _bad = b
        .subscribe(
            &topic,
            failing.clone(),
            SubscribeOptions::default().queue("q"),
        )
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _good = collect(&b, &topic, SubscribeOptions::default().queue("q"), 0, tx).await;
    publish_n(&b, &topic, 6).await;
    let bodies: BTreeSet<String> = take(&mut rx, 6)
        .await
        .iter()
        .map(|(_, d)| text(d))
        .collect();
    assert_eq!(bodies, all_messages(6));

    // A group whose only member fails: publish reports it.
    let lonely = unique("nack-lonely");
    let _only = b
        .subscribe(&lonely, failing, SubscribeOptions::default().queue("q"))
        .await
        .unwrap();
    let err = b.publish(&lonely, Message::new("x")).await.unwrap_err();
    assert_eq!(err.code, 500, "{err}");
    assert!(err.detail.contains("no thanks"), "{err}");
    b.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_subscriber_expires_and_a_live_one_stays() {
    let registry = memory();
    let ttl = Duration::from_secs(1);
    let refresh = Duration::from_millis(100);
    let live = broker(&registry).with_registration(ttl, refresh);
    let crashed = broker(&registry).with_registration(ttl, refresh);
    let topic = unique("expiry");
    let (tx, _rx) = mpsc::unbounded_channel();
    let _live = collect(&live, &topic, SubscribeOptions::default(), 0, tx.clone()).await;
    let sub = collect(&crashed, &topic, SubscribeOptions::default(), 1, tx).await;
    let crashed_prefix = format!("{}-", crashed.id());
    drop(sub);
    drop(crashed);
    eventually("the crashed subscriber's node expires", || async {
        let nodes = nodes_of(&registry, &topic).await;
        (!nodes.iter().any(|n| n.id.starts_with(&crashed_prefix))).then_some(())
    })
    .await;
    // The live one is refreshed well within its TTL.
    tokio::time::sleep(ttl * 2).await;
    let nodes = nodes_of(&registry, &topic).await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert!(nodes[0].id.starts_with(live.id()));
    live.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_refuses_what_http_cannot_carry() {
    let registry = memory();
    let options = HttpBrokerOptions {
        max_body_size: 16,
        ..Default::default()
    };
    let b = HttpBroker::new(registry.clone(), options);
    let topic = unique("refused");
    for (key, value) in [
        ("X-Bad", "a\nb"),
        ("Connection", "close"),
        ("Bad Name", "v"),
    ] {
        let err = b
            .publish(&topic, Message::new("x").with_header(key, value))
            .await
            .unwrap_err();
        assert_eq!(err.code, 400, "{key}: {err}");
    }
    let err = b
        .publish(&topic, Message::new(vec![0u8; 17]))
        .await
        .unwrap_err();
    assert_eq!(err.code, 413, "{err}");

    // A subscriber with a smaller limit than the publisher answers 413.
    let (tx, _rx) = mpsc::unbounded_channel();
    let _sub = collect(&b, &topic, SubscribeOptions::default().queue("q"), 0, tx).await;
    let big = broker(&registry);
    let err = big
        .publish(&topic, Message::new(vec![1u8; 100]))
        .await
        .unwrap_err();
    assert_eq!(err.code, 413, "{err}");
    b.disconnect().await.unwrap();
}

/// One HTTP/1.1 exchange on a fresh connection: (status, head, body).
async fn http1(address: &str, request: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = within("response", stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn post(headers: &[(&str, &str)], body: &str) -> String {
    let mut request = String::from("POST / HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn wire_format_and_bad_requests() {
    let registry = memory();
    let b = broker(&registry);
    let topic = unique("wire");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = collect(&b, &topic, SubscribeOptions::default(), 0, tx).await;
    let failing = unique("wire-fail");
    let h = handler(|_d: Delivery| async { Err(Error::bad_request("test", "refused")) });
    let _fail = b
        .subscribe(&failing, h, SubscribeOptions::default())
        .await
        .unwrap();
    let address = b.address();
    let id = nodes_of(&registry, &topic).await[0].id.clone();
    let fail_id = nodes_of(&registry, &failing).await[0].id.clone();

    let (status, head, _) = http1(
        &address,
        "GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert!(head.to_ascii_lowercase().contains("allow: post"), "{head}");

    let (status, _, body) = http1(&address, &post(&[], "x")).await;
    assert_eq!(status, 400);
    assert!(body.contains(SUBSCRIBER_HEADER), "{body}");

    let (status, head, body) = http1(&address, &post(&[(SUBSCRIBER_HEADER, "nobody")], "x")).await;
    assert_eq!(status, 404, "{head}");
    let err = Error::parse(&body);
    assert_eq!((err.id.as_str(), err.code), ("go.micro.broker", 404));
    assert!(head.to_ascii_lowercase().contains("micro-error:"), "{head}");

    let wrong = post(&[(SUBSCRIBER_HEADER, &id), ("Micro-Topic", "other")], "x");
    assert_eq!(http1(&address, &wrong).await.0, 400);

    // Junk on a connection does not harm the server.
    let (status, _, _) = http1(&address, "NOT HTTP AT ALL\r\n\r\n").await;
    assert!(status == 0 || status == 400, "{status}");

    let headers = [
        (SUBSCRIBER_HEADER, id.as_str()),
        ("Micro-Topic", topic.as_str()),
        ("Content-Type", "application/json"),
        ("x-custom", "v"),
    ];
    let (status, head, _) = http1(&address, &post(&headers, "{\"a\":1}")).await;
    assert_eq!(status, 200, "{head}");
    let (_, d) = take(&mut rx, 1).await.remove(0);
    assert_eq!(d.topic, topic);
    assert_eq!(text(&d), "{\"a\":1}");
    assert_eq!(d.message.header["Content-Type"], "application/json");
    assert_eq!(d.message.header["X-Custom"], "v");
    assert_eq!(d.message.header["Micro-Topic"], topic);
    assert!(!d.message.header.contains_key(SUBSCRIBER_HEADER));

    // Without Micro-Topic the subscription's topic is used.
    let (status, _, _) = http1(&address, &post(&[(SUBSCRIBER_HEADER, &id)], "y")).await;
    assert_eq!(status, 200);
    assert_eq!(take(&mut rx, 1).await[0].1.topic, topic);

    let (status, _, body) = http1(&address, &post(&[(SUBSCRIBER_HEADER, &fail_id)], "z")).await;
    assert_eq!(status, 500);
    let err = Error::parse(&body);
    assert_eq!(err.code, 500);
    assert!(err.detail.contains("refused"), "{body}");
    b.disconnect().await.unwrap();
}

fn service_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let off = [
        "selector",
        "transport",
        "store",
        "events",
        "sync",
        "client",
        "server",
    ];
    let mut env: Vec<(String, String)> = off
        .iter()
        .map(|c| {
            (
                format!("MICRO_{}_ENABLED", c.to_uppercase()),
                "false".into(),
            )
        })
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_builds_from_config_and_needs_a_registry() {
    let registry = memory();
    let built = micro_core::Service::<NoPlugins>::builder()
        .name("plugin-test")
        .args(["plugin-test"])
        .env(service_env(&[
            ("MICRO_BROKER_PUBLISH_TIMEOUT", "2s"),
            ("MICRO_BROKER_ADDRESS", "127.0.0.1:0"),
        ]))
        .plugins(micro_http::plugins())
        .registry(registry.clone())
        .try_build()
        .unwrap_or_else(|e| panic!("{e}"));
    let micro_core::Built::Service(service) = built else {
        panic!("expected a service")
    };
    let b = service.components().broker.clone().expect("a broker");
    assert_eq!(b.name(), "http");
    let topic = unique("plugin");
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let h = handler(move |d: Delivery| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(d);
            Ok(())
        }
    });
    let _sub = b
        .subscribe(&topic, h, SubscribeOptions::default())
        .await
        .unwrap();
    let nodes = nodes_of(&registry, &topic).await;
    assert!(nodes[0].id.starts_with(service.id()), "{}", nodes[0].id);
    b.publish(&topic, Message::new("hi")).await.unwrap();
    assert_eq!(
        within("delivery", rx.recv()).await.unwrap().message.body,
        "hi"
    );
    b.disconnect().await.unwrap();

    let err = micro_core::Service::<NoPlugins>::builder()
        .name("plugin-test")
        .args(["plugin-test"])
        .env(service_env(&[("MICRO_REGISTRY_ENABLED", "false")]))
        .plugins(micro_http::plugins())
        .try_build()
        .err()
        .expect("no registry: the build fails");
    let text = err.to_string();
    assert!(
        text.contains("registry") && text.contains("enable"),
        "{text}"
    );
}
