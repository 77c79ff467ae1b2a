//! A server stopping with calls in flight, over the tcp and http transports alike: the calls
//! in flight finish, a new call during the drain gets a retryable 503 `go.micro.server`, and
//! a call still running when the grace period is over gets a clear error instead of a hang.

mod common;

use micro_core::client::{self, CallOptions};
use micro_core::config::ServerConfig;
use micro_core::server::{Handler, Server};
use micro_core::transport::Transport;
use micro_core::{Context, Error, Streaming};
use micro_http::HttpTransport;
use micro_mucp::{MucpClient, MucpServer};
use micro_tcp::TcpTransport;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Calls in flight when the server is stopped.
const CALLS: usize = 20;
/// How long a check waits for what should happen (a functional bound, not a speed check).
const WAIT: Duration = Duration::from_secs(20);

fn transports() -> Vec<Arc<dyn Transport>> {
    vec![
        Arc::new(TcpTransport::default()),
        Arc::new(HttpTransport::default()),
    ]
}

/// Handler entries and exits.
#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// `Greeter.Slow`: waits `delay`, then answers its request plus one.
fn slow(counts: Arc<Counts>, delay: Duration) -> Handler {
    Handler::unary("Greeter.Slow", move |_ctx: Context, n: u64| {
        let counts = counts.clone();
        async move {
            counts.started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            counts.finished.fetch_add(1, Ordering::SeqCst);
            Ok::<u64, Error>(n + 1)
        }
    })
}

/// `Greeter.Count`: a stream of three numbers.
fn counting() -> Handler {
    Handler::server_stream("Greeter.Count", |_ctx: Context, start: u64| async move {
        Ok(Streaming::new(futures::stream::iter(
            (start..start + 3).map(Ok::<u64, Error>),
        )))
    })
}

async fn server(transport: &Arc<dyn Transport>, grace: Duration, handler: Handler) -> MucpServer {
    let config = ServerConfig {
        grace_period: grace,
        ..Default::default()
    };
    common::server(transport, config, [handler, counting()]).await
}

fn at(address: &Option<String>) -> CallOptions {
    let mut options = CallOptions::default()
        .request_timeout(Duration::from_secs(120))
        .retries(0);
    options.address = address.clone();
    options
}

/// Starts `CALLS` calls of `Greeter.Slow` and waits until every handler runs.
async fn in_flight(
    client: &MucpClient,
    address: &Option<String>,
    counts: &Counts,
    what: &str,
) -> Vec<tokio::task::JoinHandle<micro_core::Result<u64>>> {
    let calls: Vec<_> = (0..CALLS as u64)
        .map(|n| {
            let (client, options) = (client.clone(), at(address));
            tokio::spawn(async move {
                let ctx = Context::new();
                client::call::<u64, u64>(&client, &ctx, "greeter", "Greeter.Slow", &n, options)
                    .await
            })
        })
        .collect();
    tokio::time::timeout(WAIT, async {
        while counts.started.load(Ordering::SeqCst) < CALLS {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the calls never all reached the handler"));
    calls
}

/// The answer to a new streaming call: its error, opening or receiving.
async fn new_stream_call(client: &MucpClient, address: &Option<String>) -> Error {
    let ctx = Context::new();
    let mut stream =
        match client::stream::<u64, u64>(client, &ctx, "greeter", "Greeter.Count", at(address))
            .await
        {
            Ok(stream) => stream,
            Err(err) => return err,
        };
    if let Err(err) = stream.send(&1).await {
        return err;
    }
    stream.close_send();
    match stream.recv().await {
        Some(Err(err)) => err,
        other => panic!("a stream opened while the server stops was served: {other:?}"),
    }
}

fn assert_shutting_down(err: &Error, what: &str) {
    assert_eq!(err.code, 503, "{what}: {err}");
    assert_eq!(err.id, "go.micro.server", "{what}: {err}");
    assert!(err.detail.contains("shutting down"), "{what}: {err}");
    assert!(
        err.retryable,
        "{what}: no handler ran, so it is retryable: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_calls_in_flight_finish_and_refuses_new_ones() {
    for transport in transports() {
        let name = transport.name().to_string();
        let counts = Arc::new(Counts::default());
        let server = server(
            &transport,
            Duration::from_secs(60),
            slow(counts.clone(), Duration::from_secs(1)),
        )
        .await;
        let address = server.address();
        let client = common::client(&transport);
        // A stream first, so that the http client has its HTTP/2 connection open.
        let mut warm = client::stream::<u64, u64>(
            &client,
            &Context::new(),
            "greeter",
            "Greeter.Count",
            at(&address),
        )
        .await
        .unwrap();
        warm.send(&0).await.unwrap();
        assert_eq!(warm.recv().await.unwrap().unwrap(), 0, "{name}");
        drop(warm);

        let calls = in_flight(&client, &address, &counts, &name).await;
        let stopping = tokio::spawn({
            let server = server.clone();
            async move { server.stop().await }
        });
        // A new call on an open connection while the server drains.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !stopping.is_finished(),
            "{name}: stop did not wait for the calls"
        );
        let err = new_stream_call(&client, &address).await;
        assert_shutting_down(&err, &format!("{name}: a new stream"));
        if name == "tcp" {
            let err = client::call::<u64, u64>(
                &client,
                &Context::new(),
                "greeter",
                "Greeter.Slow",
                &1,
                at(&address),
            )
            .await
            .unwrap_err();
            assert_shutting_down(&err, &format!("{name}: a new unary call"));
        }

        tokio::time::timeout(WAIT, stopping)
            .await
            .unwrap_or_else(|_| panic!("{name}: stop did not return"))
            .unwrap()
            .unwrap();
        assert_eq!(
            counts.finished.load(Ordering::SeqCst),
            CALLS,
            "{name}: stop returned before the calls in flight finished"
        );
        for (n, call) in calls.into_iter().enumerate() {
            let answer = tokio::time::timeout(WAIT, call)
                .await
                .unwrap_or_else(|_| panic!("{name}: call {n} hangs"))
                .unwrap();
            assert_eq!(
                answer.unwrap_or_else(|e| panic!("{name}: call {n} was cut: {e}")),
                n as u64 + 1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_still_running_after_the_grace_period_get_a_clear_error() {
    for transport in transports() {
        let name = transport.name().to_string();
        let counts = Arc::new(Counts::default());
        let server = server(
            &transport,
            Duration::from_millis(200),
            slow(counts.clone(), Duration::from_secs(3600)),
        )
        .await;
        let address = server.address();
        let client = common::client(&transport);
        let calls = in_flight(&client, &address, &counts, &name).await;
        tokio::time::timeout(WAIT, server.stop())
            .await
            .unwrap_or_else(|_| panic!("{name}: stop did not return after the grace period"))
            .unwrap();
        for (n, call) in calls.into_iter().enumerate() {
            let err = tokio::time::timeout(WAIT, call)
                .await
                .unwrap_or_else(|_| panic!("{name}: call {n} hangs after the grace period"))
                .unwrap()
                .unwrap_err();
            assert_eq!(err.code, 503, "{name}: call {n}: {err}");
            assert_eq!(err.id, "go.micro.server", "{name}: call {n}: {err}");
            assert!(
                err.detail.contains("grace period"),
                "{name}: call {n}: the error says why: {err}"
            );
            assert!(!err.retryable, "{name}: call {n}: the handler ran: {err}");
        }
        assert_eq!(counts.finished.load(Ordering::SeqCst), 0, "{name}");
    }
}
