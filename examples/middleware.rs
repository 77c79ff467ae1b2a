//! Middleware: tower layers around handlers and calls.
//!
//! The handler side stacks tower's concurrency limit (at most 2 requests at once) and a
//! 500 ms timeout; the client side wraps every call in a 2 s timeout. Run with
//! `cargo run --example middleware`.

use micro::Context;
use micro::client::{self, CallOptions};
use micro::middleware::RpcLayer;
use micro::server::Handler;
use std::time::Duration;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> micro::Result<()> {
    let handler_stack = ServiceBuilder::new()
        .concurrency_limit(2)
        .timeout(Duration::from_millis(500));
    let service = micro::Service::builder()
        .name("sleepy")
        .handler(Handler::unary(
            "Sleepy.Nap",
            |_: Context, millis: u64| async move {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok(format!("slept {millis} ms"))
            },
        ))
        .wrap_handler(RpcLayer::new(handler_stack))
        .wrap_call(RpcLayer::new(tower::timeout::TimeoutLayer::new(
            Duration::from_secs(2),
        )))
        .build()?;
    service.start().await?;
    let client = service.components().client.clone().expect("client enabled");
    for millis in [100u64, 900] {
        let answer: micro::Result<String> = client::call(
            client.as_ref(),
            &Context::new(),
            "sleepy",
            "Sleepy.Nap",
            &millis,
            CallOptions::default(),
        )
        .await;
        match answer {
            Ok(text) => println!("{millis} ms nap: {text}"),
            Err(err) => println!("{millis} ms nap: error {} ({})", err.code, err.detail),
        }
    }
    service.stop().await
}
