//! The full Greeter: every endpoint shape, a rename, an idempotent method, docs, a
//! subscriber; generated items are documented and warning-free.
#![deny(missing_docs, warnings)]

use micro::{Context, Streaming};
use serde::{Deserialize, Serialize};

macro_rules! message {
    ($($name:ident { $field:ident: $ty:ty })*) => {$(
        /// A message.
        #[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
        pub struct $name {
            /// A field.
            pub $field: $ty,
        }
    )*};
}

message! {
    HelloRequest { name: String }
    HelloReply { msg: String }
    CountRequest { to: u32 }
    Tick { n: u32 }
    Chunk { data: String }
    Summary { bytes: usize }
    Msg { text: String }
    Key { key: String }
    Found { value: Option<String> }
    OrderPlaced { id: u64 }
}

/// Greets people.
#[micro::service]
pub trait Greeter {
    /// Says hello.
    async fn hello(&self, ctx: &micro::Context, req: HelloRequest) -> Result<HelloReply, micro::Error>;
    /// Counts up.
    #[micro(name = "Count")]
    async fn count_up(&self, ctx: &micro::Context, req: CountRequest) -> micro::Result<micro::Streaming<Tick>>;
    /// Takes chunks.
    async fn upload(&self, ctx: &micro::Context, chunks: micro::Streaming<Chunk>) -> micro::Result<Summary>;
    /// Talks back.
    async fn chat(&self, ctx: &micro::Context, msgs: micro::Streaming<Msg>) -> micro::Result<micro::Streaming<Msg>>;
    /// Looks a key up.
    #[micro(idempotent)]
    async fn lookup(&self, _: &Context, req: Key) -> micro::Result<Found>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, _ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        Ok(HelloReply { msg: format!("Hello {}", req.name) })
    }

    async fn count_up(&self, _ctx: &Context, req: CountRequest) -> micro::Result<Streaming<Tick>> {
        Ok(Streaming::from_values((1..=req.to).map(|n| Tick { n })))
    }

    async fn upload(&self, _ctx: &Context, mut chunks: Streaming<Chunk>) -> micro::Result<Summary> {
        let mut bytes = 0;
        while let Some(chunk) = chunks.next().await {
            bytes += chunk?.data.len();
        }
        Ok(Summary { bytes })
    }

    async fn chat(&self, _ctx: &Context, msgs: Streaming<Msg>) -> micro::Result<Streaming<Msg>> {
        Ok(msgs)
    }

    async fn lookup(&self, _ctx: &Context, _req: Key) -> micro::Result<Found> {
        Ok(Found { value: None })
    }
}

/// Mails a confirmation.
#[micro::subscriber(topic = "orders.placed", queue = "mailer")]
pub async fn on_order(_ctx: &micro::Context, _event: OrderPlaced) -> micro::Result<()> {
    Ok(())
}

/// A broadcast subscriber (no queue group).
#[micro::subscriber(topic = "orders.placed")]
async fn audit(_ctx: &Context, _event: OrderPlaced) -> micro::Result<()> {
    Ok(())
}

/// Code that takes any `Greeter` does not know where it runs.
async fn greet(greeter: &impl Greeter) -> micro::Result<String> {
    Ok(greeter.hello(&Context::new(), HelloRequest { name: "John".into() }).await?.msg)
}

fn spawnable<T: Greeter>(greeter: std::sync::Arc<T>) {
    drop(tokio::spawn(async move { greeter.hello(&Context::new(), HelloRequest { name: "x".into() }).await }));
}

#[tokio::main]
async fn main() {
    use micro::server::IntoHandlers;
    let server = GreeterServer::new(MyGreeter);
    assert_eq!(server.local_impls().len(), 1);
    let names: Vec<String> = server.clone().into_handlers().into_iter().map(|h| h.endpoint.name).collect();
    assert_eq!(names, ["Greeter.Hello", "Greeter.Count", "Greeter.Upload", "Greeter.Chat", "Greeter.Lookup"]);
    assert_eq!(greet(&MyGreeter).await.unwrap(), "Hello John");
    spawnable(std::sync::Arc::new(MyGreeter));
    let service = micro::Service::builder()
        .name("greeter")
        .args(["greeter"])
        .env(vec![("MICRO_REGISTRY", "memory"), ("MICRO_TRANSPORT", "memory"), ("MICRO_BROKER", "memory"), ("MICRO_LOGGER_LEVEL", "warn")])
        .handler(server)
        .subscriber(on_order_subscription())
        .subscriber(audit_subscription())
        .build()
        .unwrap();
    let client = GreeterClient::new(service.caller(), "greeter").with_options(micro::client::CallOptions::default());
    let _ = format!("{client:?}");
    service.start().await.unwrap();
    assert_eq!(greet(&client).await.unwrap(), "Hello John");
    service.stop().await.unwrap();
}
