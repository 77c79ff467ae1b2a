//! The same `#[micro::service]` code over mucp and over grpc, chosen by configuration only
//! (`MICRO_CLIENT`/`MICRO_SERVER`): every call shape, errors, deadlines and metadata, and
//! the registration of a grpc node.
#![cfg(feature = "grpc")]

use micro::client::CallOptions;
use micro::memory::{MemoryBroker, MemoryRegistry, MemoryTransport};
use micro::registry::Registry;
use micro::{Built, Context, Streaming};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct HelloRequest {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct HelloReply {
    msg: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Tick {
    n: u32,
}

#[micro::service]
trait Greeter {
    /// Says hello; `name: "nobody"` is a 404, and the reply names the caller's `x-user`.
    async fn hello(&self, ctx: &micro::Context, req: HelloRequest) -> micro::Result<HelloReply>;
    /// Counts from 1 to `n`; fails at 3 when `n` is 99.
    async fn count(&self, ctx: &micro::Context, req: Tick) -> micro::Result<Streaming<Tick>>;
    /// Sums the ticks.
    async fn sum(&self, ctx: &micro::Context, req: Streaming<Tick>) -> micro::Result<Tick>;
    /// Doubles each tick.
    async fn double(
        &self,
        ctx: &micro::Context,
        req: Streaming<Tick>,
    ) -> micro::Result<Streaming<Tick>>;
    /// Sleeps `n` milliseconds.
    async fn nap(&self, ctx: &micro::Context, req: Tick) -> micro::Result<Tick>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        if req.name == "nobody" {
            return Err(micro::Error::not_found("greeter", "nobody is not here"));
        }
        let user = ctx.metadata.get("x-user").unwrap_or("anonymous");
        Ok(HelloReply {
            msg: format!("Hello {} from {user}", req.name),
        })
    }

    async fn count(&self, _ctx: &Context, req: Tick) -> micro::Result<Streaming<Tick>> {
        if req.n == 99 {
            let items = (1..=2)
                .map(|n| Ok(Tick { n }))
                .chain([Err(micro::Error::conflict("greeter", "stopped at 3"))]);
            return Ok(Streaming::new(futures::stream::iter(items)));
        }
        Ok(Streaming::from_values((1..=req.n).map(|n| Tick { n })))
    }

    async fn sum(&self, _ctx: &Context, mut req: Streaming<Tick>) -> micro::Result<Tick> {
        let mut n = 0;
        while let Some(tick) = req.next().await {
            n += tick?.n;
        }
        Ok(Tick { n })
    }

    async fn double(&self, _ctx: &Context, req: Streaming<Tick>) -> micro::Result<Streaming<Tick>> {
        use futures::StreamExt;
        Ok(Streaming::new(req.map(|t| t.map(|t| Tick { n: t.n * 2 }))))
    }

    async fn nap(&self, ctx: &Context, req: Tick) -> micro::Result<Tick> {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(req.n.into())) => Ok(req),
            _ = ctx.cancelled() => Err(micro::Error::timeout("greeter", "napped too long")),
        }
    }
}

/// The service builder of `name` on a shared in-memory registry and broker, with `rpc` as
/// its client and server plugin (`mucp` or `grpc`), set as an application would: env.
fn build(
    name: &str,
    rpc: &str,
    registry: &MemoryRegistry,
    transport: &MemoryTransport,
    handler: bool,
) -> micro::Service {
    let mut builder = micro::Service::builder()
        .name(name)
        .registry(Arc::new(registry.clone()))
        .broker(Arc::new(MemoryBroker::new()))
        .transport(Arc::new(transport.clone()))
        .args(["grpc-test"])
        .env([
            ("MICRO_CLIENT", rpc),
            ("MICRO_SERVER", rpc),
            ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
        ]);
    if handler {
        builder = builder.handler(GreeterServer::new(MyGreeter));
    }
    match builder.try_build() {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build: {e}"),
    }
}

async fn collect<T: Send + 'static>(mut stream: Streaming<T>) -> micro::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item?);
    }
    Ok(out)
}

fn ticks(ns: &[u32]) -> Vec<Tick> {
    ns.iter().map(|&n| Tick { n }).collect()
}

