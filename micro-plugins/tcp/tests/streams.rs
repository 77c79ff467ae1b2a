//! Multiplexing, pooling and stream life-cycle behaviour of the TCP transport.

use bytes::Bytes;
use micro_core::transport::accept_streams;
use micro_core::transport::{Connection, DialOptions, Message, Stream, Transport};
use micro_tcp::{TcpTransport, TcpTransportOptions};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing after {DEADLINE:?}"))
}

/// Echoes every stream; reports each accepted stream's remote address.
async fn echo_server(
    t: &TcpTransport,
) -> (String, mpsc::UnboundedReceiver<String>, JoinHandle<()>) {
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let (remotes_tx, remotes) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(stream) = listener.accept().await {
            let _ = remotes_tx.send(stream.remote.clone());
            tokio::spawn(echo(stream));
        }
    });
    (address, remotes, task)
}

async fn echo(mut stream: Stream) {
    while let Some(Ok(frame)) = stream.receiver.recv().await {
        if stream.sender.send(frame).await.is_err() {
            return;
        }
    }
}

async fn wait_until(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !probe() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_streams_on_one_connection_keep_order() {
    let t = TcpTransport::default().with_pool(1, Duration::from_secs(60));
    let (address, mut remotes, _server) = echo_server(&t).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let t = t.clone();
            let address = address.clone();
            tokio::spawn(async move {
                let conn = t.dial(&address, DialOptions::default()).await.unwrap();
                let Stream {
                    sender,
                    mut receiver,
                    ..
                } = conn.open_stream().await.unwrap();
                let sending = tokio::spawn(async move {
                    for j in 0..100 {
                        let message =
                            Message::new(format!("{i}/{j}")).with_header("Stream", i.to_string());
                        sender.send(message).await.unwrap();
                    }
                });
                for j in 0..100 {
                    let frame = within("echo", receiver.recv()).await.unwrap().unwrap();
                    assert_eq!(frame.body, Bytes::from(format!("{i}/{j}")));
                    assert_eq!(frame.header("stream"), Some(i.to_string().as_str()));
                }
                sending.await.unwrap();
                assert!(within("end", receiver.recv()).await.is_none());
            })
        })
        .collect();
    for task in tasks {
        within("stream task", task).await.unwrap();
    }
    let mut peers = HashSet::new();
    while let Ok(remote) = remotes.try_recv() {
        peers.insert(remote);
    }
    assert_eq!(peers.len(), 1, "all streams on one connection: {peers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_round_robins_up_to_its_size() {
    let t = TcpTransport::default().with_pool(3, Duration::from_secs(60));
    let (address, _remotes, _server) = echo_server(&t).await;
    let mut conns = Vec::new();
    for _ in 0..9 {
        conns.push(t.connect(&address, DialOptions::default()).await.unwrap());
    }
    let mut distinct: Vec<&micro_tcp::TcpConnection> = Vec::new();
    for c in &conns {
        if !distinct.iter().any(|d| d.same_connection(c)) {
            distinct.push(c);
        }
    }
    assert_eq!(distinct.len(), 3);
    // Round-robin: the last six dials cycle through the three connections.
    for pair in conns[3..].windows(2) {
        assert!(!pair[0].same_connection(&pair[1]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_connections_are_replaced() {
    let t = TcpTransport::default();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let first = t.connect(&address, DialOptions::default()).await.unwrap();
    let mut stream = first.open_stream().await.unwrap();
    stream.sender.send(Message::new("x")).await.unwrap();
    let _server_side = within("accept", listener.accept()).await.unwrap();
    // Dropping the listener closes its connections: the open stream fails once, then ends.
    drop(listener);
    let got = within("error", stream.receiver.recv()).await;
    match got {
        Some(Err(error)) => assert_eq!(error.code, 503, "{error}"),
        other => panic!("expected a 503 error, got {other:?}"),
    }
    assert!(within("end", stream.receiver.recv()).await.is_none());
    wait_until("connection marked closed", || first.is_closed()).await;
    assert!(first.open_stream().await.is_err());
    // A new listener on another port; the pool replaces the broken connection per address.
    let (address2, _remotes, _server) = echo_server(&t).await;
    let second = t.connect(&address2, DialOptions::default()).await.unwrap();
    assert!(!second.is_closed());
    let dial_old = t.connect(&address, DialOptions::default()).await;
    assert_eq!(dial_old.map(|_| ()).unwrap_err().code, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_close_after_the_ttl() {
    let t = TcpTransport::default().with_pool(1, Duration::from_millis(50));
    let (address, _remotes, _server) = echo_server(&t).await;
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("x")).await.unwrap();
    within("echo", stream.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    drop(stream);
    wait_until("idle connection closed", || conn.is_closed()).await;
    let fresh = t.connect(&address, DialOptions::default()).await.unwrap();
    assert!(!fresh.same_connection(&conn));
}

#[tokio::test(flavor = "multi_thread")]
async fn unpooled_connection_closes_with_its_last_handle() {
    let t = TcpTransport::default().with_pool(0, Duration::ZERO);
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    let other = t.connect(&address, DialOptions::default()).await.unwrap();
    assert!(!conn.same_connection(&other));
    let stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("x")).await.unwrap();
    let mut server_side = within("accept", listener.accept()).await.unwrap();
    within("frame", server_side.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    // The stream still works after the handle is gone...
    server_side.sender.send(Message::new("y")).await.unwrap();
    let Stream {
        sender,
        mut receiver,
        ..
    } = stream;
    assert_eq!(
        within("reply", receiver.recv())
            .await
            .unwrap()
            .unwrap()
            .body,
        Bytes::from("y")
    );
    drop(sender);
    assert!(
        within("client end", server_side.receiver.recv())
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_send_fails_the_stream_with_413() {
    let t = TcpTransport::new(TcpTransportOptions {
        max_frame_size: 1024,
        ..TcpTransportOptions::default()
    });
    let (address, _remotes, _server) = echo_server(&t).await;
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream
        .sender
        .send(Message::new(vec![7u8; 4096]))
        .await
        .unwrap();
    match within("error", stream.receiver.recv()).await {
        Some(Err(error)) => assert_eq!(error.code, 413, "{error}"),
        other => panic!("expected 413, got {other:?}"),
    }
    assert!(within("end", stream.receiver.recv()).await.is_none());
    wait_until("sender stopped", || stream.sender.is_closed()).await;
    // The connection itself is fine.
    assert!(!conn.is_closed());
    let mut again = conn.open_stream().await.unwrap();
    again.sender.send(Message::new("small")).await.unwrap();
    assert_eq!(
        within("echo", again.receiver.recv())
            .await
            .unwrap()
            .unwrap()
            .body,
        Bytes::from("small")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_cross_intact() {
    let t = TcpTransport::default();
    let (address, _remotes, _server) = echo_server(&t).await;
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    let sizes = [
        0usize,
        1,
        16 * 1024 - 1,
        16 * 1024,
        100_000,
        1 << 20,
        4 * 1024 * 1024 - 64,
    ];
    let bodies: Vec<Bytes> = sizes
        .iter()
        .map(|&n| Bytes::from((0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>()))
        .collect();
    let sender = stream.sender.clone();
    let to_send = bodies.clone();
    tokio::spawn(async move {
        for body in to_send {
            sender
                .send(Message::new(body).with_header("H", "v"))
                .await
                .unwrap();
        }
    });
    for body in &bodies {
        let frame = within("echo", stream.receiver.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.body.len(), body.len());
        assert_eq!(&frame.body, body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_receiver_stops_the_peer_sending() {
    let t = TcpTransport::default();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    let stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("hello")).await.unwrap();
    let server_side = within("accept", listener.accept()).await.unwrap();
    // The client stops reading; the server keeps sending until its send fails.
    drop(stream.receiver);
    let sender = server_side.sender;
    within("server send fails", async {
        loop {
            if sender.send(Message::new("more")).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The client's own sends fail too: the stream is aborted.
    wait_until("client sender stopped", || stream.sender.is_closed()).await;
    // Other streams on the connection are unaffected.
    let other = conn.open_stream().await.unwrap();
    other.sender.send(Message::new("ok")).await.unwrap();
    let mut accepted = within("accept", listener.accept()).await.unwrap();
    let got = within("frame", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.body, Bytes::from("ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_refused_is_503_naming_the_address() {
    let t = TcpTransport::default();
    let address = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let err = t
        .dial(&address, DialOptions::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code, 503);
    assert!(err.detail.contains(&address), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_opened_and_closed_without_frames_never_reaches_the_server() {
    let t = TcpTransport::default();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    let empty = conn.open_stream().await.unwrap();
    drop(empty.sender);
    // An exchange starts with its opening frame: the next stream is the first one served.
    let next = conn.open_stream().await.unwrap();
    next.sender.send(Message::new("open")).await.unwrap();
    let mut accepted = within("accept", listener.accept()).await.unwrap();
    let first = within("first", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.body, Bytes::from("open"));
    accepted.sender.send(Message::new("late")).await.unwrap();
    let mut receiver = next.receiver;
    assert_eq!(
        within("reply", receiver.recv())
            .await
            .unwrap()
            .unwrap()
            .body,
        Bytes::from("late")
    );
}

/// Builds the plugin's transport from configuration values.
fn build(
    overrides: serde_json::Value,
    env: &[(&str, &str)],
) -> micro_core::Result<Arc<dyn Transport>> {
    use micro_core::config::{Outcome, Sources, load};
    use micro_core::plugin::{Components, PluginContext, PluginFactory, ServiceInfo};
    let plugins = micro_tcp::plugins();
    let sources = Sources {
        no_flags: true,
        overrides,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Sources::default()
    };
    let Outcome::Loaded(loaded) = load(plugins.schema(), &sources)? else {
        panic!("configuration not loaded");
    };
    let plugin = plugins.find("transport", "tcp")?;
    let PluginFactory::Transport(factory) = &plugin.factory else {
        panic!("not a transport plugin");
    };
    factory(&PluginContext {
        section: "transport",
        config: &*loaded,
        logger: micro_core::logger::Logger::none(),
        components: &Components::default(),
        service: &ServiceInfo::default(),
        middleware: &Default::default(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_builds_from_config() {
    let defaults = TcpTransportOptions::default();
    assert_eq!(defaults.max_frame_size, 4 * 1024 * 1024);
    assert_eq!(defaults.dial_timeout, Duration::from_secs(5));
    let t = build(
        serde_json::json!({
            "transport": {"plugin": "tcp", "max_frame_size": 65536, "dial_timeout": "2s"},
            "client": {"pool_size": 2, "pool_ttl": "30s"},
        }),
        &[],
    )
    .unwrap();
    assert_eq!(t.name(), "tcp");
    let (address, _remotes, _server) = echo_server(&TcpTransport::default()).await;
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream
        .sender
        .send(Message::new("configured"))
        .await
        .unwrap();
    let reply = within("echo", stream.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.body, Bytes::from("configured"));

    let too_small = build(
        serde_json::json!({"transport": {"max_frame_size": 100}}),
        &[],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(too_small.detail.contains("max_frame_size"), "{too_small}");
    let from_env = build(
        serde_json::Value::Null,
        &[("MICRO_TRANSPORT_MAX_FRAME_SIZE", "10")],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(from_env.detail.contains("max_frame_size"), "{from_env}");
}

#[test]
fn limits_have_defaults_and_zero_counts_are_rejected() {
    let defaults = TcpTransportOptions::default();
    assert_eq!(defaults.max_streams, 1024);
    assert_eq!(defaults.max_unary, 256);
    assert_eq!(defaults.first_message_timeout, Duration::from_secs(10));
    assert_eq!(defaults.idle_timeout, Duration::from_secs(300));
    assert_eq!(defaults.read_timeout, Duration::from_secs(30));
    for key in ["max_streams", "max_unary"] {
        let error = build(serde_json::json!({"transport": {key: 0}}), &[])
            .map(|_| ())
            .unwrap_err();
        assert!(
            error.detail.contains(&format!("transport.{key}")),
            "{error}"
        );
    }
    // 0 = never for the time limits.
    build(
        serde_json::json!({"transport": {
            "first_message_timeout": "0s", "idle_timeout": "0s", "read_timeout": "0s",
            "max_streams": 1, "max_unary": 1,
        }}),
        &[],
    )
    .unwrap();
    let from_env = build(
        serde_json::Value::Null,
        &[("MICRO_TRANSPORT_MAX_STREAMS", "0")],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(from_env.detail.contains("max_streams"), "{from_env}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_stream_after_its_end_still_stops_the_peer() {
    let t = TcpTransport::default();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("first")).await.unwrap();
    let server_side = within("accept", listener.accept()).await.unwrap();
    // The server answers, ends its side (END) and drops the stream altogether.
    server_side.sender.send(Message::new("bye")).await.unwrap();
    drop(server_side);
    assert_eq!(
        within("reply", stream.receiver.recv())
            .await
            .unwrap()
            .unwrap()
            .body,
        Bytes::from("bye")
    );
    assert!(within("end", stream.receiver.recv()).await.is_none());
    // The client keeps sending: the server resets the stream and the client's sends fail.
    within("client send fails", async {
        while stream.sender.send(Message::new("more")).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Both sides forgot the stream; the connection carries on.
    let mut next = conn.open_stream().await.unwrap();
    next.sender.send(Message::new("next")).await.unwrap();
    let mut accepted = within("accept", listener.accept()).await.unwrap();
    let got = within("frame", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.body, Bytes::from("next"));
    accepted.sender.send(Message::new("ok")).await.unwrap();
    assert_eq!(
        within("echo", next.receiver.recv())
            .await
            .unwrap()
            .unwrap()
            .body,
        Bytes::from("ok")
    );
}
