//! The generated service over the memory plugins: a second service reaches it over the
//! memory transport, and the wire speaks protobuf.

use micro::client::{CallOptions, Request};
use micro::{Context, Streaming};
use prost::Message as _;
use proto_greeter::MyGreeter;
use proto_greeter::greeter::{
    CountRequest, Greeter as _, GreeterClient, GreeterServer, HelloReply, HelloRequest, Tick,
};

fn in_memory() -> [(&'static str, &'static str); 4] {
    [
        ("MICRO_TRANSPORT", "memory"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
        ("MICRO_LOGGER_LEVEL", "warn"),
    ]
}

/// The greeter, on memory plugins (chosen through the environment).
fn server() -> micro::Service {
    micro::Service::builder()
        .name("greeter")
        .args(["proto-greeter"])
        .env(in_memory())
        .handler(GreeterServer::new(MyGreeter))
        .build()
        .unwrap()
}

/// Another service of the same process, sharing the greeter's memory registry and transport
/// but not its in-process table: its calls go over the transport.
fn caller(server: &micro::Service) -> micro::Service {
    let shared = server.components();
    micro::Service::builder()
        .name("caller")
        .args(["caller"])
        .env(in_memory())
        .registry(shared.registry.clone().unwrap())
        .transport(shared.transport.clone().unwrap())
        .build()
        .unwrap()
}

async fn collect<T: Send + 'static>(mut stream: Streaming<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap());
    }
    out
}

#[tokio::test]
async fn the_generated_client_calls_over_the_memory_transport() {
    let server = server();
    let caller = caller(&server);
    server.start().await.unwrap();
    assert!(caller.caller().local.get("greeter", "Greeter").is_none());
    let greeter = GreeterClient::new(caller.caller(), "greeter");
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
    let ticks = collect(greeter.count(&ctx, CountRequest { to: 3 }).await.unwrap()).await;
    assert_eq!(ticks, [1, 2, 3].map(|n| Tick { n }));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_wire_speaks_protobuf_and_json() {
    let server = server();
    let caller = caller(&server);
    server.start().await.unwrap();
    let rpc = caller.components().client.clone().unwrap();

    // A prost-encoded request gets a prost-encoded reply.
    let body = HelloRequest {
        name: "John".into(),
    }
    .encode_to_vec();
    let request = Request {
        content_type: micro::codec::PROTOBUF.into(),
        ..Request::new("greeter", "Greeter.Hello", body)
    };
    let response = rpc.call(request, CallOptions::default()).await.unwrap();
    assert_eq!(response.content_type, micro::codec::PROTOBUF);
    let reply = HelloReply::decode(&response.body[..]).unwrap();
    assert_eq!(reply.msg, "Hello John");

    // The generated messages derive serde too: JSON callers (curl, `micro call`) still work.
    let response = rpc
        .call(
            Request::new("greeter", "Greeter.Hello", r#"{"name":"Jane"}"#),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(json["msg"], "Hello Jane");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn endpoints_are_registered_with_their_shapes_and_docs() {
    let server = server();
    server.start().await.unwrap();
    let registry = server.components().registry.clone().unwrap();
    let services = registry.get_service("greeter").await.unwrap();
    let hello = services[0]
        .endpoints
        .iter()
        .find(|e| e.name == "Greeter.Hello")
        .unwrap();
    let request = hello.request.as_ref().unwrap();
    assert_eq!(request.name, "HelloRequest");
    assert_eq!(request.values[0].name, "name");
    assert_eq!(request.values[0].type_, "string");
    assert_eq!(
        hello.metadata.get("description").map(String::as_str),
        Some("Says hello to `name`.")
    );
    let count = services[0]
        .endpoints
        .iter()
        .find(|e| e.name == "Greeter.Count")
        .unwrap();
    assert_eq!(count.response.as_ref().unwrap().name, "Tick");
    server.stop().await.unwrap();
}
