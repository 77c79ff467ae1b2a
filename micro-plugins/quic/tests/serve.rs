//! The serving side of the quic transport: draining refuses new connections and keeps the
//! open streams working; dropping the listener fails them with 503; frames over the limit;
//! dials to nobody; 0-RTT.

mod common;

use micro_conformance::support::{eventually, within};
use micro_core::transport::Connection;
use micro_core::transport::{DialOptions, Exchange, ExchangeHandler, Message, Serving, Transport};
use micro_quic::{QuicTransport, QuicTransportOptions};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn drain_refuses_new_connections_and_keeps_open_streams() {
    let server = common::transport(QuicTransportOptions::default());
    let (tx, mut streams) = tokio::sync::mpsc::channel(8);
    let handler: ExchangeHandler = Arc::new(move |exchange: Exchange| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(exchange.into_stream()).await;
        })
    });
    let serving = Serving::start(server.listen("127.0.0.1:0").await.unwrap(), handler);
    let address = serving.address();
    let conn = server.dial(&address, DialOptions::default()).await.unwrap();
    let mut client = conn.open_stream().await.unwrap();
    client.sender.send(Message::new("one")).await.unwrap();
    let mut accepted = within("accept", streams.recv()).await.unwrap();
    let one = within("one", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.body, "one");

    serving.drain();
    // Another client (another connection) is refused.
    let other = common::transport(QuicTransportOptions {
        insecure_skip_verify: true,
        ..Default::default()
    });
    let error = eventually("new connections kept being accepted", || async {
        other.dial(&address, DialOptions::default()).await.err()
    })
    .await;
    assert_eq!(error.code, 503, "{error}");
    assert!(error.detail.contains("stopping"), "{error}");

    // The open stream still works both ways.
    client.sender.send(Message::new("two")).await.unwrap();
    let two = within("two", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(two.body, "two");
    accepted.sender.send(Message::new("back")).await.unwrap();
    let back = within("back", client.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.body, "back");

    // Dropping the listener fails the open stream with 503.
    drop(serving);
    match within("the stream's end", client.receiver.recv()).await {
        Some(Err(error)) => assert_eq!(error.code, 503, "{error}"),
        other => panic!("expected a 503, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_before_sending() {
    let server = common::transport(QuicTransportOptions {
        max_frame_size: 1024,
        ..Default::default()
    });
    let serving = Serving::start(
        server.listen("127.0.0.1:0").await.unwrap(),
        Arc::new(|_: Exchange| Box::pin(async {})),
    );
    let conn = server
        .dial(&serving.address(), DialOptions::default())
        .await
        .unwrap();
    let stream = conn.open_stream().await.unwrap();
    let error = stream
        .sender
        .send(Message::new(vec![0u8; 4096]))
        .await
        .unwrap_err();
    assert_eq!(error.code, 413, "{error}");
}

#[tokio::test]
async fn a_dial_to_nobody_fails_after_the_dial_timeout_saying_so() {
    let t = common::transport(QuicTransportOptions {
        dial_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    // A UDP port that was free a moment ago.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap().to_string();
    drop(socket);
    let error = t
        .connect(&address, DialOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.code, 503, "{error}");
    assert!(error.detail.contains("no QUIC handshake answer"), "{error}");
}

fn zero_rtt() -> QuicTransportOptions {
    QuicTransportOptions {
        zero_rtt: true,
        dial_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

async fn echo_server(t: &QuicTransport) -> Serving {
    let handler: ExchangeHandler = Arc::new(|exchange: Exchange| {
        Box::pin(async move {
            let body = exchange.first.body.clone();
            let _ = exchange.stream.sender.send(Message::new(body)).await;
        })
    });
    Serving::start(t.listen("127.0.0.1:0").await.unwrap(), handler)
}

/// With 0-RTT on, calls work; once the server is gone, a new connection to it resumes the
/// session in 0-RTT (usable at once), and its call fails with a retryable 503 saying the
/// 0-RTT data was not accepted, quickly (here the closed port's ICMP error ends it; a
/// server that silently drops packets is cut off by the `dial_timeout` watchdog, which no
/// test shows).
#[tokio::test]
async fn zero_rtt_calls_work_and_a_dead_server_fails_within_the_dial_timeout() {
    let t = common::transport(zero_rtt());
    let serving = echo_server(&t).await;
    let address = serving.address();
    let conn = t.connect(&address, DialOptions::default()).await.unwrap();
    for _ in 0..3 {
        let answer = Connection::call(&conn, Message::new("hi")).await.unwrap();
        assert_eq!(answer.body, "hi");
    }
    // Session tickets come after the handshake; give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(serving);
    eventually("the connection to see the server go", || async {
        Connection::is_closed(&conn).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let error = within("a call to the dead server", async {
        let conn = t.connect(&address, DialOptions::default()).await?;
        Connection::call(&conn, Message::new("hi")).await
    })
    .await
    .unwrap_err();
    assert_eq!(error.code, 503, "{error}");
    assert!(
        error.detail.contains("0-RTT data"),
        "the call went in 0-RTT: {error}"
    );
    assert!(error.retryable, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}: {error}",
        started.elapsed()
    );
}

/// A server that drops its receiver stops the client's sending (QUIC STOP_SENDING): the
/// client's next sends fail with "stream closed by peer", and its sender reports closed.
#[tokio::test]
async fn a_dropped_receiver_stops_the_peer_sending() {
    let server = common::transport(QuicTransportOptions::default());
    let handler: ExchangeHandler = Arc::new(|exchange: Exchange| {
        Box::pin(async move {
            let micro_core::transport::Stream {
                sender, receiver, ..
            } = exchange.stream;
            drop(receiver);
            // Keep the sending half open meanwhile: only the receiving half is gone.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(sender);
        })
    });
    let serving = Serving::start(server.listen("127.0.0.1:0").await.unwrap(), handler);
    let conn = server
        .dial(&serving.address(), DialOptions::default())
        .await
        .unwrap();
    let stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("first")).await.unwrap();
    let error = eventually(
        "sends kept succeeding after the peer dropped its receiver",
        || {
            let sender = stream.sender.clone();
            async move { sender.send(Message::new("more")).await.err() }
        },
    )
    .await;
    assert_eq!(error.code, 503, "{error}");
    assert!(error.detail.contains("stream closed by peer"), "{error}");
    assert!(stream.sender.is_closed());
    within("closed()", stream.sender.closed()).await;
}
