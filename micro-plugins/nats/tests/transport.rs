//! The nats transport against the shared nats-server: the transport conformance suite, the
//! rpc suite (mucp client and server over nats), and the transport's own cases: the
//! `Timeout` header, no responders, malformed messages, vanished peers, drain and stop.
//! Every listener gets a fresh subject, so runs sharing the server never meet.

mod common;

use bytes::Bytes;
use common::nats_address;
use futures::StreamExt;
use micro_conformance::rpc::Target;
use micro_conformance::support::{unique, within};
use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::ServiceInfo;
use micro_core::server::{Handler, Server};
use micro_core::transport::{
    DialOptions, Exchange, ExchangeHandler, Message, Serving, Transport, accept_streams,
};
use micro_mucp::{ClientParts, MucpClient, MucpServer, ServerParts};
use micro_nats::transport::CONTROL;
use micro_nats::{Connector, NatsTransport, NatsTransportOptions};
use std::sync::Arc;
use std::time::Duration;

fn transport() -> NatsTransport {
    NatsTransport::connect_to(&[nats_address()])
}

fn transport_with(options: NatsTransportOptions) -> NatsTransport {
    NatsTransport::new(Connector::new(&[nats_address()], "transport"), options)
}

micro_conformance::transport_suite!(async || Arc::new(transport()) as Arc<dyn Transport>);

micro_conformance::transport_suite!(
    mod on_a_current_thread_runtime(flavor = "current_thread"),
    async || Arc::new(transport()) as Arc<dyn Transport>,
);

/// mucp over nats: the client calls the server's subject.
async fn over_nats(handlers: Vec<Handler>) -> Target {
    let transport: Arc<dyn Transport> = Arc::new(transport());
    let name = unique("conformance");
    let server = MucpServer::new(
        ServerConfig {
            grace_period: Duration::from_secs(2),
            ..Default::default()
        },
        ServerParts {
            info: ServiceInfo {
                name: name.clone(),
                version: "1.0.0".into(),
                id: unique(&name),
            },
            transport: transport.clone(),
            registry: None,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    );
    for handler in handlers {
        server.handle(handler).unwrap();
    }
    server.start().await.unwrap();
    let address = server.address().expect("a started server has an address");
    let client = MucpClient::new(
        ClientConfig::default(),
        ClientParts {
            selector: None,
            transport,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    );
    Target::new(Arc::new(client), name)
        .with_address(address)
        .with_guard(server)
}

micro_conformance::rpc_suite!(mod over_nats, over_nats);

/// An exchange handler answering every unary request after `delay` with its body.
fn slow_echo(delay: Duration) -> ExchangeHandler {
    Arc::new(move |exchange: Exchange| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let _ = exchange
                .stream
                .sender
                .send(Message::new(exchange.first.body.clone()))
                .await;
        })
    })
}

async fn serve(t: &NatsTransport, handler: ExchangeHandler) -> Serving {
    let listener = t.listen("127.0.0.1:0").await.expect("listen");
    Serving::start(listener, handler)
}

