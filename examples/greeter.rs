//! The greeter: a service answering `Greeter.Hello`, and a client calling it.
//!
//! ```sh
//! cargo run --example greeter               # server and client in one process
//! cargo run --example greeter -- --server   # only the server (until Ctrl-C)
//! cargo run --example greeter -- --client   # only the client; finds the server via `local`
//! ```

use micro::client::{self, CallOptions};
use micro::server::Handler;
use micro::{Context, Streaming};
use serde::{Deserialize, Serialize};

/// What `Greeter.Hello` takes.
#[derive(Serialize, Deserialize, Debug)]
struct HelloRequest {
    name: String,
}

/// What `Greeter.Hello` answers.
#[derive(Serialize, Deserialize, Debug)]
struct HelloReply {
    msg: String,
}

/// The greeter's endpoints.
fn greeter() -> Vec<Handler> {
    vec![
        Handler::unary(
            "Greeter.Hello",
            |_ctx: Context, req: HelloRequest| async move {
                Ok(HelloReply {
                    msg: format!("Hello {}", req.name),
                })
            },
        ),
        Handler::server_stream("Greeter.Count", |_ctx: Context, to: u32| async move {
            Ok(Streaming::from_values(1..=to))
        }),
    ]
}

async fn say_hello(service: &micro::Service) -> micro::Result<()> {
    let client = service.components().client.clone().ok_or_else(|| {
        micro::Error::bad_request("greeter", "the client is disabled: enable client")
    })?;
    let request = HelloRequest {
        name: "John".into(),
    };
    let reply: HelloReply = client::call(
        client.as_ref(),
        &Context::new(),
        "greeter",
        "Greeter.Hello",
        &request,
        CallOptions::default(),
    )
    .await?;
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
        .handler(greeter())
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
