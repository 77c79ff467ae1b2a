//! Helpers shared by the HTTP transport tests.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use micro_core::transport::{Listener, Message, Stream, Transport};
use micro_http::{HttpTransport, HttpTransportOptions};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Generous bound on every wait; tests never assert on speed.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The greeting every greeter test expects.
pub const HELLO: &str = r#"{"msg":"Hello John"}"#;

/// Awaits `future` or panics naming `what` after [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing after {DEADLINE:?}"))
}

/// A transport with default options but `max_body_size`.
pub fn transport(max_body_size: usize) -> HttpTransport {
    HttpTransport::new(HttpTransportOptions {
        max_body_size,
        ..HttpTransportOptions::default()
    })
}

/// Listens on 127.0.0.1:0.
pub async fn listen(t: &HttpTransport) -> Box<dyn Listener> {
    t.listen("127.0.0.1:0")
        .await
        .expect("listen on 127.0.0.1:0")
}

/// Runs `handler` on every accepted stream, each in its own task.
pub fn serve<F, Fut>(listener: Box<dyn Listener>, handler: F) -> JoinHandle<()>
where
    F: Fn(Stream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut listener = micro_core::transport::accept_streams(listener);
        while let Some(stream) = listener.accept().await {
            tokio::spawn(handler(stream));
        }
    })
}

/// Answers the first frame of every stream with [`HELLO`] and reports that frame.
pub fn greeter(listener: Box<dyn Listener>) -> (JoinHandle<()>, mpsc::UnboundedReceiver<Message>) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let task = serve(listener, move |mut stream| {
        let seen_tx = seen_tx.clone();
        async move {
            let Some(Ok(request)) = stream.receiver.recv().await else {
                return;
            };
            let _ = seen_tx.send(request);
            let reply = Message::new(HELLO).with_header("Content-Type", "application/json");
            let _ = stream.sender.send(reply).await;
        }
    });
    (task, seen)
}

/// What a plain HTTP client got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Sends `requests` one after the other on ONE HTTP/1.1 keep-alive connection with hyper.
pub async fn http1(address: &str, requests: Vec<http::Request<Full<Bytes>>>) -> Vec<Reply> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let mut replies = Vec::new();
    for request in requests {
        send.ready()
            .await
            .expect("connection ready for the next request");
        let response = within("HTTP/1.1 response", send.send_request(request))
            .await
            .expect("HTTP/1.1 request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = within("HTTP/1.1 body", response.into_body().collect())
            .await
            .expect("HTTP/1.1 body")
            .to_bytes();
        replies.push(Reply {
            status,
            headers,
            body,
        });
    }
    replies
}

/// A POST to `/` with the given headers and body.
pub fn post(
    address: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(format!("http://{address}/")).header("Host", address);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::new(body.into())).expect("request")
}

/// Runs the real `curl` binary with `args` and returns (HTTP status, body).
pub async fn curl(args: Vec<String>) -> (u16, String) {
    let output = within(
        "curl",
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args([
                    "-sS",
                    "--noproxy",
                    "*",
                    "--max-time",
                    "10",
                    "-w",
                    "\n%{http_code}",
                ])
                .args(&args)
                .output()
        }),
    )
    .await
    .expect("curl task")
    .expect("run curl (is it installed?)");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("curl output is UTF-8");
    let (body, status) = text.rsplit_once('\n').expect("curl status line");
    (
        status.trim().parse().expect("status code"),
        body.to_string(),
    )
}