#[tokio::test]
async fn listen_gives_a_subject_and_takes_a_given_one() {
    let t = transport();
    let fresh = t.listen(":0").await.unwrap();
    assert!(
        fresh.address().starts_with("micro.transport."),
        "{}",
        fresh.address()
    );
    let subject = format!("micro.test.{}", unique("given").replace('-', "_"));
    let given = t.listen(&subject).await.unwrap();
    assert_eq!(given.address(), subject);
    let serving = Serving::start(given, slow_echo(Duration::ZERO));
    let conn = t.dial(&subject, DialOptions::default()).await.unwrap();
    let answer = conn.call(Message::new("hi")).await.unwrap();
    assert_eq!(answer.body, Bytes::from("hi"));
    drop(serving);
    let err = t.bind("127.0.0.1:8080").await.unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    let err = t
        .connect("a.*.b", DialOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
}

#[tokio::test]
async fn unary_headers_and_body_round_trip() {
    let t = transport();
    let handler: ExchangeHandler = Arc::new(|exchange: Exchange| {
        Box::pin(async move {
            let mut reply = Message::new(exchange.first.body.clone());
            reply.header = exchange.first.header.clone();
            let _ = exchange
                .stream
                .sender
                .send(reply.with_header("Echo", "yes"))
                .await;
        })
    });
    let serving = serve(&t, handler).await;
    let conn = t
        .dial(&serving.address(), DialOptions::default())
        .await
        .unwrap();
    let body = Bytes::from_static(&[0, 1, 2, 200, 255, b'\n']);
    let answer = conn
        .call(
            Message::new(body.clone())
                .with_header("Micro-Endpoint", "Greeter.Hello")
                .with_header("x-meta", "grüße \"quoted\""),
        )
        .await
        .unwrap();
    assert_eq!(answer.body, body);
    assert_eq!(answer.header("micro-endpoint"), Some("Greeter.Hello"));
    assert_eq!(answer.header("X-Meta"), Some("grüße \"quoted\""));
    assert_eq!(answer.header("Echo"), Some("yes"));
    assert_eq!(answer.header(CONTROL), None);

    // Headers NATS cannot carry are refused before sending, retryably.
    let err = conn
        .call(Message::new("x").with_header("bad:name", "v"))
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    assert!(err.retryable, "{err}");
}

#[tokio::test]
async fn timeout_header_bounds_a_unary_call() {
    let t = transport();
    let serving = serve(&t, slow_echo(Duration::from_secs(3))).await;
    let conn = t
        .dial(&serving.address(), DialOptions::default())
        .await
        .unwrap();
    for timeout in ["100ms", "100000000"] {
        let err = within(
            "slow call",
            conn.call(Message::new("x").with_header("Timeout", timeout)),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, 408, "Timeout {timeout}: {err}");
        assert!(err.detail.contains(&serving.address()), "{err}");
    }
}

#[tokio::test]
async fn nobody_listening_is_a_retryable_503() {
    let t = transport();
    let subject = format!("micro.test.nobody.{}", unique("n").replace('-', "_"));
    let conn = t.dial(&subject, DialOptions::default()).await.unwrap();
    let err = within("call", conn.call(Message::new("x")))
        .await
        .unwrap_err();
    assert_eq!(err.code, 503, "{err}");
    assert!(err.retryable, "{err}");
    assert!(err.detail.contains(&subject), "{err}");
    let err = within("open", conn.open_stream()).await.unwrap_err();
    assert_eq!(err.code, 503, "{err}");
}

#[tokio::test]
async fn malformed_messages_do_not_stop_the_listener() {
    let t = transport();
    let serving = serve(&t, slow_echo(Duration::ZERO)).await;
    let subject = serving.address();
    let raw = async_nats::connect(nats_address()).await.unwrap();
    // No reply subject: dropped (and logged).
    raw.publish(subject.clone(), "garbage".into())
        .await
        .unwrap();
    // Control frames that make no sense on a listener subject, and unknown ones.
    for value in ["end", "credit 9", "credit x", "bogus", ""] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(CONTROL, value);
        let answer = within(
            "malformed request",
            raw.request_with_headers(subject.clone(), headers, "x".into()),
        )
        .await
        .unwrap();
        let error = answer
            .headers
            .as_ref()
            .and_then(|h| h.get("Micro-Error"))
            .map(|v| micro_core::Error::parse(v.as_str()))
            .unwrap_or_else(|| panic!("{value:?}: no error in the answer"));
        assert_eq!(error.code, 400, "{value:?}: {error}");
        assert!(error.detail.contains(&subject), "{value:?}: {error}");
    }
    // Garbage inside a stream: the server resets that stream with a 400.
    let inbox = raw.new_inbox();
    let mut sub = raw.subscribe(inbox.clone()).await.unwrap();
    let mut open = async_nats::HeaderMap::new();
    open.insert(CONTROL, "open");
    raw.publish_with_reply_and_headers(subject.clone(), inbox.clone(), open, Bytes::new())
        .await
        .unwrap();
    let accept = within("accept", sub.next()).await.unwrap();
    let server_inbox = accept
        .reply
        .clone()
        .expect("an acceptance names the server inbox");
    let mut junk = async_nats::HeaderMap::new();
    junk.insert(CONTROL, "credit -1");
    raw.publish_with_headers(server_inbox, junk, Bytes::new())
        .await
        .unwrap();
    let reset = within("reset", sub.next()).await.unwrap();
    let headers = reset.headers.expect("a reset has headers");
    assert_eq!(headers.get(CONTROL).map(|v| v.as_str()), Some("reset"));
    // The listener still serves.
    let conn = t.dial(&subject, DialOptions::default()).await.unwrap();
    let answer = within("call after garbage", conn.call(Message::new("ok")))
        .await
        .unwrap();
    assert_eq!(answer.body, Bytes::from("ok"));
}

