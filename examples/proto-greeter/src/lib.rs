//! The greeter of `proto/greeter.proto`: the messages and the `Greeter` trait come from
//! micro-build (see `build.rs`); the implementation is written by hand.

/// `package greeter.v1;`: prost messages (which also derive serde and `JsonSchema`) and the
/// `#[micro::service(codec = "protobuf")]` trait `Greeter`, with its `GreeterServer` and
/// `GreeterClient`.
pub mod greeter {
    include!(concat!(env!("OUT_DIR"), "/greeter.v1.rs"));
}

use greeter::{CountRequest, HelloReply, HelloRequest, Tick};
use micro::{Context, Streaming};

/// The implementation of `greeter.v1.Greeter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MyGreeter;

impl greeter::Greeter for MyGreeter {
    async fn hello(&self, _ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        if req.name.is_empty() {
            return Err(micro::Error::bad_request(
                "greeter",
                "name is required: say who to greet",
            ));
        }
        Ok(HelloReply {
            msg: format!("Hello {}", req.name),
        })
    }

    async fn count(&self, _ctx: &Context, req: CountRequest) -> micro::Result<Streaming<Tick>> {
        Ok(Streaming::from_values((1..=req.to).map(|n| Tick { n })))
    }
}
