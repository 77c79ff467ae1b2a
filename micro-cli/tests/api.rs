//! `micro api` against real services (started by the test on a `local` registry of its own),
//! driven with curl as the transcripts do: every handler, the resolvers, namespaces, CORS,
//! `/rpc`, body limits, error mapping, and an auth hook that denies.

use micro::server::{Handler, Subscription};
use micro::{Context, Error};
use micro_cli::api::{ApiOptions, AuthHook, Gateway, HandlerKind};
use micro_cli::commands::Commands;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The services of the tests, on a registry of their own.
struct Services {
    services: Vec<micro::Service>,
    registry: tempfile::TempDir,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Services {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "MICRO_REGISTRY_DIR".into(),
                self.registry.path().display().to_string(),
            ),
            ("MICRO_LOGGER_LEVEL".into(), "error".into()),
        ]
    }

    async fn stop(self) {
        for service in self.services {
            service.stop().await.unwrap();
        }
    }
}

fn echo_name(
    service: &'static str,
) -> impl Fn(Context, Value) -> std::future::Ready<micro::Result<Value>> + Clone {
    move |ctx: Context, req: Value| {
        std::future::ready(Ok(json!({
            "msg": format!("Hello {}", req.get("name").and_then(Value::as_str).unwrap_or("")),
            "service": service,
            "team": ctx.metadata.get("x-team").unwrap_or(""),
            "request": req,
        })))
    }
}

async fn start(
    name: &str,
    registry: &std::path::Path,
    handlers: Vec<Handler>,
    subscriber: Option<Subscription>,
) -> micro::Service {
    let mut builder = micro::Service::builder()
        .name(name)
        .args([name])
        .env([
            ("MICRO_REGISTRY_DIR", registry.display().to_string()),
            ("MICRO_LOGGER_LEVEL", "error".to_string()),
        ])
        .handler(handlers);
    if let Some(subscriber) = subscriber {
        builder = builder.subscriber(subscriber);
    }
    let service = builder.build().unwrap();
    service.start().await.unwrap();
    service
}

async fn services() -> Services {
    let registry = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let example = start(
        "go.micro.srv.example",
        registry.path(),
        vec![
            Handler::unary("Example.Call", echo_name("example")),
            Handler::unary("Example.Fail", |_: Context, _: Value| async {
                Err::<Value, _>(Error::conflict("example", "always conflicts"))
            }),
            Handler::unary("Example.Zero", |_: Context, _: Value| async {
                Err::<Value, _>(Error::new("example", 0, "no code"))
            }),
            // The api handler's envelope in, an api.Response out.
            Handler::unary("Example.Page", |_: Context, req: Value| async move {
                Ok::<_, Error>(json!({
                    "statusCode": 201,
                    "header": {"X-Seen-Method": {"key": "X-Seen-Method", "values": [req["method"]]}},
                    "body": format!("{} {} q={} body={}", req["method"].as_str().unwrap_or(""), req["path"].as_str().unwrap_or(""),
                        req["get"]["q"]["values"][0].as_str().unwrap_or(""), req["body"].as_str().unwrap_or("")),
                }))
            })
            .with_metadata("handler", "api"),
        ],
        None,
    )
    .await;
    let versioned = start(
        "v1.foo",
        registry.path(),
        vec![Handler::unary("Foo.Bar", echo_name("v1.foo"))],
        None,
    )
    .await;
    let grpc = start(
        "greeter.v1",
        registry.path(),
        vec![Handler::unary("Greeter.Hello", echo_name("greeter.v1"))],
        None,
    )
    .await;
    let subscriber = Subscription::new(
        "go.micro.evt.orders",
        None,
        move |_: Context, event: Value| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(event);
                Ok(())
            }
        },
    );
    let listener = start(
        "listener",
        registry.path(),
        vec![Handler::unary("Listener.Ping", echo_name("listener"))],
        Some(subscriber),
    )
    .await;
    Services {
        services: vec![example, versioned, grpc, listener],
        registry,
        events,
    }
}