#[tokio::test]
async fn a_stream_whose_client_vanished_ends_on_the_server() {
    let t = transport_with(NatsTransportOptions {
        heartbeat: Duration::from_millis(100),
        ..Default::default()
    });
    let mut accepting = accept_streams(t.listen("").await.unwrap());
    let subject = accepting.address();
    // A client that opens a stream, sends a frame, and vanishes without a word.
    let raw = async_nats::connect(nats_address()).await.unwrap();
    let inbox = raw.new_inbox();
    let mut sub = raw.subscribe(inbox.clone()).await.unwrap();
    let mut open = async_nats::HeaderMap::new();
    open.insert(CONTROL, "open");
    raw.publish_with_reply_and_headers(subject.clone(), inbox.clone(), open, Bytes::new())
        .await
        .unwrap();
    let accept = within("accept", sub.next()).await.unwrap();
    let server_inbox = accept.reply.clone().unwrap();
    raw.publish_with_reply(server_inbox, inbox, "first".into())
        .await
        .unwrap();
    let mut stream = within("accept stream", accepting.accept()).await.unwrap();
    let first = within("first frame", stream.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.body, Bytes::from("first"));
    drop(sub);
    drop(raw);
    match within("the stream's end", stream.receiver.recv()).await {
        Some(Err(error)) => assert_eq!(error.code, 503, "{error}"),
        other => panic!("expected the stream to fail with 503, got {other:?}"),
    }
}

#[tokio::test]
async fn an_opened_stream_without_frames_is_reset_with_408() {
    let t = transport_with(NatsTransportOptions {
        first_frame_timeout: Duration::from_millis(200),
        ..Default::default()
    });
    let serving = serve(&t, slow_echo(Duration::ZERO)).await;
    let conn = t
        .dial(&serving.address(), DialOptions::default())
        .await
        .unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    match within("reset", stream.receiver.recv()).await {
        Some(Err(error)) => assert_eq!(error.code, 408, "{error}"),
        other => panic!("expected a 408 reset, got {other:?}"),
    }
}

#[tokio::test]
async fn drain_refuses_new_exchanges_and_keeps_open_streams() {
    let t = transport();
    let (tx, mut streams) = tokio::sync::mpsc::channel(8);
    let handler: ExchangeHandler = Arc::new(move |exchange: Exchange| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(exchange.into_stream()).await;
        })
    });
    let serving = serve(&t, handler).await;
    let subject = serving.address();
    let conn = t.dial(&subject, DialOptions::default()).await.unwrap();
    let mut client = conn.open_stream().await.unwrap();
    client.sender.send(Message::new("one")).await.unwrap();
    let mut server = within("accept", streams.recv()).await.unwrap();
    within("one", server.receiver.recv())
        .await
        .unwrap()
        .unwrap();

    serving.drain();
    let err = micro_conformance::support::eventually("new calls kept working", || async {
        // A call that still reached the listener is never answered by this handler.
        let call = Message::new("x").with_header("Timeout", "200ms");
        conn.call(call).await.err().filter(|e| e.code != 408)
    })
    .await;
    assert_eq!(err.code, 503, "{err}");

    // The open stream still works both ways.
    client.sender.send(Message::new("two")).await.unwrap();
    let two = within("two", server.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(two.body, Bytes::from("two"));
    server.sender.send(Message::new("back")).await.unwrap();
    let back = within("back", client.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.body, Bytes::from("back"));

    // Dropping the listener (its serve future) resets the open stream.
    drop(serving);
    match within("reset", client.receiver.recv()).await {
        Some(Err(error)) => assert_eq!(error.code, 503, "{error}"),
        other => panic!("expected a 503 reset, got {other:?}"),
    }
}
