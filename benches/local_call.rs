//! What a typed in-process call costs on top of calling the trait directly.
//!
//! `cargo bench --bench local_call` compares, for the same implementation:
//! - `direct`: `MyGreeter.hello(&ctx, req)` — a plain trait call;
//! - `in_process`: `GreeterClient::hello` through the in-process table (no middleware, no
//!   deadline) — what a monolith pays per call;
//! - `in_process_deadline`: the same with a deadline on the context;
//! - `in_process_middleware`: the same through one tower layer on each side.

use criterion::{Criterion, criterion_group, criterion_main};
use micro::in_process::LocalServices;
use micro::middleware::RpcLayer;
use micro::{Built, Context};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct HelloRequest {
    name: String,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct HelloReply {
    msg: String,
}

#[micro::service]
trait Greeter {
    async fn hello(&self, ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, _ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        Ok(HelloReply { msg: req.name })
    }
}

fn in_memory() -> Vec<(String, String)> {
    [
        ("MICRO_TRANSPORT", "memory"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
        ("MICRO_LOGGER_LEVEL", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn service(with_middleware: bool) -> micro::Service {
    let mut builder = micro::Service::builder()
        .name("greeter")
        .args(["bench"])
        .env(in_memory())
        .local_services(LocalServices::new())
        .handler(GreeterServer::new(MyGreeter));
    if with_middleware {
        let pass = || {
            RpcLayer::new(tower::util::MapRequestLayer::new(
                |r: micro::client::Request| r,
            ))
        };
        builder = builder.wrap_call(pass()).wrap_handler(pass());
    }
    match builder.try_build() {
        Ok(Built::Service(s)) => s,
        _ => panic!("build failed"),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = || HelloRequest {
        name: "John".into(),
    };
    let ctx = Context::new();
    let mut group = c.benchmark_group("hello");
    group.bench_function("direct", |b| {
        b.iter(|| rt.block_on(MyGreeter.hello(&ctx, request())))
    });
    for (name, middleware, deadline) in [
        ("in_process", false, false),
        ("in_process_deadline", false, true),
        ("in_process_middleware", true, false),
    ] {
        let service = service(middleware);
        rt.block_on(service.start()).unwrap();
        let client = GreeterClient::new(service.caller(), "greeter");
        let ctx = if deadline {
            Context::new().with_timeout(Duration::from_secs(3600))
        } else {
            Context::new()
        };
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(client.hello(&ctx, request())))
        });
        rt.block_on(service.stop()).unwrap();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