/// Starts `micro api` with `env` and `args` on a kernel-picked port; returns it and its URL.
fn gateway(env: &[(String, String)], args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_micro"))
        .arg("api")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MICRO_API_ADDRESS", "127.0.0.1:0")
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("micro api listening on ")
        .unwrap_or_else(|| panic!("micro api said {line:?}"))
        .to_string();
    (Running(child), url)
}

/// A curl exchange: status, headers (lowercase names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

async fn curl(args: &[&str]) -> Reply {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "-i", "--max-time", "20"])
            .args(&args)
            .output()
            .expect("curl is installed")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_transcript_works_as_written() {
    let services = services().await;
    let mut env = services.env();
    env.push(("MICRO_API_HANDLER".into(), "rpc".into()));
    env.push(("MICRO_API_NAMESPACE".into(), "go.micro.srv".into()));
    let (_api, url) = gateway(&env, &[]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name": "John"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["msg"], "Hello John");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let root = curl(&[&format!("{url}/")]).await;
    assert_eq!(root.json()["version"], env!("CARGO_PKG_VERSION"));
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpc_handler_maps_bodies_headers_and_errors() {
    let services = services().await;
    let (_api, url) = gateway(
        &services.env(),
        &[
            "--handler",
            "rpc",
            "--namespace",
            "go.micro.srv",
            "--max_body",
            "200",
        ],
    );
    let call = format!("{url}/example/call");
    // A GET's query, a form, and headers as metadata.
    let reply = curl(&["-H", "X-Team: blue", &format!("{call}?name=Query")]).await;
    assert_eq!(
        (reply.status, reply.json()["msg"].clone()),
        (200, json!("Hello Query"))
    );
    assert_eq!(reply.json()["team"], "blue");
    let reply = curl(&["-XPOST", "-d", "name=Form&x=1", &call]).await;
    assert_eq!(reply.json()["request"], json!({"name": "Form", "x": "1"}));
    // Errors: the service's own code, 0 → 500, bad JSON 400, unknown service 404, 413.
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/example/fail"),
    ])
    .await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.json()["detail"], "always conflicts");
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/example/zero"),
    ])
    .await;
    assert_eq!(reply.status, 500);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{bad",
        &call,
    ])
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/nope/call"),
    ])
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(reply.body.contains("go.micro.srv.nope"), "{}", reply.body);
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(500));
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &big,
        &call,
    ])
    .await;
    assert_eq!(reply.status, 413);
    let reply = curl(&["-XPOST", "-H", "Content-Type: text/csv", "-d", "a,b", &call]).await;
    assert_eq!(reply.status, 415);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolvers_and_namespaces_pick_the_service() {
    let services = services().await;
    let env = services.env();
    let post = |url: String| async move {
        curl(&[
            "-XPOST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"name":"R"}"#,
            &url,
        ])
        .await
    };
    // micro: /v1/foo/bar → v1.foo Foo.Bar; a namespace ending in "." joins directly.
    let (_a, url) = gateway(&env, &["--handler", "rpc"]);
    assert_eq!(
        post(format!("{url}/v1/foo/bar")).await.json()["service"],
        "v1.foo"
    );
    let (_b, url) = gateway(&env, &["--handler", "rpc", "--namespace", "go.micro.srv."]);
    assert_eq!(
        post(format!("{url}/example/call")).await.json()["service"],
        "example"
    );
    // vpath and grpc.
    let (_c, url) = gateway(&env, &["--handler", "rpc", "--resolver", "vpath"]);
    assert_eq!(
        post(format!("{url}/v1/foo/bar")).await.json()["service"],
        "v1.foo"
    );
    let (_d, url) = gateway(&env, &["--handler", "rpc", "--resolver", "grpc"]);
    assert_eq!(
        post(format!("{url}/greeter.v1.Greeter/Hello")).await.json()["service"],
        "greeter.v1"
    );
    // path: the first segment, the endpoint from the rest.
    let (_e, url) = gateway(&env, &["--handler", "rpc", "--resolver", "path"]);
    assert_eq!(
        post(format!("{url}/listener/listener/ping")).await.json()["service"],
        "listener"
    );
    // host: the Host header names the service.
    let (_f, url) = gateway(&env, &["--handler", "rpc", "--resolver", "host"]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Host: listener",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/ping"),
    ])
    .await;
    assert_eq!(reply.json()["service"], "listener", "{}", reply.body);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_api_and_event_handlers() {
    let services = services().await;
    let env = services.env();
    // meta (the default): rpc unless the endpoint says otherwise (Example.Page says api).
    let (_meta, url) = gateway(&env, &["--namespace", "go.micro.srv"]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"M"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.json()["msg"], "Hello M");
    let reply = curl(&["-XPUT", "-d", "hello", &format!("{url}/example/page?q=7")]).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body, "PUT /example/page q=7 body=hello");
    assert_eq!(reply.header("x-seen-method"), Some("PUT"));
    // api for every request.
    let (_api, url) = gateway(&env, &["--handler", "api", "--namespace", "go.micro.srv"]);
    let reply = curl(&[&format!("{url}/example/page?q=x")]).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (201, "GET /example/page q=x body=")
    );
    // event: published on namespace.<first segment>, the rest is the name.
    let (_event, url) = gateway(&env, &["--handler", "event", "--namespace", "go.micro.evt"]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "X-Source: test",
        "-d",
        r#"{"id": 1}"#,
        &format!("{url}/orders/created"),
    ])
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let event = loop {
        if let Some(event) = services.events.lock().unwrap().first().cloned() {
            break event;
        }
        assert!(tokio::time::Instant::now() < deadline, "no event arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["name"], "created");
    assert_eq!(event["data"], r#"{"id": 1}"#);
    assert_eq!(event["header"]["X-Source"]["values"][0], "test");
    assert!(event["timestamp"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(event["id"].as_str().unwrap().len(), 36);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_endpoint_and_cors() {
    let services = services().await;
    let (_api, url) = gateway(&services.env(), &["--enable_rpc", "--enable_cors"]);
    let rpc = format!("{url}/rpc");
    let body = r#"{"service": "go.micro.srv.example", "endpoint": "Example.Call", "request": {"name": "Rpc"}}"#;
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &rpc,
    ])
    .await;
    assert_eq!(reply.json()["msg"], "Hello Rpc");
    let form =
        "service=go.micro.srv.example&endpoint=Example.Call&request=%7B%22name%22%3A%22F%22%7D";
    let reply = curl(&["-XPOST", "-d", form, &rpc]).await;
    assert_eq!(reply.json()["msg"], "Hello F", "{}", reply.body);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"service": "x"}"#,
        &rpc,
    ])
    .await;
    assert_eq!(reply.status, 400);
    // CORS: a preflight is answered at once, the origin echoed.
    let reply = curl(&[
        "-XOPTIONS",
        "-H",
        "Origin: http://app.test",
        &format!("{url}/anything/at/all"),
    ])
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("POST, PATCH, GET, OPTIONS, PUT, DELETE")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization")
    );
    let reply = curl(&["-H", "Origin: http://app.test", &format!("{url}/")]).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    services.stop().await;
}

