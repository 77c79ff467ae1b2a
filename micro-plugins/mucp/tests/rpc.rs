//! The mucp client and server end to end over the in-memory transport: unary and the three
//! streaming shapes, metadata, deadlines, errors for bad input, retries and draining.

use futures::StreamExt;
use micro_core::client::{self, CallOptions, Client, Request};
use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::ServiceInfo;
use micro_core::registry::Registry;
use micro_core::server::{Handler, Server};
use micro_core::transport::Transport;
use micro_core::{Context, Error, Result, Streaming};
use micro_memory::{MemoryRegistry, MemoryTransport};
use micro_mucp::{ClientParts, MucpClient, MucpServer, ServerParts};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Hello {
    name: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Reply {
    msg: String,
}

struct World {
    transport: Arc<dyn Transport>,
    registry: Arc<dyn Registry>,
}

impl World {
    fn new() -> Self {
        World {
            transport: Arc::new(MemoryTransport::default()),
            registry: Arc::new(MemoryRegistry::default()),
        }
    }

    async fn server(&self, handlers: Vec<Handler>) -> MucpServer {
        let server = MucpServer::new(
            ServerConfig {
                grace_period: Duration::from_secs(2),
                ..Default::default()
            },
            ServerParts {
                info: ServiceInfo {
                    name: "greeter".into(),
                    version: "1.0.0".into(),
                    id: format!("greeter-{}", uuid::Uuid::new_v4()),
                },
                transport: self.transport.clone(),
                registry: Some(self.registry.clone()),
                broker: None,
                middleware: Middleware::default(),
                logger: Logger::none(),
            },
        );
        for h in handlers {
            server.handle(h).unwrap();
        }
        server.start().await.unwrap();
        server
    }

    fn client(&self) -> MucpClient {
        MucpClient::new(
            ClientConfig::default(),
            ClientParts {
                selector: None,
                transport: self.transport.clone(),
                broker: None,
                middleware: Middleware::default(),
                logger: Logger::none(),
            },
        )
    }
}

fn at(server: &MucpServer) -> CallOptions {
    let mut options = CallOptions::default();
    options.address = server.address();
    options
}

fn greeter() -> Vec<Handler> {
    vec![
        Handler::unary("Greeter.Hello", |ctx: Context, req: Hello| async move {
            let who = ctx.metadata.get("X-From").unwrap_or("nobody").to_string();
            Ok(Reply {
                msg: format!("Hello {} from {who}", req.name),
            })
        }),
        Handler::server_stream("Greeter.Count", |_ctx: Context, n: u32| async move {
            Ok(Streaming::from_values(0..n))
        }),
        Handler::client_stream(
            "Greeter.Sum",
            |_ctx: Context, mut nums: Streaming<u32>| async move {
                let mut total = 0;
                while let Some(n) = nums.next().await {
                    total += n?;
                }
                Ok(total)
            },
        ),
        Handler::bidi_stream(
            "Greeter.Echo",
            |_ctx: Context, words: Streaming<String>| async move {
                Ok(Streaming::new(words.map(|w| w.map(|w| w.to_uppercase()))))
            },
        ),
    ]
}

#[tokio::test]
async fn unary_call_with_metadata() {
    let world = World::new();
    let server = world.server(greeter()).await;
    let client = world.client();
    let ctx = Context::new().with_metadata("X-From", "tests");
    let reply: Reply = client::call(
        &client,
        &ctx,
        "greeter",
        "Greeter.Hello",
        &Hello {
            name: "John".into(),
        },
        at(&server),
    )
    .await
    .unwrap();
    assert_eq!(reply.msg, "Hello John from tests");
}

#[tokio::test]
async fn the_three_streaming_shapes() {
    let world = World::new();
    let server = world.server(greeter()).await;
    let client = world.client();
    let ctx = Context::new();
    // Server stream.
    let mut count =
        client::stream::<u32, u32>(&client, &ctx, "greeter", "Greeter.Count", at(&server))
            .await
            .unwrap();
    count.send(&5).await.unwrap();
    count.close_send();
    let mut got = Vec::new();
    while let Some(n) = count.recv().await {
        got.push(n.unwrap());
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    // Client stream.
    let mut sum = client::stream::<u32, u32>(&client, &ctx, "greeter", "Greeter.Sum", at(&server))
        .await
        .unwrap();
    for n in 1..=10 {
        sum.send(&n).await.unwrap();
    }
    sum.close_send();
    assert_eq!(sum.recv().await.unwrap().unwrap(), 55);
    assert!(sum.recv().await.is_none());
    // Bidirectional, interleaved.
    let mut echo =
        client::stream::<String, String>(&client, &ctx, "greeter", "Greeter.Echo", at(&server))
            .await
            .unwrap();
    for word in ["a", "b", "c"] {
        echo.send(&word.to_string()).await.unwrap();
        assert_eq!(echo.recv().await.unwrap().unwrap(), word.to_uppercase());
    }
    echo.close_send();
    assert!(echo.recv().await.is_none());
}

#[tokio::test]
async fn deadline_returns_408_and_the_handler_sees_cancellation() {
    let world = World::new();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let slow = Handler::unary("Greeter.Slow", move |ctx: Context, _: Hello| {
        let seen = seen_tx.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => { let _ = seen.send("finished"); }
                _ = ctx.cancelled() => { let _ = seen.send("cancelled"); }
            }
            Ok(Reply { msg: "late".into() })
        }
    });
    let server = world.server(vec![slow]).await;
    let client = world.client();
    let ctx = Context::new().with_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let err = client::call::<Hello, Reply>(
        &client,
        &ctx,
        "greeter",
        "Greeter.Slow",
        &Hello { name: "x".into() },
        at(&server),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code, 408, "{err}");
    let seen = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv())
        .await
        .unwrap();
    assert_eq!(seen, Some("cancelled"));
    // Reported, not asserted: timing belongs in benchmarks.
    eprintln!("408 after {took:?}");
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let world = World::new();
    let server = world.server(greeter()).await;
    let client = world.client();
    let raw = |endpoint: &str, content_type: &str, body: &'static str| {
        let mut req = Request::new("greeter", endpoint, body);
        req.content_type = content_type.into();
        req
    };
    let err = client
        .call(raw("Greeter.Nope", "application/json", "{}"), at(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code, 404, "{err}");
    assert!(err.detail.contains("Greeter.Nope"), "{err}");
    let err = client
        .call(raw("Greeter.Hello", "text/csv", "a,b"), at(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code, 415, "{err}");
    assert!(
        err.detail.contains("application/json") && err.detail.contains("application/protobuf"),
        "{err}"
    );
    let err = client
        .call(
            raw("Greeter.Hello", "application/json", "{not json"),
            at(&server),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    let err = client
        .call(
            raw("Greeter.Hello", "application/protobuf", ""),
            at(&server),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 415, "{err}");
    let err = client
        .call(raw("Greeter.Count", "application/json", "3"), at(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "a unary call to a streaming endpoint: {err}");
    // The server still serves.
    let ok: Reply = client::call(
        &client,
        &Context::new(),
        "greeter",
        "Greeter.Hello",
        &Hello { name: "Ann".into() },
        at(&server),
    )
    .await
    .unwrap();
    assert_eq!(ok.msg, "Hello Ann from nobody");
}

#[tokio::test]
async fn registers_with_endpoints_and_node_metadata_then_deregisters() {
    let world = World::new();
    let server = world.server(greeter()).await;
    let services = world.registry.get_service("greeter").await.unwrap();
    assert_eq!(services.len(), 1);
    let service = &services[0];
    assert_eq!(service.version, "1.0.0");
    let node = &service.nodes[0];
    assert!(node.id.starts_with("greeter-"));
    assert_eq!(Some(node.address.clone()), server.address());
    for (k, v) in [
        ("transport", "memory"),
        ("registry", "memory"),
        ("server", "mucp"),
        ("protocol", "mucp"),
        ("broker", "none"),
    ] {
        assert_eq!(node.metadata.get(k).map(String::as_str), Some(v), "{k}");
    }
    let names: Vec<_> = service.endpoints.iter().map(|e| e.name.as_str()).collect();
    for name in [
        "Debug.Health",
        "Debug.Stats",
        "Greeter.Count",
        "Greeter.Echo",
        "Greeter.Hello",
        "Greeter.Sum",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let count = service
        .endpoints
        .iter()
        .find(|e| e.name == "Greeter.Count")
        .unwrap();
    assert_eq!(
        count.metadata.get("stream").map(String::as_str),
        Some("true")
    );
    server.stop().await.unwrap();
    assert_eq!(
        world
            .registry
            .get_service("greeter")
            .await
            .unwrap_err()
            .code,
        404
    );
}

#[tokio::test]
async fn debug_health_and_stats() {
    let world = World::new();
    let server = world.server(greeter()).await;
    let client = world.client();
    let ctx = Context::new();
    let health: serde_json::Value = client::call(
        &client,
        &ctx,
        "greeter",
        "Debug.Health",
        &serde_json::json!({}),
        at(&server),
    )
    .await
    .unwrap();
    assert_eq!(health, serde_json::json!({"status": "ok"}));
    let stats: serde_json::Value = client::call(
        &client,
        &ctx,
        "greeter",
        "Debug.Stats",
        &serde_json::json!({}),
        at(&server),
    )
    .await
    .unwrap();
    for key in [
        "started", "uptime", "memory", "threads", "requests", "errors",
    ] {
        assert!(
            stats.get(key).is_some_and(|v| v.is_u64()),
            "{key} in {stats}"
        );
    }
    assert!(stats["requests"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn stop_drains_in_flight_requests() {
    let world = World::new();
    let slow = Handler::unary("Greeter.Slow", |_: Context, req: Hello| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Reply { msg: req.name })
    });
    let server = world.server(vec![slow]).await;
    let client = world.client();
    let options = at(&server);
    let call = tokio::spawn(async move {
        client::call::<Hello, Reply>(
            &client,
            &Context::new(),
            "greeter",
            "Greeter.Slow",
            &Hello {
                name: "done".into(),
            },
            options,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await.unwrap();
    assert_eq!(call.await.unwrap().unwrap().msg, "done");
}

#[tokio::test]
async fn retries_only_what_cannot_have_run_unless_idempotent() {
    let world = World::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let failing = Handler::unary("Greeter.Flaky", move |_: Context, _: Hello| {
        let runs = counted.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Err::<Reply, Error>(Error::internal("greeter", "boom"))
        }
    });
    let server = world.server(vec![failing]).await;
    let client = world.client();
    let ctx = Context::new();
    let hello = Hello { name: "x".into() };
    let mut options = at(&server);
    options.retries = Some(3);
    let err = client::call::<Hello, Reply>(
        &client,
        &ctx,
        "greeter",
        "Greeter.Flaky",
        &hello,
        options.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 500);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a handler error is not retried"
    );
    options.idempotent = true;
    let _ =
        client::call::<Hello, Reply>(&client, &ctx, "greeter", "Greeter.Flaky", &hello, options)
            .await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        5,
        "an idempotent call is retried"
    );
    // Nobody listening: connect fails before anything ran, so it is retried and then 503.
    let nowhere = CallOptions::default()
        .address("memory:does-not-exist")
        .retries(2);
    let err =
        client::call::<Hello, Reply>(&client, &ctx, "greeter", "Greeter.Flaky", &hello, nowhere)
            .await
            .unwrap_err();
    assert_eq!(err.code, 503, "{err}");
    let _: Result<()> = Ok(());
}

#[tokio::test]
async fn opening_a_stream_retries_within_the_callers_deadline() {
    let world = World::new();
    let client = world.client();
    // Nobody listening: each attempt fails before anything ran, so all are retried; with
    // 30 retries the waits between them add up to far more than the caller's deadline.
    let nowhere = CallOptions::default()
        .address("memory:does-not-exist")
        .retries(30);
    let ctx = Context::new().with_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = client::stream::<u32, u32>(&client, &ctx, "greeter", "Greeter.Count", nowhere)
        .await
        .err()
        .expect("nobody listens");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up only after {:?}",
        started.elapsed()
    );
    assert_eq!(err.code, 503, "the last attempt's error: {err}");
}
