//! Streams and deadlines over the memory and tcp transports: a streaming handler stops at
//! its caller's deadline and when its caller goes away, and a bad `Timeout` header is a
//! 400 that leaves the connection serving.

mod common;

use micro_core::client::{self, CallOptions};
use micro_core::config::ServerConfig;
use micro_core::server::{Handler, Server};
use micro_core::streaming;
use micro_core::transport::{DialOptions, Message, Transport, headers};
use micro_core::{Context, Streaming};
use micro_memory::MemoryTransport;
use micro_mucp::MucpServer;
use micro_tcp::TcpTransport;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Far longer than any check waits: a handler that stops only at the grace period fails.
const GRACE: Duration = Duration::from_secs(60);
/// How long a check waits for what should happen.
const WAIT: Duration = Duration::from_secs(10);

fn transports() -> Vec<Arc<dyn Transport>> {
    vec![
        Arc::new(MemoryTransport::default()),
        Arc::new(TcpTransport::default()),
    ]
}

/// `Greeter.Count`: an endless stream of numbers, counting what it produced.
fn endless(produced: Arc<AtomicU64>) -> Handler {
    Handler::server_stream("Greeter.Count", move |_ctx: Context, _start: u64| {
        let produced = produced.clone();
        async move {
            Ok(Streaming::new(futures::stream::unfold(0u64, move |n| {
                let produced = produced.clone();
                async move {
                    produced.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                    Some((Ok(n), n + 1))
                }
            })))
        }
    })
}

async fn server(transport: &Arc<dyn Transport>, handler: Handler) -> MucpServer {
    let config = ServerConfig {
        grace_period: GRACE,
        ..Default::default()
    };
    common::server(transport, config, [handler]).await
}

fn at(server: &MucpServer) -> CallOptions {
    let mut options = CallOptions::default();
    options.address = server.address();
    options
}

/// Waits until `produced` stops growing (checked twice over a quiet spell).
async fn stops_growing(produced: &AtomicU64, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = produced.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = produced.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the handler still produces ({now} messages)"
        );
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_handler_stops_at_the_callers_deadline() {
    for transport in transports() {
        let produced = Arc::new(AtomicU64::new(0));
        let server = server(&transport, endless(produced.clone())).await;
        let client = common::client(&transport);
        let ctx = Context::new().with_timeout(Duration::from_millis(50));
        let mut stream =
            client::stream::<u64, u64>(&client, &ctx, "greeter", "Greeter.Count", at(&server))
                .await
                .unwrap();
        stream.send(&0).await.unwrap();
        stream.close_send();
        let ended = tokio::time::timeout(WAIT, async {
            loop {
                match stream.recv().await {
                    Some(Ok(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{}: the stream did not end", transport.name()));
        let err = ended
            .expect("the stream ends with an error, not cleanly")
            .unwrap_err();
        assert_eq!(err.code, 408, "{}: {err}", transport.name());
        stops_growing(&produced, transport.name()).await;
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_handler_stops_when_its_caller_goes_away() {
    for transport in transports() {
        let produced = Arc::new(AtomicU64::new(0));
        let server = server(&transport, endless(produced.clone())).await;
        let client = common::client(&transport);
        let ctx = Context::new();
        let mut stream =
            client::stream::<u64, u64>(&client, &ctx, "greeter", "Greeter.Count", at(&server))
                .await
                .unwrap();
        stream.send(&0).await.unwrap();
        for expected in 0..3u64 {
            assert_eq!(stream.recv().await.unwrap().unwrap(), expected);
        }
        drop(stream);
        stops_growing(&produced, transport.name()).await;
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_timeout_header_is_a_400_and_the_connection_goes_on() {
    for transport in transports() {
        let hello = Handler::unary("Greeter.Hello", |_ctx: Context, name: String| async move {
            Ok(format!("Hello {name}"))
        });
        let server = server(&transport, hello).await;
        let address = server.address().unwrap();
        let connection = transport
            .dial(&address, DialOptions::default())
            .await
            .unwrap();
        let request = |timeout: Option<&str>| {
            let message = Message::new(r#""John""#)
                .with_header(headers::ENDPOINT, "Greeter.Hello")
                .with_header(headers::CONTENT_TYPE, "application/json");
            match timeout {
                Some(t) => message.with_header(headers::TIMEOUT, t),
                None => message,
            }
        };
        for bad in ["0", "-5", "abc", "18446744073709551615s", "584542046090y"] {
            let answer = connection.call(request(Some(bad))).await.unwrap();
            let err = streaming::frame_error(&answer)
                .unwrap_or_else(|| panic!("{}: Timeout {bad} was accepted", transport.name()));
            assert_eq!(err.code, 400, "{bad}: {err}");
            assert!(err.detail.contains("Timeout"), "{bad}: {err}");
        }
        // The same connection still serves, with or without a valid timeout.
        for timeout in [None, Some("1s"), Some("1000000000")] {
            let answer = connection.call(request(timeout)).await.unwrap();
            assert!(streaming::frame_error(&answer).is_none(), "{timeout:?}");
            assert_eq!(&answer.body[..], br#""Hello John""#);
        }
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_request_stream_ends_at_the_deadline() {
    for transport in transports() {
        // A client-streaming handler that waits for requests that never come.
        let waiting = Handler::client_stream(
            "Greeter.Sum",
            |_ctx: Context, mut nums: Streaming<u64>| async move {
                let mut total = 0;
                while let Some(n) = nums.next().await {
                    total += n?;
                }
                Ok(total)
            },
        );
        let server = server(&transport, waiting).await;
        let client = common::client(&transport);
        let ctx = Context::new().with_timeout(Duration::from_millis(50));
        let mut stream =
            client::stream::<u64, u64>(&client, &ctx, "greeter", "Greeter.Sum", at(&server))
                .await
                .unwrap();
        stream.send(&1).await.unwrap();
        let answer = tokio::time::timeout(WAIT, stream.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no answer", transport.name()));
        let err = answer.expect("an error frame").unwrap_err();
        assert_eq!(err.code, 408, "{}: {err}", transport.name());
        server.stop().await.unwrap();
    }
}
