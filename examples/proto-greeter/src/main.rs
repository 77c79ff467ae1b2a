//! The greeter from a `.proto` file: micro-build generated the messages and the `Greeter`
//! trait; this runs the service and calls it through the generated `GreeterClient`.
//!
//! ```sh
//! cargo run -p proto-greeter               # server and client in one process
//! cargo run -p proto-greeter -- --server   # only the server (until Ctrl-C)
//! cargo run -p proto-greeter -- --client   # only the client: protobuf over the transport
//! ```

use micro::Context;
use proto_greeter::MyGreeter;
use proto_greeter::greeter::{
    CountRequest, Greeter as _, GreeterClient, GreeterServer, HelloRequest,
};

/// Calls `Greeter.Hello` and `Greeter.Count` and prints the answers.
async fn say_hello(service: &micro::Service) -> micro::Result<()> {
    let greeter = GreeterClient::new(service.caller(), "greeter");
    let ctx = Context::new();
    let request = HelloRequest {
        name: "John".into(),
    };
    println!("{}", greeter.hello(&ctx, request).await?.msg);
    let mut ticks = greeter.count(&ctx, CountRequest { to: 3 }).await?;
    let mut counted = Vec::new();
    while let Some(tick) = ticks.next().await {
        counted.push(tick?.n.to_string());
    }
    println!("Count: {}", counted.join(" "));
    Ok(())
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    let service = micro::Service::builder()
        .name("greeter")
        .version("1.0.0")
        .usage("The greeter of proto/greeter.proto: Greeter.Hello and Greeter.Count.")
        .switch("server", "Run only the server, until Ctrl-C")
        .switch(
            "client",
            "Run only the client: call the running server once",
        )
        .handler(GreeterServer::new(MyGreeter))
        .build()?;
    let flags = service.flags();
    if flags.is_set("server") {
        return service.run().await;
    }
    if flags.is_set("client") {
        return say_hello(&service).await;
    }
    service.start().await?;
    let result = say_hello(&service).await;
    service.stop().await?;
    result
}
