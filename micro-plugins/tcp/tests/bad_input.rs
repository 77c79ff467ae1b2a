//! Bad bytes on a connection never panic and never stop the server: the connection gets a
//! stream-0 error frame (when it can still read) and is closed; other connections and the
//! accept loop carry on.

use bytes::BytesMut;
use micro_core::Error;
use micro_core::transport::accept_streams;
use micro_core::transport::{DialOptions, Message, Transport};
use micro_tcp::frame::{self, Frame};
use micro_tcp::{TcpTransport, TcpTransportOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(10);
const MAX: usize = 1024;

fn transport() -> TcpTransport {
    TcpTransport::new(TcpTransportOptions {
        max_frame_size: MAX,
        ..TcpTransportOptions::default()
    })
}

/// A listener that echoes every stream; returns its address.
async fn echo_server(t: &TcpTransport) -> (String, JoinHandle<()>) {
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let task = tokio::spawn(async move {
        while let Some(mut stream) = listener.accept().await {
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.receiver.recv().await {
                    if stream.sender.send(frame).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (address, task)
}

/// A fresh client (its own pool, so its own connection) still gets an echo.
async fn assert_still_serves(address: &str) {
    let client = transport();
    let conn = client.dial(address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream
        .sender
        .send(Message::new("still there?").with_header("K", "v"))
        .await
        .unwrap();
    let reply = tokio::time::timeout(DEADLINE, stream.receiver.recv())
        .await
        .expect("echo after bad input")
        .expect("stream ended")
        .expect("echo failed");
    assert_eq!(&reply.body[..], b"still there?");
    assert_eq!(reply.header("k"), Some("v"));
}

/// Sends `bytes` on a raw connection, optionally half-closes, and reads everything the
/// server sends until it closes; returns the decoded frames.
async fn exchange(address: &str, bytes: &[u8], half_close: bool) -> Vec<Frame> {
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    if half_close {
        socket.shutdown().await.unwrap();
    }
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, socket.read_to_end(&mut received)).await;
    // A reset after the error frame is acceptable; hanging is not.
    assert!(read.is_ok(), "the server did not close the bad connection");
    let mut buf = BytesMut::from(&received[..]);
    let mut frames = Vec::new();
    while let Ok(Some(f)) = frame::decode(&mut buf, 1 << 20) {
        frames.push(f);
    }
    frames
}

fn connection_error(frames: &[Frame]) -> Error {
    let f = frames
        .iter()
        .find(|f| f.stream == 0)
        .unwrap_or_else(|| panic!("no stream-0 frame in {frames:?}"));
    f.error().expect("stream-0 frame without Micro-Error")
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_length_gets_413_then_eof() {
    let t = transport();
    let (address, _server) = echo_server(&t).await;
    let frames = exchange(&address, &(MAX as u32 + 1).to_be_bytes(), false).await;
    let error = connection_error(&frames);
    assert_eq!(error.code, 413, "{error}");
    assert_still_serves(&address).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn header_count_past_the_end_gets_400() {
    let t = transport();
    let (address, _server) = echo_server(&t).await;
    // length 9: stream 1, flags 0, 5 headers, then one 2-byte key length and nothing else.
    let bad = [0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 5, 0, 3];
    let error = connection_error(&exchange(&address, &bad, false).await);
    assert_eq!(error.code, 400, "{error}");
    assert_still_serves(&address).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_gets_400() {
    let t = transport();
    let (address, _server) = echo_server(&t).await;
    let bad = [0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0xc3, 0, 0, 0, 0];
    let error = connection_error(&exchange(&address, &bad, false).await);
    assert_eq!(error.code, 400, "{error}");
    assert_still_serves(&address).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_frame_then_close() {
    let t = transport();
    let (address, _server) = echo_server(&t).await;
    let mut full = BytesMut::new();
    frame::encode(&Frame::data(1, Message::new("a body")), &mut full).unwrap();
    let frames = exchange(&address, &full[..full.len() - 3], true).await;
    // The server may or may not get the error out before the close; it must not hang.
    if let Some(f) = frames.iter().find(|f| f.stream == 0) {
        assert_eq!(f.error().map(|e| e.code), Some(400));
    }
    assert_still_serves(&address).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_bytes() {
    let t = transport();
    let (address, _server) = echo_server(&t).await;
    let mut garbage = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push(x as u8);
    }
    for chunk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &garbage[..],
        &[0u8; 64][..],
    ] {
        let frames = exchange(&address, chunk, false).await;
        let error = connection_error(&frames);
        assert!(error.code == 400 || error.code == 413, "{error}");
        assert_still_serves(&address).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn many_bad_connections_at_once() {
    let t = transport();
    let (address, _server) = echo_server(&t).await;
    let bad: Vec<_> = (0..20)
        .map(|i| {
            let address = address.clone();
            tokio::spawn(async move {
                let bytes = if i % 2 == 0 {
                    vec![0xff; 8]
                } else {
                    vec![0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 5, 0, 3]
                };
                exchange(&address, &bytes, i % 3 == 0).await
            })
        })
        .collect();
    for task in bad {
        task.await.unwrap();
    }
    assert_still_serves(&address).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_fails_streams_on_a_server_protocol_error() {
    // A fake server that answers any frame with garbage: the client's open stream gets the
    // client's own 400 (it detected the bad frame), and the connection is replaced.
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = raw.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = raw.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(&[0, 0, 0, 7, 0, 0, 0, 1, 0x40, 0, 0])
                    .await;
                let mut rest = Vec::new();
                let _ = socket.read_to_end(&mut rest).await;
            });
        }
    });
    let t = transport();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("hi")).await.unwrap();
    let got = tokio::time::timeout(DEADLINE, stream.receiver.recv())
        .await
        .unwrap();
    match got {
        Some(Err(error)) => assert_eq!(error.code, 400, "{error}"),
        other => panic!("expected a 400 error, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(DEADLINE, stream.receiver.recv())
            .await
            .unwrap()
            .is_none()
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !conn.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection not closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
