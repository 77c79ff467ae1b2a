//! `micro api`'s proxying handlers (http, proxy, web with websocket upgrades), websocket
//! streaming to a streaming endpoint, and protobuf bodies through the rpc handler.

mod common;

use common::{curl, gateway, services, start};
use micro::Context;
use micro::server::Handler;
use micro_cli::commands::Commands;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// A plain HTTP site (with a websocket echo) registered by hand as service `site`.
async fn site(registry: &std::path::Path) -> (tokio::task::JoinHandle<()>, micro::Service) {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/site/hello",
            get(|headers: axum::http::HeaderMap| async move {
                format!(
                    "hi from the node, x-team={}",
                    headers
                        .get("x-team")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                )
            }),
        )
        .route(
            "/site/ws",
            get(|ws: WebSocketUpgrade| async {
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(Message::Text(text))) = socket.recv().await {
                        if socket
                            .send(Message::Text(format!("echo {text}").into()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = micro::Service::builder()
        .name("registrar")
        .args(["registrar"])
        .env([("MICRO_REGISTRY_DIR", registry.display().to_string())])
        .only_components(&["client", "broker"])
        .build()
        .unwrap();
    let commands = Commands::from_components(client.components()).unwrap();
    let record = micro::registry::Service {
        name: "site".into(),
        version: "1".into(),
        nodes: vec![micro::registry::Node {
            id: "site-1".into(),
            address,
            ..Default::default()
        }],
        ..Default::default()
    };
    commands.register(&record, None).await.unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_web_handlers_proxy_to_a_node() {
    use micro::__private::futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let services = services().await;
    let (server, _registrar) = site(services.registry.path()).await;
    let env = services.env();
    for handler in ["http", "proxy", "web"] {
        let (_api, url) = gateway(&env, &["--handler", handler]);
        let reply = curl(&["-H", "X-Team: red", &format!("{url}/site/hello")]).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "hi from the node, x-team=red"),
            "{handler}"
        );
        let reply = curl(&[&format!("{url}/bad_name/hello")]).await;
        assert_eq!(reply.status, 404, "{handler}: {}", reply.body);
        let reply = curl(&[&format!("{url}/absent/hello")]).await;
        assert_eq!(reply.status, 404, "{handler}: {}", reply.body);
    }
    // web passes websocket upgrades through.
    let (_api, url) = gateway(&env, &["--handler", "web"]);
    let ws_url = format!("{}/site/ws", url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    socket.send(Message::Text("ping".into())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), socket.next())
        .await
        .unwrap();
    assert_eq!(
        answer.unwrap().unwrap().into_text().unwrap().as_str(),
        "echo ping"
    );
    server.abort();
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_streams_to_a_streaming_endpoint() {
    use micro::__private::futures::{SinkExt, StreamExt};
    use micro::Streaming;
    use tokio_tungstenite::tungstenite::Message;
    let registry = tempfile::tempdir().unwrap();
    let shout = Handler::bidi_stream(
        "Chat.Shout",
        |_: Context, mut words: Streaming<Value>| async move {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                while let Some(Ok(word)) = words.next().await {
                    let loud = json!({"said": word["text"].as_str().unwrap_or("").to_uppercase()});
                    if tx.send(Ok(loud)).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Streaming::new(tokio_stream_of(rx)))
        },
    );
    let chat = start("chat", registry.path(), vec![shout], None).await;
    let env = vec![(
        "MICRO_REGISTRY_DIR".to_string(),
        registry.path().display().to_string(),
    )];
    let (_api, url) = gateway(&env, &["--handler", "rpc"]);
    let ws_url = format!("{}/chat/shout", url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    for word in ["hello", "world"] {
        socket
            .send(Message::Text(json!({"text": word}).to_string().into()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .unwrap();
        let answer: Value =
            serde_json::from_str(answer.unwrap().unwrap().into_text().unwrap().as_str()).unwrap();
        assert_eq!(answer["said"], word.to_uppercase());
    }
    // Not JSON: the error comes back as the last message.
    socket.send(Message::Text("{nope".into())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), socket.next())
        .await
        .unwrap();
    let text = answer.unwrap().unwrap().into_text().unwrap().to_string();
    assert!(text.contains("not valid JSON"), "{text}");
    chat.stop().await.unwrap();
}

/// A receiver as a stream of results.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<micro::Result<Value>>,
) -> impl micro::__private::futures::Stream<Item = micro::Result<Value>> + Send + 'static {
    micro::__private::futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpc_handler_passes_protobuf_through() {
    use prost::Message;
    use proto_greeter::greeter::{GreeterServer, HelloReply, HelloRequest};
    let registry = tempfile::tempdir().unwrap();
    let service = micro::Service::builder()
        .name("greeter")
        .args(["greeter"])
        .env([("MICRO_REGISTRY_DIR", registry.path().display().to_string())])
        .handler(GreeterServer::new(proto_greeter::MyGreeter))
        .build()
        .unwrap();
    service.start().await.unwrap();
    let env = vec![(
        "MICRO_REGISTRY_DIR".to_string(),
        registry.path().display().to_string(),
    )];
    let (_api, url) = gateway(&env, &["--handler", "rpc"]);
    let files = tempfile::tempdir().unwrap();
    let (request, answer) = (files.path().join("request"), files.path().join("answer"));
    let hello = HelloRequest {
        name: "Proto".into(),
    };
    std::fs::write(&request, hello.encode_to_vec()).unwrap();
    let headers = files.path().join("headers");
    let args: Vec<String> = vec![
        "-s".into(),
        "-XPOST".into(),
        "-H".into(),
        "Content-Type: application/protobuf".into(),
        "--data-binary".into(),
        format!("@{}", request.display()),
        "-D".into(),
        headers.display().to_string(),
        "-o".into(),
        answer.display().to_string(),
        format!("{url}/greeter/hello"),
    ];
    let status =
        tokio::task::spawn_blocking(move || Command::new("curl").args(&args).status().unwrap())
            .await
            .unwrap();
    assert!(status.success());
    let head = std::fs::read_to_string(&headers)
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/protobuf"),
        "{head}"
    );
    let bytes = std::fs::read(&answer).unwrap();
    assert_eq!(HelloReply::decode(&bytes[..]).unwrap().msg, "Hello Proto");
    service.stop().await.unwrap();
}
