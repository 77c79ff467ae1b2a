//! Protobuf services: `codec = "protobuf"` on the macro, or `#[micro(protobuf)]` on the
//! trait; prost messages that also derive serde, with no `JsonSchema`.

use micro::{Context, Streaming};

#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

#[micro::service(codec = "protobuf")]
trait Echo {
    async fn ping(&self, ctx: &Context, req: Ping) -> micro::Result<Ping>;
    async fn many(&self, ctx: &Context, req: Ping) -> micro::Result<Streaming<Ping>>;
    async fn gather(&self, ctx: &Context, req: Streaming<Ping>) -> micro::Result<Ping>;
    async fn both(&self, ctx: &Context, req: Streaming<Ping>) -> micro::Result<Streaming<Ping>>;
}

#[micro::service]
#[micro(protobuf)]
trait Mirror {
    async fn reflect(&self, ctx: &Context, req: Ping) -> micro::Result<Ping>;
}

#[micro::subscriber(topic = "pings", codec = "protobuf")]
async fn on_ping(_ctx: &Context, _ping: Ping) -> micro::Result<()> {
    Ok(())
}

struct Impl;

impl Echo for Impl {
    async fn ping(&self, _: &Context, req: Ping) -> micro::Result<Ping> {
        Ok(req)
    }
    async fn many(&self, _: &Context, req: Ping) -> micro::Result<Streaming<Ping>> {
        Ok(Streaming::from_values([req]))
    }
    async fn gather(&self, _: &Context, mut req: Streaming<Ping>) -> micro::Result<Ping> {
        req.next().await.unwrap_or_else(|| Ok(Ping::default()))
    }
    async fn both(&self, _: &Context, req: Streaming<Ping>) -> micro::Result<Streaming<Ping>> {
        Ok(req)
    }
}

impl Mirror for Impl {
    async fn reflect(&self, _: &Context, req: Ping) -> micro::Result<Ping> {
        Ok(req)
    }
}

fn main() {
    use micro::server::IntoHandlers;
    let handlers = EchoServer::new(Impl).into_handlers();
    assert_eq!(handlers.len(), 4);
    assert!(handlers.iter().all(|h| h.endpoint.request.is_none()));
    assert_eq!(MirrorServer::new(Impl).into_handlers()[0].endpoint.name, "Mirror.Reflect");
    assert_eq!(on_ping_subscription().topic, "pings");
}
