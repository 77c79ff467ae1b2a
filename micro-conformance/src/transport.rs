//! Transport conformance suite: every transport plugin must pass it.
//!
//! Each `check_*` function is one case and takes a fresh `Arc<dyn Transport>`.
//! [`transport_suite!`](crate::transport_suite) turns every case into a `#[tokio::test]` of the calling
//! crate, each against a fresh transport from the factory:
//!
//! ```ignore
//! use micro_core::transport::Transport;
//! use std::sync::Arc;
//!
//! micro_conformance::transport_suite!(async || Arc::new(MyTransport::new()) as Arc<dyn Transport>);
//! ```
//!
//! Checks listen on `127.0.0.1:0` only and dial the listener's `address()`. They never
//! assert on speed; waits fail after a generous deadline.

use crate::support::{eventually, within};
use bytes::Bytes;
use micro_core::transport::{DialOptions, Listener, Message, Stream, StreamReceiver, Transport};
use std::sync::Arc;
use tokio::task::JoinHandle;

async fn listen(check: &str, t: &Arc<dyn Transport>) -> Box<dyn Listener> {
    t.listen("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{check}: listen on 127.0.0.1:0: {e}"))
}

/// Echoes every frame of `stream` back with an `Echo: yes` header, then ends its side when
/// the peer ends theirs.
async fn echo(mut stream: Stream) {
    while let Some(Ok(frame)) = stream.receiver.recv().await {
        let reply = Message {
            header: frame.header.clone(),
            body: frame.body.clone(),
        }
        .with_header("Echo", "yes");
        if stream.sender.send(reply).await.is_err() {
            return;
        }
    }
}

/// Accepts streams and echoes each in its own task; abort the handle to drop the listener.
fn echo_server(listener: Box<dyn Listener>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut listener = micro_core::transport::accept_streams(listener);
        while let Some(stream) = listener.accept().await {
            tokio::spawn(echo(stream));
        }
    })
}

/// The error of dialling `address` and opening a stream, or `None` when both succeed.
/// Some transports connect lazily, so a dead address may only show on first use.
async fn dial_error(t: Arc<dyn Transport>, address: String) -> Option<micro_core::Error> {
    match t.dial(&address, DialOptions::default()).await {
        Err(err) => Some(err),
        Ok(conn) => conn.open_stream().await.err(),
    }
}

async fn recv(check: &str, receiver: &mut StreamReceiver) -> Message {
    match within(check, receiver.recv()).await {
        Some(Ok(frame)) => frame,
        Some(Err(e)) => panic!("{check}: receive failed: {e}"),
        None => panic!("{check}: stream ended before the expected frame"),
    }
}

/// A request frame with headers and a binary body comes back intact on the same stream.
pub async fn check_request_response(t: Arc<dyn Transport>) {
    let check = "check_request_response";
    let listener = listen(check, &t).await;
    let address = listener.address();
    let server = echo_server(listener);
    let conn = t
        .dial(&address, DialOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: dial {address}: {e}"));
    assert_eq!(conn.remote(), address, "{check}: Connection::remote");
    assert!(!conn.is_closed(), "{check}: fresh connection closed");
    let mut stream = conn.open_stream().await.expect(check);
    let body = Bytes::from_static(&[0, 1, 2, 200, 255, b'\n', b'\r']);
    let request = Message::new(body.clone())
        .with_header("Micro-Endpoint", "Greeter.Hello")
        .with_header("Content-Type", "application/octet-stream");
    stream.sender.send(request).await.expect(check);
    let reply = recv(check, &mut stream.receiver).await;
    assert_eq!(reply.body, body, "{check}: body");
    assert_eq!(
        reply.header("micro-endpoint"),
        Some("Greeter.Hello"),
        "{check}: header Micro-Endpoint"
    );
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/octet-stream"),
        "{check}: header Content-Type"
    );
    assert_eq!(reply.header("Echo"), Some("yes"), "{check}: server header");
    server.abort();
}

