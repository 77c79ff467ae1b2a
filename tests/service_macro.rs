//! `#[micro::service]` and `#[micro::subscriber]` at run time: every endpoint shape over RPC
//! and in-process, middleware and deadlines in-process, shapes in the registry, bad payloads,
//! and a subscriber fed through the broker.

use micro::client::{self, CallOptions, Request};
use micro::memory::{MemoryBroker, MemoryRegistry, MemoryTransport};
use micro::middleware::RpcLayer;
use micro::registry::{Registry, Value};
use micro::{Built, Context, Streaming};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct HelloRequest {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct HelloReply {
    msg: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct CountRequest {
    to: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Tick {
    n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Chunk {
    data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Summary {
    chunks: u32,
    bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Msg {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Nap {
    millis: u64,
}

#[micro::service]
trait Greeter {
    /// Says hello.
    async fn hello(
        &self,
        ctx: &micro::Context,
        req: HelloRequest,
    ) -> Result<HelloReply, micro::Error>;
    /// Counts from 1 to `to`.
    #[micro(name = "Count")]
    async fn count_up(
        &self,
        ctx: &micro::Context,
        req: CountRequest,
    ) -> micro::Result<Streaming<Tick>>;
    async fn upload(
        &self,
        ctx: &micro::Context,
        chunks: Streaming<Chunk>,
    ) -> micro::Result<Summary>;
    async fn chat(
        &self,
        ctx: &micro::Context,
        msgs: Streaming<Msg>,
    ) -> micro::Result<Streaming<Msg>>;
    #[micro(idempotent)]
    async fn nap(&self, ctx: &micro::Context, req: Nap) -> micro::Result<Nap>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, _ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        Ok(HelloReply {
            msg: format!("Hello {}", req.name),
        })
    }

    async fn count_up(&self, _ctx: &Context, req: CountRequest) -> micro::Result<Streaming<Tick>> {
        Ok(Streaming::from_values((1..=req.to).map(|n| Tick { n })))
    }

    async fn upload(&self, _ctx: &Context, mut chunks: Streaming<Chunk>) -> micro::Result<Summary> {
        let mut summary = Summary {
            chunks: 0,
            bytes: 0,
        };
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            summary.chunks += 1;
            summary.bytes += chunk.data.len();
        }
        Ok(summary)
    }

    async fn chat(&self, _ctx: &Context, msgs: Streaming<Msg>) -> micro::Result<Streaming<Msg>> {
        use futures::StreamExt;
        Ok(Streaming::new(msgs.map(|m| {
            m.map(|m| Msg {
                text: m.text.to_uppercase(),
            })
        })))
    }

    async fn nap(&self, _ctx: &Context, req: Nap) -> micro::Result<Nap> {
        tokio::time::sleep(Duration::from_millis(req.millis)).await;
        Ok(req)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
struct OrderPlaced {
    id: u32,
    /// Where the subscriber writes what it saw (the test's way to observe it: no globals).
    receipt: std::path::PathBuf,
}

/// Writes a receipt for each order.
#[micro::subscriber(topic = "orders.placed", queue = "mailer")]
async fn on_order(ctx: &micro::Context, event: OrderPlaced) -> micro::Result<()> {
    let from = ctx.metadata.get("from").unwrap_or("nobody");
    let text = format!("order {} from {from}", event.id);
    std::fs::write(&event.receipt, text).map_err(|e| micro::Error::internal("test", e.to_string()))
}

fn in_memory() -> Vec<(String, String)> {
    [
        ("MICRO_TRANSPORT", "memory"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn build(builder: micro::ServiceBuilder) -> micro::Service {
    match builder.args(["service-macro"]).env(in_memory()).try_build() {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build: {e}"),
    }
}

/// One registry, transport and broker for both services, so they reach each other over RPC.
struct Shared {
    registry: MemoryRegistry,
    transport: MemoryTransport,
    broker: MemoryBroker,
}

impl Shared {
    fn new() -> Self {
        Shared {
            registry: MemoryRegistry::new(),
            transport: MemoryTransport::new(),
            broker: MemoryBroker::new(),
        }
    }

    fn builder(&self, name: &str) -> micro::ServiceBuilder {
        micro::Service::builder()
            .name(name)
            .registry(Arc::new(self.registry.clone()))
            .transport(Arc::new(self.transport.clone()))
            .broker(Arc::new(self.broker.clone()))
    }
}

async fn collect<T: Send + 'static>(mut stream: Streaming<T>) -> micro::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item?);
    }
    Ok(out)
}

fn chunks() -> Streaming<Chunk> {
    Streaming::from_values(["ab", "cde"].map(|d| Chunk { data: d.into() }))
}

fn msgs() -> Streaming<Msg> {
    Streaming::from_values(["hi", "there"].map(|t| Msg { text: t.into() }))
}

/// Every shape through the client, wherever the implementation runs.
async fn every_shape(greeter: &GreeterClient) {
    let ctx = Context::new();
    let reply = greeter
        .hello(
            &ctx,
            HelloRequest {
                name: "John".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.msg, "Hello John");
    let ticks = collect(
        greeter
            .count_up(&ctx, CountRequest { to: 3 })
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(ticks, vec![Tick { n: 1 }, Tick { n: 2 }, Tick { n: 3 }]);
    let summary = greeter.upload(&ctx, chunks()).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            chunks: 2,
            bytes: 5
        }
    );
    let echoed = collect(greeter.chat(&ctx, msgs()).await.unwrap())
        .await
        .unwrap();
    let texts: Vec<&str> = echoed.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["HI", "THERE"]);
    assert_eq!(
        greeter.nap(&ctx, Nap { millis: 1 }).await.unwrap(),
        Nap { millis: 1 }
    );
}

#[tokio::test]
async fn every_shape_remotely() {
    let shared = Shared::new();
    let server = build(
        shared
            .builder("greeter")
            .handler(GreeterServer::new(MyGreeter)),
    );
    let caller = build(shared.builder("caller"));
    server.start().await.unwrap();
    // The caller has its own in-process table: greeter is not in it, so calls go over RPC.
    assert!(caller.caller().local.get("greeter", "Greeter").is_none());
    every_shape(&GreeterClient::new(caller.caller(), "greeter")).await;
    server.stop().await.unwrap();
}

fn counter(count: Arc<AtomicUsize>) -> RpcLayer {
    RpcLayer::new(tower::util::MapRequestLayer::new(move |req: Request| {
        count.fetch_add(1, Ordering::SeqCst);
        req
    }))
}

#[tokio::test]
async fn in_process_calls_run_middleware_and_deadlines() {
    // Both services share one in-process table (the caller is built with the server's) but
    // nothing else: each gets its own memory registry and transport, so the caller has no RPC
    // route to greeter at all. A call that succeeds can only have gone in-process.
    // (`micro::local` names the `local` registry plugin, so the table's type is not named here.)
    let (calls, handled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let server = build(
        micro::Service::builder()
            .name("greeter")
            .handler(GreeterServer::new(MyGreeter))
            .wrap_handler(counter(handled.clone())),
    );
    let caller = build(
        micro::Service::builder()
            .name("caller")
            .local_services(server.caller().local)
            .wrap_call(counter(calls.clone())),
    );
    server.start().await.unwrap();
    let rpc = caller.components().client.clone().unwrap();
    let remote = client::call::<HelloRequest, HelloReply>(
        rpc.as_ref(),
        &Context::new(),
        "greeter",
        "Greeter.Hello",
        &HelloRequest {
            name: "John".into(),
        },
        CallOptions::default().retries(0),
    )
    .await;
    assert!(
        remote.is_err(),
        "the caller must have no RPC route to greeter"
    );
    let (calls_before, handled_before) =
        (calls.load(Ordering::SeqCst), handled.load(Ordering::SeqCst));

    let greeter = GreeterClient::new(caller.caller(), "greeter");
    let reply = greeter
        .hello(
            &Context::new(),
            HelloRequest {
                name: "John".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.msg, "Hello John");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        calls_before + 1,
        "the caller's call layer ran"
    );
    assert_eq!(
        handled.load(Ordering::SeqCst),
        handled_before + 1,
        "the server's handler layer ran"
    );

    every_shape(&greeter).await;

    let started = Instant::now();
    let ctx = Context::new().with_timeout(Duration::from_millis(100));
    let err = greeter.nap(&ctx, Nap { millis: 1000 }).await.unwrap_err();
    assert_eq!(err.code, 408, "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the deadline cut the call short"
    );

    // Once greeter stops, it leaves the table and the client has nowhere to go.
    server.stop().await.unwrap();
    assert!(
        greeter
            .hello(&Context::new(), HelloRequest { name: "x".into() })
            .await
            .is_err()
    );
}

fn shape(name: &str, field: &str) -> Value {
    Value {
        name: name.into(),
        type_: name.into(),
        values: vec![Value {
            name: field.into(),
            type_: "string".into(),
            values: vec![],
        }],
    }
}

#[tokio::test]
async fn registry_shows_endpoints_with_shapes_and_metadata() {
    let shared = Shared::new();
    let server = build(
        shared
            .builder("greeter")
            .handler(GreeterServer::new(MyGreeter))
            .subscriber(on_order_subscription()),
    );
    server.start().await.unwrap();
    let services = shared.registry.get_service("greeter").await.unwrap();
    let endpoints = &services[0].endpoints;
    let endpoint = |name: &str| {
        endpoints
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} in {endpoints:#?}"))
    };
    let hello = endpoint("Greeter.Hello");
    assert_eq!(hello.request, Some(shape("HelloRequest", "name")));
    assert_eq!(hello.response, Some(shape("HelloReply", "msg")));
    assert_eq!(
        hello.metadata.get("description").map(String::as_str),
        Some("Says hello.")
    );
    let count = endpoint("Greeter.Count");
    assert_eq!(
        count.metadata.get("stream").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        count.response.as_ref().map(|v| v.type_.as_str()),
        Some("Tick")
    );
    assert_eq!(
        endpoint("Greeter.Upload")
            .request
            .as_ref()
            .map(|v| v.name.as_str()),
        Some("Chunk")
    );
    assert!(endpoint("Greeter.Chat").metadata.contains_key("stream"));
    assert_eq!(
        endpoint("Greeter.Nap")
            .metadata
            .get("idempotent")
            .map(String::as_str),
        Some("true")
    );
    assert!(!hello.metadata.contains_key("idempotent"));
    let order = endpoint("orders.placed");
    assert_eq!(
        order.metadata.get("subscriber").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        order.metadata.get("queue").map(String::as_str),
        Some("mailer")
    );
    assert_eq!(
        order.metadata.get("description").map(String::as_str),
        Some("Writes a receipt for each order.")
    );
    assert_eq!(
        order.request.as_ref().map(|v| v.name.as_str()),
        Some("OrderPlaced")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_payload_is_a_bad_request() {
    let shared = Shared::new();
    let server = build(
        shared
            .builder("greeter")
            .handler(GreeterServer::new(MyGreeter)),
    );
    let caller = build(shared.builder("caller"));
    server.start().await.unwrap();
    let rpc = caller.components().client.clone().unwrap();
    let err = rpc
        .call(
            Request::new("greeter", "Greeter.Hello", "{bad"),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn subscriber_handles_published_messages() {
    let shared = Shared::new();
    let server = build(shared.builder("mailer").subscriber(on_order_subscription()));
    let caller = build(shared.builder("shop"));
    server.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("receipt");
    let rpc = caller.components().client.clone().unwrap();
    let event = OrderPlaced {
        id: 7,
        receipt: receipt.clone(),
    };
    client::publish(rpc.as_ref(), "orders.placed", &event)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        match std::fs::read_to_string(&receipt) {
            Ok(text) if !text.is_empty() => break text,
            _ if Instant::now() > deadline => panic!("the subscriber never ran"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    assert!(text.starts_with("order 7 from "), "{text}");
    server.stop().await.unwrap();
}

/// Hand-written prost messages that also derive serde, as the protobuf build helper makes them.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
struct Pong {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[micro::service(codec = "protobuf")]
trait Echo {
    async fn ping(&self, ctx: &Context, req: Ping) -> micro::Result<Pong>;
    async fn pings(&self, ctx: &Context, req: Streaming<Ping>) -> micro::Result<Streaming<Pong>>;
}

struct MyEcho;

impl Echo for MyEcho {
    async fn ping(&self, _ctx: &Context, req: Ping) -> micro::Result<Pong> {
        Ok(Pong {
            count: req.text.len() as u32,
            text: req.text,
        })
    }

    async fn pings(&self, _ctx: &Context, req: Streaming<Ping>) -> micro::Result<Streaming<Pong>> {
        use futures::StreamExt;
        Ok(Streaming::new(req.map(|p| {
            p.map(|p| Pong {
                count: 1,
                text: p.text,
            })
        })))
    }
}

async fn echo_both_shapes(echo: &EchoClient) {
    let ctx = Context::new();
    let pong = echo.ping(&ctx, Ping { text: "abc".into() }).await.unwrap();
    assert_eq!(
        pong,
        Pong {
            text: "abc".into(),
            count: 3
        }
    );
    let pings = Streaming::from_values(["a", "b"].map(|t| Ping { text: t.into() }));
    let pongs = collect(echo.pings(&ctx, pings).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        pongs.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[tokio::test]
async fn protobuf_services_speak_protobuf_on_the_wire() {
    use prost::Message as _;
    let shared = Shared::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let content_types = RpcLayer::new(tower::util::MapRequestLayer::new(move |req: Request| {
        record.lock().unwrap().push(req.content_type.clone());
        req
    }));
    let server = build(
        shared
            .builder("echo")
            .handler(EchoServer::new(MyEcho))
            .wrap_handler(content_types),
    );
    let caller = build(shared.builder("caller"));
    server.start().await.unwrap();
    echo_both_shapes(&EchoClient::new(caller.caller(), "echo")).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [micro::codec::PROTOBUF],
        "the generated client sent protobuf"
    );

    // A raw protobuf body gets a protobuf answer; JSON still works for curl users.
    let rpc = caller.components().client.clone().unwrap();
    let body = Ping {
        text: "wire".into(),
    }
    .encode_to_vec();
    let request = Request {
        content_type: micro::codec::PROTOBUF.into(),
        ..Request::new("echo", "Echo.Ping", body)
    };
    let response = rpc.call(request, CallOptions::default()).await.unwrap();
    assert_eq!(
        Pong::decode(&response.body[..]).unwrap(),
        Pong {
            text: "wire".into(),
            count: 4
        }
    );
    let response = rpc
        .call(
            Request::new("echo", "Echo.Ping", r#"{"text":"json"}"#),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&response.body).unwrap()["count"],
        4
    );
    // No JsonSchema on these types: the endpoints are published without shapes.
    let services = shared.registry.get_service("echo").await.unwrap();
    let ping = services[0]
        .endpoints
        .iter()
        .find(|e| e.name == "Echo.Ping")
        .unwrap();
    assert_eq!(
        (ping.request.as_ref(), ping.response.as_ref()),
        (None, None)
    );
    server.stop().await.unwrap();

    // In-process, through a shared table.
    let server = build(
        micro::Service::builder()
            .name("echo")
            .handler(EchoServer::new(MyEcho)),
    );
    let caller = build(
        micro::Service::builder()
            .name("caller")
            .local_services(server.caller().local),
    );
    server.start().await.unwrap();
    echo_both_shapes(&EchoClient::new(caller.caller(), "echo")).await;
    server.stop().await.unwrap();
}
