//! What one connection may cost a server: unary requests in flight (`max_unary`, with
//! reading paused at the limit), streams (`max_streams`), a stream's wait for its next frame
//! (`first_message_timeout`), a frame begun (`read_timeout`), an unused connection
//! (`idle_timeout`), and the rate of protocol-error warnings. Raw peers on 127.0.0.1.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use micro_core::config::LoggerConfig;
use micro_core::logger::{LogOutput, Logger};
use micro_core::transport::{
    Exchange, ExchangeHandler, Message, Serving, Transport, accept_streams,
};
use micro_tcp::frame::{self, Frame};
use micro_tcp::{TcpTransport, TcpTransportOptions};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// Short time limits for the tests; `DEADLINE` (10 s) is far above them.
const SHORT: Duration = Duration::from_millis(200);

fn transport(options: TcpTransportOptions) -> TcpTransport {
    TcpTransport::new(options)
}

/// A listener echoing every stream's frames, ending its side when the peer ends its own.
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

async fn connect(address: &str) -> Peer {
    Peer::new(TcpStream::connect(address).await.unwrap())
}

/// The error of a RESET frame.
fn reset_error(f: &Frame, id: u32) -> micro_core::Error {
    assert_eq!(f.stream, id, "{f:?}");
    assert!(f.is_reset(), "expected RESET on {id}, got {f:?}");
    f.error().expect("RESET without Micro-Error")
}

/// Reads until the server closes; the stream-0 error it sent, if any.
async fn closed_with(peer: &mut Peer) -> Option<micro_core::Error> {
    let mut error = None;
    while let Some(f) = peer.next().await {
        if f.stream == 0 {
            error = f.error();
        }
    }
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_unary_requests_stop_being_read_at_max_unary() {
    const LIMIT: usize = 8;
    const REQUESTS: u32 = 1000;
    let t = transport(TcpTransportOptions {
        max_unary: LIMIT,
        ..TcpTransportOptions::default()
    });
    // Answers of 128 KiB (one shared buffer: no memory per answer) fill the socket buffers
    // after a few dozen; requests beyond that must wait in the kernel, unread.
    let body = Bytes::from(vec![7u8; 128 * 1024]);
    let handled = Arc::new(AtomicUsize::new(0));
    let handler: ExchangeHandler = {
        let handled = handled.clone();
        Arc::new(move |exchange: Exchange| {
            handled.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            Box::pin(async move {
                let _ = exchange.stream.sender.send(Message::new(body)).await;
            })
        })
    };
    let listener = Serving::start(t.listen("127.0.0.1:0").await.unwrap(), handler);
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let stream = socket
        .connect(listener.address().parse().unwrap())
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    // Pipelines every request and never reads meanwhile.
    let writer = tokio::spawn(async move {
        for id in 1..=REQUESTS {
            let mut buf = BytesMut::new();
            let request = Message::new("ping").with_header("Micro-Endpoint", "Test.Ping");
            frame::encode(&Frame::unary(id, request), &mut buf).unwrap();
            write.write_all(&buf).await.unwrap();
        }
        write
    });
    // Wait until the server stops taking requests (the count stays put).
    let mut seen = usize::MAX;
    within("the server to stop reading", async {
        loop {
            tokio::time::sleep(SHORT).await;
            let now = handled.load(Ordering::SeqCst);
            if now == seen {
                break;
            }
            seen = now;
        }
    })
    .await;
    // At most LIMIT in flight plus what fits in the socket buffers (4 MiB / 128 KiB = 32).
    assert!(
        seen <= LIMIT + 64,
        "{seen} of {REQUESTS} requests were handled while no answer was read"
    );
    // Now the peer reads: every request is served and every answer arrives.
    let ids = read_answers(&mut read, REQUESTS as usize).await;
    assert_eq!(ids, (1..=REQUESTS).collect::<BTreeSet<_>>());
    within("the writer", writer).await.unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), REQUESTS as usize);
}