/// Ending one direction is seen by the peer, and the other direction keeps working.
pub async fn check_end_of_stream(t: Arc<dyn Transport>) {
    let check = "check_end_of_stream";
    let mut listener = micro_core::transport::accept_streams(listen(check, &t).await);
    let address = listener.address();
    let server = tokio::spawn(async move {
        let mut stream = listener
            .accept()
            .await
            .expect("check_end_of_stream: accept");
        let mut got = Vec::new();
        while let Some(frame) = stream.receiver.recv().await {
            got.push(frame.expect("check_end_of_stream: server receive"));
        }
        // The client ended its side; the server can still answer.
        for frame in &got {
            let reply = Message::new(frame.body.clone());
            stream
                .sender
                .send(reply)
                .await
                .expect("check_end_of_stream: reply after client end");
        }
        drop(stream.sender);
        (got.len(), listener)
    });

    let conn = t.dial(&address, DialOptions::default()).await.expect(check);
    let mut stream = conn.open_stream().await.expect(check);
    for i in 0..3 {
        stream
            .sender
            .send(Message::new(format!("frame {i}")))
            .await
            .expect(check);
    }
    stream.sender.close();
    for i in 0..3 {
        let frame = recv(check, &mut stream.receiver).await;
        assert_eq!(
            frame.body,
            Bytes::from(format!("frame {i}")),
            "{check}: reply {i}"
        );
    }
    let end = within(check, stream.receiver.recv()).await;
    assert!(
        end.is_none(),
        "{check}: expected end of stream, got {end:?}"
    );
    let (count, _listener) = within(check, server).await.expect(check);
    assert_eq!(
        count, 3,
        "{check}: server saw the client's end after 3 frames"
    );
}

/// 50 streams on one connection, used at once, never mix their frames.
pub async fn check_concurrent_streams(t: Arc<dyn Transport>) {
    let check = "check_concurrent_streams";
    let listener = listen(check, &t).await;
    let address = listener.address();
    let server = echo_server(listener);
    let conn: Arc<dyn micro_core::transport::Connection> =
        Arc::from(t.dial(&address, DialOptions::default()).await.expect(check));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let mut stream = conn.open_stream().await.expect(check);
                for j in 0..5 {
                    let body = format!("stream {i} frame {j}");
                    stream
                        .sender
                        .send(Message::new(body.clone()).with_header("Stream", i.to_string()))
                        .await
                        .expect(check);
                    let reply = recv(check, &mut stream.receiver).await;
                    assert_eq!(
                        reply.body,
                        Bytes::from(body),
                        "{check}: stream {i} frame {j}"
                    );
                    assert_eq!(
                        reply.header("Stream"),
                        Some(i.to_string().as_str()),
                        "{check}: stream {i} header"
                    );
                }
                stream.sender.close();
                let end = within(check, stream.receiver.recv()).await;
                assert!(end.is_none(), "{check}: stream {i} did not end: {end:?}");
            })
        })
        .collect();
    for task in tasks {
        within(check, task).await.expect(check);
    }
    server.abort();
}

/// Dialling an address nobody listens on (any more) fails with a 5xx error.
pub async fn check_dial_nobody(t: Arc<dyn Transport>) {
    let check = "check_dial_nobody";
    let listener = listen(check, &t).await;
    let address = listener.address();
    drop(listener);
    let err = eventually(
        "check_dial_nobody: dial to a closed address kept succeeding",
        || dial_error(t.clone(), address.clone()),
    )
    .await;
    assert!(err.code >= 500, "{check}: expected a 5xx error, got {err}");
}

/// While the listener lives dialling works; once it is dropped new dials fail.
pub async fn check_listener_dropped(t: Arc<dyn Transport>) {
    let check = "check_listener_dropped";
    let listener = listen(check, &t).await;
    let address = listener.address();
    let server = echo_server(listener);
    let conn = t.dial(&address, DialOptions::default()).await.expect(check);
    let mut stream = conn.open_stream().await.expect(check);
    stream.sender.send(Message::new("ping")).await.expect(check);
    let reply = recv(check, &mut stream.receiver).await;
    assert_eq!(reply.body, Bytes::from("ping"), "{check}: echo before drop");

    server.abort();
    let _ = server.await;
    let err = eventually(
        "check_listener_dropped: new dials kept succeeding after the listener was dropped",
        || dial_error(t.clone(), address.clone()),
    )
    .await;
    assert!(err.code >= 500, "{check}: expected a 5xx error, got {err}");
}

/// One `#[tokio::test]` per case of the transport suite, each against a fresh transport from the
/// factory (see the [crate] documentation for the three forms).
///
/// ```ignore
/// micro_conformance::transport_suite!(async || Arc::new(MyTransport::new()) as Arc<dyn Transport>);
/// micro_conformance::transport_suite!(
///     mod on_current_thread(flavor = "current_thread"),
///     async || Arc::new(MyTransport::new()) as Arc<dyn Transport>,
/// );
/// ```
#[macro_export]
macro_rules! transport_suite {
    ($($input:tt)*) => {
        $crate::__suite!(component transport [
            check_request_response,
            check_end_of_stream,
            check_concurrent_streams,
            check_dial_nobody,
            check_listener_dropped,
        ] $($input)*);
    };
}
