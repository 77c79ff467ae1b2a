//! Rough echo numbers for the TCP transport against a raw TCP echo (no framework), on
//! 127.0.0.1. Run with `cargo bench -p micro-tcp`; prints operations per second. The
//! project-wide comparison (with tonic) lives in the workspace `benches/`.

use bytes::Bytes;
use micro_core::transport::accept_streams;
use micro_core::transport::{Connection, DialOptions, Message, Stream, Transport};
use micro_tcp::TcpTransport;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUND_TRIPS: usize = 20_000;
const BODY: usize = 64;

fn report(name: &str, ops: usize, elapsed: Duration) {
    let per_sec = ops as f64 / elapsed.as_secs_f64();
    let micros = elapsed.as_secs_f64() * 1e6 / ops as f64;
    println!("{name:<44} {per_sec:>12.0} ops/s {micros:>8.2} us/op");
}

async fn raw_echo() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4 + BODY];
                while socket.read_exact(&mut buf).await.is_ok() {
                    if socket.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut buf = vec![7u8; 4 + BODY];
    let start = Instant::now();
    for _ in 0..ROUND_TRIPS {
        socket.write_all(&buf).await.unwrap();
        socket.read_exact(&mut buf).await.unwrap();
    }
    report("raw tcp echo, sequential", ROUND_TRIPS, start.elapsed());
}

async fn echo_server(t: &TcpTransport) -> String {
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    tokio::spawn(async move {
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
    address
}

fn request() -> Message {
    Message::new(Bytes::from(vec![7u8; BODY]))
        .with_header("Micro-Endpoint", "Echo.Call")
        .with_header("Content-Type", "application/octet-stream")
}

async fn one_stream(t: &TcpTransport, address: &str) {
    let conn = t.dial(address, DialOptions::default()).await.unwrap();
    let mut stream = conn.open_stream().await.unwrap();
    let start = Instant::now();
    for _ in 0..ROUND_TRIPS {
        stream.sender.send(request()).await.unwrap();
        stream.receiver.recv().await.unwrap().unwrap();
    }
    report(
        "micro-tcp, one stream, sequential",
        ROUND_TRIPS,
        start.elapsed(),
    );
}

async fn stream_per_call(t: &TcpTransport, address: &str) {
    let start = Instant::now();
    for _ in 0..ROUND_TRIPS {
        let conn = t.dial(address, DialOptions::default()).await.unwrap();
        let Stream {
            sender,
            mut receiver,
            ..
        } = conn.open_stream().await.unwrap();
        sender.send(request()).await.unwrap();
        drop(sender);
        receiver.recv().await.unwrap().unwrap();
        assert!(receiver.recv().await.is_none());
    }
    report(
        "micro-tcp, stream per call, sequential",
        ROUND_TRIPS,
        start.elapsed(),
    );
}

async fn concurrent_calls(t: &TcpTransport, address: &str, workers: usize) {
    let conn: Arc<dyn Connection> =
        Arc::from(t.dial(address, DialOptions::default()).await.unwrap());
    let per_worker = ROUND_TRIPS * 5 / workers;
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for _ in 0..per_worker {
                    let Stream {
                        sender,
                        mut receiver,
                        ..
                    } = conn.open_stream().await.unwrap();
                    sender.send(request()).await.unwrap();
                    drop(sender);
                    receiver.recv().await.unwrap().unwrap();
                    assert!(receiver.recv().await.is_none());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    report(
        &format!("micro-tcp, stream per call, {workers} concurrent"),
        per_worker * workers,
        start.elapsed(),
    );
}

async fn pipelined(t: &TcpTransport, address: &str) {
    let conn = t.dial(address, DialOptions::default()).await.unwrap();
    let Stream {
        sender,
        mut receiver,
        ..
    } = conn.open_stream().await.unwrap();
    let frames = ROUND_TRIPS * 10;
    let start = Instant::now();
    let sending = tokio::spawn(async move {
        for _ in 0..frames {
            sender.send(request()).await.unwrap();
        }
    });
    for _ in 0..frames {
        receiver.recv().await.unwrap().unwrap();
    }
    sending.await.unwrap();
    report(
        "micro-tcp, one stream, pipelined frames",
        frames,
        start.elapsed(),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        raw_echo().await;
        let t = TcpTransport::default();
        let address = echo_server(&t).await;
        one_stream(&t, &address).await;
        stream_per_call(&t, &address).await;
        concurrent_calls(&t, &address, 64).await;
        pipelined(&t, &address).await;
    });
}