/// Every shape, errors, a deadline and metadata, through the generated client.
async fn the_greeter_works(rpc: &str) {
    let (registry, transport) = (MemoryRegistry::new(), MemoryTransport::new());
    let server = build("greeter", rpc, &registry, &transport, true);
    let caller = build("caller", rpc, &registry, &transport, false);
    server.start().await.unwrap();
    assert!(caller.caller().local.get("greeter", "Greeter").is_none());
    let greeter = GreeterClient::new(caller.caller(), "greeter");
    let ctx = Context::new().with_metadata("X-User", "ann");

    let reply = greeter
        .hello(
            &ctx,
            HelloRequest {
                name: "John".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.msg, "Hello John from ann", "{rpc}");

    let err = greeter
        .hello(
            &ctx,
            HelloRequest {
                name: "nobody".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.id.as_str()),
        (404, "greeter"),
        "{rpc}: {err}"
    );
    assert_eq!(err.detail, "nobody is not here");

    let counted = collect(greeter.count(&ctx, Tick { n: 3 }).await.unwrap()).await;
    assert_eq!(counted.unwrap(), ticks(&[1, 2, 3]), "{rpc}");
    let mut failing = greeter.count(&ctx, Tick { n: 99 }).await.unwrap();
    assert_eq!(failing.next().await.unwrap().unwrap(), Tick { n: 1 });
    assert_eq!(failing.next().await.unwrap().unwrap(), Tick { n: 2 });
    let err = failing.next().await.unwrap().unwrap_err();
    assert_eq!(err.code, 409, "{rpc}: {err}");

    let sum = greeter
        .sum(&ctx, Streaming::from_values(ticks(&[1, 2, 3, 4])))
        .await
        .unwrap();
    assert_eq!(sum, Tick { n: 10 }, "{rpc}");

    let doubled = collect(
        greeter
            .double(&ctx, Streaming::from_values(ticks(&[1, 5])))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doubled.unwrap(), ticks(&[2, 10]), "{rpc}");

    let short = Context::new().with_timeout(Duration::from_millis(100));
    let err = greeter.nap(&short, Tick { n: 5_000 }).await.unwrap_err();
    assert_eq!(err.code, 408, "{rpc}: {err}");
    assert_eq!(
        greeter.nap(&ctx, Tick { n: 1 }).await.unwrap(),
        Tick { n: 1 },
        "{rpc}"
    );

    let record = registry.get_service("greeter").await.unwrap();
    let node = &record[0].nodes[0];
    assert_eq!(node.metadata.get("server").map(String::as_str), Some(rpc));
    assert_eq!(node.metadata.get("protocol").map(String::as_str), Some(rpc));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_service_over_mucp() {
    the_greeter_works("mucp").await;
}

#[tokio::test]
async fn the_same_service_over_grpc() {
    the_greeter_works("grpc").await;
}

/// A grpc node is found through the registry and called at its address; a call straight to
/// a stopped server fails with a transport error, retryable once nothing was sent.
#[tokio::test]
async fn grpc_client_calls_addresses_and_reports_dead_ones() {
    let (registry, transport) = (MemoryRegistry::new(), MemoryTransport::new());
    let server = build("greeter", "grpc", &registry, &transport, true);
    let caller = build("caller", "grpc", &registry, &transport, false);
    server.start().await.unwrap();
    let address = server
        .components()
        .server
        .as_ref()
        .and_then(|s| s.address())
        .unwrap();
    let direct = GreeterClient::new(caller.caller(), "greeter")
        .with_options(CallOptions::default().address(address.clone()));
    let reply = direct
        .hello(&Context::new(), HelloRequest { name: "Ann".into() })
        .await
        .unwrap();
    assert_eq!(reply.msg, "Hello Ann from anonymous");
    server.stop().await.unwrap();
    // The open connection broke under the call: it may have run, so it is not retried.
    let err = direct
        .hello(&Context::new(), HelloRequest { name: "Ann".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code, 503, "{err}");
    // Reconnecting is refused: the call never left, so it is retryable (and was retried).
    let err = direct
        .hello(&Context::new(), HelloRequest { name: "Ann".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code, 503, "{err}");
    assert!(err.retryable, "{err}");
    assert!(err.detail.contains("cannot connect"), "{err}");
}