/// Reads `count` UNARY answers of 128 KiB; their stream ids.
async fn read_answers(read: &mut tokio::net::tcp::OwnedReadHalf, count: usize) -> BTreeSet<u32> {
    let mut buf = BytesMut::new();
    let mut ids = BTreeSet::new();
    while ids.len() < count {
        while let Some(f) = frame::decode(&mut buf, 1 << 20).unwrap() {
            assert!(f.is_unary(), "{f:?}");
            assert_eq!(f.message.body.len(), 128 * 1024);
            ids.insert(f.stream);
        }
        if ids.len() == count {
            break;
        }
        let n = within("an answer", read.read_buf(&mut buf)).await.unwrap();
        assert!(n > 0, "closed after {} answers", ids.len());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_over_max_streams_is_refused_with_429() {
    let t = transport(TcpTransportOptions {
        max_streams: 4,
        first_message_timeout: Duration::ZERO,
        ..TcpTransportOptions::default()
    });
    let (address, _server) = echo_server(&t).await;
    let mut peer = connect(&address).await;
    for id in 1..=4 {
        peer.send(&Frame::data(id, Message::new("open"))).await;
        assert_eq!(
            peer.next().await.unwrap(),
            Frame::data(id, Message::new("open"))
        );
    }
    peer.send(&Frame::data(5, Message::new("one too many")))
        .await;
    let error = reset_error(&peer.next().await.unwrap(), 5);
    assert_eq!(error.code, 429, "{error}");
    assert!(error.detail.contains("transport.max_streams"), "{error}");
    assert!(error.detail.contains('4'), "{error}");
    // What a client does on RESET: answer it. Frames of the refused stream are dropped.
    peer.send(&Frame::reset(5, &error)).await;
    // Ending a stream frees its place.
    peer.send(&Frame::end(1)).await;
    assert_eq!(peer.next().await.unwrap(), Frame::end(1));
    peer.send(&Frame::data(6, Message::new("now"))).await;
    assert_eq!(
        peer.next().await.unwrap(),
        Frame::data(6, Message::new("now"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_without_its_next_frame_is_reset_with_408() {
    let t = transport(TcpTransportOptions {
        first_message_timeout: SHORT,
        ..TcpTransportOptions::default()
    });
    let (address, _server) = echo_server(&t).await;
    let mut peer = connect(&address).await;
    // Opened by its header frame, then silence.
    peer.send(&Frame::data(1, Message::new("headers"))).await;
    assert_eq!(peer.next().await.unwrap().stream, 1);
    let error = reset_error(&peer.next().await.unwrap(), 1);
    assert_eq!(error.code, 408, "{error}");
    assert!(
        error.detail.contains("transport.first_message_timeout"),
        "{error}"
    );
    peer.send(&Frame::reset(1, &error)).await;
    // A stream whose next frame comes in time is not reset, however long it lives.
    peer.send(&Frame::data(2, Message::new("headers"))).await;
    peer.send(&Frame::data(2, Message::new("request"))).await;
    assert_eq!(
        peer.next().await.unwrap(),
        Frame::data(2, Message::new("headers"))
    );
    assert_eq!(
        peer.next().await.unwrap(),
        Frame::data(2, Message::new("request"))
    );
    tokio::time::sleep(SHORT * 4).await;
    peer.send(&Frame::data(2, Message::new("later"))).await;
    assert_eq!(
        peer.next().await.unwrap(),
        Frame::data(2, Message::new("later"))
    );
    peer.send(&Frame::end(2)).await;
    assert_eq!(peer.next().await.unwrap(), Frame::end(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn half_a_frame_is_closed_after_read_timeout() {
    let t = transport(TcpTransportOptions {
        read_timeout: SHORT,
        ..TcpTransportOptions::default()
    });
    let (address, _server) = echo_server(&t).await;
    let mut whole = BytesMut::new();
    frame::encode(&Frame::data(1, Message::new("a body")), &mut whole).unwrap();
    let mut peer = connect(&address).await;
    peer.socket.write_all(&whole[..10]).await.unwrap();
    let error = closed_with(&mut peer).await.expect("no stream-0 error");
    assert_eq!(error.code, 408, "{error}");
    assert!(error.detail.contains("transport.read_timeout"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_close_and_busy_ones_stay() {
    let t = transport(TcpTransportOptions {
        idle_timeout: SHORT,
        first_message_timeout: Duration::ZERO,
        ..TcpTransportOptions::default()
    });
    let (address, _server) = echo_server(&t).await;
    let mut idle = connect(&address).await;
    let mut busy = connect(&address).await;
    busy.send(&Frame::data(1, Message::new("open"))).await;
    assert_eq!(busy.next().await.unwrap().stream, 1);
    // The idle one is closed (EOF, no error frame) ...
    assert_eq!(closed_with(&mut idle).await, None);
    // ... while the one with an open stream, silent for many idle times, still serves.
    tokio::time::sleep(SHORT * 4).await;
    busy.send(&Frame::data(1, Message::new("still here"))).await;
    assert_eq!(
        busy.next().await.unwrap(),
        Frame::data(1, Message::new("still here"))
    );
    // Once its stream ended, it is idle too.
    busy.send(&Frame::end(1)).await;
    assert_eq!(busy.next().await.unwrap(), Frame::end(1));
    assert_eq!(closed_with(&mut busy).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_error_warnings_are_rate_limited_per_listener() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let dispatch = micro_core::service::loggers::text_dispatch(
        &LoggerConfig::default(),
        tracing::level_filters::LevelFilter::WARN,
        LogOutput::buffer(lines.clone()),
    );
    let t = TcpTransport::default().with_logger(Logger::new("transport", dispatch));
    let (address, _server) = echo_server(&t).await;
    let warnings = || {
        let text = String::from_utf8_lossy(&lines.lock().unwrap()).to_string();
        text.lines()
            .filter(|l| l.contains("WARN") && l.contains("protocol error"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let bad = |address: String| async move {
        let mut peer = connect(&address).await;
        peer.socket.write_all(&[0xff; 8]).await.unwrap();
        closed_with(&mut peer).await
    };
    const BAD: usize = 200;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..BAD)
        .map(|_| tokio::spawn(bad(address.clone())))
        .collect();
    for task in tasks {
        let error = within("a bad connection", task).await.unwrap();
        assert_eq!(error.map(|e| e.code), Some(413));
    }
    let seconds = started.elapsed().as_secs() as usize + 1;
    let logged = warnings();
    assert!(!logged.is_empty(), "no warning at all");
    assert!(
        logged.len() <= 5 * seconds && logged.len() < BAD,
        "{} warnings for {BAD} bad connections in {seconds} s",
        logged.len()
    );
    // A bad connection after the window closed is logged, and every bad connection is
    // accounted for: logged, or counted in a later line's "N more ... were not logged".
    tokio::time::sleep(Duration::from_millis(1100)).await;
    bad(address.clone()).await;
    let logged = warnings();
    let skipped: usize = logged
        .iter()
        .filter_map(|line| {
            let (head, _) = line.split_once(" more protocol errors were not logged")?;
            head.rsplit('(').next()?.parse::<usize>().ok()
        })
        .sum();
    assert!(
        skipped > 0,
        "no line reported skipped warnings: {logged:#?}"
    );
    assert_eq!(logged.len() + skipped, BAD + 1, "{logged:#?}");
}
