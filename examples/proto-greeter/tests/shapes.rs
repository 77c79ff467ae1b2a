//! The code micro-build generates for every rpc shape (unary, server, client and
//! bidirectional streams, a renamed rpc, a keyword, nested messages, an enum, a oneof, a map)
//! compiles against `#[micro::service]` and answers over the memory transport.

mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.v1.rs"));
}

use micro::server::IntoHandlers;
use micro::{Context, Streaming};
use shapes::{Mood, Ping, Pong, Shapes as _, ShapesClient, ShapesServer, ping};

struct MyShapes;

fn pong(text: impl Into<String>) -> Pong {
    Pong {
        text: text.into(),
        mood: Mood::Happy as i32,
        ..Pong::default()
    }
}

impl shapes::Shapes for MyShapes {
    async fn hello(&self, _: &Context, req: Ping) -> micro::Result<Pong> {
        let note = match req.extra {
            Some(ping::Extra::Note(note)) => note,
            Some(ping::Extra::Number(n)) => n.to_string(),
            None => String::new(),
        };
        Ok(pong(format!("{}{note}", req.text)))
    }

    async fn count(&self, _: &Context, req: Ping) -> micro::Result<Streaming<Pong>> {
        Ok(Streaming::from_values(
            (1..=req.count).map(|n| pong(n.to_string())),
        ))
    }

    async fn upload(&self, _: &Context, mut req: Streaming<Ping>) -> micro::Result<Pong> {
        let mut out = pong("");
        while let Some(ping) = req.next().await {
            let ping = ping?;
            *out.counts.entry(ping.text.clone()).or_default() += 1;
            out.seen.push(ping.text);
        }
        Ok(out)
    }

    async fn chat(&self, _: &Context, mut req: Streaming<Ping>) -> micro::Result<Streaming<Pong>> {
        let mut out = Vec::new();
        while let Some(ping) = req.next().await {
            out.push(pong(ping?.text.to_uppercase()));
        }
        Ok(Streaming::from_values(out))
    }

    async fn get_url(&self, _: &Context, req: ping::Inner) -> micro::Result<Pong> {
        Ok(pong(req.url))
    }

    async fn r#type(&self, _: &Context, req: Ping) -> micro::Result<Pong> {
        Ok(pong(format!("type {}", req.text)))
    }
}

fn in_memory() -> [(&'static str, &'static str); 4] {
    [
        ("MICRO_TRANSPORT", "memory"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
        ("MICRO_LOGGER_LEVEL", "warn"),
    ]
}

fn ping(text: &str) -> Ping {
    Ping {
        text: text.into(),
        ..Ping::default()
    }
}

async fn collect<T: Send + 'static>(mut stream: Streaming<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap());
    }
    out
}

#[test]
fn endpoint_names_follow_the_proto() {
    let names: Vec<String> = ShapesServer::new(MyShapes)
        .into_handlers()
        .into_iter()
        .map(|h| h.endpoint.name)
        .collect();
    assert_eq!(
        names,
        [
            "Shapes.Hello",
            "Shapes.Count",
            "Shapes.Upload",
            "Shapes.Chat",
            "Shapes.GetURL",
            "Shapes.Type"
        ]
    );
}

#[tokio::test]
async fn every_shape_answers_over_the_memory_transport() {
    let server = micro::Service::builder()
        .name("shapes")
        .args(["shapes"])
        .env(in_memory())
        .handler(ShapesServer::new(MyShapes))
        .build()
        .unwrap();
    let shared = server.components();
    let caller = micro::Service::builder()
        .name("caller")
        .args(["caller"])
        .env(in_memory())
        .registry(shared.registry.clone().unwrap())
        .transport(shared.transport.clone().unwrap())
        .build()
        .unwrap();
    server.start().await.unwrap();
    let client = ShapesClient::new(caller.caller(), "shapes");
    let ctx = Context::new();

    let hello = Ping {
        extra: Some(ping::Extra::Note("!".into())),
        ..ping("hi")
    };
    let reply = client.hello(&ctx, hello).await.unwrap();
    assert_eq!((reply.text.as_str(), reply.mood()), ("hi!", Mood::Happy));

    let counted = collect(
        client
            .count(
                &ctx,
                Ping {
                    count: 3,
                    ..ping("")
                },
            )
            .await
            .unwrap(),
    )
    .await;
    let texts: Vec<&str> = counted.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, ["1", "2", "3"]);

    let pings = Streaming::from_values([ping("a"), ping("b"), ping("a")]);
    let summary = client.upload(&ctx, pings).await.unwrap();
    assert_eq!(summary.seen, ["a", "b", "a"]);
    assert_eq!(summary.counts["a"], 2);

    let pings = Streaming::from_values([ping("x"), ping("y")]);
    let chat = collect(client.chat(&ctx, pings).await.unwrap()).await;
    let texts: Vec<&str> = chat.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, ["X", "Y"]);

    let inner = ping::Inner {
        url: "https://example.invalid".into(),
    };
    assert_eq!(
        client.get_url(&ctx, inner).await.unwrap().text,
        "https://example.invalid"
    );
    assert_eq!(client.r#type(&ctx, ping("t")).await.unwrap().text, "type t");
    server.stop().await.unwrap();
}
