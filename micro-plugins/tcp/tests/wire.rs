//! The transport against a hand-written peer speaking the documented wire format: what a
//! client or server in another language sees and must do.

mod common;

use common::*;
use micro_core::Error;
use micro_core::transport::accept_streams;
use micro_core::transport::{DialOptions, Message, Transport};
use micro_tcp::TcpTransport;
use micro_tcp::frame::{self, Frame};
use std::time::Duration;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread")]
async fn client_frames_and_graceful_close() {
    let (address, listener) = raw_server().await;
    let t = TcpTransport::default().with_pool(0, Duration::ZERO);
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream
        .sender
        .send(Message::new("hello").with_header("Micro-Endpoint", "Greeter.Hello"))
        .await
        .unwrap();
    let mut peer = accept(&listener).await;
    let request = peer.next().await.unwrap();
    assert_eq!(request.stream, 1, "the first stream id is 1");
    assert_eq!(request.flags, 0);
    assert_eq!(
        request.message.header("micro-endpoint"),
        Some("Greeter.Hello")
    );
    assert_eq!(&request.message.body[..], b"hello");

    drop(stream.sender);
    let end = peer.next().await.unwrap();
    assert_eq!(end, Frame::end(1));

    peer.send(&Frame::data(1, Message::new("hi"))).await;
    peer.send(&Frame::end(1)).await;
    let reply = stream.receiver.recv().await.unwrap().unwrap();
    assert_eq!(&reply.body[..], b"hi");
    assert!(stream.receiver.recv().await.is_none());

    // The next stream gets the next id.
    let second = conn.open_stream().await.unwrap();
    second.sender.send(Message::new("again")).await.unwrap();
    assert_eq!(peer.next().await.unwrap().stream, 2);
    drop(second);
    assert_eq!(peer.next().await.unwrap(), Frame::end(2));
    peer.send(&Frame::end(2)).await;

    // Unpooled, handle dropped, every stream ended both ways: the client closes (EOF).
    drop(conn);
    assert_eq!(peer.next().await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_error_frame_fails_every_open_stream() {
    let (address, listener) = raw_server().await;
    let t = TcpTransport::default();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let mut a = conn.open_stream().await.unwrap();
    let mut b = conn.open_stream().await.unwrap();
    a.sender.send(Message::new("a")).await.unwrap();
    b.sender.send(Message::new("b")).await.unwrap();
    let mut peer = accept(&listener).await;
    peer.next().await.unwrap();
    peer.next().await.unwrap();
    let error = Error::too_many_requests("server", "slow down");
    peer.send(&Frame::connection_error(&error)).await;
    for stream in [&mut a, &mut b] {
        let got = tokio::time::timeout(DEADLINE, stream.receiver.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(Err(error.clone())));
        assert!(stream.receiver.recv().await.is_none());
    }
    assert!(conn.is_closed());
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_from_the_peer_fails_the_stream_and_is_answered() {
    let (address, listener) = raw_server().await;
    let t = TcpTransport::default();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("a")).await.unwrap();
    let mut peer = accept(&listener).await;
    peer.next().await.unwrap();
    let reason = Error::internal("server", "handler crashed");
    peer.send(&Frame::reset(1, &reason)).await;
    let got = tokio::time::timeout(DEADLINE, stream.receiver.recv())
        .await
        .unwrap();
    assert_eq!(got, Some(Err(reason)));
    assert!(stream.receiver.recv().await.is_none());
    // The client had not ended its side: it answers with RESET, and its sends now fail.
    let answer = peer.next().await.unwrap();
    assert_eq!((answer.stream, answer.flags), (1, frame::RESET));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !stream.sender.is_closed() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The connection is fine.
    let other = conn.open_stream().await.unwrap();
    other.sender.send(Message::new("b")).await.unwrap();
    assert_eq!(peer.next().await.unwrap().stream, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_opens_streams_on_new_ids_and_ends_them() {
    let t = TcpTransport::default();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let socket = TcpStream::connect(&address).await.unwrap();
    let local = socket.local_addr().unwrap().to_string();
    let mut peer = Peer::new(socket);
    // Ids need not start at 1 or be consecutive, only unique.
    peer.send(&Frame::data(7, Message::new("seven").with_header("K", "v")))
        .await;
    peer.send(&Frame::end(7)).await;
    let mut stream = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stream.remote, local);
    let got = stream.receiver.recv().await.unwrap().unwrap();
    assert_eq!(&got.body[..], b"seven");
    assert_eq!(got.header("k"), Some("v"));
    assert!(stream.receiver.recv().await.is_none());
    stream.sender.send(Message::new("reply")).await.unwrap();
    drop(stream.sender);
    let reply = peer.next().await.unwrap();
    assert_eq!((reply.stream, &reply.message.body[..]), (7, &b"reply"[..]));
    assert_eq!(peer.next().await.unwrap(), Frame::end(7));
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_send_resets_the_peer_with_413() {
    let t = TcpTransport::new(micro_tcp::TcpTransportOptions {
        max_frame_size: 1024,
        ..Default::default()
    });
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let stream = conn.open_stream().await.unwrap();
    stream.sender.send(Message::new("fits")).await.unwrap();
    let mut server_side = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &server_side.receiver.recv().await.unwrap().unwrap().body[..],
        b"fits"
    );
    stream
        .sender
        .send(Message::new(vec![0u8; 2048]))
        .await
        .unwrap();
    match tokio::time::timeout(DEADLINE, server_side.receiver.recv())
        .await
        .unwrap()
    {
        Some(Err(error)) => assert_eq!(error.code, 413, "{error}"),
        other => panic!("expected 413 on the peer, got {other:?}"),
    }
}
