//! Unary exchanges (`Connection::call`): one UNARY frame each way, answered inside the
//! connection by the listener's unary handler, or through `accept` when it has none; and
//! the same exchange against hand-written peers speaking the documented wire format.

mod common;

use common::*;
use micro_core::Error;
use micro_core::transport::{
    DialOptions, Exchange, ExchangeHandler, Message, Serving, Transport, accept_streams,
};
use micro_tcp::frame::{self, Frame};
use micro_tcp::{TcpTransport, TcpTransportOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Answers with the request's body and `Answered-By: handler`; bodies starting with `slow`
/// are answered after a sleep (the handler's task path), the others at once.
fn echo_handler() -> ExchangeHandler {
    Arc::new(|exchange: Exchange| {
        Box::pin(async move {
            let request = exchange.first;
            if request.body.starts_with(b"slow") {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let answer = Message::new(request.body).with_header("Answered-By", "handler");
            let _ = exchange.stream.sender.send(answer).await;
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_on_one_connection_get_their_own_answers() {
    let t = TcpTransport::default();
    let listener = Serving::start(t.listen("127.0.0.1:0").await.unwrap(), echo_handler());
    let address = listener.address();
    let conn: Arc<dyn micro_core::transport::Connection> =
        Arc::from(t.dial(&address, DialOptions::default()).await.unwrap());
    let calls = (0..200).map(|i| {
        let conn = conn.clone();
        tokio::spawn(async move {
            let body = if i % 2 == 0 {
                format!("slow {i}")
            } else {
                format!("fast {i}")
            };
            let answer = conn.call(Message::new(body.clone())).await.unwrap();
            assert_eq!(
                answer.body,
                body.as_bytes(),
                "call {i} got another call's answer"
            );
            assert_eq!(answer.header("answered-by"), Some("handler"));
        })
    });
    for call in calls {
        within("calls", call).await.unwrap();
    }
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_unary_handler_calls_arrive_through_accept() {
    let t = TcpTransport::default();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let server = tokio::spawn(async move {
        let mut stream = listener.accept().await.unwrap();
        let request = stream.receiver.recv().await.unwrap().unwrap();
        // The request is the whole stream: its end follows at once.
        assert!(stream.receiver.recv().await.is_none());
        stream
            .sender
            .send(Message::new(request.body).with_header("Answered-By", "stream"))
            .await
            .unwrap();
        listener
    });
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let answer = within("call", conn.call(Message::new("hi"))).await.unwrap();
    assert_eq!(&answer.body[..], b"hi");
    assert_eq!(answer.header("Answered-By"), Some("stream"));
    drop(server.await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_request_is_not_sent() {
    let options = TcpTransportOptions {
        max_frame_size: 1024,
        ..TcpTransportOptions::default()
    };
    let t = TcpTransport::new(options);
    let listener = Serving::start(t.listen("127.0.0.1:0").await.unwrap(), echo_handler());
    let conn = t
        .dial(&listener.address(), DialOptions::default())
        .await
        .unwrap();
    let err = conn.call(Message::new(vec![0u8; 4096])).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert_eq!(err.code, 413, "{err}");
    // The connection still serves calls.
    let answer = within("call", conn.call(Message::new("ok"))).await.unwrap();
    assert_eq!(&answer.body[..], b"ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_is_one_unary_frame_and_any_answer_form_completes_it() {
    let (address, listener) = raw_server().await;
    let t = TcpTransport::default();
    let conn: Arc<dyn micro_core::transport::Connection> =
        Arc::from(t.dial(&address, DialOptions::default()).await.unwrap());
    let mut peer = accept(&listener).await;

    // Answered with a UNARY frame.
    let call = tokio::spawn({
        let conn = conn.clone();
        async move {
            conn.call(Message::new("one").with_header("Micro-Id", "1"))
                .await
        }
    });
    let request = peer.next().await.unwrap();
    assert_eq!((request.stream, request.flags), (1, frame::UNARY));
    assert_eq!(&request.message.body[..], b"one");
    peer.send(&Frame::unary(1, Message::new("answer one")))
        .await;
    assert_eq!(&call.await.unwrap().unwrap().body[..], b"answer one");

    // Answered as a stream: a data frame, then END (a server without the unary path).
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(Message::new("two")).await }
    });
    let request = peer.next().await.unwrap();
    assert_eq!((request.stream, request.flags), (2, frame::UNARY));
    peer.send(&Frame::data(2, Message::new("answer two"))).await;
    peer.send(&Frame::end(2)).await;
    assert_eq!(&call.await.unwrap().unwrap().body[..], b"answer two");

    // Answered with RESET: the call fails with the reason, as sent.
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(Message::new("three")).await }
    });
    let request = peer.next().await.unwrap();
    peer.send(&Frame::reset(
        request.stream,
        &Error::forbidden("peer", "no"),
    ))
    .await;
    let err = call.await.unwrap().unwrap_err();
    assert!(!err.retryable, "{err}");
    assert_eq!(err.code, 403);

    // A call given up before its answer: the late answer is ignored, the next call works.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), conn.call(Message::new("four"))).await;
    assert!(gave_up.is_err());
    let late = peer.next().await.unwrap();
    peer.send(&Frame::unary(late.stream, Message::new("too late")))
        .await;
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(Message::new("five")).await }
    });
    let request = peer.next().await.unwrap();
    peer.send(&Frame::unary(request.stream, Message::new("answer five")))
        .await;
    assert_eq!(&call.await.unwrap().unwrap().body[..], b"answer five");

    // The server dies with a call in flight: it fails as possibly run (sent).
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(Message::new("six")).await }
    });
    let _ = peer.next().await.unwrap();
    drop(peer);
    let err = within("call", call).await.unwrap().unwrap_err();
    assert!(!err.retryable, "{err}");
    assert_eq!(err.code, 503, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_answers_a_unary_frame_with_one_unary_frame() {
    let t = TcpTransport::default();
    let listener = Serving::start(t.listen("127.0.0.1:0").await.unwrap(), echo_handler());
    let socket = TcpStream::connect(listener.address()).await.unwrap();
    let mut peer = Peer::new(socket);
    peer.send(&Frame::unary(7, Message::new("fast"))).await;
    peer.send(&Frame::unary(9, Message::new("slow"))).await;
    let mut answers = [peer.next().await.unwrap(), peer.next().await.unwrap()];
    answers.sort_by_key(|f| f.stream);
    for (answer, (id, body)) in answers.iter().zip([(7, "fast"), (9, "slow")]) {
        assert_eq!((answer.stream, answer.flags), (id, frame::UNARY));
        assert_eq!(&answer.message.body[..], body.as_bytes());
    }
    // No END or anything else follows: the next frame is the answer to the next request.
    peer.send(&Frame::unary(11, Message::new("again"))).await;
    let next = peer.next().await.unwrap();
    assert_eq!((next.stream, next.flags), (11, frame::UNARY));

    // UNARY on a stream that is open is a protocol error on stream 0.
    peer.send(&Frame::data(13, Message::new("open"))).await;
    peer.send(&Frame::unary(13, Message::new("again"))).await;
    let error = loop {
        let f = peer.next().await.expect("an error frame before the close");
        if f.stream == frame::CONNECTION {
            break f.error().expect("Micro-Error on stream 0");
        }
    };
    assert_eq!(error.code, 400, "{error}");
    drop(listener);
}
