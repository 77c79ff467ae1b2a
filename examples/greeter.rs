//! The greeter: a service answering `Greeter.Hello`, and a client calling it.
//!
//! ```sh
//! cargo run --example greeter               # server and client in one process
//! cargo run --example greeter -- --server   # only the server (until Ctrl-C)
//! cargo run --example greeter -- --client   # only the client; finds the server via `local`
//! ```
//!
//! In one process the typed client calls the implementation directly (no socket, no
//! encoding); with `--client` it finds the server in the registry and calls it over `tcp`.

use micro::{Context, Streaming};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What `Greeter.Hello` takes.
#[derive(Serialize, Deserialize, JsonSchema, Debug)]
pub struct HelloRequest {
    /// Who to greet.
    pub name: String,
}

/// What `Greeter.Hello` answers.
#[derive(Serialize, Deserialize, JsonSchema, Debug)]
pub struct HelloReply {
    /// The greeting.
    pub msg: String,
}

/// The greeter service.
#[micro::service]
pub trait Greeter {
    /// Says hello to `name`.
    async fn hello(&self, ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply>;
    /// Counts from 1 up to the number given.
    async fn count(&self, ctx: &Context, to: u32) -> micro::Result<Streaming<u32>>;
}

/// The implementation.
struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, _ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        Ok(HelloReply {
            msg: format!("Hello {}", req.name),
        })
    }

    async fn count(&self, _ctx: &Context, to: u32) -> micro::Result<Streaming<u32>> {
        Ok(Streaming::from_values(1..=to))
    }
}

/// Calls `Greeter.Hello` through the typed client and prints the answer.
async fn say_hello(greeter: &impl Greeter) -> micro::Result<()> {
    let request = HelloRequest {
        name: "John".into(),
    };
    let reply = greeter.hello(&Context::new(), request).await?;
    println!("{}", reply.msg);
    Ok(())
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    let service = micro::Service::builder()
        .name("greeter")
        .version("1.0.0")
        .usage("The greeter demo: a service and a client of Greeter.Hello.")
        .switch("server", "Run only the server, until Ctrl-C")
        .switch("client", "Run only the client: call Greeter.Hello once")
        .handler(GreeterServer::new(MyGreeter))
        .build()?;
    let greeter = GreeterClient::new(service.caller(), "greeter");
    let flags = service.flags();
    if flags.is_set("server") {
        return service.run().await;
    }
    if flags.is_set("client") {
        return say_hello(&greeter).await;
    }
    service.start().await?;
    let result = say_hello(&greeter).await;
    service.stop().await?;
    result
}
