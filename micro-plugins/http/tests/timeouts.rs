//! Server-side time limits (`read_timeout`, `idle_timeout`) against raw TCP clients: slow
//! heads, slow bodies and slow stream frames are cut off, idle keep-alive connections closed,
//! busy ones kept.

mod common;

use common::*;
use micro_core::transport::Message;
use micro_http::{HttpTransport, HttpTransportOptions, frame};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_millis(200);

fn transport(read: Duration, idle: Duration) -> HttpTransport {
    HttpTransport::new(HttpTransportOptions {
        read_timeout: read,
        idle_timeout: idle,
        ..HttpTransportOptions::default()
    })
}

/// A greeter on 127.0.0.1:0 with these limits, and its address.
async fn server(read: Duration, idle: Duration) -> (tokio::task::JoinHandle<()>, String) {
    let listener = listen(&transport(read, idle)).await;
    let address = listener.address();
    let (task, _seen) = greeter(listener);
    (task, address)
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(what: &str, tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    // A reset counts as closed too.
    let _ = within(what, tcp.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends one keep-alive greeter request and reads its whole answer.
async fn call(tcp: &mut TcpStream, address: &str) {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nMicro-Endpoint: Greeter.Hello\r\n\
         Content-Length: 2\r\n\r\n{{}}"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).ends_with(HELLO) {
        let n = within("the answer", tcp.read(&mut buf)).await.unwrap();
        assert!(
            n > 0,
            "connection closed before the answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn half_a_request_head_is_cut_off() {
    let (task, address) = server(SHORT, Duration::ZERO).await;
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    tcp.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nMicro-Endp")
        .await
        .unwrap();
    let got = until_closed("slow head closed", &mut tcp).await;
    assert!(!got.starts_with("HTTP/1.1 200"), "got {got}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_body_is_answered_408_and_closed() {
    let (task, address) = server(SHORT, Duration::ZERO).await;
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nMicro-Endpoint: Greeter.Hello\r\n\
         Content-Length: 100\r\n\r\n0123456789"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let got = until_closed("slow body closed", &mut tcp).await;
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408"),
        "got {got}"
    );
    assert!(got.is_empty() || got.contains("read_timeout"), "got {got}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_frame_begun_must_be_completed() {
    let (task, address) = server(SHORT, Duration::ZERO).await;
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    let first = frame::encode(0, Message::new("0123456789"), 1 << 20).unwrap();
    let half = &first[..first.len() / 2];
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nMicro-Stream: s-1\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        half.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(half).await.unwrap();
    tcp.write_all(b"\r\n").await.unwrap();
    let got = until_closed("slow frame closed", &mut tcp).await;
    // The RESET frame carries the 408 error naming the option.
    assert!(got.contains("read_timeout"), "got {got}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed() {
    // No read limit: only the idle limit can close it.
    let (task, address) = server(Duration::ZERO, SHORT).await;
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    call(&mut tcp, &address).await;
    let got = until_closed("idle connection closed", &mut tcp).await;
    assert!(got.is_empty(), "nothing more is sent, got {got}");

    // A connection that never sent a byte, too.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    until_closed("silent connection closed", &mut silent).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_connection_is_kept() {
    let (task, address) = server(SHORT, SHORT).await;
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    // Many times the idle limit in all, never idle for long.
    for _ in 0..20 {
        call(&mut tcp, &address).await;
        tokio::time::sleep(SHORT / 4).await;
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_handler_does_not_make_the_connection_idle() {
    let listener = listen(&transport(SHORT, SHORT)).await;
    let address = listener.address();
    let task = serve(listener, |mut stream| async move {
        let Some(Ok(_)) = stream.receiver.recv().await else {
            return;
        };
        // Longer than the idle limit: the request is in flight meanwhile.
        tokio::time::sleep(SHORT * 3).await;
        let _ = stream.sender.send(Message::new(HELLO)).await;
    });
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    call(&mut tcp, &address).await;
    call(&mut tcp, &address).await;
    task.abort();
}
