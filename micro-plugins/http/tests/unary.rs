//! Unary exchanges (`Connection::call`): plain POSTs over pooled HTTP/1.1 connections,
//! answered by the listener's unary handler in the request's task, or through `accept`
//! when it has none.

mod common;

use common::*;
use micro_core::Error;
use micro_core::transport::{DialOptions, Exchange, ExchangeHandler, Message, Serving, Transport};
use std::sync::Arc;
use std::time::Duration;

/// Answers with the request's body, its `Micro-Endpoint` as `Seen-Endpoint`, and a 404
/// error for the endpoint `Nope.Nope`.
fn handler() -> ExchangeHandler {
    Arc::new(|exchange: Exchange| {
        Box::pin(async move {
            let request = exchange.first;
            let endpoint = request
                .header("Micro-Endpoint")
                .unwrap_or_default()
                .to_string();
            let answer = if endpoint == "Nope.Nope" {
                let err = Error::not_found("test", "no such endpoint");
                Message::default().with_header("Micro-Error", err.to_json())
            } else {
                Message::new(request.body)
                    .with_header("Content-Type", "application/json")
                    .with_header("Seen-Endpoint", endpoint)
            };
            let _ = exchange.stream.sender.send(answer).await;
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_are_answered_by_the_unary_handler() {
    let t = transport(4 << 20);
    let listener = Serving::start(listen(&t).await, handler());
    let address = listener.address();
    let conn: Arc<dyn micro_core::transport::Connection> =
        Arc::from(t.dial(&address, DialOptions::default()).await.unwrap());
    let calls = (0..100).map(|i| {
        let conn = conn.clone();
        tokio::spawn(async move {
            let body = format!("{{\"n\":{i}}}");
            let request = Message::new(body.clone())
                .with_header("Micro-Endpoint", "Echo.Echo")
                .with_header("Content-Type", "application/json");
            let answer = conn.call(request).await.unwrap();
            assert_eq!(answer.body, body.as_bytes(), "call {i}");
            assert_eq!(answer.header("Seen-Endpoint"), Some("Echo.Echo"));
        })
    });
    for call in calls {
        within("calls", call).await.unwrap();
    }
    // An error answer keeps its code through the HTTP status and Micro-Error.
    let answer = conn
        .call(Message::new("{}").with_header("Micro-Endpoint", "Nope.Nope"))
        .await
        .unwrap();
    let err = Error::parse(answer.header("Micro-Error").expect("Micro-Error"));
    assert_eq!(err.code, 404, "{err}");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_unary_handler_calls_arrive_through_accept() {
    let t = transport(4 << 20);
    let listener = listen(&t).await;
    let address = listener.address();
    let (server, mut seen) = greeter(listener);
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let request = Message::new(r#"{"name":"John"}"#)
        .with_header("Micro-Endpoint", "Greeter.Hello")
        .with_header("Content-Type", "application/json");
    let answer = within("call", conn.call(request)).await.unwrap();
    assert_eq!(&answer.body[..], HELLO.as_bytes());
    let got = within("handler", seen.recv()).await.unwrap();
    assert_eq!(got.header("Micro-Endpoint"), Some("Greeter.Hello"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_to_a_closed_port_is_not_sent() {
    let t = transport(4 << 20);
    let listener = Serving::start(listen(&t).await, handler());
    let address = listener.address();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    drop(listener);
    // The listener's task closes the port soon after the drop.
    within("the port closes", async {
        while tokio::net::TcpStream::connect(&address).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let err = within("call", conn.call(Message::new("{}")))
        .await
        .unwrap_err();
    assert!(err.retryable, "{err}");
    assert_eq!(err.code, 503, "{err}");
}
