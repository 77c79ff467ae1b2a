//! The HTTP transport's own client against its listener: streaming shapes over h2c, the
//! plain-unary client mode, dial and connection failures, listener shutdown, config.

mod common;

use bytes::Bytes;
use common::*;
use micro_core::config::{Outcome, Sources, load};
use micro_core::transport::{DialOptions, Message, Transport};
use micro_http::{HttpTransport, HttpTransportOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn server_client_and_bidi_streaming() {
    let t = transport(4 << 20);
    let listener = listen(&t).await;
    let address = listener.address();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(listener, move |mut stream| {
        let seen_tx = seen_tx.clone();
        async move {
            let Some(Ok(first)) = stream.receiver.recv().await else {
                return;
            };
            let _ = seen_tx.send(first.clone());
            match first.header("Micro-Endpoint") {
                // Server streaming: five replies to one request.
                Some("Counter.Count") => {
                    for i in 0..5 {
                        let _ = stream.sender.send(Message::new(format!("tick {i}"))).await;
                    }
                }
                // Client streaming: one reply once the client ends.
                Some("Counter.Sum") => {
                    let mut total = first.body.len();
                    while let Some(Ok(frame)) = stream.receiver.recv().await {
                        total += frame.body.len();
                    }
                    let _ = stream.sender.send(Message::new(total.to_string())).await;
                }
                // Bidirectional: echo each frame as it comes.
                _ => {
                    let _ = stream.sender.send(first).await;
                    while let Some(Ok(frame)) = stream.receiver.recv().await {
                        if stream.sender.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();

    let mut count = conn.open_stream().await.unwrap();
    let request = Message::new("{}")
        .with_header("Micro-Endpoint", "Counter.Count")
        .with_header("Micro-Stream", "count-1")
        .with_header("x-lower-case", "kept");
    count.sender.send(request).await.unwrap();
    for i in 0..5 {
        let frame = within("tick", count.receiver.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.body, Bytes::from(format!("tick {i}")));
    }
    assert!(within("end", count.receiver.recv()).await.is_none());
    let first = within("server saw the request", seen.recv()).await.unwrap();
    // Frame headers travel exactly: keys as sent, nothing added.
    assert_eq!(first.header.len(), 3, "{first:?}");
    let exact = |key: &str| first.header.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    assert_eq!(exact("x-lower-case"), Some("kept"));
    assert_eq!(exact("Micro-Stream"), Some("count-1"));

    let mut sum = conn.open_stream().await.unwrap();
    sum.sender
        .send(Message::new("ab").with_header("Micro-Endpoint", "Counter.Sum"))
        .await
        .unwrap();
    for _ in 0..4 {
        sum.sender.send(Message::new("abc")).await.unwrap();
    }
    sum.sender.close();
    let reply = within("sum", sum.receiver.recv()).await.unwrap().unwrap();
    assert_eq!(reply.body, Bytes::from("14"));
    assert!(within("end", sum.receiver.recv()).await.is_none());
    let first = within("server saw the request", seen.recv()).await.unwrap();
    assert!(
        first.header("Micro-Stream").is_none(),
        "no header is injected: {first:?}"
    );

    let mut chat = conn.open_stream().await.unwrap();
    for i in 0..10 {
        let body = Bytes::from(vec![i as u8; 100_000 * (i % 3)]);
        chat.sender.send(Message::new(body.clone())).await.unwrap();
        let echo = within("echo", chat.receiver.recv()).await.unwrap().unwrap();
        assert_eq!(echo.body, body, "frame {i}");
    }
    drop(chat.sender);
    assert!(within("end", chat.receiver.recv()).await.is_none());
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_unary_client_mode() {
    let server_side = transport(64);
    let listener = listen(&server_side).await;
    let address = listener.address();
    let (server, mut seen) = greeter(listener);
    let t = HttpTransport::new(HttpTransportOptions {
        plain_unary: true,
        ..HttpTransportOptions::default()
    });
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();

    let mut stream = conn.open_stream().await.unwrap();
    let request = Message::new(r#"{"name":"John"}"#)
        .with_header("Micro-Endpoint", "Greeter.Hello")
        .with_header("Content-Type", "application/json");
    stream.sender.send(request).await.unwrap();
    let reply = within("reply", stream.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.body, Bytes::from(HELLO));
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert!(within("end", stream.receiver.recv()).await.is_none());
    // One request per plain exchange: later sends fail.
    assert!(stream.sender.send(Message::new("more")).await.is_err());
    let first = within("server saw it", seen.recv()).await.unwrap();
    assert_eq!(first.body, Bytes::from(r#"{"name":"John"}"#));
    assert!(first.header("Micro-Stream").is_none());

    // The server refuses the body (limit 64): the status becomes a Micro-Error frame.
    let mut stream = conn.open_stream().await.unwrap();
    stream
        .sender
        .send(Message::new(vec![b'x'; 100]))
        .await
        .unwrap();
    let reply = within("reply", stream.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    let err = micro_core::Error::parse(reply.header("Micro-Error").expect("Micro-Error"));
    assert_eq!(err.code, 413);
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn dial_refused_names_the_address() {
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = free.local_addr().unwrap().to_string();
    drop(free);
    let err = transport(1024)
        .dial(&address, DialOptions::default())
        .await
        .err()
        .expect("nobody listens");
    assert_eq!(err.code, 503, "{err}");
    assert!(err.detail.contains(&address), "{err}");

    let err = transport(1024)
        .dial("not an address", DialOptions::default())
        .await
        .err()
        .expect("bad address");
    assert!(err.code >= 400, "{err}");
}

/// Reads HTTP/2 frames from a raw socket until the client's first HEADERS frame.
async fn read_until_headers(socket: &mut tokio::net::TcpStream) {
    let mut preface = [0u8; 24];
    socket.read_exact(&mut preface).await.unwrap();
    loop {
        let mut head = [0u8; 9];
        socket.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        socket.read_exact(&mut payload).await.unwrap();
        if head[3] == 0x1 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_connection_fails_streams_once() {
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = raw.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let (mut socket, _) = raw.accept().await.unwrap();
        // An empty SETTINGS frame, as a real server would start.
        socket
            .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        read_until_headers(&mut socket).await;
        // Then the server dies.
        drop(socket);
        raw
    });
    let t = transport(1024);
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("hello")).await.unwrap();
    let err = within("error", stream.receiver.recv())
        .await
        .expect("an error before the end")
        .expect_err("no reply can come");
    assert_eq!(err.code, 503, "{err}");
    assert!(within("end", stream.receiver.recv()).await.is_none());
    let _raw = within("peer", peer).await.unwrap();
    // The connection is known to be broken: it is not handed out again.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !conn.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection never marked closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(conn.open_stream().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_listener_keeps_accepted_streams() {
    let t = transport(4 << 20);
    let mut listener = micro_core::transport::accept_streams(listen(&t).await);
    let address = listener.address();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let mut client = conn.open_stream().await.unwrap();
    client.sender.send(Message::new("one")).await.unwrap();
    let mut accepted = within("accept", listener.accept()).await.unwrap();
    drop(listener);

    let frame = within("first", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    accepted.sender.send(frame).await.unwrap();
    client.sender.send(Message::new("two")).await.unwrap();
    let frame = within("second", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    accepted.sender.send(frame).await.unwrap();
    for body in ["one", "two"] {
        let echo = within("echo", client.receiver.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo.body, Bytes::from(body));
    }
    // No new streams on the shut-down connection, and no new connections.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let refused = match t.dial(&address, DialOptions::default()).await {
            Err(err) => Some(err),
            Ok(conn) => conn.open_stream().await.err(),
        };
        if let Some(err) = refused {
            assert!(err.code >= 500, "{err}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "new streams still opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client.sender);
    drop(accepted.sender);
    assert!(within("end", client.receiver.recv()).await.is_none());
    assert!(within("end", accepted.receiver.recv()).await.is_none());
}

#[test]
fn options_come_from_config() {
    let sources = Sources {
        args: [
            "svc",
            "--transport",
            "http",
            "--transport_max_body_size",
            "1024",
            "--transport_dial_timeout",
            "2s",
            "--transport_plain_unary",
            "--transport_read_timeout",
            "250ms",
            "--transport_idle_timeout",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Sources::default()
    };
    let Outcome::Loaded(loaded) = load(micro_http::plugins().schema(), &sources).unwrap() else {
        panic!("expected a loaded config");
    };
    let options: HttpTransportOptions = loaded.section().unwrap();
    assert_eq!(options.max_body_size, 1024);
    assert_eq!(options.dial_timeout, Duration::from_secs(2));
    assert!(options.plain_unary);
    assert_eq!(options.read_timeout, Duration::from_millis(250));
    assert_eq!(options.idle_timeout, Duration::ZERO);
    let defaults = HttpTransportOptions::default();
    assert_eq!(defaults.max_body_size, 4 * 1024 * 1024);
    assert_eq!(defaults.dial_timeout, Duration::from_secs(5));
    assert!(!defaults.plain_unary);
    // The tcp transport's names and defaults: both read the `transport:` section.
    assert_eq!(defaults.read_timeout, Duration::from_secs(30));
    assert_eq!(defaults.idle_timeout, Duration::from_secs(300));
    assert!(micro_http::plugins().find("transport", "http").is_ok());
}