/// Refuses every request.
struct DenyAll;

#[micro::__private::async_trait]
impl AuthHook for DenyAll {
    async fn check(&self, request: &axum::http::request::Parts) -> Result<(), Error> {
        Err(Error::unauthorized(
            "test",
            format!("{} is not allowed", request.uri.path()),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_hook_runs_before_dispatch() {
    let services = services().await;
    let client = micro::Service::builder()
        .name("gateway")
        .args(["gateway"])
        .env(services.env())
        .only_components(&["client", "broker"])
        .build()
        .unwrap();
    let commands = Commands::from_components(client.components()).unwrap();
    let options = ApiOptions {
        handler: HandlerKind::Rpc,
        namespace: "go.micro.srv".into(),
        ..ApiOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Allowed: the library router in an app's own server.
    let open = Gateway::new(commands.clone(), options.clone());
    let server = tokio::spawn(async move { open.serve(listener, std::future::pending()).await });
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"A"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.json()["msg"], "Hello A");
    server.abort();
    // Denied: the hook's 401, and the service never called.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let closed = Gateway::with_auth(commands, options, Arc::new(DenyAll));
    let server = tokio::spawn(async move { closed.serve(listener, std::future::pending()).await });
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"A"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["detail"], "/example/call is not allowed");
    server.abort();
    services.stop().await;
}

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
